//! Declarative description of a REST resource and the validation of client input against it.
//!
//! Every plain resource (teams, owners, certificates, …) is a [`ResourceSpec`]: its table,
//! id prefix and fields with their kinds and rules. The generic repository
//! (`store::records`), the generic handlers (`api::records`) and the OpenAPI document
//! (`api::openapi`) all read the same spec, so a field is declared exactly once.
//! Pure code: no I/O here.

use serde_json::{Map, Value};

/// What a field holds, which decides validation, storage column decoding and OpenAPI type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// Free text.
    Text,
    /// Text that must contain an `@` (owner e-mail addresses).
    Email,
    /// A signed integer, optionally bounded.
    Int {
        /// Smallest accepted value.
        min: i64,
        /// Largest accepted value.
        max: i64,
    },
    /// `true`/`false`.
    Bool,
    /// One of a closed set of strings.
    Enum(&'static [&'static str]),
    /// A connector type: one of the built-in names, or the id of a plugin of this kind
    /// (`"target"`). Here only the shape of an id is checked; whether such a plugin is
    /// loaded is checked by the API against the plugin registry.
    Connector {
        /// Types that need no plugin check.
        builtin: &'static [&'static str],
        /// The plugin kind whose ids are also accepted.
        plugin_kind: &'static str,
    },
    /// An RFC 3339 timestamp, stored in canonical form.
    Timestamp,
    /// A JSON array of strings (SANs, EKUs).
    StringList,
    /// A JSON array of integers (alert thresholds).
    IntList,
    /// A JSON object (connector configuration, tags).
    Object,
    /// A JSON array of objects (allowed key algorithms).
    ObjectList,
}

/// Who may set a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Clients set it on create and update.
    ReadWrite,
    /// Clients may set it on create only (job type, certificate of a job).
    CreateOnly,
    /// Only the server sets it (status of a certificate, heartbeat time); clients may echo
    /// the current value back unchanged, which keeps GET → PUT round trips working.
    ReadOnly,
}

/// One field of a resource.
#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    /// JSON name and database column.
    pub name: &'static str,
    /// What it holds.
    pub kind: FieldKind,
    /// Must be present (and not null) on create.
    pub required: bool,
    /// Who may set it.
    pub access: Access,
    /// JSON literal stored when the client omits the field on create.
    pub default: Option<&'static str>,
    /// The resource whose id this field holds, if it is a reference.
    pub references: Option<&'static str>,
    /// `?name=value` list filter available.
    pub filterable: bool,
    /// Usable in `?sort=`.
    pub sortable: bool,
    /// One-line description for the OpenAPI document.
    pub doc: &'static str,
}

impl FieldSpec {
    /// A field with the plainest settings; refine with the builder methods.
    pub const fn new(name: &'static str, kind: FieldKind, doc: &'static str) -> Self {
        Self {
            name,
            kind,
            required: false,
            access: Access::ReadWrite,
            default: None,
            references: None,
            filterable: false,
            sortable: false,
            doc,
        }
    }
    /// Marks the field as required on create.
    pub const fn required(mut self) -> Self {
        self.required = true;
        self
    }
    /// Sets who may write the field.
    pub const fn access(mut self, access: Access) -> Self {
        self.access = access;
        self
    }
    /// Stores this JSON literal when the client omits the field.
    pub const fn default(mut self, json: &'static str) -> Self {
        self.default = Some(json);
        self
    }
    /// Declares the field a reference to another resource (by its path name).
    pub const fn references(mut self, resource: &'static str) -> Self {
        self.references = Some(resource);
        self
    }
    /// Enables `?name=` filtering.
    pub const fn filter(mut self) -> Self {
        self.filterable = true;
        self
    }
    /// Enables `?sort=name`.
    pub const fn sort(mut self) -> Self {
        self.sortable = true;
        self
    }
}

/// How `DELETE` treats a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteMode {
    /// The row is removed (refused with 409 while other rows reference it).
    Remove,
    /// The row stays and its status becomes the given value (certificates are archived).
    Archive {
        /// Status column.
        field: &'static str,
        /// Value written there.
        value: &'static str,
    },
    /// No DELETE route at all (audit events).
    Forbidden,
}

/// A comparison against a timestamp field reachable as a query parameter.
#[derive(Debug, Clone, Copy)]
pub struct TimeFilter {
    /// Query parameter (`expires_before`).
    pub param: &'static str,
    /// Timestamp field compared.
    pub field: &'static str,
    /// `true` for `field < value`, `false` for `field >= value`.
    pub before: bool,
}

/// A REST resource backed by one table.
#[derive(Debug)]
pub struct ResourceSpec {
    /// URL segment under `/api/v1` and the name other specs use in `references`.
    pub path: &'static str,
    /// Database table.
    pub table: &'static str,
    /// Singular name for audit actions (`certificate_created`) and messages.
    pub singular: &'static str,
    /// Id prefix (`mc`).
    pub id_prefix: &'static str,
    /// Fields other than `id`, `created_at` and `updated_at`.
    pub fields: &'static [FieldSpec],
    /// Whether the table has `created_at`/`updated_at` columns.
    pub timestamps: bool,
    /// Name of the creation-time column (`created_at`, or `timestamp` for audit events).
    pub created_field: &'static str,
    /// Clients may create, update and delete (false: read-only, e.g. audit).
    pub writable: bool,
    /// DELETE behaviour.
    pub delete: DeleteMode,
    /// Extra timestamp range parameters beyond `created_after/before`, `updated_after/before`.
    pub time_filters: &'static [TimeFilter],
    /// Default `?sort=` when the client gives none.
    pub default_sort: &'static str,
    /// One-line description for the OpenAPI document.
    pub doc: &'static str,
}

/// A problem with client input, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The body or query field at fault.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// Builds an error about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The columns every resource has beside its declared fields.
pub const ID: &str = "id";
/// Creation time column (resources with timestamps).
pub const CREATED_AT: &str = "created_at";
/// Last update time column (resources with timestamps).
pub const UPDATED_AT: &str = "updated_at";

impl ResourceSpec {
    /// Looks up a declared field.
    pub fn field(&self, name: &str) -> Option<&'static FieldSpec> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Every column in storage order: id, declared fields, then timestamps.
    pub fn columns(&self) -> Vec<(&'static str, FieldKind)> {
        let mut cols = vec![(ID, FieldKind::Text)];
        cols.extend(self.fields.iter().map(|f| (f.name, f.kind)));
        if self.timestamps {
            cols.push((CREATED_AT, FieldKind::Timestamp));
            cols.push((UPDATED_AT, FieldKind::Timestamp));
        }
        cols
    }

    /// Kind of any column including the implicit ones.
    pub fn column_kind(&self, name: &str) -> Option<FieldKind> {
        self.columns()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, k)| k)
    }

    /// Columns accepted in `?sort=`.
    pub fn sortable(&self) -> Vec<&'static str> {
        let mut s = vec![ID];
        s.extend(self.fields.iter().filter(|f| f.sortable).map(|f| f.name));
        if self.timestamps {
            s.push(CREATED_AT);
            s.push(UPDATED_AT);
        }
        s
    }

    /// Validates a create body: known fields only, right types, required present,
    /// defaults applied. Returns column → value with the id left to the caller.
    pub fn validate_create(&self, body: &Value) -> Result<Map<String, Value>, FieldError> {
        let obj = as_object(body)?;
        let mut out = Map::new();
        for (key, value) in obj {
            if key == ID || (self.timestamps && (key == CREATED_AT || key == UPDATED_AT)) {
                continue;
            }
            let field = self.known_field(key)?;
            if field.access == Access::ReadOnly {
                return Err(FieldError::new(
                    key,
                    "is set by the server and cannot be given on create",
                ));
            }
            if !value.is_null() {
                out.insert(key.clone(), check_value(field, value)?);
            }
        }
        for field in self.fields {
            if out.contains_key(field.name) {
                continue;
            }
            if field.required {
                return Err(FieldError::new(field.name, "is required"));
            }
            if let Some(default) = field.default {
                let v: Value = serde_json::from_str(default).unwrap_or(Value::Null);
                out.insert(field.name.to_owned(), v);
            }
        }
        Ok(out)
    }

    /// Validates an update body against the current record: only the provided fields
    /// change; server-owned fields may be echoed unchanged but not altered.
    pub fn validate_update(
        &self,
        body: &Value,
        current: &Map<String, Value>,
    ) -> Result<Map<String, Value>, FieldError> {
        let obj = as_object(body)?;
        let mut out = Map::new();
        for (key, value) in obj {
            if key == ID {
                if value.as_str() != current.get(ID).and_then(Value::as_str) {
                    return Err(FieldError::new(ID, "does not match the id in the path"));
                }
                continue;
            }
            if self.timestamps && (key == CREATED_AT || key == UPDATED_AT) {
                continue;
            }
            let field = self.known_field(key)?;
            let unchanged = current.get(key).is_some_and(|c| c == value);
            if field.access != Access::ReadWrite {
                if unchanged {
                    continue;
                }
                return Err(FieldError::new(key, "cannot be changed"));
            }
            if value.is_null() {
                if field.required {
                    return Err(FieldError::new(key, "is required and cannot be null"));
                }
                match field.default {
                    Some(default) => {
                        let v: Value = serde_json::from_str(default).unwrap_or(Value::Null);
                        out.insert(key.clone(), v);
                    }
                    None => {
                        out.insert(key.clone(), Value::Null);
                    }
                }
                continue;
            }
            out.insert(key.clone(), check_value(field, value)?);
        }
        Ok(out)
    }

    fn known_field(&self, key: &str) -> Result<&'static FieldSpec, FieldError> {
        self.field(key).ok_or_else(|| {
            FieldError::new(
                key,
                format!(
                    "is not a field of {} (known: {})",
                    self.singular,
                    self.field_list()
                ),
            )
        })
    }

    fn field_list(&self) -> String {
        self.fields
            .iter()
            .map(|f| f.name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn as_object(body: &Value) -> Result<&Map<String, Value>, FieldError> {
    body.as_object()
        .ok_or_else(|| FieldError::new("body", "must be a JSON object"))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Checks one value against its field and returns the value to store (timestamps normalised).
pub fn check_value(field: &FieldSpec, value: &Value) -> Result<Value, FieldError> {
    let wrong = |expected: &str| {
        FieldError::new(
            field.name,
            format!("must be {expected}, got {}", type_name(value)),
        )
    };
    match field.kind {
        FieldKind::Text => {
            let s = value.as_str().ok_or_else(|| wrong("a string"))?;
            if field.required && s.trim().is_empty() {
                return Err(FieldError::new(field.name, "must not be empty"));
            }
            if field.references.is_some() && s.is_empty() {
                return Err(FieldError::new(field.name, "must not be empty"));
            }
            Ok(value.clone())
        }
        FieldKind::Email => {
            let s = value.as_str().ok_or_else(|| wrong("a string"))?;
            if !s.contains('@') || s.starts_with('@') || s.ends_with('@') {
                return Err(FieldError::new(field.name, "must be an e-mail address"));
            }
            Ok(value.clone())
        }
        FieldKind::Int { min, max } => {
            let n = value.as_i64().ok_or_else(|| wrong("an integer"))?;
            if n < min || n > max {
                return Err(FieldError::new(
                    field.name,
                    format!("must be between {min} and {max}"),
                ));
            }
            Ok(value.clone())
        }
        FieldKind::Bool => value
            .is_boolean()
            .then(|| value.clone())
            .ok_or_else(|| wrong("a boolean")),
        FieldKind::Enum(allowed) => {
            let s = value.as_str().ok_or_else(|| wrong("a string"))?;
            if allowed.contains(&s) {
                Ok(value.clone())
            } else {
                Err(FieldError::new(
                    field.name,
                    format!("unknown value \"{s}\" (allowed: {})", allowed.join(", ")),
                ))
            }
        }
        FieldKind::Connector {
            builtin,
            plugin_kind,
        } => {
            let s = value.as_str().ok_or_else(|| wrong("a string"))?;
            if builtin.contains(&s) || is_plugin_id(s) {
                Ok(value.clone())
            } else {
                Err(FieldError::new(
                    field.name,
                    format!(
                        "unknown value \"{s}\" (allowed: {}, or the id of a loaded {plugin_kind} plugin)",
                        builtin.join(", ")
                    ),
                ))
            }
        }
        FieldKind::Timestamp => {
            let s = value
                .as_str()
                .ok_or_else(|| wrong("an RFC 3339 timestamp"))?;
            certctl_core::timestamp::normalize(s)
                .map(Value::String)
                .map_err(|e| FieldError::new(field.name, e.to_string()))
        }
        FieldKind::StringList => {
            let items = value
                .as_array()
                .ok_or_else(|| wrong("an array of strings"))?;
            if items.iter().all(Value::is_string) {
                Ok(value.clone())
            } else {
                Err(FieldError::new(field.name, "must contain only strings"))
            }
        }
        FieldKind::IntList => {
            let items = value
                .as_array()
                .ok_or_else(|| wrong("an array of integers"))?;
            if items.iter().all(|v| v.as_i64().is_some()) {
                Ok(value.clone())
            } else {
                Err(FieldError::new(field.name, "must contain only integers"))
            }
        }
        FieldKind::Object => value
            .is_object()
            .then(|| value.clone())
            .ok_or_else(|| wrong("an object")),
        FieldKind::ObjectList => {
            let items = value
                .as_array()
                .ok_or_else(|| wrong("an array of objects"))?;
            if items.iter().all(Value::is_object) {
                Ok(value.clone())
            } else {
                Err(FieldError::new(field.name, "must contain only objects"))
            }
        }
    }
}

/// Whether `s` has the shape of a plugin id (`[a-z0-9][a-z0-9_-]*`, as in manifests).
pub fn is_plugin_id(s: &str) -> bool {
    s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// Parses a query-string value for a filter on `field`, with the same rules as the body.
pub fn parse_filter_value(field: &FieldSpec, raw: &str) -> Result<Value, FieldError> {
    let value = match field.kind {
        FieldKind::Int { .. } => Value::from(
            raw.parse::<i64>()
                .map_err(|_| FieldError::new(field.name, "must be an integer"))?,
        ),
        FieldKind::Bool => match raw {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(FieldError::new(field.name, "must be true or false")),
        },
        _ => Value::String(raw.to_owned()),
    };
    let mut probe = *field;
    probe.required = false;
    check_value(&probe, &value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const STATUSES: &[&str] = &["Pending", "Active"];
    const FIELDS: &[FieldSpec] = &[
        FieldSpec::new("name", FieldKind::Text, "").required(),
        FieldSpec::new("status", FieldKind::Enum(STATUSES), "")
            .access(Access::ReadOnly)
            .default("\"Pending\""),
        FieldSpec::new("sans", FieldKind::StringList, "").default("[]"),
        FieldSpec::new("ttl", FieldKind::Int { min: 1, max: 10 }, ""),
        FieldSpec::new("kind", FieldKind::Enum(STATUSES), "").access(Access::CreateOnly),
        FieldSpec::new("expires_at", FieldKind::Timestamp, ""),
    ];
    static SPEC: ResourceSpec = ResourceSpec {
        path: "things",
        table: "things",
        singular: "thing",
        id_prefix: "th",
        fields: FIELDS,
        timestamps: true,
        created_field: CREATED_AT,
        writable: true,
        delete: DeleteMode::Remove,
        time_filters: &[],
        default_sort: "id",
        doc: "",
    };

    #[test]
    fn create_applies_defaults_and_normalises_timestamps() {
        let out = SPEC
            .validate_create(&json!({"name": "a", "expires_at": "2026-01-01T00:00:00+01:00"}))
            .unwrap();
        assert_eq!(out["status"], json!("Pending"));
        assert_eq!(out["sans"], json!([]));
        assert_eq!(out["expires_at"], json!("2025-12-31T23:00:00.000Z"));
    }

    #[test]
    fn create_names_the_field_at_fault() {
        let e = SPEC.validate_create(&json!({})).unwrap_err();
        assert_eq!(e.field, "name");
        let e = SPEC.validate_create(&json!({"name": 5})).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("name", "must be a string, got a number")
        );
        let e = SPEC
            .validate_create(&json!({"name": "a", "kind": "Bogus"}))
            .unwrap_err();
        assert!(e.message.contains("unknown value \"Bogus\""), "{e}");
        let e = SPEC
            .validate_create(&json!({"name": "a", "nme": 1}))
            .unwrap_err();
        assert_eq!(e.field, "nme");
        let e = SPEC
            .validate_create(&json!({"name": "a", "status": "Active"}))
            .unwrap_err();
        assert_eq!(e.field, "status");
        let e = SPEC
            .validate_create(&json!({"name": "a", "ttl": 11}))
            .unwrap_err();
        assert_eq!(e.field, "ttl");
        let e = SPEC.validate_create(&json!([1])).unwrap_err();
        assert_eq!(e.field, "body");
    }

    #[test]
    fn update_allows_echoing_server_fields_but_not_changing_them() {
        let current = json!({"id": "th-1", "name": "a", "status": "Pending", "kind": "Active"});
        let current = current.as_object().unwrap();
        let out = SPEC
            .validate_update(
                &json!({"id": "th-1", "name": "b", "status": "Pending"}),
                current,
            )
            .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out["name"], json!("b"));
        assert_eq!(
            SPEC.validate_update(&json!({"status": "Active"}), current)
                .unwrap_err()
                .field,
            "status"
        );
        assert_eq!(
            SPEC.validate_update(&json!({"kind": "Pending"}), current)
                .unwrap_err()
                .field,
            "kind"
        );
        assert_eq!(
            SPEC.validate_update(&json!({"id": "th-2"}), current)
                .unwrap_err()
                .field,
            "id"
        );
        assert_eq!(
            SPEC.validate_update(&json!({"name": null}), current)
                .unwrap_err()
                .field,
            "name"
        );
    }

    #[test]
    fn filter_values_are_typed() {
        let status = SPEC.field("status").unwrap();
        assert!(parse_filter_value(status, "Active").is_ok());
        assert!(parse_filter_value(status, "Nope").is_err());
        let ttl = SPEC.field("ttl").unwrap();
        assert_eq!(parse_filter_value(ttl, "3").unwrap(), json!(3));
        assert!(parse_filter_value(ttl, "x").is_err());
    }

    #[test]
    fn connector_types_are_built_ins_or_plugin_ids() {
        let field = FieldSpec::new(
            "type",
            FieldKind::Connector {
                builtin: &["nginx", "Apache2"],
                plugin_kind: "target",
            },
            "",
        );
        for ok in ["nginx", "Apache2", "acme-widget", "x_1"] {
            assert_eq!(check_value(&field, &json!(ok)).unwrap(), json!(ok));
        }
        for bad in ["", "Widget", "-x", "a b", "a/b"] {
            let e = check_value(&field, &json!(bad)).unwrap_err();
            assert_eq!(e.field, "type");
            assert!(
                e.message
                    .contains("allowed: nginx, Apache2, or the id of a loaded target plugin"),
                "{}",
                e.message
            );
        }
        assert!(check_value(&field, &json!(1)).is_err());
    }
}
