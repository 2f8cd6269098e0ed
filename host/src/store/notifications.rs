//! Notification queue: enqueue (de-duplicated, fanned out to the routed channels), claim
//! due rows, record delivery outcomes, mark read and requeue.

use std::collections::BTreeMap;

use sqlx::any::AnyRow;
use sqlx::{Any, Row as _, Transaction};

use super::sql::{Param, Sql};
use super::{Store, StoreError};

/// Which channels a new notification goes to. Resolution, first non-empty wins: the
/// certificate's renewal policy `notification_channels`, the channels routed for its type,
/// every configured channel; with none of those, the caller's channel (the inbox as before).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routing {
    /// Every configured channel, in order.
    pub channels: Vec<String>,
    /// Channels per notification type (`CERTCTL_NOTIFICATION_ROUTES`).
    pub by_type: BTreeMap<String, Vec<String>>,
}

impl Routing {
    /// The channels of one notification.
    pub fn resolve(
        &self,
        notification_type: &str,
        policy: &[String],
        fallback: &str,
    ) -> Vec<String> {
        let chosen = if !policy.is_empty() {
            policy.to_vec()
        } else if let Some(routed) = self
            .by_type
            .get(notification_type)
            .filter(|r| !r.is_empty())
        {
            routed.clone()
        } else {
            self.channels.clone()
        };
        let mut out: Vec<String> = Vec::new();
        for channel in chosen {
            if !channel.is_empty() && !out.contains(&channel) {
                out.push(channel);
            }
        }
        if out.is_empty() {
            out.push(fallback.to_owned());
        }
        out
    }
}

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
    /// The event's dedup key (`expiry:<cert>:<not_after>:<threshold>`, …).
    pub dedup_key: Option<String>,
    /// Why the latest attempt failed (kept into the dead letter).
    pub last_error: Option<String>,
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

async fn policy_channels(
    tx: &mut Transaction<'_, Any>,
    store: &Store,
    certificate_id: &str,
) -> Result<Vec<String>, StoreError> {
    let mut sql = Sql::new(
        store.dialect(),
        "SELECT rp.notification_channels FROM managed_certificates c JOIN renewal_policies rp ON rp.id = c.renewal_policy_id WHERE c.id = ",
    );
    sql.bind_text(certificate_id);
    let text: Option<String> = match sql.query().fetch_optional(&mut **tx).await? {
        Some(row) => row.try_get(0)?,
        None => None,
    };
    Ok(text
        .and_then(|t| serde_json::from_str::<Vec<String>>(&t).ok())
        .unwrap_or_default())
}

/// Queues a notification inside `tx`, one row per routed channel (see [`Routing`]);
/// answers false when its dedup key was already used (on any channel).
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
    let policy = match n.certificate_id {
        Some(cert) => policy_channels(tx, store, cert).await?,
        None => Vec::new(),
    };
    let channels = store
        .notification_routing()
        .resolve(n.notification_type, &policy, n.channel);
    for channel in channels {
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
            .bind_text(channel)
            .push(", ")
            .bind(Param::Text(recipient.clone()))
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
    }
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

const COLUMNS: &str = "id, type, certificate_id, channel, recipient, message, status, attempts, dedup_key, last_error";

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
        dedup_key: row.try_get(8)?,
        last_error: row.try_get(9)?,
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

/// One notification by id.
pub async fn get(store: &Store, id: &str) -> Result<Option<Notification>, StoreError> {
    let mut sql = Sql::new(
        store.dialect(),
        &format!("SELECT {COLUMNS} FROM notification_events WHERE id = "),
    );
    sql.bind_text(id);
    match sql.query().fetch_optional(store.pool()).await? {
        Some(row) => Ok(Some(decode(&row)?)),
        None => Ok(None),
    }
}

/// Marks a notification read; false when there is no such row.
pub async fn mark_read(store: &Store, id: &str, now: &str) -> Result<bool, StoreError> {
    let mut sql = Sql::new(store.dialect(), "UPDATE notification_events SET read = ");
    sql.bind(Param::Bool(Some(true)))
        .push(", updated_at = ")
        .bind_text(now)
        .push(" WHERE id = ")
        .bind_text(id);
    Ok(sql.query().execute(store.pool()).await?.rows_affected() == 1)
}

/// Why a requeue was refused.
#[derive(Debug, thiserror::Error)]
pub enum RequeueError {
    /// No such notification.
    #[error("notification {0} not found")]
    NotFound(String),
    /// Only Failed and DeadLetter rows can be requeued.
    #[error(
        "notification {id} is {status}; only Failed and DeadLetter notifications can be requeued"
    )]
    WrongState {
        /// The notification.
        id: String,
        /// Its current status.
        status: String,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Puts a Failed or DeadLetter notification back in the queue: Pending, attempts reset,
/// due now, with an audit event naming who did it. Answers the previous status.
pub async fn requeue(
    store: &Store,
    id: &str,
    actor: &crate::domain::audit::Actor,
    now: &str,
) -> Result<String, RequeueError> {
    let mut tx = store.begin_write().await.map_err(StoreError::from)?;
    let mut read = Sql::new(
        store.dialect(),
        "SELECT status, attempts, last_error FROM notification_events WHERE id = ",
    );
    read.bind_text(id);
    let row = read
        .query()
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::from)?
        .ok_or_else(|| RequeueError::NotFound(id.to_owned()))?;
    let status: String = row.try_get(0).map_err(StoreError::from)?;
    let attempts: i64 = row.try_get(1).map_err(StoreError::from)?;
    let last_error: Option<String> = row.try_get(2).map_err(StoreError::from)?;
    if !matches!(status.as_str(), "Failed" | "DeadLetter") {
        return Err(RequeueError::WrongState {
            id: id.to_owned(),
            status,
        });
    }
    let mut sql = Sql::new(
        store.dialect(),
        "UPDATE notification_events SET status = 'Pending', attempts = 0, last_error = NULL, next_attempt_at = ",
    );
    sql.bind_text(now)
        .push(", updated_at = ")
        .bind_text(now)
        .push(" WHERE id = ")
        .bind_text(id)
        .push(" AND status = ")
        .bind_text(status.clone());
    sql.query()
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
    super::audit::append(
        &mut tx,
        store.dialect(),
        &crate::domain::audit::AuditEntry {
            actor: actor.clone(),
            action: "notification_requeued".into(),
            resource_type: "notification".into(),
            resource_id: id.to_owned(),
            details: serde_json::json!({
                "previous_status": status,
                "attempts": attempts,
                "last_error": last_error,
            }),
        },
        now,
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(status)
}
