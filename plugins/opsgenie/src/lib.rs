//! OpsGenie Alert API v2 notifier.
//!
//! POSTs to `api_url` (default `https://api.opsgenie.com/v2/alerts`) with
//! `Authorization: GenieKey <api_key>` the create-alert request OpsGenie documents
//! (<https://docs.opsgenie.com/docs/alert-api#create-alert>):
//!
//! ```json
//! {"message": "<subject, ≤130>", "alias": "<notification id>",
//!  "description": "<message, ≤15000>", "priority": "P3", "source": "certctl",
//!  "details": {"event": "…", "certificate_id": "…", …}}
//! ```
//!
//! `details` is a string map (numbers and booleans are written as text); the
//! notification id as `alias` makes OpsGenie deduplicate a retried delivery. OpsGenie
//! answers 202; 401/403/422 are `rejected`, 429 and 5xx `unavailable`.

use certctl_notifier_sdk::{
    ConnectorError, Guest, Notification, Url, check_status, details, export_notifier,
    invalid_config, parse_config, post_json, require_url, truncate, value_text,
};
use serde::Deserialize;

const DEFAULT_API_URL: &str = "https://api.opsgenie.com/v2/alerts";
/// OpsGenie's limits on `message`, `alias` and `description`.
const MAX_MESSAGE: usize = 130;
const MAX_ALIAS: usize = 512;
const MAX_DESCRIPTION: usize = 15_000;
/// OpsGenie's limit on each `details` value (keys are short here).
const MAX_DETAIL: usize = 8_000;

#[derive(Deserialize, Default, Clone, Copy)]
enum Priority {
    P1,
    P2,
    #[default]
    P3,
    P4,
    P5,
}

impl Priority {
    fn as_str(self) -> &'static str {
        match self {
            Self::P1 => "P1",
            Self::P2 => "P2",
            Self::P3 => "P3",
            Self::P4 => "P4",
            Self::P5 => "P5",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    api_key: String,
    #[serde(default)]
    priority: Priority,
    #[serde(default)]
    api_url: Option<String>,
}

struct Config {
    api_key: String,
    priority: Priority,
    url: Url,
}

impl Config {
    fn parse(json: &str) -> Result<Self, ConnectorError> {
        let raw: RawConfig = parse_config(json)?;
        let key = raw.api_key.trim();
        if key.is_empty() || key.contains(char::is_whitespace) || key.contains(char::is_control) {
            return Err(invalid_config(
                "api_key must be a non-empty key without spaces",
            ));
        }
        let url = require_url("api_url", raw.api_url.as_deref().unwrap_or(DEFAULT_API_URL))?;
        Ok(Self {
            api_key: key.to_string(),
            priority: raw.priority,
            url,
        })
    }
}

struct OpsGenie;

impl Guest for OpsGenie {
    fn validate_config(config_json: String) -> Result<(), ConnectorError> {
        Config::parse(&config_json).map(drop)
    }

    fn notify(notification: Notification) -> Result<(), ConnectorError> {
        let config = Config::parse(&notification.config_json)?;
        let mut details: serde_json::Map<String, serde_json::Value> = details(&notification)
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k, truncate(&value_text(&v), MAX_DETAIL).into()))
            .collect();
        details.insert("event".into(), notification.event.clone().into());
        if !notification.recipient.is_empty() {
            details.insert("recipient".into(), notification.recipient.clone().into());
        }
        let message = if notification.subject.trim().is_empty() {
            notification.event.clone()
        } else {
            notification.subject.clone()
        };
        let alert = serde_json::json!({
            "message": truncate(&message, MAX_MESSAGE),
            "alias": truncate(&notification.id, MAX_ALIAS),
            "description": truncate(&notification.body, MAX_DESCRIPTION),
            "priority": config.priority.as_str(),
            "source": "certctl",
            "details": details,
        });
        let body = alert.to_string().into_bytes();
        let headers = [(
            "authorization".to_string(),
            format!("GenieKey {}", config.api_key),
        )];
        let response = post_json(&config.url, &headers, &body)?;
        check_status("OpsGenie", &response)
    }
}

export_notifier!(OpsGenie);
