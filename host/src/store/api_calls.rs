//! The API-call log: one row per `/api/` request, append-only except for retention pruning.
//!
//! Rows reach the table through the bounded [`queue`]; [`prune`] is the only way rows
//! leave it. The schema (0007) refuses any DELETE of a row newer than the cutoff held in
//! the one-row `api_call_retention` table, and that cutoff only moves forward and never to
//! less than 24 hours ago, so the log cannot be emptied by a bug or an injected statement.

pub mod queue;

pub use queue::{ApiCallLog, ApiCallWriter, PkiRequest};

use sqlx::Row as _;

use super::records::new_id;
use super::sql::{Dialect, Param, Sql};
use super::{Store, StoreError};

/// What is recorded about one API call.
#[derive(Debug, Clone)]
pub struct ApiCall {
    /// Request id, also sent back as `X-Request-Id`.
    pub request_id: String,
    /// HTTP method.
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Key name, or `anonymous`.
    pub actor: String,
    /// First 16 hex digits of the body's SHA-256, when there was a body.
    pub body_sha256: Option<String>,
    /// Response status.
    pub status: u16,
    /// Time to respond.
    pub latency_ms: i64,
    /// When the call finished (canonical timestamp).
    pub timestamp: String,
}

/// Rows per INSERT statement: nine parameters each stays under SQLite's historic limit of
/// 999 bound parameters.
const ROWS_PER_STATEMENT: usize = 100;

/// Rows deleted per statement while pruning, so that a first prune of a large table never
/// holds SQLite's write lock for long.
const PRUNE_BATCH: i64 = 5_000;

fn insert(dialect: Dialect, calls: &[ApiCall]) -> Sql {
    let mut sql = Sql::new(
        dialect,
        "INSERT INTO api_calls (id, request_id, method, path, actor, body_sha256, status, latency_ms, timestamp) VALUES ",
    );
    for (i, call) in calls.iter().enumerate() {
        sql.push(if i == 0 { "(" } else { ", (" })
            .bind_text(new_id("call"))
            .push(", ")
            .bind_text(call.request_id.clone())
            .push(", ")
            .bind_text(call.method.clone())
            .push(", ")
            .bind_text(call.path.clone())
            .push(", ")
            .bind_text(call.actor.clone())
            .push(", ")
            .bind(Param::Text(call.body_sha256.clone()))
            .push(", ")
            .bind(Param::Int(Some(i64::from(call.status))))
            .push(", ")
            .bind(Param::Int(Some(call.latency_ms)))
            .push(", ")
            .bind_text(call.timestamp.clone())
            .push(")");
    }
    sql
}

/// Appends one call.
pub async fn append(store: &Store, call: &ApiCall) -> Result<(), StoreError> {
    insert(store.dialect(), std::slice::from_ref(call))
        .query()
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Appends many calls in one transaction (multi-row INSERTs), which is what lets the
/// writer keep up with a burst: one commit per batch instead of one per request.
pub async fn append_batch(store: &Store, calls: &[ApiCall]) -> Result<(), StoreError> {
    if calls.is_empty() {
        return Ok(());
    }
    let mut tx = store.begin_write().await?;
    for chunk in calls.chunks(ROWS_PER_STATEMENT) {
        insert(store.dialect(), chunk)
            .query()
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The retention cutoff in effect: rows older than it may be deleted.
pub async fn retention_cutoff(store: &Store) -> Result<String, StoreError> {
    let row = sqlx::query("SELECT cutoff FROM api_call_retention WHERE id = 1")
        .fetch_one(store.pool())
        .await?;
    Ok(row.try_get(0)?)
}

/// Moves the retention cutoff forward to `cutoff` (a canonical timestamp at least 24 hours
/// old; an earlier one than the current cutoff changes nothing) and returns the cutoff in
/// effect.
pub async fn advance_retention_cutoff(store: &Store, cutoff: &str) -> Result<String, StoreError> {
    let mut sql = Sql::new(store.dialect(), "UPDATE api_call_retention SET cutoff = ");
    sql.bind_text(cutoff)
        .push(" WHERE id = 1 AND cutoff < ")
        .bind_text(cutoff);
    sql.query().execute(store.pool()).await?;
    retention_cutoff(store).await
}

/// Retention: advances the cutoff to `cutoff` and deletes every row older than the cutoff
/// in effect, in batches. Returns how many rows went.
pub async fn prune(store: &Store, cutoff: &str) -> Result<u64, StoreError> {
    let cutoff = advance_retention_cutoff(store, cutoff).await?;
    let mut deleted = 0;
    loop {
        let mut sql = Sql::new(
            store.dialect(),
            "DELETE FROM api_calls WHERE id IN (SELECT id FROM api_calls WHERE timestamp < ",
        );
        sql.bind_text(cutoff.clone())
            .push(" LIMIT ")
            .bind(Param::Int(Some(PRUNE_BATCH)))
            .push(")");
        let n = sql.query().execute(store.pool()).await?.rows_affected();
        deleted += n;
        if n < PRUNE_BATCH as u64 {
            return Ok(deleted);
        }
    }
}
