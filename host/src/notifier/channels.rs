//! Notification channels configured by environment variables, as in the reference: each
//! `CERTCTL_<NOTIFIER>_…` group enables one channel, delivered by the notifier plugin of the
//! same id (`email`, `webhook`, `slack`, `teams`, `pagerduty`, `opsgenie`).
//!
//! The operator configured the URL or SMTP server of a channel, so its authority
//! (`host:port`, or `host` for a URL without a port) is granted to that plugin implicitly,
//! on top of the grants file. At start every channel's configuration goes through the
//! plugin's `validate-config`; an invalid configuration or a missing plugin stops the
//! server with a message naming the variables.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use actix_web::http::Uri;
use certctl_core::runtime::{Grants, PluginGrant, PluginSet};
use clap::ArgAction;
use serde_json::{Map, Value, json};

use crate::store::notifications::Routing;

/// Notification settings of `certctl-server` (flattened into [`crate::config::Config`]).
#[derive(Debug, Clone, clap::Args)]
pub struct NotificationSettings {
    /// SMTP server; enables the `email` channel.
    #[arg(long, env = "CERTCTL_SMTP_HOST")]
    pub smtp_host: Option<String>,
    /// SMTP port.
    #[arg(long, env = "CERTCTL_SMTP_PORT", default_value_t = 587)]
    pub smtp_port: u16,
    /// SMTP user (optional).
    #[arg(long, env = "CERTCTL_SMTP_USERNAME")]
    pub smtp_username: Option<String>,
    /// SMTP password (optional).
    #[arg(long, env = "CERTCTL_SMTP_PASSWORD", hide_env_values = true)]
    pub smtp_password: Option<String>,
    /// From address of notification and digest e-mails (required with CERTCTL_SMTP_HOST).
    #[arg(long, env = "CERTCTL_SMTP_FROM_ADDRESS")]
    pub smtp_from_address: Option<String>,
    /// Upgrade SMTP connections with STARTTLS.
    #[arg(long, env = "CERTCTL_SMTP_USE_TLS", default_value_t = true, action = ArgAction::Set)]
    pub smtp_use_tls: bool,
    /// PEM file of CA certificates trusted for the SMTP server's STARTTLS certificate, on
    /// top of the public roots (a private relay); verification is never turned off.
    #[arg(long, env = "CERTCTL_SMTP_CA_BUNDLE")]
    pub smtp_ca_bundle: Option<PathBuf>,
    /// Webhook URL; enables the `webhook` channel.
    #[arg(long, env = "CERTCTL_WEBHOOK_URL")]
    pub webhook_url: Option<String>,
    /// HMAC-SHA256 key signing webhook bodies (`X-Certctl-Signature`).
    #[arg(long, env = "CERTCTL_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// Slack incoming-webhook URL; enables the `slack` channel.
    #[arg(long, env = "CERTCTL_SLACK_WEBHOOK_URL", hide_env_values = true)]
    pub slack_webhook_url: Option<String>,
    /// Slack channel override.
    #[arg(long, env = "CERTCTL_SLACK_CHANNEL")]
    pub slack_channel: Option<String>,
    /// Slack user name override.
    #[arg(long, env = "CERTCTL_SLACK_USERNAME")]
    pub slack_username: Option<String>,
    /// Microsoft Teams incoming-webhook URL; enables the `teams` channel.
    #[arg(long, env = "CERTCTL_TEAMS_WEBHOOK_URL", hide_env_values = true)]
    pub teams_webhook_url: Option<String>,
    /// PagerDuty Events API v2 routing key; enables the `pagerduty` channel.
    #[arg(long, env = "CERTCTL_PAGERDUTY_ROUTING_KEY", hide_env_values = true)]
    pub pagerduty_routing_key: Option<String>,
    /// PagerDuty severity (the plugin defaults to `warning`).
    #[arg(long, env = "CERTCTL_PAGERDUTY_SEVERITY")]
    pub pagerduty_severity: Option<String>,
    /// PagerDuty Events API URL (default `https://events.pagerduty.com/v2/enqueue`).
    #[arg(long, env = "CERTCTL_PAGERDUTY_EVENTS_URL")]
    pub pagerduty_events_url: Option<String>,
    /// OpsGenie GenieKey; enables the `opsgenie` channel.
    #[arg(long, env = "CERTCTL_OPSGENIE_API_KEY", hide_env_values = true)]
    pub opsgenie_api_key: Option<String>,
    /// OpsGenie priority (the plugin defaults to `P3`).
    #[arg(long, env = "CERTCTL_OPSGENIE_PRIORITY")]
    pub opsgenie_priority: Option<String>,
    /// OpsGenie Alert API URL (default `https://api.opsgenie.com/v2/alerts`; EU accounts use api.eu.opsgenie.com).
    #[arg(long, env = "CERTCTL_OPSGENIE_API_URL")]
    pub opsgenie_api_url: Option<String>,
    /// Channels per notification type: `ExpirationWarning=slack,email;RenewalFailure=pagerduty`.
    /// Unlisted types go to every configured channel.
    #[arg(long, env = "CERTCTL_NOTIFICATION_ROUTES")]
    pub notification_routes: Option<String>,
    /// Deliveries in flight at once per notification-processor tick.
    #[arg(long, env = "CERTCTL_NOTIFICATION_CONCURRENCY", default_value_t = 8)]
    pub notification_concurrency: usize,
    /// Send the digest e-mail on a schedule (needs the `email` channel).
    #[arg(long, env = "CERTCTL_DIGEST_ENABLED", default_value_t = false, action = ArgAction::Set)]
    pub digest_enabled: bool,
    /// How often the digest is sent (not at start).
    #[arg(long, env = "CERTCTL_DIGEST_INTERVAL", default_value = "24h", value_parser = humantime::parse_duration)]
    pub digest_interval: Duration,
    /// Comma-separated digest recipients; empty: the owners of certificates.
    #[arg(long, env = "CERTCTL_DIGEST_RECIPIENTS", default_value = "")]
    pub digest_recipients: String,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        Self {
            smtp_host: None,
            smtp_port: 587,
            smtp_username: None,
            smtp_password: None,
            smtp_from_address: None,
            smtp_use_tls: true,
            smtp_ca_bundle: None,
            webhook_url: None,
            webhook_secret: None,
            slack_webhook_url: None,
            slack_channel: None,
            slack_username: None,
            teams_webhook_url: None,
            pagerduty_routing_key: None,
            pagerduty_severity: None,
            pagerduty_events_url: None,
            opsgenie_api_key: None,
            opsgenie_priority: None,
            opsgenie_api_url: None,
            notification_routes: None,
            notification_concurrency: 8,
            digest_enabled: false,
            digest_interval: Duration::from_secs(24 * 3600),
            digest_recipients: String::new(),
        }
    }
}

/// One configured channel.
#[derive(Clone, PartialEq, Eq)]
pub struct Channel {
    /// Channel name, also the id of the plugin that delivers it.
    pub name: String,
    /// The environment variable that enabled it (for messages).
    pub enabled_by: &'static str,
    /// The plugin's configuration object.
    pub config: Value,
    /// Authorities granted to the plugin because the operator configured them.
    pub hosts: Vec<String>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config holds secrets (keys, passwords, webhook URLs).
        f.debug_struct("Channel")
            .field("name", &self.name)
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

/// Config keys never shown by the API (webhook URLs of Slack and Teams embed their token).
const SECRET_KEYS: &[&str] = &[
    "secret",
    "password",
    "routing_key",
    "api_key",
    "webhook_url",
    "headers",
];

impl Channel {
    /// The configuration with secrets replaced by `"***"` (for `GET /api/v1/notifiers`).
    pub fn redacted_config(&self) -> Value {
        let mut config = self.config.clone();
        if let Some(map) = config.as_object_mut() {
            for (key, value) in map.iter_mut() {
                if SECRET_KEYS.contains(&key.as_str()) {
                    *value = json!("***");
                }
            }
        }
        config
    }
}

/// Why the notification configuration is unusable (stops the server at start).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// A variable is missing or malformed.
    #[error("{variable}: {message}")]
    Setting {
        /// The variable.
        variable: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The channel's plugin is not installed or did not load.
    #[error(
        "notification channel `{channel}` ({enabled_by}) needs the notifier plugin `{channel}` in the plugin directory: {message}"
    )]
    MissingPlugin {
        /// The channel.
        channel: String,
        /// The variable that enabled it.
        enabled_by: &'static str,
        /// The runtime's reason.
        message: String,
    },
    /// The plugin refused the channel's configuration.
    #[error("notification channel `{channel}` ({enabled_by}…): invalid configuration: {message}")]
    InvalidConfig {
        /// The channel.
        channel: String,
        /// The variable that enabled it.
        enabled_by: &'static str,
        /// The plugin's message.
        message: String,
    },
}

/// The outbound grant for a URL the operator configured: `host:port` when the URL names a
/// port, else `host`; prefixed `http://` for a plain-http URL (the guard allows http only
/// when the grant says so).
fn url_authority(variable: &'static str, url: &str) -> Result<String, ChannelError> {
    let bad = |message: String| ChannelError::Setting { variable, message };
    let uri: Uri = url.parse().map_err(|e| bad(format!("not a URL ({e})")))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(bad("must be an http:// or https:// URL".into()));
    }
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("has no host".into()))?;
    let prefix = if uri.scheme_str() == Some("http") {
        "http://"
    } else {
        ""
    };
    Ok(match uri.port_u16() {
        Some(port) => format!("{prefix}{host}:{port}"),
        None => format!("{prefix}{host}"),
    })
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn put(config: &mut Map<String, Value>, key: &str, value: &Option<String>) {
    if let Some(v) = non_empty(value) {
        config.insert(key.into(), json!(v));
    }
}

impl NotificationSettings {
    /// The channels the environment enables, in a fixed order.
    pub fn channels(&self) -> Result<Vec<Channel>, ChannelError> {
        let mut out = Vec::new();
        if let Some(bundle) = &self.smtp_ca_bundle {
            // Read now so a wrong path stops the server instead of every later handshake.
            certctl_core::runtime::read_ca_bundle(bundle).map_err(|e| ChannelError::Setting {
                variable: "CERTCTL_SMTP_CA_BUNDLE",
                message: match e {
                    certctl_core::runtime::RuntimeError::Setup(message) => message,
                    other => other.to_string(),
                },
            })?;
        }
        if let Some(host) = non_empty(&self.smtp_host) {
            let from = non_empty(&self.smtp_from_address).ok_or(ChannelError::Setting {
                variable: "CERTCTL_SMTP_FROM_ADDRESS",
                message: "is required when CERTCTL_SMTP_HOST is set".into(),
            })?;
            let mut config = Map::new();
            config.insert("host".into(), json!(host));
            config.insert("port".into(), json!(self.smtp_port));
            config.insert("starttls".into(), json!(self.smtp_use_tls));
            config.insert("from".into(), json!(from));
            put(&mut config, "username", &self.smtp_username);
            put(&mut config, "password", &self.smtp_password);
            out.push(Channel {
                name: "email".into(),
                enabled_by: "CERTCTL_SMTP_HOST",
                config: Value::Object(config),
                hosts: vec![format!("{host}:{}", self.smtp_port)],
            });
        }
        if let Some(url) = non_empty(&self.webhook_url) {
            let mut config = Map::new();
            config.insert("url".into(), json!(url));
            put(&mut config, "secret", &self.webhook_secret);
            out.push(Channel {
                name: "webhook".into(),
                enabled_by: "CERTCTL_WEBHOOK_URL",
                config: Value::Object(config),
                hosts: vec![url_authority("CERTCTL_WEBHOOK_URL", url)?],
            });
        }
        if let Some(url) = non_empty(&self.slack_webhook_url) {
            let mut config = Map::new();
            config.insert("webhook_url".into(), json!(url));
            put(&mut config, "channel", &self.slack_channel);
            put(&mut config, "username", &self.slack_username);
            out.push(Channel {
                name: "slack".into(),
                enabled_by: "CERTCTL_SLACK_WEBHOOK_URL",
                config: Value::Object(config),
                hosts: vec![url_authority("CERTCTL_SLACK_WEBHOOK_URL", url)?],
            });
        }
        if let Some(url) = non_empty(&self.teams_webhook_url) {
            out.push(Channel {
                name: "teams".into(),
                enabled_by: "CERTCTL_TEAMS_WEBHOOK_URL",
                config: json!({"webhook_url": url}),
                hosts: vec![url_authority("CERTCTL_TEAMS_WEBHOOK_URL", url)?],
            });
        }
        if let Some(key) = non_empty(&self.pagerduty_routing_key) {
            let mut config = Map::new();
            config.insert("routing_key".into(), json!(key));
            put(&mut config, "severity", &self.pagerduty_severity);
            put(&mut config, "events_url", &self.pagerduty_events_url);
            let host = match non_empty(&self.pagerduty_events_url) {
                Some(url) => url_authority("CERTCTL_PAGERDUTY_EVENTS_URL", url)?,
                None => "events.pagerduty.com".into(),
            };
            out.push(Channel {
                name: "pagerduty".into(),
                enabled_by: "CERTCTL_PAGERDUTY_ROUTING_KEY",
                config: Value::Object(config),
                hosts: vec![host],
            });
        }
        if let Some(key) = non_empty(&self.opsgenie_api_key) {
            let mut config = Map::new();
            config.insert("api_key".into(), json!(key));
            put(&mut config, "priority", &self.opsgenie_priority);
            put(&mut config, "api_url", &self.opsgenie_api_url);
            let host = match non_empty(&self.opsgenie_api_url) {
                Some(url) => url_authority("CERTCTL_OPSGENIE_API_URL", url)?,
                None => "api.opsgenie.com".into(),
            };
            out.push(Channel {
                name: "opsgenie".into(),
                enabled_by: "CERTCTL_OPSGENIE_API_KEY",
                config: Value::Object(config),
                hosts: vec![host],
            });
        }
        Ok(out)
    }

    /// Channels per type from `CERTCTL_NOTIFICATION_ROUTES`; names must be known types
    /// and configured channels.
    pub fn routing(&self, channels: &[Channel]) -> Result<Routing, ChannelError> {
        let variable = "CERTCTL_NOTIFICATION_ROUTES";
        let bad = |message: String| ChannelError::Setting { variable, message };
        let names: Vec<String> = channels.iter().map(|c| c.name.clone()).collect();
        let mut by_type = BTreeMap::new();
        for entry in non_empty(&self.notification_routes)
            .unwrap_or_default()
            .split(';')
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            let (kind, list) = entry
                .split_once('=')
                .ok_or_else(|| bad(format!("`{entry}`: expected Type=channel,channel")))?;
            let kind = kind.trim();
            if !crate::domain::notification::TYPES.contains(&kind) {
                return Err(bad(format!(
                    "unknown notification type `{kind}` (one of {})",
                    crate::domain::notification::TYPES.join(", ")
                )));
            }
            let mut routed = Vec::new();
            for channel in list.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                if !names.iter().any(|n| n == channel) {
                    return Err(bad(format!(
                        "{kind}: channel `{channel}` is not configured (configured: {})",
                        if names.is_empty() {
                            "none".to_owned()
                        } else {
                            names.join(", ")
                        }
                    )));
                }
                routed.push(channel.to_owned());
            }
            by_type.insert(kind.to_owned(), routed);
        }
        Ok(Routing {
            channels: names,
            by_type,
        })
    }

    /// Comma-separated digest recipients, trimmed.
    pub fn digest_recipients(&self) -> Vec<String> {
        self.digest_recipients
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// The hosts of every channel, as grants to the plugin of the same id.
pub fn implicit_grants(channels: &[Channel]) -> Grants {
    let mut grants = Grants::default();
    for channel in channels {
        grants.plugins.insert(
            channel.name.clone(),
            PluginGrant {
                hosts: channel.hosts.clone(),
                ..PluginGrant::default()
            },
        );
    }
    grants
}

/// Adds `extra` to the operator's grants (hosts appended, nothing else touched).
pub fn merge_grants(mut grants: Grants, extra: &Grants) -> Grants {
    for (id, grant) in &extra.plugins {
        let entry = grants.plugins.entry(id.clone()).or_default();
        for host in &grant.hosts {
            if !entry.hosts.contains(host) {
                entry.hosts.push(host.clone());
            }
        }
    }
    grants
}

/// Checks that every channel has its plugin and that the plugin accepts the configuration.
pub async fn validate(channels: &[Channel], set: Option<&PluginSet>) -> Result<(), ChannelError> {
    for channel in channels {
        let plugin = match set {
            Some(set) => set.notifier(&channel.name).map_err(|e| e.to_string()),
            None => Err("the plugin runtime or directory is unavailable".to_owned()),
        }
        .map_err(|message| ChannelError::MissingPlugin {
            channel: channel.name.clone(),
            enabled_by: channel.enabled_by,
            message,
        })?;
        plugin
            .validate_config(channel.config.to_string())
            .await
            .map_err(|e| ChannelError::InvalidConfig {
                channel: channel.name.clone(),
                enabled_by: channel.enabled_by,
                message: e.to_string(),
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> NotificationSettings {
        NotificationSettings::default()
    }

    #[test]
    fn nothing_configured_means_no_channels() {
        let s = settings();
        assert!(s.channels().unwrap().is_empty());
        let routing = s.routing(&[]).unwrap();
        assert_eq!(
            routing.resolve("ExpirationWarning", &[], "email"),
            ["email"]
        );
    }

    #[test]
    fn env_groups_become_channels_with_implicit_hosts() {
        let s = NotificationSettings {
            smtp_host: Some("smtp.example.com".into()),
            smtp_from_address: Some("certctl@example.com".into()),
            smtp_password: Some("pw".into()),
            webhook_url: Some("http://127.0.0.1:9000/hook".into()),
            webhook_secret: Some("s3cret".into()),
            slack_webhook_url: Some("https://hooks.slack.com/services/T/B/X".into()),
            slack_channel: Some("#certs".into()),
            pagerduty_routing_key: Some("rk".into()),
            ..settings()
        };
        let channels = s.channels().unwrap();
        let names: Vec<_> = channels.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["email", "webhook", "slack", "pagerduty"]);
        assert_eq!(channels[0].hosts, ["smtp.example.com:587"]);
        assert_eq!(
            channels[0].config,
            json!({"host": "smtp.example.com", "port": 587, "starttls": true, "from": "certctl@example.com", "password": "pw"})
        );
        assert_eq!(
            channels[1].hosts,
            ["http://127.0.0.1:9000"],
            "a plain-http URL is granted plain http"
        );
        assert_eq!(
            channels[1].config,
            json!({"url": "http://127.0.0.1:9000/hook", "secret": "s3cret"})
        );
        assert_eq!(channels[1].redacted_config()["secret"], "***");
        assert_eq!(channels[2].hosts, ["hooks.slack.com"]);
        assert_eq!(channels[3].hosts, ["events.pagerduty.com"]);
        let grants = merge_grants(
            Grants::default().with_plugin(
                "webhook",
                PluginGrant {
                    hosts: vec!["other.example".into()],
                    ..PluginGrant::default()
                },
            ),
            &implicit_grants(&channels),
        );
        assert_eq!(
            grants.plugins["webhook"].hosts,
            ["other.example", "http://127.0.0.1:9000"]
        );
        assert!(!format!("{:?}", channels[1]).contains("s3cret"));
    }

    #[test]
    fn bad_settings_name_the_variable() {
        let s = NotificationSettings {
            smtp_host: Some("smtp.example.com".into()),
            ..settings()
        };
        assert!(
            s.channels()
                .unwrap_err()
                .to_string()
                .starts_with("CERTCTL_SMTP_FROM_ADDRESS: is required")
        );
        let s = NotificationSettings {
            webhook_url: Some("ftp://x".into()),
            ..settings()
        };
        assert!(
            s.channels()
                .unwrap_err()
                .to_string()
                .starts_with("CERTCTL_WEBHOOK_URL: ")
        );
    }

    #[test]
    fn routes_by_type_and_policy() {
        let s = NotificationSettings {
            webhook_url: Some("http://127.0.0.1:9000/hook".into()),
            teams_webhook_url: Some("https://example.webhook.office.com/x".into()),
            notification_routes: Some(
                "RenewalFailure=teams ; ExpirationWarning=webhook,teams".into(),
            ),
            ..settings()
        };
        let routing = s.routing(&s.channels().unwrap()).unwrap();
        assert_eq!(routing.resolve("RenewalFailure", &[], "email"), ["teams"]);
        assert_eq!(
            routing.resolve("ExpirationWarning", &[], "email"),
            ["webhook", "teams"]
        );
        assert_eq!(
            routing.resolve("Revocation", &[], "email"),
            ["webhook", "teams"]
        );
        assert_eq!(
            routing.resolve("Revocation", &["slack".to_owned()], "email"),
            ["slack"]
        );
        let bad = NotificationSettings {
            notification_routes: Some("RenewalFailure=pagerduty".into()),
            ..s.clone()
        };
        assert!(
            bad.routing(&bad.channels().unwrap())
                .unwrap_err()
                .to_string()
                .contains("channel `pagerduty` is not configured")
        );
        let bad = NotificationSettings {
            notification_routes: Some("Expiry=webhook".into()),
            ..s
        };
        assert!(
            bad.routing(&bad.channels().unwrap())
                .unwrap_err()
                .to_string()
                .contains("unknown notification type `Expiry`")
        );
    }
}
