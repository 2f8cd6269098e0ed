//! Appending to the audit trail. There is deliberately no update or delete here; the
//! database refuses both anyway (see the migrations' triggers).

use sqlx::{Any, Transaction};

use super::records::new_id;
use super::sql::{Dialect, Sql};
use super::{Store, StoreError};
use crate::domain::audit::AuditEntry;

fn insert(dialect: Dialect, entry: &AuditEntry, now: &str) -> Sql {
    let mut sql = Sql::new(
        dialect,
        "INSERT INTO audit_events (id, actor, actor_type, action, resource_type, resource_id, details, timestamp) VALUES (",
    );
    sql.bind_text(new_id("audit"))
        .push(", ")
        .bind_text(entry.actor.name.clone())
        .push(", ")
        .bind_text(entry.actor.kind.as_str())
        .push(", ")
        .bind_text(entry.action.clone())
        .push(", ")
        .bind_text(entry.resource_type.clone())
        .push(", ")
        .bind_text(entry.resource_id.clone())
        .push(", ")
        .bind_text(entry.details.to_string())
        .push(", ")
        .bind_text(now)
        .push(")");
    sql
}

/// Appends inside the caller's transaction, so the event commits with the change it describes.
pub async fn append(
    tx: &mut Transaction<'_, Any>,
    dialect: Dialect,
    entry: &AuditEntry,
    now: &str,
) -> Result<(), StoreError> {
    insert(dialect, entry, now)
        .query()
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Appends on its own, for events that are not part of a larger change.
pub async fn append_alone(store: &Store, entry: &AuditEntry, now: &str) -> Result<(), StoreError> {
    insert(store.dialect(), entry, now)
        .query()
        .execute(store.pool())
        .await?;
    Ok(())
}
