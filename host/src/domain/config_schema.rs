//! Checks a connector config against the JSON Schema in its plugin's manifest, before the
//! plugin's own `validate-config` runs, so the common mistakes (a missing or unknown key, a
//! value of the wrong type or outside an `enum`) are refused with the key's path whatever
//! the plugin's messages look like.
//!
//! A deliberate subset of JSON Schema: `type`, `properties`, `required`,
//! `additionalProperties: false`, `enum` and `items`, which is what manifests' config
//! schemas use (they feed the dashboard's forms). Everything else in a schema is ignored
//! rather than refused; the plugin's `validate-config` remains the authority. Written by
//! hand because a full validator crate (`jsonschema`) would bring a regex engine and an
//! HTTP client into the server for keywords no manifest uses.

use serde_json::Value;

/// Why a config does not fit its schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SchemaError {
    /// Where, as a dotted path from the config (`config.url`, `config.hosts[1]`).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// Checks `value` (reached at `path`) against `schema`.
pub fn check(schema: &Value, value: &Value, path: &str) -> Result<(), SchemaError> {
    let Some(schema) = schema.as_object() else {
        return Ok(());
    };
    let fail = |message: String| {
        Err(SchemaError {
            path: path.to_owned(),
            message,
        })
    };
    if let Some(expected) = schema.get("type") {
        let names: Vec<&str> = match expected {
            Value::String(s) => vec![s.as_str()],
            Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !names.is_empty() && !names.iter().any(|t| has_type(value, t)) {
            return fail(format!("must be {}", names.join(" or ")));
        }
    }
    if let Some(Value::Array(allowed)) = schema.get("enum")
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
        return fail(format!("must be one of {}", list.join(", ")));
    }
    if let Value::Object(obj) = value {
        let properties = schema.get("properties").and_then(Value::as_object);
        if let Some(Value::Array(required)) = schema.get("required") {
            for key in required.iter().filter_map(Value::as_str) {
                if !obj.contains_key(key) {
                    return Err(SchemaError {
                        path: format!("{path}.{key}"),
                        message: "is required".into(),
                    });
                }
            }
        }
        for (key, item) in obj {
            match properties.and_then(|p| p.get(key)) {
                Some(sub) => check(sub, item, &format!("{path}.{key}"))?,
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    let known: Vec<&str> = properties
                        .map(|p| p.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    return Err(SchemaError {
                        path: format!("{path}.{key}"),
                        message: format!("unknown setting (known: {})", known.join(", ")),
                    });
                }
                None => {}
            }
        }
    }
    if let (Value::Array(items), Some(sub)) = (value, schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            check(sub, item, &format!("{path}[{i}]"))?;
        }
    }
    Ok(())
}

fn has_type(value: &Value, name: &str) -> bool {
    match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        // An unknown type name is the schema's problem, not the config's.
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "required": ["url"],
            "additionalProperties": false,
            "properties": {
                "url": {"type": "string"},
                "mode": {"type": "string", "enum": ["trap", "hang"]},
                "retries": {"type": "integer"},
                "hosts": {"type": "array", "items": {"type": "string"}},
            },
        })
    }

    fn error(config: Value) -> Option<String> {
        check(&schema(), &config, "config")
            .err()
            .map(|e| e.to_string())
    }

    #[test]
    fn configs_that_fit_pass() {
        assert_eq!(
            error(json!({"url": "https://ca", "retries": 2, "hosts": ["a"]})),
            None
        );
        assert_eq!(check(&json!({}), &json!({"anything": 1}), "config"), Ok(()));
    }

    #[test]
    fn errors_name_the_key() {
        assert_eq!(error(json!({})).as_deref(), Some("config.url: is required"));
        assert_eq!(
            error(json!({"url": 1})).as_deref(),
            Some("config.url: must be string")
        );
        assert_eq!(
            error(json!({"url": "u", "mode": "nap"})).as_deref(),
            Some("config.mode: must be one of \"trap\", \"hang\"")
        );
        assert_eq!(
            error(json!({"url": "u", "retries": 1.5})).as_deref(),
            Some("config.retries: must be integer")
        );
        assert_eq!(
            error(json!({"url": "u", "hosts": ["a", 2]})).as_deref(),
            Some("config.hosts[1]: must be string")
        );
        let unknown = error(json!({"url": "u", "colour": "blue"})).unwrap();
        assert!(
            unknown.starts_with("config.colour: unknown setting"),
            "{unknown}"
        );
        assert_eq!(error(json!([])).as_deref(), Some("config: must be object"));
    }
}
