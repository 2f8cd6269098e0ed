//! Route registration with access control: every route is declared with the role it needs
//! in the same call that registers it ([`Routes::add`]), and that declaration is the only
//! place the decision is made. Each actix resource is wrapped by `authorize`, which runs
//! after routing — on the path actix matched, so percent-encoding, `//` or dot segments
//! cannot reach a handler by another spelling than the one that was checked.
//!
//! The same table feeds the OpenAPI document (`x-certctl-role` per operation), so the
//! document, the router and the tests that walk it cannot disagree.

use std::rc::Rc;
use std::time::Instant;

use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::{Next, from_fn};
use actix_web::{
    FromRequest, Handler, HttpMessage as _, HttpRequest, Responder, ResponseError as _, web,
};
use serde_json::json;

use super::auth::{self, Principal};
use super::error::ApiError;
use super::state::AppState;
use crate::domain::audit::{ActorKind, AuditEntry};
use crate::domain::role::Role;
use crate::store::audit;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credentials; rate-limited by client IP.
    Public,
    /// No credentials and no rate limit: relying parties and probes (OCSP, CRL, `/health`)
    /// must answer at whatever volume they are asked.
    PublicUnmetered,
    /// No credentials, but the route takes a credential in its body or header (agent
    /// registration, credential check): the stricter per-IP credential bucket applies.
    PublicCredential,
    /// A key whose role satisfies this one (see [`Role::satisfies`]). For [`Role::Agent`]
    /// an agent key must also be the agent named by the `{id}` path parameter.
    Role(Role),
}

impl Access {
    /// Read-only access (viewer and up).
    pub const VIEWER: Access = Access::Role(Role::Viewer);
    /// Lifecycle operations (operator and up).
    pub const OPERATOR: Access = Access::Role(Role::Operator);
    /// Administration (keys, plugins, teams, owners, agents).
    pub const ADMIN: Access = Access::Role(Role::Admin);
    /// The agent named by `{id}` itself (or an admin).
    pub const AGENT_SELF: Access = Access::Role(Role::Agent);

    /// The name served in the OpenAPI document and the README's role table.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Public | Access::PublicUnmetered | Access::PublicCredential => "public",
            Access::Role(r) => r.as_str(),
        }
    }

    /// Whether the route needs credentials.
    pub fn authenticated(self) -> bool {
        matches!(self, Access::Role(_))
    }
}

/// One registered operation.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// HTTP method.
    pub method: Method,
    /// Full path pattern (`/api/v1/jobs/{id}/cancel`).
    pub path: String,
    /// Who may call it.
    pub access: Access,
    /// One-line summary for the OpenAPI document.
    pub summary: &'static str,
    /// Success status.
    pub success: u16,
}

type DataFn = Box<dyn FnOnce(actix_web::Resource) -> actix_web::Resource>;

struct Entry {
    path: String,
    endpoints: Vec<Endpoint>,
    routes: Vec<actix_web::Route>,
    data: Vec<DataFn>,
}

/// The route table under construction. Declaring a route here both registers it (on
/// [`Routes::register`]) and records it (for [`Routes::endpoints`]); nothing else registers
/// routes, so "every route has a declared role" holds by construction and the tests check
/// the table against the server.
#[derive(Default)]
pub struct Routes {
    entries: Vec<Entry>,
}

/// Handle to the endpoint just declared, to adjust its documentation.
#[derive(Debug)]
pub struct EndpointMut<'a>(&'a mut Endpoint);

impl EndpointMut<'_> {
    /// The success status when it is not 200.
    pub fn status(self, code: u16) -> Self {
        self.0.success = code;
        self
    }
}

/// `get`, `post`, … as [`Routes::add`] with the method fixed.
macro_rules! method_shorthands {
    ($($(#[$doc:meta])* $name:ident => $method:ident,)*) => {$(
        $(#[$doc])*
        pub fn $name<F, Args>(
            &mut self,
            path: impl Into<String>,
            access: Access,
            summary: &'static str,
            handler: F,
        ) -> EndpointMut<'_>
        where
            F: Handler<Args>,
            Args: FromRequest + 'static,
            F::Output: Responder + 'static,
        {
            self.add(Method::$method, path, access, summary, handler)
        }
    )*};
}

impl Routes {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares `method path` served by `handler`, callable by `access`.
    pub fn add<F, Args>(
        &mut self,
        method: Method,
        path: impl Into<String>,
        access: Access,
        summary: &'static str,
        handler: F,
    ) -> EndpointMut<'_>
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let path = path.into();
        let idx = self.entry(&path);
        let entry = &mut self.entries[idx];
        entry.routes.push(web::method(method.clone()).to(handler));
        entry.endpoints.push(Endpoint {
            method,
            path,
            access,
            summary,
            success: 200,
        });
        let last = entry.endpoints.len() - 1;
        EndpointMut(&mut entry.endpoints[last])
    }

    method_shorthands! {
        /// `GET`.
        get => GET,
        /// `POST`.
        post => POST,
        /// `PUT`.
        put => PUT,
        /// `DELETE`.
        delete => DELETE,
    }

    /// Attaches app data to the resource at `path` (declared before or after its routes).
    pub fn data<U: 'static>(&mut self, path: impl Into<String>, data: U) {
        let path = path.into();
        let idx = self.entry(&path);
        self.entries[idx]
            .data
            .push(Box::new(move |r: actix_web::Resource| r.app_data(data)));
    }

    fn entry(&mut self, path: &str) -> usize {
        if let Some(i) = self.entries.iter().position(|e| e.path == path) {
            return i;
        }
        self.entries.push(Entry {
            path: path.to_owned(),
            endpoints: Vec::new(),
            routes: Vec::new(),
            data: Vec::new(),
        });
        self.entries.len() - 1
    }

    /// Every declared operation, in declaration order.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        self.entries
            .iter()
            .flat_map(|e| e.endpoints.iter().cloned())
            .collect()
    }

    /// Registers every resource, literal paths before parametric ones at each segment (so
    /// `/certificates/bulk-revoke` is not swallowed by `/certificates/{id}`), each wrapped
    /// by `authorize` with its own method table.
    pub fn register(self, cfg: &mut web::ServiceConfig) {
        let mut entries = self.entries;
        entries.sort_by_key(|e| specificity(&e.path));
        for entry in entries {
            let table: Rc<Vec<(Method, Access)>> = Rc::new(
                entry
                    .endpoints
                    .iter()
                    .map(|e| (e.method.clone(), e.access))
                    .collect(),
            );
            let mut resource = web::resource(entry.path.clone());
            for route in entry.routes {
                resource = resource.route(route);
            }
            for data in entry.data {
                resource = data(resource);
            }
            let resource = resource
                .default_service(web::to(method_not_allowed))
                .wrap(from_fn(move |req: ServiceRequest, next: Next<BoxBody>| {
                    let table = table.clone();
                    async move { authorize(req, next, &table).await }
                }));
            cfg.service(resource);
        }
    }
}

/// Sort key: per segment, 0 for a literal and 1 for a `{param}`.
fn specificity(path: &str) -> Vec<u8> {
    path.split('/')
        .map(|s| u8::from(s.starts_with('{')))
        .collect()
}

async fn method_not_allowed() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}

fn client_ip(req: &HttpRequest) -> String {
    req.peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Takes a token from the caller's bucket (`None` when rate limiting is off).
fn throttle(
    state: &AppState,
    bucket: &str,
    credential: bool,
    principal: Option<&Principal>,
) -> Result<(), ApiError> {
    let Some(rl) = &state.rate_limit else {
        return Ok(());
    };
    let (key, rate) = match principal {
        Some(p) if p.actor.kind != ActorKind::Anonymous => {
            (format!("key:{}", p.actor.name), rl.per_key)
        }
        _ if credential => (format!("cred:{bucket}"), rl.credential),
        _ => (format!("ip:{bucket}"), rl.per_ip),
    };
    rl.limiter
        .check(&key, rate, Instant::now())
        .map_err(|retry_after| ApiError::TooManyRequests { retry_after })
}

/// Resolves the caller for a route that needs credentials; failed attempts count against
/// the client IP's bucket, which slows key guessing.
pub async fn authenticate(req: &HttpRequest, state: &AppState) -> Result<Principal, ApiError> {
    let ip = client_ip(req);
    match auth::resolve(req, state).await {
        Ok(p) => {
            throttle(state, &ip, false, Some(&p))?;
            Ok(p)
        }
        Err(e) => {
            throttle(state, &ip, false, None)?;
            Err(e)
        }
    }
}

/// The decision for an authenticated caller, apart from I/O.
fn decide(required: Access, principal: &Principal, path_agent: Option<&str>) -> Result<(), String> {
    let Access::Role(required) = required else {
        return Ok(());
    };
    if !principal.role.satisfies(required) {
        return Err(format!(
            "this route needs the {required} role; this key has the {} role",
            principal.role
        ));
    }
    if required == Role::Agent && principal.role == Role::Agent {
        match (principal.agent_id.as_deref(), path_agent) {
            (Some(own), Some(named)) if own == named => {}
            (Some(own), Some(named)) => {
                return Err(format!("this key belongs to agent {own}, not {named}"));
            }
            _ => return Err("an agent key may act only as its own agent".into()),
        }
    }
    Ok(())
}

/// Middleware of every resource: authenticates, rate-limits and authorises by the method's
/// declared [`Access`]. A method the resource does not serve still needs valid credentials
/// (then 405), so nothing about the route table leaks to anonymous callers.
async fn authorize(
    req: ServiceRequest,
    next: Next<BoxBody>,
    table: &[(Method, Access)],
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        let e = ApiError::Internal("route without application state".into());
        return Ok(req.into_response(e.error_response()));
    };
    // A method the resource does not serve: any valid credentials, then the 405.
    let declared = table
        .iter()
        .find(|(m, _)| m == req.method())
        .map(|(_, a)| *a);
    let access = declared.unwrap_or(Access::VIEWER);
    let unknown_method = declared.is_none();
    match access {
        Access::PublicUnmetered => next.call(req).await,
        Access::Public | Access::PublicCredential => {
            let ip = client_ip(req.request());
            if let Err(e) = throttle(&state, &ip, access == Access::PublicCredential, None) {
                return Ok(req.into_response(e.error_response()));
            }
            let route = RouteRef::of(&req);
            let resp = next.call(req).await?;
            if resp.status() == actix_web::http::StatusCode::FORBIDDEN {
                // A public route that checks a credential itself (registration without a
                // bootstrap token needs an admin key) refused the one it was given.
                let principal = auth::principal(resp.request());
                deny_audit(&state, &route, &principal, access, "refused by the handler").await;
            }
            Ok(resp)
        }
        Access::Role(_) => {
            let principal = match authenticate(req.request(), &state).await {
                Ok(p) => p,
                Err(e) => return Ok(req.into_response(e.error_response())),
            };
            let route = RouteRef::of(&req);
            if !unknown_method {
                let path_agent = req.match_info().get("id").map(str::to_owned);
                if let Err(why) = decide(access, &principal, path_agent.as_deref()) {
                    deny_audit(&state, &route, &principal, access, &why).await;
                    req.extensions_mut().insert(principal);
                    let e = ApiError::Forbidden(why);
                    return Ok(req.into_response(e.error_response()));
                }
            }
            req.extensions_mut().insert(principal.clone());
            let resp = next.call(req).await?;
            if resp.status() == actix_web::http::StatusCode::FORBIDDEN {
                // Refused by the handler (e.g. a job that is not this agent's).
                deny_audit(&state, &route, &principal, access, "refused by the handler").await;
            }
            Ok(resp)
        }
    }
}

/// The route a request matched, for audit events.
struct RouteRef {
    method: String,
    pattern: String,
    path: String,
}

impl RouteRef {
    fn of(req: &ServiceRequest) -> Self {
        RouteRef {
            method: req.method().to_string(),
            pattern: req.match_pattern().unwrap_or_else(|| req.path().to_owned()),
            path: req.path().to_owned(),
        }
    }
}

/// Appends an `access_denied` audit event for a 403.
async fn deny_audit(
    state: &AppState,
    route: &RouteRef,
    principal: &Principal,
    access: Access,
    why: &str,
) {
    let entry = AuditEntry {
        actor: principal.actor.clone(),
        action: "access_denied".into(),
        resource_type: "route".into(),
        resource_id: format!("{} {}", route.method, route.pattern),
        details: json!({
            "path": route.path,
            "required_role": access.as_str(),
            "role": principal.role.as_str(),
            "agent_id": principal.agent_id,
            "key_id": principal.key_id,
            "reason": why,
        }),
    };
    if let Err(e) = audit::append_alone(&state.store, &entry, &state.clock.now_text()).await {
        tracing::warn!(error = %e, "could not audit a refused call");
    }
    tracing::warn!(actor = %principal.actor.name, role = %principal.role, path = %route.path, reason = why, "access denied");
}

/// Whether `path` is under `/api/`, after full percent-decoding and in any letter case:
/// such a path is never the dashboard's, so it gets the API's answers (401, then 404).
pub fn is_api_path(path: &str) -> bool {
    let decoded = percent_decode(path).to_ascii_lowercase();
    decoded == "/api" || decoded.starts_with("/api/")
}

fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|b| (*b as char).to_digit(16)),
                bytes.get(i + 2).and_then(|b| (*b as char).to_digit(16)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The App's last resort: a path under `/api/` that no route serves answers 401 without
/// valid credentials and 404 with them; anything else is the dashboard's.
pub async fn fallback(req: HttpRequest) -> actix_web::HttpResponse {
    if !is_api_path(req.path()) {
        return super::dashboard::serve(req).await;
    }
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return ApiError::Internal("no application state".into()).error_response();
    };
    let outcome = match authenticate(&req, &state).await {
        Ok(principal) => {
            req.extensions_mut().insert(principal);
            ApiError::NotFound(format!("no route for {} {}", req.method(), req.path()))
        }
        Err(e) => e,
    };
    outcome.error_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::audit::Actor;

    fn key(role: Role, agent: Option<&str>) -> Principal {
        Principal {
            actor: Actor {
                name: "k".into(),
                kind: if agent.is_some() {
                    ActorKind::Agent
                } else {
                    ActorKind::User
                },
            },
            role,
            agent_id: agent.map(str::to_owned),
            key_id: Some("key-1".into()),
        }
    }

    #[test]
    fn agent_routes_admit_only_the_named_agent_or_an_admin() {
        let own = key(Role::Agent, Some("ag-a"));
        assert!(decide(Access::AGENT_SELF, &own, Some("ag-a")).is_ok());
        assert!(decide(Access::AGENT_SELF, &own, Some("ag-b")).is_err());
        assert!(decide(Access::AGENT_SELF, &own, None).is_err());
        assert!(decide(Access::AGENT_SELF, &key(Role::Admin, None), Some("ag-b")).is_ok());
        assert!(decide(Access::AGENT_SELF, &key(Role::Operator, None), Some("ag-b")).is_err());
        assert!(decide(Access::VIEWER, &own, None).is_err());
        assert!(decide(Access::OPERATOR, &key(Role::Viewer, None), None).is_err());
        assert!(decide(Access::VIEWER, &key(Role::Viewer, None), None).is_ok());
    }

    #[test]
    fn api_paths_in_any_spelling() {
        for p in [
            "/api/v1/x",
            "/API/v1/x",
            "/%61pi/v1",
            "/Api",
            "/api%2Fv1/certificates",
        ] {
            assert!(is_api_path(p), "{p}");
        }
        for p in ["/", "/assets/app.js", "/apiary", "/certificates"] {
            assert!(!is_api_path(p), "{p}");
        }
    }

    #[test]
    fn literal_segments_sort_before_parameters() {
        let mut paths = [
            "/api/v1/certificates/{id}",
            "/api/v1/certificates/bulk-revoke",
            "/api/v1/audit/{id}",
            "/api/v1/audit/api-calls",
        ];
        paths.sort_by_key(|p| specificity(p));
        let pos = |p: &str| paths.iter().position(|x| *x == p).unwrap();
        assert!(pos("/api/v1/certificates/bulk-revoke") < pos("/api/v1/certificates/{id}"));
        assert!(pos("/api/v1/audit/api-calls") < pos("/api/v1/audit/{id}"));
    }
}
