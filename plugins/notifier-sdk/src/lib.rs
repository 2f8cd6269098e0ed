//! Shared code of certctl's first-party notifier connectors.
//!
//! - [`bindings`]: the guest bindings of WIT world `certctl:connector/notifier`
//!   (v0.1.0) and the `export_notifier!` macro that exports a [`Guest`] impl;
//! - [`parse_config`], [`require_url`] and friends: strict configuration parsing
//!   with messages that name the field;
//! - [`post`]: one HTTP request through `wasi:http` (filtered by the operator's
//!   host grants), and [`check_status`]: the status mapping every HTTP notifier
//!   shares — 2xx delivered, 5xx and 429 `unavailable` (the host retries), other
//!   codes `rejected`, with the status and an excerpt of the answer;
//! - [`details`], [`utc_now_rfc3339`], [`truncate`]: small helpers for payloads.
//!
//! Kept apart from `certctl-plugin-sdk` (the target world) because a component
//! carries the world its bindings were generated from: mixing both in one crate
//! would make every connector claim both worlds.

use serde::de::DeserializeOwned;

/// Guest bindings for the `notifier` world (wasi:http included).
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/v0.1.0",
        world: "certctl:connector/notifier",
        pub_export_macro: true,
        export_macro_name: "export_notifier",
        default_bindings_module: "certctl_notifier_sdk::bindings",
        generate_all,
    });
}

pub use bindings::certctl::connector::types::ErrorKind;
pub use bindings::certctl::connector::{log, smtp};
pub use bindings::{ConnectorError, Notification};
pub use bindings::{Guest, export_notifier};

use bindings::wasi::http::types::Fields;

/// How much of a response body is read (the rest is discarded).
const MAX_RESPONSE: usize = 64 * 1024;
/// How much of a response body goes into an error message.
const EXCERPT: usize = 200;

/// An error of `kind` with `message`.
pub fn error(kind: ErrorKind, message: impl Into<String>) -> ConnectorError {
    ConnectorError {
        kind,
        message: message.into(),
    }
}

/// An `invalid-config` error.
pub fn invalid_config(message: impl Into<String>) -> ConnectorError {
    error(ErrorKind::InvalidConfig, message)
}

/// Parses `config_json` into `T` (which should `#[serde(deny_unknown_fields)]`).
/// The message names the field: `severity: unknown variant …` for a bad value,
/// `configuration: missing field …` / `unknown field …` at the top level.
pub fn parse_config<T: DeserializeOwned>(config_json: &str) -> Result<T, ConnectorError> {
    let value: serde_json::Value = serde_json::from_str(config_json)
        .map_err(|e| invalid_config(format!("configuration is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(invalid_config("configuration must be a JSON object"));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        if path == "." || path.is_empty() {
            invalid_config(format!("configuration: {}", e.inner()))
        } else {
            invalid_config(format!("{path}: {}", e.inner()))
        }
    })
}

/// Requires the value of `field` to be non-empty (after trimming).
pub fn require_non_empty(field: &str, value: &str) -> Result<(), ConnectorError> {
    if value.trim().is_empty() {
        return Err(invalid_config(format!("{field} must not be empty")));
    }
    Ok(())
}

/// A URL split the way `wasi:http` wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `https` (or `http`).
    pub https: bool,
    /// `host` or `host:port`.
    pub authority: String,
    /// Path and query, starting with `/`.
    pub path_and_query: String,
}

/// Parses the value of `field` as an absolute `http://` or `https://` URL without
/// user information or fragment.
pub fn require_url(field: &str, url: &str) -> Result<Url, ConnectorError> {
    let bad = |why: &str| invalid_config(format!("{field}: `{url}` {why}"));
    let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(bad("must be an http:// or https:// URL"));
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("must not contain spaces or control characters"));
    }
    if url.contains('#') {
        return Err(bad("must not contain a fragment"));
    }
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if authority.contains('@') {
        return Err(bad("must not contain user information"));
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((host, rest)) => (host, rest.strip_prefix(':')),
            None => return Err(bad("has an unterminated IPv6 address")),
        },
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if port.is_some_and(|p| p.parse::<u16>().is_err()) {
        return Err(bad("has an invalid port"));
    }
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    let path_and_query = match path {
        "" => "/".to_string(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_string(),
    };
    Ok(Url {
        https,
        authority: authority.to_string(),
        path_and_query,
    })
}

/// An HTTP answer: status and (the first 64 KiB of) the body.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Body bytes, at most 64 KiB.
    pub body: Vec<u8>,
}

impl Response {
    /// The start of the body, one line, for error messages.
    pub fn excerpt(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        truncate(&line, EXCERPT)
    }
}

/// Sends `method url` with `headers` and `body` through `wasi:http` and reads the
/// answer. A host the operator did not grant is `denied`; a network failure,
/// timeout or TLS error is `unavailable`. The status is not interpreted here (see
/// [`check_status`]).
pub fn send(
    method: &str,
    url: &Url,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<Response, ConnectorError> {
    let authority = url.authority.as_str();
    let mut list: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.as_bytes().to_vec()))
        .collect();
    list.push(("content-length".into(), body.len().to_string().into_bytes()));
    let fields = Fields::from_list(&list)
        .map_err(|e| error(ErrorKind::InvalidConfig, format!("headers: {e:?}")))?;
    let (status, body) = transport::exchange(
        method,
        url.https,
        authority,
        &url.path_and_query,
        fields,
        body,
        MAX_RESPONSE,
    )?;
    Ok(Response { status, body })
}

/// The `wasi:http` exchange itself, shared with the target SDK.
mod transport {
    include!("../../shared/wasi_http_transport.rs");
}

/// [`send`] of a JSON body with `Content-Type: application/json`.
pub fn post_json(
    url: &Url,
    extra_headers: &[(String, String)],
    body: &[u8],
) -> Result<Response, ConnectorError> {
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    headers.extend(extra_headers.iter().cloned());
    send("POST", url, &headers, body)
}

/// Maps an answer of `service` to the notifier contract: 2xx is delivered; 5xx
/// and 429 are `unavailable` (retryable); anything else (4xx, an unexpected
/// redirect) is `rejected`. The message carries the status and a body excerpt.
pub fn check_status(service: &str, response: &Response) -> Result<(), ConnectorError> {
    let status = response.status;
    if (200..300).contains(&status) {
        return Ok(());
    }
    let kind = if status >= 500 || status == 429 {
        ErrorKind::Unavailable
    } else {
        ErrorKind::Rejected
    };
    let excerpt = response.excerpt();
    let message = if excerpt.is_empty() {
        format!("{service} answered HTTP {status}")
    } else {
        format!("{service} answered HTTP {status}: {excerpt}")
    };
    Err(error(kind, message))
}

/// The notification's `details-json` as an object (empty when absent or not an
/// object: details are informative, never a reason to drop a notification).
pub fn details(notification: &Notification) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::from_str::<serde_json::Value>(&notification.details_json) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    }
}

/// A details value as display text (strings without quotes).
pub fn value_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `text` cut to at most `max` characters, ending in `…` when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The current UTC time as RFC 3339 (`2026-11-26T04:05:06Z`), from
/// `wasi:clocks/wall-clock` (through std).
pub fn utc_now_rfc3339() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339(seconds)
}

/// Seconds since the Unix epoch as RFC 3339 UTC.
pub fn rfc3339(unix_seconds: u64) -> String {
    let days = (unix_seconds / 86_400) as i64;
    let secs = unix_seconds % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}
