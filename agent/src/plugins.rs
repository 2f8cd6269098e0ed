//! Target connectors for the agent: WASM plugins from `CERTCTL_PLUGIN_DIR`, run in the
//! sandboxed component runtime with the operator's grants (`CERTCTL_PLUGIN_GRANTS`).
//!
//! A target's type names its plugin: the plugin id itself (`nginx`, or the id of any
//! third-party target plugin), except the built-in mail types `postfix` and `dovecot`,
//! which the `mail` plugin serves in the matching mode. The plugin set is reloaded on
//! SIGHUP (see the runner) and rescanned once when a deployment names a plugin that is
//! not installed, so a plugin copied into the directory is used without a restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use certctl_core::runtime::{
    Grants, PluginRuntime, PluginSet, RuntimeConfig, RuntimeError, TargetRequest,
};
use futures_util::future::BoxFuture;
use serde_json::Value;

use crate::deployer::{Deployer, Deployment};

/// Deploys through the target plugin named by the target's type.
pub struct PluginDeployer {
    runtime: PluginRuntime,
    dir: PathBuf,
    grants_file: Option<PathBuf>,
    /// Swapped whole on reload; a deployment in flight keeps the set it started with.
    plugins: RwLock<Arc<PluginSet>>,
}

impl std::fmt::Debug for PluginDeployer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginDeployer")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// The plugin that serves a target type, and the configuration it gets: `postfix` and
/// `dovecot` are the `mail` plugin with `mode` set (unless the configuration sets it);
/// any other type is a plugin id.
pub fn route(target_type: &str, config: &Value) -> (String, Value) {
    match target_type {
        "postfix" | "dovecot" => {
            let mut config = config.clone();
            if let Some(object) = config.as_object_mut() {
                object
                    .entry("mode")
                    .or_insert_with(|| Value::String(target_type.to_owned()));
            }
            ("mail".to_owned(), config)
        }
        other => (other.to_owned(), config.clone()),
    }
}

impl PluginDeployer {
    /// Loads every plugin in `dir`; a plugin that fails to load is logged and skipped.
    pub fn load(dir: &Path, grants: Option<&Path>, cache_dir: &Path) -> Result<Self, RuntimeError> {
        let runtime = PluginRuntime::new(RuntimeConfig {
            cache_dir: Some(cache_dir.to_owned()),
            ..RuntimeConfig::default()
        })?;
        let grants_file = grants.map(Path::to_path_buf);
        let plugins = runtime.load_dir(dir, &read_grants(grants_file.as_deref())?)?;
        log_loaded(dir, &plugins);
        Ok(Self {
            runtime,
            dir: dir.to_owned(),
            grants_file,
            plugins: RwLock::new(Arc::new(plugins)),
        })
    }

    /// Re-reads the grants and rescans the plugin directory, then swaps the new set in.
    /// On error (grants file unreadable, directory unreadable) the current set stays.
    /// Returns the ids of the target plugins now loaded.
    pub async fn reload(&self) -> Result<Vec<String>, RuntimeError> {
        let grants = read_grants(self.grants_file.as_deref())?;
        let set = self
            .runtime
            .load_dir_async(self.dir.clone(), grants)
            .await?;
        log_loaded(&self.dir, &set);
        let ids = loaded_ids(&set);
        match self.plugins.write() {
            Ok(mut guard) => *guard = Arc::new(set),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(set),
        }
        Ok(ids)
    }

    fn current(&self) -> Arc<PluginSet> {
        match self.plugins.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

fn read_grants(path: Option<&Path>) -> Result<Grants, RuntimeError> {
    match path {
        Some(path) => Grants::load(path),
        None => Ok(Grants::default()),
    }
}

fn loaded_ids(set: &PluginSet) -> Vec<String> {
    set.entries()
        .iter()
        .filter(|e| e.is_loaded())
        .map(|e| e.id())
        .collect()
}

fn log_loaded(dir: &Path, set: &PluginSet) {
    for (entry, error) in set.errors() {
        tracing::error!(plugin = %entry.id(), %error, "plugin not loaded");
    }
    tracing::info!(dir = %dir.display(), plugins = ?loaded_ids(set), "target plugins loaded");
}

impl Deployer for PluginDeployer {
    fn deploy<'a>(&'a self, d: &'a Deployment) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let (id, config) = route(&d.target_type, &d.config);
            let plugin = match self.current().target(&id) {
                Err(RuntimeError::NotFound { .. }) => {
                    // Perhaps just copied in: rescan once before giving up.
                    tracing::info!(target_type = %d.target_type, plugin = %id, "unknown target plugin; rescanning the plugin directory");
                    let loaded = self.reload().await.map_err(|e| {
                        format!("target type {}: rescan failed: {e}", d.target_type)
                    })?;
                    self.current().target(&id).map_err(|e| match e {
                        RuntimeError::NotFound { .. } => format!(
                            "target type {}: no target plugin `{id}` in {} (loaded: {})",
                            d.target_type,
                            self.dir.display(),
                            if loaded.is_empty() {
                                "none".to_owned()
                            } else {
                                loaded.join(", ")
                            }
                        ),
                        other => format!("target type {}: {other}", d.target_type),
                    })?
                }
                other => other.map_err(|e| format!("target type {}: {e}", d.target_type))?,
            };
            let request = TargetRequest {
                certificate_pem: d.certificate_pem.clone(),
                chain_pem: d.chain_pem.clone(),
                private_key_pem: d.private_key_pem.clone(),
                config_json: config.to_string(),
                target_id: d.target_id.clone(),
                certificate_id: d.certificate_id.clone(),
            };
            let outcome = plugin.deploy(request).await.map_err(|e| e.to_string())?;
            Ok(format!(
                "{} (files: {}; commands: {})",
                outcome.message,
                outcome.files_written.join(", "),
                outcome.commands_run.join(", ")
            ))
        })
    }

    fn reload(&self) -> BoxFuture<'_, Result<Vec<String>, String>> {
        Box::pin(async move {
            PluginDeployer::reload(self)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn mail_types_route_to_the_mail_plugin_in_their_mode() {
        assert_eq!(
            route("postfix", &json!({})),
            ("mail".into(), json!({"mode": "postfix"}))
        );
        assert_eq!(
            route("dovecot", &json!({"cert_path": "/c"})),
            ("mail".into(), json!({"mode": "dovecot", "cert_path": "/c"}))
        );
        // An explicit mode is the operator's choice; the plugin validates it.
        assert_eq!(
            route("dovecot", &json!({"mode": "postfix"})),
            ("mail".into(), json!({"mode": "postfix"}))
        );
    }

    #[test]
    fn any_other_type_is_a_plugin_id() {
        let config = json!({"dir": "/srv/tls"});
        assert_eq!(route("nginx", &config), ("nginx".into(), config.clone()));
        assert_eq!(
            route("acme-widget", &config),
            ("acme-widget".into(), config.clone())
        );
    }

    #[tokio::test]
    async fn an_unknown_type_rescans_once_then_fails_naming_the_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let plugins = tmp.path().join("plugins");
        std::fs::create_dir(&plugins).unwrap();
        let deployer = PluginDeployer::load(&plugins, None, &tmp.path().join("cache")).unwrap();
        let d = Deployment {
            target_type: "widget".into(),
            target_id: "t-w".into(),
            certificate_id: "mc-w".into(),
            certificate_pem: String::new(),
            chain_pem: String::new(),
            private_key_pem: String::new(),
            config: json!({}),
        };
        let error = deployer.deploy(&d).await.unwrap_err();
        assert!(
            error.contains("no target plugin `widget`")
                && error.contains(&plugins.display().to_string())
                && error.contains("loaded: none"),
            "{error}"
        );
    }
}
