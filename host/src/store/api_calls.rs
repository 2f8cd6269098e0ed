//! The API-call log: one append-only row per request (health probes excluded).

use super::records::new_id;
use super::sql::{Param, Sql};
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

/// Appends one call.
pub async fn append(store: &Store, call: &ApiCall) -> Result<(), StoreError> {
    let mut sql = Sql::new(
        store.dialect(),
        "INSERT INTO api_calls (id, request_id, method, path, actor, body_sha256, status, latency_ms, timestamp) VALUES (",
    );
    sql.bind_text(new_id("call"))
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
    sql.query().execute(store.pool()).await?;
    Ok(())
}
