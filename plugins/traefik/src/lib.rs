//! Traefik target connector (file provider).
//!
//! Writes the full-chain certificate (0644) and the key (0600) into the directory
//! Traefik's file provider watches; Traefik picks them up by itself. With
//! `dynamic_config_file`, also writes a dynamic-configuration snippet there:
//!
//! ```toml
//! [[tls.certificates]]
//!   certFile = "/etc/traefik/certs/cert.pem"
//!   keyFile = "/etc/traefik/certs/key.pem"
//! ```
//!
//! A granted `validate` or `reload` command runs as for every target, but neither
//! is needed.

use certctl_plugin_sdk::{
    ConnectorError, DeployRequest, DeployResult, File, Guest, ValidationRequest, ValidationResult,
    check_request, concat_pem, deploy, export_target, file_holds_certificate, join, parse_config,
    require_absolute, require_file_name,
};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    cert_dir: String,
    #[serde(default = "default_cert_file")]
    cert_file: String,
    #[serde(default = "default_key_file")]
    key_file: String,
    /// File name (in `cert_dir`) of a dynamic-configuration snippet to write.
    #[serde(default)]
    dynamic_config_file: Option<String>,
}

fn default_cert_file() -> String {
    "cert.pem".into()
}

fn default_key_file() -> String {
    "key.pem".into()
}

impl Config {
    fn parse(json: &str) -> Result<Self, ConnectorError> {
        let config: Self = parse_config(json)?;
        require_absolute("cert_dir", &config.cert_dir)?;
        require_file_name("cert_file", &config.cert_file)?;
        require_file_name("key_file", &config.key_file)?;
        if let Some(name) = &config.dynamic_config_file {
            require_file_name("dynamic_config_file", name)?;
            if !name.ends_with(".toml") {
                return Err(certctl_plugin_sdk::invalid_config(format!(
                    "dynamic_config_file: `{name}` must end in .toml"
                )));
            }
        }
        Ok(config)
    }
}

/// TOML basic string: quotes and backslashes escaped.
fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

struct Traefik;

impl Guest for Traefik {
    fn validate_config(config_json: String) -> Result<(), ConnectorError> {
        Config::parse(&config_json).map(drop)
    }

    fn deploy(request: DeployRequest) -> Result<DeployResult, ConnectorError> {
        let config = Config::parse(&request.config_json)?;
        check_request(&request)?;
        let cert_path = join(&config.cert_dir, &config.cert_file);
        let key_path = join(&config.cert_dir, &config.key_file);
        let mut files = vec![
            File::certificate(
                &cert_path,
                concat_pem(&[&request.certificate_pem, &request.chain_pem]),
            ),
            File::private_key(&key_path, concat_pem(&[&request.private_key_pem])),
        ];
        if let Some(name) = &config.dynamic_config_file {
            files.push(File::config(
                join(&config.cert_dir, name),
                format!(
                    "# Written by certctl for target {} (certificate {}). Do not edit.\n\
                     [[tls.certificates]]\n  certFile = {}\n  keyFile = {}\n",
                    request.target_id,
                    request.certificate_id,
                    toml_string(&cert_path),
                    toml_string(&key_path),
                ),
            ));
        }
        deploy(&files)
    }

    fn validate_deployment(request: ValidationRequest) -> Result<ValidationResult, ConnectorError> {
        let config = Config::parse(&request.config_json)?;
        file_holds_certificate(
            &join(&config.cert_dir, &config.cert_file),
            &request.certificate_pem,
        )
    }
}

export_target!(Traefik);
