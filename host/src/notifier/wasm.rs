//! A [`Notifier`] backed by a notifier plugin: each delivery is one `notify` call on the
//! plugin set loaded now (so a reload takes effect at the next delivery), with the
//! channel's configuration, the notification's id (stable across retries), its type as the
//! event (`ExpirationWarning`, …, the spelling the first-party plugins key on) and
//! structured details.
//!
//! The plugin runs in the runtime's sandbox under its deadline: a trap, timeout or
//! out-of-memory fails that delivery only (retried with backoff like any other failure).

use std::sync::Arc;

use certctl_core::runtime::Notification as PluginNotification;
use futures_util::future::BoxFuture;
use serde_json::{Map, Value, json};
use sqlx::Row as _;

use super::Notifier;
use crate::clock::Clock;
use crate::plugins::PluginRegistry;
use crate::store::notifications::Notification;
use crate::store::sql::Sql;
use crate::store::{Store, StoreError, certificates};

/// Delivers one channel through the plugin of the same id.
pub struct WasmNotifier {
    plugins: Arc<PluginRegistry>,
    plugin_id: String,
    config_json: String,
    store: Store,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for WasmNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmNotifier")
            .field("plugin_id", &self.plugin_id)
            .finish_non_exhaustive()
    }
}

/// The subject line of a notification.
pub fn subject(notification_type: &str, certificate_name: Option<&str>) -> String {
    let what = match notification_type {
        "ExpirationWarning" => "Certificate expiring",
        "RenewalSuccess" => "Certificate renewed",
        "RenewalFailure" => "Certificate renewal failed",
        "DeploymentSuccess" => "Certificate deployed",
        "DeploymentFailure" => "Certificate deployment failed",
        "PolicyViolation" => "Certificate policy violation",
        "Revocation" => "Certificate revoked",
        other => other,
    };
    match certificate_name {
        Some(name) => format!("[certctl] {what}: {name}"),
        None => format!("[certctl] {what}"),
    }
}

/// Threshold days from an expiry warning's dedup key (`expiry:<cert>:<not_after>:<days>`).
fn threshold_of(dedup_key: Option<&str>) -> Option<i64> {
    let key = dedup_key?;
    if !key.starts_with("expiry:") {
        return None;
    }
    key.rsplit(':').next()?.parse().ok()
}

async fn latest_serial(store: &Store, certificate_id: &str) -> Result<Option<String>, StoreError> {
    let mut sql = Sql::new(
        store.dialect(),
        "SELECT serial_number FROM certificate_versions WHERE certificate_id = ",
    );
    sql.bind_text(certificate_id)
        .push(" ORDER BY created_at DESC, id DESC LIMIT 1");
    Ok(match sql.query().fetch_optional(store.pool()).await? {
        Some(row) => row.try_get(0)?,
        None => None,
    })
}

/// The `details-json` object of a notification: what the row and its certificate say.
pub async fn details(
    store: &Store,
    now: time::OffsetDateTime,
    n: &Notification,
) -> Result<(Value, Option<String>), StoreError> {
    let mut d = Map::new();
    let mut name = None;
    if let Some(id) = n.certificate_id.as_deref() {
        d.insert("certificate_id".into(), json!(id));
        if let Some(cert) = certificates::get(store, id).await? {
            d.insert("certificate_name".into(), json!(cert.name));
            d.insert("common_name".into(), json!(cert.common_name));
            d.insert("status".into(), json!(cert.status));
            if let Some(expires_at) = cert.expires_at.as_deref() {
                d.insert("expires_at".into(), json!(expires_at));
                if let Ok(t) = certctl_core::timestamp::parse(expires_at) {
                    d.insert("days_remaining".into(), json!((t - now).whole_days()));
                }
            }
            name = Some(cert.name);
        }
        if let Some(serial) = latest_serial(store, id).await? {
            d.insert("serial".into(), json!(serial));
        }
    }
    if let Some(days) = threshold_of(n.dedup_key.as_deref()) {
        d.insert("threshold_days".into(), json!(days));
    }
    if matches!(
        n.notification_type.as_str(),
        "RenewalFailure" | "DeploymentFailure"
    ) && let Some((_, error)) = n.message.split_once(" failed: ")
    {
        d.insert("error".into(), json!(error));
    }
    Ok((Value::Object(d), name))
}

impl WasmNotifier {
    /// A notifier calling plugin `plugin_id` with `config` (validated at start).
    pub fn new(
        plugins: Arc<PluginRegistry>,
        plugin_id: impl Into<String>,
        config: &Value,
        store: Store,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            plugins,
            plugin_id: plugin_id.into(),
            config_json: config.to_string(),
            store,
            clock,
        }
    }

    /// Sends a message that is not a queued notification (the digest): one call, its
    /// outcome returned as is.
    pub async fn send_message(&self, message: PluginNotification) -> Result<(), String> {
        let plugin = self
            .plugins
            .current()
            .ok_or_else(|| "the plugin runtime or directory is unavailable".to_owned())?
            .notifier(&self.plugin_id)
            .map_err(|e| e.to_string())?;
        plugin
            .notify(PluginNotification {
                config_json: self.config_json.clone(),
                ..message
            })
            .await
            .map_err(|e| e.to_string())
    }
}

impl Notifier for WasmNotifier {
    fn send<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let (details, name) = details(&self.store, self.clock.now(), n)
                .await
                .map_err(|e| format!("reading the certificate: {e}"))?;
            self.send_message(PluginNotification {
                id: n.id.clone(),
                event: n.notification_type.clone(),
                subject: subject(&n.notification_type, name.as_deref()),
                body: n.message.clone(),
                recipient: n.recipient.clone().unwrap_or_default(),
                details_json: details.to_string(),
                config_json: String::new(),
            })
            .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_come_from_expiry_keys_only() {
        assert_eq!(
            threshold_of(Some("expiry:mc-1:2026-01-01T00:00:00Z:14")),
            Some(14)
        );
        assert_eq!(threshold_of(Some("renewal-success:job-1")), None);
        assert_eq!(threshold_of(None), None);
    }

    #[test]
    fn subjects_name_the_certificate() {
        assert_eq!(
            subject("RenewalFailure", Some("api")),
            "[certctl] Certificate renewal failed: api"
        );
        assert_eq!(subject("Revocation", None), "[certctl] Certificate revoked");
    }
}
