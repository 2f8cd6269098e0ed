//! Slack incoming-webhook notifier.
//!
//! POSTs `{"text": "*<subject>*\n<message>", "channel"?, "username"?, "icon_emoji"?}`
//! to the webhook URL, the payload Slack documents for incoming webhooks
//! (<https://api.slack.com/messaging/webhooks>); `&`, `<` and `>` are escaped as
//! Slack's message formatting requires. The overrides only take effect with legacy
//! webhooks; app webhooks post to the channel they were created for. Slack answers
//! `200 ok`, or 4xx with an error word (`invalid_payload`, `channel_not_found`) that
//! ends up in the `rejected` message.

use certctl_notifier_sdk::{
    ConnectorError, Guest, Notification, Url, check_status, export_notifier, invalid_config,
    parse_config, post_json, require_url,
};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    webhook_url: String,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    icon_emoji: Option<String>,
}

struct Config {
    url: Url,
    raw: RawConfig,
}

impl Config {
    fn parse(json: &str) -> Result<Self, ConnectorError> {
        let raw: RawConfig = parse_config(json)?;
        let url = require_url("webhook_url", &raw.webhook_url)?;
        for (field, value) in [("channel", &raw.channel), ("username", &raw.username)] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err(invalid_config(format!(
                    "{field} must not be empty (omit it to use the webhook's default)"
                )));
            }
        }
        if let Some(icon) = &raw.icon_emoji {
            let inner = icon.strip_prefix(':').and_then(|i| i.strip_suffix(':'));
            if inner.is_none_or(|i| i.is_empty() || i.contains([':', ' '])) {
                return Err(invalid_config(format!(
                    "icon_emoji: `{icon}` must look like :emoji_name:"
                )));
            }
        }
        Ok(Self { url, raw })
    }
}

/// Escapes the three characters Slack's mrkdwn treats as control characters.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

struct Slack;

impl Guest for Slack {
    fn validate_config(config_json: String) -> Result<(), ConnectorError> {
        Config::parse(&config_json).map(drop)
    }

    fn notify(notification: Notification) -> Result<(), ConnectorError> {
        let config = Config::parse(&notification.config_json)?;
        let text = if notification.body.trim().is_empty() {
            format!("*{}*", escape(&notification.subject))
        } else {
            format!(
                "*{}*\n{}",
                escape(&notification.subject),
                escape(&notification.body)
            )
        };
        let mut payload = serde_json::Map::new();
        payload.insert("text".into(), text.into());
        for (key, value) in [
            ("channel", config.raw.channel),
            ("username", config.raw.username),
            ("icon_emoji", config.raw.icon_emoji),
        ] {
            if let Some(value) = value {
                payload.insert(key.into(), value.into());
            }
        }
        let body = serde_json::Value::Object(payload).to_string().into_bytes();
        let response = post_json(&config.url, &[], &body)?;
        check_status("Slack", &response)
    }
}

export_notifier!(Slack);
