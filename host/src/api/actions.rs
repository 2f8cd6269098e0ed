//! Helpers shared by action endpoints (`POST /{resource}/{id}/{action}`).

use serde_json::Value;

use super::error::{ApiError, parse_json};

/// Parses an optional JSON object body; empty means `{}`.
pub fn optional_object(body: &[u8]) -> Result<serde_json::Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match parse_json(body)? {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::field("body", "body: must be a JSON object")),
    }
}

/// Reads a string field, refusing other types and unknown fields.
pub fn string_field(
    body: &serde_json::Map<String, Value>,
    name: &str,
    allowed: &[&str],
) -> Result<Option<String>, ApiError> {
    if let Some(k) = body.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::field(
            k.clone(),
            format!("{k}: unknown field (allowed: {})", allowed.join(", ")),
        ));
    }
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::field(name, format!("{name}: must be a string"))),
    }
}
