//! Shared helpers: where the built components are, plugin directories made of
//! them, grants, and a runtime with short limits.
//!
//! The components are built once by `plugins/build.sh` (wasm32-wasip2); see
//! [`certctl_testkit::plugins`] for `CERTCTL_PLUGIN_ARTIFACTS`.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use certctl_core::runtime::{
    Grants, PluginGrant, PluginRuntime, PluginSet, RuntimeConfig, TargetRequest,
};

pub(crate) use certctl_testkit::plugins::{artifacts, install, plugin_dir};

/// A runtime with a 2 s deadline and 32 MiB of memory, caching compiled
/// components under the target directory so each is compiled once per build.
pub(crate) fn runtime() -> PluginRuntime {
    runtime_with(|_| {})
}

/// [`runtime`] with changed settings.
pub(crate) fn runtime_with(change: impl FnOnce(&mut RuntimeConfig)) -> PluginRuntime {
    let mut config = RuntimeConfig {
        cache_dir: Some(artifacts().join("test-cache")),
        memory_limit_bytes: 32 * 1024 * 1024,
        call_timeout: Duration::from_secs(2),
        ..RuntimeConfig::default()
    };
    change(&mut config);
    PluginRuntime::new(config).expect("runtime")
}

/// Loads `plugins` with `grants`, asserting nothing failed.
pub(crate) fn load(rt: &PluginRuntime, plugins: &Path, grants: &Grants) -> PluginSet {
    let set = rt.load_dir(plugins, grants).expect("load_dir");
    let errors: Vec<String> = set.errors().map(|(_, e)| e.to_string()).collect();
    assert!(errors.is_empty(), "load errors: {errors:?}");
    set
}

/// A grant of `dirs` and `commands` (name → argv) to plugin `id`.
pub(crate) fn grant(id: &str, dirs: &[&Path], commands: &[(&str, Vec<String>)]) -> Grants {
    Grants::default().with_plugin(
        id,
        PluginGrant {
            directories: dirs.iter().map(|d| d.to_path_buf()).collect(),
            hosts: Vec::new(),
            commands: commands
                .iter()
                .map(|(name, argv)| (name.to_string(), argv.clone()))
                .collect::<BTreeMap<_, _>>(),
        },
    )
}

/// An argv.
pub(crate) fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// An executable script at `dir/name` running `body` with /bin/sh.
pub(crate) fn script(dir: &Path, name: &str, body: &str) -> Vec<String> {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    vec![path.to_string_lossy().into_owned()]
}

/// The permission bits of `path`.
pub(crate) fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

/// Reads `path` as text.
pub(crate) fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// A deployment of [`LEAF`]-like `leaf` with [`CHAIN`] and [`KEY`] for target `t-web`.
pub(crate) fn request(config: impl Borrow<serde_json::Value>, leaf: &str) -> TargetRequest {
    TargetRequest {
        certificate_pem: leaf.into(),
        chain_pem: CHAIN.into(),
        private_key_pem: KEY.into(),
        config_json: config.borrow().to_string(),
        target_id: "t-web".into(),
        certificate_id: "mc-web".into(),
    }
}

/// Test PEM blocks (only their framing matters to the plugins).
pub(crate) const LEAF: &str = "-----BEGIN CERTIFICATE-----\nTEVBRg==\n-----END CERTIFICATE-----\n";
/// An intermediate.
pub(crate) const CHAIN: &str = "-----BEGIN CERTIFICATE-----\nQ0hBSU4=\n-----END CERTIFICATE-----\n";
/// A key.
pub(crate) const KEY: &str = "-----BEGIN PRIVATE KEY-----\nS0VZ\n-----END PRIVATE KEY-----\n";
