//! CSR checks and agent CSR submission: [`CheckedCsr`], the profile's key and SAN rules
//! applied to a CSR (shared by the agent endpoint and the processor), and
//! `POST /agents/{id}/csr`. Server-side key and CSR generation lives in `server_key`; what
//! the processor does with a checked CSR lives in `process` and `issuance`.

use serde_json::json;

use super::{Pipeline, PipelineError};
use crate::domain::audit::Actor;
use crate::domain::job_state::{JobEvent, JobStatus};
use crate::domain::key_rules::ProfileRules;
use crate::domain::profile;
use crate::store::certificates::{self, Certificate};
use crate::store::jobs::{self, Changes, Job};
use crate::store::{StoreError, records};

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
    pub(super) async fn profile_rules(
        &self,
        certificate: &Certificate,
    ) -> Result<ProfileRules, StoreError> {
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
}
