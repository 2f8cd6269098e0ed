//! The revocation service: revoking certificates (one, or many by criteria), publishing
//! revocation status as pre-generated CRLs and as OCSP answers signed by a delegated
//! responder, for every issuer whose connector lets certctl publish it
//! ([`crate::issuer::IssuerConnector::revocation_ca`]).
//!
//! Rules live in `domain::revocation`, wire formats in `pki::{crl, ocsp}`, rows in
//! `store::{revocations, crl_cache, ocsp_responders}`; this module does the I/O in between.
//!
//! Revoking a certificate revokes the serial of every version ever issued for it (a
//! renewed certificate's old versions are as untrustworthy as its current one once the
//! certificate is withdrawn), cancels its open jobs, and regenerates the affected issuers'
//! CRLs before answering, so relying parties see it without waiting for the hourly loop.
//! The issuer's connector is told afterwards, best-effort: its failure is logged and
//! audited but never undoes or delays the revocation.

mod bulk;
mod crl;
mod ocsp;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::Addr;
use serde_json::json;

use crate::actors::issuer_actor::{GetRevocationSupport, RevocationSupport, Revoke};
use crate::actors::issuer_registry::{IssuerRegistry, Lookup};
use crate::clock::Clock;
use crate::domain::audit::{Actor, AuditEntry};
use crate::domain::key_rules::ProfileRules;
use crate::domain::profile;
use crate::domain::revocation::{self as rules, NotRevocable, RevocationReason};
use crate::store::certificates::{self, Certificate};
use crate::store::revocations::{self, RevokedSerial};
use crate::store::{Store, StoreError, audit, records};

pub use bulk::{BULK_SYNC_LIMIT, BulkAccepted};
pub use crl::{CrlCacheState, CrlUnavailable};
pub use ocsp::OcspQuery;

/// How often a revocation re-reads a certificate whose status changed under it.
const REVOKE_ATTEMPTS: u32 = 5;

/// Revocation settings (`CERTCTL_CRL_*`, `CERTCTL_OCSP_*`).
#[derive(Debug, Clone, clap::Args)]
pub struct RevocationSettings {
    /// How often every CRL-publishing issuer's CRL is regenerated (it is also regenerated
    /// right after each revocation).
    #[arg(long, env = "CERTCTL_CRL_GENERATION_INTERVAL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub crl_generation_interval: Duration,
    /// Lifetime of a newly issued OCSP responder certificate.
    #[arg(long, env = "CERTCTL_OCSP_RESPONDER_VALIDITY", default_value = "30d", value_parser = humantime::parse_duration)]
    pub ocsp_responder_validity: Duration,
    /// A responder certificate this close to its NotAfter is replaced on the next OCSP
    /// request or loop tick.
    #[arg(long, env = "CERTCTL_OCSP_RESPONDER_ROTATION_GRACE", default_value = "7d", value_parser = humantime::parse_duration)]
    pub ocsp_responder_rotation_grace: Duration,
    /// Directory of the OCSP responder keys (mode 0600 files); default `<data dir>/ocsp`.
    /// Several replicas must share it.
    #[arg(long, env = "CERTCTL_OCSP_RESPONDER_KEY_DIR")]
    pub ocsp_responder_key_dir: Option<PathBuf>,
}

/// Why a certificate was not revoked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RevokeError {
    /// No such certificate.
    #[error("certificate {0} not found")]
    NotFound(String),
    /// Its state does not allow it (already revoked, archived, never issued).
    #[error(transparent)]
    NotRevocable(#[from] NotRevocable),
    /// It changed while being revoked; the caller may retry.
    #[error("certificate {0} changed concurrently; reload and try again")]
    Changed(String),
    /// Storage.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The shared service, one per server.
pub struct RevocationService {
    store: Store,
    clock: Arc<dyn Clock>,
    registry: Addr<IssuerRegistry>,
    crl_gates: Mutex<HashMap<String, Arc<tokio::sync::Mutex<crl::Gate>>>>,
    responders: ocsp::Responders,
}

impl std::fmt::Debug for RevocationService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationService").finish_non_exhaustive()
    }
}

impl RevocationService {
    /// Creates the service; responder keys default to `<data_dir>/ocsp`.
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        registry: Addr<IssuerRegistry>,
        settings: &RevocationSettings,
        data_dir: &Path,
    ) -> Self {
        let key_dir = settings
            .ocsp_responder_key_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("ocsp"));
        Self {
            store,
            clock,
            registry,
            crl_gates: Mutex::new(HashMap::new()),
            responders: ocsp::Responders::new(
                key_dir,
                settings.ocsp_responder_validity,
                settings.ocsp_responder_rotation_grace,
            ),
        }
    }

    /// What an issuer offers, or `None` if it is unknown, disabled or its connector failed.
    async fn support(&self, issuer_id: &str) -> Option<RevocationSupport> {
        let addr = self
            .registry
            .send(Lookup(issuer_id.to_owned()))
            .await
            .ok()
            .flatten()?;
        match addr.send(GetRevocationSupport).await {
            Ok(Ok(support)) => Some(support),
            Ok(Err(e)) => {
                tracing::debug!(%issuer_id, error = %e, "issuer has no usable connector");
                None
            }
            Err(e) => {
                tracing::warn!(%issuer_id, error = %e, "issuer actor did not answer");
                None
            }
        }
    }

    /// Enabled issuer ids, for the loop.
    async fn issuer_ids(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT id FROM issuers ORDER BY id")
            .fetch_all(self.store.pool())
            .await?;
        rows.iter()
            .map(|r| sqlx::Row::try_get(r, 0).map_err(StoreError::from))
            .collect()
    }

    /// Whether the certificate's profile makes it short-lived (kept out of CRLs).
    async fn crl_exempt(&self, certificate: &Certificate) -> Result<bool, StoreError> {
        let Some(profile_id) = &certificate.profile_id else {
            return Ok(false);
        };
        match records::get(&self.store, &profile::SPEC, profile_id).await {
            Ok(p) => Ok(rules::is_short_lived(
                ProfileRules::from_record(&p).max_ttl_seconds,
            )),
            Err(StoreError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Adds the standing revocation (reason and time) to an "already revoked" refusal; the
    /// refusal is reported as is when that record cannot be read.
    async fn with_previous(&self, refusal: NotRevocable) -> NotRevocable {
        let NotRevocable::AlreadyRevoked { id, previous: None } = refusal else {
            return refusal;
        };
        let previous = match revocations::for_certificate(&self.store, &id).await {
            Ok(rows) => rows.into_iter().next().map(|r| rules::PriorRevocation {
                reason: r.reason,
                revoked_at: r.revoked_at,
            }),
            Err(e) => {
                tracing::warn!(certificate_id = %id, error = %e, "could not read the standing revocation");
                None
            }
        };
        NotRevocable::AlreadyRevoked { id, previous }
    }

    /// Revokes one certificate and publishes the new CRLs before answering.
    pub async fn revoke(
        &self,
        certificate_id: &str,
        reason: RevocationReason,
        actor: &Actor,
    ) -> Result<Vec<RevokedSerial>, RevokeError> {
        let serials = self
            .revoke_unpublished(certificate_id, reason, actor, None)
            .await?;
        self.publish(&serials, "revocation").await;
        Ok(serials)
    }

    /// Records a revocation and tells the issuers, without regenerating CRLs (bulk runs
    /// regenerate once at the end).
    async fn revoke_unpublished(
        &self,
        certificate_id: &str,
        reason: RevocationReason,
        actor: &Actor,
        bulk_revocation_id: Option<&str>,
    ) -> Result<Vec<RevokedSerial>, RevokeError> {
        // The status is the compare-and-set guard; the pipeline moves it too (a renewal
        // starting), so a lost race is re-read and re-checked a few times, not reported.
        let mut attempt = 0;
        let serials = loop {
            attempt += 1;
            let certificate = certificates::get(&self.store, certificate_id)
                .await?
                .ok_or_else(|| RevokeError::NotFound(certificate_id.to_owned()))?;
            let issued = certificates::versions(&self.store, certificate_id)
                .await?
                .len();
            if let Err(e) = rules::check_revocable(certificate_id, &certificate.status, issued) {
                return Err(self.with_previous(e).await.into());
            }
            let crl_exempt = self.crl_exempt(&certificate).await?;
            let recorded = revocations::record(
                &self.store,
                &revocations::Revocation {
                    certificate: &certificate,
                    reason,
                    crl_exempt,
                    bulk_revocation_id,
                },
                &self.clock.now_text(),
                actor,
            )
            .await?;
            match recorded {
                Some(serials) => break serials,
                None if attempt < REVOKE_ATTEMPTS => {
                    tracing::debug!(%certificate_id, attempt, "certificate changed while being revoked; retrying");
                }
                None => return Err(RevokeError::Changed(certificate_id.to_owned())),
            }
        };
        tracing::info!(%certificate_id, %reason, serials = serials.len(), actor = %actor.name, "certificate revoked");
        self.notify_issuers(certificate_id, &serials, reason, actor);
        Ok(serials)
    }

    /// Tells each issuer about its revoked serials in the background (best-effort); a
    /// failure is logged and audited as `certificate_revocation_issuer_notify_failed`.
    fn notify_issuers(
        &self,
        certificate_id: &str,
        serials: &[RevokedSerial],
        reason: RevocationReason,
        actor: &Actor,
    ) {
        for serial in serials.iter().cloned() {
            let registry = self.registry.clone();
            let store = self.store.clone();
            let clock = self.clock.clone();
            let actor = actor.clone();
            let certificate_id = certificate_id.to_owned();
            tokio::spawn(async move {
                let result = match registry.send(Lookup(serial.issuer_id.clone())).await {
                    Ok(Some(addr)) => match addr
                        .send(Revoke {
                            serial_hex: serial.serial_number.clone(),
                            reason: reason.as_str().to_owned(),
                        })
                        .await
                    {
                        Ok(r) => r.map_err(|e| e.to_string()),
                        Err(e) => Err(format!("issuer actor unavailable: {e}")),
                    },
                    Ok(None) => Err(format!(
                        "issuer {} is unknown or disabled",
                        serial.issuer_id
                    )),
                    Err(e) => Err(format!("issuer registry unavailable: {e}")),
                };
                if let Err(error) = result {
                    tracing::warn!(%certificate_id, issuer_id = %serial.issuer_id, serial = %serial.serial_number, %error, "issuer was not told about the revocation (certctl's record stands)");
                    let entry = AuditEntry {
                        actor,
                        action: "certificate_revocation_issuer_notify_failed".into(),
                        resource_type: "certificate".into(),
                        resource_id: certificate_id.clone(),
                        details: json!({"issuer_id": serial.issuer_id, "serial_number": serial.serial_number, "error": error}),
                    };
                    if let Err(e) = audit::append_alone(&store, &entry, &clock.now_text()).await {
                        tracing::warn!(%certificate_id, error = %e, "could not audit the failed issuer notification");
                    }
                }
            });
        }
    }

    /// Regenerates the CRL of every issuer in `serials` (errors are logged and recorded as
    /// generation events; the revocation itself stands).
    async fn publish(&self, serials: &[RevokedSerial], cause: &str) {
        let issuers: BTreeSet<&str> = serials.iter().map(|s| s.issuer_id.as_str()).collect();
        for issuer_id in issuers {
            if let Err(e) = self.regenerate_crl(issuer_id, cause).await {
                match e {
                    CrlUnavailable::NotPublished(_) => {}
                    other => {
                        tracing::warn!(%issuer_id, error = %other, "CRL not regenerated after revocation")
                    }
                }
            }
        }
    }
}
