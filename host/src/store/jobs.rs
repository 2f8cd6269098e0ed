//! Job repository: typed reads, claiming due work with a lease, and status transitions that
//! go through the domain state machine, compare-and-set on the old status, and append their
//! audit event in the same transaction — so a job can never move twice for one event, even
//! with several processors or after a crash.

use serde_json::{Value, json};
use sqlx::any::AnyRow;
use sqlx::{Any, Row as _, Transaction};

use super::sql::{Param, Sql};
use super::{Store, StoreError, audit};
use crate::domain::audit::{Actor, AuditEntry};
use crate::domain::job_state::{self, InvalidTransition, JobEvent, JobStatus};

/// A job row, typed for the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// `job-…`.
    pub id: String,
    /// Issuance, Renewal, Deployment or Validation.
    pub job_type: String,
    /// Certificate the work is for.
    pub certificate_id: String,
    /// Target (deployment/validation).
    pub target_id: Option<String>,
    /// Agent that performs the work.
    pub agent_id: Option<String>,
    /// Current state.
    pub status: JobStatus,
    /// Attempts made.
    pub attempts: i64,
    /// Attempts allowed.
    pub max_attempts: i64,
    /// Error of the last failed attempt.
    pub last_error: Option<String>,
    /// The agent's CSR, once submitted.
    pub csr_pem: Option<String>,
    /// Not before this time.
    pub scheduled_at: Option<String>,
    /// The issuer's id of a pending asynchronous order placed for this job: while set, the
    /// job polls that order instead of ordering again.
    pub issuer_order_id: Option<String>,
    /// When that order was placed (its deadline counts from here).
    pub issuer_order_placed_at: Option<String>,
    /// Order-status polls made so far.
    pub issuer_order_polls: i64,
    /// Last change.
    pub updated_at: String,
    /// Creation.
    pub created_at: String,
}

/// Why a job operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// The state machine refuses the event.
    #[error(transparent)]
    Invalid(#[from] InvalidTransition),
    /// Someone else changed the job between read and write.
    #[error("job {0} changed concurrently; reload and try again")]
    Raced(String),
    /// Storage.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for JobError {
    fn from(e: sqlx::Error) -> Self {
        JobError::Store(e.into())
    }
}

const COLUMNS: &str = "id, type, certificate_id, target_id, agent_id, status, attempts, max_attempts, last_error, csr_pem, scheduled_at, updated_at, created_at, issuer_order_id, issuer_order_placed_at, issuer_order_polls";

fn decode(row: &AnyRow) -> Result<Job, StoreError> {
    let status: String = row.try_get(5)?;
    Ok(Job {
        id: row.try_get(0)?,
        job_type: row.try_get(1)?,
        certificate_id: row.try_get(2)?,
        target_id: row.try_get(3)?,
        agent_id: row.try_get(4)?,
        status: JobStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("job status {status}")))?,
        attempts: row.try_get(6)?,
        max_attempts: row.try_get(7)?,
        last_error: row.try_get(8)?,
        csr_pem: row.try_get(9)?,
        scheduled_at: row.try_get(10)?,
        updated_at: row.try_get(11)?,
        created_at: row.try_get(12)?,
        issuer_order_id: row.try_get(13)?,
        issuer_order_placed_at: row.try_get(14)?,
        issuer_order_polls: row.try_get(15)?,
    })
}

/// Reads a job.
pub async fn get(store: &Store, id: &str) -> Result<Option<Job>, StoreError> {
    let mut sql = Sql::new(
        store.dialect(),
        &format!("SELECT {COLUMNS} FROM jobs WHERE id = "),
    );
    sql.bind_text(id);
    sql.query()
        .fetch_optional(store.pool())
        .await?
        .map(|r| decode(&r))
        .transpose()
}

/// Reads a job inside a transaction.
pub async fn get_in(
    tx: &mut Transaction<'_, Any>,
    store: &Store,
    id: &str,
) -> Result<Option<Job>, StoreError> {
    let mut sql = Sql::new(
        store.dialect(),
        &format!("SELECT {COLUMNS} FROM jobs WHERE id = "),
    );
    sql.bind_text(id);
    sql.query()
        .fetch_optional(&mut **tx)
        .await?
        .map(|r| decode(&r))
        .transpose()
}

/// Jobs in `status`, oldest first, optionally only those last changed before `changed_before`.
pub async fn list_in_status(
    store: &Store,
    status: JobStatus,
    types: &[&str],
    changed_before: Option<&str>,
    limit: i64,
) -> Result<Vec<Job>, StoreError> {
    let mut sql = Sql::new(
        store.dialect(),
        &format!("SELECT {COLUMNS} FROM jobs WHERE status = "),
    );
    sql.bind_text(status.as_str());
    push_types(&mut sql, types);
    if let Some(t) = changed_before {
        sql.push(" AND updated_at < ").bind_text(t);
    }
    sql.push(" ORDER BY created_at, id LIMIT ")
        .bind(Param::Int(Some(limit)));
    let rows = sql.query().fetch_all(store.pool()).await?;
    rows.iter().map(decode).collect()
}

fn push_types(sql: &mut Sql, types: &[&str]) {
    if types.is_empty() {
        return;
    }
    sql.push(" AND type IN (");
    for (i, t) in types.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.bind_text(*t);
    }
    sql.push(")");
}

/// Failed jobs with attempts left whose retry time has come, oldest first.
pub async fn retryable_due(store: &Store, now: &str, limit: i64) -> Result<Vec<Job>, StoreError> {
    let mut sql = Sql::new(
        store.dialect(),
        &format!(
            "SELECT {COLUMNS} FROM jobs WHERE status = 'Failed' AND attempts < max_attempts AND scheduled_at IS NOT NULL AND scheduled_at <= "
        ),
    );
    sql.bind_text(now)
        .push(" ORDER BY scheduled_at, id LIMIT ")
        .bind(Param::Int(Some(limit)));
    let rows = sql.query().fetch_all(store.pool()).await?;
    rows.iter().map(decode).collect()
}

/// Running jobs whose lease ended before `now` (their processor died or hung).
pub async fn expired_leases(store: &Store, now: &str) -> Result<Vec<Job>, StoreError> {
    let mut sql = Sql::new(
        store.dialect(),
        &format!(
            "SELECT {COLUMNS} FROM jobs WHERE status = 'Running' AND (lease_expires_at IS NULL OR lease_expires_at < "
        ),
    );
    sql.bind_text(now).push(")");
    let rows = sql.query().fetch_all(store.pool()).await?;
    rows.iter().map(decode).collect()
}

/// Due Pending jobs of the given types (scheduled time reached), oldest first.
pub async fn due(
    store: &Store,
    types: &[&str],
    now: &str,
    limit: i64,
) -> Result<Vec<Job>, StoreError> {
    let mut sql = Sql::new(
        store.dialect(),
        &format!(
            "SELECT {COLUMNS} FROM jobs WHERE status = 'Pending' AND (scheduled_at IS NULL OR scheduled_at <= "
        ),
    );
    sql.bind_text(now).push(")");
    push_types(&mut sql, types);
    sql.push(" ORDER BY created_at, id LIMIT ")
        .bind(Param::Int(Some(limit)));
    let rows = sql.query().fetch_all(store.pool()).await?;
    rows.iter().map(decode).collect()
}

/// An open (not final) job of `job_type` for the certificate, if any.
pub async fn open_for_certificate(
    store: &Store,
    certificate_id: &str,
    types: &[&str],
) -> Result<Option<Job>, StoreError> {
    let mut sql = Sql::new(
        store.dialect(),
        &format!(
            "SELECT {COLUMNS} FROM jobs WHERE status NOT IN ('Completed', 'Failed', 'Cancelled') AND certificate_id = "
        ),
    );
    sql.bind_text(certificate_id);
    push_types(&mut sql, types);
    sql.push(" LIMIT 1");
    sql.query()
        .fetch_optional(store.pool())
        .await?
        .map(|r| decode(&r))
        .transpose()
}

/// Extra column changes that travel with a transition.
#[derive(Debug, Default, Clone)]
pub struct Changes {
    /// New `last_error` (Some(None) clears it).
    pub last_error: Option<Option<String>>,
    /// Operator's reason (approve/reject/cancel).
    pub reason: Option<String>,
    /// CSR submitted by the agent.
    pub csr_pem: Option<String>,
    /// Earliest next run.
    pub scheduled_at: Option<Option<String>>,
    /// Lease end for Running.
    pub lease_expires_at: Option<String>,
    /// Add one attempt (on Start).
    pub count_attempt: bool,
    /// Reset attempts to zero (manual retry).
    pub reset_attempts: bool,
    /// Records a pending issuer order (id, placed at) on the job.
    pub issuer_order: Option<(String, String)>,
    /// Add one order-status poll.
    pub count_order_poll: bool,
    /// Extra audit details.
    pub details: Option<Value>,
}

/// Applies `event` to the job inside `tx`: state machine, compare-and-set, audit.
pub async fn transition_in(
    tx: &mut Transaction<'_, Any>,
    store: &Store,
    id: &str,
    event: JobEvent,
    changes: Changes,
    now: &str,
    actor: &Actor,
) -> Result<Job, JobError> {
    let job = get_in(tx, store, id)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            resource: "job".into(),
            id: id.into(),
        })?;
    let to = job_state::next(job.status, event)?;
    let mut sql = Sql::new(store.dialect(), "UPDATE jobs SET status = ");
    sql.bind_text(to.as_str())
        .push(", updated_at = ")
        .bind_text(now);
    if let Some(e) = &changes.last_error {
        sql.push(", last_error = ").bind(Param::Text(e.clone()));
    }
    if let Some(r) = &changes.reason {
        sql.push(", reason = ").bind_text(r.clone());
    }
    if let Some(c) = &changes.csr_pem {
        sql.push(", csr_pem = ").bind_text(c.clone());
    }
    if let Some(s) = &changes.scheduled_at {
        sql.push(", scheduled_at = ").bind(Param::Text(s.clone()));
    }
    match (&changes.lease_expires_at, to) {
        (Some(l), JobStatus::Running) => {
            sql.push(", started_at = ")
                .bind_text(now)
                .push(", lease_expires_at = ")
                .bind_text(l.clone());
        }
        _ => {
            sql.push(", lease_expires_at = NULL");
        }
    }
    if let Some((order_id, placed_at)) = &changes.issuer_order {
        sql.push(", issuer_order_id = ")
            .bind_text(order_id.clone())
            .push(", issuer_order_placed_at = ")
            .bind_text(placed_at.clone())
            .push(", issuer_order_polls = 0");
    }
    if changes.count_order_poll {
        sql.push(", issuer_order_polls = issuer_order_polls + 1");
    }
    if changes.count_attempt {
        sql.push(", attempts = attempts + 1");
    }
    if changes.reset_attempts {
        sql.push(", attempts = 0");
    }
    if to.is_final() {
        sql.push(", completed_at = ").bind_text(now);
    } else {
        sql.push(", completed_at = NULL");
    }
    sql.push(" WHERE id = ")
        .bind_text(id)
        .push(" AND status = ")
        .bind_text(job.status.as_str());
    let done = sql.query().execute(&mut **tx).await?;
    if done.rows_affected() != 1 {
        return Err(JobError::Raced(id.to_owned()));
    }
    let mut details = json!({"from": job.status.as_str(), "to": to.as_str(), "job_type": job.job_type, "certificate_id": job.certificate_id});
    if let Some(r) = &changes.reason {
        details["reason"] = Value::String(r.clone());
    }
    if let Some(Some(e)) = &changes.last_error {
        details["error"] = Value::String(e.clone());
    }
    if let Some((order_id, _)) = &changes.issuer_order {
        details["issuer_order_id"] = Value::String(order_id.clone());
    }
    if let Some(Value::Object(extra)) = changes.details {
        for (k, v) in extra {
            details[k] = v;
        }
    }
    audit::append(
        tx,
        store.dialect(),
        &AuditEntry {
            actor: actor.clone(),
            action: event.audit_action().to_owned(),
            resource_type: "job".into(),
            resource_id: id.to_owned(),
            details,
        },
        now,
    )
    .await?;
    get_in(tx, store, id).await?.ok_or_else(|| {
        JobError::Store(StoreError::NotFound {
            resource: "job".into(),
            id: id.into(),
        })
    })
}

/// Forgets the job's issuer order (its deadline passed), so an operator's retry orders
/// anew instead of polling an order the CA gave up on.
pub async fn clear_issuer_order(store: &Store, id: &str) -> Result<(), StoreError> {
    let mut sql = Sql::new(
        store.dialect(),
        "UPDATE jobs SET issuer_order_id = NULL, issuer_order_placed_at = NULL, issuer_order_polls = 0 WHERE id = ",
    );
    sql.bind_text(id);
    sql.query().execute(store.pool()).await?;
    Ok(())
}

/// Applies `event` in its own transaction.
pub async fn transition(
    store: &Store,
    id: &str,
    event: JobEvent,
    changes: Changes,
    now: &str,
    actor: &Actor,
) -> Result<Job, JobError> {
    let mut tx = store.begin_write().await?;
    let job = transition_in(&mut tx, store, id, event, changes, now, actor).await?;
    tx.commit().await?;
    Ok(job)
}

/// What a new job needs.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    /// Issuance, Renewal, Deployment, Validation.
    pub job_type: &'a str,
    /// Certificate.
    pub certificate_id: &'a str,
    /// Target (deployment).
    pub target_id: Option<&'a str>,
    /// Agent doing the work.
    pub agent_id: Option<&'a str>,
    /// Attempts allowed.
    pub max_attempts: i64,
}

/// Inserts a Pending job and its `job_created` audit event inside `tx`; returns the id.
pub async fn create_in(
    tx: &mut Transaction<'_, Any>,
    store: &Store,
    job: &NewJob<'_>,
    now: &str,
    actor: &Actor,
    details: Value,
) -> Result<String, StoreError> {
    let id = super::records::new_id("job");
    let mut sql = Sql::new(
        store.dialect(),
        "INSERT INTO jobs (id, type, certificate_id, target_id, agent_id, status, attempts, max_attempts, created_at, updated_at) VALUES (",
    );
    sql.bind_text(id.clone())
        .push(", ")
        .bind_text(job.job_type)
        .push(", ")
        .bind_text(job.certificate_id)
        .push(", ")
        .bind(Param::Text(job.target_id.map(str::to_owned)))
        .push(", ")
        .bind(Param::Text(job.agent_id.map(str::to_owned)))
        .push(", 'Pending', 0, ")
        .bind(Param::Int(Some(job.max_attempts)))
        .push(", ")
        .bind_text(now)
        .push(", ")
        .bind_text(now)
        .push(")");
    sql.query().execute(&mut **tx).await?;
    let mut d = json!({"job_type": job.job_type, "certificate_id": job.certificate_id});
    if let Some(t) = job.target_id {
        d["target_id"] = Value::String(t.to_owned());
    }
    if let Value::Object(extra) = details {
        for (k, v) in extra {
            d[k] = v;
        }
    }
    audit::append(
        tx,
        store.dialect(),
        &AuditEntry {
            actor: actor.clone(),
            action: "job_created".into(),
            resource_type: "job".into(),
            resource_id: id.clone(),
            details: d,
        },
        now,
    )
    .await?;
    Ok(id)
}
