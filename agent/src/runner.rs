//! The agent's main loop: register once, then heartbeat and poll for work, with exponential
//! backoff while the server is away. Work is idempotent: a CSR request generates a new key
//! only for a job not yet answered in this run, and a deployment job already carried out is
//! reported again, not redeployed.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tracing::Instrument as _;
use x509_parser::pem::Pem;

use crate::client::{Client, ClientError};
use crate::config::Config;
use crate::csr;
use crate::deployer::{Deployer, Deployment};
use crate::keystore::KeyStore;
use crate::state::{State, StateFile};

/// A running agent.
pub struct Agent {
    cfg: Config,
    client: Client,
    keys: KeyStore,
    state_file: StateFile,
    state: State,
    deployer: Option<Arc<dyn Deployer>>,
    answered_csr_jobs: HashSet<String>,
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// The local address used to reach the server (no packet is sent).
fn local_ip(server_url: &str) -> Option<String> {
    let rest = server_url.split("://").nth(1)?;
    let hostport = rest.split('/').next()?;
    let target = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:443")
    };
    let sock = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    sock.connect(target).ok()?;
    Some(sock.local_addr().ok()?.ip().to_string())
}

/// First certificate of a PEM bundle and the rest.
fn split_chain(pem_chain: &str) -> Result<(String, String), String> {
    let marker = "-----END CERTIFICATE-----";
    let end = pem_chain
        .find(marker)
        .ok_or("certificate chain holds no certificate")?
        + marker.len();
    Ok((
        format!("{}\n", pem_chain[..end].trim()),
        pem_chain[end..].trim_start().to_owned(),
    ))
}

/// The SubjectPublicKeyInfo DER of a PEM certificate.
fn spki_of(cert_pem: &str) -> Result<Vec<u8>, String> {
    let (pem, _) = Pem::read(std::io::Cursor::new(cert_pem.as_bytes()))
        .map_err(|e| format!("certificate PEM: {e}"))?;
    let cert = pem.parse_x509().map_err(|e| format!("certificate: {e}"))?;
    Ok(cert.tbs_certificate.subject_pki.raw.to_vec())
}

impl Agent {
    /// Prepares the agent (key dir, state, client); does not contact the server yet.
    pub fn new(cfg: Config, deployer: Option<Arc<dyn Deployer>>) -> anyhow::Result<Self> {
        let keys = KeyStore::open(&cfg.key_dir)?;
        let state_file = StateFile::in_dir(&cfg.key_dir);
        let mut state = state_file.load()?;
        if let Some(id) = &cfg.agent_id {
            state.agent_id = Some(id.clone());
        }
        if let Some(key) = &cfg.api_key {
            state.api_key = Some(key.clone());
        }
        let client = Client::new(&cfg.server_url, cfg.ca_bundle.as_deref())?;
        Ok(Self {
            cfg,
            client,
            keys,
            state_file,
            state,
            deployer,
            answered_csr_jobs: HashSet::new(),
        })
    }

    async fn with_backoff<T, F, Fut>(&self, what: &str, mut f: F) -> Result<T, ClientError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        let mut delay = Duration::from_secs(1);
        loop {
            match f().await {
                Err(ClientError::Unreachable(e)) => {
                    tracing::warn!(%what, error = %e, retry_in = ?delay, "server unreachable; backing off");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.cfg.max_backoff);
                }
                other => return other,
            }
        }
    }

    async fn ensure_identity(&mut self) -> anyhow::Result<(String, String)> {
        if let (Some(id), Some(key)) = (&self.state.agent_id, &self.state.api_key) {
            return Ok((id.clone(), key.clone()));
        }
        let token = self
            .cfg
            .bootstrap_token
            .clone()
            .ok_or_else(|| anyhow::anyhow!("not registered yet: set CERTCTL_AGENT_BOOTSTRAP_TOKEN (or CERTCTL_AGENT_ID and CERTCTL_API_KEY)"))?;
        let host = hostname();
        let name = self.cfg.name.clone().unwrap_or_else(|| host.clone());
        let client = self.client.clone();
        let (id, key) = self
            .with_backoff("register", || client.register(&token, &name, &host))
            .await?;
        self.state.agent_id = Some(id.clone());
        self.state.api_key = Some(key.clone());
        self.state_file.save(&self.state)?;
        tracing::info!(agent_id = %id, "registered with the control plane");
        Ok((id, key))
    }

    /// Runs until SIGINT/SIGTERM; SIGHUP reloads the target plugins.
    pub async fn run(mut self) -> anyhow::Result<()> {
        let (agent_id, key) = self.ensure_identity().await?;
        self.client = self.client.clone().with_key(&key);
        let mut heartbeat = tokio::time::interval(self.cfg.heartbeat_interval);
        let mut poll = tokio::time::interval(self.cfg.poll_interval);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        let (nudge_tx, mut nudges) = tokio::sync::mpsc::channel::<()>(8);
        let session = match crate::session::tls_config(self.cfg.ca_bundle.as_deref()) {
            Ok(tls) => Some(tokio::spawn(crate::session::run(
                crate::session::session_url(&self.cfg.server_url, &agent_id),
                key.clone(),
                tls,
                nudge_tx,
                self.cfg.max_backoff,
            ))),
            Err(e) => {
                tracing::warn!(error = %e, "no agent session (polling only)");
                None
            }
        };
        let mut backoff = Duration::ZERO;
        loop {
            tokio::select! {
                _ = heartbeat.tick() => {
                    let facts = json!({
                        "os": std::env::consts::OS,
                        "architecture": std::env::consts::ARCH,
                        "hostname": hostname(),
                        "ip_address": local_ip(&self.cfg.server_url),
                        "version": env!("CARGO_PKG_VERSION"),
                    });
                    if let Err(e) = self.client.heartbeat(&agent_id, &facts).await {
                        tracing::warn!(error = %e, "heartbeat failed");
                    }
                }
                _ = async { if nudges.recv().await.is_none() { std::future::pending::<()>().await } } => {
                    tracing::debug!("server nudged: fetching work");
                    if let Err(e) = self.poll_once(&agent_id).await {
                        tracing::warn!(error = %e, "poll after nudge failed");
                    }
                }
                _ = poll.tick() => {
                    match self.poll_once(&agent_id).await {
                        Ok(()) => backoff = Duration::ZERO,
                        Err(ClientError::Unreachable(e)) => {
                            backoff = if backoff.is_zero() { Duration::from_secs(1) } else { (backoff * 2).min(self.cfg.max_backoff) };
                            tracing::warn!(error = %e, retry_in = ?backoff, "server unreachable; backing off");
                            tokio::time::sleep(backoff).await;
                        }
                        Err(e) => tracing::warn!(error = %e, "poll failed"),
                    }
                }
                _ = hangup.recv() => self.reload_plugins().await,
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
            }
        }
        if let Some(task) = session {
            task.abort();
        }
        tracing::info!("agent stopping");
        Ok(())
    }

    /// SIGHUP: rescan the plugin directory and re-read the grants, without a restart.
    async fn reload_plugins(&self) {
        let Some(deployer) = &self.deployer else {
            tracing::warn!("SIGHUP: no CERTCTL_PLUGIN_DIR, nothing to reload");
            return;
        };
        match deployer.reload().await {
            Ok(loaded) => tracing::info!(plugins = ?loaded, "SIGHUP: target plugins reloaded"),
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: plugin reload failed; keeping the previous plugins")
            }
        }
    }

    /// Fetches and handles the current work items once.
    pub async fn poll_once(&mut self, agent_id: &str) -> Result<(), ClientError> {
        for item in self.client.work(agent_id).await? {
            let job_id = item["job_id"].as_str().unwrap_or_default().to_owned();
            let span = tracing::info_span!("job", job_id = %job_id);
            let result = match (item["type"].as_str(), item["status"].as_str()) {
                (_, Some("AwaitingCSR")) => {
                    self.answer_csr(agent_id, &job_id, &item)
                        .instrument(span)
                        .await
                }
                (Some("Deployment"), _) => {
                    self.deploy(agent_id, &job_id, &item).instrument(span).await
                }
                other => {
                    tracing::debug!(?other, "work item not for this agent version");
                    Ok(())
                }
            };
            match result {
                Err(ClientError::Unreachable(e)) => return Err(ClientError::Unreachable(e)),
                Err(e) => tracing::warn!(error = %e, "work item not completed"),
                Ok(()) => {}
            }
        }
        Ok(())
    }

    async fn answer_csr(
        &mut self,
        agent_id: &str,
        job_id: &str,
        item: &Value,
    ) -> Result<(), ClientError> {
        if self.answered_csr_jobs.contains(job_id) {
            return Ok(());
        }
        let certificate_id = item["certificate_id"].as_str().unwrap_or_default();
        let common_name = item["common_name"].as_str().unwrap_or_default();
        let sans: Vec<String> = item["sans"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let key = self
            .keys
            .generate(certificate_id)
            .map_err(|e| ClientError::Setup(e.to_string()))?;
        let csr = csr::build(&key, common_name, &sans)
            .map_err(|e| ClientError::Setup(format!("CSR: {e}")))?;
        match self.client.submit_csr(agent_id, job_id, &csr).await {
            Ok(()) => {
                tracing::info!(%certificate_id, "key generated locally; CSR submitted");
                self.answered_csr_jobs.insert(job_id.to_owned());
                Ok(())
            }
            Err(ClientError::Api {
                status: 409,
                message,
            }) => {
                tracing::info!(%message, "job no longer waits for a CSR");
                self.answered_csr_jobs.insert(job_id.to_owned());
                Ok(())
            }
            Err(ClientError::Api { status, message }) => {
                // Refused for a reason a new key will not fix; don't spin generating keys.
                tracing::error!(status, %message, "CSR refused");
                self.answered_csr_jobs.insert(job_id.to_owned());
                Err(ClientError::Api { status, message })
            }
            Err(e) => Err(e),
        }
    }

    async fn deploy(
        &mut self,
        agent_id: &str,
        job_id: &str,
        item: &Value,
    ) -> Result<(), ClientError> {
        if self.state.deployed_jobs.contains(job_id) {
            tracing::info!("job was already deployed by this agent; reporting again");
            return self
                .report_done(agent_id, job_id, Some("already deployed"))
                .await;
        }
        let outcome = self.try_deploy(item).await;
        match outcome {
            Ok(message) => {
                self.state.deployed_jobs.insert(job_id.to_owned());
                self.state_file
                    .save(&self.state)
                    .map_err(|e| ClientError::Setup(format!("state file: {e}")))?;
                tracing::info!(%message, "deployed");
                self.report_done(agent_id, job_id, Some(&message)).await
            }
            Err(message) => {
                tracing::error!(%message, "deployment failed");
                match self
                    .client
                    .report(agent_id, job_id, "Failed", Some(&message))
                    .await
                {
                    Err(ClientError::Api { status: 409, .. }) => Ok(()),
                    other => other,
                }
            }
        }
    }

    async fn report_done(
        &self,
        agent_id: &str,
        job_id: &str,
        message: Option<&str>,
    ) -> Result<(), ClientError> {
        match self
            .client
            .report(agent_id, job_id, "Completed", message)
            .await
        {
            Err(ClientError::Api { status: 409, .. }) => Ok(()),
            other => other,
        }
    }

    async fn try_deploy(&self, item: &Value) -> Result<String, String> {
        let deployer = self
            .deployer
            .as_ref()
            .ok_or("no target plugins loaded on this agent (set CERTCTL_PLUGIN_DIR)")?;
        let certificate_id = item["certificate_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let pem_chain = item["pem_chain"]
            .as_str()
            .ok_or("work item without pem_chain")?;
        let (leaf, chain) = split_chain(pem_chain)?;
        let spki = spki_of(&leaf)?;
        let private_key_pem = self
            .keys
            .find(&certificate_id, &spki)
            .map_err(|e| e.to_string())?;
        let mut config = item["target_config"].clone();
        // Agent-side options stay with the agent; the plugin gets its own settings only.
        let verify_endpoint = config
            .as_object_mut()
            .and_then(|c| c.remove("verify_endpoint"));
        let verify_sni = config.as_object_mut().and_then(|c| c.remove("verify_sni"));
        let d = Deployment {
            target_type: item["target_type"].as_str().unwrap_or_default().to_owned(),
            target_id: item["target_id"].as_str().unwrap_or_default().to_owned(),
            certificate_id: certificate_id.clone(),
            certificate_pem: leaf,
            chain_pem: chain,
            private_key_pem,
            config,
        };
        let message = deployer.deploy(&d).await?;
        if let Some(endpoint) = verify_endpoint.as_ref().and_then(Value::as_str) {
            let sni = verify_sni
                .as_ref()
                .and_then(Value::as_str)
                .unwrap_or("localhost");
            let expected = item["fingerprint_sha256"].as_str().unwrap_or_default();
            let mut served = String::new();
            // Servers reload asynchronously; give the new certificate a moment to appear.
            for _ in 0..20 {
                served = crate::verify::served_fingerprint(endpoint, sni).await?;
                if served == expected {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            if served != expected {
                return Err(format!(
                    "{endpoint} serves certificate {served}, expected {expected}"
                ));
            }
        }
        if let Err(e) = self.keys.prune(&certificate_id, &spki) {
            tracing::warn!(error = %e, "old keys not pruned");
        }
        Ok(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_splits_leaf_first() {
        let chain = "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nBBB\n-----END CERTIFICATE-----\n";
        let (leaf, rest) = split_chain(chain).unwrap();
        assert!(leaf.contains("AAA") && !leaf.contains("BBB"));
        assert!(rest.starts_with("-----BEGIN CERTIFICATE-----\nBBB"));
        assert!(split_chain("nothing").is_err());
    }
}
