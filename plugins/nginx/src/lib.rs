//! NGINX target connector.
//!
//! Writes the certificate (0644), optionally a separate chain (0644), and the key
//! (0600); runs the operator's `validate` command (e.g. `nginx -t`) and restores the
//! previous files if it fails; then runs `reload` (e.g. `nginx -s reload`).
//!
//! Without `chain_path` the certificate file holds the full chain, which is what
//! `ssl_certificate` expects.

use certctl_plugin_sdk::{SeparateFiles, export_target};

export_target!(SeparateFiles);
