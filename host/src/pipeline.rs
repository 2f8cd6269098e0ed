//! The issuance pipeline: what happens to an Issuance or Renewal job from Pending to
//! Completed, the CSR checks shared by the agent endpoint and the processor, and the
//! operations the API exposes (renew, CSR submission). Statuses change only through
//! `domain::job_state`; each step commits before the next begins, so a crash at any point
//! leaves a job the processor (or the lease reaper) picks up again.

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::Addr;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::actors::agent_hub::{AgentHub, WorkFor};
use crate::actors::issuer_actor::{Call, IssuerCall};
use crate::actors::issuer_registry::{IssuerRegistry, Lookup, Rebuild};
use crate::actors::scheduler::{LoopActor, Poke};
use crate::clock::Clock;
use crate::config::KeygenMode;
use crate::domain::audit::Actor;
use crate::domain::job_state::{JobEvent, JobStatus};
use crate::domain::key_rules::ProfileRules;
use crate::domain::policy::{self, IssuanceFacts, Violation};
use crate::domain::{policy as policy_spec, profile};
use crate::issuer::{ConnectorError, IssuanceRequest};
use crate::store::certificates::{self, Certificate, IssuedVersion};
use crate::store::jobs::{self, Changes, Job, JobError, NewJob};
use crate::store::notifications::{self, NewNotification};
use crate::store::{Store, StoreError, records};

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

/// A CSR that passed every check.
#[derive(Debug, Clone)]
pub struct CheckedCsr {
    /// The CSR text.
    pub pem: String,
    /// Key algorithm (ECDSA, RSA, Ed25519).
    pub key_algorithm: String,
    /// Key size in bits.
    pub key_size: i64,
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

    async fn profile_rules(&self, certificate: &Certificate) -> Result<ProfileRules, StoreError> {
        match &certificate.profile_id {
            Some(id) => match records::get(&self.store, &profile::SPEC, id).await {
                Ok(p) => Ok(ProfileRules::from_record(&p)),
                Err(StoreError::NotFound { .. }) => Ok(ProfileRules::default()),
                Err(e) => Err(e),
            },
            None => Ok(ProfileRules::default()),
        }
    }

    /// Checks a CSR against the certificate and its profile: signature, names, key rules,
    /// required SANs. The error names the problem.
    pub async fn check_csr(
        &self,
        certificate: &Certificate,
        csr_pem: &str,
    ) -> Result<CheckedCsr, PipelineError> {
        let rules = self.profile_rules(certificate).await?;
        let info = crate::pki::csr::parse_csr(csr_pem)
            .map_err(|e| PipelineError::Invalid(e.to_string()))?;
        crate::pki::csr::check_names(&info, &certificate.common_name, &certificate.sans)
            .map_err(|e| PipelineError::Invalid(e.to_string()))?;
        let key_algorithm = info.public_key.algorithm().as_str().to_owned();
        let key_size = i64::from(info.public_key.key_size());
        rules
            .check_key(&key_algorithm, key_size)
            .map_err(PipelineError::Invalid)?;
        let mut names = certificate.sans.clone();
        names.push(certificate.common_name.clone());
        rules
            .check_required_sans(&names)
            .map_err(PipelineError::Invalid)?;
        Ok(CheckedCsr {
            pem: csr_pem.to_owned(),
            key_algorithm,
            key_size,
        })
    }

    /// `POST /agents/{id}/csr`: accepts the CSR for a job waiting for one.
    pub async fn submit_csr(
        &self,
        agent_id: &str,
        job_id: &str,
        csr_pem: &str,
        actor: &Actor,
        caller_agent: Option<&str>,
    ) -> Result<Job, PipelineError> {
        if let Some(own) = caller_agent
            && own != agent_id
        {
            return Err(PipelineError::Forbidden(format!(
                "an agent may only submit CSRs as itself ({own})"
            )));
        }
        records::get(&self.store, &crate::domain::agent::SPEC, agent_id)
            .await
            .map_err(|e| match e {
                StoreError::NotFound { .. } => {
                    PipelineError::NotFound(format!("agent {agent_id} not found"))
                }
                other => other.into(),
            })?;
        let job = jobs::get(&self.store, job_id)
            .await?
            .ok_or_else(|| PipelineError::NotFound(format!("job {job_id} not found")))?;
        // An agent submits CSRs only for the jobs assigned to it: an unassigned job could
        // otherwise be claimed by any agent for any managed name.
        if caller_agent.is_some() && job.agent_id.as_deref() != Some(agent_id) {
            return Err(PipelineError::Forbidden(format!(
                "job {job_id} is not assigned to agent {agent_id}"
            )));
        }
        if job.status != JobStatus::AwaitingCSR {
            return Err(PipelineError::Conflict(format!(
                "job {job_id} is {}, not AwaitingCSR",
                job.status
            )));
        }
        if let Some(assigned) = &job.agent_id
            && assigned != agent_id
        {
            return Err(PipelineError::Conflict(format!(
                "job {job_id} is assigned to agent {assigned}"
            )));
        }
        let certificate = certificates::get(&self.store, &job.certificate_id)
            .await?
            .ok_or_else(|| {
                PipelineError::NotFound(format!("certificate {} not found", job.certificate_id))
            })?;
        let checked = self.check_csr(&certificate, csr_pem).await?;
        let job = jobs::transition(
            &self.store,
            job_id,
            JobEvent::CsrReceived,
            Changes { csr_pem: Some(checked.pem), details: Some(json!({"agent_id": agent_id, "key_algorithm": checked.key_algorithm, "key_size": checked.key_size})), ..Changes::default() },
            &self.now_text(),
            actor,
        )
        .await?;
        self.poke_processor();
        Ok(job)
    }

    /// `POST /certificates/{id}/renew`: a Renewal job unless one is open.
    pub async fn request_renewal(
        &self,
        certificate_id: &str,
        actor: &Actor,
        trigger: &str,
    ) -> Result<Job, PipelineError> {
        self.request_renewal_with(certificate_id, actor, json!({"trigger": trigger}))
            .await
    }

    /// [`Pipeline::request_renewal`] with the audit details of the new job spelled out (the
    /// renewal check records why it renews: `{"trigger": "ari", "window_start": …}`).
    pub async fn request_renewal_with(
        &self,
        certificate_id: &str,
        actor: &Actor,
        details: Value,
    ) -> Result<Job, PipelineError> {
        let certificate = certificates::get(&self.store, certificate_id)
            .await?
            .ok_or_else(|| {
                PipelineError::NotFound(format!("certificate {certificate_id} not found"))
            })?;
        if matches!(certificate.status.as_str(), "Archived" | "Revoked") {
            return Err(PipelineError::Conflict(format!(
                "certificate {certificate_id} is {}",
                certificate.status
            )));
        }
        if certificate.issuer_id.is_none() {
            return Err(PipelineError::Conflict(format!(
                "certificate {certificate_id} has no issuer_id; set one first"
            )));
        }
        if let Some(open) =
            jobs::open_for_certificate(&self.store, certificate_id, &["Issuance", "Renewal"])
                .await?
        {
            return Err(PipelineError::Conflict(format!(
                "{} job {} is already open for this certificate ({})",
                open.job_type, open.id, open.status
            )));
        }
        let agent = self.assigned_agent(certificate_id).await?;
        let mut tx = self.store.begin_write().await.map_err(StoreError::from)?;
        let id = jobs::create_in(
            &mut tx,
            &self.store,
            &NewJob {
                job_type: "Renewal",
                certificate_id,
                target_id: None,
                agent_id: agent.as_deref(),
                max_attempts: 3,
            },
            &self.now_text(),
            actor,
            details,
        )
        .await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.poke_processor();
        jobs::get(&self.store, &id)
            .await?
            .ok_or(PipelineError::NotFound(id))
    }

    /// The leaf (DER) of a certificate's newest version, if it has one.
    pub async fn current_leaf_der(&self, certificate_id: &str) -> Option<Vec<u8>> {
        let versions = match certificates::versions(&self.store, certificate_id).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(%certificate_id, error = %e, "could not load the current version");
                return None;
            }
        };
        let chain = versions.into_iter().next()?.pem_chain;
        x509_parser::pem::Pem::iter_from_buffer(chain.as_bytes())
            .next()?
            .ok()
            .map(|p| p.contents)
    }

    /// The agent that holds keys for a certificate: the agent of its first mapped target.
    pub async fn assigned_agent(&self, certificate_id: &str) -> Result<Option<String>, StoreError> {
        Ok(certificates::mapped_targets(&self.store, certificate_id)
            .await?
            .into_iter()
            .find_map(|t| t.agent_id))
    }

    /// Advances one due Pending Issuance/Renewal job as far as it can go now.
    pub async fn process(&self, job: Job) -> Result<(), PipelineError> {
        let now = self.now_text();
        let Some(certificate) = certificates::get(&self.store, &job.certificate_id).await? else {
            self.finish_failure(&job, "certificate no longer exists", false)
                .await?;
            return Ok(());
        };
        if matches!(certificate.status.as_str(), "Archived" | "Revoked") {
            jobs::transition(
                &self.store,
                &job.id,
                JobEvent::Cancel,
                Changes {
                    reason: Some(format!("certificate is {}", certificate.status)),
                    ..Changes::default()
                },
                &now,
                &system(),
            )
            .await?;
            return Ok(());
        }
        let rules = self.profile_rules(&certificate).await?;
        if rules.requires_approval && !self.approved(&job.id).await? {
            jobs::transition(
                &self.store,
                &job.id,
                JobEvent::RequireApproval,
                Changes::default(),
                &now,
                &system(),
            )
            .await?;
            return Ok(());
        }
        if self.settings.keygen_mode == KeygenMode::Agent && job.csr_pem.is_none() {
            let mut details = json!({});
            if job.agent_id.is_none()
                && let Some(agent) = self.assigned_agent(&certificate.id).await?
            {
                self.assign_agent(&job.id, &agent).await?;
                details["agent_id"] = json!(agent);
            }
            let waiting = jobs::transition(
                &self.store,
                &job.id,
                JobEvent::AwaitCsr,
                Changes {
                    details: Some(details),
                    ..Changes::default()
                },
                &now,
                &system(),
            )
            .await?;
            if let Some(agent) = &waiting.agent_id {
                self.notify_agent(agent);
            }
            return Ok(());
        }
        let lease = self.now() + self.settings.job_lease;
        let job = jobs::transition(
            &self.store,
            &job.id,
            JobEvent::Start,
            Changes {
                lease_expires_at: Some(certctl_core::timestamp::format(lease)),
                count_attempt: true,
                ..Changes::default()
            },
            &now,
            &system(),
        )
        .await?;
        if job.job_type == "Renewal"
            && matches!(
                certificate.status.as_str(),
                "Active" | "Expiring" | "Expired" | "Failed"
            )
        {
            certificates::set_status(
                &self.store,
                &certificate.id,
                &certificate.status,
                "RenewalInProgress",
                &now,
                &system(),
                json!({"job_id": job.id}),
            )
            .await?;
        }
        match self.issue(&job, &certificate, &rules).await {
            Ok(()) => Ok(()),
            Err(Failure { message, retryable }) => {
                tracing::warn!(job_id = %job.id, error = %message, retryable, "issuance failed");
                self.finish_failure(&job, &message, retryable).await
            }
        }
    }

    async fn approved(&self, job_id: &str) -> Result<bool, StoreError> {
        let mut sql = crate::store::sql::Sql::new(
            self.store.dialect(),
            "SELECT approved_by FROM jobs WHERE id = ",
        );
        sql.bind_text(job_id);
        let row = sql.query().fetch_optional(self.store.pool()).await?;
        Ok(match row {
            Some(r) => sqlx::Row::try_get::<Option<String>, _>(&r, 0)?.is_some(),
            None => false,
        })
    }

    async fn assign_agent(&self, job_id: &str, agent_id: &str) -> Result<(), StoreError> {
        let mut sql =
            crate::store::sql::Sql::new(self.store.dialect(), "UPDATE jobs SET agent_id = ");
        sql.bind_text(agent_id)
            .push(" WHERE id = ")
            .bind_text(job_id)
            .push(" AND agent_id IS NULL");
        sql.query().execute(self.store.pool()).await?;
        Ok(())
    }

    /// A target was mapped to the certificate: an open Issuance/Renewal job without an agent
    /// (it reached AwaitingCSR before any target was mapped — the usual order, since a
    /// certificate exists before its mappings) is assigned the mapped target's agent.
    pub async fn target_mapped(
        &self,
        certificate_id: &str,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        let Some(job) =
            jobs::open_for_certificate(&self.store, certificate_id, &["Issuance", "Renewal"])
                .await?
        else {
            return Ok(());
        };
        if job.agent_id.is_some() {
            return Ok(());
        }
        let Some(agent) = self.assigned_agent(certificate_id).await? else {
            return Ok(());
        };
        let now = self.now_text();
        let mut tx = self.store.begin_write().await?;
        let mut sql =
            crate::store::sql::Sql::new(self.store.dialect(), "UPDATE jobs SET agent_id = ");
        sql.bind_text(agent.clone())
            .push(", updated_at = ")
            .bind_text(now.clone())
            .push(" WHERE id = ")
            .bind_text(job.id.clone())
            .push(" AND agent_id IS NULL");
        if sql.query().execute(&mut *tx).await?.rows_affected() == 1 {
            let entry = crate::domain::audit::AuditEntry {
                actor: actor.clone(),
                action: "job_agent_assigned".into(),
                resource_type: "job".into(),
                resource_id: job.id.clone(),
                details: json!({"agent_id": agent, "certificate_id": certificate_id, "status": job.status.as_str()}),
            };
            crate::store::audit::append(&mut tx, self.store.dialect(), &entry, &now).await?;
        }
        tx.commit().await?;
        if job.status == JobStatus::AwaitingCSR {
            self.notify_agent(&agent);
        }
        Ok(())
    }

    /// Records an operator's approval so the processor does not ask again.
    pub async fn approve(
        &self,
        job_id: &str,
        actor: &Actor,
        reason: Option<String>,
    ) -> Result<Job, PipelineError> {
        let mut tx = self.store.begin_write().await.map_err(StoreError::from)?;
        let job = jobs::transition_in(
            &mut tx,
            &self.store,
            job_id,
            JobEvent::Approve,
            Changes {
                reason,
                ..Changes::default()
            },
            &self.now_text(),
            actor,
        )
        .await?;
        let mut sql =
            crate::store::sql::Sql::new(self.store.dialect(), "UPDATE jobs SET approved_by = ");
        sql.bind_text(actor.name.clone())
            .push(" WHERE id = ")
            .bind_text(job_id);
        sql.query()
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        tx.commit().await.map_err(StoreError::from)?;
        self.poke_processor();
        Ok(job)
    }

    async fn server_csr(&self, certificate: &Certificate) -> Result<String, Failure> {
        let key = rcgen::KeyPair::generate()
            .map_err(|e| Failure::fatal(format!("server key generation: {e}")))?;
        let mut names = vec![certificate.common_name.clone()];
        names.extend(
            certificate
                .sans
                .iter()
                .filter(|s| **s != certificate.common_name)
                .cloned(),
        );
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
            .map_err(|e| Failure::fatal(e.to_string()))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, certificate.common_name.clone());
        for n in &names {
            params
                .subject_alt_names
                .push(san_for(n).map_err(Failure::fatal)?);
        }
        let csr = params
            .serialize_request(&key)
            .map_err(|e| Failure::fatal(format!("server CSR: {e}")))?;
        let csr_pem = csr
            .pem()
            .map_err(|e| Failure::fatal(format!("server CSR: {e}")))?;
        let dir = &self.settings.server_key_dir;
        std::fs::create_dir_all(dir)
            .map_err(|e| Failure::fatal(format!("{}: {e}", dir.display())))?;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        let path = dir.join(format!("{}.key", certificate.id));
        crate::tls::write_private(&path, key.serialize_pem().as_bytes(), 0o600)
            .map_err(|e| Failure::fatal(format!("{}: {e}", path.display())))?;
        Ok(csr_pem)
    }

    async fn issue(
        &self,
        job: &Job,
        certificate: &Certificate,
        rules: &ProfileRules,
    ) -> Result<(), Failure> {
        let issuer_id = certificate
            .issuer_id
            .clone()
            .ok_or_else(|| Failure::fatal("certificate has no issuer_id".into()))?;
        let csr_pem = match &job.csr_pem {
            Some(c) => c.clone(),
            None => self.server_csr(certificate).await?,
        };
        let checked = self
            .check_csr(certificate, &csr_pem)
            .await
            .map_err(|e| Failure::fatal(e.to_string()))?;
        let not_before = self.now() - time::Duration::minutes(5);
        let requested =
            time::Duration::try_from(self.settings.validity).unwrap_or(time::Duration::days(90));
        let not_after = rules.not_after(self.now(), requested);

        let mut names = certificate.sans.clone();
        if !names.contains(&certificate.common_name) {
            names.push(certificate.common_name.clone());
        }
        let facts = IssuanceFacts {
            key_algorithm: checked.key_algorithm.clone(),
            key_size: checked.key_size,
            lifetime_days: (not_after - self.now()).whole_days(),
            names,
            issuer_id: issuer_id.clone(),
        };
        let violations = self
            .evaluate_policies(&facts)
            .await
            .map_err(|e| Failure::retryable(e.to_string()))?;
        if let Some(blocking) = violations.iter().find(|v| v.blocks()) {
            self.record_violations(&certificate.id, &violations)
                .await
                .map_err(|e| Failure::retryable(e.to_string()))?;
            return Err(Failure::fatal(format!(
                "policy {} ({}) forbids this issuance: {}",
                blocking.rule_id, blocking.severity, blocking.message
            )));
        }

        let (crl_url, ocsp_url) = if rules.is_short_lived() {
            (None, None)
        } else {
            let base = self.settings.public_url.trim_end_matches('/');
            (
                Some(format!("{base}/.well-known/pki/crl/{issuer_id}")),
                Some(format!("{base}/.well-known/pki/ocsp/{issuer_id}")),
            )
        };
        let request = IssuanceRequest {
            job_id: job.id.clone(),
            certificate_id: certificate.id.clone(),
            common_name: certificate.common_name.clone(),
            sans: certificate.sans.clone(),
            csr_pem: csr_pem.clone(),
            ekus: if rules.ekus.is_empty() {
                vec!["serverAuth".into()]
            } else {
                rules.ekus.clone()
            },
            not_before,
            not_after,
            crl_url,
            ocsp_url,
            replaces_der: if job.job_type == "Renewal" {
                self.current_leaf_der(&certificate.id).await
            } else {
                None
            },
        };
        let addr = match self
            .registry
            .send(Lookup(issuer_id.clone()))
            .await
            .ok()
            .flatten()
        {
            Some(a) => a,
            None => {
                let _ = self.registry.send(Rebuild).await;
                self.registry
                    .send(Lookup(issuer_id.clone()))
                    .await
                    .ok()
                    .flatten()
                    .ok_or_else(|| {
                        Failure::fatal(format!("issuer {issuer_id} is unknown or disabled"))
                    })?
            }
        };
        let call = if job.job_type == "Renewal" {
            IssuerCall::Renew(request)
        } else {
            IssuerCall::Issue(request)
        };
        let result = match addr.send(Call(call)).await {
            Ok(r) => r,
            Err(e) => Err(ConnectorError::Crashed(format!(
                "issuer actor unavailable: {e}"
            ))),
        };
        let issued = result.map_err(|e| Failure {
            retryable: e.is_retryable(),
            message: e.to_string(),
        })?;
        if self.settings.abort_before_commit {
            tracing::error!(job_id = %job.id, "fault injection: aborting before commit");
            std::process::abort();
        }
        let version = IssuedVersion {
            serial_number: issued.serial_hex.clone(),
            fingerprint_sha256: issued.fingerprint_sha256.clone(),
            pem_chain: issued.pem_chain.clone(),
            csr_pem: Some(csr_pem),
            key_algorithm: checked.key_algorithm,
            key_size: checked.key_size,
            not_before: certctl_core::timestamp::format(issued.not_before),
            not_after: certctl_core::timestamp::format(issued.not_after),
            issuer_id,
        };
        let now = self.now_text();
        let committed = certificates::commit_issuance(
            &self.store,
            &job.id,
            certificate,
            &version,
            &violations,
            &now,
            &system(),
        )
        .await
        .map_err(|e| Failure::retryable(e.to_string()))?;
        match committed {
            Some(version_id) => {
                tracing::info!(job_id = %job.id, certificate_id = %certificate.id, %version_id, serial = %version.serial_number, "certificate issued");
                if let Ok(targets) =
                    certificates::mapped_targets(&self.store, &certificate.id).await
                {
                    for agent in targets
                        .iter()
                        .filter(|t| t.enabled)
                        .filter_map(|t| t.agent_id.as_deref())
                    {
                        self.notify_agent(agent);
                    }
                }
                if job.job_type == "Renewal" {
                    let n = NewNotification {
                        notification_type: "RenewalSuccess",
                        certificate_id: Some(&certificate.id),
                        channel: "email",
                        recipient: None,
                        message: format!(
                            "Certificate {} ({}) was renewed; new expiry {}",
                            certificate.name, certificate.common_name, version.not_after
                        ),
                        dedup_key: Some(format!("renewal-success:{}", job.id)),
                    };
                    notifications::enqueue(&self.store, &n, &now)
                        .await
                        .map_err(|e| Failure::retryable(e.to_string()))?;
                }
            }
            None => {
                tracing::warn!(job_id = %job.id, "job was already completed elsewhere; result discarded")
            }
        }
        Ok(())
    }

    async fn evaluate_policies(&self, facts: &IssuanceFacts) -> Result<Vec<Violation>, StoreError> {
        let q = crate::domain::listing::parse(
            &policy_spec::SPEC,
            &[
                ("enabled".into(), "true".into()),
                ("per_page".into(), "500".into()),
            ],
        )
        .map_err(|e| StoreError::Database(e.to_string()))?;
        let rules = records::list(&self.store, &policy_spec::SPEC, &q).await?;
        Ok(rules
            .rows
            .iter()
            .filter_map(|r| {
                policy::evaluate(
                    r.get("id").and_then(Value::as_str).unwrap_or_default(),
                    r.get("type").and_then(Value::as_str).unwrap_or_default(),
                    r.get("config").unwrap_or(&Value::Null),
                    r.get("severity")
                        .and_then(Value::as_str)
                        .unwrap_or("Warning"),
                    facts,
                )
            })
            .collect())
    }

    async fn record_violations(
        &self,
        certificate_id: &str,
        violations: &[Violation],
    ) -> Result<(), StoreError> {
        let now = self.now_text();
        for v in violations {
            let pv_id = records::new_id("pv");
            let mut pv = crate::store::sql::Sql::new(
                self.store.dialect(),
                "INSERT INTO policy_violations (id, certificate_id, rule_id, message, severity, created_at) VALUES (",
            );
            pv.bind_text(pv_id.clone())
                .push(", ")
                .bind_text(certificate_id)
                .push(", ")
                .bind_text(v.rule_id.clone())
                .push(", ")
                .bind_text(v.message.clone())
                .push(", ")
                .bind_text(v.severity.clone())
                .push(", ")
                .bind_text(now.clone())
                .push(")");
            pv.query().execute(self.store.pool()).await?;
            let n = NewNotification {
                notification_type: "PolicyViolation",
                certificate_id: Some(certificate_id),
                channel: "email",
                recipient: None,
                message: format!(
                    "Certificate {certificate_id} violates policy {} ({}): {}; issuance refused",
                    v.rule_id, v.severity, v.message
                ),
                dedup_key: Some(format!("policy-violation:{pv_id}")),
            };
            notifications::enqueue(&self.store, &n, &now).await?;
        }
        Ok(())
    }

    /// An agent reports progress on a deployment or validation job it was given.
    /// `Completed` and `Failed` from Pending imply the start; a repeated final report is a 409.
    pub async fn report_job(
        &self,
        agent_id: &str,
        job_id: &str,
        status: &str,
        message: Option<String>,
        actor: &Actor,
        caller_agent: Option<&str>,
    ) -> Result<Job, PipelineError> {
        if let Some(own) = caller_agent
            && own != agent_id
        {
            return Err(PipelineError::Forbidden(format!(
                "an agent may only report its own jobs ({own})"
            )));
        }
        let job = jobs::get(&self.store, job_id)
            .await?
            .ok_or_else(|| PipelineError::NotFound(format!("job {job_id} not found")))?;
        if job.agent_id.as_deref() != Some(agent_id) {
            // To an agent, another agent's job is not to be touched; to an admin acting for
            // the agent it is simply not there.
            if caller_agent.is_some() {
                return Err(PipelineError::Forbidden(format!(
                    "job {job_id} is not assigned to agent {agent_id}"
                )));
            }
            return Err(PipelineError::NotFound(format!(
                "job {job_id} is not assigned to agent {agent_id}"
            )));
        }
        if !matches!(job.job_type.as_str(), "Deployment" | "Validation") {
            return Err(PipelineError::Conflict(format!(
                "{} jobs are not reported by agents; submit a CSR instead",
                job.job_type
            )));
        }
        let now = self.now_text();
        let lease = certctl_core::timestamp::format(self.now() + self.settings.job_lease);
        let details = json!({"agent_id": agent_id, "message": message});
        let start = |job: &Job| job.status == JobStatus::Pending;
        let mut current = job.clone();
        if start(&current) && matches!(status, "Running" | "Completed" | "Failed") {
            current = jobs::transition(
                &self.store,
                job_id,
                JobEvent::Start,
                Changes {
                    lease_expires_at: Some(lease),
                    count_attempt: true,
                    details: Some(details.clone()),
                    ..Changes::default()
                },
                &now,
                actor,
            )
            .await?;
        }
        match status {
            "Running" => Ok(current),
            "Completed" => {
                let done = jobs::transition(
                    &self.store,
                    job_id,
                    JobEvent::Complete,
                    Changes {
                        last_error: Some(None),
                        details: Some(details),
                        ..Changes::default()
                    },
                    &now,
                    actor,
                )
                .await?;
                if let Some(cert) = certificates::get(&self.store, &done.certificate_id).await? {
                    let n = NewNotification {
                        notification_type: "DeploymentSuccess",
                        certificate_id: Some(&cert.id),
                        channel: "email",
                        recipient: None,
                        message: format!(
                            "Certificate {} deployed to target {}",
                            cert.name,
                            done.target_id.clone().unwrap_or_default()
                        ),
                        dedup_key: Some(format!("deployment-success:{job_id}")),
                    };
                    notifications::enqueue(&self.store, &n, &now).await?;
                }
                Ok(done)
            }
            "Failed" => {
                let message =
                    message.unwrap_or_else(|| "deployment failed (no message from agent)".into());
                self.finish_failure(&current, &message, true).await?;
                let failed = jobs::get(&self.store, job_id)
                    .await?
                    .ok_or_else(|| PipelineError::NotFound(job_id.to_owned()))?;
                if failed.scheduled_at.is_none()
                    && let Some(cert) =
                        certificates::get(&self.store, &failed.certificate_id).await?
                {
                    let n = NewNotification {
                        notification_type: "DeploymentFailure",
                        certificate_id: Some(&cert.id),
                        channel: "email",
                        recipient: None,
                        message: format!(
                            "Deployment of {} to target {} failed: {message}",
                            cert.name,
                            failed.target_id.clone().unwrap_or_default()
                        ),
                        dedup_key: Some(format!("deployment-failure:{job_id}")),
                    };
                    notifications::enqueue(&self.store, &n, &now).await?;
                }
                Ok(failed)
            }
            other => Err(PipelineError::Conflict(format!(
                "status must be Running, Completed or Failed, got \"{other}\""
            ))),
        }
    }

    /// Fails the job; retryable failures with attempts left get a backoff for the retry loop,
    /// the last failure marks the certificate Failed and notifies on renewals.
    async fn finish_failure(
        &self,
        job: &Job,
        message: &str,
        retryable: bool,
    ) -> Result<(), PipelineError> {
        let now = self.now();
        let attempts_left = job.attempts < job.max_attempts;
        let retry_at = (retryable && attempts_left).then(|| {
            let backoff = time::Duration::seconds(
                30 * 2_i64.pow(u32::try_from(job.attempts.clamp(0, 10)).unwrap_or(0)),
            );
            certctl_core::timestamp::format(now + backoff)
        });
        let final_failure = retry_at.is_none();
        let job = jobs::transition(
            &self.store,
            &job.id,
            JobEvent::Fail,
            Changes {
                last_error: Some(Some(message.to_owned())),
                scheduled_at: Some(retry_at),
                ..Changes::default()
            },
            &self.now_text(),
            &system(),
        )
        .await?;
        if final_failure
            && let Some(cert) = certificates::get(&self.store, &job.certificate_id).await?
        {
            if matches!(cert.status.as_str(), "Pending" | "RenewalInProgress") {
                certificates::set_status(
                    &self.store,
                    &cert.id,
                    &cert.status,
                    "Failed",
                    &self.now_text(),
                    &system(),
                    json!({"job_id": job.id, "error": message}),
                )
                .await?;
            }
            if job.job_type == "Renewal" {
                let n = NewNotification {
                    notification_type: "RenewalFailure",
                    certificate_id: Some(&cert.id),
                    channel: "email",
                    recipient: None,
                    message: format!(
                        "Renewal of {} ({}) failed: {message}",
                        cert.name, cert.common_name
                    ),
                    dedup_key: Some(format!("renewal-failure:{}", job.id)),
                };
                notifications::enqueue(&self.store, &n, &self.now_text()).await?;
            }
        }
        Ok(())
    }
}

/// A failed issuance attempt.
#[derive(Debug)]
struct Failure {
    message: String,
    retryable: bool,
}

impl Failure {
    fn fatal(message: String) -> Self {
        Self {
            message,
            retryable: false,
        }
    }
    fn retryable(message: String) -> Self {
        Self {
            message,
            retryable: true,
        }
    }
}

/// The SAN form of a name: IP address, e-mail address (S/MIME) or DNS name.
fn san_for(name: &str) -> Result<rcgen::SanType, String> {
    if let Ok(ip) = name.parse::<std::net::IpAddr>() {
        return Ok(rcgen::SanType::IpAddress(ip));
    }
    if name.contains('@') {
        return name
            .try_into()
            .map(rcgen::SanType::Rfc822Name)
            .map_err(|e| format!("{name}: {e}"));
    }
    name.try_into()
        .map(rcgen::SanType::DnsName)
        .map_err(|e| format!("{name}: {e}"))
}
