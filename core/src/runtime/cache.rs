//! Compiling components, with an on-disk cache of compiled artifacts.
//!
//! Compiling a plugin takes about a second; loading a cached artifact takes
//! milliseconds. Artifacts are keyed by the SHA-256 of the `.wasm` and by the
//! engine's compatibility hash (wasmtime version and every compilation setting),
//! so an upgrade or a configuration change simply misses the cache.

use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Compiles `wasm`, going through `cache_dir` when there is one. Cache failures are
/// logged and never fail the load. Errors are the compiler's message.
pub(crate) fn compile(
    engine: &Engine,
    cache_dir: Option<&Path>,
    wasm: &[u8],
) -> Result<Component, String> {
    let Some(dir) = cache_dir else {
        return Component::new(engine, wasm).map_err(|e| format!("{e:#}"));
    };
    let path = dir.join(format!("{}.cwasm", cache_key(engine, wasm)));
    if let Ok(bytes) = std::fs::read(&path) {
        match deserialize(engine, &bytes) {
            Ok(component) => return Ok(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "discarding unusable compiled plugin cache entry");
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    let artifact = engine
        .precompile_component(wasm)
        .map_err(|e| format!("{e:#}"))?;
    if let Err(e) = store(dir, &path, &artifact) {
        tracing::warn!(path = %path.display(), error = %e, "could not write compiled plugin cache entry");
    }
    deserialize(engine, &artifact).map_err(|e| format!("{e:#}"))
}

fn cache_key(engine: &Engine, wasm: &[u8]) -> String {
    // `DefaultHasher::new()` uses fixed keys, so the value is stable between runs of
    // one build; a different toolchain at worst misses the cache.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!(
        "{}-{:016x}",
        hex::encode(Sha256::digest(wasm)),
        hasher.finish()
    )
}

fn store(dir: &Path, path: &Path, artifact: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("artifact");
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.tmp-{}-{n}", std::process::id()));
    std::fs::write(&tmp, artifact)?;
    std::fs::rename(&tmp, path)
}

#[allow(unsafe_code)]
fn deserialize(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `Component::deserialize` trusts that `bytes` came from
    // `Engine::precompile_component` of a compatible engine; wasmtime itself checks
    // the version and configuration header and refuses a mismatch. The bytes come
    // either from `precompile_component` just above or from the runtime's own cache
    // directory, which only this process's user can write (it is created under the
    // service's data directory); whoever can write there could equally replace the
    // plugins themselves.
    unsafe { Component::deserialize(engine, bytes) }
}
