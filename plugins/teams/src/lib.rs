//! Microsoft Teams incoming-webhook notifier.
//!
//! POSTs an Office 365 connector card (`MessageCard`), the format Teams incoming
//! webhooks document
//! (<https://learn.microsoft.com/outlook/actionable-messages/message-card-reference>):
//!
//! ```json
//! {"@type": "MessageCard", "@context": "https://schema.org/extensions",
//!  "summary": "<subject>", "themeColor": "D13438", "title": "<subject>",
//!  "text": "<message>",
//!  "sections": [{"facts": [{"name": "Certificate", "value": "mc-…"}, …]}]}
//! ```
//!
//! `themeColor` follows the event: red for failures, revocations and violations,
//! amber for expiration warnings, green for successes, blue otherwise. `sections` is
//! present only when the notification has details to show.

use certctl_notifier_sdk::{
    ConnectorError, ErrorKind, Guest, Notification, Url, check_status, details, error,
    export_notifier, parse_config, post_json, require_url, value_text,
};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    webhook_url: String,
}

fn parse(json: &str) -> Result<Url, ConnectorError> {
    let raw: RawConfig = parse_config(json)?;
    require_url("webhook_url", &raw.webhook_url)
}

/// Details shown as facts, in this order, with their labels.
const FACTS: &[(&str, &str)] = &[
    ("certificate_name", "Certificate"),
    ("certificate_id", "Certificate ID"),
    ("common_name", "Common name"),
    ("serial", "Serial"),
    ("expires_at", "Expires"),
    ("days_remaining", "Days remaining"),
    ("status", "Status"),
    ("error", "Error"),
];

/// The card colour for an event type (`ExpirationWarning`, `expiration-warning` …).
fn theme_color(event: &str) -> &'static str {
    let event = event.to_ascii_lowercase();
    if ["fail", "revo", "violation"]
        .iter()
        .any(|w| event.contains(w))
    {
        "D13438"
    } else if event.contains("expir") || event.contains("warn") {
        "FFA500"
    } else if event.contains("success") {
        "2EB886"
    } else {
        "0076D7"
    }
}

struct Teams;

impl Guest for Teams {
    fn validate_config(config_json: String) -> Result<(), ConnectorError> {
        parse(&config_json).map(drop)
    }

    fn notify(notification: Notification) -> Result<(), ConnectorError> {
        let url = parse(&notification.config_json)?;
        let details = details(&notification);
        let facts: Vec<serde_json::Value> = FACTS
            .iter()
            .filter_map(|(key, label)| {
                let value = details.get(*key).filter(|v| !v.is_null())?;
                Some(serde_json::json!({ "name": label, "value": value_text(value) }))
            })
            .collect();
        let mut card = serde_json::json!({
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "summary": notification.subject,
            "themeColor": theme_color(&notification.event),
            "title": notification.subject,
            "text": notification.body,
        });
        if !facts.is_empty() {
            card["sections"] = serde_json::json!([{ "facts": facts }]);
        }
        let body = card.to_string().into_bytes();
        let response = post_json(&url, &[], &body)?;
        check_status("Teams", &response)?;
        // Teams connectors have answered 200 with an error text instead of a
        // status (success is the body `1`).
        let excerpt = response.excerpt();
        if excerpt.starts_with("Webhook message delivery failed") {
            let kind = if excerpt.contains("429") || excerpt.contains(" 5") {
                ErrorKind::Unavailable
            } else {
                ErrorKind::Rejected
            };
            return Err(error(kind, format!("Teams answered: {excerpt}")));
        }
        Ok(())
    }
}

export_notifier!(Teams);
