//! Caddy target connector.
//!
//! File mode: writes the full-chain certificate (0644) and the key (0600) into
//! `cert_dir`, for a Caddyfile `tls <cert> <key>` directive; a granted `reload`
//! command (e.g. `caddy reload --config /etc/caddy/Caddyfile`) makes Caddy load
//! them at once.
//!
//! API mode (posting to Caddy's admin API) is not implemented in this version: the
//! target world of WIT 0.1 has no outbound HTTP, so `mode = "api"` is refused with
//! `unsupported`.

use certctl_plugin_sdk::{
    ConnectorError, DeployRequest, DeployResult, ErrorKind, File, Guest, ValidationRequest,
    ValidationResult, check_request, concat_pem, deploy, error, export_target,
    file_holds_certificate, join, parse_config, require_absolute, require_file_name,
};
use serde::Deserialize;

#[derive(Deserialize, Default, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Mode {
    #[default]
    File,
    Api,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    mode: Mode,
    /// Admin API address, for API mode.
    #[serde(default)]
    #[allow(dead_code)]
    admin_api: Option<String>,
    #[serde(default)]
    cert_dir: Option<String>,
    #[serde(default = "default_cert_file")]
    cert_file: String,
    #[serde(default = "default_key_file")]
    key_file: String,
}

fn default_cert_file() -> String {
    "cert.pem".into()
}

fn default_key_file() -> String {
    "key.pem".into()
}

fn api_unsupported() -> ConnectorError {
    error(
        ErrorKind::Unsupported,
        "caddy API mode is not supported by this plugin version; use \"mode\": \"file\" \
         with a Caddyfile `tls <cert_file> <key_file>` directive and a granted reload command",
    )
}

impl Config {
    fn parse(json: &str) -> Result<Self, ConnectorError> {
        let config: Self = parse_config(json)?;
        if config.mode == Mode::Api {
            return Err(api_unsupported());
        }
        let Some(dir) = &config.cert_dir else {
            return Err(certctl_plugin_sdk::invalid_config(
                "cert_dir is required in file mode",
            ));
        };
        require_absolute("cert_dir", dir)?;
        require_file_name("cert_file", &config.cert_file)?;
        require_file_name("key_file", &config.key_file)?;
        Ok(config)
    }

    fn dir(&self) -> &str {
        self.cert_dir.as_deref().unwrap_or_default()
    }
}

struct Caddy;

impl Guest for Caddy {
    fn validate_config(config_json: String) -> Result<(), ConnectorError> {
        Config::parse(&config_json).map(drop)
    }

    fn deploy(request: DeployRequest) -> Result<DeployResult, ConnectorError> {
        let config = Config::parse(&request.config_json)?;
        check_request(&request)?;
        deploy(&[
            File::certificate(
                join(config.dir(), &config.cert_file),
                concat_pem(&[&request.certificate_pem, &request.chain_pem]),
            ),
            File::private_key(
                join(config.dir(), &config.key_file),
                concat_pem(&[&request.private_key_pem]),
            ),
        ])
    }

    fn validate_deployment(request: ValidationRequest) -> Result<ValidationResult, ConnectorError> {
        let config = Config::parse(&request.config_json)?;
        file_holds_certificate(
            &join(config.dir(), &config.cert_file),
            &request.certificate_pem,
        )
    }
}

export_target!(Caddy);
