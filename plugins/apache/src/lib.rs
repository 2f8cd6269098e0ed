//! Apache httpd target connector.
//!
//! Writes the certificate (0644), optionally a separate chain (0644), and the key
//! (0600); runs the operator's `validate` command (e.g. `apachectl configtest`) and restores the
//! previous files if it fails; then runs `reload` (e.g. `apachectl graceful`).
//!
//! Without `chain_path` the certificate file holds the full chain, which
//! `SSLCertificateFile` accepts since httpd 2.4.8; with it, point
//! `SSLCertificateChainFile` (older releases) at the chain file.

use certctl_plugin_sdk::{
    ConnectorError, DeployRequest, DeployResult, Guest, ValidationRequest, ValidationResult,
    check_request, deploy, export_target, file_holds_certificate, parse_config, require_absolute,
    separate_files,
};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    cert_path: String,
    key_path: String,
    #[serde(default)]
    chain_path: Option<String>,
}

impl Config {
    fn parse(json: &str) -> Result<Self, ConnectorError> {
        let config: Self = parse_config(json)?;
        require_absolute("cert_path", &config.cert_path)?;
        require_absolute("key_path", &config.key_path)?;
        if let Some(chain) = &config.chain_path {
            require_absolute("chain_path", chain)?;
        }
        Ok(config)
    }
}

struct Apache;

impl Guest for Apache {
    fn validate_config(config_json: String) -> Result<(), ConnectorError> {
        Config::parse(&config_json).map(drop)
    }

    fn deploy(request: DeployRequest) -> Result<DeployResult, ConnectorError> {
        let config = Config::parse(&request.config_json)?;
        check_request(&request)?;
        deploy(&separate_files(
            &request,
            &config.cert_path,
            config.chain_path.as_deref(),
            &config.key_path,
        ))
    }

    fn validate_deployment(request: ValidationRequest) -> Result<ValidationResult, ConnectorError> {
        let config = Config::parse(&request.config_json)?;
        file_holds_certificate(&config.cert_path, &request.certificate_pem)
    }
}

export_target!(Apache);
