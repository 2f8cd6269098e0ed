//! Calling notifier plugins (world `notifier`).

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use super::bindings::{notifier, types};
use super::error::RuntimeError;
use super::host::HostState;
use super::{Inner, LoadedPlugin, LoadedWorld};

/// A message for a notifier plugin.
#[derive(Debug, Clone, Default)]
pub struct Notification {
    /// The notification id, stable across retries (receivers deduplicate by it:
    /// PagerDuty `dedup_key`, OpsGenie `alias`, the webhook's `X-Certctl-Delivery`).
    pub id: String,
    /// Notification type as the server's API spells it (`ExpirationWarning`,
    /// `DeploymentFailure`, …; `digest` for the digest e-mail).
    pub event: String,
    /// Subject line.
    pub subject: String,
    /// Body text.
    pub body: String,
    /// Channel or address, in the notifier's terms (may be empty).
    pub recipient: String,
    /// Structured event data, a JSON object (`{}` or empty when there is none):
    /// `certificate_id`, `certificate_name`, `common_name`, `serial`, `expires_at`,
    /// `days_remaining`, `threshold_days`, `status`, `error`, `html` (body is HTML),
    /// `text` (plain-text alternative of an HTML body), each optional.
    pub details_json: String,
    /// The notifier's configuration object, JSON.
    pub config_json: String,
}

/// A loaded notifier plugin. Cheap to clone; each call gets a fresh instance.
#[derive(Clone)]
pub struct NotifierPlugin {
    runtime: Arc<Inner>,
    plugin: Arc<LoadedPlugin>,
}

impl fmt::Debug for NotifierPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotifierPlugin")
            .field("id", &self.plugin.id)
            .finish()
    }
}

impl NotifierPlugin {
    pub(crate) fn new(runtime: Arc<Inner>, plugin: Arc<LoadedPlugin>) -> Self {
        Self { runtime, plugin }
    }

    /// The plugin id.
    pub fn id(&self) -> &str {
        &self.plugin.id
    }

    fn pre(&self) -> notifier::NotifierPre<HostState> {
        match &self.plugin.world {
            LoadedWorld::Notifier(pre) => pre.clone(),
            _ => unreachable!("a NotifierPlugin always wraps a notifier component"),
        }
    }

    /// Checks a notifier configuration (WIT `validate-config`).
    pub fn validate_config(
        &self,
        config_json: impl Into<String>,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send + 'static {
        let pre = self.pre();
        let config_json = config_json.into();
        self.runtime.call(self.plugin.clone(), move |store| {
            Box::pin(async move {
                let world = pre.instantiate_async(&mut *store).await?;
                world.call_validate_config(&mut *store, &config_json).await
            })
        })
    }

    /// Delivers one notification (WIT `notify`).
    pub fn notify(
        &self,
        notification: Notification,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send + 'static {
        let pre = self.pre();
        let details_json = if notification.details_json.trim().is_empty() {
            "{}".to_string()
        } else {
            notification.details_json
        };
        let notification = types::Notification {
            id: notification.id,
            event: notification.event,
            subject: notification.subject,
            body: notification.body,
            recipient: notification.recipient,
            details_json,
            config_json: notification.config_json,
        };
        self.runtime.call(self.plugin.clone(), move |store| {
            Box::pin(async move {
                let world = pre.instantiate_async(&mut *store).await?;
                world.call_notify(&mut *store, &notification).await
            })
        })
    }
}
