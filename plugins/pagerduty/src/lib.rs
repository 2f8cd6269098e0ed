//! PagerDuty Events API v2 notifier.
//!
//! POSTs to `events_url` (default `https://events.pagerduty.com/v2/enqueue`) the
//! trigger event PagerDuty documents
//! (<https://developer.pagerduty.com/docs/events-api-v2/trigger-events/>):
//!
//! ```json
//! {"routing_key": "…", "event_action": "trigger", "dedup_key": "<notification id>",
//!  "payload": {"summary": "<subject>", "source": "certctl", "severity": "warning",
//!              "custom_details": {"event": "…", "message": "…", "recipient": "…", …details}}}
//! ```
//!
//! `summary` is cut to PagerDuty's 1024 characters; the notification id as
//! `dedup_key` makes a retried delivery update the same alert instead of opening a
//! second one. PagerDuty answers 202; 400 (invalid event) is `rejected`, 429
//! (throttled) and 5xx are `unavailable`.

use certctl_notifier_sdk::{
    ConnectorError, Guest, Notification, Url, check_status, details, export_notifier,
    invalid_config, parse_config, post_json, require_url, truncate,
};
use serde::Deserialize;

const DEFAULT_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";
/// PagerDuty's limit on `payload.summary`.
const MAX_SUMMARY: usize = 1024;

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Severity {
    Critical,
    Error,
    #[default]
    Warning,
    Info,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Info => "info",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    routing_key: String,
    #[serde(default)]
    severity: Severity,
    #[serde(default)]
    events_url: Option<String>,
}

struct Config {
    routing_key: String,
    severity: Severity,
    url: Url,
}

impl Config {
    fn parse(json: &str) -> Result<Self, ConnectorError> {
        let raw: RawConfig = parse_config(json)?;
        let key = raw.routing_key.trim();
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(invalid_config(
                "routing_key must be a non-empty key without spaces",
            ));
        }
        let url = require_url(
            "events_url",
            raw.events_url.as_deref().unwrap_or(DEFAULT_EVENTS_URL),
        )?;
        Ok(Self {
            routing_key: key.to_string(),
            severity: raw.severity,
            url,
        })
    }
}

struct PagerDuty;

impl Guest for PagerDuty {
    fn validate_config(config_json: String) -> Result<(), ConnectorError> {
        Config::parse(&config_json).map(drop)
    }

    fn notify(notification: Notification) -> Result<(), ConnectorError> {
        let config = Config::parse(&notification.config_json)?;
        let mut custom = details(&notification);
        custom.insert("event".into(), notification.event.clone().into());
        custom.insert("message".into(), notification.body.clone().into());
        if !notification.recipient.is_empty() {
            custom.insert("recipient".into(), notification.recipient.clone().into());
        }
        let summary = if notification.subject.trim().is_empty() {
            notification.event.clone()
        } else {
            notification.subject.clone()
        };
        let event = serde_json::json!({
            "routing_key": config.routing_key,
            "event_action": "trigger",
            "dedup_key": notification.id,
            "payload": {
                "summary": truncate(&summary, MAX_SUMMARY),
                "source": "certctl",
                "severity": config.severity.as_str(),
                "custom_details": custom,
            },
        });
        let body = event.to_string().into_bytes();
        let response = post_json(&config.url, &[], &body)?;
        check_status("PagerDuty", &response)
    }
}

export_notifier!(PagerDuty);
