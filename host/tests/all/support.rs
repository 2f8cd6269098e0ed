//! Test harness: starts the real `certctl-server` binary on a free loopback port with a
//! fresh data dir, and gives tests a client with the admin key.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor as _, Addr};
use certctl_host::actors::issuer_registry::IssuerRegistry;
use certctl_host::clock::ManualClock;
use certctl_host::config::KeygenMode;
use certctl_host::issuer::{ConnectorContext, ConnectorTypes};
use certctl_host::pipeline::{Pipeline, PipelineSettings};
use certctl_host::pki::local_ca::LocalCa;
use certctl_host::store::{self, Store};
use serde_json::Value;
use sqlx::Row as _;
use time::OffsetDateTime;

/// Admin key every test server is seeded with.
pub const ADMIN_KEY: &str = "test-admin-key-0123456789";

/// A free TCP port on 127.0.0.1 (bound and released; the race is acceptable in tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running server process; killed on drop.
pub struct TestServer {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Data dir (kept alive for the server's lifetime).
    pub data_dir: tempfile::TempDir,
    pub port: u16,
    env: Vec<(String, String)>,
    log: PathBuf,
}

/// Builder for a test server's environment.
pub struct ServerBuilder {
    env: Vec<(String, String)>,
    data_dir: Option<tempfile::TempDir>,
}

impl ServerBuilder {
    pub fn new() -> Self {
        Self {
            env: vec![
                ("CERTCTL_TLS_MODE".into(), "off".into()),
                ("CERTCTL_ADMIN_API_KEY".into(), ADMIN_KEY.into()),
                ("CERTCTL_SERVER_HOST".into(), "127.0.0.1".into()),
                ("CERTCTL_RATE_LIMIT_ENABLED".into(), "false".into()),
                ("CERTCTL_LOG_LEVEL".into(), "info,sqlx=warn".into()),
            ],
            data_dir: None,
        }
    }

    /// Sets (or overrides) one environment variable.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.retain(|(key, _)| key != k);
        self.env.push((k.into(), v.into()));
        self
    }

    /// Removes a default environment variable.
    pub fn without(mut self, k: &str) -> Self {
        self.env.retain(|(key, _)| key != k);
        self
    }

    /// Reuses a data dir (restart tests).
    pub fn data_dir(mut self, dir: tempfile::TempDir) -> Self {
        self.data_dir = Some(dir);
        self
    }

    pub async fn start(self) -> TestServer {
        let data_dir = self
            .data_dir
            .unwrap_or_else(|| tempfile::tempdir().unwrap());
        let port = free_port();
        let mut server = TestServer {
            child: None,
            base: String::new(),
            data_dir,
            port,
            env: self.env,
            log: PathBuf::new(),
        };
        server.spawn().await;
        server
    }
}

impl TestServer {
    async fn spawn(&mut self) {
        self.spawn_child();
        self.wait_healthy().await;
    }

    fn spawn_child(&mut self) {
        let log = self.data_dir.path().join(format!(
            "server-{}.log",
            Instant::now().elapsed().as_nanos()
        ));
        let log_file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_certctl-server"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CERTCTL_DATA_DIR", self.data_dir.path())
            .env("CERTCTL_SERVER_PORT", self.port.to_string())
            .stdout(Stdio::from(log_file.try_clone().unwrap()))
            .stderr(Stdio::from(log_file));
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("start certctl-server"));
        self.log = log;
        let scheme = if self
            .env
            .iter()
            .any(|(k, v)| k == "CERTCTL_TLS_MODE" && v != "off")
        {
            "https"
        } else {
            "http"
        };
        self.base = format!("{scheme}://127.0.0.1:{}", self.port);
    }

    async fn wait_healthy(&mut self) {
        let client = insecure_client();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(format!("{}/health", self.base)).send().await
                && r.status().is_success()
            {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("certctl-server exited with {status}:\n{}", self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "server did not become healthy:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The server's process id (while it runs).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The server's output so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        c.wait().unwrap()
    }

    /// Starts the same server again (same port, data dir and environment).
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    /// Starts the same server again expecting it to refuse to start: its exit status (it
    /// must exit within 30 s) and its output.
    pub async fn restart_expecting_exit(&mut self) -> (std::process::ExitStatus, String) {
        self.kill();
        self.spawn_child();
        let status = self
            .wait_exit(Duration::from_secs(30))
            .await
            .unwrap_or_else(|| panic!("certctl-server kept running:\n{}", self.logs()));
        (status, self.logs())
    }

    /// Sets (or overrides) an environment variable for the next [`TestServer::restart`].
    pub fn set_env(&mut self, k: &str, v: &str) {
        self.env.retain(|(key, _)| key != k);
        self.env.push((k.into(), v.into()));
    }

    /// Removes an environment variable for the next [`TestServer::restart`].
    pub fn unset_env(&mut self, k: &str) {
        self.env.retain(|(key, _)| key != k);
    }

    /// Waits up to `timeout` for the process to exit on its own (a crash); its exit status,
    /// or `None` if it is still running.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.child.as_mut()?.try_wait().ok().flatten();
            if let Some(status) = status {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A client that sends the admin key.
    pub fn admin(&self) -> Api {
        Api {
            base: self.base.clone(),
            key: Some(ADMIN_KEY.into()),
            client: insecure_client(),
        }
    }

    /// A client without credentials.
    pub fn anonymous(&self) -> Api {
        Api {
            base: self.base.clone(),
            key: None,
            client: insecure_client(),
        }
    }

    /// A client with an arbitrary key.
    pub fn with_key(&self, key: &str) -> Api {
        Api {
            base: self.base.clone(),
            key: Some(key.into()),
            client: insecure_client(),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn insecure_client() -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A small JSON API client: every call returns (status, body as JSON or Null).
#[derive(Clone)]
pub struct Api {
    pub base: String,
    key: Option<String>,
    pub client: reqwest::Client,
}

/// A decoded response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Api {
    /// A client for a server started some other way (an in-process server in a test).
    pub fn new(base: &str, key: Option<&str>) -> Self {
        Self {
            base: base.to_owned(),
            key: key.map(str::to_owned),
            client: insecure_client(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        if path.starts_with('/') {
            format!("{}{path}", self.base)
        } else {
            format!("{}/api/v1/{path}", self.base)
        }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self.client.request(method, self.url(path));
        if let Some(k) = &self.key {
            r = r.bearer_auth(k);
        }
        r
    }

    pub async fn send(&self, r: reqwest::RequestBuilder) -> Resp {
        let resp = r.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(self.req(reqwest::Method::GET, path)).await
    }
    pub async fn delete(&self, path: &str) -> Resp {
        self.send(self.req(reqwest::Method::DELETE, path)).await
    }
    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.send(self.req(reqwest::Method::POST, path).json(body))
            .await
    }
    pub async fn put(&self, path: &str, body: &Value) -> Resp {
        self.send(self.req(reqwest::Method::PUT, path).json(body))
            .await
    }
    /// Sends raw bytes (malformed JSON, oversized bodies).
    pub async fn raw(&self, method: reqwest::Method, path: &str, body: Vec<u8>) -> Resp {
        self.send(
            self.req(method, path)
                .header("content-type", "application/json")
                .body(body),
        )
        .await
    }
}

// ---------------------------------------------------------------------------------------
// Helpers shared by the test modules
// ---------------------------------------------------------------------------------------

/// How long a state the server reaches "immediately" may take on a loaded machine.
pub const WAIT: Duration = Duration::from_secs(10);

/// Polls `probe` every 50 ms until it answers `Ok`; panics with the last `Err` after [`WAIT`].
pub async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(last) => assert!(
                Instant::now() < deadline,
                "timed out after {WAIT:?} waiting for {what}; last seen: {last}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs the `openssl` CLI in `dir`.
pub fn openssl(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl CLI is installed")
}

/// Runs `openssl` in `dir`, asserting success; stdout.
pub fn openssl_ok(dir: &std::path::Path, args: &[&str]) -> String {
    let out = openssl(dir, args);
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The CERTIFICATE blocks of a PEM chain, each with a trailing newline.
pub fn pem_blocks(chain: &str) -> Vec<String> {
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = chain;
    while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
        let end = rest[start..].find(END).expect("END line") + start + END.len();
        out.push(format!("{}\n", &rest[start..end]));
        rest = &rest[end..];
    }
    out
}

/// `GET /issuers/iss-local/ca` with the admin key, asserting 200.
pub async fn get_ca(api: &Api) -> reqwest::Response {
    let r = api
        .client
        .get(api.url("issuers/iss-local/ca"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r
}

// ---------------------------------------------------------------------------------------
// In-process harness (the loops' `tick` called directly, time from a manual clock)
// ---------------------------------------------------------------------------------------

/// A SQLite store in `path`, a manual clock at the current whole second (so stored
/// timestamps and computed instants compare exactly) and a started issuer registry of
/// `types` over a Local CA in `path/ca`.
pub async fn in_process(
    path: &Path,
    types: ConnectorTypes,
) -> (Store, Arc<ManualClock>, Addr<IssuerRegistry>) {
    in_process_with(path, types, |_| {}).await
}

/// [`in_process`] with the connector context changed by `edit` (operator ACME settings,
/// outbound grants).
pub async fn in_process_with(
    path: &Path,
    types: ConnectorTypes,
    edit: impl FnOnce(&mut ConnectorContext),
) -> (Store, Arc<ManualClock>, Addr<IssuerRegistry>) {
    let store = Store::connect(&store::default_sqlite_url(path))
        .await
        .unwrap();
    let start = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let mut ctx = ConnectorContext::new(
        Arc::new(LocalCa::load_or_create(&path.join("ca")).unwrap()),
        path.to_path_buf(),
    );
    edit(&mut ctx);
    let registry = IssuerRegistry::new(store.clone(), types, ctx).start();
    (store, clock, registry)
}

/// A pipeline over the [`in_process`] parts of `path`, issuing for `validity_days`.
pub fn pipeline(
    (store, clock, registry): (&Store, &Arc<ManualClock>, &Addr<IssuerRegistry>),
    path: &Path,
    keygen_mode: KeygenMode,
    validity_days: u64,
) -> Arc<Pipeline> {
    Arc::new(Pipeline::new(
        store.clone(),
        clock.clone(),
        PipelineSettings {
            keygen_mode,
            validity: Duration::from_secs(validity_days * 86_400),
            public_url: "https://certctl.test".into(),
            job_lease: Duration::from_secs(300),
            order_deadline: Duration::from_secs(24 * 3600),
            order_poll_scale: 1.0,
            server_key_dir: path.join("server-keys"),
            abort_before_commit: false,
        },
        registry.clone(),
    ))
}

/// (status, attempts, next_attempt_at, last_error) of the notification whose `column`
/// is `value`.
pub async fn notification_row(
    store: &Store,
    column: &str,
    value: &str,
) -> (String, i64, Option<String>, Option<String>) {
    let r = sqlx::query(&format!(
        "SELECT status, attempts, next_attempt_at, last_error FROM notification_events WHERE {column} = ?"
    ))
    .bind(value)
    .fetch_one(store.pool())
    .await
    .unwrap();
    (
        r.try_get(0).unwrap(),
        r.try_get(1).unwrap(),
        r.try_get(2).unwrap(),
        r.try_get(3).unwrap(),
    )
}

/// Waits up to `limit` for the certificate's Issuance job to end — finished, or failed with a
/// retry scheduled (not Running and carrying an error) — and returns the job.
pub async fn issuance_done(api: &Api, cert: &str, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let r = api
            .get(&format!(
                "jobs?certificate_id={cert}&type=Issuance&per_page=100"
            ))
            .await;
        assert_eq!(r.status, 200, "GET jobs of {cert}: {:?}", r.body);
        let jobs = r.body;
        if let Some(j) = jobs["data"].as_array().and_then(|a| a.first()) {
            let status = j["status"].as_str().unwrap_or_default();
            if matches!(status, "Completed" | "Failed" | "Cancelled")
                || (status != "Running" && j["last_error"].is_string())
            {
                return j.clone();
            }
        }
        assert!(Instant::now() < deadline, "issuance of {cert}: {jobs}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
