//! Operator grants and the effective capabilities of a plugin.
//!
//! Effective rights = what the manifest requests ∩ what the operator grants; an
//! empty list on either side denies everything. Grants come from a TOML file the
//! operator writes (conventionally named by `CERTCTL_PLUGIN_GRANTS`):
//!
//! ```toml
//! [plugins.nginx]
//! directories = ["/etc/nginx/certs"]
//! hosts = []          # outbound HTTP, and SMTP servers (`host:port`) for e-mail
//! [plugins.nginx.commands]
//! validate = ["nginx", "-t"]
//! reload = ["nginx", "-s", "reload"]
//! ```
//!
//! `hosts` entries are outbound-guard grants ([`crate::outbound::Grant`]):
//! `hooks.slack.com` (https on 443), `localhost:2019`, `*.example.com`, `http://127.0.0.1:8080`
//! (plain http), `10.0.0.0/8` (a range), `host:*` (any port). Loopback, private and
//! metadata addresses are reached only through a grant naming the host, the address or
//! its range; `*` and `*.domain` never open them.
//!
//! The checks applied at call time (path canonicalisation, the outbound guard) live in
//! `files.rs`, `http.rs` and `smtp.rs`.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::RuntimeError;
use super::manifest::{RequestedCapabilities, is_valid_id, one_line};

/// Everything the operator granted, per plugin id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// Grants by plugin id.
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginGrant>,
}

/// What the operator grants one plugin.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginGrant {
    /// Directories the `files` interface may write and read under (absolute).
    #[serde(default)]
    pub directories: Vec<PathBuf>,
    /// Outbound grants (HTTP and SMTP): `host`, `host:port`, `*.domain`, `http://host:port`,
    /// an address or a CIDR range (see the module documentation).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Command name → argument vector, executed without a shell.
    #[serde(default)]
    pub commands: BTreeMap<String, Vec<String>>,
}

/// The rights a plugin actually has: its requests intersected with its grants.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EffectiveCapabilities {
    /// Directory roots (absolute, lexically normalised; resolved at each use).
    pub directories: Vec<PathBuf>,
    /// Outbound HTTP authorities.
    pub hosts: Vec<String>,
    /// Command name → argument vector.
    pub commands: BTreeMap<String, Vec<String>>,
    /// Whether the `smtp` interface is usable (requested by the manifest and the
    /// plugin has a grant); the SMTP server must still match `hosts`.
    pub smtp: bool,
}

impl Grants {
    /// Reads a grants file.
    pub fn load(path: &Path) -> Result<Self, RuntimeError> {
        let text = std::fs::read_to_string(path).map_err(|source| RuntimeError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Reads the file named by `CERTCTL_PLUGIN_GRANTS`; no variable means no grants.
    pub fn from_env() -> Result<Self, RuntimeError> {
        match std::env::var_os("CERTCTL_PLUGIN_GRANTS") {
            Some(path) if !path.is_empty() => Self::load(Path::new(&path)),
            _ => Ok(Self::default()),
        }
    }

    /// Parses grants text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, RuntimeError> {
        let malformed = |message: String| RuntimeError::MalformedGrants {
            path: path.to_path_buf(),
            message,
        };
        let grants: Grants = toml::from_str(text).map_err(|e| malformed(one_line(&e)))?;
        for (id, grant) in &grants.plugins {
            for host in &grant.hosts {
                host.parse::<crate::outbound::Grant>()
                    .map_err(|e| malformed(format!("plugins.{id}.hosts: {e}")))?;
            }
            for dir in &grant.directories {
                if !dir.is_absolute() {
                    return Err(malformed(format!(
                        "plugins.{id}.directories: `{}` must be absolute",
                        dir.display()
                    )));
                }
            }
            for (name, argv) in &grant.commands {
                if !is_valid_id(name) {
                    return Err(malformed(format!(
                        "plugins.{id}.commands: `{name}` is not a command name"
                    )));
                }
                if argv.first().is_none_or(|program| program.is_empty()) {
                    return Err(malformed(format!(
                        "plugins.{id}.commands.{name} must be a non-empty argument vector \
                         like [\"nginx\", \"-t\"]"
                    )));
                }
            }
        }
        Ok(grants)
    }

    /// Adds or replaces the grant of one plugin (for programmatic setups and tests).
    pub fn with_plugin(mut self, id: impl Into<String>, grant: PluginGrant) -> Self {
        self.plugins.insert(id.into(), grant);
        self
    }

    /// The effective capabilities of plugin `id` requesting `requested`.
    pub fn effective(&self, id: &str, requested: &RequestedCapabilities) -> EffectiveCapabilities {
        let Some(grant) = self.plugins.get(id) else {
            return EffectiveCapabilities::default();
        };
        let mut directories = Vec::new();
        for granted in &grant.directories {
            let granted = normalize(granted);
            for request in &requested.directories {
                let narrower = if request == "*" {
                    Some(granted.clone())
                } else {
                    let request = normalize(Path::new(request));
                    if granted.starts_with(&request) {
                        Some(granted.clone())
                    } else if request.starts_with(&granted) {
                        Some(request)
                    } else {
                        None
                    }
                };
                if let Some(dir) = narrower
                    && !directories.contains(&dir)
                {
                    directories.push(dir);
                }
            }
        }
        let hosts = grant
            .hosts
            .iter()
            .filter(|granted| {
                requested
                    .hosts
                    .iter()
                    .any(|r| host_pattern_covers(r, granted))
            })
            .cloned()
            .collect();
        let commands = grant
            .commands
            .iter()
            .filter(|(name, _)| requested.commands.contains(name))
            .map(|(name, argv)| (name.clone(), argv.clone()))
            .collect();
        EffectiveCapabilities {
            directories,
            hosts,
            commands,
            smtp: requested.smtp,
        }
    }
}

/// Removes `.` components and resolves `..` lexically (granted paths are written by
/// the operator; symbolic links are resolved at each use).
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Whether a requested host pattern covers a granted one (its `http://` or `https://`
/// prefix aside). `*` covers everything, `*.example.com` covers `*.example.com`,
/// `a.example.com` and `a.b.example.com`; otherwise the two must be equal.
fn host_pattern_covers(request: &str, granted: &str) -> bool {
    let request = request.to_ascii_lowercase();
    let granted = granted.to_ascii_lowercase();
    let granted = granted
        .split_once("://")
        .map_or(granted.as_str(), |(_, rest)| rest)
        .trim_end_matches('/')
        .to_owned();
    if request == "*" || request == granted {
        return true;
    }
    match request.strip_prefix("*.") {
        Some(domain) => {
            let granted = granted.strip_prefix("*.").unwrap_or(&granted);
            granted.ends_with(&format!(".{domain}"))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requested(dirs: &[&str], commands: &[&str], hosts: &[&str]) -> RequestedCapabilities {
        RequestedCapabilities {
            directories: dirs.iter().map(|s| s.to_string()).collect(),
            commands: commands.iter().map(|s| s.to_string()).collect(),
            hosts: hosts.iter().map(|s| s.to_string()).collect(),
            smtp: false,
        }
    }

    fn grants() -> Grants {
        Grants::parse(
            r#"
[plugins.nginx]
directories = ["/etc/nginx/certs", "/srv/tls/../tls2"]
hosts = ["hooks.slack.com", "localhost:2019"]
[plugins.nginx.commands]
validate = ["nginx", "-t"]
reload = ["nginx", "-s", "reload"]
restart = ["systemctl", "restart", "nginx"]
"#,
            Path::new("/etc/certctl/grants.toml"),
        )
        .expect("parses")
    }

    #[test]
    fn effective_rights_are_the_intersection() {
        let eff = grants().effective(
            "nginx",
            &requested(
                &["/etc/nginx"],
                &["validate", "reload", "stop"],
                &["*.slack.com"],
            ),
        );
        assert_eq!(eff.directories, [PathBuf::from("/etc/nginx/certs")]);
        assert_eq!(
            eff.commands.keys().collect::<Vec<_>>(),
            ["reload", "validate"]
        );
        assert_eq!(eff.hosts, ["hooks.slack.com"]);
    }

    #[test]
    fn a_narrower_request_narrows_the_grant() {
        let eff = grants().effective("nginx", &requested(&["/etc/nginx/certs/site"], &[], &[]));
        assert_eq!(eff.directories, [PathBuf::from("/etc/nginx/certs/site")]);
    }

    #[test]
    fn a_wildcard_request_takes_what_the_operator_granted() {
        let eff = grants().effective("nginx", &requested(&["*"], &[], &["*"]));
        assert_eq!(
            eff.directories,
            [
                PathBuf::from("/etc/nginx/certs"),
                PathBuf::from("/srv/tls2")
            ]
        );
        assert_eq!(eff.hosts, ["hooks.slack.com", "localhost:2019"]);
    }

    #[test]
    fn empty_lists_deny_everything() {
        assert_eq!(
            grants().effective("nginx", &RequestedCapabilities::default()),
            EffectiveCapabilities::default()
        );
        assert_eq!(
            Grants::default().effective("nginx", &requested(&["*"], &["reload"], &["*"])),
            EffectiveCapabilities::default()
        );
    }

    #[test]
    fn grant_files_are_checked() {
        let err =
            Grants::parse("[plugins.x.commands]\nreload = []\n", Path::new("/g.toml")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed grants file /g.toml: plugins.x.commands.reload must be a non-empty \
             argument vector like [\"nginx\", \"-t\"]"
        );
        let err = Grants::parse(
            "[plugins.x]\ndirectories = [\"certs\"]\n",
            Path::new("/g.toml"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("`certs` must be absolute"));
        let err = Grants::parse("[plugins.x]\ncommand = 1\n", Path::new("/g.toml")).unwrap_err();
        assert!(err.to_string().contains("unknown field `command`"), "{err}");
    }

    #[test]
    fn host_matching() {
        assert!(host_pattern_covers("*.slack.com", "hooks.slack.com"));
        assert!(!host_pattern_covers("*.slack.com", "slack.com.evil"));
        assert!(host_pattern_covers(
            "localhost:2019",
            "http://localhost:2019"
        ));
        assert!(!host_pattern_covers(
            "localhost:2019",
            "http://localhost:2020"
        ));
    }

    #[test]
    fn host_grants_are_checked() {
        let err = Grants::parse(
            "[plugins.x]\nhosts = [\"ftp://files.example\"]\n",
            Path::new("/g.toml"),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed grants file /g.toml: plugins.x.hosts: outbound grant `ftp://files.example`: \
             only http:// and https:// may prefix a grant"
        );
        Grants::parse(
            "[plugins.x]\nhosts = [\"http://127.0.0.1:8080\", \"10.0.0.0/8\", \"a.example:*\"]\n",
            Path::new("/g.toml"),
        )
        .expect("valid grants");
    }
}
