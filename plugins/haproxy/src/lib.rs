//! HAProxy target connector.
//!
//! HAProxy reads all TLS material of a `crt` from one PEM file: the certificate,
//! then the chain, then the private key. The file holds the key, so it is written
//! 0600. Then the operator's `validate` command (e.g. `haproxy -c -f
//! /etc/haproxy/haproxy.cfg`) runs, restoring the previous file if it fails, and
//! `reload` (e.g. `systemctl reload haproxy`).

use certctl_plugin_sdk::{
    ConnectorError, DeployRequest, DeployResult, File, Guest, ValidationRequest, ValidationResult,
    check_request, concat_pem, deploy, export_target, file_holds_certificate, parse_config,
    require_absolute,
};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    pem_path: String,
}

impl Config {
    fn parse(json: &str) -> Result<Self, ConnectorError> {
        let config: Self = parse_config(json)?;
        require_absolute("pem_path", &config.pem_path)?;
        Ok(config)
    }
}

struct Haproxy;

impl Guest for Haproxy {
    fn validate_config(config_json: String) -> Result<(), ConnectorError> {
        Config::parse(&config_json).map(drop)
    }

    fn deploy(request: DeployRequest) -> Result<DeployResult, ConnectorError> {
        let config = Config::parse(&request.config_json)?;
        check_request(&request)?;
        let combined = concat_pem(&[
            &request.certificate_pem,
            &request.chain_pem,
            &request.private_key_pem,
        ]);
        deploy(&[File::private_key(config.pem_path, combined)])
    }

    fn validate_deployment(request: ValidationRequest) -> Result<ValidationResult, ConnectorError> {
        let config = Config::parse(&request.config_json)?;
        file_holds_certificate(&config.pem_path, &request.certificate_pem)
    }
}

export_target!(Haproxy);
