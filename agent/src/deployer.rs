//! How a certificate reaches a target: the agent hands cert, chain and the local key to the
//! target connector of the target's type. The WASM plugin runtime implements [`Deployer`].

use futures_util::future::BoxFuture;
use serde_json::Value;

/// Everything a target connector needs for one deployment.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// Target type: a built-in connector (`nginx`, `postfix`, …) or a target plugin id.
    pub target_type: String,
    /// Target id.
    pub target_id: String,
    /// Certificate id.
    pub certificate_id: String,
    /// Leaf certificate, PEM.
    pub certificate_pem: String,
    /// Issuing chain, PEM (may be empty).
    pub chain_pem: String,
    /// The agent-held private key, PEM. Never leaves this host.
    pub private_key_pem: String,
    /// Target configuration from the control plane.
    pub config: Value,
}

/// Deploys certificates to targets.
pub trait Deployer: Send + Sync {
    /// Installs the certificate; the `Ok` text is the connector's report, the `Err` text its
    /// error including command output.
    fn deploy<'a>(&'a self, d: &'a Deployment) -> BoxFuture<'a, Result<String, String>>;

    /// Picks up connectors installed or changed since start (SIGHUP); `Ok` lists the
    /// connectors now available.
    fn reload(&self) -> BoxFuture<'_, Result<Vec<String>, String>>;
}
