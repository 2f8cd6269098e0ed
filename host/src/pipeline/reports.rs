//! Agent reports on the Deployment and Validation jobs they were given: start, completion
//! and failure, with their notifications. Issuance/Renewal jobs are not reported; their
//! agents submit CSRs (`csr`). How a failure retries lives in `failure`.

use serde_json::json;

use super::{Pipeline, PipelineError};
use crate::domain::audit::Actor;
use crate::domain::job_state::{JobEvent, JobStatus};
use crate::store::certificates;
use crate::store::jobs::{self, Changes, Job};
use crate::store::notifications::{self, NewNotification};

impl Pipeline {
    /// An agent reports progress on a deployment or validation job it was given.
    /// `Completed` and `Failed` from Pending imply the start; a repeated final report is a 409.
    pub async fn report_job(
        &self,
        agent_id: &str,
        job_id: &str,
        status: &str,
        message: Option<String>,
        actor: &Actor,
        caller_agent: Option<&str>,
    ) -> Result<Job, PipelineError> {
        if let Some(own) = caller_agent
            && own != agent_id
        {
            return Err(PipelineError::Forbidden(format!(
                "an agent may only report its own jobs ({own})"
            )));
        }
        let job = jobs::get(&self.store, job_id)
            .await?
            .ok_or_else(|| PipelineError::NotFound(format!("job {job_id} not found")))?;
        if job.agent_id.as_deref() != Some(agent_id) {
            // To an agent, another agent's job is not to be touched; to an admin acting for
            // the agent it is simply not there.
            if caller_agent.is_some() {
                return Err(PipelineError::Forbidden(format!(
                    "job {job_id} is not assigned to agent {agent_id}"
                )));
            }
            return Err(PipelineError::NotFound(format!(
                "job {job_id} is not assigned to agent {agent_id}"
            )));
        }
        if !matches!(job.job_type.as_str(), "Deployment" | "Validation") {
            return Err(PipelineError::Conflict(format!(
                "{} jobs are not reported by agents; submit a CSR instead",
                job.job_type
            )));
        }
        let now = self.now_text();
        let lease = certctl_core::timestamp::format(self.now() + self.settings.job_lease);
        let details = json!({"agent_id": agent_id, "message": message});
        let start = |job: &Job| job.status == JobStatus::Pending;
        let mut current = job.clone();
        if start(&current) && matches!(status, "Running" | "Completed" | "Failed") {
            current = jobs::transition(
                &self.store,
                job_id,
                JobEvent::Start,
                Changes {
                    lease_expires_at: Some(lease),
                    count_attempt: true,
                    details: Some(details.clone()),
                    ..Changes::default()
                },
                &now,
                actor,
            )
            .await?;
        }
        match status {
            "Running" => Ok(current),
            "Completed" => {
                let done = jobs::transition(
                    &self.store,
                    job_id,
                    JobEvent::Complete,
                    Changes {
                        last_error: Some(None),
                        details: Some(details),
                        ..Changes::default()
                    },
                    &now,
                    actor,
                )
                .await?;
                if let Some(cert) = certificates::get(&self.store, &done.certificate_id).await? {
                    let n = NewNotification {
                        notification_type: "DeploymentSuccess",
                        certificate_id: Some(&cert.id),
                        channel: "email",
                        recipient: None,
                        message: format!(
                            "Certificate {} deployed to target {}",
                            cert.name,
                            done.target_id.clone().unwrap_or_default()
                        ),
                        dedup_key: Some(format!("deployment-success:{job_id}")),
                    };
                    notifications::enqueue(&self.store, &n, &now).await?;
                }
                Ok(done)
            }
            "Failed" => {
                let message =
                    message.unwrap_or_else(|| "deployment failed (no message from agent)".into());
                self.finish_failure(&current, &message, true).await?;
                let failed = jobs::get(&self.store, job_id)
                    .await?
                    .ok_or_else(|| PipelineError::NotFound(job_id.to_owned()))?;
                if failed.scheduled_at.is_none()
                    && let Some(cert) =
                        certificates::get(&self.store, &failed.certificate_id).await?
                {
                    let n = NewNotification {
                        notification_type: "DeploymentFailure",
                        certificate_id: Some(&cert.id),
                        channel: "email",
                        recipient: None,
                        message: format!(
                            "Deployment of {} to target {} failed: {message}",
                            cert.name,
                            failed.target_id.clone().unwrap_or_default()
                        ),
                        dedup_key: Some(format!("deployment-failure:{job_id}")),
                    };
                    notifications::enqueue(&self.store, &n, &now).await?;
                }
                Ok(failed)
            }
            other => Err(PipelineError::Conflict(format!(
                "status must be Running, Completed or Failed, got \"{other}\""
            ))),
        }
    }
}
