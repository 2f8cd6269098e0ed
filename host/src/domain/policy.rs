//! Policy rules: organisation-wide constraints checked at issuance.

use super::resource::{CREATED_AT, DeleteMode, FieldKind::*, FieldSpec, ResourceSpec};

/// Rule kinds.
pub const TYPES: &[&str] = &[
    "KeyAlgorithm",
    "MinKeySize",
    "MaxLifetime",
    "SanPattern",
    "IssuerRestriction",
];

/// How serious a violation is.
pub const SEVERITIES: &[&str] = &["Warning", "Error", "Critical"];

/// `/api/v1/policies`.
pub static SPEC: ResourceSpec = ResourceSpec {
    path: "policies",
    table: "policy_rules",
    singular: "policy",
    id_prefix: "pol",
    fields: &[
        FieldSpec::new("name", Text, "Display name")
            .required()
            .sort()
            .filter(),
        FieldSpec::new("type", Enum(TYPES), "Rule kind")
            .required()
            .filter()
            .sort(),
        FieldSpec::new("config", Object, "Rule parameters").default("{}"),
        FieldSpec::new("severity", Enum(SEVERITIES), "Severity of violations")
            .default("\"Warning\"")
            .filter()
            .sort(),
        FieldSpec::new("enabled", Bool, "Disabled rules are not evaluated")
            .default("true")
            .filter(),
    ],
    timestamps: true,
    created_field: CREATED_AT,
    writable: true,
    delete: DeleteMode::Remove,
    time_filters: &[],
    default_sort: "name",
    doc: "Policy rules",
};

/// What policy rules are evaluated against at issuance.
#[derive(Debug, Clone, PartialEq)]
pub struct IssuanceFacts {
    /// ECDSA, RSA, Ed25519.
    pub key_algorithm: String,
    /// Key size in bits.
    pub key_size: i64,
    /// Requested lifetime in days (after the profile cap).
    pub lifetime_days: i64,
    /// All names (CN and SANs).
    pub names: Vec<String>,
    /// Issuer asked to sign.
    pub issuer_id: String,
}

/// A rule broken by an issuance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The rule.
    pub rule_id: String,
    /// What is wrong.
    pub message: String,
    /// Warning, Error or Critical.
    pub severity: String,
}

impl Violation {
    /// Error and Critical violations stop the issuance; warnings are recorded only.
    pub fn blocks(&self) -> bool {
        self.severity != "Warning"
    }
}

fn strings(config: &serde_json::Value, key: &str) -> Vec<String> {
    config
        .get(key)
        .and_then(serde_json::Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// `*` matches any run of characters except a dot-free constraint is not imposed: `*.example.com`
/// matches `a.example.com` and `a.b.example.com`. Case-insensitive.
fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.to_ascii_lowercase(), name.to_ascii_lowercase());
    let parts: Vec<&str> = p.split('*').collect();
    if parts.len() == 1 {
        return p == n;
    }
    let mut rest = n.as_str();
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(pos) => rest = &rest[pos + part.len()..],
                None => return false,
            }
        }
    }
    true
}

/// Evaluates one enabled rule (`type`, `config`) against the facts.
pub fn evaluate(
    rule_id: &str,
    rule_type: &str,
    config: &serde_json::Value,
    severity: &str,
    facts: &IssuanceFacts,
) -> Option<Violation> {
    let message = match rule_type {
        "KeyAlgorithm" => {
            let allowed = strings(config, "allowed");
            (!allowed.is_empty()
                && !allowed
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(&facts.key_algorithm)))
            .then(|| {
                format!(
                    "key algorithm {} is not one of {}",
                    facts.key_algorithm,
                    allowed.join(", ")
                )
            })
        }
        "MinKeySize" => {
            let applies = config
                .get("algorithm")
                .and_then(serde_json::Value::as_str)
                .is_none_or(|a| a.eq_ignore_ascii_case(&facts.key_algorithm));
            let min = config
                .get("min_size")
                .and_then(serde_json::Value::as_i64)
                .unwrap_or(0);
            (applies && facts.key_size < min).then(|| {
                format!(
                    "key size {} is below the minimum of {min} bits",
                    facts.key_size
                )
            })
        }
        "MaxLifetime" => {
            let max = config
                .get("max_days")
                .and_then(serde_json::Value::as_i64)
                .unwrap_or(i64::MAX);
            (facts.lifetime_days > max).then(|| {
                format!(
                    "lifetime of {} days exceeds the maximum of {max}",
                    facts.lifetime_days
                )
            })
        }
        "SanPattern" => {
            let patterns = strings(config, "allowed_patterns");
            let bad: Vec<&str> = facts
                .names
                .iter()
                .filter(|n| !patterns.is_empty() && !patterns.iter().any(|p| glob_match(p, n)))
                .map(String::as_str)
                .collect();
            (!bad.is_empty()).then(|| {
                format!(
                    "names not matching {}: {}",
                    patterns.join(", "),
                    bad.join(", ")
                )
            })
        }
        "IssuerRestriction" => {
            let allowed = strings(config, "allowed_issuers");
            (!allowed.is_empty() && !allowed.contains(&facts.issuer_id)).then(|| {
                format!(
                    "issuer {} is not one of {}",
                    facts.issuer_id,
                    allowed.join(", ")
                )
            })
        }
        _ => None,
    }?;
    Some(Violation {
        rule_id: rule_id.to_owned(),
        message,
        severity: severity.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn facts() -> IssuanceFacts {
        IssuanceFacts {
            key_algorithm: "RSA".into(),
            key_size: 1024,
            lifetime_days: 90,
            names: vec!["a.example.com".into(), "evil.org".into()],
            issuer_id: "iss-local".into(),
        }
    }

    #[test]
    fn each_rule_type() {
        let f = facts();
        assert!(
            evaluate(
                "p",
                "KeyAlgorithm",
                &json!({"allowed": ["ECDSA"]}),
                "Error",
                &f
            )
            .is_some()
        );
        assert!(
            evaluate(
                "p",
                "KeyAlgorithm",
                &json!({"allowed": ["rsa"]}),
                "Error",
                &f
            )
            .is_none()
        );
        assert!(evaluate("p", "MinKeySize", &json!({"min_size": 2048}), "Error", &f).is_some());
        assert!(
            evaluate(
                "p",
                "MinKeySize",
                &json!({"min_size": 2048, "algorithm": "ECDSA"}),
                "Error",
                &f
            )
            .is_none()
        );
        assert!(evaluate("p", "MaxLifetime", &json!({"max_days": 30}), "Error", &f).is_some());
        let v = evaluate(
            "p",
            "SanPattern",
            &json!({"allowed_patterns": ["*.example.com"]}),
            "Warning",
            &f,
        )
        .unwrap();
        assert!(v.message.contains("evil.org") && !v.message.contains("a.example.com"));
        assert!(!v.blocks());
        assert!(
            evaluate(
                "p",
                "IssuerRestriction",
                &json!({"allowed_issuers": ["iss-acme"]}),
                "Critical",
                &f
            )
            .unwrap()
            .blocks()
        );
    }

    #[test]
    fn globs() {
        assert!(glob_match("*.example.com", "a.b.example.com"));
        assert!(!glob_match("*.example.com", "example.com"));
        assert!(glob_match("api-*.corp", "api-1.corp"));
        assert!(glob_match("exact.host", "EXACT.host"));
    }
}
