//! Job processor loop: advances due Pending issuance and renewal jobs (deployment and
//! validation jobs are pulled by agents).

use std::sync::Arc;

use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;

use super::scheduler::LoopTask;
use crate::pipeline::Pipeline;
use crate::store::jobs;

/// Jobs advanced per tick.
const BATCH: i64 = 100;
/// Jobs advanced concurrently (issuer actors bound their own concurrency too).
const CONCURRENCY: usize = 8;

/// The loop task.
#[derive(Debug)]
pub struct JobProcessor(pub Arc<Pipeline>);

impl LoopTask for JobProcessor {
    fn name(&self) -> &'static str {
        "job_processor"
    }

    fn tick(self: Arc<Self>) -> BoxFuture<'static, Result<String, String>> {
        Box::pin(async move {
            let p = &self.0;
            let due = jobs::due(
                &p.store,
                &["Issuance", "Renewal"],
                &p.clock.now_text(),
                BATCH,
            )
            .await
            .map_err(|e| e.to_string())?;
            if due.is_empty() {
                return Ok(String::new());
            }
            let count = due.len();
            let failures = futures_util::stream::iter(due)
                .map(|job| async move {
                    let id = job.id.clone();
                    let span = tracing::info_span!("job", job_id = %id);
                    let r = tracing::Instrument::instrument(p.process(job), span).await;
                    if let Err(e) = &r {
                        tracing::warn!(job_id = %id, error = %e, "job not advanced");
                    }
                    r.is_err()
                })
                .buffer_unordered(CONCURRENCY)
                .filter(|failed| futures_util::future::ready(*failed))
                .count()
                .await;
            Ok(format!("{count} jobs advanced, {failures} errors"))
        })
    }
}
