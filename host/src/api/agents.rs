//! Agent endpoints beyond CRUD: registration with the bootstrap token, heartbeats, the work
//! list an agent polls, CSR submission and job status reports. An agent's own key may only
//! act as that agent.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};
use subtle::ConstantTimeEq as _;

use actix::{Actor as _, AsyncContext as _};

use super::actions::string_field;
use super::auth::{Principal, bearer, principal, resolve};
use super::error::{ApiError, parse_json};
use super::state::AppState;
use crate::actors::agent_session::AgentSession;
use crate::domain::audit::Actor;
use crate::domain::{agent, job};
use crate::secrets::ConfigOwner;
use crate::store::agents::{self, Heartbeat};
use crate::store::{StoreError, api_keys, records};

/// Routes under `/api/v1/agents/…`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/register", web::post().to(register))
        .route("/{id}/heartbeat", web::post().to(heartbeat))
        .route("/{id}/work", web::get().to(work))
        .route("/{id}/session", web::get().to(session))
        .route("/{id}/csr", web::post().to(submit_csr))
        .route("/{id}/jobs/{job_id}/status", web::post().to(report));
}

/// Only the agent itself (or an admin) may act as agent `id`.
fn ensure_self(p: &Principal, id: &str) -> Result<(), ApiError> {
    match &p.agent_id {
        Some(own) if own != id => Err(ApiError::Forbidden(format!(
            "this key belongs to agent {own}, not {id}"
        ))),
        Some(_) => Ok(()),
        None if p.admin => Ok(()),
        None => Err(ApiError::Forbidden(
            "only the agent itself or an admin key may do this".into(),
        )),
    }
}

/// `POST /agents/register` `{"name", "hostname"?, "id"?}` with `Authorization: Bearer <bootstrap token>`
/// (or an admin key when no token is configured) → 201 `{"agent": {...}, "api_key": "..."}`.
/// The key is shown once; only its hash is stored.
async fn register(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    match &state.agent_bootstrap_token {
        Some(token) => {
            // Checked before the body is parsed: no work for callers without the token.
            let presented = bearer(&req).unwrap_or_default();
            if !bool::from(presented.as_bytes().ct_eq(token.as_bytes())) {
                return Err(ApiError::Unauthorized(
                    "invalid_or_missing_bootstrap_token".into(),
                ));
            }
        }
        None => {
            let p = resolve(&req, &state).await?;
            if !p.admin {
                return Err(ApiError::Forbidden("registering an agent needs an admin key (or set CERTCTL_AGENT_BOOTSTRAP_TOKEN)".into()));
            }
        }
    }
    let body = parse_json(&body)?;
    let mut values = agent::SPEC.validate_create(&body)?;
    let id = match values.remove("id").or_else(|| body.get("id").cloned()) {
        Some(Value::String(id)) => {
            certctl_core::id::validate(agent::SPEC.id_prefix, &id)
                .map_err(|e| ApiError::field("id", format!("id: {e}")))?;
            id
        }
        Some(Value::Null) | None => records::new_id(agent::SPEC.id_prefix),
        Some(_) => return Err(ApiError::field("id", "id: must be a string")),
    };
    let now = state.clock.now_text();
    let actor = Actor {
        name: id.clone(),
        kind: crate::domain::audit::ActorKind::Agent,
    };
    let record = records::create(&state.store, &agent::SPEC, &id, values, &now, &actor).await?;
    let key = api_keys::generate_key();
    api_keys::upsert(&state.store, &id, &key, false, Some(&id), &now).await?;
    tracing::info!(agent_id = %id, "agent registered");
    Ok(HttpResponse::Created().json(json!({"agent": record, "api_key": key})))
}

/// `POST /agents/{id}/heartbeat` `{"os","architecture","ip_address","hostname","version"}` → 200 with the agent.
async fn heartbeat(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    ensure_self(&principal(&req), &id)?;
    let hb: Heartbeat = if body.iter().all(u8::is_ascii_whitespace) {
        Heartbeat::default()
    } else {
        serde_json::from_value(parse_json(&body)?)
            .map_err(|e| ApiError::field("body", format!("heartbeat: {e}")))?
    };
    if !agents::heartbeat(&state.store, &id, &hb, &state.clock.now_text()).await? {
        return Err(ApiError::NotFound(format!("agent {id} not found")));
    }
    Ok(HttpResponse::Ok().json(records::get(&state.store, &agent::SPEC, &id).await?))
}

/// `GET /agents/{id}/work` → `{"data": [...]}`: CSRs to generate and deployments to perform.
async fn work(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    ensure_self(&principal(&req), &id)?;
    match records::get(&state.store, &agent::SPEC, &id).await {
        Err(StoreError::NotFound { .. }) => {
            return Err(ApiError::NotFound(format!("agent {id} not found")));
        }
        other => other?,
    };
    let mut items = agents::work(&state.store, &id, &state.clock.now_text()).await?;
    // The agent deploys with the target's secrets, so its work carries them in clear
    // (over the agent's own authenticated connection), and nowhere else does.
    items.retain_mut(|item| {
        let Some(target_id) = item.get("target_id").and_then(Value::as_str).map(str::to_owned)
        else {
            return true;
        };
        let Some(config) = item.get_mut("target_config") else {
            return true;
        };
        let owner = ConfigOwner {
            resource: crate::domain::target::SPEC.singular,
            id: &target_id,
        };
        match state.config_secrets.reveal_value(owner, config) {
            Ok(plain) => {
                *config = plain;
                true
            }
            Err(e) => {
                // One unreadable target must not hold back the agent's other work.
                tracing::error!(target_id = %target_id, error = %e, "target config secrets do not decrypt; deployment withheld");
                false
            }
        }
    });
    let total = items.len();
    Ok(HttpResponse::Ok().json(json!({"data": items, "total": total})))
}

/// `GET /agents/{id}/session`: the agent-initiated WebSocket over which the server nudges the
/// agent the moment it has work (one [`AgentSession`] actor per connection).
async fn session(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, actix_web::Error> {
    ensure_self(&principal(&req), &id)?;
    match records::get(&state.store, &agent::SPEC, &id).await {
        Err(StoreError::NotFound { .. }) => {
            return Err(ApiError::NotFound(format!("agent {id} not found")).into());
        }
        other => other.map_err(ApiError::from)?,
    };
    let hub = state.agent_hub.clone();
    let (response, ws, stream) = actix_ws::handle(&req, body)?;
    let stream = stream
        .aggregate_continuations()
        .max_continuation_size(64 * 1024);
    let pipeline = state.pipeline.clone();
    let agent_id = id.into_inner();
    AgentSession::create(move |ctx| {
        ctx.add_stream(stream);
        AgentSession::new(agent_id, ws, hub, pipeline)
    });
    Ok(response)
}

/// `POST /agents/{id}/csr` `{"job_id", "csr_pem"}` → 202 with the job (back in the queue).
/// A CSR that fails a check is a 400 naming the problem, and the job keeps waiting.
async fn submit_csr(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body = parse_json(&body)?;
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::field("body", "body: must be a JSON object"))?;
    let allowed = ["job_id", "csr_pem"];
    let job_id = string_field(obj, "job_id", &allowed)?
        .ok_or_else(|| ApiError::field("job_id", "job_id: is required"))?;
    let csr_pem = string_field(obj, "csr_pem", &allowed)?
        .ok_or_else(|| ApiError::field("csr_pem", "csr_pem: is required"))?;
    let p = principal(&req);
    let job = state
        .pipeline
        .submit_csr(&id, &job_id, &csr_pem, &p.actor, p.agent_id.as_deref())
        .await?;
    Ok(HttpResponse::Accepted().json(records::get(&state.store, &job::SPEC, &job.id).await?))
}

/// `POST /agents/{id}/jobs/{job_id}/status` `{"status": "Running"|"Completed"|"Failed", "message"?}` → 200 with the job.
async fn report(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (id, job_id) = path.into_inner();
    let body = parse_json(&body)?;
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::field("body", "body: must be a JSON object"))?;
    let allowed = ["status", "message"];
    let status = string_field(obj, "status", &allowed)?
        .ok_or_else(|| ApiError::field("status", "status: is required"))?;
    if !matches!(status.as_str(), "Running" | "Completed" | "Failed") {
        return Err(ApiError::field(
            "status",
            format!("status: unknown value \"{status}\" (allowed: Running, Completed, Failed)"),
        ));
    }
    let message = string_field(obj, "message", &allowed)?;
    let p = principal(&req);
    ensure_self(&p, &id)?;
    let job = state
        .pipeline
        .report_job(
            &id,
            &job_id,
            &status,
            message,
            &p.actor,
            p.agent_id.as_deref(),
        )
        .await?;
    Ok(HttpResponse::Ok().json(records::get(&state.store, &job::SPEC, &job.id).await?))
}
