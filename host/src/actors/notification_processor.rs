//! Notification processor loop: delivers queued notifications through the notifier of their
//! channel, up to `concurrency` at once. A failure counts an attempt and schedules a retry
//! with exponential backoff.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::{StreamExt as _, stream};

use super::scheduler::LoopTask;
use crate::notifier::Notifiers;
use crate::pipeline::Pipeline;
use crate::store::StoreError;
use crate::store::notifications::{self, Notification};

/// Backoff before retry `attempt` (1-based): 1, 2, 4, 8, 16 minutes.
pub fn backoff(attempt: i64) -> time::Duration {
    time::Duration::minutes(1_i64 << attempt.clamp(1, 10).saturating_sub(1))
}

/// Deliveries in flight at once when not configured (`CERTCTL_NOTIFICATION_CONCURRENCY`).
pub const DEFAULT_CONCURRENCY: usize = 8;

/// The loop task.
#[derive(Debug)]
pub struct NotificationProcessor {
    /// Store and clock.
    pub pipeline: Arc<Pipeline>,
    /// Configured notifiers.
    pub notifiers: Notifiers,
    /// Deliveries in flight at once: a notifier that hangs until its deadline holds back
    /// only its own slot.
    pub concurrency: usize,
}

/// What happened to one queued notification.
enum Outcome {
    Sent,
    Failed,
    Parked,
}

impl NotificationProcessor {
    async fn deliver(&self, n: Notification) -> Result<Outcome, StoreError> {
        let p = &self.pipeline;
        let Some(notifier) = self.notifiers.get(&n.channel) else {
            // Nothing can deliver it yet; look again in an hour and say why.
            let now = p.clock.now();
            let later = certctl_core::timestamp::format(now + time::Duration::hours(1));
            let why = format!("no notifier configured for channel \"{}\"", n.channel);
            notifications::set_status(
                &p.store,
                &n.id,
                "Pending",
                "Pending",
                false,
                Some(&why),
                Some(&later),
                &p.clock.now_text(),
            )
            .await?;
            return Ok(Outcome::Parked);
        };
        let result = notifier.send(&n).await;
        // Times are read after the delivery: it may have taken up to the plugin deadline.
        let now = p.clock.now();
        let now_text = certctl_core::timestamp::format(now);
        match result {
            Ok(()) => {
                notifications::set_status(
                    &p.store, &n.id, "Pending", "Sent", true, None, None, &now_text,
                )
                .await?;
                Ok(Outcome::Sent)
            }
            Err(e) => {
                let next = certctl_core::timestamp::format(now + backoff(n.attempts + 1));
                tracing::warn!(notification_id = %n.id, channel = %n.channel, error = %e, "notification delivery failed");
                notifications::set_status(
                    &p.store,
                    &n.id,
                    "Pending",
                    "Failed",
                    true,
                    Some(&e),
                    Some(&next),
                    &now_text,
                )
                .await?;
                Ok(Outcome::Failed)
            }
        }
    }
}

impl LoopTask for NotificationProcessor {
    fn name(&self) -> &'static str {
        "notification_processor"
    }

    fn tick(self: Arc<Self>) -> BoxFuture<'static, Result<String, String>> {
        Box::pin(async move {
            let p = &self.pipeline;
            let queued = notifications::due(&p.store, "Pending", &p.clock.now_text(), 200)
                .await
                .map_err(|e| e.to_string())?;
            let (mut sent, mut failed, mut parked) = (0, 0, 0);
            let mut first_error = None;
            let mut outcomes = stream::iter(queued)
                .map(|n| self.deliver(n))
                .buffer_unordered(self.concurrency.max(1));
            while let Some(outcome) = outcomes.next().await {
                match outcome {
                    Ok(Outcome::Sent) => sent += 1,
                    Ok(Outcome::Failed) => failed += 1,
                    Ok(Outcome::Parked) => parked += 1,
                    Err(e) => {
                        first_error.get_or_insert(e.to_string());
                    }
                }
            }
            if let Some(e) = first_error {
                return Err(e);
            }
            Ok(if sent + failed + parked > 0 {
                format!("{sent} sent, {failed} failed, {parked} without notifier")
            } else {
                String::new()
            })
        })
    }
}
