//! Generic webhook notifier.
//!
//! POSTs each notification to `url` as `application/json`:
//!
//! ```json
//! {"id": "notif-…", "event": "ExpirationWarning", "subject": "…", "message": "…",
//!  "recipient": "…", "details": {"certificate_id": "mc-…", "days_remaining": 7, …},
//!  "sent_at": "2026-11-26T04:05:06Z"}
//! ```
//!
//! `id` is stable across retries (deduplicate by it); `details` is the host's
//! structured event data (`{}` when there is none); `sent_at` is when this attempt
//! was made. Headers: `X-Certctl-Event` (the event), `X-Certctl-Delivery` (the id)
//! and, when `secret` is set, `X-Certctl-Signature: sha256=<hex>` — the lower-case
//! hex HMAC-SHA256 of the exact body bytes keyed with the secret. Receivers verify
//! it over the raw body before parsing, with a constant-time comparison.

use std::collections::BTreeMap;

use certctl_notifier_sdk::{
    ConnectorError, Guest, Notification, Url, check_status, details, export_notifier,
    invalid_config, parse_config, post_json, require_url, utc_now_rfc3339,
};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// Headers the plugin sets itself (or `wasi:http` refuses).
const RESERVED: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "connection",
    "transfer-encoding",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    url: String,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

struct Config {
    url: Url,
    secret: Option<String>,
    headers: Vec<(String, String)>,
}

impl Config {
    fn parse(json: &str) -> Result<Self, ConnectorError> {
        let raw: RawConfig = parse_config(json)?;
        let url = require_url("url", &raw.url)?;
        if raw.secret.as_deref().is_some_and(str::is_empty) {
            return Err(invalid_config(
                "secret must not be empty (omit it to send unsigned requests)",
            ));
        }
        let mut headers = Vec::new();
        for (name, value) in raw.headers {
            let lower = name.to_ascii_lowercase();
            let token = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !token {
                return Err(invalid_config(format!(
                    "headers: `{name}` is not a valid header name"
                )));
            }
            if RESERVED.contains(&lower.as_str()) || lower.starts_with("x-certctl-") {
                return Err(invalid_config(format!(
                    "headers: `{name}` is set by the plugin and cannot be configured"
                )));
            }
            if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                return Err(invalid_config(format!(
                    "headers.{name}: the value must not contain line breaks"
                )));
            }
            headers.push((lower, value));
        }
        Ok(Self {
            url,
            secret: raw.secret,
            headers,
        })
    }
}

/// `sha256=<lower-case hex HMAC-SHA256(secret, body)>`.
fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

struct Webhook;

impl Guest for Webhook {
    fn validate_config(config_json: String) -> Result<(), ConnectorError> {
        Config::parse(&config_json).map(drop)
    }

    fn notify(notification: Notification) -> Result<(), ConnectorError> {
        let config = Config::parse(&notification.config_json)?;
        let payload = serde_json::json!({
            "id": notification.id,
            "event": notification.event,
            "subject": notification.subject,
            "message": notification.body,
            "recipient": notification.recipient,
            "details": details(&notification),
            "sent_at": utc_now_rfc3339(),
        });
        let body = payload.to_string().into_bytes();
        let mut headers = vec![
            ("user-agent".to_string(), "certctl-webhook/0.1".to_string()),
            ("x-certctl-event".to_string(), notification.event.clone()),
            ("x-certctl-delivery".to_string(), notification.id.clone()),
        ];
        if let Some(secret) = &config.secret {
            headers.push(("x-certctl-signature".to_string(), signature(secret, &body)));
        }
        headers.extend(config.headers);
        let response = post_json(&config.url, &headers, &body)?;
        check_status("webhook receiver", &response)
    }
}

export_notifier!(Webhook);
