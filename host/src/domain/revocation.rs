//! Revocation rules: the RFC 5280 reasons, which certificates may be revoked, what a bulk
//! revocation may select, and which certificates stay out of CRLs. Pure types and functions;
//! the revocation service does the I/O.
//!
//! Not here: the CRL and OCSP wire formats (`pki::crl`, `pki::ocsp`) and the revocation
//! records themselves (`store::revocations`).

use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

/// Profiles whose certificates live shorter than this (seconds) are "short-lived": expiry is
/// their revocation, so their certificates carry no CRL/OCSP pointers and never appear in
/// a CRL (DESIGN.md §3).
pub const SHORT_LIVED_TTL_SECONDS: i64 = 3600;

/// Why a certificate was revoked (RFC 5280 §5.3.1 CRLReason), as the API spells it.
///
/// `removeFromCRL` (8) and `aACompromise` (10) are not offered: certctl has no delta CRLs
/// and issues no attribute certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RevocationReason {
    /// No reason given (code 0); omitted from CRL entries and OCSP answers, as RFC 5280
    /// §5.3.1 and the CA/B Forum BRs ask.
    #[default]
    Unspecified,
    /// The subject's private key is known or suspected to be compromised (1).
    KeyCompromise,
    /// The issuing CA's key is compromised (2).
    CaCompromise,
    /// The subject's name or other information changed (3).
    AffiliationChanged,
    /// A newer certificate replaces this one (4).
    Superseded,
    /// The certificate is no longer needed (5).
    CessationOfOperation,
    /// Temporarily on hold (6).
    CertificateHold,
    /// A privilege granted by the certificate was withdrawn (9).
    PrivilegeWithdrawn,
}

impl RevocationReason {
    /// Every reason, in code order.
    pub const ALL: [Self; 8] = [
        Self::Unspecified,
        Self::KeyCompromise,
        Self::CaCompromise,
        Self::AffiliationChanged,
        Self::Superseded,
        Self::CessationOfOperation,
        Self::CertificateHold,
        Self::PrivilegeWithdrawn,
    ];

    /// The RFC 5280 name (`keyCompromise`, …), used by the API, the database and audit.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::KeyCompromise => "keyCompromise",
            Self::CaCompromise => "caCompromise",
            Self::AffiliationChanged => "affiliationChanged",
            Self::Superseded => "superseded",
            Self::CessationOfOperation => "cessationOfOperation",
            Self::CertificateHold => "certificateHold",
            Self::PrivilegeWithdrawn => "privilegeWithdrawn",
        }
    }

    /// The CRLReason code.
    pub fn code(self) -> u8 {
        match self {
            Self::Unspecified => 0,
            Self::KeyCompromise => 1,
            Self::CaCompromise => 2,
            Self::AffiliationChanged => 3,
            Self::Superseded => 4,
            Self::CessationOfOperation => 5,
            Self::CertificateHold => 6,
            Self::PrivilegeWithdrawn => 9,
        }
    }

    /// The reason with this CRLReason code, if certctl offers it.
    pub fn from_code(code: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|r| i64::from(r.code()) == code)
    }

    /// The code to put into a CRL entry or an OCSP answer: none for `unspecified`.
    pub fn published_code(self) -> Option<u8> {
        (self != Self::Unspecified).then_some(self.code())
    }

    /// The accepted names, comma-separated, for error messages.
    pub fn allowed() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

impl fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RevocationReason {
    type Err = String;

    /// Parses an RFC 5280 reason name (exact spelling); the error lists the accepted names.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "reason: unknown revocation reason {s:?}; expected one of {}",
                    Self::allowed()
                )
            })
    }
}

/// Why a certificate cannot be revoked now (answered with 409).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotRevocable {
    /// It is already revoked; `previous` says how, when the record was found, so a bulk
    /// run's Skipped outcome names the reason that still stands.
    #[error("certificate {id} is already revoked{}", describe_previous(.previous.as_ref()))]
    AlreadyRevoked {
        /// The certificate.
        id: String,
        /// Its standing revocation, if read.
        previous: Option<PriorRevocation>,
    },
    /// It was deleted (archived); its history is read-only.
    #[error("certificate {0} is archived; archived certificates cannot be revoked")]
    Archived(String),
    /// Nothing was ever issued for it, so there is no serial to revoke.
    #[error("certificate {0} was never issued; there is no serial number to revoke")]
    NeverIssued(String),
}

/// The revocation that already stands for a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorRevocation {
    /// Why it was revoked.
    pub reason: RevocationReason,
    /// When (canonical timestamp).
    pub revoked_at: String,
}

fn describe_previous(previous: Option<&PriorRevocation>) -> String {
    previous
        .map(|p| format!(" ({}) at {}", p.reason, p.revoked_at))
        .unwrap_or_default()
}

/// Whether a certificate in `status` with `issued_versions` versions may be revoked.
/// Expired certificates may: revoking them still tells relying parties with a slow clock.
pub fn check_revocable(id: &str, status: &str, issued_versions: usize) -> Result<(), NotRevocable> {
    match status {
        "Revoked" => Err(NotRevocable::AlreadyRevoked {
            id: id.to_owned(),
            previous: None,
        }),
        "Archived" => Err(NotRevocable::Archived(id.to_owned())),
        _ if issued_versions == 0 => Err(NotRevocable::NeverIssued(id.to_owned())),
        _ => Ok(()),
    }
}

/// Whether a profile's `max_ttl_seconds` makes its certificates short-lived.
pub fn is_short_lived(max_ttl_seconds: Option<i64>) -> bool {
    max_ttl_seconds.is_some_and(|ttl| ttl < SHORT_LIVED_TTL_SECONDS)
}

/// What a bulk revocation selects. Every given criterion must hold (they are ANDed), so
/// `{"profile_id": "prof-staging", "team_id": "team-platform"}` means staging certificates
/// of that team. At least one criterion is required.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BulkCriteria {
    /// Certificates issued with this profile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_id: Option<String>,
    /// Certificates of this owner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    /// Certificates deployed (mapped to a target) through this agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Certificates from this issuer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer_id: Option<String>,
    /// Certificates of this team, or owned by one of its members.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
    /// These certificates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_ids: Option<Vec<String>>,
}

/// Names of the criteria, for error messages.
pub const BULK_CRITERIA: &[&str] = &[
    "profile_id",
    "owner_id",
    "agent_id",
    "issuer_id",
    "team_id",
    "certificate_ids",
];

/// Most certificates one `certificate_ids` list may name.
pub const MAX_BULK_IDS: usize = 10_000;

/// A bulk revocation request, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkRequest {
    /// What to revoke.
    pub criteria: BulkCriteria,
    /// Why.
    pub reason: RevocationReason,
}

/// A field that failed validation and why (the API answers 400 naming it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidField {
    /// The field.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> InvalidField {
    InvalidField {
        field,
        message: message.into(),
    }
}

/// Reads the optional `reason` field (default `unspecified`).
pub fn parse_reason(body: &Map<String, Value>) -> Result<RevocationReason, InvalidField> {
    match body.get("reason") {
        None | Some(Value::Null) => Ok(RevocationReason::Unspecified),
        Some(Value::String(s)) => s.parse().map_err(|m| invalid("reason", m)),
        Some(_) => Err(invalid(
            "reason",
            format!(
                "reason: must be a string, one of {}",
                RevocationReason::allowed()
            ),
        )),
    }
}

/// Validates a bulk revocation body: known fields only, string ids, at least one criterion.
pub fn parse_bulk(body: &Map<String, Value>) -> Result<BulkRequest, InvalidField> {
    if let Some(unknown) = body
        .keys()
        .find(|k| *k != "reason" && !BULK_CRITERIA.contains(&k.as_str()))
    {
        return Err(invalid(
            "body",
            format!(
                "{unknown}: unknown field; criteria are {} (plus reason)",
                BULK_CRITERIA.join(", ")
            ),
        ));
    }
    let reason = parse_reason(body)?;
    let text = |field: &'static str| -> Result<Option<String>, InvalidField> {
        match body.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
            Some(_) => Err(invalid(
                field,
                format!("{field}: must be a non-empty string"),
            )),
        }
    };
    let certificate_ids = match body.get("certificate_ids") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => {
            let mut ids: Vec<String> = Vec::with_capacity(items.len());
            for item in items {
                match item.as_str().map(str::trim) {
                    Some(id) if !id.is_empty() => {
                        if !ids.iter().any(|known| known == id) {
                            ids.push(id.to_owned());
                        }
                    }
                    _ => {
                        return Err(invalid(
                            "certificate_ids",
                            "certificate_ids: every item must be a non-empty string",
                        ));
                    }
                }
            }
            if ids.is_empty() {
                return Err(invalid(
                    "certificate_ids",
                    "certificate_ids: must name at least one certificate when given",
                ));
            }
            if ids.len() > MAX_BULK_IDS {
                return Err(invalid(
                    "certificate_ids",
                    format!("certificate_ids: at most {MAX_BULK_IDS} ids per request"),
                ));
            }
            Some(ids)
        }
        Some(_) => {
            return Err(invalid(
                "certificate_ids",
                "certificate_ids: must be an array of certificate ids",
            ));
        }
    };
    let criteria = BulkCriteria {
        profile_id: text("profile_id")?,
        owner_id: text("owner_id")?,
        agent_id: text("agent_id")?,
        issuer_id: text("issuer_id")?,
        team_id: text("team_id")?,
        certificate_ids,
    };
    if criteria == BulkCriteria::default() {
        return Err(invalid(
            "body",
            format!(
                "at least one criterion is required: {}",
                BULK_CRITERIA.join(", ")
            ),
        ));
    }
    Ok(BulkRequest { criteria, reason })
}

/// A serial number in the one form certctl stores and compares: lower-case hex of the
/// positive integer's magnitude, no separators, no leading zero octets, an even number of
/// digits (`0x00ab` → `ab`). Accepts `:`-separated and upper-case input; `None` for
/// anything that is not hex.
pub fn canonical_serial(text: &str) -> Option<String> {
    let digits: String = text
        .trim()
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let trimmed = digits.trim_start_matches('0');
    if trimmed.is_empty() {
        return Some("00".into());
    }
    Some(if trimmed.len() % 2 == 1 {
        format!("0{trimmed}")
    } else {
        trimmed.to_owned()
    })
}

/// [`canonical_serial`] of an INTEGER's content octets (two's complement, as in DER).
/// `None` for a negative number, which no certificate serial may be.
pub fn canonical_serial_bytes(integer: &[u8]) -> Option<String> {
    if integer.first().is_some_and(|b| b & 0x80 != 0) {
        return None;
    }
    canonical_serial(&hex::encode(integer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn reasons_round_trip_with_rfc5280_codes() {
        for r in RevocationReason::ALL {
            assert_eq!(r.as_str().parse::<RevocationReason>(), Ok(r));
            assert_eq!(RevocationReason::from_code(i64::from(r.code())), Some(r));
        }
        assert_eq!(RevocationReason::PrivilegeWithdrawn.code(), 9);
        assert_eq!(RevocationReason::from_code(7), None);
        assert_eq!(RevocationReason::Unspecified.published_code(), None);
        assert_eq!(RevocationReason::KeyCompromise.published_code(), Some(1));
        let err = "KeyCompromise".parse::<RevocationReason>().unwrap_err();
        assert!(
            err.contains("keyCompromise") && err.contains("privilegeWithdrawn"),
            "{err}"
        );
    }

    #[test]
    fn reason_defaults_to_unspecified() {
        assert_eq!(
            parse_reason(&obj(json!({}))),
            Ok(RevocationReason::Unspecified)
        );
        assert_eq!(
            parse_reason(&obj(json!({"reason": "superseded"}))),
            Ok(RevocationReason::Superseded)
        );
        assert_eq!(
            parse_reason(&obj(json!({"reason": 1}))).unwrap_err().field,
            "reason"
        );
    }

    #[test]
    fn revocability_names_the_obstacle() {
        assert!(check_revocable("mc-a", "Active", 1).is_ok());
        assert!(check_revocable("mc-a", "Expired", 2).is_ok());
        assert_eq!(
            check_revocable("mc-a", "Revoked", 1),
            Err(NotRevocable::AlreadyRevoked {
                id: "mc-a".into(),
                previous: None,
            })
        );
        let with_previous = NotRevocable::AlreadyRevoked {
            id: "mc-a".into(),
            previous: Some(PriorRevocation {
                reason: RevocationReason::Superseded,
                revoked_at: "2026-01-02T03:04:05Z".into(),
            }),
        };
        assert_eq!(
            with_previous.to_string(),
            "certificate mc-a is already revoked (superseded) at 2026-01-02T03:04:05Z"
        );
        assert_eq!(
            check_revocable("mc-a", "Archived", 1),
            Err(NotRevocable::Archived("mc-a".into()))
        );
        assert_eq!(
            check_revocable("mc-a", "Pending", 0),
            Err(NotRevocable::NeverIssued("mc-a".into()))
        );
    }

    #[test]
    fn short_lived_is_under_an_hour() {
        assert!(is_short_lived(Some(600)));
        assert!(!is_short_lived(Some(3600)));
        assert!(!is_short_lived(None));
    }

    #[test]
    fn bulk_needs_a_criterion_and_known_fields() {
        assert_eq!(
            parse_bulk(&obj(json!({"reason": "keyCompromise"})))
                .unwrap_err()
                .field,
            "body"
        );
        assert_eq!(
            parse_bulk(&obj(json!({"profile": "x"}))).unwrap_err().field,
            "body"
        );
        assert_eq!(
            parse_bulk(&obj(json!({"certificate_ids": []})))
                .unwrap_err()
                .field,
            "certificate_ids"
        );
        assert_eq!(
            parse_bulk(&obj(json!({"owner_id": 3}))).unwrap_err().field,
            "owner_id"
        );
        let ok = parse_bulk(&obj(json!({
            "profile_id": "prof-a", "team_id": "team-b", "certificate_ids": ["mc-1", "mc-1", "mc-2"]
        })))
        .unwrap();
        assert_eq!(ok.reason, RevocationReason::Unspecified);
        assert_eq!(
            ok.criteria.certificate_ids,
            Some(vec!["mc-1".into(), "mc-2".into()])
        );
        assert_eq!(ok.criteria.team_id.as_deref(), Some("team-b"));
    }

    #[test]
    fn serials_have_one_canonical_form() {
        assert_eq!(canonical_serial("4A:0B").as_deref(), Some("4a0b"));
        assert_eq!(canonical_serial("0x12").as_deref(), None);
        assert_eq!(canonical_serial("00ab").as_deref(), Some("ab"));
        assert_eq!(canonical_serial("abc").as_deref(), Some("0abc"));
        assert_eq!(canonical_serial("0").as_deref(), Some("00"));
        assert_eq!(canonical_serial_bytes(&[0x00, 0x80]).as_deref(), Some("80"));
        assert_eq!(canonical_serial_bytes(&[0x80]), None);
    }
}
