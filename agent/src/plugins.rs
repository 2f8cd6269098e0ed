//! Target connectors for the agent: WASM plugins from `CERTCTL_PLUGIN_DIR`, run in the
//! sandboxed component runtime with the operator's grants (`CERTCTL_PLUGIN_GRANTS`).

use std::path::Path;

use certctl_core::runtime::{
    Grants, PluginRuntime, PluginSet, RuntimeConfig, RuntimeError, TargetRequest,
};
use futures_util::future::BoxFuture;

use crate::deployer::{Deployer, Deployment};

/// Deploys through the target plugin named by the target's type.
pub struct PluginDeployer {
    _runtime: PluginRuntime,
    plugins: PluginSet,
}

impl std::fmt::Debug for PluginDeployer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginDeployer").finish_non_exhaustive()
    }
}

impl PluginDeployer {
    /// Loads every plugin in `dir`; a plugin that fails to load is logged and skipped.
    pub fn load(dir: &Path, grants: Option<&Path>, cache_dir: &Path) -> Result<Self, RuntimeError> {
        let grants = match grants {
            Some(path) => Grants::load(path)?,
            None => Grants::default(),
        };
        let runtime = PluginRuntime::new(RuntimeConfig {
            cache_dir: Some(cache_dir.to_owned()),
            ..RuntimeConfig::default()
        })?;
        let plugins = runtime.load_dir(dir, &grants)?;
        for (entry, error) in plugins.errors() {
            tracing::error!(plugin = %entry.id(), %error, "plugin not loaded");
        }
        let loaded: Vec<String> = plugins
            .entries()
            .iter()
            .filter(|e| e.is_loaded())
            .map(|e| e.id())
            .collect();
        tracing::info!(dir = %dir.display(), plugins = ?loaded, "target plugins loaded");
        Ok(Self {
            _runtime: runtime,
            plugins,
        })
    }
}

impl Deployer for PluginDeployer {
    fn deploy<'a>(&'a self, d: &'a Deployment) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let plugin = self
                .plugins
                .target(&d.target_type)
                .map_err(|e| format!("target type {}: {e}", d.target_type))?;
            let request = TargetRequest {
                certificate_pem: d.certificate_pem.clone(),
                chain_pem: d.chain_pem.clone(),
                private_key_pem: d.private_key_pem.clone(),
                config_json: d.config.to_string(),
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
}
