//! Renewal requests: `POST /certificates/{id}/renew` and the renewal check's variant with
//! its own audit details, plus the current leaf an ACME renewal names as the one it
//! replaces. Processing the Renewal job lives in `process` and `issuance`.

use serde_json::{Value, json};

use super::{Pipeline, PipelineError};
use crate::domain::audit::Actor;
use crate::store::StoreError;
use crate::store::certificates;
use crate::store::jobs::{self, Job, NewJob};

impl Pipeline {
    /// `POST /certificates/{id}/renew`: a Renewal job unless one is open.
    pub async fn request_renewal(
        &self,
        certificate_id: &str,
        actor: &Actor,
        trigger: &str,
    ) -> Result<Job, PipelineError> {
        self.request_renewal_with(certificate_id, actor, json!({"trigger": trigger}))
            .await
    }

    /// [`Pipeline::request_renewal`] with the audit details of the new job spelled out (the
    /// renewal check records why it renews: `{"trigger": "ari", "window_start": …}`).
    pub async fn request_renewal_with(
        &self,
        certificate_id: &str,
        actor: &Actor,
        details: Value,
    ) -> Result<Job, PipelineError> {
        let certificate = certificates::get(&self.store, certificate_id)
            .await?
            .ok_or_else(|| {
                PipelineError::NotFound(format!("certificate {certificate_id} not found"))
            })?;
        if matches!(certificate.status.as_str(), "Archived" | "Revoked") {
            return Err(PipelineError::Conflict(format!(
                "certificate {certificate_id} is {}",
                certificate.status
            )));
        }
        if certificate.issuer_id.is_none() {
            return Err(PipelineError::Conflict(format!(
                "certificate {certificate_id} has no issuer_id; set one first"
            )));
        }
        if let Some(open) =
            jobs::open_for_certificate(&self.store, certificate_id, &["Issuance", "Renewal"])
                .await?
        {
            return Err(PipelineError::Conflict(format!(
                "{} job {} is already open for this certificate ({})",
                open.job_type, open.id, open.status
            )));
        }
        let agent = self.assigned_agent(certificate_id).await?;
        let mut tx = self.store.begin_write().await.map_err(StoreError::from)?;
        let id = jobs::create_in(
            &mut tx,
            &self.store,
            &NewJob {
                job_type: "Renewal",
                certificate_id,
                target_id: None,
                agent_id: agent.as_deref(),
                max_attempts: 3,
            },
            &self.now_text(),
            actor,
            details,
        )
        .await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.poke_processor();
        jobs::get(&self.store, &id)
            .await?
            .ok_or(PipelineError::NotFound(id))
    }

    /// The leaf (DER) of a certificate's newest version, if it has one.
    pub async fn current_leaf_der(&self, certificate_id: &str) -> Option<Vec<u8>> {
        let versions = match certificates::versions(&self.store, certificate_id).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(%certificate_id, error = %e, "could not load the current version");
                return None;
            }
        };
        let chain = versions.into_iter().next()?.pem_chain;
        x509_parser::pem::Pem::iter_from_buffer(chain.as_bytes())
            .next()?
            .ok()
            .map(|p| p.contents)
    }
}
