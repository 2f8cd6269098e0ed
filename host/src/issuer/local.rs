//! The native Local CA issuer: signs with the server's own CA (self-signed root created at
//! first start, or a sub-CA from `CERTCTL_CA_CERT_PATH`/`CERTCTL_CA_KEY_PATH`). Signing is
//! local, synchronous and lint-checked; it supports CRL and OCSP.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::Value;

use super::{
    Capabilities, ConnectorContext, ConnectorError, IssuanceRequest, IssuanceResult,
    IssuerConnector,
};
use crate::pki::PkiError;
use crate::pki::local_ca::{ExtendedKeyUsage, IssueRequest, LocalCa};

/// The connector.
#[derive(Debug)]
pub struct LocalIssuer {
    ca: Arc<LocalCa>,
}

impl LocalIssuer {
    /// Validates the config (an object; the Local CA takes no settings yet) and binds the CA.
    pub fn from_config(config: &Value, ctx: &ConnectorContext) -> Result<Self, ConnectorError> {
        let obj = config
            .as_object()
            .ok_or_else(|| ConnectorError::Config("config must be a JSON object".into()))?;
        if let Some(k) = obj.keys().next() {
            return Err(ConnectorError::Config(format!(
                "unknown setting \"{k}\" (the local issuer takes none)"
            )));
        }
        Ok(Self {
            ca: ctx.local_ca.clone(),
        })
    }
}

fn eku(name: &str) -> Result<ExtendedKeyUsage, ConnectorError> {
    ExtendedKeyUsage::ALL
        .into_iter()
        .find(|e| e.as_str() == name)
        .ok_or_else(|| ConnectorError::Rejected(format!("unknown extended key usage \"{name}\"")))
}

impl IssuerConnector for LocalIssuer {
    fn issue<'a>(
        &'a self,
        req: &'a IssuanceRequest,
    ) -> BoxFuture<'a, Result<IssuanceResult, ConnectorError>> {
        Box::pin(async move {
            let csr = crate::pki::csr::parse_csr(&req.csr_pem)
                .map_err(|e| ConnectorError::Rejected(e.to_string()))?;
            let request = IssueRequest {
                public_key: csr.public_key,
                common_name: req.common_name.clone(),
                sans: req.sans.clone(),
                extended_key_usages: req.ekus.iter().map(|e| eku(e)).collect::<Result<_, _>>()?,
                not_before: req.not_before,
                not_after: req.not_after,
                crl_url: req.crl_url.clone(),
                ocsp_url: req.ocsp_url.clone(),
            };
            let issued = self.ca.issue(&request).map_err(|e| match e {
                PkiError::Io { .. } | PkiError::Random => {
                    ConnectorError::Unavailable(e.to_string())
                }
                other => ConnectorError::Rejected(other.to_string()),
            })?;
            Ok(IssuanceResult {
                pem_chain: issued.pem_chain,
                serial_hex: issued.serial_hex,
                fingerprint_sha256: issued.fingerprint_sha256,
                not_before: issued.not_before,
                not_after: issued.not_after,
            })
        })
    }

    fn revoke<'a>(
        &'a self,
        _serial_hex: &'a str,
        _reason: &'a str,
    ) -> BoxFuture<'a, Result<(), ConnectorError>> {
        // Revocation of Local CA certificates is certctl's own record (CRL/OCSP read it).
        Box::pin(async { Ok(()) })
    }

    fn ca_chain(&self) -> Result<String, ConnectorError> {
        Ok(self.ca.chain_pem())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            crl: true,
            ocsp: true,
        }
    }

    fn revocation_ca(&self) -> Option<Arc<LocalCa>> {
        Some(self.ca.clone())
    }
}
