//! Envoy target connector.
//!
//! Writes the certificate (with the chain appended, unless `chain_filename` gives
//! the chain its own file) and the key into `cert_dir`, which Envoy watches. With
//! `sds_config`, also writes `{cert_dir}/sds.json`: a file-based SDS resource
//! (`path_config_source`) naming the certificate and key, which Envoy hot-reloads.
//! Granted `validate`/`reload` commands run as for every target; neither is needed.

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
    #[serde(default = "default_cert")]
    cert_filename: String,
    #[serde(default = "default_key")]
    key_filename: String,
    #[serde(default)]
    chain_filename: Option<String>,
    #[serde(default)]
    sds_config: bool,
    /// The secret's name in the SDS resource.
    #[serde(default = "default_secret_name")]
    sds_secret_name: String,
}

fn default_cert() -> String {
    "cert.pem".into()
}

fn default_key() -> String {
    "key.pem".into()
}

fn default_secret_name() -> String {
    "server_cert".into()
}

impl Config {
    fn parse(json: &str) -> Result<Self, ConnectorError> {
        let config: Self = parse_config(json)?;
        require_absolute("cert_dir", &config.cert_dir)?;
        require_file_name("cert_filename", &config.cert_filename)?;
        require_file_name("key_filename", &config.key_filename)?;
        if let Some(chain) = &config.chain_filename {
            require_file_name("chain_filename", chain)?;
        }
        Ok(config)
    }
}

struct Envoy;

impl Guest for Envoy {
    fn validate_config(config_json: String) -> Result<(), ConnectorError> {
        Config::parse(&config_json).map(drop)
    }

    fn deploy(request: DeployRequest) -> Result<DeployResult, ConnectorError> {
        let config = Config::parse(&request.config_json)?;
        check_request(&request)?;
        let cert_path = join(&config.cert_dir, &config.cert_filename);
        let key_path = join(&config.cert_dir, &config.key_filename);
        let mut files = Vec::new();
        match &config.chain_filename {
            Some(chain) => {
                files.push(File::certificate(
                    &cert_path,
                    concat_pem(&[&request.certificate_pem]),
                ));
                files.push(File::certificate(
                    join(&config.cert_dir, chain),
                    concat_pem(&[&request.chain_pem]),
                ));
            }
            None => files.push(File::certificate(
                &cert_path,
                concat_pem(&[&request.certificate_pem, &request.chain_pem]),
            )),
        }
        files.push(File::private_key(
            &key_path,
            concat_pem(&[&request.private_key_pem]),
        ));
        if config.sds_config {
            let sds = serde_json::json!({
                "resources": [{
                    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
                    "name": config.sds_secret_name,
                    "tls_certificate": {
                        "certificate_chain": { "filename": cert_path },
                        "private_key": { "filename": key_path },
                    },
                }],
            });
            let text = serde_json::to_string_pretty(&sds).unwrap_or_default() + "\n";
            files.push(File::config(join(&config.cert_dir, "sds.json"), text));
        }
        deploy(&files)
    }

    fn validate_deployment(request: ValidationRequest) -> Result<ValidationResult, ConnectorError> {
        let config = Config::parse(&request.config_json)?;
        file_holds_certificate(
            &join(&config.cert_dir, &config.cert_filename),
            &request.certificate_pem,
        )
    }
}

export_target!(Envoy);
