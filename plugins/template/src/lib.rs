//! A minimal certctl target connector, to copy.
//!
//! A target connector is a WebAssembly component implementing the WIT world
//! `certctl:connector/target` (wit/v0.1.0/worlds.wit): three exported functions,
//! and three host interfaces it may import (`files`, `commands`, `log`). The
//! component has no filesystem or network of its own: it writes through `files`
//! (confined to the directories the operator granted) and runs the operator's
//! commands by name through `commands`.
//!
//! Build: `cargo build --release --target wasm32-wasip2` (or plugins/build.sh),
//! then install `plugin.wasm` + `plugin.toml` as `<plugin dir>/template/`.

// wit-bindgen's generated glue trips this lint; it is not our code.
#![allow(clippy::too_many_arguments)]

// Generates Rust bindings for the world: a `Guest` trait to implement, the
// imported interfaces as plain functions, and the `export!` macro.
wit_bindgen::generate!({
    path: "../../wit/v0.1.0",
    world: "certctl:connector/target",
    // Also bind the WASI interfaces the world imports (wasi:http, for targets with
    // an HTTP API); a component imports only what it uses.
    generate_all,
});

// The world's `use types.{…}` brings ConnectorError, DeployRequest, DeployResult,
// ValidationRequest and ValidationResult into scope; ErrorKind we import.
use certctl::connector::types::ErrorKind;
use certctl::connector::{commands, files, log};

/// The configuration this plugin accepts (the target's `config-json`).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    dir: String,
    /// A secret (marked `writeOnly` in plugin.toml): it arrives here in clear, while the
    /// server stores it encrypted and never shows it. Never log its value.
    #[serde(default)]
    api_token: Option<String>,
}

fn parse(config_json: &str) -> Result<Config, ConnectorError> {
    let config: Config = serde_json::from_str(config_json).map_err(|e| ConnectorError {
        kind: ErrorKind::InvalidConfig,
        message: format!("configuration: {e}"),
    })?;
    if !config.dir.starts_with('/') {
        return Err(ConnectorError {
            kind: ErrorKind::InvalidConfig,
            message: format!("dir: `{}` must be an absolute path", config.dir),
        });
    }
    Ok(config)
}

struct Template;

impl Guest for Template {
    /// Called when the target is saved and before each deployment: check, don't act.
    fn validate_config(config_json: String) -> Result<(), ConnectorError> {
        parse(&config_json).map(drop)
    }

    /// Write the files, then reload if the operator granted a reload command.
    fn deploy(request: DeployRequest) -> Result<DeployResult, ConnectorError> {
        let config = parse(&request.config_json)?;
        let cert = format!("{}/cert.pem", config.dir.trim_end_matches('/'));
        let key = format!("{}/key.pem", config.dir.trim_end_matches('/'));
        let fullchain = format!(
            "{}\n{}",
            request.certificate_pem.trim(),
            request.chain_pem.trim()
        );

        // Atomic writes with a mode; a path outside the granted directories comes
        // back as ErrorKind::Denied, which we pass on with `?`.
        files::write(&cert, fullchain.trim().as_bytes(), 0o644)?;
        if let Err(e) = files::write(&key, request.private_key_pem.as_bytes(), 0o600) {
            // Put the previous certificate back so cert and key stay a pair.
            let _ = files::restore(&cert);
            return Err(e);
        }
        log::log(log::Level::Info, &format!("wrote {cert} and {key}"));
        if config.api_token.is_some() {
            log::log(log::Level::Info, "api_token is set");
        }

        let mut commands_run = Vec::new();
        if commands::is_granted("reload") {
            let output = commands::run("reload")?;
            if output.status != 0 {
                return Err(ConnectorError {
                    kind: ErrorKind::CommandFailed,
                    message: format!("reload failed ({}): {}", output.status, output.stderr),
                });
            }
            commands_run.push("reload".to_string());
        }
        Ok(DeployResult {
            message: format!("wrote {cert} and {key}"),
            files_written: vec![cert, key],
            commands_run,
        })
    }

    /// Optional check that the certificate is in place.
    fn validate_deployment(request: ValidationRequest) -> Result<ValidationResult, ConnectorError> {
        let config = parse(&request.config_json)?;
        let cert = format!("{}/cert.pem", config.dir.trim_end_matches('/'));
        let on_disk = files::read(&cert)?;
        let valid = String::from_utf8_lossy(&on_disk).contains(request.certificate_pem.trim());
        Ok(ValidationResult {
            valid,
            message: format!("checked {cert}"),
        })
    }
}

// Exports `Template` as the component's implementation of the world.
export!(Template);
