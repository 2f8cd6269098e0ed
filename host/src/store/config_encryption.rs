//! Storage behind encryption at rest of connector secrets: the one key-check row (salt,
//! iteration count, key check), and the raw connector configs the startup pass re-seals.
//! The crypto and the decisions are `crate::secrets`; nothing here sees a key.

use serde_json::{Value, json};
use sqlx::Row as _;

use super::sql::{Param, Sql};
use super::{Store, StoreError, audit};
use crate::domain::audit::{Actor, AuditEntry};
use crate::domain::resource::ResourceSpec;
use crate::secrets::KeyRecord;

/// The stored key record, if secrets were ever encrypted in this database.
pub async fn load(store: &Store) -> Result<Option<KeyRecord>, StoreError> {
    let row =
        sqlx::query("SELECT kdf, iterations, salt, key_check FROM config_encryption WHERE id = 1")
            .fetch_optional(store.pool())
            .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let iterations: i64 = row.try_get(1)?;
    Ok(Some(KeyRecord {
        kdf: row.try_get(0)?,
        iterations: u32::try_from(iterations).map_err(|_| {
            StoreError::Corrupt(format!("config_encryption.iterations: {iterations}"))
        })?,
        salt: row.try_get(2)?,
        key_check: row.try_get(3)?,
    }))
}

/// Stores the key record unless one exists (another replica may have been first); answers
/// whether this one was stored.
pub async fn insert_if_absent(
    store: &Store,
    record: &KeyRecord,
    now: &str,
) -> Result<bool, StoreError> {
    let mut sql = Sql::new(
        store.dialect(),
        "INSERT INTO config_encryption (id, kdf, iterations, salt, key_check, created_at) VALUES (1, ",
    );
    sql.bind_text(record.kdf.clone())
        .push(", ")
        .bind(Param::Int(Some(i64::from(record.iterations))))
        .push(", ")
        .bind_text(record.salt.clone())
        .push(", ")
        .bind_text(record.key_check.clone())
        .push(", ")
        .bind_text(now)
        .push(") ON CONFLICT (id) DO NOTHING");
    Ok(sql.query().execute(store.pool()).await?.rows_affected() == 1)
}

/// One stored connector config, as read (the text is kept for compare-and-set).
#[derive(Debug, Clone)]
pub struct StoredConfig {
    /// Record id.
    pub id: String,
    /// Connector type.
    pub connector_type: String,
    /// The config column's text.
    pub text: String,
    /// The same, parsed.
    pub config: Value,
}

/// Every config of a connector resource (issuers, targets).
pub async fn configs(store: &Store, spec: &ResourceSpec) -> Result<Vec<StoredConfig>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT id, \"type\", config FROM {} ORDER BY id",
        spec.table
    ))
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|row| {
            let text: String = row.try_get(2)?;
            let config = serde_json::from_str(&text)
                .map_err(|e| StoreError::Corrupt(format!("{} config: {e}", spec.singular)))?;
            Ok(StoredConfig {
                id: row.try_get(0)?,
                connector_type: row.try_get(1)?,
                text,
                config,
            })
        })
        .collect()
}

/// Replaces a config by its re-sealed form — only if it is still the one read (a write
/// in between wins) — with a `{singular}_secrets_encrypted` audit event naming the keys.
pub async fn reseal(
    store: &Store,
    spec: &ResourceSpec,
    read: &StoredConfig,
    sealed: &Value,
    keys: &[String],
    now: &str,
) -> Result<bool, StoreError> {
    let mut tx = store.begin_write().await?;
    let mut sql = Sql::new(
        store.dialect(),
        &format!("UPDATE {} SET config = ", spec.table),
    );
    sql.bind_text(sealed.to_string())
        .push(" WHERE id = ")
        .bind_text(read.id.clone())
        .push(" AND config = ")
        .bind_text(read.text.clone());
    if sql.query().execute(&mut *tx).await?.rows_affected() != 1 {
        return Ok(false);
    }
    audit::append(
        &mut tx,
        store.dialect(),
        &AuditEntry {
            actor: Actor::system(),
            action: format!("{}_secrets_encrypted", spec.singular),
            resource_type: spec.singular.to_owned(),
            resource_id: read.id.clone(),
            details: json!({ "fields": keys }),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}
