//! The OCSP responder: answering requests from the revocation records, and keeping each
//! issuer's delegated responder certificate and key current.
//!
//! The responder key is ECDSA P-256, a PKCS#8 PEM file (mode 0600) in the key directory;
//! the certificate and the file's path are in `ocsp_responders`. A responder is replaced
//! when it is within the rotation grace of expiry, when its CA changed, or when its key
//! file is missing, unreadable or does not match — a pruned key directory means "rotate",
//! never a crash. The CA key never signs an OCSP response.
//!
//! Every answer is an OCSPResponse: a request that does not parse gets `malformedRequest`,
//! an issuer certctl does not answer for gets `unauthorized`, a storage failure `tryLater`.
//! Short-lived certificates carry no OCSP URL and are kept out of CRLs, but if asked about
//! anyway the answer is still the truth (good or revoked).

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer as _;

use super::RevocationService;
use crate::domain::audit::{Actor, AuditEntry};
use crate::domain::revocation::{canonical_serial, canonical_serial_bytes};
use crate::pki::local_ca::LocalCa;
use crate::pki::ocsp::{
    self, CertStatus, IssuerIdentity, ResponderKey, ResponseStatus, SingleAnswer,
};
use crate::store::ocsp_responders::{self, StoredResponder};
use crate::store::{StoreError, audit, certificates, revocations};

/// How long an answer is good for (`nextUpdate − thisUpdate`). Answers are computed live,
/// so a short window makes clients come back soon after a revocation.
const ANSWER_VALIDITY: time::Duration = time::Duration::hours(1);
/// Back-dating of a responder certificate's NotBefore for clients with a slow clock.
const CLOCK_SKEW_ALLOWANCE: time::Duration = time::Duration::minutes(5);

/// What a client asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OcspQuery {
    /// A DER `OCSPRequest` (POST body, or the base64 GET form decoded).
    Request(Vec<u8>),
    /// A serial number in hex (the `GET …/{issuer}/{serial}` convenience form).
    Serial(String),
}

/// A responder ready to sign.
pub(super) struct ActiveResponder {
    certificate_der: Vec<u8>,
    key: EcdsaKeyPair,
    key_path: PathBuf,
    not_after: OffsetDateTime,
    ca_fingerprint: String,
}

/// Why no responder could be made ready.
#[derive(Debug, thiserror::Error)]
pub(super) enum ResponderError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Failed(String),
}

type Slot = Arc<tokio::sync::Mutex<Option<Arc<ActiveResponder>>>>;

/// Responder settings and the in-memory responders, one slot (and lock) per issuer.
pub(super) struct Responders {
    key_dir: PathBuf,
    validity: time::Duration,
    grace: time::Duration,
    slots: Mutex<HashMap<String, Slot>>,
}

impl Responders {
    pub(super) fn new(key_dir: PathBuf, validity: Duration, grace: Duration) -> Self {
        Self {
            key_dir,
            validity: time::Duration::try_from(validity).unwrap_or(time::Duration::days(30)),
            grace: time::Duration::try_from(grace).unwrap_or(time::Duration::days(7)),
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn slot(&self, issuer_id: &str) -> Slot {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slots.entry(issuer_id.to_owned()).or_default().clone()
    }

    /// `ocsp-responder-<issuer>.key`, with anything but `[A-Za-z0-9._-]` replaced.
    fn key_path(&self, issuer_id: &str) -> PathBuf {
        let safe: String = issuer_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.key_dir.join(format!("ocsp-responder-{safe}.key"))
    }

    /// Whether a responder may keep signing at `now`; otherwise why not.
    fn retire_reason(
        &self,
        not_after: OffsetDateTime,
        ca_fingerprint: &str,
        current_ca: &str,
        key_path: &Path,
        now: OffsetDateTime,
    ) -> Option<&'static str> {
        if ca_fingerprint != current_ca {
            Some("the CA changed")
        } else if not_after - self.grace <= now {
            Some("within the rotation grace of expiry")
        } else if !key_path.exists() {
            Some("its key file is missing")
        } else {
            None
        }
    }
}

fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

fn load_key(path: &Path) -> Result<EcdsaKeyPair, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let der = PrivatePkcs8KeyDer::from_pem_slice(&pem)
        .map_err(|e| format!("{}: not a PKCS#8 PEM key ({e})", path.display()))?;
    EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_ASN1_SIGNING,
        der.secret_pkcs8_der(),
        &SystemRandom::new(),
    )
    .map_err(|e| format!("{}: not an ECDSA P-256 key ({e})", path.display()))
}

/// Restores a stored responder if its key file is present and belongs to its certificate.
fn restore(stored: &StoredResponder) -> Result<ActiveResponder, String> {
    let der = CertificateDer::from_pem_slice(stored.certificate_pem.as_bytes())
        .map_err(|e| format!("stored responder certificate: {e}"))?
        .to_vec();
    let (_, cert) = X509Certificate::from_der(&der)
        .map_err(|e| format!("stored responder certificate: {e}"))?;
    let key_path = PathBuf::from(&stored.key_path);
    let key = load_key(&key_path)?;
    if cert.public_key().subject_public_key.data.as_ref() != key.public_key().as_ref() {
        return Err(format!(
            "{} does not belong to the stored responder certificate",
            key_path.display()
        ));
    }
    Ok(ActiveResponder {
        not_after: cert.validity().not_after.to_datetime(),
        certificate_der: der,
        key,
        key_path,
        ca_fingerprint: stored.ca_fingerprint_sha256.clone(),
    })
}

impl RevocationService {
    /// The issuer's responder, rotated first when it must be.
    pub(super) async fn responder(
        &self,
        issuer_id: &str,
        ca: &LocalCa,
    ) -> Result<Arc<ActiveResponder>, ResponderError> {
        let r = &self.responders;
        let slot = r.slot(issuer_id);
        let mut slot = slot.lock().await;
        let now = self.clock.now();
        let ca_fp = fingerprint(ca.certificate_der());
        if let Some(active) = slot.as_ref()
            && r.retire_reason(
                active.not_after,
                &active.ca_fingerprint,
                &ca_fp,
                &active.key_path,
                now,
            )
            .is_none()
        {
            return Ok(active.clone());
        }
        let why = match ocsp_responders::get(&self.store, issuer_id).await? {
            None => "none existed".to_owned(),
            Some(stored) => match restore(&stored) {
                Ok(active) => match r.retire_reason(
                    active.not_after,
                    &active.ca_fingerprint,
                    &ca_fp,
                    &active.key_path,
                    now,
                ) {
                    None => {
                        let active = Arc::new(active);
                        *slot = Some(active.clone());
                        return Ok(active);
                    }
                    Some(reason) => reason.to_owned(),
                },
                Err(e) => {
                    tracing::warn!(%issuer_id, error = %e, "OCSP responder key unusable; rotating");
                    e
                }
            },
        };
        let active = Arc::new(self.rotate(issuer_id, ca, &ca_fp, now, &why).await?);
        *slot = Some(active.clone());
        Ok(active)
    }

    /// Issues a new responder: key file first (0600, atomic), then the certificate, then the
    /// row, then the audit event. A crash in between leaves a key that does not match the
    /// stored certificate, which the next request detects and rotates again.
    async fn rotate(
        &self,
        issuer_id: &str,
        ca: &LocalCa,
        ca_fp: &str,
        now: OffsetDateTime,
        why: &str,
    ) -> Result<ActiveResponder, ResponderError> {
        let r = &self.responders;
        let failed = |e: String| ResponderError::Failed(e);
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .map_err(|_| failed("responder key generation failed".into()))?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|e| failed(format!("responder key: {e}")))?;
        let public = rcgen::KeyPair::try_from(&PrivatePkcs8KeyDer::from(pkcs8.as_ref().to_vec()))
            .map_err(|e| failed(format!("responder key: {e}")))?;

        let key_path = r.key_path(issuer_id);
        if !r.key_dir.exists() {
            // Created private; an operator-provided directory keeps its own mode.
            std::fs::create_dir_all(&r.key_dir)
                .and_then(|()| {
                    std::fs::set_permissions(&r.key_dir, std::fs::Permissions::from_mode(0o700))
                })
                .map_err(|e| failed(format!("{}: {e}", r.key_dir.display())))?;
        }
        let pem = crate::pki::pem("PRIVATE KEY", pkcs8.as_ref());
        crate::tls::write_private(&key_path, pem.as_bytes(), 0o600)
            .map_err(|e| failed(format!("{}: {e}", key_path.display())))?;

        let issued = ca
            .issue_ocsp_responder(
                &public,
                &format!("certctl OCSP responder for {issuer_id}"),
                now - CLOCK_SKEW_ALLOWANCE,
                now + r.validity,
            )
            .map_err(|e| failed(e.to_string()))?;
        let stored = StoredResponder {
            issuer_id: issuer_id.to_owned(),
            certificate_pem: crate::pki::pem("CERTIFICATE", &issued.der),
            serial_number: issued.serial_hex.clone(),
            key_path: key_path.display().to_string(),
            ca_fingerprint_sha256: ca_fp.to_owned(),
            not_before: certctl_core::timestamp::format(issued.not_before),
            not_after: certctl_core::timestamp::format(issued.not_after),
            created_at: certctl_core::timestamp::format(now),
        };
        ocsp_responders::put(&self.store, &stored).await?;
        let entry = AuditEntry {
            actor: Actor::system(),
            action: "ocsp_responder_rotated".into(),
            resource_type: "issuer".into(),
            resource_id: issuer_id.to_owned(),
            details: json!({"serial_number": stored.serial_number, "not_after": stored.not_after, "reason": why}),
        };
        audit::append_alone(&self.store, &entry, &stored.created_at).await?;
        tracing::info!(%issuer_id, serial = %stored.serial_number, not_after = %stored.not_after, reason = %why, "issued a new OCSP responder certificate");
        Ok(ActiveResponder {
            certificate_der: issued.der,
            key,
            key_path,
            not_after: issued.not_after,
            ca_fingerprint: ca_fp.to_owned(),
        })
    }

    /// Answers an OCSP query for `issuer_id`; always a DER OCSPResponse.
    pub async fn ocsp(&self, issuer_id: &str, query: OcspQuery) -> Vec<u8> {
        let Some(ca) = self
            .support(issuer_id)
            .await
            .filter(|s| s.capabilities.ocsp)
            .and_then(|s| s.ca)
        else {
            return ocsp::encode_error(ResponseStatus::Unauthorized);
        };
        let identity = match IssuerIdentity::from_certificate_der(ca.certificate_der()) {
            Ok(i) => i,
            Err(e) => {
                tracing::error!(%issuer_id, error = %e, "CA certificate unreadable for OCSP");
                return ocsp::encode_error(ResponseStatus::InternalError);
            }
        };
        let (questions, nonce) = match query {
            OcspQuery::Request(der) => match ocsp::parse_request(&der) {
                Ok(req) => (
                    req.cert_ids
                        .into_iter()
                        .map(|id| {
                            let ours = identity.issued(&id);
                            (id.der, ours.then_some(id.serial))
                        })
                        .collect::<Vec<_>>(),
                    req.nonce,
                ),
                Err(e) => {
                    tracing::debug!(%issuer_id, error = %e, "malformed OCSP request");
                    return ocsp::encode_error(ResponseStatus::MalformedRequest);
                }
            },
            OcspQuery::Serial(text) => {
                match canonical_serial(&text).and_then(|h| hex::decode(h).ok()) {
                    Some(serial) => {
                        // A positive INTEGER: prefix a zero octet when the top bit is set.
                        let integer = if serial[0] & 0x80 != 0 {
                            [&[0u8][..], &serial].concat()
                        } else {
                            serial
                        };
                        (vec![(identity.cert_id(&integer), Some(integer))], None)
                    }
                    None => return ocsp::encode_error(ResponseStatus::MalformedRequest),
                }
            }
        };
        let responder = match self.responder(issuer_id, &ca).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(%issuer_id, error = %e, "no OCSP responder available");
                return ocsp::encode_error(match e {
                    ResponderError::Store(_) => ResponseStatus::TryLater,
                    ResponderError::Failed(_) => ResponseStatus::InternalError,
                });
            }
        };
        let now = self.clock.now();
        let mut answers = Vec::with_capacity(questions.len());
        for (cert_id_der, serial) in questions {
            let status = match serial.as_deref().and_then(canonical_serial_bytes) {
                None => CertStatus::Unknown,
                Some(serial) => match self.status_of(issuer_id, &serial).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(%issuer_id, error = %e, "OCSP status lookup failed");
                        return ocsp::encode_error(ResponseStatus::TryLater);
                    }
                },
            };
            answers.push(SingleAnswer {
                cert_id_der,
                status,
                this_update: now,
                next_update: now + ANSWER_VALIDITY,
            });
        }
        let active = &responder;
        match ocsp::encode_response(
            &answers,
            nonce.as_deref(),
            now,
            &ResponderKey {
                certificate_der: &active.certificate_der,
                key: &active.key,
            },
        ) {
            Ok(der) => der,
            Err(e) => {
                tracing::error!(%issuer_id, error = %e, "OCSP response not signed");
                ocsp::encode_error(ResponseStatus::InternalError)
            }
        }
    }

    /// Revoked (with time and reason), good (issued, not revoked) or unknown.
    ///
    /// Unknown covers serials certctl never issued and certificates of short-lived profiles
    /// (TTL < 1 h): those are exempt from revocation status altogether (DESIGN §3, kept out
    /// of CRLs too), so the responder does not vouch for them either way — not even after
    /// a revocation, which is recorded but not published. Their short validity is the
    /// protection, and answering `good` would claim a coverage they do not have.
    async fn status_of(&self, issuer_id: &str, serial: &str) -> Result<CertStatus, StoreError> {
        if let Some(revoked) = revocations::find(&self.store, issuer_id, serial).await? {
            if revoked.crl_exempt {
                return Ok(CertStatus::Unknown);
            }
            let time = certctl_core::timestamp::parse(&revoked.revoked_at)
                .map_err(|e| StoreError::Corrupt(format!("revoked_at: {e}")))?;
            return Ok(CertStatus::Revoked {
                time,
                reason: revoked.reason.published_code(),
            });
        }
        let Some(certificate_id) =
            revocations::issued_certificate(&self.store, issuer_id, serial).await?
        else {
            return Ok(CertStatus::Unknown);
        };
        // A version whose certificate row is gone has nothing left to exempt it.
        let exempt = match certificates::get(&self.store, &certificate_id).await? {
            Some(certificate) => self.crl_exempt(&certificate).await?,
            None => false,
        };
        Ok(if exempt {
            CertStatus::Unknown
        } else {
            CertStatus::Good
        })
    }
}
