//! The agent's private keys: ECDSA P-256, generated here, written 0600, never sent anywhere.
//!
//! A key is filed under its certificate and the SHA-256 of its public key, so a deployment
//! finds the key that matches the certificate it received — whichever renewal produced it —
//! and a redelivered CSR request never overwrites the key of a certificate already issued.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use p256::ecdsa::SigningKey;
use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
use sha2::{Digest as _, Sha256};

/// Why a key operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// File system.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Encoding or decoding a key.
    #[error("key encoding: {0}")]
    Encoding(String),
    /// No stored key matches a certificate.
    #[error(
        "no private key in {dir} matches certificate {certificate_id}; was the CSR made by another agent?"
    )]
    NoMatchingKey {
        /// Key dir.
        dir: PathBuf,
        /// Certificate.
        certificate_id: String,
    },
}

/// The key directory.
#[derive(Debug, Clone)]
pub struct KeyStore {
    dir: PathBuf,
}

/// Hex SHA-256 of a SubjectPublicKeyInfo DER, the key's file-name identity.
pub fn spki_id(spki_der: &[u8]) -> String {
    hex::encode(&Sha256::digest(spki_der)[..16])
}

fn safe_component(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !id.starts_with('.')
}

impl KeyStore {
    /// Opens (creating, mode 0700) the key directory.
    pub fn open(dir: &Path) -> Result<Self, KeyError> {
        fs::create_dir_all(dir).map_err(|source| KeyError::Io {
            path: dir.to_owned(),
            source,
        })?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|source| {
            KeyError::Io {
                path: dir.to_owned(),
                source,
            }
        })?;
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_for(&self, certificate_id: &str, spki_hex: &str) -> Result<PathBuf, KeyError> {
        if !safe_component(certificate_id) {
            return Err(KeyError::Encoding(format!(
                "unsafe certificate id {certificate_id:?}"
            )));
        }
        Ok(self.dir.join(format!("{certificate_id}.{spki_hex}.key")))
    }

    /// Generates a fresh P-256 key for a certificate and stores it (0600) before anything else
    /// learns of it, so a crash can never leave a CSR whose key is lost.
    pub fn generate(&self, certificate_id: &str) -> Result<SigningKey, KeyError> {
        let key = SigningKey::random(&mut rand_core::OsRng);
        let spki = key
            .verifying_key()
            .to_public_key_der()
            .map_err(|e| KeyError::Encoding(e.to_string()))?;
        let path = self.path_for(certificate_id, &spki_id(spki.as_bytes()))?;
        let pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| KeyError::Encoding(e.to_string()))?;
        write_private(&path, pem.as_bytes()).map_err(|source| KeyError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(key)
    }

    /// The stored key (PEM) whose public key is `spki_der`.
    pub fn find(&self, certificate_id: &str, spki_der: &[u8]) -> Result<String, KeyError> {
        let path = self.path_for(certificate_id, &spki_id(spki_der))?;
        match fs::read_to_string(&path) {
            Ok(pem) => {
                // Refuse a file that does not hold the key it claims to.
                let key = SigningKey::from_pkcs8_pem(&pem)
                    .map_err(|e| KeyError::Encoding(format!("{}: {e}", path.display())))?;
                let spki = key
                    .verifying_key()
                    .to_public_key_der()
                    .map_err(|e| KeyError::Encoding(e.to_string()))?;
                if spki.as_bytes() != spki_der {
                    return Err(KeyError::Encoding(format!(
                        "{} does not hold the key its name says",
                        path.display()
                    )));
                }
                Ok(pem)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(KeyError::NoMatchingKey {
                dir: self.dir.clone(),
                certificate_id: certificate_id.to_owned(),
            }),
            Err(source) => Err(KeyError::Io { path, source }),
        }
    }

    /// Removes this certificate's keys other than `keep_spki_der` (after a successful deployment
    /// of a newer certificate, older keys are no longer needed).
    pub fn prune(&self, certificate_id: &str, keep_spki_der: &[u8]) -> Result<usize, KeyError> {
        let keep = self.path_for(certificate_id, &spki_id(keep_spki_der))?;
        let prefix = format!("{certificate_id}.");
        let mut removed = 0;
        let entries = fs::read_dir(&self.dir).map_err(|source| KeyError::Io {
            path: self.dir.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&prefix) && name.ends_with(".key") && path != keep {
                fs::remove_file(&path).map_err(|source| KeyError::Io {
                    path: path.clone(),
                    source,
                })?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Writes a file only its owner can read, atomically.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
        f.write_all(contents)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt as _;

    #[test]
    fn keys_are_private_and_found_by_public_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(&dir.path().join("keys")).unwrap();
        let key = store.generate("mc-a").unwrap();
        let spki = key.verifying_key().to_public_key_der().unwrap();
        let entries: Vec<_> = fs::read_dir(store.dir()).unwrap().flatten().collect();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].metadata().unwrap().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(store.dir()).unwrap().mode() & 0o777, 0o700);
        let pem = store.find("mc-a", spki.as_bytes()).unwrap();
        assert!(pem.contains("BEGIN PRIVATE KEY"));
        let other = store.generate("mc-a").unwrap();
        assert_ne!(other.verifying_key(), key.verifying_key());
        assert!(matches!(
            store.find("mc-b", spki.as_bytes()),
            Err(KeyError::NoMatchingKey { .. })
        ));
        assert_eq!(store.prune("mc-a", spki.as_bytes()).unwrap(), 1);
        assert!(store.find("mc-a", spki.as_bytes()).is_ok());
    }

    #[test]
    fn refuses_path_tricks_in_ids() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(dir.path()).unwrap();
        assert!(store.generate("../etc/x").is_err());
        assert!(store.generate(".hidden").is_err());
    }
}
