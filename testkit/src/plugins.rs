//! The components built by `plugins/build.sh` (wasm32-wasip2).
//!
//! Set `CERTCTL_PLUGIN_ARTIFACTS` to its output directory (the one holding `dist/` and
//! `fixtures/`) to use a prebuilt set; otherwise the first caller runs the script
//! (incremental, a second when nothing changed).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::workspace_root;

/// The directory holding `dist/` (first-party plugins) and `fixtures/`.
pub fn artifacts() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("CERTCTL_PLUGIN_ARTIFACTS") {
            return PathBuf::from(dir);
        }
        let root = workspace_root();
        let status = Command::new("bash")
            .arg(root.join("plugins/build.sh"))
            .status()
            .expect("run plugins/build.sh");
        assert!(status.success(), "plugins/build.sh failed");
        root.join("target/plugins")
    })
}

/// The built plugin `id` (looked up in `dist/`, then `fixtures/`).
pub fn built(id: &str) -> PathBuf {
    let dist = artifacts().join("dist").join(id);
    if dist.is_dir() {
        return dist;
    }
    let fixture = artifacts().join("fixtures").join(id);
    assert!(
        fixture.is_dir(),
        "no built plugin {id} in {}",
        artifacts().display()
    );
    fixture
}

/// Copies built plugin `id` into `<plugins>/<as_dir>/` and answers that directory.
pub fn install(plugins: &Path, id: &str, as_dir: &str) -> PathBuf {
    let dest = plugins.join(as_dir);
    std::fs::create_dir_all(&dest).expect("mkdir");
    let from = built(id);
    for file in ["plugin.toml", "plugin.wasm"] {
        std::fs::copy(from.join(file), dest.join(file))
            .unwrap_or_else(|e| panic!("copy {}/{file}: {e}", from.display()));
    }
    dest
}

/// A fresh plugin directory holding copies of the built plugins `ids`.
pub fn plugin_dir(ids: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for id in ids {
        install(dir.path(), id, id);
    }
    dir
}
