//! An [`IssuerConnector`] backed by an issuer plugin (WIT world `issuer`): each call runs
//! on the plugin set loaded now (so `POST /api/v1/plugins/reload` takes effect at the next
//! call), on the plugin runtime's own threads, in a fresh sandboxed instance under the
//! runtime's call deadline and memory cap.
//!
//! A trap, timeout or out-of-memory fails that call only and maps to a [`ConnectorError`]
//! the pipeline knows how to treat (timeouts and unreachable CAs are retryable; a refused
//! capability or an invalid config is not). What lives elsewhere: loading plugins
//! (`crate::plugins`), the sandbox itself (`certctl_core::runtime`).
//!
//! Limits of WIT v0.1.0, which is released and never edited: the world has no CA-chain
//! export, so [`IssuerConnector::ca_chain`] answers `unsupported`. Asynchronous orders
//! (`pending(order-id)`) come back from [`IssuerConnector::place_order`]; the pipeline
//! persists the order id on the job and polls `order-status` later, so only callers that
//! cannot wait (plain [`IssuerConnector::issue`]) see a pending order as an error.

use std::sync::Arc;

use certctl_core::runtime::{
    ConnectorErrorKind, IssueRequest, IssuerPlugin, Order, RevokeRequest, RuntimeError,
};
use futures_util::future::BoxFuture;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::{ConnectorError, IssuanceRequest, IssuanceResult, IssuerConnector, OrderOutcome};
use crate::domain::revocation::RevocationReason;
use crate::plugins::PluginRegistry;

/// The plugin kind whose ids are issuer types.
pub const PLUGIN_KIND: &str = "issuer";

/// Calls the issuer plugin of the same id as the issuer's `type`.
pub struct WasmIssuer {
    plugins: Arc<PluginRegistry>,
    plugin_id: String,
    config: Value,
    config_json: String,
}

impl std::fmt::Debug for WasmIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmIssuer")
            .field("plugin_id", &self.plugin_id)
            .finish_non_exhaustive()
    }
}

impl WasmIssuer {
    /// A connector for plugin `plugin_id` with `config` (a JSON object, secrets already
    /// revealed). Fails when no issuer plugin of that id is loaded now.
    pub fn new(
        plugins: Arc<PluginRegistry>,
        plugin_id: &str,
        config: &Value,
    ) -> Result<Self, ConnectorError> {
        if !config.is_object() {
            return Err(ConnectorError::Config(
                "config must be a JSON object".into(),
            ));
        }
        let issuer = Self {
            plugins,
            plugin_id: plugin_id.to_owned(),
            config: config.clone(),
            config_json: config.to_string(),
        };
        issuer.plugin()?;
        Ok(issuer)
    }

    /// The plugin as loaded now.
    fn plugin(&self) -> Result<IssuerPlugin, ConnectorError> {
        self.plugins
            .current()
            .ok_or_else(|| {
                ConnectorError::Unavailable(
                    "the plugin runtime or the plugin directory is unavailable".into(),
                )
            })?
            .issuer(&self.plugin_id)
            .map_err(|e| ConnectorError::Config(e.to_string()))
    }
}

/// Maps a plugin call's failure to the connector error the pipeline acts on.
pub fn connector_error(e: RuntimeError) -> ConnectorError {
    let message = e.to_string();
    match e {
        // The deadline or the runtime: the same call may succeed later.
        RuntimeError::Timeout { .. } | RuntimeError::Unavailable(_) => {
            ConnectorError::Unavailable(message)
        }
        // A trap or memory exhaustion is the plugin crashing: this job only.
        RuntimeError::Trap { .. } | RuntimeError::OutOfMemory { .. } => {
            ConnectorError::Crashed(message)
        }
        // A refused capability needs the operator (grant it), not a retry.
        RuntimeError::Denied { .. } => ConnectorError::Config(message),
        RuntimeError::Connector { kind, .. } => match kind {
            ConnectorErrorKind::InvalidConfig => ConnectorError::Config(message),
            ConnectorErrorKind::Unavailable => ConnectorError::Unavailable(message),
            ConnectorErrorKind::Unsupported => ConnectorError::Unsupported(message),
            _ => ConnectorError::Rejected(message),
        },
        _ => ConnectorError::Config(message),
    }
}

/// Whole days from `req`'s validity, rounded up (at least one).
fn validity_days(req: &IssuanceRequest) -> Option<u32> {
    let seconds = (req.not_after - req.not_before).whole_seconds();
    if seconds <= 0 {
        return None;
    }
    u32::try_from((seconds + 86_399) / 86_400).ok()
}

/// Serial, validity and fingerprint of the plugin's leaf; the chain is leaf first, then
/// the intermediates the plugin returned.
fn result(
    plugin: &str,
    certificate_pem: &str,
    chain_pem: &str,
) -> Result<IssuanceResult, ConnectorError> {
    let bad = |e: String| {
        ConnectorError::Rejected(format!(
            "plugin `{plugin}` returned an unusable certificate: {e}"
        ))
    };
    let pem = x509_parser::pem::Pem::iter_from_buffer(certificate_pem.as_bytes())
        .next()
        .ok_or_else(|| bad("no PEM certificate".into()))?
        .map_err(|e| bad(e.to_string()))?;
    let (_, leaf) =
        x509_parser::parse_x509_certificate(&pem.contents).map_err(|e| bad(e.to_string()))?;
    let time = |t: x509_parser::time::ASN1Time| {
        time::OffsetDateTime::from_unix_timestamp(t.timestamp()).map_err(|e| bad(e.to_string()))
    };
    let mut pem_chain = certificate_pem.trim_end().to_owned();
    pem_chain.push('\n');
    if !chain_pem.trim().is_empty() {
        pem_chain.push_str(chain_pem.trim_end());
        pem_chain.push('\n');
    }
    Ok(IssuanceResult {
        pem_chain,
        serial_hex: hex::encode(leaf.raw_serial()),
        fingerprint_sha256: hex::encode(Sha256::digest(&pem.contents)),
        not_before: time(leaf.validity().not_before)?,
        not_after: time(leaf.validity().not_after)?,
    })
}

impl IssuerConnector for WasmIssuer {
    /// The manifest's config schema first (messages name the key), then the plugin's own
    /// `validate-config`.
    fn validate_config(&self) -> BoxFuture<'_, Result<(), ConnectorError>> {
        Box::pin(async move {
            if let Some(schema) = self.plugins.config_schema(PLUGIN_KIND, &self.plugin_id) {
                crate::domain::config_schema::check(&schema, &self.config, "config")
                    .map_err(|e| ConnectorError::Config(e.to_string()))?;
            }
            self.plugin()?
                .validate_config(self.config_json.clone())
                .await
                .map_err(connector_error)
        })
    }

    fn issue<'a>(
        &'a self,
        req: &'a IssuanceRequest,
    ) -> BoxFuture<'a, Result<IssuanceResult, ConnectorError>> {
        Box::pin(async move {
            match self.place_order(req).await? {
                OrderOutcome::Issued(result) => Ok(result),
                OrderOutcome::Pending(order_id) => Err(ConnectorError::Unsupported(format!(
                    "plugin `{}` answered with pending order {order_id}, which this caller cannot wait for",
                    self.plugin_id
                ))),
            }
        })
    }

    fn place_order<'a>(
        &'a self,
        req: &'a IssuanceRequest,
    ) -> BoxFuture<'a, Result<OrderOutcome, ConnectorError>> {
        Box::pin(async move {
            let plugin = self.plugin()?;
            tracing::debug!(plugin = %self.plugin_id, job_id = %req.job_id, "issuing through plugin");
            let order = plugin
                .issue(IssueRequest {
                    csr_pem: req.csr_pem.clone(),
                    common_name: req.common_name.clone(),
                    sans: req.sans.clone(),
                    validity_days: validity_days(req),
                    config_json: self.config_json.clone(),
                })
                .await
                .map_err(connector_error)?;
            match order {
                Order::Issued(cert) => {
                    result(&self.plugin_id, &cert.certificate_pem, &cert.chain_pem)
                        .map(OrderOutcome::Issued)
                }
                Order::Pending { order_id } => {
                    tracing::info!(plugin = %self.plugin_id, job_id = %req.job_id, %order_id, "issuer plugin answered with a pending order");
                    Ok(OrderOutcome::Pending(order_id))
                }
            }
        })
    }

    fn place_renewal_order<'a>(
        &'a self,
        req: &'a IssuanceRequest,
    ) -> BoxFuture<'a, Result<OrderOutcome, ConnectorError>> {
        self.place_order(req)
    }

    fn order_status<'a>(
        &'a self,
        order_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<IssuanceResult>, ConnectorError>> {
        Box::pin(async move {
            let order = self
                .plugin()?
                .order_status(order_id, self.config_json.clone())
                .await
                .map_err(connector_error)?;
            match order {
                Order::Issued(cert) => {
                    result(&self.plugin_id, &cert.certificate_pem, &cert.chain_pem).map(Some)
                }
                Order::Pending { .. } => Ok(None),
            }
        })
    }

    fn revoke<'a>(
        &'a self,
        serial_hex: &'a str,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<(), ConnectorError>> {
        Box::pin(async move {
            let reason = reason
                .parse::<RevocationReason>()
                .unwrap_or(RevocationReason::Unspecified);
            self.plugin()?
                .revoke(RevokeRequest {
                    serial: serial_hex.to_owned(),
                    reason: reason.code(),
                    config_json: self.config_json.clone(),
                })
                .await
                .map_err(connector_error)
        })
    }

    fn ca_chain(&self) -> Result<String, ConnectorError> {
        Err(ConnectorError::Unsupported(format!(
            "issuer plugin `{}` (WIT certctl:connector@0.1.0) has no CA chain export",
            self.plugin_id
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime_connector(kind: ConnectorErrorKind) -> RuntimeError {
        RuntimeError::Connector {
            plugin: "p".into(),
            kind,
            message: "CA said no".into(),
        }
    }

    #[test]
    fn unreachable_cas_and_timeouts_are_retryable_refusals_are_not() {
        assert!(connector_error(runtime_connector(ConnectorErrorKind::Unavailable)).is_retryable());
        assert!(
            connector_error(RuntimeError::Timeout {
                plugin: "p".into(),
                after: std::time::Duration::from_secs(1)
            })
            .is_retryable()
        );
        for kind in [
            ConnectorErrorKind::Denied,
            ConnectorErrorKind::Rejected,
            ConnectorErrorKind::InvalidConfig,
            ConnectorErrorKind::InvalidRequest,
        ] {
            let e = connector_error(runtime_connector(kind));
            assert!(!e.is_retryable(), "{kind}: {e}");
            assert!(e.to_string().contains("CA said no"), "{e}");
        }
        assert!(matches!(
            connector_error(RuntimeError::Trap {
                plugin: "p".into(),
                message: "unreachable".into()
            }),
            ConnectorError::Crashed(_)
        ));
    }
}
