//! Test fixtures shared by the certctl test suites (core's runtime tests, the host's
//! integration tests and the end-to-end suites), so each exists once: a real SMTP
//! server (aiosmtpd), a capturing HTTP receiver, throwaway certificates made with the
//! openssl CLI, and the plugin artifacts built by `plugins/build.sh`.
//!
//! Helpers panic on failure: they only run inside tests, where a panic is the report.

pub mod http;
pub mod plugins;
pub mod smtp;
pub mod tls;

use std::path::{Path, PathBuf};

/// The workspace root (this crate lives one level below it).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}
