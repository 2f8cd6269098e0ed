//! Certificate repository beyond the generic CRUD: typed reads for the pipeline, status
//! changes, target mappings, versions, and the issuance commit that stores a version,
//! activates the certificate, completes the job and queues deployments in one transaction.

use serde_json::{Value, json};
use sqlx::any::AnyRow;
use sqlx::{Any, Row as _, Transaction};

use super::jobs::{self, Changes, JobError, NewJob};
use super::sql::{Param, Sql};
use super::{Store, StoreError, audit};
use crate::domain::audit::{Actor, AuditEntry};
use crate::domain::job_state::JobEvent;
use crate::domain::policy::Violation;

/// The fields of a managed certificate the pipeline works with.
#[derive(Debug, Clone, PartialEq)]
pub struct Certificate {
    /// `mc-…`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Subject CN.
    pub common_name: String,
    /// SANs.
    pub sans: Vec<String>,
    /// Issuer.
    pub issuer_id: Option<String>,
    /// Profile.
    pub profile_id: Option<String>,
    /// Renewal policy.
    pub renewal_policy_id: Option<String>,
    /// Owner.
    pub owner_id: Option<String>,
    /// Status.
    pub status: String,
    /// NotAfter of the current version.
    pub expires_at: Option<String>,
}

const COLUMNS: &str = "id, name, common_name, sans, issuer_id, profile_id, renewal_policy_id, owner_id, status, expires_at";

fn decode(row: &AnyRow) -> Result<Certificate, StoreError> {
    let sans: String = row.try_get(3)?;
    Ok(Certificate {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        common_name: row.try_get(2)?,
        sans: serde_json::from_str(&sans).map_err(|e| StoreError::Corrupt(format!("sans: {e}")))?,
        issuer_id: row.try_get(4)?,
        profile_id: row.try_get(5)?,
        renewal_policy_id: row.try_get(6)?,
        owner_id: row.try_get(7)?,
        status: row.try_get(8)?,
        expires_at: row.try_get(9)?,
    })
}

/// Reads one certificate.
pub async fn get(store: &Store, id: &str) -> Result<Option<Certificate>, StoreError> {
    let mut sql = Sql::new(
        store.dialect(),
        &format!("SELECT {COLUMNS} FROM managed_certificates WHERE id = "),
    );
    sql.bind_text(id);
    sql.query()
        .fetch_optional(store.pool())
        .await?
        .map(|r| decode(&r))
        .transpose()
}

/// Certificates with a current version in one of `statuses`.
pub async fn with_status(store: &Store, statuses: &[&str]) -> Result<Vec<Certificate>, StoreError> {
    let mut sql = Sql::new(
        store.dialect(),
        &format!(
            "SELECT {COLUMNS} FROM managed_certificates WHERE expires_at IS NOT NULL AND status IN ("
        ),
    );
    for (i, s) in statuses.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.bind_text(*s);
    }
    sql.push(") ORDER BY expires_at");
    let rows = sql.query().fetch_all(store.pool()).await?;
    rows.iter().map(decode).collect()
}

/// Sets the status (and audits the change) unless it already has that value.
pub async fn set_status(
    store: &Store,
    id: &str,
    from: &str,
    to: &str,
    now: &str,
    actor: &Actor,
    details: Value,
) -> Result<bool, StoreError> {
    let mut tx = store.begin_write().await?;
    let changed = set_status_in(&mut tx, store, id, from, to, now, actor, details).await?;
    tx.commit().await?;
    Ok(changed)
}

/// [`set_status`] inside a transaction; compare-and-set on `from`.
#[allow(clippy::too_many_arguments)]
pub async fn set_status_in(
    tx: &mut Transaction<'_, Any>,
    store: &Store,
    id: &str,
    from: &str,
    to: &str,
    now: &str,
    actor: &Actor,
    mut details: Value,
) -> Result<bool, StoreError> {
    if from == to {
        return Ok(false);
    }
    let mut sql = Sql::new(store.dialect(), "UPDATE managed_certificates SET status = ");
    sql.bind_text(to)
        .push(", updated_at = ")
        .bind_text(now)
        .push(" WHERE id = ")
        .bind_text(id)
        .push(" AND status = ")
        .bind_text(from);
    if sql.query().execute(&mut **tx).await?.rows_affected() != 1 {
        return Ok(false);
    }
    details["from"] = json!(from);
    details["to"] = json!(to);
    audit::append(
        tx,
        store.dialect(),
        &AuditEntry {
            actor: actor.clone(),
            action: "certificate_status_changed".into(),
            resource_type: "certificate".into(),
            resource_id: id.to_owned(),
            details,
        },
        now,
    )
    .await?;
    Ok(true)
}

/// A deployment target mapped to a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedTarget {
    /// `t-…`.
    pub target_id: String,
    /// The agent that deploys to it.
    pub agent_id: Option<String>,
    /// Enabled targets get deployment jobs.
    pub enabled: bool,
}

/// Targets mapped to the certificate.
pub async fn mapped_targets(
    store: &Store,
    certificate_id: &str,
) -> Result<Vec<MappedTarget>, StoreError> {
    let mut sql = Sql::new(
        store.dialect(),
        "SELECT t.id, t.agent_id, t.enabled FROM certificate_target_mappings m JOIN deployment_targets t ON t.id = m.target_id WHERE m.certificate_id = ",
    );
    sql.bind_text(certificate_id).push(" ORDER BY t.id");
    let rows = sql.query().fetch_all(store.pool()).await?;
    rows.iter()
        .map(|r| {
            let enabled = match r.try_get::<bool, _>(2) {
                Ok(b) => b,
                Err(_) => r.try_get::<i64, _>(2)? != 0,
            };
            Ok(MappedTarget {
                target_id: r.try_get(0)?,
                agent_id: r.try_get(1)?,
                enabled,
            })
        })
        .collect()
}

/// Maps a target to a certificate (idempotent); answers whether a mapping was added.
pub async fn map_target(
    store: &Store,
    certificate_id: &str,
    target_id: &str,
    now: &str,
    actor: &Actor,
) -> Result<bool, StoreError> {
    let mut tx = store.begin_write().await?;
    let mut check = Sql::new(
        store.dialect(),
        "SELECT 1 FROM certificate_target_mappings WHERE certificate_id = ",
    );
    check
        .bind_text(certificate_id)
        .push(" AND target_id = ")
        .bind_text(target_id);
    if check.query().fetch_optional(&mut *tx).await?.is_some() {
        return Ok(false);
    }
    let mut sql = Sql::new(
        store.dialect(),
        "INSERT INTO certificate_target_mappings (certificate_id, target_id, created_at) VALUES (",
    );
    sql.bind_text(certificate_id)
        .push(", ")
        .bind_text(target_id)
        .push(", ")
        .bind_text(now)
        .push(")");
    sql.query().execute(&mut *tx).await?;
    audit::append(
        &mut tx,
        store.dialect(),
        &AuditEntry {
            actor: actor.clone(),
            action: "certificate_target_mapped".into(),
            resource_type: "certificate".into(),
            resource_id: certificate_id.into(),
            details: json!({"target_id": target_id}),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Removes a mapping; answers whether one existed.
pub async fn unmap_target(
    store: &Store,
    certificate_id: &str,
    target_id: &str,
    now: &str,
    actor: &Actor,
) -> Result<bool, StoreError> {
    let mut tx = store.begin_write().await?;
    let mut sql = Sql::new(
        store.dialect(),
        "DELETE FROM certificate_target_mappings WHERE certificate_id = ",
    );
    sql.bind_text(certificate_id)
        .push(" AND target_id = ")
        .bind_text(target_id);
    if sql.query().execute(&mut *tx).await?.rows_affected() == 0 {
        return Ok(false);
    }
    audit::append(
        &mut tx,
        store.dialect(),
        &AuditEntry {
            actor: actor.clone(),
            action: "certificate_target_unmapped".into(),
            resource_type: "certificate".into(),
            resource_id: certificate_id.into(),
            details: json!({"target_id": target_id}),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// A stored certificate version (public material only).
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
pub struct Version {
    /// `cv-…`.
    pub id: String,
    /// Certificate.
    pub certificate_id: String,
    /// Lower-case hex serial.
    pub serial_number: String,
    /// Lower-case hex SHA-256 of the leaf DER.
    pub fingerprint_sha256: String,
    /// Leaf first, then the CA chain.
    pub pem_chain: String,
    /// ECDSA, RSA, Ed25519.
    pub key_algorithm: Option<String>,
    /// Bits.
    pub key_size: Option<i64>,
    /// NotBefore.
    pub not_before: String,
    /// NotAfter.
    pub not_after: String,
    /// Issuer that signed it.
    pub issuer_id: Option<String>,
    /// Job that produced it.
    pub job_id: Option<String>,
    /// When stored.
    pub created_at: String,
}

/// Versions of a certificate, newest first.
pub async fn versions(store: &Store, certificate_id: &str) -> Result<Vec<Version>, StoreError> {
    let mut sql = Sql::new(
        store.dialect(),
        "SELECT id, certificate_id, serial_number, fingerprint_sha256, pem_chain, key_algorithm, key_size, not_before, not_after, issuer_id, job_id, created_at FROM certificate_versions WHERE certificate_id = ",
    );
    sql.bind_text(certificate_id)
        .push(" ORDER BY created_at DESC, not_before DESC, id DESC");
    let rows = sql.query().fetch_all(store.pool()).await?;
    rows.iter()
        .map(|r| {
            Ok(Version {
                id: r.try_get(0)?,
                certificate_id: r.try_get(1)?,
                serial_number: r.try_get(2)?,
                fingerprint_sha256: r.try_get(3)?,
                pem_chain: r.try_get(4)?,
                key_algorithm: r.try_get(5)?,
                key_size: r.try_get(6)?,
                not_before: r.try_get(7)?,
                not_after: r.try_get(8)?,
                issuer_id: r.try_get(9)?,
                job_id: r.try_get(10)?,
                created_at: r.try_get(11)?,
            })
        })
        .collect()
}

/// The outcome of an issuance, ready to store.
#[derive(Debug, Clone)]
pub struct IssuedVersion {
    /// Lower-case hex serial.
    pub serial_number: String,
    /// Lower-case hex SHA-256 of the leaf DER.
    pub fingerprint_sha256: String,
    /// Leaf first, then the chain.
    pub pem_chain: String,
    /// The CSR (public).
    pub csr_pem: Option<String>,
    /// Key algorithm from the CSR.
    pub key_algorithm: String,
    /// Key size from the CSR.
    pub key_size: i64,
    /// NotBefore (canonical).
    pub not_before: String,
    /// NotAfter (canonical).
    pub not_after: String,
    /// Issuer that signed.
    pub issuer_id: String,
}

/// Stores a new version, activates the certificate, records policy warnings, completes the
/// job and queues one deployment job per enabled mapped target — all or nothing. If the job
/// was already completed (a duplicate run), nothing is written and `Ok(None)` is returned.
pub async fn commit_issuance(
    store: &Store,
    job_id: &str,
    certificate: &Certificate,
    issued: &IssuedVersion,
    warnings: &[Violation],
    now: &str,
    actor: &Actor,
) -> Result<Option<String>, JobError> {
    let targets = mapped_targets(store, &certificate.id).await?;
    let mut tx = store.begin_write().await?;
    let job = match jobs::transition_in(
        &mut tx,
        store,
        job_id,
        JobEvent::Complete,
        Changes {
            last_error: Some(None),
            details: Some(json!({"serial_number": issued.serial_number})),
            ..Changes::default()
        },
        now,
        actor,
    )
    .await
    {
        Ok(job) => job,
        Err(JobError::Raced(_)) | Err(JobError::Invalid(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let version_id = super::records::new_id("cv");
    let mut sql = Sql::new(
        store.dialect(),
        "INSERT INTO certificate_versions (id, certificate_id, serial_number, fingerprint_sha256, pem_chain, csr_pem, key_algorithm, key_size, not_before, not_after, issuer_id, job_id, created_at) VALUES (",
    );
    sql.bind_text(version_id.clone())
        .push(", ")
        .bind_text(certificate.id.clone())
        .push(", ")
        .bind_text(issued.serial_number.clone())
        .push(", ")
        .bind_text(issued.fingerprint_sha256.clone())
        .push(", ")
        .bind_text(issued.pem_chain.clone())
        .push(", ")
        .bind(Param::Text(issued.csr_pem.clone()))
        .push(", ")
        .bind_text(issued.key_algorithm.clone())
        .push(", ")
        .bind(Param::Int(Some(issued.key_size)))
        .push(", ")
        .bind_text(issued.not_before.clone())
        .push(", ")
        .bind_text(issued.not_after.clone())
        .push(", ")
        .bind_text(issued.issuer_id.clone())
        .push(", ")
        .bind_text(job_id)
        .push(", ")
        .bind_text(now)
        .push(")");
    sql.query().execute(&mut *tx).await?;

    let mut up = Sql::new(
        store.dialect(),
        "UPDATE managed_certificates SET status = 'Active', expires_at = ",
    );
    up.bind_text(issued.not_after.clone())
        .push(", updated_at = ")
        .bind_text(now)
        .push(" WHERE id = ")
        .bind_text(certificate.id.clone());
    up.query().execute(&mut *tx).await?;

    for v in warnings {
        let pv_id = super::records::new_id("pv");
        let mut pv = Sql::new(
            store.dialect(),
            "INSERT INTO policy_violations (id, certificate_id, rule_id, message, severity, created_at) VALUES (",
        );
        pv.bind_text(pv_id.clone())
            .push(", ")
            .bind_text(certificate.id.clone())
            .push(", ")
            .bind_text(v.rule_id.clone())
            .push(", ")
            .bind_text(v.message.clone())
            .push(", ")
            .bind_text(v.severity.clone())
            .push(", ")
            .bind_text(now)
            .push(")");
        pv.query().execute(&mut *tx).await?;
        super::notifications::enqueue_in(
            &mut tx,
            store,
            &super::notifications::NewNotification {
                notification_type: "PolicyViolation",
                certificate_id: Some(&certificate.id),
                channel: "email",
                recipient: None,
                message: format!(
                    "Certificate {} ({}) violates policy {} ({}): {}",
                    certificate.name, certificate.common_name, v.rule_id, v.severity, v.message
                ),
                dedup_key: Some(format!("policy-violation:{pv_id}")),
            },
            now,
        )
        .await?;
    }

    let action = if job.job_type == "Renewal" {
        "certificate_renewed"
    } else {
        "certificate_issued"
    };
    audit::append(
        &mut tx,
        store.dialect(),
        &AuditEntry {
            actor: actor.clone(),
            action: action.into(),
            resource_type: "certificate".into(),
            resource_id: certificate.id.clone(),
            details: json!({
                "version_id": version_id, "job_id": job_id, "serial_number": issued.serial_number,
                "fingerprint_sha256": issued.fingerprint_sha256, "not_after": issued.not_after, "issuer_id": issued.issuer_id,
            }),
        },
        now,
    )
    .await?;

    for t in targets.iter().filter(|t| t.enabled) {
        jobs::create_in(
            &mut tx,
            store,
            &NewJob {
                job_type: "Deployment",
                certificate_id: &certificate.id,
                target_id: Some(&t.target_id),
                agent_id: t.agent_id.as_deref(),
                max_attempts: 3,
            },
            now,
            actor,
            json!({"version_id": version_id}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Some(version_id))
}
