//! The issuance pipeline: what happens to an Issuance or Renewal job from Pending to
//! Completed, the CSR checks shared by the agent endpoint and the processor, and the
//! operations the API exposes (renew, CSR submission). Statuses change only through
//! `domain::job_state`; each step commits before the next begins, so a crash at any point
//! leaves a job the processor (or the lease reaper) picks up again.
//!
//! This file holds the [`Pipeline`] handle (construction, the processor and agent-hub
//! nudges, the clock), its settings and its error. The operations live in submodules, one
//! concern each: `csr` (CSR checks and agent submission), `renewal` (renewal requests),
//! `process` (the processor's step for one job), `approval`, `assignment` (which agent a
//! job belongs to), `issuance` (one attempt at the issuer), `server_key` (server keygen
//! mode), `policy` (policy evaluation and violations), `reports` (agent reports on
//! deployment jobs) and `failure` (how a job fails and retries).

mod approval;
mod assignment;
mod csr;
mod failure;
mod issuance;
mod policy;
mod process;
mod renewal;
mod reports;
mod server_key;

pub use csr::CheckedCsr;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::Addr;
use time::OffsetDateTime;

use crate::actors::agent_hub::{AgentHub, WorkFor};
use crate::actors::issuer_registry::{IssuerRegistry, Rebuild};
use crate::actors::scheduler::{LoopActor, Poke};
use crate::clock::Clock;
use crate::config::KeygenMode;
use crate::domain::audit::Actor;
use crate::store::jobs::JobError;
use crate::store::{Store, StoreError};

/// Settings of the pipeline (from the server configuration).
#[derive(Debug, Clone)]
pub struct PipelineSettings {
    /// Who generates keys.
    pub keygen_mode: KeygenMode,
    /// Requested certificate lifetime before the profile cap.
    pub validity: Duration,
    /// Base URL for CRL/OCSP locations embedded in certificates.
    pub public_url: String,
    /// Lease of a Running job.
    pub job_lease: Duration,
    /// How long an asynchronous issuer order may stay pending (`CERTCTL_ISSUER_ORDER_DEADLINE`).
    pub order_deadline: Duration,
    /// Multiplier of the order poll schedule (`CERTCTL_ISSUER_POLL_SCALE`, tests only).
    pub order_poll_scale: f64,
    /// Where server-generated keys are kept (server keygen mode only), mode 0600.
    pub server_key_dir: PathBuf,
    /// Test-only fault injection: abort the process after the issuer answered and before
    /// the result is committed (`CERTCTL_FAULT_INJECT=abort_before_commit`).
    pub abort_before_commit: bool,
}

/// Why a pipeline operation was refused (mapped to 4xx by the API).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// Input is wrong (bad CSR, names do not match, key not allowed).
    #[error("{0}")]
    Invalid(String),
    /// No such record.
    #[error("{0}")]
    NotFound(String),
    /// Not allowed in the current state.
    #[error("{0}")]
    Conflict(String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// Job state machine or storage.
    #[error(transparent)]
    Job(#[from] JobError),
    /// Storage.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The shared pipeline handle.
pub struct Pipeline {
    /// Storage.
    pub store: Store,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Settings.
    pub settings: PipelineSettings,
    /// Issuer actors.
    pub registry: Addr<IssuerRegistry>,
    processor: Mutex<Option<Addr<LoopActor>>>,
    hub: Mutex<Option<Addr<AgentHub>>>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The system actor for audit events written by the pipeline itself.
fn system() -> Actor {
    Actor::system()
}

impl Pipeline {
    /// Creates the pipeline; call [`Pipeline::set_processor`] once the processor loop runs.
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        settings: PipelineSettings,
        registry: Addr<IssuerRegistry>,
    ) -> Self {
        Self {
            store,
            clock,
            settings,
            registry,
            processor: Mutex::new(None),
            hub: Mutex::new(None),
        }
    }

    /// Registers the job processor loop so new work can wake it.
    pub fn set_processor(&self, addr: Addr<LoopActor>) {
        if let Ok(mut p) = self.processor.lock() {
            *p = Some(addr);
        }
    }

    /// Registers the agent hub so agents with a live session hear about new work at once.
    pub fn set_hub(&self, addr: Addr<AgentHub>) {
        if let Ok(mut h) = self.hub.lock() {
            *h = Some(addr);
        }
    }

    /// Nudges an agent's live session, if any (agents without one find the work by polling).
    pub fn notify_agent(&self, agent_id: &str) {
        if let Ok(h) = self.hub.lock()
            && let Some(addr) = h.as_ref()
        {
            addr.do_send(WorkFor(agent_id.to_owned()));
        }
    }

    /// Wakes the job processor (best-effort; its interval is the backstop).
    pub fn poke_processor(&self) {
        if let Ok(p) = self.processor.lock()
            && let Some(addr) = p.as_ref()
        {
            addr.do_send(Poke);
        }
    }

    /// Tells the issuer registry that issuers changed.
    pub fn issuers_changed(&self) {
        self.registry.do_send(Rebuild);
    }

    fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    fn now_text(&self) -> String {
        self.clock.now_text()
    }
}
