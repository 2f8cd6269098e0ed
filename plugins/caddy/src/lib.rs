//! Caddy target connector.
//!
//! File mode (default): writes the full-chain certificate (0644) and the key (0600)
//! into `cert_dir`, for a Caddyfile `tls <cert> <key>` directive; a granted `reload`
//! command (e.g. `caddy reload --config /etc/caddy/Caddyfile`) makes Caddy load
//! them at once.
//!
//! API mode (`"mode": "api"`): loads the certificate and key into the running Caddy
//! through its admin API (`admin_api`, default `http://localhost:2019`, which the
//! operator must grant as an outbound host), as one entry of the TLS app's
//! `certificates.load_pem` list tagged with an `@id` (default `certctl-<target id>`):
//!
//! 1. `PATCH /id/<id>` replaces the entry a previous deployment added;
//! 2. when Caddy answers 404 (no such `@id` yet), `GET
//!    /config/apps/tls/certificates/load_pem` tells whether the list exists: then
//!    `POST` to it appends the entry, otherwise `PUT` creates it (and any missing
//!    parent objects) as a one-entry list.
//!
//! Caddy validates and applies each change atomically: a refused certificate leaves
//! the running configuration as it was, and comes back as `rejected` with Caddy's
//! message. No file is written and no command runs in API mode. Keep the admin API
//! on loopback: the private key travels in the request body.

use certctl_plugin_sdk::http::{self, Endpoint};
use certctl_plugin_sdk::{
    ConnectorError, DeployRequest, DeployResult, ErrorKind, File, Guest, ValidationRequest,
    ValidationResult, check_request, concat_pem, deploy, error, export_target,
    file_holds_certificate, invalid_config, join, parse_config, require_absolute,
    require_file_name,
};
use serde::Deserialize;
use serde_json::{Value, json};

/// Where Caddy's admin API listens unless configured otherwise.
const DEFAULT_ADMIN_API: &str = "http://localhost:2019";
/// The TLS app's list of certificate/key PEM pairs.
const LOAD_PEM: &str = "/config/apps/tls/certificates/load_pem";
const JSON: Option<&str> = Some("application/json");

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
    /// Admin API base URL (API mode).
    #[serde(default)]
    admin_api: Option<String>,
    /// `@id` of the `load_pem` entry (API mode).
    #[serde(default)]
    certificate_id: Option<String>,
    #[serde(default)]
    cert_dir: Option<String>,
    #[serde(default)]
    cert_file: Option<String>,
    #[serde(default)]
    key_file: Option<String>,
}

/// A checked configuration.
enum Target {
    Files {
        dir: String,
        cert_file: String,
        key_file: String,
    },
    Api {
        endpoint: Endpoint,
        certificate_id: Option<String>,
    },
}

impl Target {
    fn parse(json: &str) -> Result<Self, ConnectorError> {
        let config: Config = parse_config(json)?;
        match config.mode {
            Mode::File => {
                if config.admin_api.is_some() || config.certificate_id.is_some() {
                    return Err(invalid_config(
                        "admin_api and certificate_id are for \"mode\": \"api\"",
                    ));
                }
                let Some(dir) = config.cert_dir else {
                    return Err(invalid_config("cert_dir is required in file mode"));
                };
                let cert_file = config.cert_file.unwrap_or_else(|| "cert.pem".into());
                let key_file = config.key_file.unwrap_or_else(|| "key.pem".into());
                require_absolute("cert_dir", &dir)?;
                require_file_name("cert_file", &cert_file)?;
                require_file_name("key_file", &key_file)?;
                Ok(Self::Files {
                    dir,
                    cert_file,
                    key_file,
                })
            }
            Mode::Api => {
                if config.cert_dir.is_some()
                    || config.cert_file.is_some()
                    || config.key_file.is_some()
                {
                    return Err(invalid_config(
                        "cert_dir, cert_file and key_file are for \"mode\": \"file\"; \
                         API mode loads the certificate into Caddy without files",
                    ));
                }
                let url = config.admin_api.as_deref().unwrap_or(DEFAULT_ADMIN_API);
                let endpoint = Endpoint::parse("admin_api", url)?;
                if let Some(id) = &config.certificate_id {
                    require_caddy_id("certificate_id", id)?;
                }
                Ok(Self::Api {
                    endpoint,
                    certificate_id: config.certificate_id,
                })
            }
        }
    }
}

/// An `@id` usable in an admin API path.
fn require_caddy_id(field: &str, id: &str) -> Result<(), ConnectorError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(invalid_config(format!(
            "{field}: `{id}` must be 1–128 letters, digits, `-`, `_` or `.`"
        )))
    }
}

/// The `@id` of the target's entry: configured, or `certctl-<target id>`.
fn entry_id(configured: Option<String>, target_id: &str) -> Result<String, ConnectorError> {
    let id = configured.unwrap_or_else(|| format!("certctl-{target_id}"));
    require_caddy_id("certificate_id", &id)
        .map_err(|e| error(ErrorKind::InvalidRequest, e.message))?;
    Ok(id)
}

/// A non-2xx answer as a connector error: 5xx is `unavailable` (retryable), the
/// rest `rejected`, with Caddy's own message.
fn refused(endpoint: &Endpoint, method: &str, path: &str, r: &http::Response) -> ConnectorError {
    let kind = if r.status >= 500 {
        ErrorKind::Unavailable
    } else {
        ErrorKind::Rejected
    };
    error(
        kind,
        format!(
            "Caddy admin API refused {method} {}: HTTP {} {}",
            endpoint.url(path),
            r.status,
            r.excerpt()
        ),
    )
}

/// Loads the pair into Caddy (see the module documentation for the sequence).
fn deploy_api(
    endpoint: &Endpoint,
    id: &str,
    request: &DeployRequest,
) -> Result<DeployResult, ConnectorError> {
    let entry = json!({
        "@id": id,
        "certificate": concat_pem(&[&request.certificate_pem, &request.chain_pem]),
        "key": concat_pem(&[&request.private_key_pem]),
        "tags": [id],
    });
    let body = entry.to_string();
    let by_id = format!("/id/{id}");
    let r = http::send("PATCH", endpoint, &by_id, JSON, body.as_bytes())?;
    let done = |how: &str| DeployResult {
        message: format!(
            "Caddy admin API at {}: certificate `{id}` {how}",
            endpoint.url("")
        ),
        files_written: Vec::new(),
        commands_run: Vec::new(),
    };
    if r.is_success() {
        return Ok(done("replaced"));
    }
    if r.status != 404 {
        return Err(refused(endpoint, "PATCH", &by_id, &r));
    }
    let list = http::send("GET", endpoint, LOAD_PEM, None, &[])?;
    let exists = list.is_success()
        && serde_json::from_slice::<Value>(&list.body).is_ok_and(|v| v.is_array());
    let (method, payload, how) = if exists {
        ("POST", body, "added to apps.tls.certificates.load_pem")
    } else {
        (
            "PUT",
            json!([entry]).to_string(),
            "loaded (apps.tls.certificates.load_pem created)",
        )
    };
    let r = http::send(method, endpoint, LOAD_PEM, JSON, payload.as_bytes())?;
    if r.is_success() {
        Ok(done(how))
    } else {
        Err(refused(endpoint, method, LOAD_PEM, &r))
    }
}

/// Whether Caddy's entry `id` holds the certificate.
fn validate_api(
    endpoint: &Endpoint,
    id: &str,
    certificate_pem: &str,
) -> Result<ValidationResult, ConnectorError> {
    let path = format!("/id/{id}/certificate");
    let r = http::send("GET", endpoint, &path, None, &[])?;
    if r.status == 404 {
        return Ok(ValidationResult {
            valid: false,
            message: format!("Caddy has no certificate `{id}` loaded"),
        });
    }
    if !r.is_success() {
        return Err(refused(endpoint, "GET", &path, &r));
    }
    let loaded: String = serde_json::from_slice(&r.body).map_err(|e| {
        error(
            ErrorKind::Unavailable,
            format!(
                "Caddy answered GET {} with no PEM string: {e}",
                endpoint.url(&path)
            ),
        )
    })?;
    let squash = |s: &str| s.split_whitespace().collect::<String>();
    let valid = squash(&loaded).contains(&squash(certificate_pem));
    Ok(ValidationResult {
        valid,
        message: if valid {
            format!("Caddy's certificate `{id}` is the expected one")
        } else {
            format!("Caddy's certificate `{id}` is another certificate")
        },
    })
}

struct Caddy;

impl Guest for Caddy {
    fn validate_config(config_json: String) -> Result<(), ConnectorError> {
        Target::parse(&config_json).map(drop)
    }

    fn deploy(request: DeployRequest) -> Result<DeployResult, ConnectorError> {
        let target = Target::parse(&request.config_json)?;
        check_request(&request)?;
        match target {
            Target::Files {
                dir,
                cert_file,
                key_file,
            } => deploy(&[
                File::certificate(
                    join(&dir, &cert_file),
                    concat_pem(&[&request.certificate_pem, &request.chain_pem]),
                ),
                File::private_key(
                    join(&dir, &key_file),
                    concat_pem(&[&request.private_key_pem]),
                ),
            ]),
            Target::Api {
                endpoint,
                certificate_id,
            } => {
                let id = entry_id(certificate_id, &request.target_id)?;
                deploy_api(&endpoint, &id, &request)
            }
        }
    }

    fn validate_deployment(request: ValidationRequest) -> Result<ValidationResult, ConnectorError> {
        match Target::parse(&request.config_json)? {
            Target::Files { dir, cert_file, .. } => {
                file_holds_certificate(&join(&dir, &cert_file), &request.certificate_pem)
            }
            Target::Api {
                endpoint,
                certificate_id,
            } => {
                let id = entry_id(certificate_id, &request.target_id)?;
                validate_api(&endpoint, &id, &request.certificate_pem)
            }
        }
    }
}

export_target!(Caddy);
