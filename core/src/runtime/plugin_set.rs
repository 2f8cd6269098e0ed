//! Discovery and the set of loaded plugins.
//!
//! Layout of a plugin directory (`CERTCTL_PLUGIN_DIR`): one subdirectory per
//! plugin, holding `plugin.toml` and `plugin.wasm`:
//!
//! ```text
//! plugins/
//!   nginx/plugin.toml
//!   nginx/plugin.wasm
//!   slack/plugin.toml
//!   slack/plugin.wasm
//! ```
//!
//! Subdirectories without a `plugin.toml` are ignored; a broken plugin is listed
//! with its error. Reloading is loading again: build a new [`PluginSet`] and swap it
//! in; calls in flight keep the old one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::bindings;
use super::error::RuntimeError;
use super::grants::{EffectiveCapabilities, Grants};
use super::issuer::IssuerPlugin;
use super::manifest::{Manifest, PluginKind};
use super::notifier::NotifierPlugin;
use super::target::TargetPlugin;
use super::{Inner, LoadedPlugin, LoadedWorld, cache};

/// The manifest file in each plugin directory.
pub const MANIFEST_FILE: &str = "plugin.toml";
/// The component file in each plugin directory.
pub const COMPONENT_FILE: &str = "plugin.wasm";

/// The plugins found in a plugin directory, loaded or not.
pub struct PluginSet {
    runtime: Arc<Inner>,
    entries: Vec<PluginEntry>,
}

/// One discovered plugin.
pub struct PluginEntry {
    /// Its directory.
    pub dir: PathBuf,
    /// Its manifest, when it parsed.
    pub manifest: Option<Manifest>,
    /// What it may do (requests ∩ grants); empty when the manifest did not parse.
    pub granted: EffectiveCapabilities,
    /// Why it is not usable, if it is not.
    pub error: Option<RuntimeError>,
    loaded: Option<Arc<LoadedPlugin>>,
}

impl std::fmt::Debug for PluginEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginEntry")
            .field("dir", &self.dir)
            .field("id", &self.id())
            .field("granted", &self.granted)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for PluginSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginSet")
            .field("entries", &self.entries)
            .finish()
    }
}

impl PluginEntry {
    /// The plugin id: the manifest's, or the directory name when it did not parse.
    pub fn id(&self) -> String {
        match &self.manifest {
            Some(m) => m.id.clone(),
            None => self
                .dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
    }

    /// Whether calls can be made to it.
    pub fn is_loaded(&self) -> bool {
        self.loaded.is_some()
    }
}

impl PluginSet {
    /// A set with no plugins.
    pub(crate) fn empty(runtime: Arc<Inner>) -> Self {
        Self {
            runtime,
            entries: Vec::new(),
        }
    }

    /// Every discovered plugin, sorted by directory name.
    pub fn entries(&self) -> &[PluginEntry] {
        &self.entries
    }

    /// The entry with this id.
    pub fn get(&self, id: &str) -> Option<&PluginEntry> {
        self.entries
            .iter()
            .find(|e| e.manifest.as_ref().is_some_and(|m| m.id == id))
    }

    /// The plugins that failed to load, with their errors.
    pub fn errors(&self) -> impl Iterator<Item = (&PluginEntry, &RuntimeError)> {
        self.entries
            .iter()
            .filter_map(|e| e.error.as_ref().map(|err| (e, err)))
    }

    /// The target plugin `id`, ready for calls.
    pub fn target(&self, id: &str) -> Result<TargetPlugin, RuntimeError> {
        self.loaded(id, PluginKind::Target)
            .map(|plugin| TargetPlugin::new(self.runtime.clone(), plugin))
    }

    /// The issuer plugin `id`, ready for calls.
    pub fn issuer(&self, id: &str) -> Result<IssuerPlugin, RuntimeError> {
        self.loaded(id, PluginKind::Issuer)
            .map(|plugin| IssuerPlugin::new(self.runtime.clone(), plugin))
    }

    /// The notifier plugin `id`, ready for calls.
    pub fn notifier(&self, id: &str) -> Result<NotifierPlugin, RuntimeError> {
        self.loaded(id, PluginKind::Notifier)
            .map(|plugin| NotifierPlugin::new(self.runtime.clone(), plugin))
    }

    fn loaded(&self, id: &str, kind: PluginKind) -> Result<Arc<LoadedPlugin>, RuntimeError> {
        let entry = self
            .entries
            .iter()
            .find(|e| e.id() == id)
            .ok_or_else(|| RuntimeError::NotFound { plugin: id.into() })?;
        if let Some(manifest) = &entry.manifest
            && manifest.kind != kind
        {
            return Err(RuntimeError::WrongKind {
                plugin: id.into(),
                expected: kind.as_str(),
                found: manifest.kind.as_str(),
            });
        }
        match (&entry.loaded, &entry.error) {
            (Some(plugin), _) => Ok(plugin.clone()),
            (None, error) => Err(RuntimeError::NotLoaded {
                plugin: id.into(),
                reason: error.as_ref().map(|e| e.to_string()).unwrap_or_default(),
            }),
        }
    }
}

pub(crate) fn load_dir(
    runtime: Arc<Inner>,
    dir: &Path,
    grants: &Grants,
) -> Result<PluginSet, RuntimeError> {
    let io = |source| RuntimeError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let listing = match std::fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(PluginSet::empty(runtime)),
        Err(e) => return Err(io(e)),
    };
    let mut dirs = Vec::new();
    for item in listing {
        let path = item.map_err(io)?.path();
        if path.join(MANIFEST_FILE).is_file() {
            dirs.push(path);
        }
    }
    dirs.sort();
    let mut set = PluginSet::empty(runtime);
    for plugin_dir in dirs {
        let entry = load_one(&set, &plugin_dir, grants);
        match &entry.error {
            Some(error) => tracing::warn!(dir = %plugin_dir.display(), %error, "plugin not loaded"),
            None => {
                tracing::info!(plugin = %entry.id(), dir = %plugin_dir.display(), "plugin loaded")
            }
        }
        set.entries.push(entry);
    }
    Ok(set)
}

fn load_one(set: &PluginSet, dir: &Path, grants: &Grants) -> PluginEntry {
    let mut entry = PluginEntry {
        dir: dir.to_path_buf(),
        manifest: None,
        granted: EffectiveCapabilities::default(),
        error: None,
        loaded: None,
    };
    let manifest = match Manifest::load(&dir.join(MANIFEST_FILE)) {
        Ok(manifest) => manifest,
        Err(error) => {
            entry.error = Some(error);
            return entry;
        }
    };
    entry.granted = grants.effective(&manifest.id, &manifest.capabilities);
    let id = manifest.id.clone();
    let kind = manifest.kind;
    entry.manifest = Some(manifest);
    if let Some(first) = set.get(&id) {
        entry.error = Some(RuntimeError::Duplicate {
            plugin: id,
            first: first.dir.clone(),
        });
        return entry;
    }
    match compile_and_link(&set.runtime, dir, &id, kind) {
        Ok(world) => {
            entry.loaded = Some(Arc::new(LoadedPlugin {
                id: id.into(),
                caps: Arc::new(entry.granted.clone()),
                world,
            }));
        }
        Err(error) => entry.error = Some(error),
    }
    entry
}

fn compile_and_link(
    runtime: &Inner,
    dir: &Path,
    id: &str,
    kind: PluginKind,
) -> Result<LoadedWorld, RuntimeError> {
    let wasm_path = dir.join(COMPONENT_FILE);
    let wasm = std::fs::read(&wasm_path).map_err(|source| RuntimeError::Io {
        path: wasm_path.clone(),
        source,
    })?;
    let shared = &runtime.shared;
    let component = cache::compile(&shared.engine, shared.config.cache_dir.as_deref(), &wasm)
        .map_err(|message| RuntimeError::Compile {
            plugin: id.into(),
            message,
        })?;
    let link = |e: wasmtime::Error| RuntimeError::Link {
        plugin: id.into(),
        world: kind.as_str(),
        message: format!("{e:#}"),
    };
    Ok(match kind {
        PluginKind::Target => LoadedWorld::Target(
            bindings::target::TargetPre::new(
                shared
                    .target_linker
                    .instantiate_pre(&component)
                    .map_err(link)?,
            )
            .map_err(link)?,
        ),
        PluginKind::Issuer => LoadedWorld::Issuer(
            bindings::issuer::IssuerPre::new(
                shared
                    .server_linker
                    .instantiate_pre(&component)
                    .map_err(link)?,
            )
            .map_err(link)?,
        ),
        PluginKind::Notifier => LoadedWorld::Notifier(
            bindings::notifier::NotifierPre::new(
                shared
                    .server_linker
                    .instantiate_pre(&component)
                    .map_err(link)?,
            )
            .map_err(link)?,
        ),
    })
}
