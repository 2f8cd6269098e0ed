//! The server's registry of WebAssembly connectors, and its two endpoints.
//!
//! At start the server loads every plugin under `CERTCTL_PLUGIN_DIR` (default
//! `<data dir>/plugins`; a missing directory means no plugins) with the operator's
//! grants (`CERTCTL_PLUGIN_GRANTS`, a TOML file; none means nothing is granted). A
//! broken plugin, or a broken grants file, is reported — in the log and by
//! `GET /api/v1/plugins` — and never stops the server.
//!
//! - `GET /api/v1/plugins`: every discovered plugin with its manifest, the
//!   capabilities it requested and was granted, its config schema and load error.
//! - `POST /api/v1/plugins/reload` (admin): re-reads the grants file and re-scans the
//!   directory; calls in flight finish on the set they started with, and the issuer
//!   registry rebuilds (issuers whose plugin just appeared get a connector).
//!
//! The runtime itself (sandbox, manifests, grants) is `certctl_core::runtime`;
//! issuer and notifier actors take their plugins from [`PluginRegistry::current`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix_web::{HttpResponse, web};
use certctl_core::runtime::{
    Grants, PluginRuntime, PluginSet, RuntimeConfig, RuntimeError, SUPPORTED_WIT_VERSIONS,
};
use serde_json::{Value, json};

use crate::api::access::{Access, Routes};
use crate::api::error::ApiError;

/// Plugin settings of `certctl-server` (flattened into [`crate::config::Config`]).
#[derive(Debug, Clone, clap::Args)]
pub struct PluginSettings {
    /// Directory of WebAssembly connectors (`<id>/plugin.toml` + `<id>/plugin.wasm`);
    /// default `<data dir>/plugins`.
    #[arg(long = "plugin-dir", env = "CERTCTL_PLUGIN_DIR")]
    pub plugin_dir: Option<PathBuf>,
    /// The operator's capability grants (TOML); unset grants nothing.
    #[arg(long = "plugin-grants", env = "CERTCTL_PLUGIN_GRANTS")]
    pub plugin_grants: Option<PathBuf>,
    /// Memory cap per plugin call, in MiB.
    #[arg(long, env = "CERTCTL_PLUGIN_MEMORY_LIMIT_MB", default_value_t = 64)]
    pub plugin_memory_limit_mb: u64,
    /// Deadline per plugin call.
    #[arg(long, env = "CERTCTL_PLUGIN_CALL_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub plugin_call_timeout: Duration,
}

/// The loaded plugins, swapped whole on reload.
pub struct PluginRegistry {
    runtime: Option<PluginRuntime>,
    dir: PathBuf,
    grants_file: Option<PathBuf>,
    /// Grants implied by the server's own configuration (the hosts of configured
    /// notification channels), added to the grants file's at every load.
    implicit: Grants,
    state: RwLock<Arc<Snapshot>>,
}

/// One load: the set, and what went wrong around it (not per plugin).
struct Snapshot {
    set: Option<Arc<PluginSet>>,
    loaded_at: String,
    problems: Vec<String>,
}

impl std::fmt::Debug for PluginRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginRegistry")
            .field("dir", &self.dir)
            .field("grants_file", &self.grants_file)
            .finish_non_exhaustive()
    }
}

impl PluginRegistry {
    /// Builds the runtime and loads the plugin directory. Never fails: problems are
    /// logged and listed by the API.
    pub async fn start(settings: &PluginSettings, data_dir: &Path) -> Self {
        Self::start_with(settings, data_dir, Grants::default(), None).await
    }

    /// [`PluginRegistry::start`] with grants implied by the configuration (merged with
    /// the grants file's, now and at every reload) and the CA bundle the `smtp`
    /// capability trusts besides the public roots (`CERTCTL_SMTP_CA_BUNDLE`).
    pub async fn start_with(
        settings: &PluginSettings,
        data_dir: &Path,
        implicit: Grants,
        smtp_ca_bundle: Option<PathBuf>,
    ) -> Self {
        let dir = settings
            .plugin_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("plugins"));
        let config = RuntimeConfig {
            cache_dir: Some(data_dir.join("plugin-cache")),
            memory_limit_bytes: settings.plugin_memory_limit_mb.saturating_mul(1024 * 1024),
            call_timeout: settings.plugin_call_timeout,
            smtp_ca_bundle,
            ..RuntimeConfig::default()
        };
        let (runtime, problems) = match PluginRuntime::new(config) {
            Ok(runtime) => (Some(runtime), Vec::new()),
            Err(e) => {
                tracing::error!(error = %e, "WebAssembly plugin runtime unavailable; no plugins loaded");
                (None, vec![e.to_string()])
            }
        };
        let registry = Self {
            runtime,
            dir,
            grants_file: settings.plugin_grants.clone(),
            implicit,
            state: RwLock::new(Arc::new(Snapshot {
                set: None,
                loaded_at: now(),
                problems,
            })),
        };
        if registry.runtime.is_some() {
            let mut problems = Vec::new();
            let grants = registry.read_grants().unwrap_or_else(|e| {
                tracing::error!(error = %e, "plugin grants not readable; granting nothing");
                problems.push(e.to_string());
                registry.implicit.clone()
            });
            match registry.load(grants).await {
                Ok(set) => registry.install(Some(set), problems),
                Err(e) => {
                    tracing::error!(error = %e, dir = %registry.dir.display(), "plugin directory not readable");
                    problems.push(e.to_string());
                    registry.install(None, problems);
                }
            }
        }
        registry
    }

    /// The plugins loaded now (`None` when the runtime or the directory failed).
    pub fn current(&self) -> Option<Arc<PluginSet>> {
        self.snapshot().set.clone()
    }

    /// Re-reads the grants and re-scans the directory. A grants file that does not
    /// parse keeps the previous set and is returned as the error.
    pub async fn reload(&self) -> Result<(), RuntimeError> {
        if self.runtime.is_none() {
            return Err(RuntimeError::Unavailable(
                "the plugin runtime did not start".into(),
            ));
        }
        let grants = self.read_grants()?;
        let set = self.load(grants).await?;
        self.install(Some(set), Vec::new());
        Ok(())
    }

    fn read_grants(&self) -> Result<Grants, RuntimeError> {
        let file = match &self.grants_file {
            Some(path) => Grants::load(path)?,
            None => Grants::default(),
        };
        Ok(crate::notifier::channels::merge_grants(
            file,
            &self.implicit,
        ))
    }

    async fn load(&self, grants: Grants) -> Result<PluginSet, RuntimeError> {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| RuntimeError::Unavailable("the plugin runtime did not start".into()))?;
        let set = runtime.load_dir_async(self.dir.clone(), grants).await?;
        tracing::info!(
            dir = %self.dir.display(),
            plugins = set.entries().len(),
            failed = set.errors().count(),
            "plugins loaded"
        );
        Ok(set)
    }

    fn install(&self, set: Option<PluginSet>, problems: Vec<String>) {
        let snapshot = Arc::new(Snapshot {
            set: set.map(Arc::new),
            loaded_at: now(),
            problems,
        });
        match self.state.write() {
            Ok(mut guard) => *guard = snapshot,
            Err(poisoned) => *poisoned.into_inner() = snapshot,
        }
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        match self.state.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Ids of the loaded plugins of `kind` (`"target"`, `"issuer"`, `"notifier"`), sorted.
    pub fn loaded_ids(&self, kind: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .current()
            .iter()
            .flat_map(|set| set.entries())
            .filter(|e| {
                e.is_loaded() && e.manifest.as_ref().is_some_and(|m| m.kind.as_str() == kind)
            })
            .map(|e| e.id())
            .collect();
        ids.sort();
        ids
    }

    /// The config JSON Schema of the plugin `id` of `kind`, if one was discovered (loaded
    /// or not): it says which config fields are secret (`crate::secrets`).
    pub fn config_schema(&self, kind: &str, id: &str) -> Option<Value> {
        self.current()?
            .entries()
            .iter()
            .filter(|e| e.id() == id)
            .find_map(|e| e.manifest.as_ref().filter(|m| m.kind.as_str() == kind))
            .map(|m| m.config_schema.clone())
    }

    /// The body of `GET /api/v1/plugins`.
    pub fn listing(&self) -> Value {
        let snapshot = self.snapshot();
        let data: Vec<Value> = snapshot
            .set
            .iter()
            .flat_map(|set| set.entries())
            .map(|entry| {
                let manifest = entry.manifest.as_ref();
                json!({
                    "id": entry.id(),
                    "kind": manifest.map(|m| m.kind.as_str()),
                    "version": manifest.map(|m| m.version.as_str()),
                    "wit": manifest.map(|m| m.wit.as_str()),
                    "description": manifest.map(|m| m.description.as_str()),
                    "dir": entry.dir.display().to_string(),
                    "status": if entry.is_loaded() { "loaded" } else { "error" },
                    "error": entry.error.as_ref().map(|e| json!({"code": e.code(), "message": e.to_string()})),
                    "capabilities": {
                        "requested": manifest.map(|m| &m.capabilities),
                        "granted": &entry.granted,
                    },
                    "config_schema": manifest.map(|m| &m.config_schema),
                })
            })
            .collect();
        json!({
            "total": data.len(),
            "page": 1,
            "per_page": data.len(),
            "data": data,
            "plugin_dir": self.dir.display().to_string(),
            "grants_file": self.grants_file.as_ref().map(|p| p.display().to_string()),
            "supported_wit": SUPPORTED_WIT_VERSIONS,
            "loaded_at": snapshot.loaded_at,
            "problems": snapshot.problems,
        })
    }
}

fn now() -> String {
    certctl_core::timestamp::format(time::OffsetDateTime::now_utc())
}

/// Routes directly under `/api/v1`.
pub fn routes(r: &mut Routes) {
    r.get("/api/v1/plugins", Access::VIEWER, "WebAssembly connectors: manifest, requested and granted capabilities, config schema, load error", list);
    r.post(
        "/api/v1/plugins/reload",
        Access::ADMIN,
        "Re-read the grants file and re-scan the plugin directory (admin)",
        reload,
    );
}

/// `GET /api/v1/plugins`.
async fn list(registry: web::Data<PluginRegistry>) -> HttpResponse {
    HttpResponse::Ok().json(registry.listing())
}

/// `POST /api/v1/plugins/reload` (admin): 200 with the new listing, or 400 naming
/// the grants problem (the previous plugins stay loaded). Issuers are rebuilt after a
/// reload, so an issuer whose plugin was missing starts working without a restart.
async fn reload(
    req: actix_web::HttpRequest,
    registry: web::Data<PluginRegistry>,
) -> Result<HttpResponse, ApiError> {
    match registry.reload().await {
        Ok(()) => {
            if let Some(state) = req.app_data::<web::Data<crate::api::state::AppState>>() {
                state.pipeline.issuers_changed();
            }
            Ok(HttpResponse::Ok().json(registry.listing()))
        }
        Err(e @ (RuntimeError::MalformedGrants { .. } | RuntimeError::Io { .. })) => {
            Err(ApiError::field("grants", e.to_string()))
        }
        Err(e) => Err(ApiError::Internal(e.to_string())),
    }
}
