//! Request-counts loop: every few minutes, logs how many OCSP and CRL requests were
//! answered and how many API-call records were dropped since the last tick (nothing when
//! all are zero). Those requests are counted rather than logged one row each.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::scheduler::LoopTask;
use crate::store::api_calls::ApiCallLog;

/// How often the counts are logged.
pub const INTERVAL: Duration = Duration::from_secs(5 * 60);

/// Counter values at the previous tick.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    ocsp: u64,
    crl: u64,
    dropped: u64,
}

/// The loop task.
#[derive(Debug)]
pub struct RequestCounts {
    log: ApiCallLog,
    last: Mutex<Counts>,
}

impl RequestCounts {
    /// Reports the counters of `log`.
    pub fn new(log: ApiCallLog) -> Self {
        Self {
            log,
            last: Mutex::default(),
        }
    }
}

impl LoopTask for RequestCounts {
    fn name(&self) -> &'static str {
        "request_counts"
    }

    fn tick(self: Arc<Self>) -> BoxFuture<'static, Result<String, String>> {
        Box::pin(async move {
            let now = Counts {
                ocsp: self.log.ocsp_requests(),
                crl: self.log.crl_requests(),
                dropped: self.log.dropped(),
            };
            let mut last = match self.last.lock() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            let (ocsp, crl, dropped) = (
                now.ocsp.saturating_sub(last.ocsp),
                now.crl.saturating_sub(last.crl),
                now.dropped.saturating_sub(last.dropped),
            );
            *last = now;
            drop(last);
            if ocsp + crl > 0 {
                tracing::info!(ocsp, crl, "PKI requests answered since the last report");
            }
            if dropped > 0 {
                tracing::warn!(
                    dropped,
                    total_dropped = now.dropped,
                    capacity = self.log.capacity(),
                    "API-call records dropped since the last report (queue full)"
                );
            }
            Ok(String::new())
        })
    }
}
