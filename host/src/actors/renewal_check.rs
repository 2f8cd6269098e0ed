//! Renewal check loop: for every issued certificate, sends one expiry warning per crossed
//! alert threshold (never repeated), moves Active → Expiring → Expired, and opens a renewal
//! job when renewal is due unless one is already open.
//!
//! When renewal is due: if the certificate's issuer suggests a renewal window (ACME ARI,
//! RFC 9773), at a point inside that window; otherwise (no renewal information, the CA does
//! not know the certificate, or it failed) when the policy's renewal window is reached. The
//! job's audit event records which (`trigger`: `ari` or `threshold`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::issuer_actor::GetRenewalWindow;
use super::issuer_registry::Lookup;
use super::scheduler::LoopTask;
use crate::domain::audit::Actor;
use crate::domain::renewal::{self, DEFAULT_RENEWAL_WINDOW_DAYS, DEFAULT_THRESHOLDS, ExpiryStatus};
use crate::domain::renewal_policy;
use crate::issuer::RenewalWindow;
use crate::pipeline::{Pipeline, PipelineError};
use crate::store::certificates::Certificate;
use crate::store::notifications::{self, NewNotification};
use crate::store::{StoreError, certificates, jobs, records};

/// How long one renewal-window question to an issuer may take before the check falls back
/// to the thresholds for that certificate.
const ARI_TIMEOUT: Duration = Duration::from_secs(30);

/// The loop task.
#[derive(Debug)]
pub struct RenewalCheck {
    pipeline: Arc<Pipeline>,
    /// Renewal windows by certificate id, kept until the CA's `Retry-After` so the CA is not
    /// asked on every pass.
    windows: Mutex<HashMap<String, CachedWindow>>,
}

/// What an issuer last said about a certificate's renewal window.
#[derive(Debug, Clone)]
struct CachedWindow {
    /// Which issuer and which certificate version it was about.
    issuer_id: String,
    expires_at: String,
    fetched_at: OffsetDateTime,
    next_poll: OffsetDateTime,
    window: Option<RenewalWindow>,
}

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
    /// The check for a pipeline.
    pub fn new(pipeline: Arc<Pipeline>) -> Self {
        Self {
            pipeline,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// The issuer's suggested renewal window for the certificate's current version, from
    /// the cache while it is fresh. `None`: fall back to the thresholds.
    async fn renewal_window(
        &self,
        cert: &Certificate,
        expires_at: &str,
        now: OffsetDateTime,
    ) -> Option<RenewalWindow> {
        let issuer_id = cert.issuer_id.as_deref()?;
        if let Ok(cache) = self.windows.lock()
            && let Some(c) = cache.get(&cert.id)
            && c.issuer_id == issuer_id
            && c.expires_at == expires_at
            && c.fetched_at <= now
            && now < c.next_poll
        {
            return c.window.clone();
        }
        let p = &self.pipeline;
        let actor = p.registry.send(Lookup(issuer_id.to_owned())).await.ok()??;
        let (window, next_poll) = match p.current_leaf_der(&cert.id).await {
            None => (None, renewal::ari_next_poll(now, None)),
            Some(cert_der) => {
                let asked =
                    tokio::time::timeout(ARI_TIMEOUT, actor.send(GetRenewalWindow { cert_der }))
                        .await;
                match asked {
                    Ok(Ok(Ok(Some(w)))) => {
                        let next = renewal::ari_next_poll(now, w.retry_after);
                        (Some(w), next)
                    }
                    Ok(Ok(Ok(None))) => (None, renewal::ari_next_poll(now, None)),
                    failed => {
                        let error = match failed {
                            Ok(Ok(Err(e))) => e.to_string(),
                            Ok(Err(e)) => format!("issuer actor: {e}"),
                            _ => format!("no answer within {ARI_TIMEOUT:?}"),
                        };
                        tracing::warn!(certificate_id = %cert.id, %issuer_id, %error, "renewal window unavailable; using the policy thresholds");
                        (
                            None,
                            renewal::ari_next_poll(now, Some(Duration::from_secs(3600))),
                        )
                    }
                }
            }
        };
        if let Ok(mut cache) = self.windows.lock() {
            cache.insert(
                cert.id.clone(),
                CachedWindow {
                    issuer_id: issuer_id.to_owned(),
                    expires_at: expires_at.to_owned(),
                    fetched_at: now,
                    next_poll,
                    window: window.clone(),
                },
            );
        }
        window
    }

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
        let view = match records::get(&self.pipeline.store, &renewal_policy::SPEC, id).await {
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
        let p = &self.pipeline;
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
        if let Ok(mut windows) = self.windows.lock() {
            // Forget certificates that left the checked statuses (archived, revoked, deleted).
            let checked: std::collections::HashSet<&str> =
                certs.iter().map(|c| c.id.as_str()).collect();
            windows.retain(|id, _| checked.contains(id.as_str()));
        }
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
            if !policy.auto_renew || cert.status == "RenewalInProgress" {
                continue;
            }
            // An expired certificate is renewed whatever the CA suggests.
            let window = if a.status == ExpiryStatus::Expired {
                None
            } else {
                self.renewal_window(&cert, expires_at, now).await
            };
            let (due, details) = match &window {
                Some(w) => {
                    let at = renewal::ari_renewal_time(w.start, w.end, &w.certificate_id);
                    let text = certctl_core::timestamp::format;
                    (
                        now >= at,
                        json!({
                            "trigger": "ari",
                            "ari_certificate_id": w.certificate_id,
                            "window_start": text(w.start),
                            "window_end": text(w.end),
                            "renew_at": text(at),
                        }),
                    )
                }
                None => (a.renewal_due, json!({"trigger": "threshold"})),
            };
            if due {
                let open = jobs::open_for_certificate(&p.store, &cert.id, &["Issuance", "Renewal"])
                    .await
                    .map_err(|e| e.to_string())?;
                if open.is_none() {
                    match p
                        .request_renewal_with(&cert.id, &Actor::system(), details)
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
