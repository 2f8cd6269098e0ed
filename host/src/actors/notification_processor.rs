//! Notification processor loop: delivers queued notifications through the notifier of their
//! channel. A failure counts an attempt and schedules a retry with exponential backoff.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::scheduler::LoopTask;
use crate::notifier::Notifiers;
use crate::pipeline::Pipeline;
use crate::store::notifications;

/// Backoff before retry `attempt` (1-based): 1, 2, 4, 8, 16 minutes.
pub fn backoff(attempt: i64) -> time::Duration {
    time::Duration::minutes(1_i64 << attempt.clamp(1, 10).saturating_sub(1))
}

/// The loop task.
#[derive(Debug)]
pub struct NotificationProcessor {
    /// Store and clock.
    pub pipeline: Arc<Pipeline>,
    /// Configured notifiers.
    pub notifiers: Notifiers,
}

impl LoopTask for NotificationProcessor {
    fn name(&self) -> &'static str {
        "notification_processor"
    }

    fn tick(self: Arc<Self>) -> BoxFuture<'static, Result<String, String>> {
        Box::pin(async move {
            let p = &self.pipeline;
            let now = p.clock.now();
            let now_text = p.clock.now_text();
            let queued = notifications::due(&p.store, "Pending", &now_text, 200)
                .await
                .map_err(|e| e.to_string())?;
            let (mut sent, mut failed, mut parked) = (0, 0, 0);
            for n in queued {
                let Some(notifier) = self.notifiers.get(&n.channel) else {
                    // Nothing can deliver it yet; look again in an hour and say why.
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
                        &now_text,
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                    parked += 1;
                    continue;
                };
                match notifier.send(&n).await {
                    Ok(()) => {
                        notifications::set_status(
                            &p.store, &n.id, "Pending", "Sent", true, None, None, &now_text,
                        )
                        .await
                        .map_err(|e| e.to_string())?;
                        sent += 1;
                    }
                    Err(e) => {
                        let next = certctl_core::timestamp::format(now + backoff(n.attempts + 1));
                        tracing::warn!(notification_id = %n.id, error = %e, "notification delivery failed");
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
                        .await
                        .map_err(|e| e.to_string())?;
                        failed += 1;
                    }
                }
            }
            Ok(if sent + failed + parked > 0 {
                format!("{sent} sent, {failed} failed, {parked} without notifier")
            } else {
                String::new()
            })
        })
    }
}
