//! How a job fails: [`Failure`] (a failed issuance attempt, retryable or not) and the
//! transition to Failed with a retry backoff, or, on the last attempt, the certificate
//! marked Failed and a renewal-failure notification. Where failures arise lives in
//! `process`, `issuance` and `reports`.

use serde_json::json;

use super::{Pipeline, PipelineError, system};
use crate::domain::job_state::JobEvent;
use crate::store::certificates;
use crate::store::jobs::{self, Changes, Job};
use crate::store::notifications::{self, NewNotification};

impl Pipeline {
    /// Fails the job; retryable failures with attempts left get a backoff for the retry loop,
    /// the last failure marks the certificate Failed and notifies on renewals.
    pub(super) async fn finish_failure(
        &self,
        job: &Job,
        message: &str,
        retryable: bool,
    ) -> Result<(), PipelineError> {
        let now = self.now();
        let attempts_left = job.attempts < job.max_attempts;
        let retry_at = (retryable && attempts_left).then(|| {
            let backoff = time::Duration::seconds(
                30 * 2_i64.pow(u32::try_from(job.attempts.clamp(0, 10)).unwrap_or(0)),
            );
            certctl_core::timestamp::format(now + backoff)
        });
        let final_failure = retry_at.is_none();
        let job = jobs::transition(
            &self.store,
            &job.id,
            JobEvent::Fail,
            Changes {
                last_error: Some(Some(message.to_owned())),
                scheduled_at: Some(retry_at),
                ..Changes::default()
            },
            &self.now_text(),
            &system(),
        )
        .await?;
        if final_failure
            && let Some(cert) = certificates::get(&self.store, &job.certificate_id).await?
        {
            if matches!(cert.status.as_str(), "Pending" | "RenewalInProgress") {
                certificates::set_status(
                    &self.store,
                    &cert.id,
                    &cert.status,
                    "Failed",
                    &self.now_text(),
                    &system(),
                    json!({"job_id": job.id, "error": message}),
                )
                .await?;
            }
            if job.job_type == "Renewal" {
                let n = NewNotification {
                    notification_type: "RenewalFailure",
                    certificate_id: Some(&cert.id),
                    channel: "email",
                    recipient: None,
                    message: format!(
                        "Renewal of {} ({}) failed: {message}",
                        cert.name, cert.common_name
                    ),
                    dedup_key: Some(format!("renewal-failure:{}", job.id)),
                };
                notifications::enqueue(&self.store, &n, &self.now_text()).await?;
            }
        }
        Ok(())
    }
}

/// A failed issuance attempt.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) message: String,
    pub(super) retryable: bool,
}

impl Failure {
    pub(super) fn fatal(message: String) -> Self {
        Self {
            message,
            retryable: false,
        }
    }
    pub(super) fn retryable(message: String) -> Self {
        Self {
            message,
            retryable: true,
        }
    }
}
