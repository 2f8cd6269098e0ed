//! Job timeout reaper: fails jobs stuck in AwaitingCSR or AwaitingApproval past their
//! timeouts, and requeues Running jobs whose processor lease expired (crash recovery).

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::scheduler::LoopTask;
use crate::domain::audit::Actor;
use crate::domain::job_state::{JobEvent, JobStatus};
use crate::pipeline::Pipeline;
use crate::store::jobs::{self, Changes};

/// The loop task.
#[derive(Debug)]
pub struct JobTimeoutReaper {
    /// Pipeline handle.
    pub pipeline: Arc<Pipeline>,
    /// AwaitingCSR limit.
    pub awaiting_csr: Duration,
    /// AwaitingApproval limit.
    pub awaiting_approval: Duration,
}

impl LoopTask for JobTimeoutReaper {
    fn name(&self) -> &'static str {
        "job_timeout_reaper"
    }

    fn tick(self: Arc<Self>) -> BoxFuture<'static, Result<String, String>> {
        Box::pin(async move {
            let p = &self.pipeline;
            let now = p.clock.now();
            let now_text = p.clock.now_text();
            let mut timed_out = 0;
            for (status, limit) in [
                (JobStatus::AwaitingCSR, self.awaiting_csr),
                (JobStatus::AwaitingApproval, self.awaiting_approval),
            ] {
                let cutoff = certctl_core::timestamp::format(now - limit);
                let stale = jobs::list_in_status(&p.store, status, &[], Some(&cutoff), 500)
                    .await
                    .map_err(|e| e.to_string())?;
                for job in stale {
                    let msg = format!(
                        "timed out after {} in {status}",
                        humantime::format_duration(limit)
                    );
                    match jobs::transition(
                        &p.store,
                        &job.id,
                        JobEvent::TimeOut,
                        Changes {
                            last_error: Some(Some(msg)),
                            ..Changes::default()
                        },
                        &now_text,
                        &Actor::system(),
                    )
                    .await
                    {
                        Ok(_) => timed_out += 1,
                        Err(e) => {
                            tracing::warn!(job_id = %job.id, error = %e, "timeout not applied")
                        }
                    }
                }
            }
            let mut requeued = 0;
            for job in jobs::expired_leases(&p.store, &now_text)
                .await
                .map_err(|e| e.to_string())?
            {
                match jobs::transition(
                    &p.store,
                    &job.id,
                    JobEvent::LeaseExpired,
                    Changes::default(),
                    &now_text,
                    &Actor::system(),
                )
                .await
                {
                    Ok(_) => requeued += 1,
                    Err(e) => {
                        tracing::warn!(job_id = %job.id, error = %e, "lease recovery not applied")
                    }
                }
            }
            if requeued > 0 {
                p.poke_processor();
            }
            Ok(if timed_out + requeued > 0 {
                format!("{timed_out} timed out, {requeued} requeued after lost lease")
            } else {
                String::new()
            })
        })
    }
}
