//! Generic handlers for every [`ResourceSpec`]: list, get, create, update, delete.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::auth::principal;
use super::error::{ApiError, parse_json};
use super::state::AppState;
use crate::domain::listing::{self, Paging};
use crate::domain::resource::{DeleteMode, FieldError, FieldKind, ResourceSpec};
use crate::domain::{certificate, issuer, job};
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
        .map(|r| project(r, q.fields.as_ref()))
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
    Ok(HttpResponse::Ok().json(project(row, fields.as_ref())))
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
    if spec.path == issuer::SPEC.path {
        super::issuers::validate(&state, &values)?;
    }
    let after = (spec.path == certificate::SPEC.path)
        .then_some(super::certificates::after_create as records::AfterCreate);
    let now = state.clock.now_text();
    let actor = principal(&req).actor;
    let record = records::create_with(&state.store, spec, &id, values, &now, &actor, after).await?;
    changed(&state, spec);
    Ok(HttpResponse::build(StatusCode::CREATED)
        .insert_header(("Location", format!("/api/v1/{}/{id}", spec.path)))
        .json(Value::Object(record)))
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
    let changes = spec.validate_update(&body, &current)?;
    check_connectors(&req, spec, &changes)?;
    check_job_assignment(&req, spec, &changes)?;
    if spec.path == issuer::SPEC.path {
        let mut merged = current.clone();
        merged.extend(changes.clone());
        super::issuers::validate(&state, &merged)?;
    }
    let now = state.clock.now_text();
    let record = records::update(
        &state.store,
        spec,
        &id,
        changes,
        &now,
        &principal(&req).actor,
    )
    .await?;
    changed(&state, spec);
    Ok(HttpResponse::Ok().json(Value::Object(record)))
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
