//! CRL publishing: generating an issuer's CRL into the cache with the next CRL number,
//! coalescing concurrent regenerations of one issuer, and serving from the cache.
//!
//! Single flight: one tokio mutex per issuer. A caller that had to wait while another
//! generation ran still generates (that one may have read the revocations before the
//! caller's commit); callers that queued behind the same holder reuse the first result
//! generated after they asked.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};

use super::RevocationService;
use crate::domain::revocation::canonical_serial;
use crate::pki::crl::{CRL_VALIDITY, CrlContents, RevokedEntry};
use crate::store::crl_cache::{self, CachedCrl, GenerationEvent};
use crate::store::{StoreError, revocations};

/// Per-issuer generation state guarded by the issuer's mutex.
#[derive(Debug, Default)]
pub(super) struct Gate {
    /// When the last successful generation started.
    last_started: Option<Instant>,
}

/// Why no CRL can be served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CrlUnavailable {
    /// certctl does not publish a CRL for this issuer (unknown, disabled, or its CA runs
    /// its own) — answered 404.
    #[error("no CRL is published for issuer {0}")]
    NotPublished(String),
    /// Generation failed (signing or storage) — answered 503.
    #[error("CRL generation failed: {0}")]
    Failed(String),
}

impl From<StoreError> for CrlUnavailable {
    fn from(e: StoreError) -> Self {
        CrlUnavailable::Failed(e.to_string())
    }
}

/// Cache state for the admin endpoint.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CrlCacheState {
    /// One entry per cached CRL.
    pub issuers: Vec<Value>,
    /// The most recent generation attempts, newest first.
    pub events: Vec<GenerationEvent>,
}

impl RevocationService {
    fn crl_gate(&self, issuer_id: &str) -> Arc<tokio::sync::Mutex<Gate>> {
        let mut gates = self
            .crl_gates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        gates.entry(issuer_id.to_owned()).or_default().clone()
    }

    /// Generates and caches a new CRL for the issuer (or reuses one generated after this
    /// call began), recording a generation event either way. `cause` is `scheduled`,
    /// `revocation` or `on_demand`.
    pub async fn regenerate_crl(
        &self,
        issuer_id: &str,
        cause: &str,
    ) -> Result<CachedCrl, CrlUnavailable> {
        let requested = Instant::now();
        let gate = self.crl_gate(issuer_id);
        let mut gate = gate.lock().await;
        if gate.last_started.is_some_and(|t| t > requested)
            && let Some(cached) = crl_cache::get(&self.store, issuer_id).await?
        {
            return Ok(cached);
        }
        let started = Instant::now();
        let result = self.generate(issuer_id).await;
        let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        if matches!(result, Err(CrlUnavailable::NotPublished(_))) {
            return result;
        }
        let event = GenerationEvent {
            id: String::new(),
            issuer_id: issuer_id.to_owned(),
            crl_number: result.as_ref().ok().map(|c| c.crl_number),
            revoked_count: result.as_ref().ok().map(|c| c.revoked_count),
            duration_ms,
            cause: cause.to_owned(),
            succeeded: result.is_ok(),
            error: result.as_ref().err().map(ToString::to_string),
            created_at: self.clock.now_text(),
        };
        if let Err(e) = crl_cache::record_event(&self.store, &event).await {
            tracing::warn!(%issuer_id, error = %e, "could not record the CRL generation event");
        }
        match &result {
            Ok(crl) => {
                gate.last_started = Some(started);
                tracing::info!(%issuer_id, crl_number = crl.crl_number, revoked = crl.revoked_count, %cause, duration_ms, "CRL generated");
            }
            Err(e) => tracing::warn!(%issuer_id, %cause, error = %e, "CRL generation failed"),
        }
        result
    }

    async fn generate(&self, issuer_id: &str) -> Result<CachedCrl, CrlUnavailable> {
        let ca = self
            .support(issuer_id)
            .await
            .filter(|s| s.capabilities.crl)
            .and_then(|s| s.ca)
            .ok_or_else(|| CrlUnavailable::NotPublished(issuer_id.to_owned()))?;
        let started = Instant::now();
        let now = self.clock.now();
        let now_text = certctl_core::timestamp::format(now);
        let entries = revocations::for_crl(&self.store, issuer_id, &now_text)
            .await?
            .into_iter()
            .map(|r| {
                let revoked_at = certctl_core::timestamp::parse(&r.revoked_at).map_err(|e| {
                    CrlUnavailable::Failed(format!("revocation time {}: {e}", r.revoked_at))
                })?;
                Ok(RevokedEntry {
                    serial_hex: canonical_serial(&r.serial_number).unwrap_or(r.serial_number),
                    revoked_at,
                    reason: r.reason,
                })
            })
            .collect::<Result<Vec<_>, CrlUnavailable>>()?;

        let dialect = self.store.dialect();
        let mut tx = self.store.begin_write().await.map_err(StoreError::from)?;
        let last = crl_cache::last_number_in(&mut tx, dialect, issuer_id).await?;
        let contents = CrlContents {
            crl_number: u64::try_from(last).unwrap_or(0) + 1,
            this_update: now,
            next_update: now + CRL_VALIDITY,
            entries,
        };
        let der = ca
            .sign_crl(&contents)
            .map_err(|e| CrlUnavailable::Failed(e.to_string()))?;
        let crl = CachedCrl {
            issuer_id: issuer_id.to_owned(),
            crl_number: last + 1,
            der,
            this_update: certctl_core::timestamp::format(contents.this_update),
            next_update: certctl_core::timestamp::format(contents.next_update),
            generated_at: now_text,
            generation_duration_ms: i64::try_from(started.elapsed().as_millis())
                .unwrap_or(i64::MAX),
            revoked_count: i64::try_from(contents.entries.len()).unwrap_or(i64::MAX),
        };
        let stored = crl_cache::store_in(&mut tx, dialect, &crl).await?;
        tx.commit().await.map_err(StoreError::from)?;
        if stored {
            Ok(crl)
        } else {
            // Another replica stored a newer one first: serve that.
            crl_cache::get(&self.store, issuer_id)
                .await?
                .ok_or_else(|| CrlUnavailable::Failed("CRL cache row vanished".into()))
        }
    }

    /// The CRL to serve: the cached one while it is current, else a freshly generated one.
    pub async fn current_crl(&self, issuer_id: &str) -> Result<CachedCrl, CrlUnavailable> {
        let publishes = self
            .support(issuer_id)
            .await
            .is_some_and(|s| s.capabilities.crl && s.ca.is_some());
        if !publishes {
            return Err(CrlUnavailable::NotPublished(issuer_id.to_owned()));
        }
        let now = self.clock.now_text();
        if let Some(cached) = crl_cache::get(&self.store, issuer_id).await?
            && cached.next_update > now
        {
            return Ok(cached);
        }
        self.regenerate_crl(issuer_id, "on_demand").await
    }

    /// One loop tick: regenerates every publishing issuer's CRL and brings its OCSP
    /// responder up to date (rotating it near expiry). Returns a summary for the log.
    pub async fn refresh_all(&self) -> Result<String, String> {
        let mut generated = 0;
        let mut failed = Vec::new();
        for issuer_id in self.issuer_ids().await.map_err(|e| e.to_string())? {
            let Some(support) = self.support(&issuer_id).await else {
                continue;
            };
            let Some(ca) = support.ca.clone() else {
                continue;
            };
            if support.capabilities.crl {
                match self.regenerate_crl(&issuer_id, "scheduled").await {
                    Ok(_) => generated += 1,
                    Err(e) => failed.push(format!("{issuer_id}: {e}")),
                }
            }
            if support.capabilities.ocsp
                && let Err(e) = self.responder(&issuer_id, &ca).await
            {
                failed.push(format!("{issuer_id} OCSP responder: {e}"));
            }
        }
        if failed.is_empty() {
            Ok(if generated > 0 {
                format!("{generated} CRLs generated")
            } else {
                String::new()
            })
        } else {
            Err(format!(
                "{generated} CRLs generated; failed: {}",
                failed.join("; ")
            ))
        }
    }

    /// Per-issuer cache state and recent generation events (admin observability).
    pub async fn crl_cache_state(&self, events: i64) -> Result<CrlCacheState, StoreError> {
        let now = self.clock.now_text();
        let issuers = crl_cache::list(&self.store)
            .await?
            .into_iter()
            .map(|c| {
                json!({
                    "issuer_id": c.issuer_id,
                    "crl_number": c.crl_number,
                    "this_update": c.this_update,
                    "next_update": c.next_update,
                    "generated_at": c.generated_at,
                    "generation_duration_ms": c.generation_duration_ms,
                    "revoked_count": c.revoked_count,
                    "size_bytes": c.der.len(),
                    "is_stale": c.next_update <= now,
                })
            })
            .collect();
        Ok(CrlCacheState {
            issuers,
            events: crl_cache::recent_events(&self.store, events).await?,
        })
    }
}
