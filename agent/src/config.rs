//! Agent settings: flags and `CERTCTL_*` environment variables.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Every setting of `certctl-agent`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "certctl-agent",
    version,
    about = "certctl agent: keys stay on this host; certificates get deployed"
)]
pub struct Config {
    /// Control plane URL (`https://certctl.example:8443`).
    #[arg(
        long,
        env = "CERTCTL_SERVER_URL",
        default_value = "https://localhost:8443"
    )]
    pub server_url: String,
    /// Extra CA certificate(s) (PEM) to trust for the server, e.g. `<server data dir>/ca-bundle.pem`.
    #[arg(long, env = "CERTCTL_CA_BUNDLE")]
    pub ca_bundle: Option<PathBuf>,
    /// This agent's id; taken from the state file after registration.
    #[arg(long, env = "CERTCTL_AGENT_ID")]
    pub agent_id: Option<String>,
    /// This agent's API key; taken from the state file after registration.
    #[arg(long, env = "CERTCTL_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Token for first registration (`CERTCTL_AGENT_BOOTSTRAP_TOKEN` on the server).
    #[arg(long, env = "CERTCTL_AGENT_BOOTSTRAP_TOKEN", hide_env_values = true)]
    pub bootstrap_token: Option<String>,
    /// Name to register under (default: host name).
    #[arg(long, env = "CERTCTL_AGENT_NAME")]
    pub name: Option<String>,
    /// Private keys (0600) and the agent's state file live here.
    #[arg(long, env = "CERTCTL_KEY_DIR", default_value = "/var/lib/certctl/keys")]
    pub key_dir: PathBuf,
    /// Directories scanned for existing certificates (comma-separated).
    #[arg(long, env = "CERTCTL_DISCOVERY_DIRS", value_delimiter = ',')]
    pub discovery_dirs: Vec<PathBuf>,
    /// Target connector plugins (`.wasm` + `plugin.toml`).
    #[arg(long, env = "CERTCTL_PLUGIN_DIR")]
    pub plugin_dir: Option<PathBuf>,
    /// Operator grants for plugins (TOML).
    #[arg(long, env = "CERTCTL_PLUGIN_GRANTS")]
    pub plugin_grants: Option<PathBuf>,
    /// Compiled-plugin cache.
    #[arg(
        long,
        env = "CERTCTL_PLUGIN_CACHE_DIR",
        default_value = "/var/lib/certctl/plugin-cache"
    )]
    pub plugin_cache_dir: PathBuf,
    /// How often to ask for work.
    #[arg(long, env = "CERTCTL_POLL_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub poll_interval: Duration,
    /// How often to send a heartbeat.
    #[arg(long, env = "CERTCTL_HEARTBEAT_INTERVAL", default_value = "60s", value_parser = humantime::parse_duration)]
    pub heartbeat_interval: Duration,
    /// Longest wait between attempts while the server is unreachable.
    #[arg(long, env = "CERTCTL_MAX_BACKOFF", default_value = "60s", value_parser = humantime::parse_duration)]
    pub max_backoff: Duration,
    /// `text` or `json` logs.
    #[arg(long, env = "CERTCTL_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
    /// Log filter.
    #[arg(long, env = "CERTCTL_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}
