//! Generic handlers for every [`ResourceSpec`]: list, get, create, update, delete.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::auth::principal;
use super::error::{ApiError, parse_json};
use super::state::AppState;
use crate::domain::listing::{self, Paging};
use crate::domain::resource::{DeleteMode, FieldError, FieldKind, ResourceSpec};
use crate::domain::{audit, certificate, issuer, job, target};
use crate::secrets::{self, CONFIG_FIELD, ConfigOwner, Previous};
use crate::store::records;

/// The spec a route serves, attached to its scope as app data.
#[derive(Debug, Clone, Copy)]
pub struct SpecRef(pub &'static ResourceSpec);

fn spec(req: &HttpRequest) -> Result<&'static ResourceSpec, ApiError> {
    req.app_data::<SpecRef>()
        .map(|s| s.0)
        .ok_or_else(|| ApiError::Internal("route without resource spec".into()))
}

/// Decodes the query string into ordered pairs; malformed encoding is a 400.
pub fn query_pairs(req: &HttpRequest) -> Result<Vec<(String, String)>, ApiError> {
    serde_urlencoded::from_str(req.query_string())
        .map_err(|e| ApiError::field("query", format!("malformed query string: {e}")))
}

fn project(mut row: records::Record, fields: Option<&Vec<String>>) -> Value {
    if let Some(fields) = fields {
        row.retain(|k, _| fields.iter().any(|f| f == k));
    }
    Value::Object(row)
}

/// `GET /{resources}`.
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let spec = spec(&req)?;
    let q = listing::parse(spec, &query_pairs(&req)?)?;
    let result = records::list(&state.store, spec, &q).await?;
    let data: Vec<Value> = result
        .rows
        .into_iter()
        .map(|r| project(present(&req, spec, r), q.fields.as_ref()))
        .collect();
    let body = match q.paging {
        Paging::Offset { page, per_page } => json!({
            "data": data, "total": result.total, "page": page, "per_page": per_page,
        }),
        Paging::Cursor { limit, .. } => json!({
            "data": data, "total": result.total, "per_page": limit, "next_cursor": result.next_cursor,
        }),
    };
    Ok(HttpResponse::Ok().json(body))
}

/// `GET /{resources}/{id}`.
pub async fn get(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let spec = spec(&req)?;
    let pairs = query_pairs(&req)?;
    let mut fields = None;
    for (k, v) in pairs {
        if k != "fields" {
            return Err(ApiError::field(
                k,
                "is not a query parameter here (only fields)",
            ));
        }
        let names: Vec<String> = v
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        if let Some(bad) = names.iter().find(|n| spec.column_kind(n).is_none()) {
            return Err(ApiError::field(
                "fields",
                format!("\"{bad}\" is not a field of {}", spec.singular),
            ));
        }
        fields = Some(names);
    }
    let row = records::get(&state.store, spec, &id).await?;
    Ok(HttpResponse::Ok().json(project(present(&req, spec, row), fields.as_ref())))
}

/// `POST /{resources}` → 201 with the stored record.
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let spec = spec(&req)?;
    let body = parse_json(&body)?;
    let mut values = spec.validate_create(&body)?;
    check_connectors(&req, spec, &values)?;
    check_job_assignment(&req, spec, &values)?;
    let id = match body.get("id") {
        None | Some(Value::Null) => records::new_id(spec.id_prefix),
        Some(Value::String(id)) => {
            certctl_core::id::validate(spec.id_prefix, id)
                .map_err(|e| ApiError::field("id", format!("id: {e}")))?;
            id.clone()
        }
        Some(_) => return Err(ApiError::field("id", "id: must be a string")),
    };
    values.remove("id");
    let secret = secret_names(&req, spec, &values);
    let plain = plain_config(spec, &values, None, &secret)?;
    if let Some(plain) = &plain {
        values.insert(CONFIG_FIELD.to_owned(), Value::Object(plain.clone()));
    }
    if spec.path == issuer::SPEC.path {
        super::issuers::validate(&state, &values).await?;
    }
    if let Some(plain) = plain {
        let owner = ConfigOwner {
            resource: spec.singular,
            id: &id,
        };
        let stored = state.config_secrets.seal(owner, &plain, None, &secret)?;
        values.insert(CONFIG_FIELD.to_owned(), Value::Object(stored));
    }
    let after = (spec.path == certificate::SPEC.path)
        .then_some(super::certificates::after_create as records::AfterCreate);
    let now = state.clock.now_text();
    let actor = principal(&req).actor;
    let record = records::create_audited(
        &state.store,
        spec,
        &id,
        values,
        &now,
        &actor,
        after,
        &secret,
    )
    .await?;
    changed(&state, spec);
    Ok(HttpResponse::build(StatusCode::CREATED)
        .insert_header(("Location", format!("/api/v1/{}/{id}", spec.path)))
        .json(Value::Object(present(&req, spec, record))))
}

/// `PUT /{resources}/{id}`: changes the fields present in the body; others keep their values.
/// A body that changes nothing answers the current record (no updated_at bump, no audit).
pub async fn update(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let spec = spec(&req)?;
    let body = parse_json(&body)?;
    let current = records::get(&state.store, spec, &id).await?;
    let mut changes = spec.validate_update(&body, &current)?;
    check_connectors(&req, spec, &changes)?;
    check_job_assignment(&req, spec, &changes)?;
    // Secrets: the stored config's plaintext stands in for each "***" sent back, and is
    // what validation sees; unchanged secrets keep their stored ciphertext.
    let mut merged = current.clone();
    merged.extend(changes.clone());
    let secret = secret_names(&req, spec, &merged);
    let owner = ConfigOwner {
        resource: spec.singular,
        id: &id,
    };
    let stored_config = current.get(CONFIG_FIELD).and_then(Value::as_object);
    let current_plain = match stored_config {
        Some(stored) if connector_kind(spec).is_some() => {
            Some(state.config_secrets.reveal(owner, stored)?)
        }
        _ => None,
    };
    let plain = plain_config(spec, &changes, current_plain.as_ref(), &secret)?;
    if let Some(config) = plain.clone().or_else(|| current_plain.clone()) {
        merged.insert(CONFIG_FIELD.to_owned(), Value::Object(config));
    }
    if spec.path == issuer::SPEC.path {
        super::issuers::validate(&state, &merged).await?;
    }
    if let Some(plain) = plain {
        let previous = stored_config
            .zip(current_plain.as_ref())
            .map(|(stored, plain)| Previous { stored, plain });
        let stored = state
            .config_secrets
            .seal(owner, &plain, previous, &secret)?;
        changes.insert(CONFIG_FIELD.to_owned(), Value::Object(stored));
    }
    let now = state.clock.now_text();
    let record = records::update_audited(
        &state.store,
        spec,
        &id,
        changes,
        &now,
        &principal(&req).actor,
        &secret,
    )
    .await?;
    changed(&state, spec);
    Ok(HttpResponse::Ok().json(Value::Object(present(&req, spec, record))))
}

/// `DELETE /{resources}/{id}` → 204 (certificates are archived, not removed).
pub async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let spec = spec(&req)?;
    if spec.delete == DeleteMode::Forbidden {
        return Err(ApiError::MethodNotAllowed);
    }
    let now = state.clock.now_text();
    records::delete(&state.store, spec, &id, &now, &principal(&req).actor).await?;
    changed(&state, spec);
    Ok(HttpResponse::NoContent().finish())
}

/// A connector type that is not built in must be the id of a plugin of its kind that the
/// server has loaded (`GET /api/v1/plugins`; copy it in and `POST /api/v1/plugins/reload`).
fn check_connectors(
    req: &HttpRequest,
    spec: &ResourceSpec,
    values: &serde_json::Map<String, Value>,
) -> Result<(), ApiError> {
    for field in spec.fields {
        let FieldKind::Connector {
            builtin,
            plugin_kind,
        } = field.kind
        else {
            continue;
        };
        let Some(value) = values.get(field.name).and_then(Value::as_str) else {
            continue;
        };
        if builtin.contains(&value) {
            continue;
        }
        let loaded = req
            .app_data::<web::Data<crate::plugins::PluginRegistry>>()
            .map(|registry| registry.loaded_ids(plugin_kind))
            .unwrap_or_default();
        if !loaded.iter().any(|id| id == value) {
            return Err(FieldError::new(
                field.name,
                format!(
                    "unknown value \"{value}\" (allowed: {}, or the id of a loaded {plugin_kind} plugin: {})",
                    builtin.join(", "),
                    if loaded.is_empty() { "none loaded".to_owned() } else { loaded.join(", ") }
                ),
            )
            .into());
        }
    }
    Ok(())
}

/// A job that names an agent sends that agent a CSR request or a deployment for a managed
/// name: only an admin may direct work at a chosen agent (operators' jobs are routed
/// through the certificate's targets).
fn check_job_assignment(
    req: &HttpRequest,
    spec: &ResourceSpec,
    values: &serde_json::Map<String, Value>,
) -> Result<(), ApiError> {
    if spec.path != job::SPEC.path || values.get("agent_id").is_none_or(Value::is_null) {
        return Ok(());
    }
    if principal(req).is_admin() {
        return Ok(());
    }
    Err(ApiError::Forbidden(
        "only an admin may create or change a job that names an agent (agent_id)".into(),
    ))
}

/// The plugin kind whose config schema marks the secrets in this resource's `config`
/// (issuers and targets); `None` for resources without a connector config.
fn connector_kind(spec: &ResourceSpec) -> Option<&'static str> {
    if spec.path == issuer::SPEC.path {
        Some("issuer")
    } else if spec.path == target::SPEC.path {
        Some("target")
    } else {
        None
    }
}

/// The secret config keys of a record of `spec`, by its connector `type`: the built-in
/// connector's list, or what the plugin of that id marks in its schema.
fn secret_names(req: &HttpRequest, spec: &ResourceSpec, record: &records::Record) -> Vec<String> {
    let Some(kind) = connector_kind(spec) else {
        return Vec::new();
    };
    let connector_type = record
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let schema = req
        .app_data::<web::Data<crate::plugins::PluginRegistry>>()
        .and_then(|registry| registry.config_schema(kind, connector_type));
    secrets::secret_fields(spec.path, connector_type, schema.as_ref())
}

/// The plaintext config a write carries (its `"***"` resolved against `current`), checked
/// for values only the server may write; `None` when the write has no connector config.
fn plain_config(
    spec: &ResourceSpec,
    values: &records::Record,
    current: Option<&serde_json::Map<String, Value>>,
    secret: &[String],
) -> Result<Option<serde_json::Map<String, Value>>, ApiError> {
    let (Some(_), Some(Value::Object(config))) = (connector_kind(spec), values.get(CONFIG_FIELD))
    else {
        return Ok(None);
    };
    let plain = secrets::unmask(config, current, secret)?;
    secrets::check_reserved(&plain)?;
    Ok(Some(plain))
}

/// A record as every answer shows it: secret config values as `"***"`. Issuer and target
/// audit events written before secrets were masked are shown the same way.
pub fn present(
    req: &HttpRequest,
    spec: &ResourceSpec,
    mut record: records::Record,
) -> records::Record {
    if connector_kind(spec).is_some() {
        let secret = secret_names(req, spec, &record);
        if let Some(config) = record.get_mut(CONFIG_FIELD) {
            *config = secrets::redact(config, &secret);
        }
    } else if spec.path == audit::SPEC.path {
        let resource = match record.get("resource_type").and_then(Value::as_str) {
            Some("issuer") => &issuer::SPEC,
            Some("target") => &target::SPEC,
            _ => return record,
        };
        if let Some(Value::Object(details)) = record.get_mut("details") {
            let secret = secret_names(req, resource, details);
            if let Some(config) = details.get_mut(CONFIG_FIELD) {
                *config = secrets::redact(config, &secret);
            }
        }
    }
    record
}

/// Lets the parts of the system that cache a resource know it changed.
fn changed(state: &AppState, spec: &ResourceSpec) {
    if spec.path == issuer::SPEC.path {
        state.pipeline.issuers_changed();
    } else if spec.path == certificate::SPEC.path || spec.path == job::SPEC.path {
        state.pipeline.poke_processor();
    }
}

/// Answer for a method a route does not support.
pub async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}

/// Answer for a path no route serves.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}
