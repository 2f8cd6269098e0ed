//! Agent endpoints beyond CRUD: registration with the bootstrap token, heartbeats, the work
//! list an agent polls, CSR submission and job status reports. An agent's own key may only
//! act as that agent.

use actix_web::{HttpMessage as _, HttpRequest, HttpResponse, web};
use serde_json::{Value, json};
use subtle::ConstantTimeEq as _;

use actix::{Actor as _, AsyncContext as _};

use super::access::{Access, Routes};
use super::actions::string_field;
use super::auth::{bearer, principal, resolve};
use super::error::{ApiError, parse_json};
use super::state::AppState;
use crate::actors::agent_hub::Disconnect;
use crate::actors::agent_session::AgentSession;
use crate::domain::audit::Actor;
use crate::domain::role::Role;
use crate::domain::{agent, job};
use crate::secrets::ConfigOwner;
use crate::store::agents::{self, Heartbeat};
use crate::store::{StoreError, api_keys, records};

/// Agent routes: registration is public (it checks the bootstrap token itself); the rest
/// are the named agent's own (or an admin's); retirement is an admin's.
pub fn routes(r: &mut Routes) {
    const A: &str = "/api/v1/agents";
    r.post(
        format!("{A}/register"),
        Access::PublicCredential,
        "Register an agent with the bootstrap token (or an admin key); returns its API key once",
        register,
    )
    .status(201);
    r.post(
        format!("{A}/{{id}}/heartbeat"),
        Access::AGENT_SELF,
        "Agent heartbeat (OS, arch, IP, hostname, version)",
        heartbeat,
    );
    r.get(
        format!("{A}/{{id}}/work"),
        Access::AGENT_SELF,
        "Work the agent can act on now (CSRs, deployments)",
        work,
    );
    r.get(
        format!("{A}/{{id}}/session"),
        Access::AGENT_SELF,
        "Agent-initiated WebSocket: the server nudges {\"type\":\"work\"} when work is actionable",
        session,
    )
    .status(101);
    r.post(format!("{A}/{{id}}/csr"), Access::AGENT_SELF, "Submit the CSR for a job awaiting one and assigned to this agent (body: job_id, csr_pem; 202)", submit_csr)
        .status(202);
    r.post(
        format!("{A}/{{id}}/jobs/{{job_id}}/status"),
        Access::AGENT_SELF,
        "Agent reports the status of a job assigned to it",
        report,
    );
    r.post(
        format!("{A}/{{id}}/retire"),
        Access::ADMIN,
        "Retire the agent: the record stays, its keys are revoked and its sessions closed",
        retire,
    );
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
            if !p.is_admin() {
                // Named in the `access_denied` audit event the access layer writes for a 403.
                req.extensions_mut().insert(p);
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
    let new_key = api_keys::NewKey {
        name: &id,
        role: Role::Agent,
        agent_id: Some(&id),
        expires_at: None,
        created_by: &id,
    };
    api_keys::insert(&state.store, &new_key, &key, &now).await?;
    tracing::info!(agent_id = %id, "agent registered");
    Ok(HttpResponse::Created().json(json!({"agent": record, "api_key": key})))
}

/// `POST /agents/{id}/heartbeat` `{"os","architecture","ip_address","hostname","version"}` → 200 with the agent.
async fn heartbeat(
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
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
async fn work(state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
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
    let key_id = principal(&req).key_id;
    AgentSession::create(move |ctx| {
        ctx.add_stream(stream);
        AgentSession::new(agent_id, ws, hub, pipeline, key_id)
    });
    Ok(response)
}

/// `POST /agents/{id}/retire` (admin) → 200 with the agent; `DELETE /agents/{id}` → 204.
/// The record stays, every key of the agent is revoked and its open sessions are closed;
/// retiring twice is a no-op.
async fn retire(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    retire_agent(&req, &state, &id).await?;
    Ok(HttpResponse::Ok().json(records::get(&state.store, &agent::SPEC, &id).await?))
}

/// `DELETE /agents/{id}`: soft retirement, as `POST /agents/{id}/retire`.
pub async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    retire_agent(&req, &state, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn retire_agent(req: &HttpRequest, state: &AppState, id: &str) -> Result<(), ApiError> {
    let actor = principal(req).actor;
    match agents::retire(&state.store, id, &state.clock.now_text(), &actor).await? {
        agents::Retired::NotFound => Err(ApiError::NotFound(format!("agent {id} not found"))),
        agents::Retired::Already => Ok(()),
        agents::Retired::Now { revoked_keys } => {
            tracing::info!(agent_id = %id, keys = revoked_keys.len(), "agent retired; keys revoked");
            state.agent_hub.do_send(Disconnect {
                agent_id: id.to_owned(),
                reason: "agent retired",
            });
            Ok(())
        }
    }
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
