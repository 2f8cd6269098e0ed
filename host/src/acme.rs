//! The native ACME issuer (RFC 8555) on top of `instant-acme`: account registration (with
//! optional External Account Binding), the account key persisted 0600 in the data dir,
//! HTTP-01 through a built-in challenge responder, DNS-01 and DNS-PERSIST-01 (a standing
//! `_validation-persist` record, draft-ietf-acme-dns-persist) through operator scripts, order
//! polling with bounded backoff and a deadline, chain download and revocation. When the
//! directory offers them: ACME Renewal Information (RFC 9773: the suggested renewal window,
//! and `replaces` on the renewal's newOrder) and certificate profiles (`profile` on newOrder).
//!
//! Settings come from the issuer config JSON; `CERTCTL_ACME_*` environment variables supply
//! defaults for settings the config leaves out. The reference implementation's names
//! (`eab_hmac`, `http_port`, `dns_propagation_wait`, `CERTCTL_ACME_EAB_HMAC`) are aliases.

pub mod responder;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, CertificateIdentifier, ChallengeType,
    ExternalAccountKey, Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
    RevocationReason, RevocationRequest,
};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::issuer::{
    ConnectorContext, ConnectorError, IssuanceRequest, IssuanceResult, IssuerConnector,
    RenewalWindow,
};

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
    fn parse(s: &str) -> Result<Self, ConnectorError> {
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

/// The connector.
pub struct AcmeIssuer {
    config: AcmeConfig,
    account_file: PathBuf,
    account: tokio::sync::Mutex<Option<Account>>,
    responder: responder::Responder,
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
    /// Validates the config (with `CERTCTL_ACME_*` defaults) and prepares the connector; the
    /// account is registered on first use.
    pub fn from_config(config: &Value, ctx: &ConnectorContext) -> Result<Self, ConnectorError> {
        let config = AcmeConfig::parse(config, &|k| std::env::var(k).ok())?;
        let account_file = ctx
            .data_dir
            .join("acme")
            .join(format!("account-{}.json", account_key(&config)));
        Ok(Self {
            responder: responder::Responder::new(config.http01_listen.clone()),
            config,
            account_file,
            account: tokio::sync::Mutex::new(None),
            issued: Mutex::new(HashMap::new()),
            last_chain: Mutex::new(None),
        })
    }

    fn unavailable(&self, what: &str, e: &instant_acme::Error) -> ConnectorError {
        ConnectorError::Unavailable(format!(
            "ACME server {}: {what}: {e}",
            self.config.directory_url
        ))
    }

    /// Maps an ACME error: server problems are refusals unless transient.
    fn acme_error(&self, what: &str, e: instant_acme::Error) -> ConnectorError {
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

    fn builder(&self) -> Result<instant_acme::AccountBuilder, ConnectorError> {
        match &self.config.ca_bundle_path {
            Some(p) => Account::builder_with_root(p).map_err(|e| {
                ConnectorError::Config(format!("ca_bundle_path {}: {e}", p.display()))
            }),
            None => Account::builder().map_err(|e| {
                ConnectorError::Config(format!("no TLS trust roots for the ACME server: {e}"))
            }),
        }
    }

    /// The account: restored from the data dir, or registered once and persisted (0600).
    async fn account(&self) -> Result<Account, ConnectorError> {
        let mut guard = self.account.lock().await;
        if let Some(a) = guard.as_ref() {
            return Ok(a.clone());
        }
        let account = match std::fs::read(&self.account_file) {
            Ok(bytes) => {
                let creds: AccountCredentials = serde_json::from_slice(&bytes).map_err(|e| {
                    ConnectorError::Config(format!(
                        "ACME account file {}: {e}",
                        self.account_file.display()
                    ))
                })?;
                self.builder()?
                    .from_credentials(creds)
                    .await
                    .map_err(|e| self.acme_error("loading the account", e))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.register().await?,
            Err(e) => {
                return Err(ConnectorError::Unavailable(format!(
                    "ACME account file {}: {e}",
                    self.account_file.display()
                )));
            }
        };
        *guard = Some(account.clone());
        Ok(account)
    }

    async fn register(&self) -> Result<Account, ConnectorError> {
        let contact = self.config.email.as_ref().map(|e| format!("mailto:{e}"));
        let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
        let eab = match (&self.config.eab_kid, &self.config.eab_hmac_key) {
            (Some(kid), Some(key)) => {
                use base64::Engine;
                let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(key.trim_end_matches('='))
                    .map_err(|_| ConnectorError::Config("eab_hmac_key is not base64url".into()))?;
                Some(ExternalAccountKey::new(kid.clone(), &raw))
            }
            _ => None,
        };
        let (account, creds) = self
            .builder()?
            .create(
                &NewAccount {
                    contact: &contacts,
                    terms_of_service_agreed: self.config.terms_of_service_agreed,
                    only_return_existing: false,
                },
                self.config.directory_url.clone(),
                eab.as_ref(),
            )
            .await
            .map_err(|e| self.acme_error("account registration failed", e))?;
        let json = serde_json::to_vec(&creds)
            .map_err(|e| ConnectorError::Crashed(format!("serializing ACME account: {e}")))?;
        let created = write_private(&self.account_file, &json, false).map_err(|e| {
            ConnectorError::Unavailable(format!(
                "writing ACME account key {}: {e}",
                self.account_file.display()
            ))
        })?;
        if !created {
            // Another issuer with the same directory, EAB key and contact registered at the
            // same time: the file is never replaced, so use the account it holds.
            tracing::info!(file = %self.account_file.display(), "ACME account file appeared meanwhile; using it");
            let bytes = std::fs::read(&self.account_file).map_err(|e| {
                ConnectorError::Unavailable(format!(
                    "ACME account file {}: {e}",
                    self.account_file.display()
                ))
            })?;
            let creds: AccountCredentials = serde_json::from_slice(&bytes).map_err(|e| {
                ConnectorError::Config(format!(
                    "ACME account file {}: {e}",
                    self.account_file.display()
                ))
            })?;
            return self
                .builder()?
                .from_credentials(creds)
                .await
                .map_err(|e| self.acme_error("loading the account", e));
        }
        tracing::info!(directory = %self.config.directory_url, account = account.id(), "ACME account registered");
        Ok(account)
    }

    async fn run_script(
        &self,
        script: &Path,
        record: &DnsRecord,
        token: &str,
    ) -> Result<(), ConnectorError> {
        let DnsRecord {
            domain,
            fqdn,
            value,
        } = record;
        let mut cmd = tokio::process::Command::new(script);
        cmd.env("CERTCTL_DNS_DOMAIN", domain)
            .env("CERTCTL_DNS_FQDN", fqdn)
            .env("CERTCTL_DNS_VALUE", value)
            .env("CERTCTL_DNS_TOKEN", token)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let out = tokio::time::timeout(self.config.dns_script_timeout, cmd.output())
            .await
            .map_err(|_| {
                ConnectorError::Unavailable(format!(
                    "DNS script {} timed out after {:?}",
                    script.display(),
                    self.config.dns_script_timeout
                ))
            })?
            .map_err(|e| ConnectorError::Config(format!("DNS script {}: {e}", script.display())))?;
        if !out.status.success() {
            return Err(ConnectorError::Unavailable(format!(
                "DNS script {} failed ({}): {}",
                script.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }

    async fn order(&self, req: &IssuanceRequest) -> Result<IssuanceResult, ConnectorError> {
        let account = self.account().await?;
        let mut names: Vec<String> = Vec::new();
        if !req.common_name.is_empty() {
            names.push(req.common_name.clone());
        }
        for s in &req.sans {
            if !names.contains(s) {
                names.push(s.clone());
            }
        }
        let identifiers: Vec<Identifier> = names
            .iter()
            .map(|n| match n.parse::<IpAddr>() {
                Ok(ip) => Identifier::Ip(ip),
                Err(_) => Identifier::Dns(n.clone()),
            })
            .collect();
        let profile = self.config.profile.as_deref();
        if let Some(p) = profile
            && !account.profiles().any(|m| m.name == p)
        {
            let offered: Vec<&str> = account.profiles().map(|m| m.name).collect();
            return Err(ConnectorError::Config(format!(
                "profile \"{p}\" is not offered by the ACME server {} (it advertises {})",
                self.config.directory_url,
                if offered.is_empty() {
                    "no profiles".to_owned()
                } else {
                    offered.join(", ")
                }
            )));
        }
        let new_order = || {
            let o = NewOrder::new(&identifiers);
            match profile {
                Some(p) => o.profile(p),
                None => o,
            }
        };
        let replaces = req.replaces_der.as_deref().and_then(ari_id);
        let mut order = match replaces {
            None => account.new_order(&new_order()).await,
            Some(id) => match account.new_order(&new_order().replaces(id.clone())).await {
                Ok(o) => Ok(o),
                // No renewal information at this CA: an ordinary order.
                Err(instant_acme::Error::Unsupported(_)) => account.new_order(&new_order()).await,
                // Refused (e.g. alreadyReplaced after a retried job, or a predecessor from
                // another CA) or not reflected by the CA: `replaces` is advisory, so order
                // without it rather than fail the renewal.
                Err(e)
                    if matches!(&e, instant_acme::Error::Api(p) if p.status.is_some_and(|s| (400..500).contains(&s) && s != 429))
                        || e.to_string().contains("replaces") =>
                {
                    tracing::warn!(directory = %self.config.directory_url, replaces = %id, error = %e, "newOrder with replaces failed; ordering without it");
                    account.new_order(&new_order()).await
                }
                Err(e) => Err(e),
            },
        }
        .map_err(|e| self.acme_error("newOrder", e))?;

        let http = self.config.challenge_type == ChallengeKind::Http01;
        let guard = if http {
            Some(self.responder.start().await?)
        } else {
            None
        };
        let mut cleanups: Vec<(DnsRecord, String)> = Vec::new();
        let result = self
            .solve_and_finalize(&mut order, req, account.id(), &mut cleanups)
            .await;
        if let Some(script) = &self.config.dns_cleanup_script {
            for (record, token) in &cleanups {
                if let Err(e) = self.run_script(script, record, token).await {
                    tracing::warn!(error = %e, "DNS cleanup script failed");
                }
            }
        }
        if let Some(g) = guard {
            self.responder
                .stop(g, self.config.http01_keep_running)
                .await;
        }
        result
    }

    async fn solve_and_finalize(
        &self,
        order: &mut instant_acme::Order,
        req: &IssuanceRequest,
        account_uri: &str,
        cleanups: &mut Vec<(DnsRecord, String)>,
    ) -> Result<IssuanceResult, ConnectorError> {
        let mut published_dns = false;
        let mut to_ready = Vec::new();
        {
            let mut authzs = order.authorizations();
            while let Some(authz) = authzs.next().await {
                let mut authz = authz.map_err(|e| self.acme_error("authorization", e))?;
                match authz.status {
                    AuthorizationStatus::Pending => {}
                    AuthorizationStatus::Valid => continue,
                    other => {
                        return Err(ConnectorError::Rejected(format!(
                            "ACME authorization {} is {other:?}",
                            authz.url()
                        )));
                    }
                }
                let wanted = match self.config.challenge_type {
                    ChallengeKind::Http01 => ChallengeType::Http01,
                    ChallengeKind::Dns01 => ChallengeType::Dns01,
                    ChallengeKind::DnsPersist01 => {
                        let persist = ChallengeType::Unknown("dns-persist-01".into());
                        if authz.challenges.iter().any(|c| c.r#type == persist) {
                            persist
                        } else {
                            ChallengeType::Dns01
                        }
                    }
                };
                let domain = match authz.identifier().identifier {
                    Identifier::Dns(d) => d.clone(),
                    Identifier::Ip(ip) => ip.to_string(),
                    other => format!("{other:?}"),
                };
                let domain = domain.trim_start_matches("*.").to_owned();
                let mut challenge = authz.challenge(wanted.clone()).ok_or_else(|| {
                    ConnectorError::Rejected(format!(
                        "ACME server {} offers no {wanted:?} challenge for {domain}",
                        self.config.directory_url
                    ))
                })?;
                let key_auth = challenge.key_authorization();
                match wanted {
                    ChallengeType::Http01 => {
                        self.responder
                            .insert(challenge.token.clone(), key_auth.as_str().to_owned());
                    }
                    _ => {
                        let record = if wanted == ChallengeType::Dns01 {
                            DnsRecord::dns01(&domain, key_auth.dns_value())
                        } else {
                            // instant-acme does not keep the challenge's
                            // `issuer-domain-names`, so the issuer domain is configured.
                            let issuer = self
                                .config
                                .dns_persist_issuer_domain
                                .as_deref()
                                .ok_or_else(|| {
                                    ConnectorError::Config(format!(
                                        "the ACME server {} offers dns-persist-01 for {domain}: \
                                         set dns_persist_issuer_domain \
                                         (CERTCTL_ACME_DNS_PERSIST_ISSUER_DOMAIN) to its issuer \
                                         domain",
                                        self.config.directory_url
                                    ))
                                })?;
                            DnsRecord::persist(&domain, issuer, account_uri)
                        };
                        let token = challenge.token.clone();
                        let script = self.config.dns_present_script.as_ref().ok_or_else(|| {
                            ConnectorError::Config("dns_present_script is not set".into())
                        })?;
                        self.run_script(script, &record, &token).await?;
                        // The persistent record stays: it authorizes later orders too.
                        if wanted == ChallengeType::Dns01 {
                            cleanups.push((record, token));
                        }
                        published_dns = true;
                    }
                }
                to_ready.push(challenge.url.clone());
                if !published_dns || self.config.dns_propagation_wait.is_zero() {
                    challenge
                        .set_ready()
                        .await
                        .map_err(|e| self.acme_error("challenge", e))?;
                    to_ready.pop();
                }
            }
        }
        if !to_ready.is_empty() {
            // Propagation wait, then tell the CA to validate.
            tokio::time::sleep(self.config.dns_propagation_wait).await;
            let mut authzs = order.authorizations();
            while let Some(authz) = authzs.next().await {
                let mut authz = authz.map_err(|e| self.acme_error("authorization", e))?;
                let Some(ty) = authz
                    .challenges
                    .iter()
                    .find(|c| to_ready.contains(&c.url))
                    .map(|c| c.r#type.clone())
                else {
                    continue;
                };
                if let Some(mut ch) = authz.challenge(ty) {
                    ch.set_ready()
                        .await
                        .map_err(|e| self.acme_error("challenge", e))?;
                }
            }
        }
        let retry = RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .backoff(1.5)
            .timeout(self.config.order_timeout);
        let status = order
            .poll_ready(&retry)
            .await
            .map_err(|e| self.acme_error("waiting for the order to become ready", e))?;
        if status != OrderStatus::Ready {
            let mut why = Vec::new();
            let mut authzs = order.authorizations();
            while let Some(Ok(a)) = authzs.next().await {
                for c in &a.challenges {
                    if let Some(p) = &c.error {
                        why.push(format!(
                            "{}: {}",
                            a.identifier(),
                            p.detail.as_deref().unwrap_or("validation failed")
                        ));
                    }
                }
            }
            return Err(ConnectorError::Rejected(format!(
                "ACME order is {status:?}: {}",
                why.join("; ")
            )));
        }
        let csr_der = x509_parser::pem::parse_x509_pem(req.csr_pem.as_bytes())
            .map_err(|e| ConnectorError::Rejected(format!("CSR PEM: {e}")))?
            .1
            .contents;
        order
            .finalize_csr(&csr_der)
            .await
            .map_err(|e| self.acme_error("finalize", e))?;
        let chain = order
            .poll_certificate(&retry)
            .await
            .map_err(|e| self.acme_error("certificate download", e))?;
        let result = parse_chain(&chain)?;
        Ok(result)
    }
}

/// A DNS TXT record the present (and, for DNS-01, cleanup) script manages.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DnsRecord {
    /// The identifier being validated (without a wildcard label).
    domain: String,
    /// The record's name.
    fqdn: String,
    /// The TXT value.
    value: String,
}

impl DnsRecord {
    /// DNS-01 (RFC 8555 §8.4): `_acme-challenge.<domain>`, the key authorization digest.
    fn dns01(domain: &str, value: String) -> Self {
        Self {
            domain: domain.to_owned(),
            fqdn: format!("_acme-challenge.{domain}"),
            value,
        }
    }

    /// DNS-PERSIST-01 (draft-ietf-acme-dns-persist): `_validation-persist.<domain>` holding
    /// `<issuer-domain>; accounturi=<account URI>`.
    fn persist(domain: &str, issuer_domain: &str, account_uri: &str) -> Self {
        Self {
            domain: domain.to_owned(),
            fqdn: format!("_validation-persist.{domain}"),
            value: format!("{issuer_domain}; accounturi={account_uri}"),
        }
    }
}

/// The certificate's ARI id (RFC 9773 §4.1); `None` when it has no Authority Key Identifier
/// or does not parse.
pub fn ari_id(cert_der: &[u8]) -> Option<CertificateIdentifier<'static>> {
    let cert = rustls_pki_types::CertificateDer::from(cert_der);
    match CertificateIdentifier::try_from(&cert) {
        Ok(id) => Some(id.into_owned()),
        Err(e) => {
            tracing::debug!(error = %e, "no ARI id for this certificate");
            None
        }
    }
}

/// What identifies an ACME account for this connector: the directory, the EAB credentials
/// and the contact. Issuers that differ in any of them get their own account file, so an
/// issuer with a wrong EAB HMAC never reuses an account another issuer registered.
fn account_key(config: &AcmeConfig) -> String {
    let mut h = Sha256::new();
    for part in [
        Some(config.directory_url.as_str()),
        config.eab_kid.as_deref(),
        config
            .eab_hmac_key
            .as_deref()
            .map(|k| k.trim_end_matches('=')),
        config.email.as_deref(),
    ] {
        // Length-prefixed, so ("ab", "c") and ("a", "bc") differ; absent differs from "".
        match part {
            Some(p) => {
                h.update([1]);
                h.update((p.len() as u64).to_be_bytes());
                h.update(p.as_bytes());
            }
            None => h.update([0]),
        }
    }
    hex::encode(&h.finalize()[..8])
}

/// Writes `bytes` to `path` readable only by the owner (0600), creating parent dirs. Without
/// `replace`, an existing file is kept and `false` returned.
fn write_private(path: &Path, bytes: &[u8], replace: bool) -> std::io::Result<bool> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    use std::sync::atomic::{AtomicU64, Ordering};
    static TMP: AtomicU64 = AtomicU64::new(0);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!(
        "tmp{}-{}",
        std::process::id(),
        TMP.fetch_add(1, Ordering::Relaxed)
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    if replace {
        std::fs::rename(&tmp, path)?;
        return Ok(true);
    }
    // A hard link never replaces an existing file.
    let linked = std::fs::hard_link(&tmp, path);
    std::fs::remove_file(&tmp)?;
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Serial, validity and fingerprint of the leaf of a PEM chain.
pub fn parse_chain(chain: &str) -> Result<IssuanceResult, ConnectorError> {
    let bad = |e: String| ConnectorError::Rejected(format!("ACME certificate chain: {e}"));
    let pem = x509_parser::pem::Pem::iter_from_buffer(chain.as_bytes())
        .next()
        .ok_or_else(|| bad("no certificate".into()))?
        .map_err(|e| bad(e.to_string()))?;
    let (_, leaf) =
        x509_parser::parse_x509_certificate(&pem.contents).map_err(|e| bad(e.to_string()))?;
    let not_before =
        time::OffsetDateTime::from_unix_timestamp(leaf.validity().not_before.timestamp())
            .map_err(|e| bad(e.to_string()))?;
    let not_after =
        time::OffsetDateTime::from_unix_timestamp(leaf.validity().not_after.timestamp())
            .map_err(|e| bad(e.to_string()))?;
    Ok(IssuanceResult {
        pem_chain: chain.to_owned(),
        serial_hex: hex::encode(leaf.raw_serial()),
        fingerprint_sha256: hex::encode(Sha256::digest(&pem.contents)),
        not_before,
        not_after,
    })
}

fn leaf_der(chain: &str) -> Option<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(chain.as_bytes())
        .next()?
        .ok()
        .map(|p| p.contents)
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

    /// renewalInfo answered without Retry-After, which instant-acme reports without the
    /// status: fetch it again here. 404 (Boulder's and Pebble's answer for a certificate they
    /// do not know) means no window; a window is used (with the default re-ask interval); any
    /// other answer is an error, so the renewal check warns, uses the thresholds and asks
    /// again after its error back-off.
    async fn renewal_info_without_retry_after(
        &self,
        id: &CertificateIdentifier<'static>,
    ) -> Result<Option<RenewalWindow>, ConnectorError> {
        let dir = &self.config.directory_url;
        let failed = |e: String| {
            ConnectorError::Unavailable(format!("ACME server {dir}: renewalInfo for {id}: {e}"))
        };
        let mut client = reqwest::Client::builder().timeout(Duration::from_secs(10));
        if let Some(p) = &self.config.ca_bundle_path {
            let pem = std::fs::read(p).map_err(|e| {
                ConnectorError::Config(format!("ca_bundle_path {}: {e}", p.display()))
            })?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                ConnectorError::Config(format!("ca_bundle_path {}: {e}", p.display()))
            })? {
                client = client.add_root_certificate(cert);
            }
        }
        let client = client.build().map_err(|e| failed(e.to_string()))?;
        let directory: Value = client
            .get(dir)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| failed(format!("directory: {e}")))?
            .json()
            .await
            .map_err(|e| failed(format!("directory: {e}")))?;
        let Some(base) = directory.get("renewalInfo").and_then(Value::as_str) else {
            return Ok(None);
        };
        let rsp = client
            .get(format!("{}/{id}", base.trim_end_matches('/')))
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?;
        let status = rsp.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            tracing::debug!(directory = %dir, ari_id = %id, "renewalInfo: certificate not known to the CA");
            return Ok(None);
        }
        let body = rsp.text().await.unwrap_or_default();
        if !status.is_success() {
            let detail = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|p| p.get("detail").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_else(|| body.chars().take(200).collect());
            return Err(failed(format!("HTTP {status}: {detail}")));
        }
        let info: instant_acme::RenewalInfo =
            serde_json::from_str(&body).map_err(|e| failed(format!("bad answer: {e}")))?;
        Ok(Some(RenewalWindow {
            certificate_id: id.to_string(),
            start: info.suggested_window.start,
            end: info.suggested_window.end,
            retry_after: None,
            explanation_url: info.explanation_url,
        }))
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

/// Registers the `acme` connector type.
pub fn register(types: &mut crate::issuer::ConnectorTypes) {
    types.register(
        "acme",
        Arc::new(|config, ctx| {
            AcmeIssuer::from_config(config, ctx).map(|c| Arc::new(c) as Arc<dyn IssuerConnector>)
        }),
    );
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

    #[test]
    fn the_account_is_keyed_by_directory_eab_and_contact() {
        let none = env(&[]);
        let cfg = |v: serde_json::Value| AcmeConfig::parse(&v, &none).expect("valid");
        let d = "https://acme.example/dir";
        let base = account_key(&cfg(serde_json::json!({"directory_url": d})));
        assert_eq!(
            base,
            account_key(&cfg(serde_json::json!({"directory_url": d})))
        );
        let others = [
            serde_json::json!({"directory_url": "https://other.example/dir"}),
            serde_json::json!({"directory_url": d, "email": "a@example.com"}),
            serde_json::json!({"directory_url": d, "eab_kid": "k", "eab_hmac_key": "cmVm"}),
            serde_json::json!({"directory_url": d, "eab_kid": "k2", "eab_hmac_key": "cmVm"}),
            serde_json::json!({"directory_url": d, "eab_kid": "k", "eab_hmac_key": "b3Vycw"}),
        ];
        let mut keys = vec![base];
        for o in others {
            let k = account_key(&cfg(o.clone()));
            assert!(!keys.contains(&k), "{o} shares an account key");
            keys.push(k);
        }
    }

    #[test]
    fn the_account_file_is_created_once_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("acme").join("account-x.json");
        assert!(write_private(&path, b"first", false).expect("written"));
        assert!(!write_private(&path, b"second", false).expect("kept"));
        assert_eq!(std::fs::read(&path).expect("read"), b"first");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(write_private(&path, b"third", true).expect("replaced"));
        assert_eq!(std::fs::read(&path).expect("read"), b"third");
        let names: Vec<_> = std::fs::read_dir(path.parent().expect("dir"))
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temporary files left: {names:?}");
    }

    #[test]
    fn dns_records_follow_the_specs() {
        let r = DnsRecord::persist(
            "www.example.com",
            "letsencrypt.org",
            "https://acme-v02.api.letsencrypt.org/acme/acct/1234",
        );
        assert_eq!(r.domain, "www.example.com");
        assert_eq!(r.fqdn, "_validation-persist.www.example.com");
        assert_eq!(
            r.value,
            "letsencrypt.org; accounturi=https://acme-v02.api.letsencrypt.org/acme/acct/1234"
        );
        let r = DnsRecord::dns01("example.com", "digest".into());
        assert_eq!(r.fqdn, "_acme-challenge.example.com");
        assert_eq!(r.value, "digest");
    }

    /// RFC 9773 §4.1's example: AKI 69:88:5B:…:C8:D4 and serial 00:87:65:43:21 give
    /// `aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE`.
    #[test]
    fn ari_id_matches_the_rfc_example() {
        let aki = vec![
            0x69, 0x88, 0x5B, 0x6B, 0x87, 0x46, 0x40, 0x41, 0xE1, 0xB3, 0x7B, 0x84, 0x7B, 0xA0,
            0xAE, 0x2C, 0xDE, 0x01, 0xC8, 0xD4,
        ];
        let mut ca_params = rcgen::CertificateParams::default();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.key_identifier_method = rcgen::KeyIdMethod::PreSpecified(aki);
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let ca = rcgen::Issuer::new(ca_params, ca_key);
        let mut leaf =
            rcgen::CertificateParams::new(vec!["ari.example".to_owned()]).expect("params");
        leaf.serial_number = Some(rcgen::SerialNumber::from(vec![
            0x00, 0x87, 0x65, 0x43, 0x21,
        ]));
        leaf.use_authority_key_identifier_extension = true;
        let leaf_key = rcgen::KeyPair::generate().expect("key");
        let cert = leaf.signed_by(&leaf_key, &ca).expect("signed");
        let id = ari_id(cert.der()).expect("has an AKI");
        assert_eq!(id.to_string(), "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");

        // Without an Authority Key Identifier there is no ARI id (and no ARI).
        let plain = rcgen::CertificateParams::new(vec!["plain.example".to_owned()])
            .expect("params")
            .self_signed(&leaf_key)
            .expect("self-signed");
        assert!(ari_id(plain.der()).is_none());
        assert!(ari_id(b"not a certificate").is_none());
    }
}
