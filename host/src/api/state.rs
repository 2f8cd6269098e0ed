//! What every handler shares: the store, the clock and the request-pipeline settings.

use std::sync::Arc;

use super::rate_limit::{Rate, RateLimiter};
use crate::clock::Clock;
use crate::config::AuthType;
use crate::issuer::{ConnectorContext, ConnectorTypes};
use crate::pipeline::Pipeline;
use crate::store::Store;
use crate::store::api_calls::ApiCallLog;

/// Shared application state, one instance behind `web::Data`.
#[derive(Debug)]
pub struct AppState {
    /// Storage.
    pub store: Store,
    /// Time source.
    pub clock: Arc<dyn Clock>,
    /// How callers authenticate.
    pub auth_type: AuthType,
    /// Request body limit in bytes.
    pub max_body_size: usize,
    /// Rate limiting, when enabled.
    pub rate_limit: Option<RateLimits>,
    /// Bounded queue to the API-call log writer (drained at shutdown), and the request
    /// counters (dropped records, OCSP and CRL requests).
    pub api_call_log: ApiCallLog,
    /// The issuance pipeline (jobs, CSRs, renewals).
    pub pipeline: Arc<Pipeline>,
    /// Issuer connector types, to validate issuer configs.
    pub issuer_types: ConnectorTypes,
    /// Shared connector resources.
    pub connector_ctx: ConnectorContext,
    /// Live agent sessions.
    pub agent_hub: actix::Addr<crate::actors::agent_hub::AgentHub>,
    /// Revocation, CRL and OCSP.
    pub revocation: Arc<crate::revocation::RevocationService>,
    /// Seals and reveals the secrets in issuer and target configs.
    pub config_secrets: Arc<crate::secrets::ConfigSecrets>,
    /// Token agents register with (None: an admin key is required instead).
    pub agent_bootstrap_token: Option<String>,
}

/// Limiter plus the two rates (anonymous callers by IP, authenticated callers by key).
#[derive(Debug)]
pub struct RateLimits {
    /// Buckets.
    pub limiter: RateLimiter,
    /// Rate for callers identified only by IP.
    pub per_ip: Rate,
    /// Rate for callers identified by key.
    pub per_key: Rate,
    /// Rate per IP on the routes that take a credential (register, auth check).
    pub credential: Rate,
}
