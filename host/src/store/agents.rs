//! Agent repository: heartbeats and the work an agent can act on now.

use serde_json::{Value, json};
use sqlx::Row as _;

use super::sql::Sql;
use super::{Store, StoreError};

/// What a heartbeat reports.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// Operating system (linux, darwin, …).
    pub os: Option<String>,
    /// CPU architecture.
    pub architecture: Option<String>,
    /// Address the agent sees for itself.
    pub ip_address: Option<String>,
    /// Host name.
    pub hostname: Option<String>,
    /// Agent version.
    pub version: Option<String>,
}

/// Records a heartbeat: the agent is Online and its facts are current.
pub async fn heartbeat(
    store: &Store,
    agent_id: &str,
    hb: &Heartbeat,
    now: &str,
) -> Result<bool, StoreError> {
    let mut sql = Sql::new(
        store.dialect(),
        "UPDATE agents SET status = 'Online', last_heartbeat_at = ",
    );
    sql.bind_text(now).push(", updated_at = ").bind_text(now);
    for (col, v) in [
        ("os", &hb.os),
        ("architecture", &hb.architecture),
        ("ip_address", &hb.ip_address),
        ("hostname", &hb.hostname),
        ("version", &hb.version),
    ] {
        if let Some(v) = v {
            sql.push(&format!(", {col} = ")).bind_text(v.clone());
        }
    }
    // A retired agent stays retired whatever it sends.
    sql.push(" WHERE retired_at IS NULL AND id = ")
        .bind_text(agent_id);
    Ok(sql.query().execute(store.pool()).await?.rows_affected() == 1)
}

/// What retiring an agent did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retired {
    /// Retired now; these keys were revoked.
    Now {
        /// Revoked key ids.
        revoked_keys: Vec<String>,
    },
    /// It was retired before (its keys are dead already).
    Already,
    /// No such agent.
    NotFound,
}

/// Soft-retires an agent: the record stays (status `Retired`, `retired_at`), every key of
/// it is revoked, and an audit event says so, all in one transaction.
pub async fn retire(
    store: &Store,
    agent_id: &str,
    now: &str,
    actor: &crate::domain::audit::Actor,
) -> Result<Retired, StoreError> {
    let mut tx = store.begin_write().await?;
    let mut find = Sql::new(store.dialect(), "SELECT retired_at FROM agents WHERE id = ");
    find.bind_text(agent_id);
    let Some(row) = find.query().fetch_optional(&mut *tx).await? else {
        return Ok(Retired::NotFound);
    };
    if row.try_get::<Option<String>, _>(0)?.is_some() {
        return Ok(Retired::Already);
    }
    let mut up = Sql::new(
        store.dialect(),
        "UPDATE agents SET status = 'Retired', retired_at = ",
    );
    up.bind_text(now)
        .push(", updated_at = ")
        .bind_text(now)
        .push(" WHERE id = ")
        .bind_text(agent_id);
    up.query().execute(&mut *tx).await?;
    let mut keys = Sql::new(
        store.dialect(),
        "SELECT id FROM api_keys WHERE revoked_at IS NULL AND agent_id = ",
    );
    keys.bind_text(agent_id);
    let revoked_keys: Vec<String> = keys
        .query()
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    let mut revoke = Sql::new(store.dialect(), "UPDATE api_keys SET revoked_at = ");
    revoke
        .bind_text(now)
        .push(" WHERE revoked_at IS NULL AND agent_id = ")
        .bind_text(agent_id);
    revoke.query().execute(&mut *tx).await?;
    let entry = crate::domain::audit::AuditEntry {
        actor: actor.clone(),
        action: "agent_retired".into(),
        resource_type: "agent".into(),
        resource_id: agent_id.to_owned(),
        details: json!({"revoked_keys": revoked_keys}),
    };
    super::audit::append(&mut tx, store.dialect(), &entry, now).await?;
    tx.commit().await?;
    Ok(Retired::Now { revoked_keys })
}

/// Work items for an agent: CSRs to generate and deployments to perform, oldest first.
pub async fn work(store: &Store, agent_id: &str, now: &str) -> Result<Vec<Value>, StoreError> {
    let mut out = Vec::new();
    let mut csr = Sql::new(
        store.dialect(),
        "SELECT j.id, j.type, j.certificate_id, c.common_name, c.sans FROM jobs j JOIN managed_certificates c ON c.id = j.certificate_id \
         WHERE j.status = 'AwaitingCSR' AND j.agent_id = ",
    );
    csr.bind_text(agent_id).push(" ORDER BY j.created_at, j.id");
    for row in csr.query().fetch_all(store.pool()).await? {
        let sans: String = row.try_get(4)?;
        out.push(json!({
            "job_id": row.try_get::<String, _>(0)?,
            "type": row.try_get::<String, _>(1)?,
            "status": "AwaitingCSR",
            "certificate_id": row.try_get::<String, _>(2)?,
            "common_name": row.try_get::<String, _>(3)?,
            "sans": serde_json::from_str::<Value>(&sans).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        }));
    }
    let mut deploy = Sql::new(
        store.dialect(),
        "SELECT j.id, j.status, j.certificate_id, j.target_id, t.type, t.config, j.attempts, j.max_attempts FROM jobs j JOIN deployment_targets t ON t.id = j.target_id \
         WHERE j.type = 'Deployment' AND j.status IN ('Pending', 'Running') AND (j.scheduled_at IS NULL OR j.scheduled_at <= ",
    );
    deploy
        .bind_text(now)
        .push(") AND j.agent_id = ")
        .bind_text(agent_id)
        .push(" ORDER BY j.created_at, j.id");
    for row in deploy.query().fetch_all(store.pool()).await? {
        let certificate_id: String = row.try_get(2)?;
        let config: String = row.try_get(5)?;
        let Some(version) = super::certificates::versions(store, &certificate_id)
            .await?
            .into_iter()
            .next()
        else {
            continue;
        };
        out.push(json!({
            "job_id": row.try_get::<String, _>(0)?,
            "type": "Deployment",
            "status": row.try_get::<String, _>(1)?,
            "certificate_id": certificate_id,
            "target_id": row.try_get::<String, _>(3)?,
            "target_type": row.try_get::<String, _>(4)?,
            "target_config": serde_json::from_str::<Value>(&config).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            "version_id": version.id,
            "serial_number": version.serial_number,
            "fingerprint_sha256": version.fingerprint_sha256,
            "pem_chain": version.pem_chain,
            "attempts": row.try_get::<i64, _>(6)?,
            "max_attempts": row.try_get::<i64, _>(7)?,
        }));
    }
    Ok(out)
}
