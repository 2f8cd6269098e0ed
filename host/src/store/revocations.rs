//! Revocation repository: the revocation of one certificate as a single transaction
//! (status, one row per issued serial, open jobs cancelled, audit, notification), the
//! lookups CRL and OCSP answer from, and bulk revocation runs with their per-certificate
//! outcomes.

use serde_json::{Value, json};
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::certificates::{self, Certificate};
use super::jobs::{self, Changes, JobError};
use super::notifications::{self, NewNotification};
use super::records::new_id;
use super::sql::{Param, Sql};
use super::{Store, StoreError, audit};
use crate::domain::audit::{Actor, AuditEntry};
use crate::domain::job_state::JobEvent;
use crate::domain::revocation::{BulkCriteria, RevocationReason, canonical_serial};

/// A serial number revoked by [`record`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedSerial {
    /// Issuer that signed it.
    pub issuer_id: String,
    /// Canonical lower-case hex.
    pub serial_number: String,
}

/// What to revoke.
#[derive(Debug, Clone)]
pub struct Revocation<'a> {
    /// The certificate as read just before (its status is the compare-and-set guard).
    pub certificate: &'a Certificate,
    /// Why.
    pub reason: RevocationReason,
    /// Short-lived profile: recorded, never listed in CRLs.
    pub crl_exempt: bool,
    /// The bulk revocation this belongs to, if any.
    pub bulk_revocation_id: Option<&'a str>,
}

fn to_store(e: JobError) -> StoreError {
    match e {
        JobError::Store(s) => s,
        other => StoreError::Conflict(other.to_string()),
    }
}

/// Revokes a certificate in one transaction: status → Revoked (compare-and-set on the status
/// read before), a `certificate_revocations` row per issued serial, open jobs cancelled (so a
/// renewal in flight cannot re-activate it, nor a deployment install it), a
/// `certificate_revoked` audit event and a `Revocation` notification.
///
/// Answers the revoked serials, or `None` if the certificate changed status meanwhile.
pub async fn record(
    store: &Store,
    revocation: &Revocation<'_>,
    now: &str,
    actor: &Actor,
) -> Result<Option<Vec<RevokedSerial>>, StoreError> {
    let cert = revocation.certificate;
    let reason = revocation.reason;
    let mut tx = store.begin_write().await?;
    let changed = certificates::set_status_in(
        &mut tx,
        store,
        &cert.id,
        &cert.status,
        "Revoked",
        now,
        actor,
        json!({"reason": reason.as_str()}),
    )
    .await?;
    if !changed {
        return Ok(None);
    }

    // Versions are read after the status changed, inside the transaction, so a renewal that
    // committed a moment earlier has its new serial revoked too.
    let mut read = Sql::new(
        store.dialect(),
        "SELECT id, serial_number, issuer_id, not_after FROM certificate_versions WHERE certificate_id = ",
    );
    read.bind_text(cert.id.clone())
        .push(" ORDER BY created_at, id");
    let versions = read.query().fetch_all(&mut *tx).await?;
    let mut serials = Vec::new();
    for row in &versions {
        let version_id: String = row.try_get(0)?;
        let serial_number: String = row.try_get(1)?;
        let version_issuer: Option<String> = row.try_get(2)?;
        let not_after: String = row.try_get(3)?;
        let Some(issuer_id) = version_issuer.or_else(|| cert.issuer_id.clone()) else {
            tracing::warn!(certificate_id = %cert.id, %version_id, "version has no issuer; its serial cannot be published as revoked");
            continue;
        };
        let serial = canonical_serial(&serial_number).unwrap_or(serial_number);
        let mut exists = Sql::new(
            store.dialect(),
            "SELECT 1 FROM certificate_revocations WHERE issuer_id = ",
        );
        exists
            .bind_text(issuer_id.clone())
            .push(" AND serial_number = ")
            .bind_text(serial.clone());
        if exists.query().fetch_optional(&mut *tx).await?.is_some() {
            continue;
        }
        let mut sql = Sql::new(
            store.dialect(),
            "INSERT INTO certificate_revocations (id, certificate_id, version_id, serial_number, issuer_id, reason, reason_code, revoked_at, revoked_by, not_after, crl_exempt, bulk_revocation_id) VALUES (",
        );
        sql.bind_text(new_id("rev"))
            .push(", ")
            .bind_text(cert.id.clone())
            .push(", ")
            .bind_text(version_id)
            .push(", ")
            .bind_text(serial.clone())
            .push(", ")
            .bind_text(issuer_id.clone())
            .push(", ")
            .bind_text(reason.as_str())
            .push(", ")
            .bind(Param::Int(Some(i64::from(reason.code()))))
            .push(", ")
            .bind_text(now)
            .push(", ")
            .bind_text(actor.name.clone())
            .push(", ")
            .bind_text(not_after)
            .push(", ")
            .bind(Param::Bool(Some(revocation.crl_exempt)))
            .push(", ")
            .bind(Param::Text(
                revocation.bulk_revocation_id.map(str::to_owned),
            ))
            .push(")");
        sql.query().execute(&mut *tx).await?;
        serials.push(RevokedSerial {
            issuer_id,
            serial_number: serial,
        });
    }

    let mut open = Sql::new(
        store.dialect(),
        "SELECT id FROM jobs WHERE status NOT IN ('Completed', 'Failed', 'Cancelled') AND certificate_id = ",
    );
    open.bind_text(cert.id.clone()).push(" ORDER BY id");
    let open_jobs: Vec<String> = open
        .query()
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    for job_id in &open_jobs {
        jobs::transition_in(
            &mut tx,
            store,
            job_id,
            JobEvent::Cancel,
            Changes {
                reason: Some(format!("certificate revoked ({reason})")),
                ..Changes::default()
            },
            now,
            actor,
        )
        .await
        .map_err(to_store)?;
    }

    let mut details = json!({
        "reason": reason.as_str(),
        "reason_code": reason.code(),
        "serial_numbers": serials.iter().map(|s| s.serial_number.clone()).collect::<Vec<_>>(),
        "issuer_ids": serials.iter().map(|s| s.issuer_id.clone()).collect::<std::collections::BTreeSet<_>>(),
        "cancelled_jobs": open_jobs,
        "crl_exempt": revocation.crl_exempt,
    });
    if let Some(bulk) = revocation.bulk_revocation_id {
        details["bulk_revocation_id"] = json!(bulk);
    }
    audit::append(
        &mut tx,
        store.dialect(),
        &AuditEntry {
            actor: actor.clone(),
            action: "certificate_revoked".into(),
            resource_type: "certificate".into(),
            resource_id: cert.id.clone(),
            details,
        },
        now,
    )
    .await?;
    notifications::enqueue_in(
        &mut tx,
        store,
        &NewNotification {
            notification_type: "Revocation",
            certificate_id: Some(&cert.id),
            channel: "email",
            recipient: None,
            message: format!(
                "Certificate {} ({}) was revoked: {reason}",
                cert.name, cert.common_name
            ),
            dedup_key: Some(format!("revocation:{}", cert.id)),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(Some(serials))
}

/// A stored revocation of one serial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRevocation {
    /// Certificate.
    pub certificate_id: String,
    /// Canonical hex serial.
    pub serial_number: String,
    /// Why.
    pub reason: RevocationReason,
    /// When (canonical timestamp).
    pub revoked_at: String,
    /// Short-lived profile at revocation time: outside CRL and OCSP coverage.
    pub crl_exempt: bool,
}

fn decode(row: &AnyRow) -> Result<StoredRevocation, StoreError> {
    let code: i64 = row.try_get(2)?;
    let crl_exempt = match row.try_get::<bool, _>(4) {
        Ok(b) => b,
        Err(_) => row.try_get::<i64, _>(4)? != 0,
    };
    Ok(StoredRevocation {
        certificate_id: row.try_get(0)?,
        serial_number: row.try_get(1)?,
        reason: RevocationReason::from_code(code)
            .ok_or_else(|| StoreError::Corrupt(format!("revocation reason code {code}")))?,
        revoked_at: row.try_get(3)?,
        crl_exempt,
    })
}

const COLUMNS: &str = "certificate_id, serial_number, reason_code, revoked_at, crl_exempt";

/// The revocation of `serial` (canonical hex) by `issuer_id`, if any.
pub async fn find(
    store: &Store,
    issuer_id: &str,
    serial: &str,
) -> Result<Option<StoredRevocation>, StoreError> {
    let mut sql = Sql::new(
        store.dialect(),
        &format!("SELECT {COLUMNS} FROM certificate_revocations WHERE issuer_id = "),
    );
    sql.bind_text(issuer_id)
        .push(" AND serial_number = ")
        .bind_text(serial);
    sql.query()
        .fetch_optional(store.pool())
        .await?
        .map(|r| decode(&r))
        .transpose()
}

/// The certificate `issuer_id` issued `serial` (canonical hex) for, as far as certctl
/// recorded; `None` when it never did.
pub async fn issued_certificate(
    store: &Store,
    issuer_id: &str,
    serial: &str,
) -> Result<Option<String>, StoreError> {
    let mut sql = Sql::new(
        store.dialect(),
        "SELECT certificate_id FROM certificate_versions WHERE issuer_id = ",
    );
    sql.bind_text(issuer_id)
        .push(" AND serial_number = ")
        .bind_text(serial);
    sql.query()
        .fetch_optional(store.pool())
        .await?
        .map(|r| r.try_get(0).map_err(StoreError::from))
        .transpose()
}

/// What a CRL of `issuer_id` lists at `now`: revoked serials that are not CRL-exempt and
/// whose certificate has not yet expired (RFC 5280 §3.3 lets expired entries go).
pub async fn for_crl(
    store: &Store,
    issuer_id: &str,
    now: &str,
) -> Result<Vec<StoredRevocation>, StoreError> {
    let mut sql = Sql::new(
        store.dialect(),
        &format!("SELECT {COLUMNS} FROM certificate_revocations WHERE issuer_id = "),
    );
    sql.bind_text(issuer_id)
        .push(" AND crl_exempt = ")
        .bind(Param::Bool(Some(false)))
        .push(" AND (not_after IS NULL OR not_after > ")
        .bind_text(now)
        .push(") ORDER BY revoked_at, serial_number");
    let rows = sql.query().fetch_all(store.pool()).await?;
    rows.iter().map(decode).collect()
}

/// Revocations of one certificate, oldest first.
pub async fn for_certificate(
    store: &Store,
    certificate_id: &str,
) -> Result<Vec<StoredRevocation>, StoreError> {
    let mut sql = Sql::new(
        store.dialect(),
        &format!("SELECT {COLUMNS} FROM certificate_revocations WHERE certificate_id = "),
    );
    sql.bind_text(certificate_id)
        .push(" ORDER BY revoked_at, serial_number");
    let rows = sql.query().fetch_all(store.pool()).await?;
    rows.iter().map(decode).collect()
}

// ---------------------------------------------------------------------------------------
// Bulk revocation
// ---------------------------------------------------------------------------------------

/// Ids of the certificates a bulk revocation selects, by id. All given criteria must hold.
/// Without an explicit id list, Archived certificates are not selected; already Revoked ones
/// are, so the run reports them (Skipped, with the reason) rather than silently leaving them out.
pub async fn select(store: &Store, criteria: &BulkCriteria) -> Result<Vec<String>, StoreError> {
    let mut selected = Vec::new();
    match &criteria.certificate_ids {
        Some(ids) => {
            // Chunked so a long list never exceeds a backend's parameter limit.
            for chunk in ids.chunks(500) {
                let rows = selection(store, criteria, Some(chunk))
                    .query()
                    .fetch_all(store.pool())
                    .await?;
                for r in &rows {
                    selected.push(r.try_get::<String, _>(0)?);
                }
            }
            selected.sort();
        }
        None => {
            let rows = selection(store, criteria, None)
                .query()
                .fetch_all(store.pool())
                .await?;
            for r in &rows {
                selected.push(r.try_get::<String, _>(0)?);
            }
        }
    }
    Ok(selected)
}

/// The selection query for [`select`], restricted to `ids` when given.
fn selection(store: &Store, criteria: &BulkCriteria, ids: Option<&[String]>) -> Sql {
    let mut sql = Sql::new(
        store.dialect(),
        "SELECT c.id FROM managed_certificates c WHERE 1 = 1",
    );
    if let Some(v) = &criteria.profile_id {
        sql.push(" AND c.profile_id = ").bind_text(v.clone());
    }
    if let Some(v) = &criteria.owner_id {
        sql.push(" AND c.owner_id = ").bind_text(v.clone());
    }
    if let Some(v) = &criteria.issuer_id {
        sql.push(" AND c.issuer_id = ").bind_text(v.clone());
    }
    if let Some(v) = &criteria.team_id {
        sql.push(" AND (c.team_id = ")
            .bind_text(v.clone())
            .push(" OR c.owner_id IN (SELECT o.id FROM owners o WHERE o.team_id = ")
            .bind_text(v.clone())
            .push("))");
    }
    if let Some(v) = &criteria.agent_id {
        sql.push(" AND c.id IN (SELECT m.certificate_id FROM certificate_target_mappings m JOIN deployment_targets t ON t.id = m.target_id WHERE t.agent_id = ")
            .bind_text(v.clone())
            .push(")");
    }
    match ids {
        Some(ids) => {
            sql.push(" AND c.id IN (");
            for (i, id) in ids.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.bind_text(id.clone());
            }
            sql.push(")");
        }
        None => {
            sql.push(" AND c.status <> 'Archived'");
        }
    }
    sql.push(" ORDER BY c.id");
    sql
}

/// A bulk revocation run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BulkRevocation {
    /// `brv-…`.
    pub id: String,
    /// The criteria as given.
    pub criteria: Value,
    /// RFC 5280 reason name.
    pub reason: String,
    /// Running or Completed.
    pub status: String,
    /// Certificates selected.
    pub affected: i64,
    /// Revoked.
    pub succeeded: i64,
    /// Not revoked because they could not be (already revoked, never issued, archived).
    pub skipped: i64,
    /// Revocation attempted and failed.
    pub failed: i64,
    /// Who asked.
    pub requested_by: String,
    /// When asked.
    pub created_at: String,
    /// When the last certificate was done.
    pub completed_at: Option<String>,
}

/// One certificate's outcome in a bulk revocation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BulkItem {
    /// Certificate.
    pub certificate_id: String,
    /// Pending, Revoked, Skipped or Failed.
    pub outcome: String,
    /// Why, for Skipped and Failed.
    pub message: Option<String>,
}

/// Starts a bulk revocation: the run (Running), one Pending item per selected certificate
/// and the single `bulk_revocation_initiated` audit event, in one transaction.
#[allow(clippy::too_many_arguments)]
pub async fn start_bulk(
    store: &Store,
    id: &str,
    criteria: &BulkCriteria,
    reason: RevocationReason,
    certificate_ids: &[String],
    now: &str,
    actor: &Actor,
) -> Result<(), StoreError> {
    let criteria_json = serde_json::to_value(criteria)
        .map_err(|e| StoreError::Database(format!("criteria: {e}")))?;
    let affected = i64::try_from(certificate_ids.len()).unwrap_or(i64::MAX);
    let mut tx = store.begin_write().await?;
    let mut sql = Sql::new(
        store.dialect(),
        "INSERT INTO bulk_revocations (id, criteria, reason, reason_code, status, affected, succeeded, skipped, failed, requested_by, created_at) VALUES (",
    );
    sql.bind_text(id)
        .push(", ")
        .bind_text(criteria_json.to_string())
        .push(", ")
        .bind_text(reason.as_str())
        .push(", ")
        .bind(Param::Int(Some(i64::from(reason.code()))))
        .push(", 'Running', ")
        .bind(Param::Int(Some(affected)))
        .push(", 0, 0, 0, ")
        .bind_text(actor.name.clone())
        .push(", ")
        .bind_text(now)
        .push(")");
    sql.query().execute(&mut *tx).await?;
    for certificate_id in certificate_ids {
        let mut item = Sql::new(
            store.dialect(),
            "INSERT INTO bulk_revocation_items (bulk_revocation_id, certificate_id, outcome, updated_at) VALUES (",
        );
        item.bind_text(id)
            .push(", ")
            .bind_text(certificate_id.clone())
            .push(", 'Pending', ")
            .bind_text(now)
            .push(")");
        item.query().execute(&mut *tx).await?;
    }
    audit::append(
        &mut tx,
        store.dialect(),
        &AuditEntry {
            actor: actor.clone(),
            action: "bulk_revocation_initiated".into(),
            resource_type: "bulk_revocation".into(),
            resource_id: id.to_owned(),
            details: json!({"criteria": criteria_json, "reason": reason.as_str(), "affected": affected}),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Records one certificate's outcome.
pub async fn set_item(
    store: &Store,
    bulk_id: &str,
    item: &BulkItem,
    now: &str,
) -> Result<(), StoreError> {
    let mut sql = Sql::new(
        store.dialect(),
        "UPDATE bulk_revocation_items SET outcome = ",
    );
    sql.bind_text(item.outcome.clone())
        .push(", message = ")
        .bind(Param::Text(item.message.clone()))
        .push(", updated_at = ")
        .bind_text(now)
        .push(" WHERE bulk_revocation_id = ")
        .bind_text(bulk_id)
        .push(" AND certificate_id = ")
        .bind_text(item.certificate_id.clone());
    sql.query().execute(store.pool()).await?;
    Ok(())
}

/// Marks the run Completed with its counts.
pub async fn finish_bulk(
    store: &Store,
    id: &str,
    succeeded: i64,
    skipped: i64,
    failed: i64,
    now: &str,
) -> Result<(), StoreError> {
    let mut sql = Sql::new(
        store.dialect(),
        "UPDATE bulk_revocations SET status = 'Completed', succeeded = ",
    );
    sql.bind(Param::Int(Some(succeeded)))
        .push(", skipped = ")
        .bind(Param::Int(Some(skipped)))
        .push(", failed = ")
        .bind(Param::Int(Some(failed)))
        .push(", completed_at = ")
        .bind_text(now)
        .push(" WHERE id = ")
        .bind_text(id);
    sql.query().execute(store.pool()).await?;
    Ok(())
}

const BULK_COLUMNS: &str = "id, criteria, reason, status, affected, succeeded, skipped, failed, requested_by, created_at, completed_at";

fn decode_bulk(row: &AnyRow) -> Result<BulkRevocation, StoreError> {
    let criteria: String = row.try_get(1)?;
    Ok(BulkRevocation {
        id: row.try_get(0)?,
        criteria: serde_json::from_str(&criteria)
            .map_err(|e| StoreError::Corrupt(format!("bulk revocation criteria: {e}")))?,
        reason: row.try_get(2)?,
        status: row.try_get(3)?,
        affected: row.try_get(4)?,
        succeeded: row.try_get(5)?,
        skipped: row.try_get(6)?,
        failed: row.try_get(7)?,
        requested_by: row.try_get(8)?,
        created_at: row.try_get(9)?,
        completed_at: row.try_get(10)?,
    })
}

/// One run and its items (in certificate id order).
pub async fn get_bulk(
    store: &Store,
    id: &str,
) -> Result<Option<(BulkRevocation, Vec<BulkItem>)>, StoreError> {
    let mut sql = Sql::new(
        store.dialect(),
        &format!("SELECT {BULK_COLUMNS} FROM bulk_revocations WHERE id = "),
    );
    sql.bind_text(id);
    let Some(row) = sql.query().fetch_optional(store.pool()).await? else {
        return Ok(None);
    };
    let run = decode_bulk(&row)?;
    let mut items = Sql::new(
        store.dialect(),
        "SELECT certificate_id, outcome, message FROM bulk_revocation_items WHERE bulk_revocation_id = ",
    );
    items.bind_text(id).push(" ORDER BY certificate_id");
    let rows = items.query().fetch_all(store.pool()).await?;
    let items = rows
        .iter()
        .map(|r| {
            Ok(BulkItem {
                certificate_id: r.try_get(0)?,
                outcome: r.try_get(1)?,
                message: r.try_get(2)?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(Some((run, items)))
}

/// Runs, newest first, and how many there are.
pub async fn list_bulk(
    store: &Store,
    limit: i64,
    offset: i64,
) -> Result<(Vec<BulkRevocation>, i64), StoreError> {
    let total: i64 = sqlx::query("SELECT COUNT(*) FROM bulk_revocations")
        .fetch_one(store.pool())
        .await?
        .try_get(0)?;
    let mut sql = Sql::new(
        store.dialect(),
        &format!(
            "SELECT {BULK_COLUMNS} FROM bulk_revocations ORDER BY created_at DESC, id DESC LIMIT "
        ),
    );
    sql.bind(Param::Int(Some(limit)))
        .push(" OFFSET ")
        .bind(Param::Int(Some(offset)));
    let rows = sql.query().fetch_all(store.pool()).await?;
    Ok((
        rows.iter().map(decode_bulk).collect::<Result<_, _>>()?,
        total,
    ))
}

/// Runs still marked Running (a restart interrupted them).
pub async fn unfinished_bulk(store: &Store) -> Result<Vec<String>, StoreError> {
    let rows =
        sqlx::query("SELECT id FROM bulk_revocations WHERE status = 'Running' ORDER BY created_at")
            .fetch_all(store.pool())
            .await?;
    rows.iter()
        .map(|r| r.try_get(0).map_err(StoreError::from))
        .collect()
}
