//! `certctl-server` entry point.

use clap::Parser as _;

use certctl_host::config::Config;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    certctl_host::telemetry::init(config.log_format, &config.log_level);
    if let Err(e) = certctl_host::server::run(config).await {
        tracing::error!("startup failed: {e}");
        eprintln!("certctl-server: {e}");
        std::process::exit(1);
    }
    Ok(())
}
