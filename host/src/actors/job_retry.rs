//! Job retry loop: requeues Failed jobs that have attempts left once their backoff passed.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::scheduler::LoopTask;
use crate::domain::audit::Actor;
use crate::domain::job_state::JobEvent;
use crate::pipeline::Pipeline;
use crate::store::jobs::{self, Changes};

/// The loop task.
#[derive(Debug)]
pub struct JobRetry(pub Arc<Pipeline>);

impl LoopTask for JobRetry {
    fn name(&self) -> &'static str {
        "job_retry"
    }

    fn tick(self: Arc<Self>) -> BoxFuture<'static, Result<String, String>> {
        Box::pin(async move {
            let p = &self.0;
            let now = p.clock.now_text();
            let due = jobs::retryable_due(&p.store, &now, 500)
                .await
                .map_err(|e| e.to_string())?;
            let mut requeued = 0;
            for job in due {
                match jobs::transition(
                    &p.store,
                    &job.id,
                    JobEvent::Retry,
                    Changes {
                        scheduled_at: Some(None),
                        ..Changes::default()
                    },
                    &now,
                    &Actor::system(),
                )
                .await
                {
                    Ok(job) => {
                        requeued += 1;
                        if let Some(agent) = &job.agent_id {
                            p.notify_agent(agent);
                        }
                    }
                    Err(e) => tracing::warn!(job_id = %job.id, error = %e, "retry not possible"),
                }
            }
            if requeued > 0 {
                p.poke_processor();
            }
            Ok(if requeued > 0 {
                format!("{requeued} jobs requeued")
            } else {
                String::new()
            })
        })
    }
}
