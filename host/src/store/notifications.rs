//! Notification queue: enqueue (de-duplicated), claim due rows, record delivery outcomes.

use sqlx::any::AnyRow;
use sqlx::{Any, Row as _, Transaction};

use super::sql::{Param, Sql};
use super::{Store, StoreError};

/// A notification to queue.
#[derive(Debug, Clone)]
pub struct NewNotification<'a> {
    /// ExpirationWarning, RenewalSuccess, …
    pub notification_type: &'a str,
    /// Certificate concerned.
    pub certificate_id: Option<&'a str>,
    /// Channel (email, webhook, …).
    pub channel: &'a str,
    /// Recipient; defaults to the certificate owner's e-mail when None.
    pub recipient: Option<String>,
    /// Text.
    pub message: String,
    /// At most one notification per key, ever.
    pub dedup_key: Option<String>,
}

/// A queued notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// `notif-…`.
    pub id: String,
    /// Event kind.
    pub notification_type: String,
    /// Certificate concerned.
    pub certificate_id: Option<String>,
    /// Channel.
    pub channel: String,
    /// Recipient.
    pub recipient: Option<String>,
    /// Text.
    pub message: String,
    /// Delivery state.
    pub status: String,
    /// Delivery attempts.
    pub attempts: i64,
}

async fn owner_email(
    tx: &mut Transaction<'_, Any>,
    store: &Store,
    certificate_id: &str,
) -> Result<Option<String>, StoreError> {
    let mut sql = Sql::new(
        store.dialect(),
        "SELECT o.email FROM managed_certificates c JOIN owners o ON o.id = c.owner_id WHERE c.id = ",
    );
    sql.bind_text(certificate_id);
    Ok(match sql.query().fetch_optional(&mut **tx).await? {
        Some(row) => row.try_get(0)?,
        None => None,
    })
}

/// Queues a notification inside `tx`; answers false when its dedup key was already used.
pub async fn enqueue_in(
    tx: &mut Transaction<'_, Any>,
    store: &Store,
    n: &NewNotification<'_>,
    now: &str,
) -> Result<bool, StoreError> {
    if let Some(key) = &n.dedup_key {
        let mut check = Sql::new(
            store.dialect(),
            "SELECT 1 FROM notification_events WHERE dedup_key = ",
        );
        check.bind_text(key.clone());
        if check.query().fetch_optional(&mut **tx).await?.is_some() {
            return Ok(false);
        }
    }
    let recipient = match (&n.recipient, n.certificate_id) {
        (Some(r), _) => Some(r.clone()),
        (None, Some(cert)) => owner_email(tx, store, cert).await?,
        (None, None) => None,
    };
    let mut sql = Sql::new(
        store.dialect(),
        "INSERT INTO notification_events (id, type, certificate_id, channel, recipient, message, status, read, attempts, dedup_key, created_at, updated_at) VALUES (",
    );
    sql.bind_text(super::records::new_id("notif"))
        .push(", ")
        .bind_text(n.notification_type)
        .push(", ")
        .bind(Param::Text(n.certificate_id.map(str::to_owned)))
        .push(", ")
        .bind_text(n.channel)
        .push(", ")
        .bind(Param::Text(recipient))
        .push(", ")
        .bind_text(n.message.clone())
        .push(", 'Pending', ")
        .bind(Param::Bool(Some(false)))
        .push(", 0, ")
        .bind(Param::Text(n.dedup_key.clone()))
        .push(", ")
        .bind_text(now)
        .push(", ")
        .bind_text(now)
        .push(")");
    sql.query().execute(&mut **tx).await?;
    Ok(true)
}

/// Queues a notification in its own transaction.
pub async fn enqueue(
    store: &Store,
    n: &NewNotification<'_>,
    now: &str,
) -> Result<bool, StoreError> {
    let mut tx = store.begin_write().await?;
    let added = enqueue_in(&mut tx, store, n, now).await?;
    tx.commit().await?;
    Ok(added)
}

const COLUMNS: &str = "id, type, certificate_id, channel, recipient, message, status, attempts";

fn decode(row: &AnyRow) -> Result<Notification, StoreError> {
    Ok(Notification {
        id: row.try_get(0)?,
        notification_type: row.try_get(1)?,
        certificate_id: row.try_get(2)?,
        channel: row.try_get(3)?,
        recipient: row.try_get(4)?,
        message: row.try_get(5)?,
        status: row.try_get(6)?,
        attempts: row.try_get(7)?,
    })
}

/// Rows in `status` whose next attempt is due.
pub async fn due(
    store: &Store,
    status: &str,
    now: &str,
    limit: i64,
) -> Result<Vec<Notification>, StoreError> {
    let mut sql = Sql::new(
        store.dialect(),
        &format!("SELECT {COLUMNS} FROM notification_events WHERE status = "),
    );
    sql.bind_text(status)
        .push(" AND (next_attempt_at IS NULL OR next_attempt_at <= ")
        .bind_text(now)
        .push(") ORDER BY created_at, id LIMIT ")
        .bind(Param::Int(Some(limit)));
    let rows = sql.query().fetch_all(store.pool()).await?;
    rows.iter().map(decode).collect()
}

/// Moves a row from `from` to `to` (compare-and-set), with delivery bookkeeping.
#[allow(clippy::too_many_arguments)]
pub async fn set_status(
    store: &Store,
    id: &str,
    from: &str,
    to: &str,
    count_attempt: bool,
    last_error: Option<&str>,
    next_attempt_at: Option<&str>,
    now: &str,
) -> Result<bool, StoreError> {
    let mut sql = Sql::new(store.dialect(), "UPDATE notification_events SET status = ");
    sql.bind_text(to).push(", updated_at = ").bind_text(now);
    if count_attempt {
        sql.push(", attempts = attempts + 1");
    }
    sql.push(", last_error = ")
        .bind(Param::Text(last_error.map(str::to_owned)));
    sql.push(", next_attempt_at = ")
        .bind(Param::Text(next_attempt_at.map(str::to_owned)));
    if to == "Sent" {
        sql.push(", sent_at = ").bind_text(now);
    }
    sql.push(" WHERE id = ")
        .bind_text(id)
        .push(" AND status = ")
        .bind_text(from);
    Ok(sql.query().execute(store.pool()).await?.rows_affected() == 1)
}
