//! The issuer config of the ACME connector: the JSON an API caller sets, over the
//! `CERTCTL_ACME_*` environment defaults, parsed and checked into [`AcmeConfig`]. The
//! reference implementation's names (`eab_hmac`, `http_port`, `dns_propagation_wait`,
//! `CERTCTL_ACME_EAB_HMAC`) are aliases.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::issuer::ConnectorError;

/// How a challenge is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeKind {
    /// HTTP-01 through the built-in responder.
    Http01,
    /// DNS-01 through operator scripts.
    Dns01,
    /// DNS-PERSIST-01 (draft-ietf-acme-dns-persist): a standing `_validation-persist` TXT
    /// record published once through the present script; falls back to DNS-01 when the CA
    /// does not offer it.
    DnsPersist01,
}

impl ChallengeKind {
    pub(super) fn parse(s: &str) -> Result<Self, ConnectorError> {
        match s {
            "http-01" => Ok(Self::Http01),
            "dns-01" => Ok(Self::Dns01),
            "dns-persist-01" => Ok(Self::DnsPersist01),
            other => Err(ConnectorError::Config(format!(
                "challenge_type \"{other}\" is not one of http-01, dns-01, dns-persist-01"
            ))),
        }
    }
}

/// The ACME issuer's settings (config JSON over `CERTCTL_ACME_*` defaults).
#[derive(Debug, Clone)]
pub struct AcmeConfig {
    /// ACME directory URL.
    pub directory_url: String,
    /// Contact e-mail (optional).
    pub email: Option<String>,
    /// Whether the operator agreed to the CA's terms of service.
    pub terms_of_service_agreed: bool,
    /// Challenge type.
    pub challenge_type: ChallengeKind,
    /// Address the HTTP-01 responder binds (`host:port`).
    pub http01_listen: String,
    /// Keep the HTTP-01 responder up between orders.
    pub http01_keep_running: bool,
    /// EAB key id.
    pub eab_kid: Option<String>,
    /// EAB HMAC key (base64url).
    pub eab_hmac_key: Option<String>,
    /// PEM file with the ACME server's TLS root (private ACME servers).
    pub ca_bundle_path: Option<PathBuf>,
    /// Profile to request on newOrder; the directory must advertise it.
    pub profile: Option<String>,
    /// Script that publishes a DNS TXT record.
    pub dns_present_script: Option<PathBuf>,
    /// Script that removes it (DNS-01).
    pub dns_cleanup_script: Option<PathBuf>,
    /// Timeout for one script run.
    pub dns_script_timeout: Duration,
    /// Wait after publishing before asking the CA to validate.
    pub dns_propagation_wait: Duration,
    /// Deadline for the order to become ready / valid.
    pub order_timeout: Duration,
    /// The CA's issuer domain for the DNS-PERSIST-01 record (e.g. `letsencrypt.org`).
    pub dns_persist_issuer_domain: Option<String>,
    /// Ask the CA's renewalInfo (ARI) for the renewal window; `false`: thresholds only.
    pub ari_enabled: bool,
}

const KNOWN: &[&str] = &[
    "directory_url",
    "email",
    "terms_of_service_agreed",
    "challenge_type",
    "http01_listen",
    "http01_keep_running",
    "eab_kid",
    "eab_hmac_key",
    "ca_bundle_path",
    "profile",
    "dns_present_script",
    "dns_cleanup_script",
    "dns_script_timeout_seconds",
    "dns_propagation_wait_seconds",
    "order_timeout_seconds",
    "dns_persist_issuer_domain",
    "ari_enabled",
    // The reference implementation's names, accepted as aliases.
    "eab_hmac",
    "http_port",
    "dns_propagation_wait",
];

fn setting(
    obj: &Map<String, Value>,
    key: &str,
    env: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, ConnectorError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(lookup(env).filter(|v| !v.is_empty())),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(ConnectorError::Config(format!(
            "\"{key}\" must be a string, number or boolean"
        ))),
    }
}

fn parse_bool(key: &str, v: &str) -> Result<bool, ConnectorError> {
    match v {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(ConnectorError::Config(format!(
            "\"{key}\" must be true or false, not \"{v}\""
        ))),
    }
}

fn parse_secs(key: &str, v: Option<String>, default: u64) -> Result<Duration, ConnectorError> {
    match v {
        None => Ok(Duration::from_secs(default)),
        Some(v) => v.parse::<u64>().map(Duration::from_secs).map_err(|_| {
            ConnectorError::Config(format!("\"{key}\" must be a whole number of seconds"))
        }),
    }
}

fn check_script(key: &str, path: &Path) -> Result<(), ConnectorError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| ConnectorError::Config(format!("{key} {}: {e}", path.display())))?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(ConnectorError::Config(format!(
            "{key} {} is not an executable file",
            path.display()
        )));
    }
    Ok(())
}

impl AcmeConfig {
    /// Reads the config, filling gaps from `lookup` (the process environment in production).
    pub fn parse(
        config: &Value,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConnectorError> {
        let obj = config
            .as_object()
            .ok_or_else(|| ConnectorError::Config("config must be a JSON object".into()))?;
        if let Some(k) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(ConnectorError::Config(format!(
                "unknown setting \"{k}\" for the acme issuer"
            )));
        }
        let get = |key: &str, env: &str| setting(obj, key, env, lookup);
        // A setting with an alias name (the reference implementation's) in the config and/or
        // the environment; ours wins in each, the config over the environment.
        let aliased = |key: &str, alias: &str, env: &str, env_alias: &str| {
            if obj.get(key).is_some_and(|v| !v.is_null())
                && obj.get(alias).is_some_and(|v| !v.is_null())
            {
                return Err(ConnectorError::Config(format!(
                    "set either \"{key}\" or its alias \"{alias}\", not both"
                )));
            }
            let no_env = |_: &str| None;
            Ok(match setting(obj, key, env, &no_env)? {
                Some(v) => Some(v),
                None => match setting(obj, alias, env, lookup)? {
                    Some(v) => Some(v),
                    None => lookup(env_alias).filter(|v| !v.is_empty()),
                },
            })
        };
        let directory_url =
            get("directory_url", "CERTCTL_ACME_DIRECTORY_URL")?.ok_or_else(|| {
                ConnectorError::Config(
                    "directory_url (CERTCTL_ACME_DIRECTORY_URL) is required".into(),
                )
            })?;
        if !directory_url.starts_with("https://") && !directory_url.starts_with("http://") {
            return Err(ConnectorError::Config(format!(
                "directory_url \"{directory_url}\" is not an http(s) URL"
            )));
        }
        let terms_of_service_agreed =
            match get("terms_of_service_agreed", "CERTCTL_ACME_TOS_AGREED")? {
                Some(v) => parse_bool("terms_of_service_agreed", &v)?,
                None => false,
            };
        let challenge_type = ChallengeKind::parse(
            &get("challenge_type", "CERTCTL_ACME_CHALLENGE_TYPE")?
                .unwrap_or_else(|| "http-01".into()),
        )?;
        let http01_listen = match get("http01_listen", "CERTCTL_ACME_HTTP01_LISTEN")? {
            Some(l) if obj.get("http_port").is_some_and(|v| !v.is_null()) => {
                return Err(ConnectorError::Config(format!(
                    "set either \"http01_listen\" ({l}) or \"http_port\", not both"
                )));
            }
            Some(l) => l,
            None => match setting(obj, "http_port", "", &|_| None)? {
                Some(port) => {
                    let port: u16 = port.parse().map_err(|_| {
                        ConnectorError::Config(format!("http_port \"{port}\" is not a port"))
                    })?;
                    format!("0.0.0.0:{port}")
                }
                None => "0.0.0.0:80".into(),
            },
        };
        if http01_listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConnectorError::Config(format!(
                "http01_listen \"{http01_listen}\" is not an address:port"
            )));
        }
        let http01_keep_running =
            match get("http01_keep_running", "CERTCTL_ACME_HTTP01_KEEP_RUNNING")? {
                Some(v) => parse_bool("http01_keep_running", &v)?,
                None => false,
            };
        let eab_kid = get("eab_kid", "CERTCTL_ACME_EAB_KID")?;
        let eab_hmac_key = aliased(
            "eab_hmac_key",
            "eab_hmac",
            "CERTCTL_ACME_EAB_HMAC_KEY",
            "CERTCTL_ACME_EAB_HMAC",
        )?;
        if eab_kid.is_some() != eab_hmac_key.is_some() {
            return Err(ConnectorError::Config(
                "eab_kid and eab_hmac_key must be set together".into(),
            ));
        }
        if let Some(k) = &eab_hmac_key {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(k.trim_end_matches('='))
                .map_err(|_| ConnectorError::Config("eab_hmac_key is not base64url".into()))?;
        }
        let ca_bundle_path = get("ca_bundle_path", "CERTCTL_ACME_CA_BUNDLE")?.map(PathBuf::from);
        if let Some(p) = &ca_bundle_path
            && !p.is_file()
        {
            return Err(ConnectorError::Config(format!(
                "ca_bundle_path {} does not exist",
                p.display()
            )));
        }
        let profile = get("profile", "CERTCTL_ACME_PROFILE")?;
        let dns_present_script =
            get("dns_present_script", "CERTCTL_ACME_DNS_PRESENT_SCRIPT")?.map(PathBuf::from);
        let dns_cleanup_script =
            get("dns_cleanup_script", "CERTCTL_ACME_DNS_CLEANUP_SCRIPT")?.map(PathBuf::from);
        if challenge_type != ChallengeKind::Http01 {
            let p = dns_present_script.as_ref().ok_or_else(|| {
                ConnectorError::Config(format!(
                    "challenge_type {} needs dns_present_script",
                    match challenge_type {
                        ChallengeKind::Dns01 => "dns-01",
                        _ => "dns-persist-01",
                    }
                ))
            })?;
            check_script("dns_present_script", p)?;
        }
        if let Some(p) = &dns_cleanup_script {
            check_script("dns_cleanup_script", p)?;
        }
        Ok(Self {
            directory_url,
            email: get("email", "CERTCTL_ACME_EMAIL")?,
            terms_of_service_agreed,
            challenge_type,
            http01_listen,
            http01_keep_running,
            eab_kid,
            eab_hmac_key,
            ca_bundle_path,
            profile,
            dns_present_script,
            dns_cleanup_script,
            dns_script_timeout: parse_secs(
                "dns_script_timeout_seconds",
                get(
                    "dns_script_timeout_seconds",
                    "CERTCTL_ACME_DNS_SCRIPT_TIMEOUT",
                )?,
                60,
            )?,
            dns_propagation_wait: parse_secs(
                "dns_propagation_wait_seconds",
                aliased(
                    "dns_propagation_wait_seconds",
                    "dns_propagation_wait",
                    "CERTCTL_ACME_DNS_PROPAGATION_WAIT",
                    "CERTCTL_ACME_DNS_PROPAGATION_WAIT",
                )?,
                0,
            )?,
            order_timeout: parse_secs(
                "order_timeout_seconds",
                get("order_timeout_seconds", "CERTCTL_ACME_ORDER_TIMEOUT")?,
                120,
            )?,
            dns_persist_issuer_domain: get(
                "dns_persist_issuer_domain",
                "CERTCTL_ACME_DNS_PERSIST_ISSUER_DOMAIN",
            )?
            .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
            .filter(|d| !d.is_empty()),
            ari_enabled: match get("ari_enabled", "CERTCTL_ACME_ARI_ENABLED")? {
                Some(v) => parse_bool("ari_enabled", &v)?,
                None => true,
            },
        })
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn config_comes_from_json_over_env_defaults() {
        let c = AcmeConfig::parse(
            &serde_json::json!({"email": "a@example.com"}),
            &env(&[
                ("CERTCTL_ACME_DIRECTORY_URL", "https://acme.example/dir"),
                ("CERTCTL_ACME_EMAIL", "env@example.com"),
                ("CERTCTL_ACME_TOS_AGREED", "true"),
                ("CERTCTL_ACME_PROFILE", "shortlived"),
            ]),
        )
        .expect("valid");
        assert_eq!(c.directory_url, "https://acme.example/dir");
        assert_eq!(c.email.as_deref(), Some("a@example.com"));
        assert!(c.terms_of_service_agreed);
        assert_eq!(c.challenge_type, ChallengeKind::Http01);
        assert_eq!(c.profile.as_deref(), Some("shortlived"));
        assert_eq!(c.http01_listen, "0.0.0.0:80");
    }

    #[test]
    fn bad_configs_are_refused_with_the_setting_named() {
        let none = env(&[]);
        let err = |v: serde_json::Value| match AcmeConfig::parse(&v, &none) {
            Err(ConnectorError::Config(m)) => m,
            other => panic!("expected a config error, got {other:?}"),
        };
        assert!(err(serde_json::json!({})).contains("directory_url"));
        let d = "https://acme.example/dir";
        assert!(err(serde_json::json!({"directory_url": d, "bogus": 1})).contains("bogus"));
        assert!(
            err(serde_json::json!({"directory_url": d, "challenge_type": "tls-alpn-01"}))
                .contains("challenge_type")
        );
        assert!(
            err(serde_json::json!({"directory_url": d, "challenge_type": "dns-01"}))
                .contains("dns_present_script")
        );
        assert!(
            err(
                serde_json::json!({"directory_url": d, "challenge_type": "dns-01",
                "dns_present_script": "/nonexistent/script"})
            )
            .contains("/nonexistent/script")
        );
        let plain = tempfile::NamedTempFile::new().expect("temp file");
        assert!(
            err(
                serde_json::json!({"directory_url": d, "dns_present_script": plain.path(),
                "challenge_type": "dns-01"})
            )
            .contains("not an executable")
        );
        assert!(err(serde_json::json!({"directory_url": d, "eab_kid": "k"})).contains("together"));
        assert!(
            err(serde_json::json!({"directory_url": d, "eab_kid": "k", "eab_hmac_key": "!!"}))
                .contains("base64url")
        );
        assert!(
            err(serde_json::json!({"directory_url": d, "ca_bundle_path": "/nonexistent.pem"}))
                .contains("ca_bundle_path")
        );
        assert!(
            err(serde_json::json!({"directory_url": d, "http01_listen": "nope"}))
                .contains("http01_listen")
        );
    }

    #[test]
    fn reference_names_are_accepted_as_aliases() {
        let d = "https://acme.example/dir";
        let hmac = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
        let none = env(&[]);
        let c = AcmeConfig::parse(
            &serde_json::json!({"directory_url": d, "eab_kid": "k", "eab_hmac": hmac,
                "http_port": 8080, "dns_propagation_wait": 30,
                "dns_persist_issuer_domain": "LetsEncrypt.org."}),
            &none,
        )
        .expect("valid");
        assert_eq!(c.eab_hmac_key.as_deref(), Some(hmac));
        assert_eq!(c.http01_listen, "0.0.0.0:8080");
        assert_eq!(c.dns_propagation_wait, Duration::from_secs(30));
        assert_eq!(
            c.dns_persist_issuer_domain.as_deref(),
            Some("letsencrypt.org")
        );
        assert!(c.ari_enabled, "ARI is on by default");

        // The environment names, ours and the reference's.
        let c = AcmeConfig::parse(
            &serde_json::json!({"directory_url": d}),
            &env(&[
                ("CERTCTL_ACME_EAB_KID", "k"),
                ("CERTCTL_ACME_EAB_HMAC", "cmVm"),
                ("CERTCTL_ACME_DNS_PERSIST_ISSUER_DOMAIN", "ca.example"),
                ("CERTCTL_ACME_ARI_ENABLED", "false"),
            ]),
        )
        .expect("valid");
        assert_eq!(c.eab_hmac_key.as_deref(), Some("cmVm"));
        assert_eq!(c.dns_persist_issuer_domain.as_deref(), Some("ca.example"));
        assert!(!c.ari_enabled);
        let c = AcmeConfig::parse(
            &serde_json::json!({"directory_url": d, "ari_enabled": true}),
            &env(&[
                ("CERTCTL_ACME_EAB_KID", "k"),
                ("CERTCTL_ACME_EAB_HMAC", "cmVm"),
                ("CERTCTL_ACME_EAB_HMAC_KEY", "b3Vycw"),
                ("CERTCTL_ACME_ARI_ENABLED", "false"),
            ]),
        )
        .expect("valid");
        assert_eq!(c.eab_hmac_key.as_deref(), Some("b3Vycw"), "our name wins");
        assert!(c.ari_enabled, "the config wins over the environment");

        let err = |v: serde_json::Value| match AcmeConfig::parse(&v, &none) {
            Err(ConnectorError::Config(m)) => m,
            other => panic!("expected a config error, got {other:?}"),
        };
        assert!(
            err(serde_json::json!({"directory_url": d, "eab_kid": "k",
                "eab_hmac": hmac, "eab_hmac_key": hmac}))
            .contains("not both")
        );
        assert!(
            err(serde_json::json!({"directory_url": d, "http_port": 80,
                "http01_listen": "0.0.0.0:80"}))
            .contains("not both")
        );
        assert!(
            err(serde_json::json!({"directory_url": d, "http_port": "x"})).contains("http_port")
        );
        assert!(
            err(serde_json::json!({"directory_url": d, "ari_enabled": "maybe"}))
                .contains("ari_enabled")
        );
    }
}
