//! One issuance attempt of a started job: the CSR, policy checks, the request to the
//! issuer actor (a new order, or the status of the order the job already placed), a
//! pending order persisted on the job and the job requeued for its next poll, and
//! committing the issued version (with its notifications). Deciding
//! whether to start lives in `process`; policy evaluation in `policy`; what a failure does
//! to the job in `failure`.

use super::failure::Failure;
use super::{Pipeline, system};
use crate::actors::issuer_actor::{Call, IssuerCall};
use crate::actors::issuer_registry::{Lookup, Rebuild};
use crate::domain::job_state::JobEvent;
use crate::domain::key_rules::ProfileRules;
use crate::domain::order_poll::{self, NextPoll};
use crate::domain::policy::IssuanceFacts;
use crate::issuer::{ConnectorError, IssuanceRequest, OrderOutcome};
use crate::store::certificates::{self, Certificate, IssuedVersion};
use crate::store::jobs::{self, Changes, Job};
use crate::store::notifications::{self, NewNotification};

impl Pipeline {
    pub(super) async fn issue(
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
        // A job that already placed an order polls it: ordering again could make the CA
        // issue twice (after a restart, or the previous poll's requeue). Past the order's
        // deadline (e.g. the CA stayed unreachable while polling) the attempt fails first.
        if let (Some(order_id), Some(placed_at)) =
            (&job.issuer_order_id, &job.issuer_order_placed_at)
        {
            let placed_at = certctl_core::timestamp::parse(placed_at).unwrap_or(self.now());
            if self.now() >= placed_at + self.settings.order_deadline {
                return Err(self.order_deadline_passed(job, order_id, placed_at).await);
            }
        }
        let call = match &job.issuer_order_id {
            Some(order_id) => IssuerCall::OrderStatus(order_id.clone()),
            None if job.job_type == "Renewal" => IssuerCall::Renew(request),
            None => IssuerCall::Issue(request),
        };
        let result = match addr.send(Call(call)).await {
            Ok(r) => r,
            Err(e) => Err(ConnectorError::Crashed(format!(
                "issuer actor unavailable: {e}"
            ))),
        };
        let outcome = result.map_err(|e| Failure {
            retryable: e.is_retryable(),
            message: e.to_string(),
        })?;
        let issued = match outcome {
            OrderOutcome::Issued(issued) => issued,
            OrderOutcome::Pending(order_id) => {
                return self.await_order(job, &order_id, &csr_pem).await;
            }
        };
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

    /// The issuer has not finished `order_id`: records it on the job (a new order, with its
    /// CSR, so a restart polls it instead of ordering again) and requeues the job for its
    /// next poll, releasing the lease; past the order's deadline the attempt fails.
    async fn await_order(&self, job: &Job, order_id: &str, csr_pem: &str) -> Result<(), Failure> {
        let now = self.now();
        let new_order = job.issuer_order_id.as_deref() != Some(order_id);
        let placed_at = match (&job.issuer_order_placed_at, new_order) {
            (Some(t), false) => certctl_core::timestamp::parse(t).unwrap_or(now),
            _ => now,
        };
        // Polls made, this one included: picks the step (5 s after placing the order, 15 s
        // after the first poll, …).
        let polls_done = if new_order {
            0
        } else {
            u32::try_from(job.issuer_order_polls.saturating_add(1)).unwrap_or(u32::MAX)
        };
        let draw = rand::random::<f64>() * 2.0 - 1.0;
        let next = order_poll::next_poll(
            placed_at,
            polls_done,
            now,
            self.settings.order_deadline,
            draw,
            self.settings.order_poll_scale,
        );
        let NextPoll::At(at) = next else {
            return Err(self.order_deadline_passed(job, order_id, placed_at).await);
        };
        let next_poll = certctl_core::timestamp::format(at);
        tracing::info!(job_id = %job.id, %order_id, %next_poll, polls = polls_done, "issuer order pending; job requeued to poll it");
        jobs::transition(
            &self.store,
            &job.id,
            JobEvent::AwaitOrder,
            Changes {
                scheduled_at: Some(Some(next_poll.clone())),
                issuer_order: new_order.then(|| {
                    (
                        order_id.to_owned(),
                        certctl_core::timestamp::format(placed_at),
                    )
                }),
                csr_pem: (new_order && job.csr_pem.is_none()).then(|| csr_pem.to_owned()),
                count_order_poll: !new_order,
                details: Some(
                    serde_json::json!({"issuer_order_id": order_id, "next_poll": next_poll}),
                ),
                ..Changes::default()
            },
            &self.now_text(),
            &system(),
        )
        .await
        .map_err(|e| Failure::retryable(e.to_string()))?;
        Ok(())
    }

    /// The failure of a job whose order outlived its deadline; the order is forgotten so
    /// an operator's retry orders anew.
    async fn order_deadline_passed(
        &self,
        job: &Job,
        order_id: &str,
        placed_at: time::OffsetDateTime,
    ) -> Failure {
        if let Err(e) = jobs::clear_issuer_order(&self.store, &job.id).await {
            return Failure::retryable(e.to_string());
        }
        Failure::fatal(format!(
            "issuer order {order_id} was still pending at its deadline ({} after it was placed at {})",
            humantime::format_duration(self.settings.order_deadline),
            certctl_core::timestamp::format(placed_at)
        ))
    }
}
