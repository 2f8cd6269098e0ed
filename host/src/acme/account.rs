//! The ACME account: restored from the data dir or registered once (with optional External
//! Account Binding) and persisted 0600; the key that decides which issuers share one.

use std::path::Path;

use instant_acme::{Account, AccountCredentials, ExternalAccountKey, NewAccount};
use sha2::{Digest, Sha256};

use super::config::AcmeConfig;
use super::connector::AcmeIssuer;
use crate::issuer::ConnectorError;

impl AcmeIssuer {
    pub(super) fn builder(&self) -> Result<instant_acme::AccountBuilder, ConnectorError> {
        Ok(Account::builder_with_http(Box::new(self.http.clone())))
    }

    /// The account: restored from the data dir, or registered once and persisted (0600).
    pub(super) async fn account(&self) -> Result<Account, ConnectorError> {
        let mut guard = self.account.lock().await;
        if let Some(a) = guard.as_ref() {
            return Ok(a.clone());
        }
        let account = match std::fs::read(&self.account_file) {
            Ok(bytes) => {
                let creds: AccountCredentials = serde_json::from_slice(&bytes).map_err(|e| {
                    ConnectorError::Config(format!(
                        "ACME account file {}: {e}",
                        self.account_file.display()
                    ))
                })?;
                self.builder()?
                    .from_credentials(creds)
                    .await
                    .map_err(|e| self.acme_error("loading the account", e))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.register().await?,
            Err(e) => {
                return Err(ConnectorError::Unavailable(format!(
                    "ACME account file {}: {e}",
                    self.account_file.display()
                )));
            }
        };
        *guard = Some(account.clone());
        Ok(account)
    }

    pub(super) async fn register(&self) -> Result<Account, ConnectorError> {
        let contact = self.config.email.as_ref().map(|e| format!("mailto:{e}"));
        let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
        let eab = match (&self.config.eab_kid, &self.config.eab_hmac_key) {
            (Some(kid), Some(key)) => {
                use base64::Engine;
                let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(key.trim_end_matches('='))
                    .map_err(|_| ConnectorError::Config("eab_hmac_key is not base64url".into()))?;
                Some(ExternalAccountKey::new(kid.clone(), &raw))
            }
            _ => None,
        };
        let (account, creds) = self
            .builder()?
            .create(
                &NewAccount {
                    contact: &contacts,
                    terms_of_service_agreed: self.config.terms_of_service_agreed,
                    only_return_existing: false,
                },
                self.config.directory_url.clone(),
                eab.as_ref(),
            )
            .await
            .map_err(|e| self.acme_error("account registration failed", e))?;
        let json = serde_json::to_vec(&creds)
            .map_err(|e| ConnectorError::Crashed(format!("serializing ACME account: {e}")))?;
        let created = write_private(&self.account_file, &json, false).map_err(|e| {
            ConnectorError::Unavailable(format!(
                "writing ACME account key {}: {e}",
                self.account_file.display()
            ))
        })?;
        if !created {
            // Another issuer with the same directory, EAB key and contact registered at the
            // same time: the file is never replaced, so use the account it holds.
            tracing::info!(file = %self.account_file.display(), "ACME account file appeared meanwhile; using it");
            let bytes = std::fs::read(&self.account_file).map_err(|e| {
                ConnectorError::Unavailable(format!(
                    "ACME account file {}: {e}",
                    self.account_file.display()
                ))
            })?;
            let creds: AccountCredentials = serde_json::from_slice(&bytes).map_err(|e| {
                ConnectorError::Config(format!(
                    "ACME account file {}: {e}",
                    self.account_file.display()
                ))
            })?;
            return self
                .builder()?
                .from_credentials(creds)
                .await
                .map_err(|e| self.acme_error("loading the account", e));
        }
        tracing::info!(directory = %self.config.directory_url, account = account.id(), "ACME account registered");
        Ok(account)
    }
}

/// What identifies an ACME account for this connector: the directory, the EAB credentials
/// and the contact. Issuers that differ in any of them get their own account file, so an
/// issuer with a wrong EAB HMAC never reuses an account another issuer registered.
pub(super) fn account_key(config: &AcmeConfig) -> String {
    let mut h = Sha256::new();
    for part in [
        Some(config.directory_url.as_str()),
        config.eab_kid.as_deref(),
        config
            .eab_hmac_key
            .as_deref()
            .map(|k| k.trim_end_matches('=')),
        config.email.as_deref(),
    ] {
        // Length-prefixed, so ("ab", "c") and ("a", "bc") differ; absent differs from "".
        match part {
            Some(p) => {
                h.update([1]);
                h.update((p.len() as u64).to_be_bytes());
                h.update(p.as_bytes());
            }
            None => h.update([0]),
        }
    }
    hex::encode(&h.finalize()[..8])
}

/// Writes `bytes` to `path` readable only by the owner (0600), creating parent dirs. Without
/// `replace`, an existing file is kept and `false` returned.
pub(super) fn write_private(path: &Path, bytes: &[u8], replace: bool) -> std::io::Result<bool> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    use std::sync::atomic::{AtomicU64, Ordering};
    static TMP: AtomicU64 = AtomicU64::new(0);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!(
        "tmp{}-{}",
        std::process::id(),
        TMP.fetch_add(1, Ordering::Relaxed)
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    if replace {
        std::fs::rename(&tmp, path)?;
        return Ok(true);
    }
    // A hard link never replaces an existing file.
    let linked = std::fs::hard_link(&tmp, path);
    std::fs::remove_file(&tmp)?;
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::acme::config::AcmeConfig;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn the_account_is_keyed_by_directory_eab_and_contact() {
        let none = env(&[]);
        let operator =
            crate::acme::OperatorSettings::load(None, &|_| None).expect("built-in defaults");
        let cfg = |v: serde_json::Value| AcmeConfig::parse(&v, &none, &operator).expect("valid");
        let d = "https://acme.example/dir";
        let base = account_key(&cfg(serde_json::json!({"directory_url": d})));
        assert_eq!(
            base,
            account_key(&cfg(serde_json::json!({"directory_url": d})))
        );
        let others = [
            serde_json::json!({"directory_url": "https://other.example/dir"}),
            serde_json::json!({"directory_url": d, "email": "a@example.com"}),
            serde_json::json!({"directory_url": d, "eab_kid": "k", "eab_hmac_key": "cmVm"}),
            serde_json::json!({"directory_url": d, "eab_kid": "k2", "eab_hmac_key": "cmVm"}),
            serde_json::json!({"directory_url": d, "eab_kid": "k", "eab_hmac_key": "b3Vycw"}),
        ];
        let mut keys = vec![base];
        for o in others {
            let k = account_key(&cfg(o.clone()));
            assert!(!keys.contains(&k), "{o} shares an account key");
            keys.push(k);
        }
    }

    #[test]
    fn the_account_file_is_created_once_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("acme").join("account-x.json");
        assert!(write_private(&path, b"first", false).expect("written"));
        assert!(!write_private(&path, b"second", false).expect("kept"));
        assert_eq!(std::fs::read(&path).expect("read"), b"first");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(write_private(&path, b"third", true).expect("replaced"));
        assert_eq!(std::fs::read(&path).expect("read"), b"third");
        let names: Vec<_> = std::fs::read_dir(path.parent().expect("dir"))
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temporary files left: {names:?}");
    }
}
