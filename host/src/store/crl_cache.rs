//! CRL cache repository: the current DER CRL of each issuer (base64 text, which both
//! backends store and the `Any` driver decodes alike) with its monotonic CRL number, and
//! the log of generation attempts.

use base64::Engine as _;
use sqlx::any::AnyRow;
use sqlx::{Any, Row as _, Transaction};

use super::records::new_id;
use super::sql::{Dialect, Param, Sql};
use super::{Store, StoreError};

/// The cached CRL of one issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedCrl {
    /// Issuer.
    pub issuer_id: String,
    /// CRL number (strictly increasing per issuer).
    pub crl_number: i64,
    /// The CRL, DER.
    pub der: Vec<u8>,
    /// thisUpdate (canonical timestamp).
    pub this_update: String,
    /// nextUpdate (canonical timestamp).
    pub next_update: String,
    /// When generated.
    pub generated_at: String,
    /// How long generation took.
    pub generation_duration_ms: i64,
    /// Entries listed.
    pub revoked_count: i64,
}

const COLUMNS: &str = "issuer_id, crl_number, der_base64, this_update, next_update, generated_at, generation_duration_ms, revoked_count";

fn decode(row: &AnyRow) -> Result<CachedCrl, StoreError> {
    let b64: String = row.try_get(2)?;
    Ok(CachedCrl {
        issuer_id: row.try_get(0)?,
        crl_number: row.try_get(1)?,
        der: base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| StoreError::Corrupt(format!("cached CRL: {e}")))?,
        this_update: row.try_get(3)?,
        next_update: row.try_get(4)?,
        generated_at: row.try_get(5)?,
        generation_duration_ms: row.try_get(6)?,
        revoked_count: row.try_get(7)?,
    })
}

/// The cached CRL of an issuer.
pub async fn get(store: &Store, issuer_id: &str) -> Result<Option<CachedCrl>, StoreError> {
    let mut sql = Sql::new(
        store.dialect(),
        &format!("SELECT {COLUMNS} FROM crl_cache WHERE issuer_id = "),
    );
    sql.bind_text(issuer_id);
    sql.query()
        .fetch_optional(store.pool())
        .await?
        .map(|r| decode(&r))
        .transpose()
}

/// Every cached CRL, by issuer.
pub async fn list(store: &Store) -> Result<Vec<CachedCrl>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM crl_cache ORDER BY issuer_id"
    ))
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(decode).collect()
}

/// The last CRL number used for the issuer (0 before the first), read inside the write
/// transaction that will store the next one. On PostgreSQL the row is locked, so replicas
/// generating at once take turns; SQLite's `BEGIN IMMEDIATE` already serialises writers.
pub async fn last_number_in(
    tx: &mut Transaction<'_, Any>,
    dialect: Dialect,
    issuer_id: &str,
) -> Result<i64, StoreError> {
    let mut sql = Sql::new(
        dialect,
        "SELECT crl_number FROM crl_cache WHERE issuer_id = ",
    );
    sql.bind_text(issuer_id);
    if dialect == Dialect::Postgres {
        sql.push(" FOR UPDATE");
    }
    Ok(match sql.query().fetch_optional(&mut **tx).await? {
        Some(row) => row.try_get(0)?,
        None => 0,
    })
}

/// Stores a CRL unless a higher number is already cached (another replica won the race);
/// answers whether it was stored.
pub async fn store_in(
    tx: &mut Transaction<'_, Any>,
    dialect: Dialect,
    crl: &CachedCrl,
) -> Result<bool, StoreError> {
    let mut sql = Sql::new(
        dialect,
        &format!("INSERT INTO crl_cache ({COLUMNS}) VALUES ("),
    );
    sql.bind_text(crl.issuer_id.clone())
        .push(", ")
        .bind(Param::Int(Some(crl.crl_number)))
        .push(", ")
        .bind_text(base64::engine::general_purpose::STANDARD.encode(&crl.der))
        .push(", ")
        .bind_text(crl.this_update.clone())
        .push(", ")
        .bind_text(crl.next_update.clone())
        .push(", ")
        .bind_text(crl.generated_at.clone())
        .push(", ")
        .bind(Param::Int(Some(crl.generation_duration_ms)))
        .push(", ")
        .bind(Param::Int(Some(crl.revoked_count)))
        .push(
            ") ON CONFLICT (issuer_id) DO UPDATE SET crl_number = excluded.crl_number, der_base64 = excluded.der_base64, \
             this_update = excluded.this_update, next_update = excluded.next_update, generated_at = excluded.generated_at, \
             generation_duration_ms = excluded.generation_duration_ms, revoked_count = excluded.revoked_count \
             WHERE crl_cache.crl_number < excluded.crl_number",
        );
    Ok(sql.query().execute(&mut **tx).await?.rows_affected() == 1)
}

/// One generation attempt, for operators.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GenerationEvent {
    /// `crlgen-…`.
    pub id: String,
    /// Issuer.
    pub issuer_id: String,
    /// The number generated (None when it failed).
    pub crl_number: Option<i64>,
    /// Entries listed.
    pub revoked_count: Option<i64>,
    /// How long it took.
    pub duration_ms: i64,
    /// `scheduled`, `revocation` or `on_demand`.
    pub cause: String,
    /// Whether a CRL was stored.
    pub succeeded: bool,
    /// Why not.
    pub error: Option<String>,
    /// When.
    pub created_at: String,
}

/// Appends a generation event.
pub async fn record_event(store: &Store, event: &GenerationEvent) -> Result<(), StoreError> {
    let mut sql = Sql::new(
        store.dialect(),
        "INSERT INTO crl_generation_events (id, issuer_id, crl_number, revoked_count, duration_ms, cause, succeeded, error, created_at) VALUES (",
    );
    sql.bind_text(if event.id.is_empty() {
        new_id("crlgen")
    } else {
        event.id.clone()
    })
    .push(", ")
    .bind_text(event.issuer_id.clone())
    .push(", ")
    .bind(Param::Int(event.crl_number))
    .push(", ")
    .bind(Param::Int(event.revoked_count))
    .push(", ")
    .bind(Param::Int(Some(event.duration_ms)))
    .push(", ")
    .bind_text(event.cause.clone())
    .push(", ")
    .bind(Param::Bool(Some(event.succeeded)))
    .push(", ")
    .bind(Param::Text(event.error.clone()))
    .push(", ")
    .bind_text(event.created_at.clone())
    .push(")");
    sql.query().execute(store.pool()).await?;
    Ok(())
}

/// The most recent generation events, newest first.
pub async fn recent_events(store: &Store, limit: i64) -> Result<Vec<GenerationEvent>, StoreError> {
    let mut sql = Sql::new(
        store.dialect(),
        "SELECT id, issuer_id, crl_number, revoked_count, duration_ms, cause, succeeded, error, created_at FROM crl_generation_events ORDER BY created_at DESC, id DESC LIMIT ",
    );
    sql.bind(Param::Int(Some(limit)));
    let rows = sql.query().fetch_all(store.pool()).await?;
    rows.iter()
        .map(|r| {
            let succeeded = match r.try_get::<bool, _>(6) {
                Ok(b) => b,
                Err(_) => r.try_get::<i64, _>(6)? != 0,
            };
            Ok(GenerationEvent {
                id: r.try_get(0)?,
                issuer_id: r.try_get(1)?,
                crl_number: r.try_get(2)?,
                revoked_count: r.try_get(3)?,
                duration_ms: r.try_get(4)?,
                cause: r.try_get(5)?,
                succeeded,
                error: r.try_get(7)?,
                created_at: r.try_get(8)?,
            })
        })
        .collect()
}
