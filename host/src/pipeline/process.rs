//! The processor's step for one due Pending Issuance/Renewal job: cancel, wait for
//! approval, wait for a CSR, or start and issue. The issuance itself lives in `issuance`,
//! approval in `approval`, agent assignment in `assignment`, failure handling in `failure`.

use serde_json::json;

use super::failure::Failure;
use super::{Pipeline, PipelineError, system};
use crate::config::KeygenMode;
use crate::domain::job_state::JobEvent;
use crate::store::certificates;
use crate::store::jobs::{self, Changes, Job};

impl Pipeline {
    /// Advances one due Pending Issuance/Renewal job as far as it can go now.
    pub async fn process(&self, job: Job) -> Result<(), PipelineError> {
        let now = self.now_text();
        let Some(certificate) = certificates::get(&self.store, &job.certificate_id).await? else {
            self.finish_failure(&job, "certificate no longer exists", false)
                .await?;
            return Ok(());
        };
        if matches!(certificate.status.as_str(), "Archived" | "Revoked") {
            jobs::transition(
                &self.store,
                &job.id,
                JobEvent::Cancel,
                Changes {
                    reason: Some(format!("certificate is {}", certificate.status)),
                    ..Changes::default()
                },
                &now,
                &system(),
            )
            .await?;
            return Ok(());
        }
        let rules = self.profile_rules(&certificate).await?;
        if rules.requires_approval && !self.approved(&job.id).await? {
            jobs::transition(
                &self.store,
                &job.id,
                JobEvent::RequireApproval,
                Changes::default(),
                &now,
                &system(),
            )
            .await?;
            return Ok(());
        }
        if self.settings.keygen_mode == KeygenMode::Agent && job.csr_pem.is_none() {
            let mut details = json!({});
            if job.agent_id.is_none()
                && let Some(agent) = self.assigned_agent(&certificate.id).await?
            {
                self.assign_agent(&job.id, &agent).await?;
                details["agent_id"] = json!(agent);
            }
            let waiting = jobs::transition(
                &self.store,
                &job.id,
                JobEvent::AwaitCsr,
                Changes {
                    details: Some(details),
                    ..Changes::default()
                },
                &now,
                &system(),
            )
            .await?;
            if let Some(agent) = &waiting.agent_id {
                self.notify_agent(agent);
            }
            return Ok(());
        }
        let lease = self.now() + self.settings.job_lease;
        let job = jobs::transition(
            &self.store,
            &job.id,
            JobEvent::Start,
            Changes {
                lease_expires_at: Some(certctl_core::timestamp::format(lease)),
                // Polling an order the job already placed is the same attempt.
                count_attempt: job.issuer_order_id.is_none(),
                ..Changes::default()
            },
            &now,
            &system(),
        )
        .await?;
        if job.job_type == "Renewal"
            && matches!(
                certificate.status.as_str(),
                "Active" | "Expiring" | "Expired" | "Failed"
            )
        {
            certificates::set_status(
                &self.store,
                &certificate.id,
                &certificate.status,
                "RenewalInProgress",
                &now,
                &system(),
                json!({"job_id": job.id}),
            )
            .await?;
        }
        match self.issue(&job, &certificate, &rules).await {
            Ok(()) => Ok(()),
            Err(Failure { message, retryable }) => {
                tracing::warn!(job_id = %job.id, error = %message, retryable, "issuance failed");
                self.finish_failure(&job, &message, retryable).await
            }
        }
    }
}
