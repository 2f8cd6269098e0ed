//! `plugin.toml`: what a plugin says about itself.
//!
//! The manifest is read and checked before anything is compiled, so a plugin built
//! against a WIT version this host does not implement is refused with a clear
//! message instead of a linker error. Grants (what the operator allows) live in
//! `grants.rs`, not here.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::RuntimeError;

/// The WIT versions (major, minor) this host implements; any patch release of these
/// is accepted, since patch releases only add documentation.
const SUPPORTED_WIT: &[(u64, u64)] = &[(0, 1)];

/// The WIT versions this host implements, for messages and the plugins API.
pub const SUPPORTED_WIT_VERSIONS: &str = "0.1.x";

/// What a plugin does, which decides the WIT world it must implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    /// Issues certificates (world `issuer`), runs on the server.
    Issuer,
    /// Deploys certificates (world `target`), runs on the agent.
    Target,
    /// Delivers notifications (world `notifier`), runs on the server.
    Notifier,
}

impl PluginKind {
    /// The lower-case name, which is also the WIT world's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issuer => "issuer",
            Self::Target => "target",
            Self::Notifier => "notifier",
        }
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The capabilities a manifest requests. The operator's grants decide what it gets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestedCapabilities {
    /// Outbound HTTP authorities (`host`, `host:port`, `*.domain`, or `*` for
    /// "whatever the operator grants").
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Directory roots for the `files` interface (absolute, or `*` for "whatever the
    /// operator grants"; targets only).
    #[serde(default)]
    pub directories: Vec<String>,
    /// Names of commands the plugin runs through the `commands` interface
    /// (e.g. `validate`, `reload`; targets only). The operator's grant supplies
    /// the argument vector.
    #[serde(default)]
    pub commands: Vec<String>,
    /// Whether the plugin sends e-mail through the host's `smtp` interface
    /// (notifiers only); the server's `host:port` must be granted in `hosts`.
    #[serde(default)]
    pub smtp: bool,
}

/// A parsed and checked `plugin.toml`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Manifest {
    /// Unique id (`[a-z0-9][a-z0-9_-]*`, at most 64 characters), e.g. `nginx`.
    pub id: String,
    /// Which world the component implements.
    pub kind: PluginKind,
    /// The plugin's own version.
    pub version: String,
    /// The `certctl:connector` WIT version it was built against, e.g. `0.1.0`.
    pub wit: String,
    /// One sentence for the dashboard.
    pub description: String,
    /// JSON Schema of the plugin's `config-json`, for forms.
    pub config_schema: serde_json::Value,
    /// What it asks for.
    pub capabilities: RequestedCapabilities,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    id: String,
    kind: PluginKind,
    version: String,
    wit: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    config_schema: Option<RawSchema>,
    #[serde(default)]
    capabilities: RequestedCapabilities,
}

/// `config_schema` may be written as a TOML table or as a JSON string.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawSchema {
    Json(String),
    Table(toml::Table),
}

impl Manifest {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self, RuntimeError> {
        let text = std::fs::read_to_string(path).map_err(|source| RuntimeError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and checks manifest text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, RuntimeError> {
        let malformed = |message: String| RuntimeError::MalformedManifest {
            path: path.to_path_buf(),
            message,
        };
        let raw: RawManifest = toml::from_str(text).map_err(|e| malformed(one_line(&e)))?;

        if !is_valid_id(&raw.id) {
            return Err(malformed(format!(
                "id `{}` must match [a-z0-9][a-z0-9_-]* and be at most 64 characters",
                raw.id
            )));
        }
        if raw.version.trim().is_empty() {
            return Err(malformed("version must not be empty".into()));
        }
        let Some((major, minor)) = parse_semver(&raw.wit) else {
            return Err(malformed(format!(
                "wit `{}` is not a version like \"0.1.0\"",
                raw.wit
            )));
        };
        let config_schema = match raw.config_schema {
            None => serde_json::json!({ "type": "object" }),
            Some(RawSchema::Table(table)) => {
                serde_json::to_value(table).map_err(|e| malformed(format!("config_schema: {e}")))?
            }
            Some(RawSchema::Json(text)) => serde_json::from_str(&text)
                .map_err(|e| malformed(format!("config_schema is not valid JSON: {e}")))?,
        };
        if !config_schema.is_object() {
            return Err(malformed(
                "config_schema must be a JSON Schema object".into(),
            ));
        }
        let caps = &raw.capabilities;
        if raw.kind != PluginKind::Target {
            if !caps.directories.is_empty() {
                return Err(malformed(format!(
                    "capabilities.directories is only available to target plugins, not {}",
                    raw.kind
                )));
            }
            if !caps.commands.is_empty() {
                return Err(malformed(format!(
                    "capabilities.commands is only available to target plugins, not {}",
                    raw.kind
                )));
            }
        }
        if caps.smtp && raw.kind != PluginKind::Notifier {
            return Err(malformed(format!(
                "capabilities.smtp is only available to notifier plugins, not {}",
                raw.kind
            )));
        }
        for dir in &caps.directories {
            if dir != "*" && !Path::new(dir).is_absolute() {
                return Err(malformed(format!(
                    "capabilities.directories: `{dir}` must be an absolute path or \"*\""
                )));
            }
        }
        for name in &caps.commands {
            if !is_valid_id(name) {
                return Err(malformed(format!(
                    "capabilities.commands: `{name}` must be a name like \"reload\", not a command line"
                )));
            }
        }
        for host in &caps.hosts {
            if host.is_empty() || host.contains('/') || host.contains(char::is_whitespace) {
                return Err(malformed(format!(
                    "capabilities.hosts: `{host}` must be a host or host:port, not a URL"
                )));
            }
        }

        // Checked last among the fields but before any compilation, so the message
        // names the plugin.
        if !SUPPORTED_WIT.contains(&(major, minor)) {
            return Err(RuntimeError::UnsupportedWit {
                plugin: raw.id,
                found: raw.wit,
                supported: SUPPORTED_WIT_VERSIONS.to_string(),
            });
        }

        Ok(Self {
            id: raw.id,
            kind: raw.kind,
            version: raw.version,
            wit: raw.wit,
            description: raw.description,
            config_schema,
            capabilities: raw.capabilities,
        })
    }
}

/// Plugin ids and command names share one alphabet.
pub(crate) fn is_valid_id(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn parse_semver(s: &str) -> Option<(u64, u64)> {
    let mut parts = s.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let _patch: u64 = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((major, minor))
}

/// TOML errors print a multi-line excerpt; keep the first line and the caret
/// context flattened so the message fits an API field and a log line.
pub(crate) fn one_line(e: &toml::de::Error) -> String {
    let detail = e.message();
    match e.span() {
        Some(span) => {
            let text = e.to_string();
            // "TOML parse error at line L, column C" is the first line.
            let location = text
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("TOML parse error at "))
                .map(str::to_string)
                .unwrap_or_else(|| format!("bytes {}..{}", span.start, span.end));
            format!("{location}: {detail}")
        }
        None => detail.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, RuntimeError> {
        Manifest::parse(text, Path::new("/p/plugin.toml"))
    }

    const GOOD: &str = r#"
id = "nginx"
kind = "target"
version = "1.2.0"
wit = "0.1.0"
description = "NGINX"
[capabilities]
directories = ["*"]
commands = ["validate", "reload"]
[config_schema]
type = "object"
required = ["cert_path"]
"#;

    #[test]
    fn a_complete_manifest_parses() {
        let m = parse(GOOD).expect("parses");
        assert_eq!(m.id, "nginx");
        assert_eq!(m.kind, PluginKind::Target);
        assert_eq!(m.capabilities.commands, ["validate", "reload"]);
        assert_eq!(m.config_schema["required"][0], "cert_path");
    }

    #[test]
    fn config_schema_may_be_a_json_string() {
        let text = r#"
id = "hook"
kind = "notifier"
version = "0.1.0"
wit = "0.1.0"
config_schema = '{"type": "object", "required": ["url"]}'
"#;
        let m = parse(text).expect("parses");
        assert_eq!(
            m.config_schema,
            serde_json::json!({"type": "object", "required": ["url"]})
        );
    }

    #[test]
    fn an_unsupported_wit_version_is_refused_by_name() {
        let err = parse(&GOOD.replace("wit = \"0.1.0\"", "wit = \"0.2.0\"")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "plugin `nginx` was built against WIT certctl:connector@0.2.0, but this host \
             implements 0.1.x; rebuild it against a supported version"
        );
    }

    #[test]
    fn a_later_patch_release_is_accepted() {
        assert!(parse(&GOOD.replace("wit = \"0.1.0\"", "wit = \"0.1.7\"")).is_ok());
    }

    #[test]
    fn toml_errors_carry_the_path_and_the_position() {
        let err = parse("id = \"nginx\"\nkind = \"gateway\"\n").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("malformed manifest /p/plugin.toml: line 2, column 8: "),
            "{msg}"
        );
        assert!(msg.contains("unknown variant `gateway`"), "{msg}");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = parse(&format!("{GOOD}\n[extra]\n")).unwrap_err();
        assert!(err.to_string().contains("unknown field `extra`"), "{err}");
    }

    #[test]
    fn commands_are_names_not_command_lines() {
        let err = parse(&GOOD.replace("\"reload\"]", "\"systemctl reload nginx\"]")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed manifest /p/plugin.toml: capabilities.commands: `systemctl reload nginx` \
             must be a name like \"reload\", not a command line"
        );
    }

    #[test]
    fn only_notifiers_may_ask_for_smtp() {
        let text = "id = \"mail\"\nkind = \"target\"\nversion = \"0.1.0\"\nwit = \"0.1.0\"\n\
                    [capabilities]\nsmtp = true\n";
        let err = parse(text).unwrap_err();
        assert!(
            err.to_string()
                .contains("capabilities.smtp is only available to notifier plugins, not target"),
            "{err}"
        );
        let m = parse(&text.replace("\"target\"", "\"notifier\"")).expect("parses");
        assert!(m.capabilities.smtp);
    }

    #[test]
    fn notifiers_cannot_ask_for_directories() {
        let err = parse(&GOOD.replace("kind = \"target\"", "kind = \"notifier\"")).unwrap_err();
        assert!(
            err.to_string()
                .contains("only available to target plugins, not notifier")
        );
    }
}
