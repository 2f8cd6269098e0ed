//! Notification retry loop: failed notifications go back to the queue once their backoff
//! passed; after the fifth failed attempt they are dead-lettered, keeping the last error.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::scheduler::LoopTask;
use crate::pipeline::Pipeline;
use crate::store::notifications;

/// Attempts after which a notification is dead-lettered.
pub const MAX_ATTEMPTS: i64 = 5;

/// The loop task.
#[derive(Debug)]
pub struct NotificationRetry(pub Arc<Pipeline>);

impl LoopTask for NotificationRetry {
    fn name(&self) -> &'static str {
        "notification_retry"
    }

    fn tick(self: Arc<Self>) -> BoxFuture<'static, Result<String, String>> {
        Box::pin(async move {
            let p = &self.0;
            let now = p.clock.now_text();
            let failed = notifications::due(&p.store, "Failed", &now, 500)
                .await
                .map_err(|e| e.to_string())?;
            let (mut requeued, mut dead) = (0, 0);
            for n in failed {
                if n.attempts >= MAX_ATTEMPTS {
                    // The receiver's own error is what an operator needs; keep it.
                    let why = match n.last_error.as_deref() {
                        Some(cause) if !cause.is_empty() => {
                            format!("gave up after {} attempts; last error: {cause}", n.attempts)
                        }
                        _ => format!("gave up after {} attempts", n.attempts),
                    };
                    notifications::set_status(
                        &p.store,
                        &n.id,
                        "Failed",
                        "DeadLetter",
                        false,
                        Some(&why),
                        None,
                        &now,
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                    dead += 1;
                } else {
                    notifications::set_status(
                        &p.store, &n.id, "Failed", "Pending", false, None, None, &now,
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                    requeued += 1;
                }
            }
            Ok(if requeued + dead > 0 {
                format!("{requeued} requeued, {dead} dead-lettered")
            } else {
                String::new()
            })
        })
    }
}
