//! Operator-only ACME settings: the executables the server runs for DNS challenges (DNS
//! hooks), the addresses its HTTP-01 responder listens on, and the CA bundles it trusts
//! for private ACME servers. An issuer's `config` (set through the API) only names them
//! (`dns_hook`, `http01_listener`, `ca_bundle`); what they are is configured by whoever
//! runs the server, in a TOML file named by `CERTCTL_ACME_HOOKS`, the way plugin command
//! grants come from `CERTCTL_PLUGIN_GRANTS`:
//!
//! ```toml
//! [dns_hooks.cloudflare]
//! present = "/usr/local/libexec/certctl/cloudflare-present"   # absolute, executable
//! cleanup = "/usr/local/libexec/certctl/cloudflare-cleanup"   # optional (DNS-01 only)
//! env = { CF_API_TOKEN_FILE = "/etc/certctl/cloudflare.token" } # optional extra variables
//!
//! [http01_listeners]
//! default = "0.0.0.0:80"
//! internal = "127.0.0.1:8402"
//!
//! [ca_bundles]
//! step-ca = "/etc/certctl/step-ca-root.pem"
//! ```
//!
//! The reference implementation's variables still work, as the entries named `default`
//! (used when an issuer config names none): `CERTCTL_ACME_DNS_PRESENT_SCRIPT` and
//! `CERTCTL_ACME_DNS_CLEANUP_SCRIPT` (the `default` DNS hook), `CERTCTL_ACME_HTTP01_LISTEN`
//! (the `default` listener; without it `0.0.0.0:80`), `CERTCTL_ACME_CA_BUNDLE` (the
//! `default` CA bundle). Defining a `default` both ways is an error. Everything is checked
//! when the server starts (hooks must be absolute paths of executable files, listeners
//! `address:port`, bundles PEM files with at least one certificate).
//!
//! A hook runs without a shell, with a cleared environment: `PATH` set to
//! [`HOOK_PATH`], the record's `CERTCTL_DNS_DOMAIN`, `CERTCTL_DNS_FQDN`, `CERTCTL_DNS_VALUE`
//! and `CERTCTL_DNS_TOKEN`, and the hook's own `env` table; nothing of the server's
//! environment (admin key, database URL, SMTP password) reaches it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use serde::Deserialize;

/// The `PATH` a DNS hook runs with.
pub const HOOK_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The listener used when the operator configures none named `default`.
const BUILTIN_LISTENER: &str = "0.0.0.0:80";

/// Why the operator's ACME settings are unusable (stops the server at start).
#[derive(Debug, thiserror::Error)]
#[error("ACME operator settings ({source_name}): {message}")]
pub struct OperatorSettingsError {
    /// The file or variable at fault.
    pub source_name: String,
    /// What is wrong.
    pub message: String,
}

/// One DNS hook: the executables that publish and remove a TXT record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsHook {
    /// The hook's name, as issuer configs reference it.
    pub name: String,
    /// Publishes the record.
    pub present: PathBuf,
    /// Removes it (DNS-01 only).
    pub cleanup: Option<PathBuf>,
    /// Extra environment variables the operator gives the hook (credentials, usually).
    pub env: BTreeMap<String, String>,
}

/// A named CA bundle: the certificates trusted for an ACME server's TLS.
#[derive(Debug, Clone)]
pub struct CaBundle {
    /// The bundle's name, as issuer configs reference it.
    pub name: String,
    /// The file it was read from.
    pub path: PathBuf,
    /// Its certificates (at least one).
    pub certificates: Arc<Vec<CertificateDer<'static>>>,
}

/// Everything the operator configured, by name.
#[derive(Debug, Clone, Default)]
pub struct OperatorSettings {
    dns_hooks: BTreeMap<String, DnsHook>,
    http01_listeners: BTreeMap<String, SocketAddr>,
    ca_bundles: BTreeMap<String, CaBundle>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    dns_hooks: BTreeMap<String, FileHook>,
    #[serde(default)]
    http01_listeners: BTreeMap<String, String>,
    #[serde(default)]
    ca_bundles: BTreeMap<String, PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileHook {
    present: PathBuf,
    cleanup: Option<PathBuf>,
    #[serde(default)]
    env: BTreeMap<String, String>,
}

fn check_executable(what: &str, path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    if !path.is_absolute() {
        return Err(format!(
            "{what} `{}` must be an absolute path",
            path.display()
        ));
    }
    let meta = std::fs::metadata(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(format!(
            "{what} {} is not an executable file",
            path.display()
        ));
    }
    Ok(())
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

fn read_bundle(name: &str, path: &Path) -> Result<CaBundle, String> {
    let pem = std::fs::read(path).map_err(|e| format!("CA bundle {}: {e}", path.display()))?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("CA bundle {}: not a PEM file: {e}", path.display()))?;
    if certificates.is_empty() {
        return Err(format!(
            "CA bundle {} holds no PEM CERTIFICATE",
            path.display()
        ));
    }
    Ok(CaBundle {
        name: name.to_owned(),
        path: path.to_path_buf(),
        certificates: Arc::new(certificates),
    })
}

impl OperatorSettings {
    /// No file and no variables: only the built-in `default` HTTP-01 listener
    /// (`0.0.0.0:80`).
    pub fn builtin() -> Self {
        let mut s = Self::default();
        if let Ok(addr) = BUILTIN_LISTENER.parse() {
            s.http01_listeners.insert("default".into(), addr);
        }
        s
    }

    /// Reads the file (if any) and the reference implementation's variables through
    /// `lookup` (the process environment in production), checking every entry.
    pub fn load(
        file: Option<&Path>,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, OperatorSettingsError> {
        let parsed = match file {
            Some(path) => {
                let fail = |message: String| OperatorSettingsError {
                    source_name: format!("CERTCTL_ACME_HOOKS={}", path.display()),
                    message,
                };
                let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
                let parsed: File = toml::from_str(&text).map_err(|e| {
                    let location = e.to_string().lines().next().unwrap_or_default().to_owned();
                    fail(format!("{location}: {}", e.message()))
                })?;
                Self::from_file(parsed).map_err(fail)?
            }
            None => Self::default(),
        };
        parsed.with_reference_variables(lookup)
    }

    fn from_file(file: File) -> Result<Self, String> {
        let mut out = Self::default();
        for (name, hook) in file.dns_hooks {
            if !valid_name(&name) {
                return Err(format!(
                    "dns_hooks.{name}: not a name (letters, digits, - _ .)"
                ));
            }
            check_executable(&format!("dns_hooks.{name}.present"), &hook.present)?;
            if let Some(cleanup) = &hook.cleanup {
                check_executable(&format!("dns_hooks.{name}.cleanup"), cleanup)?;
            }
            out.dns_hooks.insert(
                name.clone(),
                DnsHook {
                    name,
                    present: hook.present,
                    cleanup: hook.cleanup,
                    env: hook.env,
                },
            );
        }
        for (name, listen) in file.http01_listeners {
            if !valid_name(&name) {
                return Err(format!("http01_listeners.{name}: not a name"));
            }
            let addr = listen.parse().map_err(|_| {
                format!("http01_listeners.{name}: `{listen}` is not an address:port")
            })?;
            out.http01_listeners.insert(name, addr);
        }
        for (name, path) in file.ca_bundles {
            if !valid_name(&name) {
                return Err(format!("ca_bundles.{name}: not a name"));
            }
            let bundle =
                read_bundle(&name, &path).map_err(|e| format!("ca_bundles.{name}: {e}"))?;
            out.ca_bundles.insert(name, bundle);
        }
        Ok(out)
    }

    fn with_reference_variables(
        mut self,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, OperatorSettingsError> {
        let get = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        let fail = |variable: &str, message: String| OperatorSettingsError {
            source_name: variable.to_owned(),
            message,
        };
        let twice = |variable: &str, table: &str| {
            fail(
                variable,
                format!("defines the `default` {table} entry that CERTCTL_ACME_HOOKS defines too"),
            )
        };
        const PRESENT: &str = "CERTCTL_ACME_DNS_PRESENT_SCRIPT";
        const CLEANUP: &str = "CERTCTL_ACME_DNS_CLEANUP_SCRIPT";
        match (get(PRESENT), get(CLEANUP)) {
            (None, None) => {}
            (None, Some(_)) => return Err(fail(CLEANUP, format!("needs {PRESENT} too"))),
            (Some(present), cleanup) => {
                if self.dns_hooks.contains_key("default") {
                    return Err(twice(PRESENT, "dns_hooks"));
                }
                let present = PathBuf::from(present);
                check_executable("the present script", &present).map_err(|e| fail(PRESENT, e))?;
                let cleanup = cleanup.map(PathBuf::from);
                if let Some(c) = &cleanup {
                    check_executable("the cleanup script", c).map_err(|e| fail(CLEANUP, e))?;
                }
                self.dns_hooks.insert(
                    "default".into(),
                    DnsHook {
                        name: "default".into(),
                        present,
                        cleanup,
                        env: BTreeMap::new(),
                    },
                );
            }
        }
        const LISTEN: &str = "CERTCTL_ACME_HTTP01_LISTEN";
        match get(LISTEN) {
            Some(_) if self.http01_listeners.contains_key("default") => {
                return Err(twice(LISTEN, "http01_listeners"));
            }
            Some(listen) => {
                let addr = listen
                    .parse()
                    .map_err(|_| fail(LISTEN, format!("`{listen}` is not an address:port")))?;
                self.http01_listeners.insert("default".into(), addr);
            }
            None => {
                if !self.http01_listeners.contains_key("default")
                    && let Some(addr) = Self::builtin().http01_listeners.remove("default")
                {
                    self.http01_listeners.insert("default".into(), addr);
                }
            }
        }
        const BUNDLE: &str = "CERTCTL_ACME_CA_BUNDLE";
        if let Some(path) = get(BUNDLE) {
            if self.ca_bundles.contains_key("default") {
                return Err(twice(BUNDLE, "ca_bundles"));
            }
            let bundle = read_bundle("default", Path::new(&path)).map_err(|e| fail(BUNDLE, e))?;
            self.ca_bundles.insert("default".into(), bundle);
        }
        Ok(self)
    }

    /// The DNS hook `name`, or why not (with the names that exist).
    pub fn dns_hook(&self, name: &str) -> Result<&DnsHook, String> {
        self.dns_hooks
            .get(name)
            .ok_or_else(|| not_configured("DNS hook", name, self.dns_hooks.keys()))
    }

    /// The HTTP-01 listener `name`, or why not.
    pub fn http01_listener(&self, name: &str) -> Result<SocketAddr, String> {
        self.http01_listeners
            .get(name)
            .copied()
            .ok_or_else(|| not_configured("HTTP-01 listener", name, self.http01_listeners.keys()))
    }

    /// The CA bundle `name`, or why not.
    pub fn ca_bundle(&self, name: &str) -> Result<&CaBundle, String> {
        self.ca_bundles
            .get(name)
            .ok_or_else(|| not_configured("CA bundle", name, self.ca_bundles.keys()))
    }

    /// Adds (or replaces) a DNS hook, for programmatic setups and tests (unchecked: the
    /// file and variables are checked by [`OperatorSettings::load`]).
    pub fn with_dns_hook(mut self, hook: DnsHook) -> Self {
        self.dns_hooks.insert(hook.name.clone(), hook);
        self
    }

    /// Adds (or replaces) an HTTP-01 listener, for programmatic setups and tests.
    pub fn with_http01_listener(mut self, name: &str, addr: SocketAddr) -> Self {
        self.http01_listeners.insert(name.to_owned(), addr);
        self
    }

    /// Adds (or replaces) a CA bundle read from `path`, for programmatic setups and tests.
    pub fn with_ca_bundle(
        mut self,
        name: &str,
        path: &Path,
    ) -> Result<Self, OperatorSettingsError> {
        let bundle = read_bundle(name, path).map_err(|message| OperatorSettingsError {
            source_name: format!("ca bundle {name}"),
            message,
        })?;
        self.ca_bundles.insert(name.to_owned(), bundle);
        Ok(self)
    }

    /// Whether a DNS hook named `default` exists.
    pub(super) fn has_default_dns_hook(&self) -> bool {
        self.dns_hooks.contains_key("default")
    }

    /// Whether a CA bundle named `default` exists.
    pub(super) fn has_default_ca_bundle(&self) -> bool {
        self.ca_bundles.contains_key("default")
    }

    /// A summary for the startup log (names only).
    pub fn describe(&self) -> String {
        let names = |keys: Vec<&String>| {
            if keys.is_empty() {
                "none".to_owned()
            } else {
                keys.iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        format!(
            "DNS hooks: {}; HTTP-01 listeners: {}; CA bundles: {}",
            names(self.dns_hooks.keys().collect()),
            names(self.http01_listeners.keys().collect()),
            names(self.ca_bundles.keys().collect()),
        )
    }
}

fn not_configured<'a>(
    what: &str,
    name: &str,
    existing: impl Iterator<Item = &'a String>,
) -> String {
    let existing: Vec<&str> = existing.map(String::as_str).collect();
    format!(
        "no {what} named \"{name}\" is configured by the operator (CERTCTL_ACME_HOOKS); configured: {}",
        if existing.is_empty() {
            "none".to_owned()
        } else {
            existing.join(", ")
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn executable(dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, "#!/bin/sh\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    fn load(dir: &Path, text: &str, vars: &[(&str, &str)]) -> Result<OperatorSettings, String> {
        let file = dir.join("acme.toml");
        std::fs::write(&file, text).expect("write");
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        OperatorSettings::load(Some(&file), &|k| {
            vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
        .map_err(|e| e.to_string())
    }

    #[test]
    fn the_file_and_the_reference_variables_define_named_entries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let present = executable(d, "present");
        let cleanup = executable(d, "cleanup");
        let legacy = executable(d, "legacy");
        let ca = d.join("ca.pem");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["ca.test".into()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        std::fs::write(&ca, cert.pem()).expect("write");
        let s = load(
            d,
            &format!(
                "[dns_hooks.cf]\npresent = {present:?}\ncleanup = {cleanup:?}\nenv = {{ TOKEN_FILE = \"/t\" }}\n\
                 [http01_listeners]\ninternal = \"127.0.0.1:8402\"\n[ca_bundles]\nstep = {ca:?}\n"
            ),
            &[("CERTCTL_ACME_DNS_PRESENT_SCRIPT", legacy.to_str().expect("utf-8"))],
        )
        .expect("valid");
        let cf = s.dns_hook("cf").expect("cf");
        assert_eq!(cf.present, present);
        assert_eq!(cf.cleanup.as_deref(), Some(cleanup.as_path()));
        assert_eq!(cf.env["TOKEN_FILE"], "/t");
        assert_eq!(s.dns_hook("default").expect("default").present, legacy);
        assert_eq!(
            s.http01_listener("internal").expect("internal").to_string(),
            "127.0.0.1:8402"
        );
        assert_eq!(
            s.http01_listener("default").expect("built in").to_string(),
            "0.0.0.0:80"
        );
        assert_eq!(s.ca_bundle("step").expect("step").certificates.len(), 1);
        let err = s.dns_hook("other").unwrap_err();
        assert!(
            err.contains("\"other\"") && err.contains("cf, default"),
            "{err}"
        );
    }

    #[test]
    fn unusable_entries_stop_the_server_with_the_entry_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let plain = d.join("plain");
        std::fs::write(&plain, "x").expect("write");
        for (text, vars, expected) in [
            (
                "[dns_hooks.x]\npresent = \"relative\"\n",
                vec![],
                "must be an absolute path",
            ),
            (
                &*format!("[dns_hooks.x]\npresent = {plain:?}\n"),
                vec![],
                "dns_hooks.x.present",
            ),
            (
                "[http01_listeners]\nx = \"nope\"\n",
                vec![],
                "not an address:port",
            ),
            (
                "[ca_bundles]\nx = \"/nonexistent.pem\"\n",
                vec![],
                "ca_bundles.x",
            ),
            ("[dns_hook.x]\n", vec![], "unknown field"),
            (
                "[http01_listeners]\ndefault = \"127.0.0.1:1\"\n",
                vec![("CERTCTL_ACME_HTTP01_LISTEN", "127.0.0.1:2")],
                "CERTCTL_ACME_HTTP01_LISTEN",
            ),
            (
                "",
                vec![("CERTCTL_ACME_DNS_CLEANUP_SCRIPT", "/bin/true")],
                "needs",
            ),
        ] {
            let err = load(d, text, &vars).expect_err(text);
            assert!(err.contains(expected), "{text}: {err}");
        }
    }
}
