//! Server configuration: environment variables (`CERTCTL_*`) with flags for the common ones.
//!
//! clap reads both, so `--port 9000` and `CERTCTL_SERVER_PORT=9000` are the same setting;
//! a malformed value stops the server at start with a message naming the variable.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser, ValueEnum};

/// How the API listener is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TlsMode {
    /// HTTPS with a server certificate issued at first start by a bootstrap CA in the data dir.
    Auto,
    /// HTTPS with the operator's certificate and key files.
    Files,
    /// Plain HTTP (warned about at start).
    Off,
}

/// How API callers authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthType {
    /// `Authorization: Bearer <key>`; keys stored as SHA-256.
    #[value(name = "api-key")]
    ApiKey,
    /// No authentication (warned about at start).
    None,
}

impl AuthType {
    /// The spelling served by `/api/v1/auth/info`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthType::ApiKey => "api-key",
            AuthType::None => "none",
        }
    }
}

/// Where private keys are generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeygenMode {
    /// Agents generate keys and submit CSRs; the server never sees a private key.
    Agent,
    /// The server generates keys (demo only; warned about at start).
    Server,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Every setting of `certctl-server`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "certctl-server",
    version,
    about = "certctl control plane: REST API, scheduler, PKI"
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long = "host", env = "CERTCTL_SERVER_HOST", default_value = "0.0.0.0")]
    pub host: String,
    /// Port to listen on.
    #[arg(long = "port", env = "CERTCTL_SERVER_PORT", default_value_t = 8443)]
    pub port: u16,
    /// Directory for the SQLite database, CA material and generated keys.
    #[arg(
        long = "data-dir",
        env = "CERTCTL_DATA_DIR",
        default_value = "./certctl-data"
    )]
    pub data_dir: PathBuf,
    /// Database URL; default is a SQLite file in the data dir. `postgres://…` selects PostgreSQL.
    #[arg(
        long = "database-url",
        env = "CERTCTL_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// TLS mode of the API listener.
    #[arg(
        long = "tls-mode",
        env = "CERTCTL_TLS_MODE",
        value_enum,
        default_value = "auto"
    )]
    pub tls_mode: TlsMode,
    /// Certificate chain (PEM) for `--tls-mode files`.
    #[arg(long = "tls-cert", env = "CERTCTL_TLS_CERT_PATH")]
    pub tls_cert_path: Option<PathBuf>,
    /// Private key (PEM) for `--tls-mode files`.
    #[arg(long = "tls-key", env = "CERTCTL_TLS_KEY_PATH")]
    pub tls_key_path: Option<PathBuf>,
    /// Authentication of API callers.
    #[arg(
        long = "auth-type",
        env = "CERTCTL_AUTH_TYPE",
        value_enum,
        default_value = "api-key"
    )]
    pub auth_type: AuthType,
    /// Seeds (or replaces) the key named `admin`. Without it and without any key, one is generated and printed once.
    #[arg(
        long = "admin-api-key",
        env = "CERTCTL_ADMIN_API_KEY",
        hide_env_values = true
    )]
    pub admin_api_key: Option<String>,
    /// Passphrase the secrets in connector configs (e.g. `eab_hmac_key`) are encrypted
    /// under (AES-256-GCM, PBKDF2-derived key; at least 16 characters). Unset: they are
    /// stored in clear, and the server says so at start. Keep it: without it, a database
    /// holding encrypted secrets does not start.
    #[arg(
        long = "config-encryption-key",
        env = "CERTCTL_CONFIG_ENCRYPTION_KEY",
        hide_env_values = true
    )]
    pub config_encryption_key: Option<String>,
    /// `text` or `json` log lines.
    #[arg(
        long = "log-format",
        env = "CERTCTL_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// Log filter (`info`, `debug`, `certctl_host=debug,sqlx=warn`, …).
    #[arg(long = "log-level", env = "CERTCTL_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "CERTCTL_MAX_BODY_SIZE", default_value_t = 1_048_576)]
    pub max_body_size: usize,
    /// Per-caller token-bucket rate limiting.
    #[arg(long, env = "CERTCTL_RATE_LIMIT_ENABLED", default_value_t = true, action = ArgAction::Set)]
    pub rate_limit_enabled: bool,
    /// Requests per second refilled into each caller's bucket.
    #[arg(long, env = "CERTCTL_RATE_LIMIT_RPS", default_value_t = 50.0)]
    pub rate_limit_rps: f64,
    /// Bucket size (burst).
    #[arg(long, env = "CERTCTL_RATE_LIMIT_BURST", default_value_t = 100)]
    pub rate_limit_burst: u32,
    /// RPS for authenticated callers; 0 uses `CERTCTL_RATE_LIMIT_RPS`.
    #[arg(long, env = "CERTCTL_RATE_LIMIT_PER_USER_RPS", default_value_t = 0.0)]
    pub rate_limit_per_user_rps: f64,
    /// Burst for authenticated callers; 0 uses `CERTCTL_RATE_LIMIT_BURST`.
    #[arg(long, env = "CERTCTL_RATE_LIMIT_PER_USER_BURST", default_value_t = 0)]
    pub rate_limit_per_user_burst: u32,
    /// RPS per client IP on the routes that take a credential without needing one
    /// (agent registration, `auth/check`): stricter, because they invite guessing.
    #[arg(long, env = "CERTCTL_RATE_LIMIT_AUTH_RPS", default_value_t = 1.0)]
    pub rate_limit_auth_rps: f64,
    /// Burst per client IP on those routes.
    #[arg(long, env = "CERTCTL_RATE_LIMIT_AUTH_BURST", default_value_t = 20)]
    pub rate_limit_auth_burst: u32,
    /// Most callers (keys and client IPs) the rate limiter tracks at once; beyond it, idle
    /// and then least recently used buckets are forgotten.
    #[arg(long, env = "CERTCTL_RATE_LIMIT_MAX_KEYS", default_value_t = 10_000)]
    pub rate_limit_max_keys: usize,
    /// Records the API-call log queue holds before dropping (and counting) new ones.
    #[arg(long, env = "CERTCTL_API_CALL_LOG_QUEUE", default_value_t = 10_000)]
    pub api_call_log_queue: usize,
    /// How long API-call rows are kept (`90d`, at least `24h`); `0` keeps them forever.
    #[arg(long, env = "CERTCTL_API_CALL_RETENTION", default_value = "90d", value_parser = parse_retention)]
    pub api_call_retention: Duration,
    /// How often rows past the API-call retention are deleted.
    #[arg(long, env = "CERTCTL_API_CALL_RETENTION_INTERVAL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub api_call_retention_interval: Duration,
    /// Comma-separated allowed CORS origins, or `*`; empty denies all cross-origin requests.
    #[arg(long, env = "CERTCTL_CORS_ORIGINS", default_value = "")]
    pub cors_origins: String,
    /// Pre-shared token agents present to register (`POST /api/v1/agents/register`).
    /// Unset: registration needs an admin API key instead.
    #[arg(long, env = "CERTCTL_AGENT_BOOTSTRAP_TOKEN", hide_env_values = true)]
    pub agent_bootstrap_token: Option<String>,
    /// Where private keys are generated: `agent` (default) or `server` (demo).
    #[arg(long, env = "CERTCTL_KEYGEN_MODE", value_enum, default_value = "agent")]
    pub keygen_mode: KeygenMode,
    /// Sub-CA mode: the Local CA signs with this CA certificate (PEM) instead of a self-signed root.
    #[arg(long, env = "CERTCTL_CA_CERT_PATH")]
    pub ca_cert_path: Option<PathBuf>,
    /// Sub-CA mode: the CA's private key (PEM, PKCS#8).
    #[arg(long, env = "CERTCTL_CA_KEY_PATH")]
    pub ca_key_path: Option<PathBuf>,
    /// Base URL clients reach this server at, embedded in certificates as CRL and OCSP locations.
    #[arg(long, env = "CERTCTL_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Lifetime requested for new certificates (a profile's max TTL caps it).
    #[arg(long, env = "CERTCTL_CERTIFICATE_VALIDITY", default_value = "90d", value_parser = humantime::parse_duration)]
    pub certificate_validity: Duration,
    /// Renewal check loop interval.
    #[arg(long, env = "CERTCTL_SCHEDULER_RENEWAL_CHECK_INTERVAL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub renewal_check_interval: Duration,
    /// Job processor loop interval.
    #[arg(long, env = "CERTCTL_SCHEDULER_JOB_PROCESSOR_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub job_processor_interval: Duration,
    /// Job retry loop interval (requeues failed jobs with attempts left).
    #[arg(long, env = "CERTCTL_SCHEDULER_RETRY_INTERVAL", default_value = "5m", value_parser = humantime::parse_duration)]
    pub job_retry_interval: Duration,
    /// Job timeout reaper interval.
    #[arg(long, env = "CERTCTL_JOB_TIMEOUT_INTERVAL", default_value = "10m", value_parser = humantime::parse_duration)]
    pub job_timeout_interval: Duration,
    /// AwaitingCSR jobs older than this fail.
    #[arg(long, env = "CERTCTL_JOB_AWAITING_CSR_TIMEOUT", default_value = "24h", value_parser = humantime::parse_duration)]
    pub awaiting_csr_timeout: Duration,
    /// AwaitingApproval jobs older than this fail.
    #[arg(long, env = "CERTCTL_JOB_AWAITING_APPROVAL_TIMEOUT", default_value = "168h", value_parser = humantime::parse_duration)]
    pub awaiting_approval_timeout: Duration,
    /// A Running job whose processor has not finished within this lease is requeued.
    #[arg(long, env = "CERTCTL_JOB_LEASE", default_value = "5m", value_parser = humantime::parse_duration)]
    pub job_lease: Duration,
    /// How long an asynchronous issuer order (`pending(order-id)`) may stay pending before
    /// its job fails.
    #[arg(long, env = "CERTCTL_ISSUER_ORDER_DEADLINE", default_value = "24h", value_parser = humantime::parse_duration)]
    pub issuer_order_deadline: Duration,
    /// Multiplies the order poll schedule (5 s, 15 s, 45 s, 2 m, 5 m); for tests only,
    /// operators keep 1.0.
    #[arg(long, env = "CERTCTL_ISSUER_POLL_SCALE", default_value_t = 1.0)]
    pub issuer_poll_scale: f64,
    /// Agent health loop interval.
    #[arg(long, env = "CERTCTL_SCHEDULER_AGENT_HEALTH_CHECK_INTERVAL", default_value = "2m", value_parser = humantime::parse_duration)]
    pub agent_health_interval: Duration,
    /// Agents without a heartbeat for this long are marked Offline.
    #[arg(long, env = "CERTCTL_AGENT_OFFLINE_AFTER", default_value = "5m", value_parser = humantime::parse_duration)]
    pub agent_offline_after: Duration,
    /// Notification processor interval.
    #[arg(long, env = "CERTCTL_SCHEDULER_NOTIFICATION_PROCESS_INTERVAL", default_value = "1m", value_parser = humantime::parse_duration)]
    pub notification_process_interval: Duration,
    /// Notification retry loop interval.
    #[arg(long, env = "CERTCTL_NOTIFICATION_RETRY_INTERVAL", default_value = "2m", value_parser = humantime::parse_duration)]
    pub notification_retry_interval: Duration,
    /// Short-lived certificate expiry loop interval.
    #[arg(long, env = "CERTCTL_SHORT_LIVED_EXPIRY_CHECK_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub short_lived_expiry_interval: Duration,
    /// Revocation: CRL generation interval, OCSP responder validity, rotation and key dir.
    #[command(flatten)]
    pub revocation: crate::revocation::RevocationSettings,
    /// WebAssembly connectors: plugin directory, grants file, limits.
    #[command(flatten)]
    pub plugins: crate::plugins::PluginSettings,
    /// Notification channels (SMTP, webhook, Slack, Teams, PagerDuty, OpsGenie), routes, digest.
    #[command(flatten)]
    pub notifications: crate::notifier::channels::NotificationSettings,
    /// The operator's ACME settings (TOML): DNS hooks, HTTP-01 listeners and CA bundles that
    /// issuer configs reference by name (see `acme/operator.rs`).
    #[arg(long, env = "CERTCTL_ACME_HOOKS")]
    pub acme_hooks: Option<PathBuf>,
    /// Outbound grants for the server's own fetches (ACME), comma-separated: hosts,
    /// addresses or CIDR ranges (`127.0.0.1:*`, `10.0.0.0/8`, `http://ca.internal:8080`)
    /// allowed beyond public https on port 443.
    #[arg(long, env = "CERTCTL_OUTBOUND_ALLOW", default_value = "")]
    pub outbound_allow: String,
    /// Directory of the built web dashboard, served at `/` (default `web/dist`, relative to the working directory).
    #[arg(long, env = "CERTCTL_WEB_DIR", default_value = "web/dist")]
    pub web_dir: PathBuf,
    /// Budget for draining in-flight work on SIGTERM/SIGINT.
    #[arg(
        long,
        env = "CERTCTL_AUDIT_FLUSH_TIMEOUT_SECONDS",
        default_value_t = 30
    )]
    pub shutdown_timeout_seconds: u64,
}

/// A retention: zero, or a duration of at least a day (the schema refuses pruning newer rows).
fn parse_retention(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if crate::domain::api_call::retention_is_valid(d) {
        Ok(d)
    } else {
        Err("must be 0 (keep forever) or at least 24h".into())
    }
}

impl Config {
    /// The database URL in effect (explicit, or the SQLite file in the data dir).
    pub fn effective_database_url(&self) -> String {
        self.database_url
            .clone()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| crate::store::default_sqlite_url(&self.data_dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_ones() {
        let c = Config::try_parse_from(["certctl-server"]).unwrap();
        assert_eq!(c.port, 8443);
        assert_eq!(c.host, "0.0.0.0");
        assert_eq!(c.tls_mode, TlsMode::Auto);
        assert_eq!(c.auth_type, AuthType::ApiKey);
        assert_eq!(c.max_body_size, 1_048_576);
        assert_eq!(c.api_call_log_queue, 10_000);
        assert_eq!(c.api_call_retention, Duration::from_secs(90 * 86_400));
        assert_eq!(c.rate_limit_max_keys, 10_000);
        assert!(c.effective_database_url().starts_with("sqlite://"));
    }

    #[test]
    fn flags_parse() {
        let c = Config::try_parse_from([
            "certctl-server",
            "--port",
            "9000",
            "--tls-mode",
            "off",
            "--auth-type",
            "none",
            "--rate-limit-enabled",
            "false",
        ])
        .unwrap();
        assert_eq!(c.port, 9000);
        assert_eq!(c.tls_mode, TlsMode::Off);
        assert_eq!(c.auth_type, AuthType::None);
        assert!(!c.rate_limit_enabled);
        assert!(Config::try_parse_from(["certctl-server", "--tls-mode", "maybe"]).is_err());
        let retention = |v: &str| {
            Config::try_parse_from(["certctl-server", "--api-call-retention", v])
                .map(|c| c.api_call_retention)
        };
        assert_eq!(retention("0").unwrap(), Duration::ZERO);
        assert_eq!(retention("2d").unwrap(), Duration::from_secs(2 * 86_400));
        assert!(retention("1h").is_err(), "shorter than the schema's floor");
    }
}
