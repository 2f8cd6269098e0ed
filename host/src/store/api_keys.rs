//! API keys: only the SHA-256 of a key is stored; lookups compare hashes in constant time.

use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use sqlx::Row as _;
use subtle::ConstantTimeEq as _;

use super::records::new_id;
use super::sql::{Param, Sql};
use super::{Store, StoreError};

/// The identity a valid key resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyOwner {
    /// Key id (`key-…`).
    pub id: String,
    /// Key name; the actor recorded in audit events.
    pub name: String,
    /// May call admin-only endpoints.
    pub admin: bool,
    /// Set when the key belongs to an agent.
    pub agent_id: Option<String>,
}

/// Hex SHA-256 of a presented key.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A new random key (256 bits, hex) with a recognisable prefix.
pub fn generate_key() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("cctl_{}", hex::encode(bytes))
}

/// Resolves a presented key to its owner, or `None` when no key matches.
pub async fn find(store: &Store, presented: &str) -> Result<Option<KeyOwner>, StoreError> {
    let hash = hash_key(presented);
    let mut sql = Sql::new(
        store.dialect(),
        "SELECT id, name, key_hash, admin, agent_id FROM api_keys WHERE key_hash = ",
    );
    sql.bind_text(hash.clone());
    let Some(row) = sql.query().fetch_optional(store.pool()).await? else {
        return Ok(None);
    };
    let stored: String = row.try_get(2)?;
    // The index lookup already matched; the constant-time comparison keeps the final
    // decision free of data-dependent timing.
    if !bool::from(stored.as_bytes().ct_eq(hash.as_bytes())) {
        return Ok(None);
    }
    let admin = match row.try_get::<bool, _>(3) {
        Ok(b) => b,
        Err(_) => row.try_get::<i64, _>(3)? != 0,
    };
    Ok(Some(KeyOwner {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        admin,
        agent_id: row.try_get(4)?,
    }))
}

/// Number of keys stored (zero means first start).
pub async fn count(store: &Store) -> Result<i64, StoreError> {
    Ok(sqlx::query("SELECT COUNT(*) FROM api_keys")
        .fetch_one(store.pool())
        .await?
        .try_get(0)?)
}

/// Stores a key under `name`, replacing the hash of an existing key with that name.
pub async fn upsert(
    store: &Store,
    name: &str,
    key: &str,
    admin: bool,
    agent_id: Option<&str>,
    now: &str,
) -> Result<(), StoreError> {
    let mut del = Sql::new(store.dialect(), "DELETE FROM api_keys WHERE name = ");
    del.bind_text(name);
    let mut tx = store.begin_write().await?;
    del.query().execute(&mut *tx).await?;
    let mut sql = Sql::new(
        store.dialect(),
        "INSERT INTO api_keys (id, name, key_hash, admin, agent_id, created_at) VALUES (",
    );
    sql.bind_text(new_id("key"))
        .push(", ")
        .bind_text(name)
        .push(", ")
        .bind_text(hash_key(key))
        .push(", ")
        .bind(Param::Bool(Some(admin)))
        .push(", ")
        .bind(Param::Text(agent_id.map(str::to_owned)))
        .push(", ")
        .bind_text(now)
        .push(")");
    sql.query().execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}
