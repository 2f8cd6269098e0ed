//! API keys: only the SHA-256 of a key is stored; lookups compare hashes in constant time.
//! Keys are never deleted: revocation stamps `revoked_at`, so audit events keep naming a
//! key that existed, and a revoked key can never match again.

use rand::RngCore as _;
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use sqlx::Row as _;
use sqlx::any::AnyRow;
use subtle::ConstantTimeEq as _;

use super::records::new_id;
use super::sql::{Param, Sql};
use super::{Store, StoreError};
use crate::domain::role::Role;

/// The identity a valid key resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyOwner {
    /// Key id (`key-…`).
    pub id: String,
    /// Key name; the actor recorded in audit events.
    pub name: String,
    /// What the key may do.
    pub role: Role,
    /// Set when the key belongs to an agent.
    pub agent_id: Option<String>,
}

/// What a presented key turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A live key.
    Valid(KeyOwner),
    /// A key that was revoked (by an admin, by rotation, or by retiring its agent).
    Revoked,
    /// A key past its `expires_at`.
    Expired,
    /// No key has this value.
    Unknown,
}

/// A stored key as the API shows it: never the secret, never its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    /// Key id (`key-…`).
    pub id: String,
    /// Name, unique among live keys.
    pub name: String,
    /// `admin`, `operator`, `viewer` or `agent`.
    pub role: String,
    /// The agent an agent key belongs to.
    pub agent_id: Option<String>,
    /// When it was created.
    pub created_at: String,
    /// Who created it (key name), `system` for seeded keys.
    pub created_by: Option<String>,
    /// After this instant the key is refused.
    pub expires_at: Option<String>,
    /// Last successful authentication (updated at most once a minute).
    pub last_used_at: Option<String>,
    /// When the secret was last replaced.
    pub rotated_at: Option<String>,
    /// When it was revoked; a revoked key never authenticates again.
    pub revoked_at: Option<String>,
}

/// What a new key is.
#[derive(Debug, Clone)]
pub struct NewKey<'a> {
    /// Name (unique among live keys).
    pub name: &'a str,
    /// Role.
    pub role: Role,
    /// Owning agent, for agent keys.
    pub agent_id: Option<&'a str>,
    /// Optional expiry (RFC 3339).
    pub expires_at: Option<&'a str>,
    /// Creator's name.
    pub created_by: &'a str,
}

const COLUMNS: &str = "id, name, role, agent_id, created_at, created_by, expires_at, last_used_at, rotated_at, revoked_at";

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

fn row_to_key(row: &AnyRow) -> Result<ApiKey, StoreError> {
    Ok(ApiKey {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        role: row.try_get(2)?,
        agent_id: row.try_get(3)?,
        created_at: row.try_get(4)?,
        created_by: row.try_get(5)?,
        expires_at: row.try_get(6)?,
        last_used_at: row.try_get(7)?,
        rotated_at: row.try_get(8)?,
        revoked_at: row.try_get(9)?,
    })
}

/// Resolves a presented key at `now` (RFC 3339, the stored format, so text order is time
/// order). A live key's `last_used_at` is refreshed when it is older than a minute, which
/// keeps a busy key from turning every request into a write.
pub async fn find(store: &Store, presented: &str, now: &str) -> Result<Lookup, StoreError> {
    let hash = hash_key(presented);
    let mut sql = Sql::new(
        store.dialect(),
        &format!("SELECT {COLUMNS}, key_hash FROM api_keys WHERE key_hash = "),
    );
    sql.bind_text(hash.clone());
    let Some(row) = sql.query().fetch_optional(store.pool()).await? else {
        return Ok(Lookup::Unknown);
    };
    let stored: String = row.try_get(10)?;
    // The index lookup already matched; the constant-time comparison keeps the final
    // decision free of data-dependent timing.
    if !bool::from(stored.as_bytes().ct_eq(hash.as_bytes())) {
        return Ok(Lookup::Unknown);
    }
    let key = row_to_key(&row)?;
    if key.revoked_at.is_some() {
        return Ok(Lookup::Revoked);
    }
    if key.expires_at.as_deref().is_some_and(|e| e <= now) {
        return Ok(Lookup::Expired);
    }
    let role = key
        .role
        .parse::<Role>()
        .map_err(|e| StoreError::Database(format!("api key {}: {e}", key.id)))?;
    if key
        .last_used_at
        .as_deref()
        .is_none_or(|t| minute_older(t, now))
    {
        let mut touch = Sql::new(store.dialect(), "UPDATE api_keys SET last_used_at = ");
        touch
            .bind_text(now)
            .push(" WHERE id = ")
            .bind_text(key.id.clone());
        if let Err(e) = touch.query().execute(store.pool()).await {
            // Losing a last-used stamp is no reason to refuse a valid caller.
            tracing::debug!(error = %e, key_id = %key.id, "could not update last_used_at");
        }
    }
    Ok(Lookup::Valid(KeyOwner {
        id: key.id,
        name: key.name,
        role,
        agent_id: key.agent_id,
    }))
}

/// True when `then` is more than a minute before `now` (both RFC 3339 UTC).
fn minute_older(then: &str, now: &str) -> bool {
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;
    match (
        OffsetDateTime::parse(then, &Rfc3339),
        OffsetDateTime::parse(now, &Rfc3339),
    ) {
        (Ok(a), Ok(b)) => b - a > time::Duration::MINUTE,
        _ => true,
    }
}

/// Number of live keys that are not agent keys (zero means nobody can administer).
pub async fn count_user_keys(store: &Store) -> Result<i64, StoreError> {
    Ok(
        sqlx::query("SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL AND agent_id IS NULL")
            .fetch_one(store.pool())
            .await?
            .try_get(0)?,
    )
}

/// Stores a new key with the given secret and returns its record.
pub async fn insert(
    store: &Store,
    key: &NewKey<'_>,
    secret: &str,
    now: &str,
) -> Result<ApiKey, StoreError> {
    let id = new_id("key");
    let mut sql = Sql::new(
        store.dialect(),
        "INSERT INTO api_keys (id, name, key_hash, role, agent_id, created_at, created_by, expires_at) VALUES (",
    );
    sql.bind_text(id.clone())
        .push(", ")
        .bind_text(key.name)
        .push(", ")
        .bind_text(hash_key(secret))
        .push(", ")
        .bind_text(key.role.as_str())
        .push(", ")
        .bind(Param::Text(key.agent_id.map(str::to_owned)))
        .push(", ")
        .bind_text(now)
        .push(", ")
        .bind_text(key.created_by)
        .push(", ")
        .bind(Param::Text(key.expires_at.map(str::to_owned)))
        .push(")");
    sql.query()
        .execute(store.pool())
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => {
                StoreError::Conflict(format!("a live API key named {} exists", key.name))
            }
            other => other,
        })?;
    get(store, &id)
        .await?
        .ok_or_else(|| StoreError::Database(format!("api key {id} vanished after insert")))
}

/// Replaces the live key named `name` (seeding from configuration): the old one is revoked
/// unless it already has this secret.
pub async fn seed(
    store: &Store,
    key: &NewKey<'_>,
    secret: &str,
    now: &str,
) -> Result<(), StoreError> {
    let mut sql = Sql::new(
        store.dialect(),
        "SELECT key_hash, role FROM api_keys WHERE revoked_at IS NULL AND name = ",
    );
    sql.bind_text(key.name);
    if let Some(row) = sql.query().fetch_optional(store.pool()).await? {
        let hash: String = row.try_get(0)?;
        let role: String = row.try_get(1)?;
        if hash == hash_key(secret) && role == key.role.as_str() {
            return Ok(());
        }
        let mut revoke = Sql::new(store.dialect(), "UPDATE api_keys SET revoked_at = ");
        revoke
            .bind_text(now)
            .push(" WHERE revoked_at IS NULL AND name = ")
            .bind_text(key.name);
        revoke.query().execute(store.pool()).await?;
    }
    // A revoked row may still hold this very hash (the key was revoked, then configured
    // again): the operator's configuration wins, so that row is taken over.
    let mut hash_taken = Sql::new(store.dialect(), "SELECT id FROM api_keys WHERE key_hash = ");
    hash_taken.bind_text(hash_key(secret));
    if let Some(row) = hash_taken.query().fetch_optional(store.pool()).await? {
        let id: String = row.try_get(0)?;
        let mut revive = Sql::new(
            store.dialect(),
            "UPDATE api_keys SET revoked_at = NULL, name = ",
        );
        revive
            .bind_text(key.name)
            .push(", role = ")
            .bind_text(key.role.as_str())
            .push(", expires_at = ")
            .bind(Param::Text(key.expires_at.map(str::to_owned)))
            .push(" WHERE id = ")
            .bind_text(id);
        revive.query().execute(store.pool()).await?;
        return Ok(());
    }
    insert(store, key, secret, now).await.map(|_| ())
}

/// One key by id.
pub async fn get(store: &Store, id: &str) -> Result<Option<ApiKey>, StoreError> {
    let mut sql = Sql::new(
        store.dialect(),
        &format!("SELECT {COLUMNS} FROM api_keys WHERE id = "),
    );
    sql.bind_text(id);
    sql.query()
        .fetch_optional(store.pool())
        .await?
        .map(|r| row_to_key(&r))
        .transpose()
}

/// Every key, newest first; revoked ones only when asked for.
pub async fn list(store: &Store, include_revoked: bool) -> Result<Vec<ApiKey>, StoreError> {
    let filter = if include_revoked {
        ""
    } else {
        " WHERE revoked_at IS NULL"
    };
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM api_keys{filter} ORDER BY created_at DESC, id DESC"
    ))
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(row_to_key).collect()
}

/// Revokes one key; false when it does not exist or was already revoked.
pub async fn revoke(store: &Store, id: &str, now: &str) -> Result<bool, StoreError> {
    let mut sql = Sql::new(store.dialect(), "UPDATE api_keys SET revoked_at = ");
    sql.bind_text(now)
        .push(" WHERE revoked_at IS NULL AND id = ")
        .bind_text(id);
    Ok(sql.query().execute(store.pool()).await?.rows_affected() > 0)
}

/// Revokes every live key of an agent; returns the revoked key ids.
pub async fn revoke_agent_keys(
    store: &Store,
    agent_id: &str,
    now: &str,
) -> Result<Vec<String>, StoreError> {
    let mut select = Sql::new(
        store.dialect(),
        "SELECT id FROM api_keys WHERE revoked_at IS NULL AND agent_id = ",
    );
    select.bind_text(agent_id);
    let ids: Vec<String> = select
        .query()
        .fetch_all(store.pool())
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    for id in &ids {
        revoke(store, id, now).await?;
    }
    Ok(ids)
}

/// Replaces a live key's secret: the old secret stops working at once. `None` when the key
/// does not exist or is revoked.
pub async fn rotate(
    store: &Store,
    id: &str,
    new_secret: &str,
    now: &str,
) -> Result<Option<ApiKey>, StoreError> {
    let mut sql = Sql::new(store.dialect(), "UPDATE api_keys SET key_hash = ");
    sql.bind_text(hash_key(new_secret))
        .push(", rotated_at = ")
        .bind_text(now)
        .push(" WHERE revoked_at IS NULL AND id = ")
        .bind_text(id);
    if sql.query().execute(store.pool()).await?.rows_affected() == 0 {
        return Ok(None);
    }
    get(store, id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minute_older_compares_instants() {
        assert!(minute_older("2026-01-01T00:00:00Z", "2026-01-01T00:01:01Z"));
        assert!(!minute_older(
            "2026-01-01T00:00:00Z",
            "2026-01-01T00:00:59Z"
        ));
        assert!(minute_older("garbage", "2026-01-01T00:00:59Z"));
    }
}
