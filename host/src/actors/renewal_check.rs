//! Renewal check loop: for every issued certificate, sends one expiry warning per crossed
//! alert threshold (never repeated), moves Active → Expiring → Expired, and opens a renewal
//! job inside the renewal window unless one is already open.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use super::scheduler::LoopTask;
use crate::domain::audit::Actor;
use crate::domain::renewal::{self, DEFAULT_RENEWAL_WINDOW_DAYS, DEFAULT_THRESHOLDS, ExpiryStatus};
use crate::domain::renewal_policy;
use crate::pipeline::{Pipeline, PipelineError};
use crate::store::notifications::{self, NewNotification};
use crate::store::{StoreError, certificates, jobs, records};

/// The loop task.
#[derive(Debug)]
pub struct RenewalCheck(pub Arc<Pipeline>);

/// Thresholds, window and auto-renew of a renewal policy (defaults when none).
#[derive(Debug, Clone)]
struct PolicyView {
    thresholds: Vec<i64>,
    window_days: i64,
    auto_renew: bool,
}

impl Default for PolicyView {
    fn default() -> Self {
        Self {
            thresholds: DEFAULT_THRESHOLDS.to_vec(),
            window_days: DEFAULT_RENEWAL_WINDOW_DAYS,
            auto_renew: true,
        }
    }
}

impl RenewalCheck {
    async fn policy(
        &self,
        cache: &mut HashMap<String, PolicyView>,
        id: Option<&str>,
    ) -> Result<PolicyView, StoreError> {
        let Some(id) = id else {
            return Ok(PolicyView::default());
        };
        if let Some(p) = cache.get(id) {
            return Ok(p.clone());
        }
        let view = match records::get(&self.0.store, &renewal_policy::SPEC, id).await {
            Ok(r) => PolicyView {
                thresholds: r
                    .get("alert_thresholds_days")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_i64).collect())
                    .unwrap_or_else(|| DEFAULT_THRESHOLDS.to_vec()),
                window_days: r
                    .get("renewal_window_days")
                    .and_then(Value::as_i64)
                    .unwrap_or(DEFAULT_RENEWAL_WINDOW_DAYS),
                auto_renew: r.get("auto_renew").and_then(Value::as_bool).unwrap_or(true),
            },
            Err(StoreError::NotFound { .. }) => PolicyView::default(),
            Err(e) => return Err(e),
        };
        cache.insert(id.to_owned(), view.clone());
        Ok(view)
    }

    /// One pass over all issued certificates; returns (warnings sent, status changes, renewals opened).
    pub async fn run_once(&self) -> Result<(usize, usize, usize), String> {
        let p = &self.0;
        let now = p.clock.now();
        let now_text = p.clock.now_text();
        let certs = certificates::with_status(
            &p.store,
            &[
                "Active",
                "Expiring",
                "Expired",
                "RenewalInProgress",
                "Failed",
            ],
        )
        .await
        .map_err(|e| e.to_string())?;
        let mut cache = HashMap::new();
        let (mut warned, mut changed, mut renewals) = (0, 0, 0);
        for cert in certs {
            let Some(expires_at) = cert.expires_at.as_deref() else {
                continue;
            };
            let Ok(not_after) = certctl_core::timestamp::parse(expires_at) else {
                tracing::warn!(certificate_id = %cert.id, %expires_at, "unparseable expiry; skipped");
                continue;
            };
            let policy = self
                .policy(&mut cache, cert.renewal_policy_id.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            let a = renewal::assess(not_after, now, &policy.thresholds, policy.window_days);
            for threshold in &a.crossed {
                let days_left = (not_after - now).whole_days();
                let n = NewNotification {
                    notification_type: "ExpirationWarning",
                    certificate_id: Some(&cert.id),
                    channel: "email",
                    recipient: None,
                    message: if *threshold == 0 {
                        format!(
                            "Certificate {} ({}) expired at {expires_at}",
                            cert.name, cert.common_name
                        )
                    } else {
                        format!(
                            "Certificate {} ({}) expires at {expires_at} ({days_left} days left; {threshold}-day threshold)",
                            cert.name, cert.common_name
                        )
                    },
                    dedup_key: Some(renewal::warning_dedup_key(&cert.id, expires_at, *threshold)),
                };
                if notifications::enqueue(&p.store, &n, &now_text)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    warned += 1;
                }
            }
            let target = match (a.status, cert.status.as_str()) {
                (ExpiryStatus::Expired, s) if s != "Expired" => Some("Expired"),
                (ExpiryStatus::Expiring, "Active") => Some("Expiring"),
                _ => None,
            };
            if let Some(to) = target
                && certificates::set_status(
                    &p.store,
                    &cert.id,
                    &cert.status,
                    to,
                    &now_text,
                    &Actor::system(),
                    json!({"expires_at": expires_at}),
                )
                .await
                .map_err(|e| e.to_string())?
            {
                changed += 1;
            }
            if a.renewal_due && policy.auto_renew && cert.status != "RenewalInProgress" {
                let open = jobs::open_for_certificate(&p.store, &cert.id, &["Issuance", "Renewal"])
                    .await
                    .map_err(|e| e.to_string())?;
                if open.is_none() {
                    match p
                        .request_renewal(&cert.id, &Actor::system(), "threshold")
                        .await
                    {
                        Ok(job) => {
                            tracing::info!(certificate_id = %cert.id, job_id = %job.id, "renewal job opened");
                            renewals += 1;
                        }
                        Err(PipelineError::Conflict(msg)) => {
                            tracing::debug!(certificate_id = %cert.id, %msg, "no renewal")
                        }
                        Err(e) => return Err(e.to_string()),
                    }
                }
            }
        }
        Ok((warned, changed, renewals))
    }
}

impl LoopTask for RenewalCheck {
    fn name(&self) -> &'static str {
        "renewal_check"
    }

    fn tick(self: Arc<Self>) -> BoxFuture<'static, Result<String, String>> {
        Box::pin(async move {
            let (w, c, r) = self.run_once().await?;
            Ok(if w + c + r > 0 {
                format!("{w} warnings, {c} status changes, {r} renewals")
            } else {
                String::new()
            })
        })
    }
}
