//! Apache httpd target connector.
//!
//! Writes the certificate (0644), optionally a separate chain (0644), and the key
//! (0600); runs the operator's `validate` command (e.g. `apachectl configtest`) and restores the
//! previous files if it fails; then runs `reload` (e.g. `apachectl graceful`).
//!
//! Without `chain_path` the certificate file holds the full chain, which
//! `SSLCertificateFile` accepts since httpd 2.4.8; with it, point
//! `SSLCertificateChainFile` (older releases) at the chain file.

use certctl_plugin_sdk::{SeparateFiles, export_target};

export_target!(SeparateFiles);
