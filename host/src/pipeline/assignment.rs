//! Which agent an Issuance/Renewal job belongs to: the agent of the certificate's first
//! mapped target, assigned when the job waits for a CSR or when a target is mapped later.
//! The job steps themselves live in `process`; CSR submission by the agent in `csr`.

use serde_json::json;

use super::Pipeline;
use crate::domain::audit::Actor;
use crate::domain::job_state::JobStatus;
use crate::store::StoreError;
use crate::store::certificates;
use crate::store::jobs;

impl Pipeline {
    /// The agent that holds keys for a certificate: the agent of its first mapped target.
    pub async fn assigned_agent(&self, certificate_id: &str) -> Result<Option<String>, StoreError> {
        Ok(certificates::mapped_targets(&self.store, certificate_id)
            .await?
            .into_iter()
            .find_map(|t| t.agent_id))
    }

    pub(super) async fn assign_agent(
        &self,
        job_id: &str,
        agent_id: &str,
    ) -> Result<(), StoreError> {
        let mut sql =
            crate::store::sql::Sql::new(self.store.dialect(), "UPDATE jobs SET agent_id = ");
        sql.bind_text(agent_id)
            .push(" WHERE id = ")
            .bind_text(job_id)
            .push(" AND agent_id IS NULL");
        sql.query().execute(self.store.pool()).await?;
        Ok(())
    }

    /// A target was mapped to the certificate: an open Issuance/Renewal job without an agent
    /// (it reached AwaitingCSR before any target was mapped — the usual order, since a
    /// certificate exists before its mappings) is assigned the mapped target's agent.
    pub async fn target_mapped(
        &self,
        certificate_id: &str,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        let Some(job) =
            jobs::open_for_certificate(&self.store, certificate_id, &["Issuance", "Renewal"])
                .await?
        else {
            return Ok(());
        };
        if job.agent_id.is_some() {
            return Ok(());
        }
        let Some(agent) = self.assigned_agent(certificate_id).await? else {
            return Ok(());
        };
        let now = self.now_text();
        let mut tx = self.store.begin_write().await?;
        let mut sql =
            crate::store::sql::Sql::new(self.store.dialect(), "UPDATE jobs SET agent_id = ");
        sql.bind_text(agent.clone())
            .push(", updated_at = ")
            .bind_text(now.clone())
            .push(" WHERE id = ")
            .bind_text(job.id.clone())
            .push(" AND agent_id IS NULL");
        if sql.query().execute(&mut *tx).await?.rows_affected() == 1 {
            let entry = crate::domain::audit::AuditEntry {
                actor: actor.clone(),
                action: "job_agent_assigned".into(),
                resource_type: "job".into(),
                resource_id: job.id.clone(),
                details: json!({"agent_id": agent, "certificate_id": certificate_id, "status": job.status.as_str()}),
            };
            crate::store::audit::append(&mut tx, self.store.dialect(), &entry, &now).await?;
        }
        tx.commit().await?;
        if job.status == JobStatus::AwaitingCSR {
            self.notify_agent(&agent);
        }
        Ok(())
    }
}
