//! The agent's view of the control plane's REST API.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

/// Why a call failed; `Unreachable` is worth retrying with backoff, the others are not.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Connection refused, timeout, TLS failure: the server is away.
    #[error("server unreachable: {0}")]
    Unreachable(String),
    /// The server answered with an error.
    #[error("server answered {status}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The error message from the body.
        message: String,
    },
    /// Local configuration problem (bad CA bundle, …).
    #[error("{0}")]
    Setup(String),
}

/// HTTP client bound to one server and (once known) one API key.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
}

impl Client {
    /// Builds a client trusting the system roots plus `ca_bundle`.
    pub fn new(server_url: &str, ca_bundle: Option<&Path>) -> Result<Self, ClientError> {
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10));
        if let Some(path) = ca_bundle {
            let pem = std::fs::read(path)
                .map_err(|e| ClientError::Setup(format!("{}: {e}", path.display())))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| ClientError::Setup(format!("{}: {e}", path.display())))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Setup(e.to_string()))?;
        Ok(Self {
            http,
            base: server_url.trim_end_matches('/').to_owned(),
            key: None,
        })
    }

    /// Uses `key` for every later call.
    pub fn with_key(mut self, key: &str) -> Self {
        self.key = Some(key.to_owned());
        self
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        bearer: Option<&str>,
    ) -> Result<Value, ClientError> {
        let mut req = self
            .http
            .request(method, format!("{}/api/v1/{path}", self.base));
        if let Some(token) = bearer.or(self.key.as_deref()) {
            req = req.bearer_auth(token);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| ClientError::Unreachable(format!("{e}")))?;
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .map_err(|e| ClientError::Unreachable(e.to_string()))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            Ok(value)
        } else if status == 429 || status >= 500 {
            Err(ClientError::Unreachable(format!("status {status}")))
        } else {
            let message = value["error"]["message"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or(text);
            Err(ClientError::Api { status, message })
        }
    }

    /// Registers with the bootstrap token; returns (agent id, API key).
    pub async fn register(
        &self,
        token: &str,
        name: &str,
        hostname: &str,
    ) -> Result<(String, String), ClientError> {
        let v = self
            .call(
                reqwest::Method::POST,
                "agents/register",
                Some(&json!({"name": name, "hostname": hostname})),
                Some(token),
            )
            .await?;
        let id = v["agent"]["id"]
            .as_str()
            .ok_or_else(|| ClientError::Setup("registration answer without agent id".into()))?;
        let key = v["api_key"]
            .as_str()
            .ok_or_else(|| ClientError::Setup("registration answer without api key".into()))?;
        Ok((id.to_owned(), key.to_owned()))
    }

    /// Sends a heartbeat.
    pub async fn heartbeat(&self, agent_id: &str, facts: &Value) -> Result<(), ClientError> {
        self.call(
            reqwest::Method::POST,
            &format!("agents/{agent_id}/heartbeat"),
            Some(facts),
            None,
        )
        .await
        .map(|_| ())
    }

    /// Work the agent can act on now.
    pub async fn work(&self, agent_id: &str) -> Result<Vec<Value>, ClientError> {
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("agents/{agent_id}/work"),
                None,
                None,
            )
            .await?;
        Ok(v["data"].as_array().cloned().unwrap_or_default())
    }

    /// Submits a CSR for a job.
    pub async fn submit_csr(
        &self,
        agent_id: &str,
        job_id: &str,
        csr_pem: &str,
    ) -> Result<(), ClientError> {
        self.call(
            reqwest::Method::POST,
            &format!("agents/{agent_id}/csr"),
            Some(&json!({"job_id": job_id, "csr_pem": csr_pem})),
            None,
        )
        .await
        .map(|_| ())
    }

    /// Reports a job's status.
    pub async fn report(
        &self,
        agent_id: &str,
        job_id: &str,
        status: &str,
        message: Option<&str>,
    ) -> Result<(), ClientError> {
        self.call(
            reqwest::Method::POST,
            &format!("agents/{agent_id}/jobs/{job_id}/status"),
            Some(&json!({"status": status, "message": message})),
            None,
        )
        .await
        .map(|_| ())
    }
}
