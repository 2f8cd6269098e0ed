//! Shared code of certctl's first-party target connectors.
//!
//! - [`bindings`]: the guest bindings of WIT world `certctl:connector/target`
//!   (v0.1.0) and the `export_target!` macro that exports a [`Guest`] impl;
//! - [`parse_config`] and friends: strict configuration parsing with messages that
//!   name the field;
//! - [`deploy`]: the sequence every file-based target follows — write the files
//!   (certificates 0644, keys 0600), run the granted `validate` command and restore
//!   every file if it fails, then run the granted `reload` command;
//! - [`http`]: one request through `wasi:http` (filtered by the operator's host
//!   grants), for targets configured through an HTTP API.
//!
//! A third-party plugin does not need this crate: `plugins/template` shows the
//! same thing with wit-bindgen alone.

use serde::de::DeserializeOwned;

/// Guest bindings for the `target` world.
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/v0.1.0",
        world: "certctl:connector/target",
        pub_export_macro: true,
        export_macro_name: "export_target",
        default_bindings_module: "certctl_plugin_sdk::bindings",
        generate_all,
    });
}

pub mod http;

pub use bindings::certctl::connector::types::ErrorKind;
pub use bindings::certctl::connector::{commands, files, log};
pub use bindings::{
    ConnectorError, DeployRequest, DeployResult, ValidationRequest, ValidationResult,
};
pub use bindings::{Guest, export_target};

/// Mode of certificate and chain files.
pub const CERT_MODE: u32 = 0o644;
/// Mode of private key files (and of anything containing a key).
pub const KEY_MODE: u32 = 0o600;

/// An error of `kind` with `message`.
pub fn error(kind: ErrorKind, message: impl Into<String>) -> ConnectorError {
    ConnectorError {
        kind,
        message: message.into(),
    }
}

/// An `invalid-config` error.
pub fn invalid_config(message: impl Into<String>) -> ConnectorError {
    error(ErrorKind::InvalidConfig, message)
}

/// Parses `config_json` into `T` (which should `#[serde(deny_unknown_fields)]`).
///
/// Fields ending in `_command` are refused with an explanation: commands are
/// granted by the operator, never taken from configuration.
pub fn parse_config<T: DeserializeOwned>(config_json: &str) -> Result<T, ConnectorError> {
    let value: serde_json::Value = serde_json::from_str(config_json)
        .map_err(|e| invalid_config(format!("configuration is not valid JSON: {e}")))?;
    let Some(object) = value.as_object() else {
        return Err(invalid_config("configuration must be a JSON object"));
    };
    if let Some(field) = object.keys().find(|k| k.ends_with("_command")) {
        let name = field.trim_end_matches("_command");
        return Err(invalid_config(format!(
            "field `{field}` is not accepted: commands are granted by the operator in the \
             grants file (commands.{name} = [\"program\", \"arg\", …]), not configured per target"
        )));
    }
    serde_json::from_value(value).map_err(|e| invalid_config(format!("configuration: {e}")))
}

/// Requires `path` (the value of `field`) to be an absolute path without `..`.
pub fn require_absolute(field: &str, path: &str) -> Result<(), ConnectorError> {
    if !path.starts_with('/') {
        return Err(invalid_config(format!(
            "{field}: `{path}` must be an absolute path"
        )));
    }
    if path.split('/').any(|part| part == "..") {
        return Err(invalid_config(format!(
            "{field}: `{path}` must not contain `..`"
        )));
    }
    Ok(())
}

/// Requires `name` (the value of `field`) to be a plain file name.
pub fn require_file_name(field: &str, name: &str) -> Result<(), ConnectorError> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(invalid_config(format!(
            "{field}: `{name}` must be a file name, not a path"
        )));
    }
    Ok(())
}

/// `dir/name`.
pub fn join(dir: &str, name: &str) -> String {
    format!("{}/{}", dir.trim_end_matches('/'), name)
}

/// Refuses requests without a certificate or key.
pub fn check_request(request: &DeployRequest) -> Result<(), ConnectorError> {
    if !request
        .certificate_pem
        .contains("-----BEGIN CERTIFICATE-----")
    {
        return Err(error(
            ErrorKind::InvalidRequest,
            "the request carries no PEM certificate",
        ));
    }
    if !request.private_key_pem.contains("PRIVATE KEY-----") {
        return Err(error(
            ErrorKind::InvalidRequest,
            "the request carries no PEM private key",
        ));
    }
    Ok(())
}

/// PEM blocks concatenated, each ending in exactly one newline; empty parts skipped.
pub fn concat_pem(parts: &[&str]) -> String {
    let mut out = String::new();
    for part in parts {
        let part = part.trim();
        if !part.is_empty() {
            out.push_str(part);
            out.push('\n');
        }
    }
    out
}

/// A file to write.
#[derive(Debug, Clone)]
pub struct File {
    /// Absolute path.
    pub path: String,
    /// Contents.
    pub contents: String,
    /// Permission bits.
    pub mode: u32,
}

impl File {
    /// A certificate or chain file (0644).
    pub fn certificate(path: impl Into<String>, contents: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            contents: contents.into(),
            mode: CERT_MODE,
        }
    }

    /// A file holding a private key (0600).
    pub fn private_key(path: impl Into<String>, contents: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            contents: contents.into(),
            mode: KEY_MODE,
        }
    }

    /// A configuration snippet without secrets (0644).
    pub fn config(path: impl Into<String>, contents: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            contents: contents.into(),
            mode: CERT_MODE,
        }
    }
}

/// Writes `files` in order, then runs `validate` (when granted) and restores every
/// written file if it fails — in which case `reload` is not run — then runs
/// `reload` (when granted).
///
/// Errors: a write error (after restoring what was written), `command-failed` with
/// the command's output, or the host's `denied`/`io` errors.
pub fn deploy(to_write: &[File]) -> Result<DeployResult, ConnectorError> {
    let mut written: Vec<String> = Vec::new();
    for file in to_write {
        if let Err(e) = files::write(&file.path, file.contents.as_bytes(), file.mode) {
            let note = rollback(&written);
            return Err(error(e.kind, format!("{}{note}", e.message)));
        }
        written.push(file.path.clone());
    }
    let mut steps = vec![format!("wrote {} file(s)", written.len())];
    let mut commands_run = Vec::new();

    if commands::is_granted("validate") {
        let output = match commands::run("validate") {
            Ok(output) => output,
            Err(e) => {
                let note = rollback(&written);
                return Err(error(e.kind, format!("{}{note}", e.message)));
            }
        };
        commands_run.push("validate".to_string());
        if output.status != 0 {
            let note = rollback(&written);
            return Err(error(
                ErrorKind::CommandFailed,
                format!(
                    "validation failed (exit status {}){note}; reload skipped. Output: {}",
                    output.status,
                    output_text(&output)
                ),
            ));
        }
        steps.push("validated".into());
    } else {
        steps.push("validate not granted, skipped".into());
    }

    if commands::is_granted("reload") {
        let output = commands::run("reload")?;
        commands_run.push("reload".to_string());
        if output.status != 0 {
            return Err(error(
                ErrorKind::CommandFailed,
                format!(
                    "reload failed (exit status {}) after the new files were written{}; \
                     they stay in place. Output: {}",
                    output.status,
                    if commands_run.iter().any(|c| c == "validate") {
                        " and validated"
                    } else {
                        ""
                    },
                    output_text(&output)
                ),
            ));
        }
        steps.push("reloaded".into());
    } else {
        steps.push("reload not granted, skipped".into());
    }

    Ok(DeployResult {
        message: steps.join("; "),
        files_written: written,
        commands_run,
    })
}

/// Restores `written` in reverse order; returns a note for the error message.
fn rollback(written: &[String]) -> String {
    if written.is_empty() {
        return String::new();
    }
    let failures: Vec<String> = written
        .iter()
        .rev()
        .filter_map(|path| {
            files::restore(path)
                .err()
                .map(|e| format!("{path}: {}", e.message))
        })
        .collect();
    if failures.is_empty() {
        format!("; previous files restored ({})", written.join(", "))
    } else {
        format!("; restoring failed for {}", failures.join("; "))
    }
}

fn output_text(output: &commands::CommandOutput) -> String {
    let text = format!("{}\n{}", output.stderr.trim(), output.stdout.trim());
    let text = text.trim();
    if text.is_empty() {
        "(none)".into()
    } else {
        text.to_string()
    }
}

/// Whether the file at `path` holds the certificate `certificate_pem`.
pub fn file_holds_certificate(
    path: &str,
    certificate_pem: &str,
) -> Result<ValidationResult, ConnectorError> {
    let contents = files::read(path)?;
    let contents = String::from_utf8_lossy(&contents);
    let squash = |s: &str| s.split_whitespace().collect::<String>();
    let expected = squash(certificate_pem);
    if expected.is_empty() {
        return Err(error(
            ErrorKind::InvalidRequest,
            "no expected certificate given",
        ));
    }
    Ok(if squash(&contents).contains(&expected) {
        ValidationResult {
            valid: true,
            message: format!("{path} holds the certificate"),
        }
    } else {
        ValidationResult {
            valid: false,
            message: format!("{path} does not hold the expected certificate"),
        }
    })
}

/// Separate certificate / chain / key files, the layout of NGINX, Apache httpd and
/// the mail servers: with `chain_path` the chain gets its own file and the
/// certificate file holds the leaf alone; without it the certificate file holds
/// the full chain (leaf first).
pub fn separate_files(
    request: &DeployRequest,
    cert_path: &str,
    chain_path: Option<&str>,
    key_path: &str,
) -> Vec<File> {
    let mut out = Vec::new();
    match chain_path {
        Some(chain_path) => {
            out.push(File::certificate(
                cert_path,
                concat_pem(&[&request.certificate_pem]),
            ));
            out.push(File::certificate(
                chain_path,
                concat_pem(&[&request.chain_pem]),
            ));
        }
        None => out.push(File::certificate(
            cert_path,
            concat_pem(&[&request.certificate_pem, &request.chain_pem]),
        )),
    }
    out.push(File::private_key(
        key_path,
        concat_pem(&[&request.private_key_pem]),
    ));
    out
}

/// Configuration of a [`SeparateFiles`] target: absolute paths of the certificate
/// and key files, and optionally of a separate chain file.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeparateFilesConfig {
    /// Where the certificate (with the chain, unless `chain_path` is set) goes.
    pub cert_path: String,
    /// Where the private key goes.
    pub key_path: String,
    /// Where the chain goes, if it gets its own file.
    #[serde(default)]
    pub chain_path: Option<String>,
}

impl SeparateFilesConfig {
    /// Parses `json` strictly and checks that every path is absolute.
    pub fn parse(json: &str) -> Result<Self, ConnectorError> {
        let config: Self = parse_config(json)?;
        require_absolute("cert_path", &config.cert_path)?;
        require_absolute("key_path", &config.key_path)?;
        if let Some(chain) = &config.chain_path {
            require_absolute("chain_path", chain)?;
        }
        Ok(config)
    }
}

/// A whole target connector for servers that read separate certificate / chain /
/// key files ([`separate_files`]) configured by [`SeparateFilesConfig`], such as
/// NGINX and Apache httpd. Export it with `export_target!(SeparateFiles)`.
pub struct SeparateFiles;

impl Guest for SeparateFiles {
    fn validate_config(config_json: String) -> Result<(), ConnectorError> {
        SeparateFilesConfig::parse(&config_json).map(drop)
    }

    fn deploy(request: DeployRequest) -> Result<DeployResult, ConnectorError> {
        let config = SeparateFilesConfig::parse(&request.config_json)?;
        check_request(&request)?;
        deploy(&separate_files(
            &request,
            &config.cert_path,
            config.chain_path.as_deref(),
            &config.key_path,
        ))
    }

    fn validate_deployment(request: ValidationRequest) -> Result<ValidationResult, ConnectorError> {
        let config = SeparateFilesConfig::parse(&request.config_json)?;
        file_holds_certificate(&config.cert_path, &request.certificate_pem)
    }
}
