//! Authentication and rate limiting of `/api/v1` calls, and the auth endpoints.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpMessage as _, HttpRequest, HttpResponse, ResponseError as _, web};
use serde_json::json;

use super::error::ApiError;
use super::state::AppState;
use crate::config::AuthType;
use crate::domain::audit::{Actor, ActorKind};
use crate::store::api_keys;

/// The authenticated caller, stored in the request's extensions.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Who, for audit events.
    pub actor: Actor,
    /// May use admin-only endpoints.
    pub admin: bool,
    /// Set when the caller is an agent.
    pub agent_id: Option<String>,
}

impl Principal {
    fn anonymous() -> Self {
        Principal {
            actor: Actor {
                name: "anonymous".into(),
                kind: ActorKind::Anonymous,
            },
            admin: true,
            agent_id: None,
        }
    }
}

/// Paths under `/api/v1` that answer without credentials.
const PUBLIC: &[&str] = &[
    "/api/v1/agents/register",
    "/api/v1/auth/info",
    "/api/v1/auth/check",
    "/api/v1/openapi.json",
];

pub(crate) fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Resolves the caller from the `Authorization` header.
pub async fn resolve(req: &HttpRequest, state: &AppState) -> Result<Principal, ApiError> {
    if state.auth_type == AuthType::None {
        return Ok(Principal::anonymous());
    }
    let token = bearer(req).ok_or_else(|| {
        ApiError::Unauthorized("missing credentials: send Authorization: Bearer <api key>".into())
    })?;
    let owner = api_keys::find(&state.store, token)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("invalid API key".into()))?;
    let kind = if owner.agent_id.is_some() {
        ActorKind::Agent
    } else {
        ActorKind::User
    };
    Ok(Principal {
        actor: Actor {
            name: owner.name,
            kind,
        },
        admin: owner.admin,
        agent_id: owner.agent_id,
    })
}

fn client_ip(req: &ServiceRequest) -> String {
    req.peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Middleware: authenticates `/api/v1` requests (except the public ones) and applies the
/// caller's token bucket. Failures are answered here with the standard error body.
pub async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let path = req.path();
    if !path.starts_with("/api/v1") || PUBLIC.contains(&path) {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let ip = client_ip(&req);
    let principal = match resolve(req.request(), &state).await {
        Ok(p) => p,
        Err(e) => {
            // Failed attempts count against the IP's bucket, which slows key guessing.
            if let Some(rl) = &state.rate_limit
                && let Err(retry_after) =
                    rl.limiter
                        .check(&format!("ip:{ip}"), rl.per_ip, Instant::now())
            {
                let resp = ApiError::TooManyRequests { retry_after }.error_response();
                return Ok(req.into_response(resp).map_into_right_body());
            }
            return Ok(req.into_response(e.error_response()).map_into_right_body());
        }
    };
    if let Some(rl) = &state.rate_limit {
        let (key, rate) = match principal.actor.kind {
            ActorKind::Anonymous => (format!("ip:{ip}"), rl.per_ip),
            _ => (format!("key:{}", principal.actor.name), rl.per_key),
        };
        if let Err(retry_after) = rl.limiter.check(&key, rate, Instant::now()) {
            let resp = ApiError::TooManyRequests { retry_after }.error_response();
            return Ok(req.into_response(resp).map_into_right_body());
        }
    }
    req.extensions_mut().insert(principal);
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// The caller resolved by [`authenticate`]; anonymous when auth is off.
pub fn principal(req: &HttpRequest) -> Principal {
    req.extensions()
        .get::<Principal>()
        .cloned()
        .unwrap_or_else(|| Principal {
            actor: Actor {
                name: "anonymous".into(),
                kind: ActorKind::Anonymous,
            },
            admin: false,
            agent_id: None,
        })
}

/// `GET /api/v1/auth/info`: tells the dashboard whether to show a sign-in form.
pub async fn info(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(certctl_core::api::AuthInfo {
        auth_type: state.auth_type.as_str().to_owned(),
    })
}

/// `GET /api/v1/auth/check`: 200 with the caller's identity when the credentials are valid.
pub async fn check(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let p = resolve(&req, &state).await?;
    Ok(HttpResponse::Ok().json(json!({
        "valid": true,
        "auth_type": state.auth_type.as_str(),
        "actor": p.actor.name,
        "actor_type": p.actor.kind.as_str(),
        "admin": p.admin,
    })))
}
