//! Postfix / Dovecot target connector.
//!
//! Writes the certificate (the full chain unless `chain_path` is set), the chain
//! and the key (0600); runs the operator's `validate` command (`postfix check`,
//! `doveconf -n`), restoring the previous files if it fails; then `reload`
//! (`postfix reload`, `doveadm reload`). `mode` picks the default paths:
//! `/etc/postfix/certs/{cert,key}.pem` or `/etc/dovecot/certs/{cert,key}.pem`.

use certctl_plugin_sdk::{
    ConnectorError, DeployRequest, DeployResult, Guest, ValidationRequest, ValidationResult,
    check_request, deploy, export_target, file_holds_certificate, parse_config, require_absolute,
    separate_files,
};
use serde::Deserialize;

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Mode {
    #[default]
    Postfix,
    Dovecot,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    cert_path: Option<String>,
    #[serde(default)]
    key_path: Option<String>,
    #[serde(default)]
    chain_path: Option<String>,
}

struct Config {
    cert_path: String,
    key_path: String,
    chain_path: Option<String>,
}

impl Config {
    fn parse(json: &str) -> Result<Self, ConnectorError> {
        let raw: RawConfig = parse_config(json)?;
        let service = match raw.mode {
            Mode::Postfix => "postfix",
            Mode::Dovecot => "dovecot",
        };
        let config = Self {
            cert_path: raw
                .cert_path
                .unwrap_or_else(|| format!("/etc/{service}/certs/cert.pem")),
            key_path: raw
                .key_path
                .unwrap_or_else(|| format!("/etc/{service}/certs/key.pem")),
            chain_path: raw.chain_path,
        };
        require_absolute("cert_path", &config.cert_path)?;
        require_absolute("key_path", &config.key_path)?;
        if let Some(chain) = &config.chain_path {
            require_absolute("chain_path", chain)?;
        }
        Ok(config)
    }
}

struct Mail;

impl Guest for Mail {
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

export_target!(Mail);
