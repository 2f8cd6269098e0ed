//! One ACME order: newOrder (with `profile` and ARI `replaces`), answering the challenges
//! (HTTP-01 through the responder, DNS through the operator scripts), polling, finalizing
//! with the CSR and downloading the chain.

use std::net::IpAddr;
use std::time::Duration;

use instant_acme::{
    AuthorizationStatus, ChallengeType, Identifier, NewOrder, OrderStatus, RetryPolicy,
};
use sha2::{Digest, Sha256};

use super::ari::ari_id;
use super::config::ChallengeKind;
use super::connector::AcmeIssuer;
use super::dns::DnsRecord;
use crate::issuer::{ConnectorError, IssuanceRequest, IssuanceResult};

impl AcmeIssuer {
    pub(super) async fn order(
        &self,
        req: &IssuanceRequest,
    ) -> Result<IssuanceResult, ConnectorError> {
        let account = self.account().await?;
        let mut names: Vec<String> = Vec::new();
        if !req.common_name.is_empty() {
            names.push(req.common_name.clone());
        }
        for s in &req.sans {
            if !names.contains(s) {
                names.push(s.clone());
            }
        }
        let identifiers: Vec<Identifier> = names
            .iter()
            .map(|n| match n.parse::<IpAddr>() {
                Ok(ip) => Identifier::Ip(ip),
                Err(_) => Identifier::Dns(n.clone()),
            })
            .collect();
        let profile = self.config.profile.as_deref();
        if let Some(p) = profile
            && !account.profiles().any(|m| m.name == p)
        {
            let offered: Vec<&str> = account.profiles().map(|m| m.name).collect();
            return Err(ConnectorError::Config(format!(
                "profile \"{p}\" is not offered by the ACME server {} (it advertises {})",
                self.config.directory_url,
                if offered.is_empty() {
                    "no profiles".to_owned()
                } else {
                    offered.join(", ")
                }
            )));
        }
        let new_order = || {
            let o = NewOrder::new(&identifiers);
            match profile {
                Some(p) => o.profile(p),
                None => o,
            }
        };
        let replaces = req.replaces_der.as_deref().and_then(ari_id);
        let mut order = match replaces {
            None => account.new_order(&new_order()).await,
            Some(id) => match account.new_order(&new_order().replaces(id.clone())).await {
                Ok(o) => Ok(o),
                // No renewal information at this CA: an ordinary order.
                Err(instant_acme::Error::Unsupported(_)) => account.new_order(&new_order()).await,
                // Refused (e.g. alreadyReplaced after a retried job, or a predecessor from
                // another CA) or not reflected by the CA: `replaces` is advisory, so order
                // without it rather than fail the renewal.
                Err(e)
                    if matches!(&e, instant_acme::Error::Api(p) if p.status.is_some_and(|s| (400..500).contains(&s) && s != 429))
                        || e.to_string().contains("replaces") =>
                {
                    tracing::warn!(directory = %self.config.directory_url, replaces = %id, error = %e, "newOrder with replaces failed; ordering without it");
                    account.new_order(&new_order()).await
                }
                Err(e) => Err(e),
            },
        }
        .map_err(|e| self.acme_error("newOrder", e))?;

        let http = self.config.challenge_type == ChallengeKind::Http01;
        let guard = if http {
            Some(self.responder.start().await?)
        } else {
            None
        };
        let mut cleanups: Vec<(DnsRecord, String)> = Vec::new();
        let result = self
            .solve_and_finalize(&mut order, req, account.id(), &mut cleanups)
            .await;
        if let Some(hook) = &self.config.dns_hook
            && let Some(script) = &hook.cleanup
        {
            for (record, token) in &cleanups {
                if let Err(e) = self.run_script(hook, script, record, token).await {
                    tracing::warn!(error = %e, "DNS cleanup hook failed");
                }
            }
        }
        if let Some(g) = guard {
            self.responder
                .stop(g, self.config.http01_keep_running)
                .await;
        }
        result
    }

    async fn solve_and_finalize(
        &self,
        order: &mut instant_acme::Order,
        req: &IssuanceRequest,
        account_uri: &str,
        cleanups: &mut Vec<(DnsRecord, String)>,
    ) -> Result<IssuanceResult, ConnectorError> {
        let mut published_dns = false;
        let mut to_ready = Vec::new();
        {
            let mut authzs = order.authorizations();
            while let Some(authz) = authzs.next().await {
                let mut authz = authz.map_err(|e| self.acme_error("authorization", e))?;
                match authz.status {
                    AuthorizationStatus::Pending => {}
                    AuthorizationStatus::Valid => continue,
                    other => {
                        return Err(ConnectorError::Rejected(format!(
                            "ACME authorization {} is {other:?}",
                            authz.url()
                        )));
                    }
                }
                let wanted = match self.config.challenge_type {
                    ChallengeKind::Http01 => ChallengeType::Http01,
                    ChallengeKind::Dns01 => ChallengeType::Dns01,
                    ChallengeKind::DnsPersist01 => {
                        let persist = ChallengeType::Unknown("dns-persist-01".into());
                        if authz.challenges.iter().any(|c| c.r#type == persist) {
                            persist
                        } else {
                            ChallengeType::Dns01
                        }
                    }
                };
                let domain = match authz.identifier().identifier {
                    Identifier::Dns(d) => d.clone(),
                    Identifier::Ip(ip) => ip.to_string(),
                    other => format!("{other:?}"),
                };
                let domain = domain.trim_start_matches("*.").to_owned();
                let mut challenge = authz.challenge(wanted.clone()).ok_or_else(|| {
                    ConnectorError::Rejected(format!(
                        "ACME server {} offers no {wanted:?} challenge for {domain}",
                        self.config.directory_url
                    ))
                })?;
                let key_auth = challenge.key_authorization();
                match wanted {
                    ChallengeType::Http01 => {
                        self.responder
                            .insert(challenge.token.clone(), key_auth.as_str().to_owned());
                    }
                    _ => {
                        let record = if wanted == ChallengeType::Dns01 {
                            DnsRecord::dns01(&domain, key_auth.dns_value())
                        } else {
                            // instant-acme does not keep the challenge's
                            // `issuer-domain-names`, so the issuer domain is configured.
                            let issuer = self
                                .config
                                .dns_persist_issuer_domain
                                .as_deref()
                                .ok_or_else(|| {
                                    ConnectorError::Config(format!(
                                        "the ACME server {} offers dns-persist-01 for {domain}: \
                                         set dns_persist_issuer_domain \
                                         (CERTCTL_ACME_DNS_PERSIST_ISSUER_DOMAIN) to its issuer \
                                         domain",
                                        self.config.directory_url
                                    ))
                                })?;
                            DnsRecord::persist(&domain, issuer, account_uri)
                        };
                        let token = challenge.token.clone();
                        let hook =
                            self.config.dns_hook.as_ref().ok_or_else(|| {
                                ConnectorError::Config("dns_hook is not set".into())
                            })?;
                        self.run_script(hook, &hook.present, &record, &token)
                            .await?;
                        // The persistent record stays: it authorizes later orders too.
                        if wanted == ChallengeType::Dns01 {
                            cleanups.push((record, token));
                        }
                        published_dns = true;
                    }
                }
                to_ready.push(challenge.url.clone());
                if !published_dns || self.config.dns_propagation_wait.is_zero() {
                    challenge
                        .set_ready()
                        .await
                        .map_err(|e| self.acme_error("challenge", e))?;
                    to_ready.pop();
                }
            }
        }
        if !to_ready.is_empty() {
            // Propagation wait, then tell the CA to validate.
            tokio::time::sleep(self.config.dns_propagation_wait).await;
            let mut authzs = order.authorizations();
            while let Some(authz) = authzs.next().await {
                let mut authz = authz.map_err(|e| self.acme_error("authorization", e))?;
                let Some(ty) = authz
                    .challenges
                    .iter()
                    .find(|c| to_ready.contains(&c.url))
                    .map(|c| c.r#type.clone())
                else {
                    continue;
                };
                if let Some(mut ch) = authz.challenge(ty) {
                    ch.set_ready()
                        .await
                        .map_err(|e| self.acme_error("challenge", e))?;
                }
            }
        }
        let retry = RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .backoff(1.5)
            .timeout(self.config.order_timeout);
        let status = order
            .poll_ready(&retry)
            .await
            .map_err(|e| self.acme_error("waiting for the order to become ready", e))?;
        if status != OrderStatus::Ready {
            let mut why = Vec::new();
            let mut authzs = order.authorizations();
            while let Some(Ok(a)) = authzs.next().await {
                for c in &a.challenges {
                    if let Some(p) = &c.error {
                        why.push(format!(
                            "{}: {}",
                            a.identifier(),
                            p.detail.as_deref().unwrap_or("validation failed")
                        ));
                    }
                }
            }
            return Err(ConnectorError::Rejected(format!(
                "ACME order is {status:?}: {}",
                why.join("; ")
            )));
        }
        let csr_der = x509_parser::pem::parse_x509_pem(req.csr_pem.as_bytes())
            .map_err(|e| ConnectorError::Rejected(format!("CSR PEM: {e}")))?
            .1
            .contents;
        order
            .finalize_csr(&csr_der)
            .await
            .map_err(|e| self.acme_error("finalize", e))?;
        let chain = order
            .poll_certificate(&retry)
            .await
            .map_err(|e| self.acme_error("certificate download", e))?;
        let result = parse_chain(&chain)?;
        Ok(result)
    }
}

/// Serial, validity and fingerprint of the leaf of a PEM chain.
pub fn parse_chain(chain: &str) -> Result<IssuanceResult, ConnectorError> {
    let bad = |e: String| ConnectorError::Rejected(format!("ACME certificate chain: {e}"));
    let pem = x509_parser::pem::Pem::iter_from_buffer(chain.as_bytes())
        .next()
        .ok_or_else(|| bad("no certificate".into()))?
        .map_err(|e| bad(e.to_string()))?;
    let (_, leaf) =
        x509_parser::parse_x509_certificate(&pem.contents).map_err(|e| bad(e.to_string()))?;
    let not_before =
        time::OffsetDateTime::from_unix_timestamp(leaf.validity().not_before.timestamp())
            .map_err(|e| bad(e.to_string()))?;
    let not_after =
        time::OffsetDateTime::from_unix_timestamp(leaf.validity().not_after.timestamp())
            .map_err(|e| bad(e.to_string()))?;
    Ok(IssuanceResult {
        pem_chain: chain.to_owned(),
        serial_hex: hex::encode(leaf.raw_serial()),
        fingerprint_sha256: hex::encode(Sha256::digest(&pem.contents)),
        not_before,
        not_after,
    })
}

pub(super) fn leaf_der(chain: &str) -> Option<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(chain.as_bytes())
        .next()?
        .ok()
        .map(|p| p.contents)
}
