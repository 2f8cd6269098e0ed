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
        .with_writer(std::io::stderr);
    if cfg.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
    let agent = runner::Agent::new(cfg, None)?;
    agent.run().await
}
