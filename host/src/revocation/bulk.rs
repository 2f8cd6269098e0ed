//! Bulk revocation: select certificates by criteria, record the run with one audit event,
//! revoke each one through the single-certificate path (partial failures tolerated), and
//! regenerate each affected issuer's CRL once at the end.
//!
//! Runs of up to [`BULK_SYNC_LIMIT`] certificates finish inside the request, so the answer
//! carries every outcome. Larger runs continue in a background task; the answer lists them
//! as Pending and `GET /api/v1/bulk-revocations/{id}` shows progress. A run interrupted by a
//! restart is resumed at the next start ([`RevocationService::resume_bulk`]).

use std::sync::Arc;

use crate::domain::audit::{Actor, ActorKind};
use crate::domain::revocation::{BulkRequest, RevocationReason};
use crate::store::StoreError;
use crate::store::certificates;
use crate::store::records::new_id;
use crate::store::revocations::{self, BulkItem, RevokedSerial};

use super::{RevocationService, RevokeError};

/// Runs with at most this many certificates complete before the request is answered.
pub const BULK_SYNC_LIMIT: usize = 200;

/// What `POST /certificates/bulk-revoke` answers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BulkAccepted {
    /// The bulk revocation's id (`brv-…`), also under `bulk_revocation_id`.
    pub job_id: String,
    /// Same as `job_id`.
    pub bulk_revocation_id: String,
    /// Running (continues in the background) or Completed.
    pub status: String,
    /// The criteria as understood.
    pub criteria: serde_json::Value,
    /// The reason applied.
    pub reason: String,
    /// Certificates selected.
    pub affected: usize,
    /// Revoked so far.
    pub succeeded: usize,
    /// Not revocable (already revoked, archived, never issued).
    pub skipped: usize,
    /// Failed.
    pub failed: usize,
    /// One outcome per selected certificate.
    pub results: Vec<BulkItem>,
}

fn item(certificate_id: &str, outcome: &str, message: Option<String>) -> BulkItem {
    BulkItem {
        certificate_id: certificate_id.to_owned(),
        outcome: outcome.to_owned(),
        message,
    }
}

impl RevocationService {
    /// Starts a bulk revocation (see the module doc for sync vs background).
    pub async fn bulk_revoke(
        self: &Arc<Self>,
        request: BulkRequest,
        actor: &Actor,
    ) -> Result<BulkAccepted, StoreError> {
        let mut selected = revocations::select(&self.store, &request.criteria).await?;
        // Named certificates that do not exist still get an outcome (Failed: not found).
        if let Some(ids) = &request.criteria.certificate_ids {
            for id in ids {
                if !selected.contains(id) && certificates::get(&self.store, id).await?.is_none() {
                    selected.push(id.clone());
                }
            }
            selected.sort();
        }
        let id = new_id("brv");
        let now = self.clock.now_text();
        revocations::start_bulk(
            &self.store,
            &id,
            &request.criteria,
            request.reason,
            &selected,
            &now,
            actor,
        )
        .await?;
        tracing::info!(bulk_revocation_id = %id, affected = selected.len(), reason = %request.reason, actor = %actor.name, "bulk revocation started");
        let criteria = serde_json::to_value(&request.criteria).unwrap_or_default();
        let mut accepted = BulkAccepted {
            job_id: id.clone(),
            bulk_revocation_id: id.clone(),
            status: "Running".into(),
            criteria,
            reason: request.reason.as_str().to_owned(),
            affected: selected.len(),
            succeeded: 0,
            skipped: 0,
            failed: 0,
            results: Vec::new(),
        };
        if selected.len() <= BULK_SYNC_LIMIT {
            accepted.results = self.run_bulk(&id, &selected, request.reason, actor).await;
            accepted.status = "Completed".into();
            for r in &accepted.results {
                match r.outcome.as_str() {
                    "Revoked" => accepted.succeeded += 1,
                    "Skipped" => accepted.skipped += 1,
                    _ => accepted.failed += 1,
                }
            }
        } else {
            accepted.results = selected.iter().map(|c| item(c, "Pending", None)).collect();
            let service = self.clone();
            let actor = actor.clone();
            tokio::spawn(async move {
                service
                    .run_bulk(&id, &selected, request.reason, &actor)
                    .await;
            });
        }
        Ok(accepted)
    }

    /// Revokes each certificate, records its outcome, regenerates the affected CRLs and
    /// marks the run Completed.
    async fn run_bulk(
        &self,
        bulk_id: &str,
        certificate_ids: &[String],
        reason: RevocationReason,
        actor: &Actor,
    ) -> Vec<BulkItem> {
        let mut results = Vec::with_capacity(certificate_ids.len());
        let mut revoked: Vec<RevokedSerial> = Vec::new();
        let (mut succeeded, mut skipped, mut failed) = (0i64, 0i64, 0i64);
        for certificate_id in certificate_ids {
            let outcome = match self
                .revoke_unpublished(certificate_id, reason, actor, Some(bulk_id))
                .await
            {
                Ok(serials) => {
                    succeeded += 1;
                    revoked.extend(serials);
                    item(certificate_id, "Revoked", None)
                }
                Err(RevokeError::NotRevocable(e)) => {
                    skipped += 1;
                    item(certificate_id, "Skipped", Some(e.to_string()))
                }
                Err(e) => {
                    failed += 1;
                    tracing::warn!(bulk_revocation_id = %bulk_id, %certificate_id, error = %e, "bulk revocation: certificate not revoked");
                    item(certificate_id, "Failed", Some(e.to_string()))
                }
            };
            if let Err(e) =
                revocations::set_item(&self.store, bulk_id, &outcome, &self.clock.now_text()).await
            {
                tracing::warn!(bulk_revocation_id = %bulk_id, %certificate_id, error = %e, "could not record the bulk revocation outcome");
            }
            results.push(outcome);
        }
        self.publish(&revoked, "revocation").await;
        if let Err(e) = revocations::finish_bulk(
            &self.store,
            bulk_id,
            succeeded,
            skipped,
            failed,
            &self.clock.now_text(),
        )
        .await
        {
            tracing::warn!(bulk_revocation_id = %bulk_id, error = %e, "could not complete the bulk revocation record");
        }
        tracing::info!(bulk_revocation_id = %bulk_id, succeeded, skipped, failed, "bulk revocation completed");
        results
    }

    /// Finishes runs a restart interrupted: their Pending certificates are revoked now,
    /// on behalf of whoever started the run.
    pub async fn resume_bulk(self: &Arc<Self>) -> Result<usize, StoreError> {
        let unfinished = revocations::unfinished_bulk(&self.store).await?;
        for id in &unfinished {
            let Some((run, items)) = revocations::get_bulk(&self.store, id).await? else {
                continue;
            };
            let Ok(reason) = run.reason.parse::<RevocationReason>() else {
                tracing::warn!(bulk_revocation_id = %id, reason = %run.reason, "unknown reason; run not resumed");
                continue;
            };
            let pending: Vec<String> = items
                .iter()
                .filter(|i| i.outcome == "Pending")
                .map(|i| i.certificate_id.clone())
                .collect();
            tracing::info!(bulk_revocation_id = %id, pending = pending.len(), "resuming an interrupted bulk revocation");
            let actor = Actor {
                name: run.requested_by.clone(),
                kind: ActorKind::User,
            };
            self.run_bulk(id, &pending, reason, &actor).await;
            // Counts cover the whole run, including outcomes from before the restart.
            if let Some((_, items)) = revocations::get_bulk(&self.store, id).await? {
                let count = |o: &str| items.iter().filter(|i| i.outcome == o).count() as i64;
                revocations::finish_bulk(
                    &self.store,
                    id,
                    count("Revoked"),
                    count("Skipped"),
                    count("Failed"),
                    &self.clock.now_text(),
                )
                .await?;
            }
        }
        Ok(unfinished.len())
    }
}
