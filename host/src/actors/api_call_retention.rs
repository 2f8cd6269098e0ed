//! API-call retention loop: deletes API-call rows older than `CERTCTL_API_CALL_RETENTION`
//! (the rule is `domain::api_call::retention_cutoff`; the schema refuses any other delete).

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::scheduler::LoopTask;
use crate::clock::Clock;
use crate::domain::api_call::retention_cutoff;
use crate::store::{Store, api_calls};

/// The loop task.
#[derive(Debug)]
pub struct ApiCallRetention {
    /// Storage.
    pub store: Store,
    /// Time source.
    pub clock: Arc<dyn Clock>,
    /// How long rows are kept; zero keeps them forever.
    pub retention: Duration,
}

impl LoopTask for ApiCallRetention {
    fn name(&self) -> &'static str {
        "api_call_retention"
    }

    fn tick(self: Arc<Self>) -> BoxFuture<'static, Result<String, String>> {
        Box::pin(async move {
            let Some(cutoff) = retention_cutoff(self.clock.now(), self.retention) else {
                return Ok(String::new());
            };
            let cutoff = certctl_core::timestamp::format(cutoff);
            match api_calls::prune(&self.store, &cutoff).await {
                Ok(0) => Ok(String::new()),
                Ok(n) => Ok(format!("pruned {n} API calls older than {cutoff}")),
                Err(e) => Err(e.to_string()),
            }
        })
    }
}
