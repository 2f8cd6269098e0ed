//! The ACME connector itself: [`AcmeIssuer`], its state (account, responder, issued
//! leaves, last chain), the mapping of ACME errors to connector errors, and the
//! [`IssuerConnector`] implementation that ties account, order and ARI together.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use futures_util::future::BoxFuture;
use instant_acme::{Account, RevocationReason, RevocationRequest};
use serde_json::Value;

use super::account::{account_key, write_private};
use super::ari::ari_id;
use super::client::{self, AcmeHttp};
use super::config::AcmeConfig;
use super::order::leaf_der;
use super::responder;
use crate::issuer::{
    ConnectorContext, ConnectorError, IssuanceRequest, IssuanceResult, IssuerConnector,
    RenewalWindow,
};

/// The connector.
pub struct AcmeIssuer {
    pub(super) config: AcmeConfig,
    pub(super) account_file: PathBuf,
    pub(super) account: tokio::sync::Mutex<Option<Account>>,
    pub(super) responder: responder::Responder,
    /// HTTP to the ACME server, through the outbound guard.
    pub(super) http: AcmeHttp,
    /// Leaf DER by serial, for revocation of certificates this connector issued.
    issued: Mutex<HashMap<String, Vec<u8>>>,
    /// The last issuing chain seen (for `ca_chain`).
    last_chain: Mutex<Option<String>>,
}

impl std::fmt::Debug for AcmeIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeIssuer")
            .field("directory_url", &self.config.directory_url)
            .finish_non_exhaustive()
    }
}

impl AcmeIssuer {
    /// Validates the config (with `CERTCTL_ACME_*` defaults and the operator's named
    /// entries), checks the directory URL against the outbound guard (scheme, port, host
    /// grants; the address of an IP literal) and prepares the connector; the account is
    /// registered on first use.
    pub fn from_config(config: &Value, ctx: &ConnectorContext) -> Result<Self, ConnectorError> {
        let config = AcmeConfig::parse(config, &|k| std::env::var(k).ok(), &ctx.acme)?;
        ctx.outbound
            .check_url(&config.directory_url)
            .map_err(|refusal| ConnectorError::Config(format!("directory_url: {refusal}")))?;
        let http = client::build(ctx.outbound.clone(), config.ca_bundle.as_ref())?;
        let account_file = ctx
            .data_dir
            .join("acme")
            .join(format!("account-{}.json", account_key(&config)));
        Ok(Self {
            responder: responder::Responder::new(config.http01_listen.clone()),
            http,
            config,
            account_file,
            account: tokio::sync::Mutex::new(None),
            issued: Mutex::new(HashMap::new()),
            last_chain: Mutex::new(None),
        })
    }

    pub(super) fn unavailable(&self, what: &str, e: &instant_acme::Error) -> ConnectorError {
        if let Some(refusal) = client::refusal(e) {
            // The outbound guard said no: not transient, and the rule says how to fix it.
            return ConnectorError::Config(format!(
                "ACME server {}: {what}: {refusal}",
                self.config.directory_url
            ));
        }
        ConnectorError::Unavailable(format!(
            "ACME server {}: {what}: {e}",
            self.config.directory_url
        ))
    }

    /// Maps an ACME error: server problems are refusals unless transient.
    pub(super) fn acme_error(&self, what: &str, e: instant_acme::Error) -> ConnectorError {
        match &e {
            instant_acme::Error::Api(p) => {
                let transient = p.status.is_some_and(|s| s >= 500 || s == 429)
                    || p.r#type
                        .as_deref()
                        .is_some_and(|t| t.ends_with(":badNonce") || t.ends_with(":rateLimited"));
                if transient {
                    self.unavailable(what, &e)
                } else {
                    ConnectorError::Rejected(
                        format!(
                            "ACME server {}: {what}: {}",
                            self.config.directory_url,
                            p.detail.as_deref().unwrap_or("problem without detail")
                        ) + &p
                            .r#type
                            .as_deref()
                            .map(|t| format!(" ({t})"))
                            .unwrap_or_default(),
                    )
                }
            }
            _ => self.unavailable(what, &e),
        }
    }
}

fn reason(r: &str) -> Option<RevocationReason> {
    Some(match r {
        "unspecified" | "" => RevocationReason::Unspecified,
        "keyCompromise" | "key_compromise" => RevocationReason::KeyCompromise,
        "caCompromise" | "ca_compromise" => RevocationReason::CaCompromise,
        "affiliationChanged" | "affiliation_changed" => RevocationReason::AffiliationChanged,
        "superseded" => RevocationReason::Superseded,
        "cessationOfOperation" | "cessation_of_operation" => RevocationReason::CessationOfOperation,
        "privilegeWithdrawn" | "privilege_withdrawn" => RevocationReason::PrivilegeWithdrawn,
        _ => return None,
    })
}

impl IssuerConnector for AcmeIssuer {
    fn issue<'a>(
        &'a self,
        req: &'a IssuanceRequest,
    ) -> BoxFuture<'a, Result<IssuanceResult, ConnectorError>> {
        Box::pin(async move {
            let result = self.order(req).await?;
            if let Some(der) = leaf_der(&result.pem_chain) {
                // Kept for revocation (ACME revokes by certificate, certctl by serial).
                let file = self.issued_file(&result.serial_hex);
                if let Err(e) = write_private(&file, &der, true) {
                    tracing::warn!(file = %file.display(), error = %e, "could not keep the ACME leaf for revocation");
                }
                if let Ok(mut m) = self.issued.lock() {
                    m.insert(result.serial_hex.clone(), der);
                }
            }
            let rest: String = result
                .pem_chain
                .split_inclusive("-----END CERTIFICATE-----")
                .skip(1)
                .collect::<String>()
                .trim()
                .to_owned();
            if !rest.is_empty()
                && let Ok(mut c) = self.last_chain.lock()
            {
                *c = Some(format!("{rest}\n"));
            }
            Ok(result)
        })
    }

    fn revoke<'a>(
        &'a self,
        serial_hex: &'a str,
        reason_text: &'a str,
    ) -> BoxFuture<'a, Result<(), ConnectorError>> {
        Box::pin(async move {
            let der = self
                .issued
                .lock()
                .ok()
                .and_then(|m| m.get(&serial_hex.to_ascii_lowercase()).cloned())
                .or_else(|| std::fs::read(self.issued_file(serial_hex)).ok())
                .ok_or_else(|| {
                    ConnectorError::Unsupported(format!(
                        "ACME revocation of {serial_hex}: certificate not known to this connector"
                    ))
                })?;
            self.revoke_der(&der, reason_text).await
        })
    }

    fn renewal_window<'a>(
        &'a self,
        cert_der: &'a [u8],
    ) -> BoxFuture<'a, Result<Option<RenewalWindow>, ConnectorError>> {
        Box::pin(async move {
            if !self.config.ari_enabled {
                return Ok(None);
            }
            let Some(id) = ari_id(cert_der) else {
                return Ok(None);
            };
            let account = self.account().await?;
            match account.renewal_info(&id).await {
                Ok((info, retry_after)) => Ok(Some(RenewalWindow {
                    certificate_id: id.to_string(),
                    start: info.suggested_window.start,
                    end: info.suggested_window.end,
                    retry_after: Some(retry_after),
                    explanation_url: info.explanation_url,
                })),
                // The directory has no renewalInfo, or the CA does not know the certificate.
                Err(instant_acme::Error::Unsupported(_)) => Ok(None),
                Err(instant_acme::Error::Api(p)) if p.status == Some(404) => Ok(None),
                // instant-acme checks for Retry-After before the status, so an answer
                // without one arrives like this, whatever its status: ask again to learn it.
                Err(instant_acme::Error::Str(m)) if m.contains("Retry-After") => {
                    self.renewal_info_without_retry_after(&id).await
                }
                Err(e) => Err(self.acme_error(&format!("renewalInfo for {id}"), e)),
            }
        })
    }

    fn ca_chain(&self) -> Result<String, ConnectorError> {
        self.last_chain
            .lock()
            .ok()
            .and_then(|c| c.clone())
            .ok_or_else(|| {
                ConnectorError::Unsupported(
                    "the ACME issuer's chain is known after its first issuance".into(),
                )
            })
    }
}

impl AcmeIssuer {
    /// Revokes a certificate (DER) through the ACME account.
    pub async fn revoke_der(&self, der: &[u8], reason_text: &str) -> Result<(), ConnectorError> {
        let account = self.account().await?;
        let cert = rustls_pki_types::CertificateDer::from(der.to_vec());
        account
            .revoke(&RevocationRequest {
                certificate: &cert,
                reason: reason(reason_text),
            })
            .await
            .map_err(|e| self.acme_error("revocation", e))
    }
    /// Where the leaf of an issued certificate is kept (by lower-case hex serial).
    fn issued_file(&self, serial_hex: &str) -> PathBuf {
        let serial: String = serial_hex
            .chars()
            .filter(char::is_ascii_hexdigit)
            .collect::<String>()
            .to_ascii_lowercase();
        self.account_file
            .with_extension("")
            .with_file_name(format!(
                "{}-issued",
                self.account_file
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or("account")
            ))
            .join(format!("{serial}.der"))
    }

    /// The persisted account file.
    pub fn account_file(&self) -> &Path {
        &self.account_file
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::sync::Arc;

    use certctl_core::outbound::{Destination, OutboundGuard, Policy, StaticResolver};

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    /// A context whose guard resolves the test names to refused addresses (nothing is ever
    /// sent to them: the refusal comes before any connection).
    fn context(dir: &Path, grants: &str) -> ConnectorContext {
        let ca = crate::pki::local_ca::LocalCa::load_or_create(&dir.join("ca")).expect("CA");
        let mut ctx = ConnectorContext::new(Arc::new(ca), dir.to_path_buf());
        let resolver = StaticResolver::default()
            .with("metadata.test", &[ip("169.254.169.254")])
            .with("internal.test", &[ip("10.0.0.1")]);
        ctx.outbound = OutboundGuard::new(Policy::public_https(
            Policy::parse_list(grants).expect("grants"),
            "CERTCTL_OUTBOUND_ALLOW",
        ))
        .with_resolver(Arc::new(resolver));
        ctx
    }

    fn config(host: &str) -> Value {
        serde_json::json!({"directory_url": format!("https://{host}/dir"), "terms_of_service_agreed": true})
    }

    #[tokio::test]
    async fn a_directory_resolving_to_metadata_or_private_addresses_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (host, address, range) in [
            ("metadata.test", "169.254.169.254", "cloud metadata"),
            ("internal.test", "10.0.0.1", "private"),
        ] {
            let ctx = context(dir.path(), "");
            // A name: accepted at create (decided after DNS)…
            let issuer = AcmeIssuer::from_config(&config(host), &ctx).expect("valid config");
            // …refused when the account is registered, before any connection.
            let Err(err) = issuer.account().await else {
                panic!("{host}: the account was registered");
            };
            let ConnectorError::Config(message) = &err else {
                panic!("not a config error: {err:?}");
            };
            assert!(
                message.contains(host)
                    && message.contains(address)
                    && message.contains(range)
                    && message.contains("CERTCTL_OUTBOUND_ALLOW"),
                "{message}"
            );
            assert!(!err.is_retryable(), "{err}");
            // The address itself as the directory: refused at create.
            let err = AcmeIssuer::from_config(&config(address), &ctx).expect_err("refused");
            assert!(
                matches!(&err, ConnectorError::Config(m) if m.starts_with("directory_url") && m.contains(range)),
                "{err:?}"
            );

            // With the operator's grant of the name, the address or the range, the guard
            // allows that address (the decision only: nothing connects to it here).
            for grant in [host.to_owned(), address.to_owned(), format!("{address}/16")] {
                let ctx = context(dir.path(), &grant);
                AcmeIssuer::from_config(&config(host), &ctx).expect("valid config");
                let destination =
                    Destination::parse_url(&format!("https://{host}/dir")).expect("url");
                let allowed = ctx.outbound.resolve(&destination).await.expect("allowed");
                assert_eq!(allowed.len(), 1);
                assert_eq!(allowed[0].ip(), ip(address), "{grant}");
            }
        }
    }
}
