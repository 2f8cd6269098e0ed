//! `certctl-agent`: keeps private keys on this host, answers CSR requests, deploys
//! certificates through target connector plugins and reports back.

use certctl_agent::{config, runner};
use clap::Parser as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = config::Config::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if cfg.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
    let deployer: Option<std::sync::Arc<dyn certctl_agent::deployer::Deployer>> =
        match &cfg.plugin_dir {
            Some(dir) => Some(std::sync::Arc::new(
                certctl_agent::plugins::PluginDeployer::load(
                    dir,
                    cfg.plugin_grants.as_deref(),
                    &cfg.plugin_cache_dir,
                )?,
            )),
            None => {
                tracing::warn!("no CERTCTL_PLUGIN_DIR: this agent can answer CSRs but not deploy");
                None
            }
        };
    let agent = runner::Agent::new(cfg, deployer)?;
    agent.run().await
}
