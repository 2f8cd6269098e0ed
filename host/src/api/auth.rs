//! Who the caller is: the bearer key resolved to a [`Principal`], and the auth endpoints.
//! What the caller may do is decided per route in [`super::access`].

use actix_web::{HttpMessage as _, HttpRequest, HttpResponse, web};
use serde_json::json;

use super::error::ApiError;
use super::state::AppState;
use crate::config::AuthType;
use crate::domain::audit::{Actor, ActorKind};
use crate::domain::role::Role;
use crate::store::api_keys::{self, Lookup};

/// The authenticated caller, stored in the request's extensions.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Who, for audit events.
    pub actor: Actor,
    /// What the key may do.
    pub role: Role,
    /// Set when the caller is an agent.
    pub agent_id: Option<String>,
    /// The key used (none when authentication is off).
    pub key_id: Option<String>,
}

impl Principal {
    /// Authentication is off (`CERTCTL_AUTH_TYPE=none`): everybody is an anonymous admin.
    fn anonymous() -> Self {
        Principal {
            actor: Actor {
                name: "anonymous".into(),
                kind: ActorKind::Anonymous,
            },
            role: Role::Admin,
            agent_id: None,
            key_id: None,
        }
    }

    /// Whether the caller holds the admin role.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

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
    let owner = match api_keys::find(&state.store, token, &state.clock.now_text()).await? {
        Lookup::Valid(owner) => owner,
        Lookup::Revoked => return Err(ApiError::Unauthorized("API key revoked".into())),
        Lookup::Expired => return Err(ApiError::Unauthorized("API key expired".into())),
        Lookup::Unknown => return Err(ApiError::Unauthorized("invalid API key".into())),
    };
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
        role: owner.role,
        agent_id: owner.agent_id,
        key_id: Some(owner.id),
    })
}

/// The caller resolved by the route's access check ([`super::access`]); on public routes,
/// which never act on it, an anonymous viewer.
pub fn principal(req: &HttpRequest) -> Principal {
    req.extensions()
        .get::<Principal>()
        .cloned()
        .unwrap_or_else(|| Principal {
            actor: Actor {
                name: "anonymous".into(),
                kind: ActorKind::Anonymous,
            },
            role: Role::Viewer,
            agent_id: None,
            key_id: None,
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
        "role": p.role.as_str(),
        "admin": p.is_admin(),
        "agent_id": p.agent_id,
    })))
}
