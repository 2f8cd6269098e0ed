//! The issuer config of the ACME connector: the JSON an API caller sets, over the
//! `CERTCTL_ACME_*` environment defaults, parsed and checked into [`AcmeConfig`]. The
//! reference implementation's names (`eab_hmac`, `dns_propagation_wait`,
//! `CERTCTL_ACME_EAB_HMAC`) are aliases.
//!
//! What the server runs, listens on or reads (DNS hook executables, the HTTP-01 listen
//! address, CA bundle files) is never taken from the config: it only names entries the
//! operator configured ([`super::operator`]), and the old fields that carried a path or an
//! address (`dns_present_script`, `dns_cleanup_script`, `http01_listen`, `http_port`,
//! `ca_bundle_path`) are refused with the name to use instead.

use std::time::Duration;

use serde_json::{Map, Value};

use super::operator::{CaBundle, DnsHook, OperatorSettings};
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
    /// The operator's HTTP-01 listener named by the config (`default` when it names none).
    pub http01_listener: String,
    /// The address that listener binds (`host:port`).
    pub http01_listen: String,
    /// Keep the HTTP-01 responder up between orders.
    pub http01_keep_running: bool,
    /// EAB key id.
    pub eab_kid: Option<String>,
    /// EAB HMAC key (base64url).
    pub eab_hmac_key: Option<String>,
    /// The operator's CA bundle trusted for the ACME server's TLS (private ACME servers),
    /// instead of the platform's roots.
    pub ca_bundle: Option<CaBundle>,
    /// Profile to request on newOrder; the directory must advertise it.
    pub profile: Option<String>,
    /// The operator's DNS hook publishing (and removing) the TXT records (DNS challenges).
    pub dns_hook: Option<DnsHook>,
    /// Timeout for one hook run.
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
    "http01_listener",
    "http01_keep_running",
    "eab_kid",
    "eab_hmac_key",
    "ca_bundle",
    "profile",
    "dns_hook",
    "dns_script_timeout_seconds",
    "dns_propagation_wait_seconds",
    "order_timeout_seconds",
    "dns_persist_issuer_domain",
    "ari_enabled",
    // The reference implementation's names, accepted as aliases.
    "eab_hmac",
    "dns_propagation_wait",
];

/// Fields that used to carry an executable, a listen address or a file path, and the
/// field naming an operator-configured entry instead.
const OPERATOR_ONLY: &[(&str, &str, &str)] = &[
    (
        "dns_present_script",
        "dns_hook",
        "executables the server runs",
    ),
    (
        "dns_cleanup_script",
        "dns_hook",
        "executables the server runs",
    ),
    (
        "http01_listen",
        "http01_listener",
        "addresses the server listens on",
    ),
    (
        "http_port",
        "http01_listener",
        "addresses the server listens on",
    ),
    ("ca_bundle_path", "ca_bundle", "files the server reads"),
];

/// A string setting naming an operator entry, if the config sets one.
fn name_setting(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, ConnectorError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
        Some(_) => Err(ConnectorError::Config(format!(
            "\"{key}\" must be the name of an entry the operator configured"
        ))),
    }
}

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

impl AcmeConfig {
    /// Reads the config, filling gaps from `lookup` (the process environment in production)
    /// and resolving the names of operator entries in `operator`.
    pub fn parse(
        config: &Value,
        lookup: &dyn Fn(&str) -> Option<String>,
        operator: &OperatorSettings,
    ) -> Result<Self, ConnectorError> {
        let obj = config
            .as_object()
            .ok_or_else(|| ConnectorError::Config("config must be a JSON object".into()))?;
        if let Some((field, instead, what)) = OPERATOR_ONLY
            .iter()
            .find(|(field, _, _)| obj.contains_key(*field))
        {
            return Err(ConnectorError::Config(format!(
                "\"{field}\" is not accepted: {what} are operator configuration (CERTCTL_ACME_HOOKS); \
                 set \"{instead}\" to the name of an entry the operator configured"
            )));
        }
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
        let http01_listener =
            name_setting(obj, "http01_listener")?.unwrap_or_else(|| "default".into());
        let http01_listen = operator
            .http01_listener(&http01_listener)
            .map_err(|e| ConnectorError::Config(format!("http01_listener: {e}")))?
            .to_string();
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
        let ca_bundle = match name_setting(obj, "ca_bundle")? {
            Some(name) => Some(
                operator
                    .ca_bundle(&name)
                    .map_err(|e| ConnectorError::Config(format!("ca_bundle: {e}")))?
                    .clone(),
            ),
            None if operator.has_default_ca_bundle() => operator.ca_bundle("default").ok().cloned(),
            None => None,
        };
        let profile = get("profile", "CERTCTL_ACME_PROFILE")?;
        let dns_hook = match name_setting(obj, "dns_hook")? {
            Some(name) => Some(
                operator
                    .dns_hook(&name)
                    .map_err(|e| ConnectorError::Config(format!("dns_hook: {e}")))?
                    .clone(),
            ),
            None if operator.has_default_dns_hook() => operator.dns_hook("default").ok().cloned(),
            None => None,
        };
        if challenge_type != ChallengeKind::Http01 && dns_hook.is_none() {
            let why = operator.dns_hook("default").err().unwrap_or_default();
            return Err(ConnectorError::Config(format!(
                "challenge_type {} needs \"dns_hook\": {why}",
                match challenge_type {
                    ChallengeKind::Dns01 => "dns-01",
                    _ => "dns-persist-01",
                }
            )));
        }
        Ok(Self {
            directory_url,
            email: get("email", "CERTCTL_ACME_EMAIL")?,
            terms_of_service_agreed,
            challenge_type,
            http01_listener,
            http01_listen,
            http01_keep_running,
            eab_kid,
            eab_hmac_key,
            ca_bundle,
            profile,
            dns_hook,
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

    /// The operator settings without a file or variables: only the built-in listener.
    fn builtin() -> OperatorSettings {
        OperatorSettings::load(None, &|_| None).expect("defaults")
    }

    fn operator() -> OperatorSettings {
        builtin()
            .with_dns_hook(DnsHook {
                name: "cloudflare".into(),
                present: "/usr/local/bin/cf-present".into(),
                cleanup: None,
                env: Default::default(),
            })
            .with_http01_listener("internal", "127.0.0.1:8402".parse().expect("addr"))
    }

    fn parse(v: serde_json::Value) -> Result<AcmeConfig, ConnectorError> {
        AcmeConfig::parse(&v, &env(&[]), &operator())
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
            &builtin(),
        )
        .expect("valid");
        assert_eq!(c.directory_url, "https://acme.example/dir");
        assert_eq!(c.email.as_deref(), Some("a@example.com"));
        assert!(c.terms_of_service_agreed);
        assert_eq!(c.challenge_type, ChallengeKind::Http01);
        assert_eq!(c.profile.as_deref(), Some("shortlived"));
        assert_eq!(c.http01_listener, "default");
        assert_eq!(c.http01_listen, "0.0.0.0:80");
        assert!(c.dns_hook.is_none() && c.ca_bundle.is_none());
    }

    #[test]
    fn operator_entries_are_referenced_by_name() {
        let d = "https://acme.example/dir";
        let c = parse(
            serde_json::json!({"directory_url": d, "challenge_type": "dns-01",
            "dns_hook": "cloudflare", "http01_listener": "internal"}),
        )
        .expect("valid");
        assert_eq!(
            c.dns_hook.expect("hook").present,
            std::path::PathBuf::from("/usr/local/bin/cf-present")
        );
        assert_eq!(c.http01_listen, "127.0.0.1:8402");
        // A `default` hook is used when the config names none.
        let with_default = operator().with_dns_hook(DnsHook {
            name: "default".into(),
            present: "/usr/local/bin/default-present".into(),
            cleanup: None,
            env: Default::default(),
        });
        let c = AcmeConfig::parse(
            &serde_json::json!({"directory_url": d, "challenge_type": "dns-01"}),
            &env(&[]),
            &with_default,
        )
        .expect("valid");
        assert_eq!(c.dns_hook.expect("hook").name, "default");
    }

    #[test]
    fn paths_and_addresses_in_the_config_are_refused_with_the_field_named() {
        let d = "https://acme.example/dir";
        for (field, value, instead) in [
            (
                "dns_present_script",
                serde_json::json!("/tmp/x.sh"),
                "dns_hook",
            ),
            (
                "dns_cleanup_script",
                serde_json::json!("/tmp/y.sh"),
                "dns_hook",
            ),
            (
                "http01_listen",
                serde_json::json!("0.0.0.0:80"),
                "http01_listener",
            ),
            ("http_port", serde_json::json!(8080), "http01_listener"),
            (
                "ca_bundle_path",
                serde_json::json!("/etc/passwd"),
                "ca_bundle",
            ),
        ] {
            let mut config = serde_json::json!({"directory_url": d, "challenge_type": "dns-01",
                "dns_hook": "cloudflare"});
            config[field] = value;
            let Err(ConnectorError::Config(m)) = parse(config) else {
                panic!("{field} accepted");
            };
            assert!(
                m.contains(&format!("\"{field}\" is not accepted"))
                    && m.contains(&format!("\"{instead}\""))
                    && m.contains("operator configuration"),
                "{field}: {m}"
            );
        }
        // A name the operator did not configure: which names exist.
        for (field, value, listed) in [
            ("dns_hook", "/bin/sh", "configured: cloudflare"),
            (
                "http01_listener",
                "0.0.0.0:8080",
                "configured: default, internal",
            ),
            ("ca_bundle", "/etc/ssl/certs/ca.pem", "configured: none"),
        ] {
            let mut config = serde_json::json!({"directory_url": d});
            config[field] = serde_json::json!(value);
            let Err(ConnectorError::Config(m)) = parse(config) else {
                panic!("{field}={value} accepted");
            };
            assert!(
                m.starts_with(field) && m.contains(&format!("\"{value}\"")) && m.contains(listed),
                "{field}: {m}"
            );
        }
        // A DNS challenge needs a hook.
        let Err(ConnectorError::Config(m)) = AcmeConfig::parse(
            &serde_json::json!({"directory_url": d, "challenge_type": "dns-01"}),
            &env(&[]),
            &builtin(),
        ) else {
            panic!("no hook accepted");
        };
        assert!(
            m.contains("needs \"dns_hook\"") && m.contains("configured: none"),
            "{m}"
        );
    }

    #[test]
    fn bad_configs_are_refused_with_the_setting_named() {
        let err = |v: serde_json::Value| match parse(v) {
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
        assert!(err(serde_json::json!({"directory_url": d, "eab_kid": "k"})).contains("together"));
        assert!(
            err(serde_json::json!({"directory_url": d, "eab_kid": "k", "eab_hmac_key": "!!"}))
                .contains("base64url")
        );
        assert!(err(serde_json::json!({"directory_url": d, "dns_hook": 7})).contains("dns_hook"));
    }

    #[test]
    fn reference_names_are_accepted_as_aliases() {
        let d = "https://acme.example/dir";
        let hmac = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
        let c = parse(
            serde_json::json!({"directory_url": d, "eab_kid": "k", "eab_hmac": hmac,
            "dns_propagation_wait": 30, "dns_persist_issuer_domain": "LetsEncrypt.org."}),
        )
        .expect("valid");
        assert_eq!(c.eab_hmac_key.as_deref(), Some(hmac));
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
            &builtin(),
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
            &builtin(),
        )
        .expect("valid");
        assert_eq!(c.eab_hmac_key.as_deref(), Some("b3Vycw"), "our name wins");
        assert!(c.ari_enabled, "the config wins over the environment");

        let err = |v: serde_json::Value| match parse(v) {
            Err(ConnectorError::Config(m)) => m,
            other => panic!("expected a config error, got {other:?}"),
        };
        assert!(
            err(serde_json::json!({"directory_url": d, "eab_kid": "k",
                "eab_hmac": hmac, "eab_hmac_key": hmac}))
            .contains("not both")
        );
        assert!(
            err(serde_json::json!({"directory_url": d, "ari_enabled": "maybe"}))
                .contains("ari_enabled")
        );
    }
}
