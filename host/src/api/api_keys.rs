//! API key management (admin only): create a named, role-bound key (the secret is shown
//! once and only its hash is stored), list, inspect, rotate and revoke. Revoking or rotating
//! a key closes the agent sessions opened with it at once.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::access::{Access, Routes};
use super::actions::{optional_object, string_field};
use super::auth::principal;
use super::error::{ApiError, parse_json};
use super::records::query_pairs;
use super::state::AppState;
use crate::actors::agent_hub::{Disconnect, DisconnectKey};
use crate::domain::audit::AuditEntry;
use crate::domain::role::Role;
use crate::store::{StoreError, api_keys, audit};

/// Key management routes.
pub fn routes(r: &mut Routes) {
    const K: &str = "/api/v1/api-keys";
    r.get(
        K,
        Access::ADMIN,
        "API keys (never their secrets); ?include_revoked=true lists revoked ones too",
        list,
    );
    r.post(K, Access::ADMIN, "Create a key (body: name, role admin|operator|viewer, optional expires_at); the secret is returned once", create)
        .status(201);
    r.get(format!("{K}/{{id}}"), Access::ADMIN, "One API key", get);
    r.delete(
        format!("{K}/{{id}}"),
        Access::ADMIN,
        "Revoke a key: its next call is refused; an agent key's sessions close",
        revoke,
    )
    .status(204);
    r.post(format!("{K}/{{id}}/rotate"), Access::ADMIN, "Replace a key's secret; the old secret stops working at once; the new one is returned once", rotate);
}

/// Names as they appear in audit events: short and plain.
fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'));
    if !ok {
        return Err(ApiError::field(
            "name",
            "name: 1 to 100 characters from A-Z a-z 0-9 - _ . @",
        ));
    }
    // A key's name is its actor in audit events and the API-call log, and an agent's key
    // is named by the agent's id: a user key may not pass for an agent, the system or an
    // anonymous caller (nor hold the name an agent will register under).
    let lower = name.to_ascii_lowercase();
    let agent_prefix = format!("{}-", crate::domain::agent::SPEC.id_prefix);
    if lower.starts_with(&agent_prefix) || lower == "system" || lower == "anonymous" {
        return Err(ApiError::field(
            "name",
            format!("name: \"{name}\" is reserved (agent ids {agent_prefix}…, system, anonymous)"),
        ));
    }
    Ok(())
}

async fn audit_key(state: &AppState, req: &HttpRequest, action: &str, key: &api_keys::ApiKey) {
    let entry = AuditEntry {
        actor: principal(req).actor,
        action: action.into(),
        resource_type: "api_key".into(),
        resource_id: key.id.clone(),
        details: json!({"name": key.name, "role": key.role, "agent_id": key.agent_id, "expires_at": key.expires_at}),
    };
    if let Err(e) = audit::append_alone(&state.store, &entry, &state.clock.now_text()).await {
        tracing::warn!(error = %e, key_id = %key.id, "could not audit an API key change");
    }
}

/// Closes the agent sessions `key` opened: all of its agent's for an agent key, the ones an
/// admin opened with it otherwise.
fn close_sessions(state: &AppState, key: &api_keys::ApiKey, reason: &'static str) {
    match &key.agent_id {
        Some(agent_id) => state.agent_hub.do_send(Disconnect {
            agent_id: agent_id.clone(),
            reason,
        }),
        None => state.agent_hub.do_send(DisconnectKey {
            key_id: key.id.clone(),
            reason,
        }),
    }
}

/// `POST /api-keys` → 201 `{"api_key": {...}, "key": "cctl_…"}`.
async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body = match parse_json(&body)? {
        Value::Object(m) => m,
        _ => return Err(ApiError::field("body", "body: must be a JSON object")),
    };
    let allowed = ["name", "role", "expires_at"];
    let name = string_field(&body, "name", &allowed)?
        .ok_or_else(|| ApiError::field("name", "name: is required"))?;
    check_name(&name)?;
    let role: Role = string_field(&body, "role", &allowed)?
        .ok_or_else(|| ApiError::field("role", "role: is required (admin, operator or viewer)"))?
        .parse()
        .map_err(|e: crate::domain::role::UnknownRole| {
            ApiError::field("role", format!("role: {e}"))
        })?;
    if role == Role::Agent {
        return Err(ApiError::field(
            "role",
            "role: agent keys are issued by POST /api/v1/agents/register",
        ));
    }
    let now = state.clock.now();
    let expires_at = match string_field(&body, "expires_at", &allowed)? {
        None => None,
        Some(text) => {
            let t = certctl_core::timestamp::parse(&text).map_err(|e| {
                ApiError::field(
                    "expires_at",
                    format!("expires_at: not an RFC 3339 time: {e}"),
                )
            })?;
            if t <= now {
                return Err(ApiError::field(
                    "expires_at",
                    "expires_at: must be in the future",
                ));
            }
            Some(certctl_core::timestamp::format(t))
        }
    };
    let creator = principal(&req).actor.name;
    let secret = api_keys::generate_key();
    let new = api_keys::NewKey {
        name: &name,
        role,
        agent_id: None,
        expires_at: expires_at.as_deref(),
        created_by: &creator,
    };
    let key = api_keys::insert(&state.store, &new, &secret, &state.clock.now_text()).await?;
    audit_key(&state, &req, "api_key_created", &key).await;
    tracing::info!(key_id = %key.id, name = %key.name, role = %key.role, "API key created");
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/api-keys/{}", key.id)))
        .json(json!({"api_key": key, "key": secret})))
}

/// `GET /api-keys[?include_revoked=true]`.
async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let mut include_revoked = false;
    for (k, v) in query_pairs(&req)? {
        match (k.as_str(), v.as_str()) {
            ("include_revoked", "true") => include_revoked = true,
            ("include_revoked", "false") => include_revoked = false,
            ("include_revoked", _) => {
                return Err(ApiError::field(
                    "include_revoked",
                    "include_revoked: true or false",
                ));
            }
            _ => {
                return Err(ApiError::field(
                    k,
                    "is not a query parameter here (only include_revoked)",
                ));
            }
        }
    }
    let keys = api_keys::list(&state.store, include_revoked).await?;
    let total = keys.len();
    Ok(HttpResponse::Ok().json(json!({"data": keys, "total": total})))
}

async fn find(state: &AppState, id: &str) -> Result<api_keys::ApiKey, ApiError> {
    api_keys::get(&state.store, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("API key {id} not found")))
}

/// `GET /api-keys/{id}`.
async fn get(state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(find(&state, &id).await?))
}

/// `DELETE /api-keys/{id}` → 204. Revoking the last working admin key is refused (409), so
/// nobody locks the installation out of its own administration by accident.
async fn revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let key = find(&state, &id).await?;
    if key.revoked_at.is_some() {
        return Ok(HttpResponse::NoContent().finish());
    }
    if key.role == Role::Admin.as_str() {
        // Another admin key must still authenticate afterwards: an expired one administers
        // nothing.
        let now = state.clock.now_text();
        let other_admins = api_keys::list(&state.store, false)
            .await?
            .into_iter()
            .filter(|k| k.id != key.id && k.role == Role::Admin.as_str())
            .filter(|k| k.expires_at.as_deref().is_none_or(|e| e > now.as_str()))
            .count();
        if other_admins == 0 {
            return Err(ApiError::Conflict(
                "this is the last working admin key; create another admin key first".into(),
            ));
        }
    }
    if !api_keys::revoke(&state.store, &id, &state.clock.now_text()).await? {
        return Ok(HttpResponse::NoContent().finish());
    }
    audit_key(&state, &req, "api_key_revoked", &key).await;
    close_sessions(&state, &key, "API key revoked");
    tracing::info!(key_id = %key.id, name = %key.name, "API key revoked");
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /api-keys/{id}/rotate` → 200 `{"api_key": {...}, "key": "cctl_…"}`; 409 when revoked.
async fn rotate(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body = optional_object(&body)?;
    if let Some(field) = body.keys().next() {
        return Err(ApiError::field(
            field.clone(),
            format!("{field}: unknown field (rotation takes no body)"),
        ));
    }
    let key = find(&state, &id).await?;
    if key.revoked_at.is_some() {
        return Err(ApiError::Conflict(format!("API key {id} is revoked")));
    }
    let secret = api_keys::generate_key();
    let rotated = api_keys::rotate(&state.store, &id, &secret, &state.clock.now_text())
        .await?
        .ok_or_else(|| StoreError::Conflict(format!("API key {id} was revoked meanwhile")))?;
    audit_key(&state, &req, "api_key_rotated", &rotated).await;
    // The old secret is dead, and so is any session opened with it.
    close_sessions(&state, &key, "API key rotated");
    Ok(HttpResponse::Ok().json(json!({"api_key": rotated, "key": secret})))
}
