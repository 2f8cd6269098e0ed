//! Certificate revocation lists (RFC 5280 §5): what goes into one and how it maps onto
//! rcgen's CRL builder. Signing happens in [`super::local_ca::LocalCa::sign_crl`], which owns
//! the CA key; storing, caching and serving CRLs is the revocation service's business.
//!
//! Choices: no issuing-distribution-point extension (a CRL scoped to one URL would stop
//! covering certificates issued under an earlier `CERTCTL_PUBLIC_URL`), and no reason code
//! for `unspecified` entries (RFC 5280 §5.3.1 says to leave it out).

use rcgen::{
    CertificateRevocationListParams, KeyIdMethod, RevocationReason as RcgenReason,
    RevokedCertParams, SerialNumber,
};
use time::OffsetDateTime;

use crate::domain::revocation::RevocationReason;

/// How long a CRL is valid (`nextUpdate − thisUpdate`). The generation loop renews it every
/// hour by default, so relying parties never see a stale one while the server runs.
pub const CRL_VALIDITY: time::Duration = time::Duration::hours(24);

/// One revoked certificate as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedEntry {
    /// Serial number, canonical lower-case hex (see `domain::revocation::canonical_serial`).
    pub serial_hex: String,
    /// When certctl recorded the revocation.
    pub revoked_at: OffsetDateTime,
    /// Why.
    pub reason: RevocationReason,
}

/// The contents of one CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlContents {
    /// Monotonic per issuer (RFC 5280 §5.2.3).
    pub crl_number: u64,
    /// Issue time.
    pub this_update: OffsetDateTime,
    /// When the next CRL will be out at the latest.
    pub next_update: OffsetDateTime,
    /// The revoked certificates.
    pub entries: Vec<RevokedEntry>,
}

/// Why a CRL could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CrlError {
    /// A stored serial number is not hex (corrupt record).
    #[error("revoked serial {0:?} is not hex")]
    BadSerial(String),
}

fn to_rcgen(reason: RevocationReason) -> Option<RcgenReason> {
    Some(match reason {
        RevocationReason::Unspecified => return None,
        RevocationReason::KeyCompromise => RcgenReason::KeyCompromise,
        RevocationReason::CaCompromise => RcgenReason::CaCompromise,
        RevocationReason::AffiliationChanged => RcgenReason::AffiliationChanged,
        RevocationReason::Superseded => RcgenReason::Superseded,
        RevocationReason::CessationOfOperation => RcgenReason::CessationOfOperation,
        RevocationReason::CertificateHold => RcgenReason::CertificateHold,
        RevocationReason::PrivilegeWithdrawn => RcgenReason::PrivilegeWithdrawn,
    })
}

fn whole_seconds(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
}

/// The CRL number as a minimal positive DER INTEGER's octets.
fn crl_number_octets(n: u64) -> Vec<u8> {
    let bytes = n.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(7);
    let mut out = bytes[skip..].to_vec();
    if out[0] & 0x80 != 0 {
        out.insert(0, 0);
    }
    out
}

impl CrlContents {
    /// rcgen's parameters; `key_id` is the CA's subject key identifier, so the CRL's
    /// authority key identifier matches the CA certificate whichever method made it.
    pub(crate) fn to_params(
        &self,
        key_id: KeyIdMethod,
    ) -> Result<CertificateRevocationListParams, CrlError> {
        let revoked_certs = self
            .entries
            .iter()
            .map(|e| {
                let serial = hex::decode(&e.serial_hex)
                    .map_err(|_| CrlError::BadSerial(e.serial_hex.clone()))?;
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&serial),
                    revocation_time: whole_seconds(e.revoked_at),
                    reason_code: to_rcgen(e.reason),
                    invalidity_date: None,
                })
            })
            .collect::<Result<_, CrlError>>()?;
        Ok(CertificateRevocationListParams {
            this_update: whole_seconds(self.this_update),
            next_update: whole_seconds(self.next_update),
            crl_number: SerialNumber::from_slice(&crl_number_octets(self.crl_number)),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: key_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crl_numbers_are_minimal_positive_integers() {
        assert_eq!(crl_number_octets(0), vec![0]);
        assert_eq!(crl_number_octets(1), vec![1]);
        assert_eq!(crl_number_octets(0x80), vec![0, 0x80]);
        assert_eq!(crl_number_octets(0x0102), vec![1, 2]);
    }

    #[test]
    fn unspecified_entries_carry_no_reason_code() {
        let now = OffsetDateTime::now_utc();
        let contents = CrlContents {
            crl_number: 7,
            this_update: now,
            next_update: now + CRL_VALIDITY,
            entries: vec![
                RevokedEntry {
                    serial_hex: "4a01".into(),
                    revoked_at: now,
                    reason: RevocationReason::Unspecified,
                },
                RevokedEntry {
                    serial_hex: "4a02".into(),
                    revoked_at: now,
                    reason: RevocationReason::KeyCompromise,
                },
            ],
        };
        let params = contents.to_params(KeyIdMethod::Sha256).expect("params");
        assert_eq!(params.revoked_certs[0].reason_code, None);
        assert_eq!(
            params.revoked_certs[1].reason_code,
            Some(RcgenReason::KeyCompromise)
        );
        assert_eq!(params.this_update.nanosecond(), 0);
        let bad = CrlContents {
            entries: vec![RevokedEntry {
                serial_hex: "zz".into(),
                revoked_at: now,
                reason: RevocationReason::Superseded,
            }],
            ..contents
        };
        assert!(bad.to_params(KeyIdMethod::Sha256).is_err());
    }

    /// openssl verifies what the Local CA signs, lists the serial with its reason, and
    /// refuses the listed leaf in `verify -crl_check` while accepting an unlisted one.
    #[test]
    fn openssl_verifies_the_crl_and_rejects_listed_leaves() {
        use crate::pki::local_ca::{ExtendedKeyUsage, IssueRequest, LocalCa};
        use crate::pki::test_openssl::Workdir;
        use crate::pki::{encoding, server_key};

        let work = Workdir::new();
        let ca = LocalCa::load_or_create(&work.path("ca")).expect("ca");
        work.write("ca.pem", &ca.chain_pem());
        let now = OffsetDateTime::now_utc();
        let mut serials = Vec::new();
        for name in ["revoked", "good"] {
            let key = server_key::generate().expect("key");
            let leaf = ca
                .issue(&IssueRequest {
                    public_key: key.public_key,
                    common_name: format!("{name}.example"),
                    sans: vec![],
                    extended_key_usages: vec![ExtendedKeyUsage::ServerAuth],
                    not_before: now - time::Duration::minutes(5),
                    not_after: now + time::Duration::days(30),
                    crl_url: Some("http://127.0.0.1/crl".into()),
                    ocsp_url: None,
                })
                .expect("leaf");
            work.write(&format!("{name}.pem"), &leaf.leaf_pem);
            serials.push(leaf.serial_hex);
        }
        let der = ca
            .sign_crl(&CrlContents {
                crl_number: 42,
                this_update: now,
                next_update: now + CRL_VALIDITY,
                entries: vec![RevokedEntry {
                    serial_hex: serials[0].clone(),
                    revoked_at: now,
                    reason: RevocationReason::KeyCompromise,
                }],
            })
            .expect("crl");
        std::fs::write(work.path("crl.der"), &der).expect("write");
        work.write("crl.pem", &encoding::pem("X509 CRL", &der));

        let out = std::process::Command::new("openssl")
            .args([
                "crl", "-inform", "DER", "-in", "crl.der", "-CAfile", "ca.pem", "-noout", "-text",
            ])
            .current_dir(work.path(""))
            .output()
            .expect("openssl");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("verify OK"), "{text}");
        assert!(text.contains(&serials[0].to_uppercase()), "{text}");
        assert!(text.contains("Key Compromise"), "{text}");
        let number = text
            .lines()
            .skip_while(|l| !l.contains("X509v3 CRL Number"))
            .nth(1)
            .map(str::trim);
        assert_eq!(number, Some("42"), "{text}");

        let revoked = work.try_openssl(&[
            "verify",
            "-crl_check",
            "-CRLfile",
            "crl.pem",
            "-CAfile",
            "ca.pem",
            "revoked.pem",
        ]);
        assert!(
            revoked
                .as_ref()
                .is_err_and(|e| e.contains("certificate revoked")),
            "{revoked:?}"
        );
        work.openssl(&[
            "verify",
            "-crl_check",
            "-CRLfile",
            "crl.pem",
            "-CAfile",
            "ca.pem",
            "good.pem",
        ]);
    }
}
