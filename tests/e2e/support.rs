//! Process and file helpers shared by the end-to-end suites.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A throwaway self-signed P-256 certificate (placeholder TLS endpoints).
pub use certctl_testkit::tls::self_signed;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// A workspace binary (`CERTCTL_BIN_DIR` overrides `target/debug`).
pub fn binary(name: &str) -> PathBuf {
    let dir = std::env::var_os("CERTCTL_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| root().join("target"))
                .join("debug")
        });
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// The first-party plugins built by `plugins/build.sh`.
pub fn plugin_dist() -> PathBuf {
    let dir = std::env::var_os("CERTCTL_PLUGIN_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/plugins/dist"));
    assert!(
        dir.join("nginx/plugin.wasm").exists(),
        "{} has no nginx plugin: run plugins/build.sh first",
        dir.display()
    );
    dir
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed on drop, with its output in a log file.
pub struct Proc {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(mut cmd: Command, log: PathBuf) -> Self {
        let f = std::fs::File::create(&log).unwrap();
        cmd.stdout(Stdio::from(f.try_clone().unwrap()))
            .stderr(Stdio::from(f))
            .stdin(Stdio::null());
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        Self {
            child: Some(child),
            log,
        }
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id, while the process is ours to signal.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if c.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Polls `f` every 200 ms until it returns Some, or panics with `what` after `limit`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs a command, returning (success, stdout+stderr).
pub fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// A JSON client with a bearer key that trusts the server's CA bundle.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    key: String,
    http: reqwest::Client,
}

impl Api {
    pub fn new(base: &str, key: &str, ca_bundle: &Path) -> Self {
        let pem = std::fs::read(ca_bundle).unwrap();
        let mut b = reqwest::Client::builder().timeout(Duration::from_secs(30));
        for c in reqwest::Certificate::from_pem_bundle(&pem).unwrap() {
            b = b.add_root_certificate(c);
        }
        Self {
            base: base.to_owned(),
            key: key.to_owned(),
            http: b.build().unwrap(),
        }
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}/api/v1/{path}", self.base))
            .bearer_auth(&self.key)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/api/v1/{path}", self.base))
            .bearer_auth(&self.key)
            .json(body)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }
}

/// The SubjectPublicKeyInfo (PEM) of a certificate or a private key file.
pub fn public_key_of(path: &Path, is_key: bool) -> String {
    let mut cmd = Command::new("openssl");
    if is_key {
        cmd.args(["pkey", "-pubout", "-in"]).arg(path);
    } else {
        cmd.args(["x509", "-pubkey", "-noout", "-in"]).arg(path);
    }
    let (ok, out) = run(&mut cmd);
    assert!(ok, "{out}");
    out
}

/// `certctl-server` on loopback with TLS (bootstrap CA), an admin key and a bootstrap token.
pub fn server_command(data_dir: &Path, port: u16, admin_key: &str, bootstrap: &str) -> Command {
    let mut c = Command::new(binary("certctl-server"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CERTCTL_DATA_DIR", data_dir)
        .env("CERTCTL_SERVER_HOST", "127.0.0.1")
        .env("CERTCTL_SERVER_PORT", port.to_string())
        .env("CERTCTL_ADMIN_API_KEY", admin_key)
        .env("CERTCTL_AGENT_BOOTSTRAP_TOKEN", bootstrap);
    c
}

/// `certctl-agent` registering with `bootstrap`, using the first-party plugins and `grants`.
pub fn agent_command(
    server_url: &str,
    ca_bundle: &Path,
    bootstrap: &str,
    name: &str,
    work_dir: &Path,
    grants: &Path,
) -> Command {
    let mut c = Command::new(binary("certctl-agent"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CERTCTL_SERVER_URL", server_url)
        .env("CERTCTL_CA_BUNDLE", ca_bundle)
        .env("CERTCTL_AGENT_BOOTSTRAP_TOKEN", bootstrap)
        .env("CERTCTL_AGENT_NAME", name)
        .env("CERTCTL_KEY_DIR", work_dir.join("agent-keys"))
        .env("CERTCTL_PLUGIN_DIR", plugin_dist())
        .env("CERTCTL_PLUGIN_GRANTS", grants)
        .env("CERTCTL_PLUGIN_CACHE_DIR", work_dir.join("plugin-cache"));
    c
}

/// Whether `url/health` answers 200 (certificate not checked: the CA bundle may not exist yet).
pub async fn healthy(url: &str) -> Option<()> {
    let c = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .ok()?;
    c.get(format!("{url}/health"))
        .send()
        .await
        .ok()?
        .status()
        .is_success()
        .then_some(())
}

/// The id of the agent registered under `name`, once it has registered.
pub async fn registered_agent(api: &Api, name: &str) -> String {
    wait_for("agent registration", Duration::from_secs(60), || async {
        let (_, v) = api.get(&format!("agents?name={name}")).await;
        v["data"][0]["id"].as_str().map(str::to_owned)
    })
    .await
}
