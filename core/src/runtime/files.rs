//! The `files` host interface: atomic writes with a mode, rollback, reads — all
//! confined to the directories the operator granted.
//!
//! Confinement: the path must be absolute and free of `..`; its parent directory is
//! resolved with every symbolic link followed and must lie inside a granted root
//! (also resolved). The file itself is replaced by `rename`, which swaps a symbolic
//! link at the last component rather than writing through it, so no link can carry
//! a write outside the granted roots. Reads resolve the whole path, links included.
//!
//! Rollback: before the first write of a path in a call, the current file is
//! copied to `.<name>.certctl-prev` beside it (same mode; a symbolic link is kept as
//! a link); `restore` puts it back — in the same call or a later one — or, in the
//! call that created the file, removes it.
//!
//! These are small files (certificates, keys, a few KiB of config), so the host
//! uses blocking `std::fs` calls on the runtime's own threads.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::bindings::{files, types};
use super::error::Capability;
use super::host::{HostState, error};

use types::{ConnectorError, ErrorKind};

/// Largest file `read` returns.
const MAX_READ: u64 = 16 * 1024 * 1024;
/// Suffix of the kept previous version.
const PREVIOUS_SUFFIX: &str = ".certctl-prev";

/// What each path looked like before this call first wrote it.
#[derive(Default)]
pub(crate) struct Journal {
    entries: HashMap<PathBuf, Entry>,
}

struct Entry {
    original: Original,
    /// Restored since the last write in this call.
    restored: bool,
}

enum Original {
    /// The file did not exist; restoring removes it.
    Absent,
    /// A regular file or a symbolic link, kept beside it as `.<name>.certctl-prev`
    /// (a link is kept as a link: replaced, never followed).
    Kept,
}

impl files::Host for HostState {
    async fn write(
        &mut self,
        path: String,
        contents: Vec<u8>,
        mode: u32,
    ) -> Result<(), ConnectorError> {
        if mode > 0o777 {
            return Err(error(
                ErrorKind::InvalidRequest,
                format!("mode {mode:#o} for {path} is not a permission mode (at most 0o777)"),
            ));
        }
        let target = self.resolve(&path, Intent::Write)?;
        write_file(&mut self.journal, &target, &contents, mode)
            .map_err(|e| error(ErrorKind::Io, format!("writing {}: {e}", target.display())))
    }

    async fn restore(&mut self, path: String) -> Result<(), ConnectorError> {
        let target = self.resolve(&path, Intent::Write)?;
        restore_file(&mut self.journal, &target)
    }

    async fn read(&mut self, path: String) -> Result<Vec<u8>, ConnectorError> {
        let target = self.resolve(&path, Intent::Read)?;
        let io =
            |e: std::io::Error| error(ErrorKind::Io, format!("reading {}: {e}", target.display()));
        let meta = fs::metadata(&target).map_err(io)?;
        if meta.len() > MAX_READ {
            return Err(error(
                ErrorKind::InvalidRequest,
                format!("{} is larger than {MAX_READ} bytes", target.display()),
            ));
        }
        fs::read(&target).map_err(io)
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Intent {
    Write,
    Read,
}

impl HostState {
    /// Checks `path` against the granted roots and returns the resolved path to use.
    fn resolve(&mut self, path: &str, intent: Intent) -> Result<PathBuf, ConnectorError> {
        let requested = Path::new(path);
        if !requested.is_absolute() {
            return Err(error(
                ErrorKind::InvalidRequest,
                format!("path `{path}` must be absolute"),
            ));
        }
        if requested
            .components()
            .any(|c| matches!(c, Component::ParentDir))
        {
            return Err(self.deny(Capability::Directory(requested.to_path_buf())));
        }
        let Some(name) = requested.file_name() else {
            return Err(error(
                ErrorKind::InvalidRequest,
                format!("path `{path}` names no file"),
            ));
        };
        let parent = requested.parent().unwrap_or(Path::new("/"));
        let resolved = match intent {
            Intent::Write => resolve_parent(parent).map(|p| p.join(name)),
            Intent::Read => requested.canonicalize().ok(),
        };
        let roots: Vec<PathBuf> = self
            .caps
            .directories
            .iter()
            .filter_map(|root| root.canonicalize().ok())
            .collect();
        match resolved {
            Some(resolved)
                if resolved
                    .parent()
                    .is_some_and(|dir| roots.iter().any(|root| dir.starts_with(root))) =>
            {
                Ok(resolved)
            }
            // A missing file inside a granted directory is a plain "not found", not a
            // denial; outside the roots it is a denial either way.
            None if intent == Intent::Read
                && resolve_parent(parent)
                    .is_some_and(|dir| roots.iter().any(|root| dir.starts_with(root))) =>
            {
                Err(error(
                    ErrorKind::Io,
                    format!("reading {path}: no such file"),
                ))
            }
            _ => Err(self.deny(Capability::Directory(requested.to_path_buf()))),
        }
    }
}

/// Resolves `dir` through its nearest existing ancestor (which may be a symbolic
/// link), keeping the missing tail as written.
fn resolve_parent(dir: &Path) -> Option<PathBuf> {
    let mut existing = dir;
    let mut missing = Vec::new();
    loop {
        match existing.canonicalize() {
            Ok(resolved) => {
                let mut out = resolved;
                for part in missing.iter().rev() {
                    out.push(part);
                }
                return Some(out);
            }
            Err(_) => {
                missing.push(existing.file_name()?.to_os_string());
                existing = existing.parent()?;
            }
        }
    }
}

fn sibling(target: &Path, prefix: &str, suffix: &str) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    target.with_file_name(format!("{prefix}{name}{suffix}"))
}

fn temp_name(target: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    sibling(
        target,
        ".",
        &format!(".certctl-tmp-{}-{n}", std::process::id()),
    )
}

fn write_file(
    journal: &mut Journal,
    target: &Path,
    contents: &[u8],
    mode: u32,
) -> std::io::Result<()> {
    let dir = target.parent().unwrap_or(Path::new("/"));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)?;
    let existing = fs::symlink_metadata(target).ok();
    if existing.as_ref().is_some_and(|m| m.is_dir()) {
        return Err(std::io::Error::other("a directory is in the way"));
    }
    if !journal.entries.contains_key(target) {
        let original = match &existing {
            Some(meta) if meta.is_file() => {
                // Copy (not link) so the kept version survives whatever happens to
                // the live file, with the live file's mode.
                let kept = sibling(target, ".", PREVIOUS_SUFFIX);
                let tmp = temp_name(target);
                fs::copy(target, &tmp)?;
                fs::set_permissions(&tmp, meta.permissions())?;
                fs::rename(&tmp, &kept)?;
                Original::Kept
            }
            Some(meta) if meta.file_type().is_symlink() => {
                let kept = sibling(target, ".", PREVIOUS_SUFFIX);
                let tmp = temp_name(target);
                std::os::unix::fs::symlink(fs::read_link(target)?, &tmp)?;
                fs::rename(&tmp, &kept)?;
                Original::Kept
            }
            _ => Original::Absent,
        };
        journal.entries.insert(
            target.to_path_buf(),
            Entry {
                original,
                restored: false,
            },
        );
    }
    let tmp = temp_name(target);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have cleared bits of `mode`; set it exactly.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, target)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    if let Some(entry) = journal.entries.get_mut(target) {
        entry.restored = false;
    }
    Ok(())
}

fn restore_file(journal: &mut Journal, target: &Path) -> Result<(), ConnectorError> {
    let io = |e: std::io::Error| {
        error(
            ErrorKind::Io,
            format!("restoring {}: {e}", target.display()),
        )
    };
    let kept = sibling(target, ".", PREVIOUS_SUFFIX);
    let original = match journal.entries.get(target) {
        Some(entry) if entry.restored => return Ok(()),
        Some(entry) => Some(&entry.original),
        None => None,
    };
    match original {
        Some(Original::Absent) => match fs::remove_file(target) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        },
        Some(Original::Kept) | None => {
            let Ok(meta) = fs::symlink_metadata(&kept) else {
                return Err(error(
                    ErrorKind::InvalidRequest,
                    format!("no previous version of {} to restore", target.display()),
                ));
            };
            // Copy back (keeping the kept version) so a later restore still works.
            let tmp = temp_name(target);
            if meta.file_type().is_symlink() {
                std::os::unix::fs::symlink(fs::read_link(&kept).map_err(io)?, &tmp).map_err(io)?;
            } else {
                fs::copy(&kept, &tmp).map_err(io)?;
                fs::set_permissions(&tmp, meta.permissions()).map_err(io)?;
            }
            fs::rename(&tmp, target).map_err(io)?;
        }
    }
    match journal.entries.get_mut(target) {
        Some(entry) => entry.restored = true,
        None => {
            journal.entries.insert(
                target.to_path_buf(),
                Entry {
                    original: Original::Kept,
                    restored: true,
                },
            );
        }
    }
    Ok(())
}
