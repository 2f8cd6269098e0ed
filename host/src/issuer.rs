//! The issuer-connector contract inside the host. Native connectors (Local CA, ACME) and
//! issuer plugins ([`wasm::WasmIssuer`]) implement [`IssuerConnector`]; the rest of the
//! system only sees the trait, so it cannot tell which kind it talks to.

pub mod local;
pub mod wasm;

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::Value;
use time::OffsetDateTime;

/// Everything an issuer needs to sign one certificate. The CSR carries the public key in
/// both keygen modes (the server makes its own CSR in `server` mode), so every connector
/// works the same way.
#[derive(Debug, Clone)]
pub struct IssuanceRequest {
    /// Job asking (idempotency key for connectors with external side effects).
    pub job_id: String,
    /// Certificate being issued.
    pub certificate_id: String,
    /// Subject CN.
    pub common_name: String,
    /// SANs (DNS names, IPs, e-mail addresses).
    pub sans: Vec<String>,
    /// PEM CSR, already checked by the pipeline (signature, names, profile key rules).
    pub csr_pem: String,
    /// Extended key usages from the profile.
    pub ekus: Vec<String>,
    /// Requested validity start.
    pub not_before: OffsetDateTime,
    /// Requested validity end (already capped by the profile).
    pub not_after: OffsetDateTime,
    /// Embed a CRL distribution point (absent for short-lived certificates).
    pub crl_url: Option<String>,
    /// Embed an OCSP responder URL (absent for short-lived certificates).
    pub ocsp_url: Option<String>,
    /// Renewals: the leaf (DER) of the version being replaced, so CAs that link a renewal to
    /// its predecessor (ACME ARI `replaces`) can do so. `None` for first issuances.
    pub replaces_der: Option<Vec<u8>>,
}

/// A renewal window suggested by the CA (ACME Renewal Information, RFC 9773).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewalWindow {
    /// The certificate's ARI id (`base64url(AKI keyIdentifier) "." base64url(serial)`).
    pub certificate_id: String,
    /// Renew no earlier than this.
    pub start: OffsetDateTime,
    /// Renew before this.
    pub end: OffsetDateTime,
    /// How long the CA asks clients to wait before asking again (`Retry-After`).
    pub retry_after: Option<std::time::Duration>,
    /// Why the window is what it is (CA's explanation page), when given.
    pub explanation_url: Option<String>,
}

/// A signed certificate as the pipeline stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuanceResult {
    /// Leaf first, then the issuing chain.
    pub pem_chain: String,
    /// Lower-case hex serial.
    pub serial_hex: String,
    /// Lower-case hex SHA-256 of the leaf DER.
    pub fingerprint_sha256: String,
    /// NotBefore.
    pub not_before: OffsetDateTime,
    /// NotAfter.
    pub not_after: OffsetDateTime,
}

/// What an order at an issuer came to: a certificate now, or an order to poll later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderOutcome {
    /// Signed.
    Issued(IssuanceResult),
    /// Accepted, not finished: poll [`IssuerConnector::order_status`] with this id.
    Pending(String),
}

/// What an issuer can do beyond issuing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// certctl publishes a CRL for it.
    pub crl: bool,
    /// certctl answers OCSP for it.
    pub ocsp: bool,
}

/// Why a connector call failed; kept distinct all the way to the job's error message.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectorError {
    /// The issuer's configuration is invalid.
    #[error("invalid issuer configuration: {0}")]
    Config(String),
    /// The CA refused the request (policy, lint, bad CSR): retrying will not help.
    #[error("issuer refused the request: {0}")]
    Rejected(String),
    /// The CA could not be reached or failed transiently: retrying may help.
    #[error("issuer unavailable: {0}")]
    Unavailable(String),
    /// The connector does not support the operation.
    #[error("not supported by this issuer: {0}")]
    Unsupported(String),
    /// The connector panicked (or trapped); the issuer actor restarts it.
    #[error("issuer connector crashed: {0}")]
    Crashed(String),
    /// No connector for the issuer id (unknown, disabled or failed to start).
    #[error("{0}")]
    NoIssuer(String),
    /// No connector type of that name: neither native nor a loaded issuer plugin.
    #[error("{0}")]
    NoConnector(String),
}

impl ConnectorError {
    /// Whether the job may be retried after this error.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ConnectorError::Unavailable(_) | ConnectorError::Crashed(_)
        )
    }
}

/// An issuer connector. Methods return boxed futures so the trait stays object-safe.
pub trait IssuerConnector: Send + Sync + 'static {
    /// Checks the configuration more deeply than building the connector can (a plugin's
    /// `validate-config`), without contacting the CA. Native connectors validate while
    /// they are built and keep this default.
    fn validate_config(&self) -> BoxFuture<'_, Result<(), ConnectorError>> {
        Box::pin(async { Ok(()) })
    }

    /// Signs a new certificate.
    fn issue<'a>(
        &'a self,
        req: &'a IssuanceRequest,
    ) -> BoxFuture<'a, Result<IssuanceResult, ConnectorError>>;

    /// Renews: a fresh issuance for the same names unless the CA has a renewal API.
    fn renew<'a>(
        &'a self,
        req: &'a IssuanceRequest,
    ) -> BoxFuture<'a, Result<IssuanceResult, ConnectorError>> {
        self.issue(req)
    }

    /// Places an order for a new certificate; issuers that may answer later (WIT
    /// `pending(order-id)`) override this. Synchronous issuers keep the default, which
    /// is [`IssuerConnector::issue`].
    fn place_order<'a>(
        &'a self,
        req: &'a IssuanceRequest,
    ) -> BoxFuture<'a, Result<OrderOutcome, ConnectorError>> {
        Box::pin(async move { self.issue(req).await.map(OrderOutcome::Issued) })
    }

    /// Places a renewal order; the default is [`IssuerConnector::renew`], or
    /// [`IssuerConnector::place_order`] for issuers that override only that.
    fn place_renewal_order<'a>(
        &'a self,
        req: &'a IssuanceRequest,
    ) -> BoxFuture<'a, Result<OrderOutcome, ConnectorError>> {
        Box::pin(async move { self.renew(req).await.map(OrderOutcome::Issued) })
    }

    /// Tells the CA a certificate is revoked (best-effort; certctl records revocation anyway).
    fn revoke<'a>(
        &'a self,
        serial_hex: &'a str,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<(), ConnectorError>>;

    /// Status of an asynchronous order (CAs that issue later): `Ok(None)` while it is
    /// still pending. Must not place a new order.
    fn order_status<'a>(
        &'a self,
        order_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<IssuanceResult>, ConnectorError>> {
        Box::pin(async move {
            Err(ConnectorError::Unsupported(format!(
                "order status for {order_id}"
            )))
        })
    }

    /// The CA's suggested renewal window for a certificate it issued (leaf DER). `Ok(None)`
    /// when the CA offers none (no renewal-information support, or the certificate is unknown
    /// to it); the renewal check then falls back to the policy thresholds. Issuers without
    /// such a service keep this default.
    fn renewal_window<'a>(
        &'a self,
        _cert_der: &'a [u8],
    ) -> BoxFuture<'a, Result<Option<RenewalWindow>, ConnectorError>> {
        Box::pin(async { Ok(None) })
    }

    /// The issuing CA chain (PEM), for `GET /issuers/{id}/ca` and trust bundles.
    fn ca_chain(&self) -> Result<String, ConnectorError>;

    /// CRL/OCSP support.
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    /// The CA certctl signs this issuer's CRLs and OCSP responder certificates with, when
    /// certctl publishes its revocation status itself ([`Capabilities`] `crl`/`ocsp`).
    /// Issuers whose CA runs its own CRL/OCSP infrastructure answer `None`.
    fn revocation_ca(&self) -> Option<Arc<crate::pki::local_ca::LocalCa>> {
        None
    }
}

/// Shared resources connectors may need (the Local CA, the data dir, the operator's ACME
/// settings, the outbound guard).
#[derive(Clone)]
pub struct ConnectorContext {
    /// The server's Local CA (self-signed or sub-CA).
    pub local_ca: Arc<crate::pki::local_ca::LocalCa>,
    /// The server's data directory (connector state such as the ACME account key).
    pub data_dir: std::path::PathBuf,
    /// The operator's DNS hooks, HTTP-01 listeners and CA bundles (`CERTCTL_ACME_HOOKS`),
    /// which ACME issuer configs reference by name.
    pub acme: Arc<crate::acme::OperatorSettings>,
    /// The guard of the server's own fetches (`CERTCTL_OUTBOUND_ALLOW`).
    pub outbound: certctl_core::outbound::OutboundGuard,
    /// The loaded WebAssembly plugins: an issuer `type` that is no native connector may
    /// be the id of a loaded issuer plugin. `None`: native connectors only.
    pub plugins: Option<Arc<crate::plugins::PluginRegistry>>,
}

impl ConnectorContext {
    /// A context without operator ACME entries (but the built-in HTTP-01 listener) and
    /// with an outbound guard that allows public https on port 443 only.
    pub fn new(local_ca: Arc<crate::pki::local_ca::LocalCa>, data_dir: std::path::PathBuf) -> Self {
        Self {
            local_ca,
            data_dir,
            acme: Arc::new(crate::acme::OperatorSettings::builtin()),
            outbound: certctl_core::outbound::OutboundGuard::new(
                certctl_core::outbound::Policy::public_https(Vec::new(), OUTBOUND_ALLOW),
            ),
            plugins: None,
        }
    }
}

/// The variable holding the operator's grants for the server's own fetches.
pub const OUTBOUND_ALLOW: &str = "CERTCTL_OUTBOUND_ALLOW";

impl std::fmt::Debug for ConnectorContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectorContext").finish_non_exhaustive()
    }
}

/// Builds a connector from an issuer's type and config; validates the config on the way.
pub type ConnectorFactory = Arc<
    dyn Fn(&Value, &ConnectorContext) -> Result<Arc<dyn IssuerConnector>, ConnectorError>
        + Send
        + Sync,
>;

/// Connector types this build knows, by issuer `type`.
#[derive(Clone, Default)]
pub struct ConnectorTypes {
    factories: HashMap<String, ConnectorFactory>,
}

impl std::fmt::Debug for ConnectorTypes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.factories.keys()).finish()
    }
}

impl ConnectorTypes {
    /// The native connectors.
    pub fn native() -> Self {
        let mut t = Self::default();
        t.register(
            "local",
            Arc::new(|config, ctx| {
                local::LocalIssuer::from_config(config, ctx)
                    .map(|c| Arc::new(c) as Arc<dyn IssuerConnector>)
            }),
        );
        crate::acme::register(&mut t);
        t
    }

    /// Adds (or replaces) a connector type.
    pub fn register(&mut self, issuer_type: &str, factory: ConnectorFactory) {
        self.factories.insert(issuer_type.to_owned(), factory);
    }

    /// Builds a connector, or explains why not: a native type, else the id of an issuer
    /// plugin loaded now (`ctx.plugins`).
    pub fn build(
        &self,
        issuer_type: &str,
        config: &Value,
        ctx: &ConnectorContext,
    ) -> Result<Arc<dyn IssuerConnector>, ConnectorError> {
        if let Some(factory) = self.factories.get(issuer_type) {
            return factory(config, ctx);
        }
        match &ctx.plugins {
            Some(plugins)
                if plugins
                    .loaded_ids(wasm::PLUGIN_KIND)
                    .iter()
                    .any(|id| id == issuer_type) =>
            {
                wasm::WasmIssuer::new(plugins.clone(), issuer_type, config)
                    .map(|c| Arc::new(c) as Arc<dyn IssuerConnector>)
            }
            _ => Err(ConnectorError::NoConnector(format!(
                "no connector for issuer type \"{issuer_type}\" in this build and no loaded issuer plugin of that id"
            ))),
        }
    }
}
