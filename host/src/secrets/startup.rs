//! The I/O half of encryption at rest, run once by `server::run`: setting up the key from
//! `CERTCTL_CONFIG_ENCRYPTION_KEY` and the key-check row, and sealing secrets stored in
//! clear before a key was configured. The decisions are the parent module's pure
//! functions; the SQL is `store/config_encryption.rs`.

use serde_json::Value;

use super::{ConfigOwner, ConfigSecrets, KEY_VARIABLE, KeySetup, Previous, SecretsError};
use crate::domain::{issuer, target};
use crate::plugins::PluginRegistry;
use crate::store::{Store, StoreError, config_encryption};

/// Why encryption at rest could not be set up (the server does not start).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// The key is wrong, too short, or missing for a database with encrypted secrets.
    #[error(transparent)]
    Key(#[from] SecretsError),
    /// The key-check row could not be read or written.
    #[error("key-check row: {0}")]
    Store(#[from] StoreError),
}

/// The server's [`ConfigSecrets`]: the key-check row is created on the first start with
/// a key and verified on every later one; without a key, a warning that secrets are
/// stored in clear.
pub async fn setup(
    key: Option<&str>,
    store: &Store,
    now: &str,
) -> Result<ConfigSecrets, SetupError> {
    let stored = config_encryption::load(store).await?;
    match super::setup(key, stored.as_ref())? {
        KeySetup::Clear => {
            tracing::warn!(
                "{KEY_VARIABLE} is not set: secret connector config fields (e.g. eab_hmac_key) are stored in clear"
            );
            Ok(ConfigSecrets::clear())
        }
        KeySetup::Open(cipher) => {
            tracing::info!("connector secrets are encrypted at rest (key verified)");
            Ok(ConfigSecrets::encrypted(cipher))
        }
        KeySetup::Create(cipher, record) => {
            if config_encryption::insert_if_absent(store, &record, now).await? {
                tracing::info!("connector secrets are encrypted at rest (new key record stored)");
                return Ok(ConfigSecrets::encrypted(cipher));
            }
            // Another replica stored its record first: the key must open that one.
            let stored = config_encryption::load(store).await?;
            match super::setup(key, stored.as_ref())? {
                KeySetup::Open(cipher) => Ok(ConfigSecrets::encrypted(cipher)),
                _ => Err(
                    StoreError::Corrupt("the key-check row vanished during start".into()).into(),
                ),
            }
        }
    }
}

/// Once a key is configured, seals the issuer and target secrets stored in clear before
/// it was (audited as `{singular}_secrets_encrypted`). A failure is logged; those values
/// are sealed on their next write instead.
pub async fn reseal_clear(
    store: &Store,
    secrets: &ConfigSecrets,
    plugins: &PluginRegistry,
    now: &str,
) {
    if !secrets.encrypts() {
        return;
    }
    for (spec, kind) in [(&issuer::SPEC, "issuer"), (&target::SPEC, "target")] {
        let rows = match config_encryption::configs(store, spec).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, resource = spec.path, "could not read configs to encrypt their secrets");
                continue;
            }
        };
        for row in rows {
            let schema = plugins.config_schema(kind, &row.connector_type);
            let names = super::secret_fields(spec.path, &row.connector_type, schema.as_ref());
            let Some(stored) = row.config.as_object() else {
                continue;
            };
            if !secrets.needs_sealing(stored, &names) {
                continue;
            }
            let owner = ConfigOwner {
                resource: spec.singular,
                id: &row.id,
            };
            let sealed = secrets.reveal(owner, stored).and_then(|plain| {
                let previous = Previous {
                    stored,
                    plain: &plain,
                };
                secrets.seal(owner, &plain, Some(previous), &names)
            });
            let result = match sealed {
                Ok(sealed) => config_encryption::reseal(
                    store,
                    spec,
                    &row,
                    &Value::Object(sealed),
                    &names,
                    now,
                )
                .await
                .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match result {
                Ok(true) => {
                    tracing::info!(resource = spec.singular, id = %row.id, "encrypted secrets stored in clear before the key was set")
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(resource = spec.singular, id = %row.id, error = %e, "could not encrypt secrets stored in clear; they are encrypted on their next write")
                }
            }
        }
    }
}
