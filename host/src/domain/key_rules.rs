//! Profile rules applied to every CSR and every issuance: allowed keys, TTL cap, required
//! SANs, EKUs. Pure checks whose messages name the problem for the API caller.

use serde_json::Value;
use time::{Duration, OffsetDateTime};

/// Extended key usages a profile may grant.
pub const EKUS: &[&str] = &[
    "serverAuth",
    "clientAuth",
    "codeSigning",
    "emailProtection",
    "timeStamping",
];

/// The parts of a profile the issuance pipeline enforces.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfileRules {
    /// (algorithm, minimum size) pairs; empty accepts any key.
    pub allowed_keys: Vec<(String, i64)>,
    /// Lifetime cap in seconds.
    pub max_ttl_seconds: Option<i64>,
    /// SANs every certificate must carry.
    pub required_sans: Vec<String>,
    /// EKUs to put in the certificate.
    pub ekus: Vec<String>,
    /// Issuance waits for an operator.
    pub requires_approval: bool,
}

impl ProfileRules {
    /// Reads the rules from a stored profile record.
    pub fn from_record(profile: &serde_json::Map<String, Value>) -> Self {
        let allowed_keys = profile
            .get("allowed_key_algorithms")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| {
                        let alg = i.get("algorithm")?.as_str()?.to_ascii_uppercase();
                        let min = i.get("min_size").and_then(Value::as_i64).unwrap_or(0);
                        Some((alg, min))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let strings = |k: &str| -> Vec<String> {
            profile
                .get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        Self {
            allowed_keys,
            max_ttl_seconds: profile.get("max_ttl_seconds").and_then(Value::as_i64),
            required_sans: strings("required_sans"),
            ekus: strings("allowed_ekus"),
            requires_approval: profile
                .get("requires_approval")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        }
    }

    /// Checks a key against the allowed list; the error says what is allowed.
    pub fn check_key(&self, algorithm: &str, size: i64) -> Result<(), String> {
        if self.allowed_keys.is_empty() {
            return Ok(());
        }
        let alg = algorithm.to_ascii_uppercase();
        if self
            .allowed_keys
            .iter()
            .any(|(a, min)| *a == alg && size >= *min)
        {
            return Ok(());
        }
        let allowed: Vec<String> = self
            .allowed_keys
            .iter()
            .map(|(a, m)| format!("{a} ≥ {m} bits"))
            .collect();
        Err(format!(
            "key {algorithm}-{size} is not allowed by the profile (allowed: {})",
            allowed.join(", ")
        ))
    }

    /// Checks that every required SAN is present.
    pub fn check_required_sans(&self, sans: &[String]) -> Result<(), String> {
        let missing: Vec<&str> = self
            .required_sans
            .iter()
            .filter(|r| !sans.iter().any(|s| s.eq_ignore_ascii_case(r)))
            .map(String::as_str)
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "the profile requires SANs that are missing: {}",
                missing.join(", ")
            ))
        }
    }

    /// NotAfter for a certificate starting at `not_before` that asked for `requested`, capped by the profile.
    pub fn not_after(&self, not_before: OffsetDateTime, requested: Duration) -> OffsetDateTime {
        let cap = self
            .max_ttl_seconds
            .map(Duration::seconds)
            .unwrap_or(requested);
        not_before + requested.min(cap)
    }

    /// Short-lived certificates (TTL under an hour) skip CRL/OCSP and get the fast expiry loop.
    pub fn is_short_lived(&self) -> bool {
        self.max_ttl_seconds.is_some_and(|t| t < 3600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(v: Value) -> ProfileRules {
        ProfileRules::from_record(v.as_object().unwrap())
    }

    #[test]
    fn key_rules() {
        let r = rules(json!({"allowed_key_algorithms": [{"algorithm": "ECDSA", "min_size": 256}]}));
        assert!(r.check_key("ECDSA", 256).is_ok());
        let e = r.check_key("RSA", 1024).unwrap_err();
        assert!(e.contains("RSA-1024") && e.contains("ECDSA ≥ 256"), "{e}");
        assert!(rules(json!({})).check_key("RSA", 512).is_ok());
    }

    #[test]
    fn ttl_cap_and_required_sans() {
        let r = rules(json!({"max_ttl_seconds": 86400, "required_sans": ["a.example"]}));
        let nb = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(r.not_after(nb, Duration::days(90)), nb + Duration::days(1));
        assert_eq!(r.not_after(nb, Duration::hours(1)), nb + Duration::hours(1));
        assert!(r.check_required_sans(&["A.example".into()]).is_ok());
        assert!(
            r.check_required_sans(&["b.example".into()])
                .unwrap_err()
                .contains("a.example")
        );
        assert!(!r.is_short_lived());
        assert!(rules(json!({"max_ttl_seconds": 600})).is_short_lived());
    }
}
