//! Issuer connectors as WebAssembly plugins (issue #13, host side, synchronous CAs): an
//! issuer whose `type` is the id of a loaded issuer plugin issues through it. The
//! `http-issuer` fixture POSTs the CSR over `wasi:http` to a small HTTP "CA" run by the
//! test (openssl signing with a throwaway CA) on 127.0.0.1, which the grants file opens
//! to it. Covered: issuance to Active with a chain `openssl verify` accepts; a config the
//! plugin's `validate-config` refuses is a 400 naming `config`; the CA's 401 fails the job
//! with the CA's message and no retry; an unreachable CA is a retryable failure; a trap or
//! a timeout fails that job only; revocation reaches the CA; an asynchronous CA (pending
//! three times, then issued) is polled to Active, across a kill -9 of the server, with
//! exactly one order at the CA; a plugin that appears after start is usable after
//! `POST /api/v1/plugins/reload`.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use certctl_testkit::plugins::install;
use serde_json::{Value, json};

use crate::support::{Api, ServerBuilder, WAIT, free_port, openssl, openssl_ok, pem_blocks};

/// The bearer token the fake CA accepts.
const TOKEN: &str = "good-token";

/// A tiny HTTP CA: `POST` a PEM CSR with `Authorization: Bearer good-token`, get the leaf
/// (signed by a throwaway CA with openssl) and the CA certificate back. A wrong token is
/// answered 401 with a message the job must carry.
struct FakeCa {
    port: u16,
    dir: tempfile::TempDir,
    signed: Arc<AtomicUsize>,
    /// Bodies of `POST …/revoke` (`<serial> <reason code>`).
    revoked: Arc<Mutex<Vec<String>>>,
    /// Asynchronous orders (`POST …/orders` with the CSR, `POST …/orders/<id>` to poll).
    orders: Arc<Orders>,
}

/// The fake CA's asynchronous side: each order answers `pending` to its first
/// [`PENDING_POLLS`] polls, then the signed chain.
#[derive(Default)]
struct Orders {
    /// Orders placed (the CSR of each, by index = order number).
    placed: Mutex<Vec<Vec<u8>>>,
    /// Status polls received.
    polls: AtomicUsize,
    /// Polls per order so far.
    per_order: Mutex<std::collections::HashMap<usize, usize>>,
}

/// How many polls of an order are answered `pending` before it is issued.
const PENDING_POLLS: usize = 3;

impl FakeCa {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        certctl_testkit::tls::self_signed(
            &dir.path().join("ca.key"),
            &dir.path().join("ca.pem"),
            "certctl test plugin CA",
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let signed = Arc::new(AtomicUsize::new(0));
        let revoked = Arc::new(Mutex::new(Vec::new()));
        let orders = Arc::new(Orders::default());
        let (root, count, log, book) = (
            dir.path().to_owned(),
            signed.clone(),
            revoked.clone(),
            orders.clone(),
        );
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(stream) = stream else { continue };
                let (root, count, log, book) =
                    (root.clone(), count.clone(), log.clone(), book.clone());
                std::thread::spawn(move || serve(stream, &root, n, &count, &log, &book));
            }
        });
        Self {
            port,
            dir,
            signed,
            revoked,
            orders,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/sign", self.port)
    }

    fn ca_pem(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
}

fn serve(
    stream: TcpStream,
    root: &Path,
    n: usize,
    signed: &AtomicUsize,
    revoked: &Mutex<Vec<String>>,
    orders: &Orders,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    let (mut length, mut authorized) = (0usize, false);
    reader.read_line(&mut line).unwrap();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap() == 0 || header.trim().is_empty() {
            break;
        }
        let lower = header.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
        if lower.starts_with("authorization:") && header.trim().ends_with(TOKEN) {
            authorized = true;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    let path = line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let (status, answer) = if !authorized {
        (401, "fake CA: bearer token rejected".to_owned())
    } else if path.ends_with("/orders") {
        let mut placed = orders.placed.lock().unwrap();
        placed.push(body);
        (200, format!("ord-{}", placed.len() - 1))
    } else if let Some(id) = path.rsplit_once("/orders/ord-").map(|(_, id)| id) {
        orders.polls.fetch_add(1, Ordering::SeqCst);
        let number: usize = id.parse().unwrap();
        let polls = {
            let mut per_order = orders.per_order.lock().unwrap();
            let p = per_order.entry(number).or_default();
            *p += 1;
            *p
        };
        match orders.placed.lock().unwrap().get(number).cloned() {
            None => (404, format!("fake CA: no order ord-{number}")),
            Some(_) if polls <= PENDING_POLLS => (200, "pending".to_owned()),
            Some(csr) => sign(root, n, &csr, signed),
        }
    } else if line
        .split_whitespace()
        .nth(1)
        .is_some_and(|p| p.ends_with("/revoke"))
    {
        revoked
            .lock()
            .unwrap()
            .push(String::from_utf8_lossy(&body).into_owned());
        (200, "revoked".to_owned())
    } else {
        sign(root, n, &body, signed)
    };
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\ncontent-type: application/x-pem-file\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
        answer.len()
    );
}

/// Signs a PEM CSR with the throwaway CA: (HTTP status, leaf + CA PEM or openssl's error).
fn sign(root: &Path, n: usize, body: &[u8], signed: &AtomicUsize) -> (u16, String) {
    let csr = root.join(format!("req-{n}.csr"));
    let leaf = root.join(format!("leaf-{n}.pem"));
    std::fs::write(&csr, body).unwrap();
    let out = openssl(
        root,
        &[
            "x509",
            "-req",
            "-in",
            csr.to_str().unwrap(),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-days",
            "1",
            "-copy_extensions",
            "copyall",
            "-out",
            leaf.to_str().unwrap(),
        ],
    );
    if out.status.success() {
        signed.fetch_add(1, Ordering::SeqCst);
        let leaf = std::fs::read_to_string(&leaf).unwrap();
        let ca = std::fs::read_to_string(root.join("ca.pem")).unwrap();
        (200, format!("{leaf}{ca}"))
    } else {
        (400, String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A server with the `http-issuer` plugin granted the fake CA's port and `unreachable`.
async fn server_with_plugin(
    tmp: &Path,
    ca: &FakeCa,
    unreachable: u16,
    install_now: bool,
) -> crate::support::TestServer {
    plugin_server(tmp, ca, unreachable, install_now)
        .start()
        .await
}

/// [`server_with_plugin`], not started yet.
fn plugin_server(tmp: &Path, ca: &FakeCa, unreachable: u16, install_now: bool) -> ServerBuilder {
    let plugins = tmp.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    if install_now {
        install(&plugins, "http-issuer", "http-issuer");
    }
    let grants = tmp.join("grants.toml");
    std::fs::write(
        &grants,
        format!(
            "[plugins.http-issuer]\nhosts = [\"http://127.0.0.1:{}\", \"http://127.0.0.1:{unreachable}\"]\n",
            ca.port
        ),
    )
    .unwrap();
    ServerBuilder::new()
        .env("CERTCTL_KEYGEN_MODE", "server")
        .env("CERTCTL_PLUGIN_DIR", plugins.to_str().unwrap())
        .env("CERTCTL_PLUGIN_GRANTS", grants.to_str().unwrap())
}

async fn created(api: &Api, path: &str, body: Value) -> String {
    let r = api.post(path, &body).await;
    assert_eq!(r.status, 201, "POST {path} {body}: {:?}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

async fn get_ok(api: &Api, path: &str) -> Value {
    let r = api.get(path).await;
    assert_eq!(r.status, 200, "GET {path}: {:?}", r.body);
    r.body
}

/// Creates a certificate on `issuer` and waits for its Issuance job to end (or to fail
/// with a retry scheduled); returns (certificate id, job).
async fn issue(api: &Api, issuer: &str, name: &str) -> (String, Value) {
    let cert = created(
        api,
        "certificates",
        json!({"name": name, "common_name": name, "issuer_id": issuer, "sans": [name]}),
    )
    .await;
    let job = crate::support::issuance_done(api, &cert, WAIT).await;
    (cert, job)
}

fn issuer_body(name: &str, url: &str, token: &str) -> Value {
    json!({"name": name, "type": "http-issuer", "config": {"url": url, "token": token}})
}

/// Issuance through the plugin: Active, and the stored chain verifies against the CA the
/// fake CA signed with; the token is a secret (read back as `***`).
#[tokio::test(flavor = "multi_thread")]
async fn plugin_issuer_issues_certificates_that_openssl_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = FakeCa::start();
    let server = server_with_plugin(tmp.path(), &ca, free_port(), true).await;
    let api = server.admin();

    let issuer = created(&api, "issuers", issuer_body("plugin-ca", &ca.url(), TOKEN)).await;
    let shown = get_ok(&api, &format!("issuers/{issuer}")).await;
    assert_eq!(shown["config"]["token"], "***", "{shown}");
    let (cert, job) = issue(&api, &issuer, "plugin.example.com").await;
    assert_eq!(job["status"], "Completed", "{job}\n{}", server.logs());
    let c = get_ok(&api, &format!("certificates/{cert}")).await;
    assert_eq!(c["status"], "Active", "{c}");
    assert_eq!(ca.signed.load(Ordering::SeqCst), 1);

    let versions = get_ok(&api, &format!("certificates/{cert}/versions")).await;
    let chain = pem_blocks(versions["data"][0]["pem_chain"].as_str().unwrap());
    assert_eq!(chain.len(), 2, "leaf and CA: {versions}");
    let d = tmp.path();
    std::fs::write(d.join("leaf.pem"), &chain[0]).unwrap();
    let said = openssl_ok(
        d,
        &[
            "verify",
            "-CAfile",
            ca.ca_pem().to_str().unwrap(),
            "leaf.pem",
        ],
    );
    assert!(said.contains("leaf.pem: OK"), "{said}");
    let text = openssl_ok(d, &["x509", "-in", "leaf.pem", "-noout", "-text"]);
    assert!(text.contains("DNS:plugin.example.com"), "{text}");

    // Revocation reaches the CA through the plugin's `revoke` (serial, RFC 5280 code).
    let serial = versions["data"][0]["serial_number"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = api
        .post(
            &format!("certificates/{cert}/revoke"),
            &json!({"reason": "keyCompromise"}),
        )
        .await;
    assert!(r.status < 300, "{:?}", r.body);
    crate::support::eventually("the CA to hear of the revocation", async || {
        let seen = ca.revoked.lock().unwrap().clone();
        if seen.contains(&format!("{serial} 1")) {
            Ok(())
        } else {
            Err(format!("{seen:?}"))
        }
    })
    .await;

    // The WIT v0.1.0 world has no CA-chain export: the issuer's CA endpoint says so.
    let r = api.get(&format!("issuers/{issuer}/ca")).await;
    assert_eq!(r.status, 409, "{:?}", r.body);
    assert!(
        r.body.to_string().contains("no CA chain export"),
        "{:?}",
        r.body
    );
}

/// An asynchronous CA (`"mode": "async"`: each order is `pending` to its first three
/// polls, then issued): the job places one order, persists its id, and polls it on the
/// shortened schedule (`CERTCTL_ISSUER_POLL_SCALE`); a kill -9 while the order is pending
/// and a restart resume polling that order, never a second one, and the certificate ends
/// Active with the CA's chain.
#[tokio::test(flavor = "multi_thread")]
async fn asynchronous_orders_are_polled_across_a_restart_and_ordered_once() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = FakeCa::start();
    let mut server = plugin_server(tmp.path(), &ca, free_port(), true)
        .env("CERTCTL_ISSUER_POLL_SCALE", "0.05")
        .env("CERTCTL_SCHEDULER_JOB_PROCESSOR_INTERVAL", "200ms")
        .start()
        .await;
    let api = server.admin();
    let issuer = created(
        &api,
        "issuers",
        json!({"name": "async-ca", "type": "http-issuer",
               "config": {"url": ca.url(), "token": TOKEN, "mode": "async"}}),
    )
    .await;
    let cert = created(
        &api,
        "certificates",
        json!({"name": "async.example.com", "common_name": "async.example.com",
               "issuer_id": issuer, "sans": ["async.example.com"]}),
    )
    .await;

    // The order is placed and polled once (so its id is on the job), still pending.
    crate::support::eventually("the first poll of the order", async || {
        let polls = ca.orders.polls.load(Ordering::SeqCst);
        if polls >= 1 {
            Ok(())
        } else {
            Err(format!("{polls} polls\n{}", server.logs()))
        }
    })
    .await;
    assert!(ca.orders.polls.load(Ordering::SeqCst) <= PENDING_POLLS);
    server.kill();
    server.restart().await;
    let api = server.admin();

    let deadline = Instant::now() + WAIT * 2;
    let job = loop {
        let jobs = get_ok(
            &api,
            &format!("jobs?certificate_id={cert}&type=Issuance&per_page=100"),
        )
        .await;
        let j = jobs["data"][0].clone();
        if matches!(
            j["status"].as_str(),
            Some("Completed" | "Failed" | "Cancelled")
        ) {
            break j;
        }
        assert!(Instant::now() < deadline, "{jobs}\n{}", server.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(job["status"], "Completed", "{job}\n{}", server.logs());
    let c = get_ok(&api, &format!("certificates/{cert}")).await;
    assert_eq!(c["status"], "Active", "{c}");
    assert_eq!(
        ca.orders.placed.lock().unwrap().len(),
        1,
        "exactly one order"
    );
    assert!(ca.orders.polls.load(Ordering::SeqCst) > PENDING_POLLS);
    assert_eq!(ca.signed.load(Ordering::SeqCst), 1);
    let versions = get_ok(&api, &format!("certificates/{cert}/versions")).await;
    assert_eq!(versions["data"].as_array().unwrap().len(), 1, "{versions}");
    let chain = pem_blocks(versions["data"][0]["pem_chain"].as_str().unwrap());
    assert_eq!(chain.len(), 2, "leaf and CA: {versions}");
}

/// The plugin's `validate-config` refuses a bad config: 400 naming `config`, with the
/// plugin's message; an unknown type names `type`.
#[tokio::test(flavor = "multi_thread")]
async fn a_config_the_plugin_refuses_is_a_400_naming_config() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = FakeCa::start();
    let server = server_with_plugin(tmp.path(), &ca, free_port(), true).await;
    let api = server.admin();

    let r = api
        .post(
            "issuers",
            &issuer_body("bad", "ftp://nowhere.example", TOKEN),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.body["error"]["field"], "config", "{:?}", r.body);
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("not an http(s) URL"), "{message}");

    let r = api
        .post(
            "issuers",
            &json!({"name": "x", "type": "no-such-plugin", "config": {}}),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.body["error"]["field"], "type", "{:?}", r.body);

    // Updates are checked too.
    let issuer = created(&api, "issuers", issuer_body("ok", &ca.url(), TOKEN)).await;
    let r = api
        .put(
            &format!("issuers/{issuer}"),
            &json!({"config": {"url": "http://127.0.0.1:1/x", "colour": "blue"}}),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.body["error"]["field"], "config", "{:?}", r.body);
    // The manifest's schema speaks first, naming the key.
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("config.colour: unknown setting"),
        "{message}"
    );
    let r = api
        .put(
            &format!("issuers/{issuer}"),
            &json!({"config": {"url": ca.url(), "mode": "nap"}}),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("config.mode: must be one of"), "{message}");
}

/// The CA's 401 fails the job for good with the CA's message; an unreachable CA is a
/// retryable failure; neither breaks the Local CA.
#[tokio::test(flavor = "multi_thread")]
async fn ca_refusals_fail_the_job_and_unreachable_cas_are_retried() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = FakeCa::start();
    let unreachable = free_port();
    let server = server_with_plugin(tmp.path(), &ca, unreachable, true).await;
    let api = server.admin();

    let wrong = created(
        &api,
        "issuers",
        issuer_body("wrong", &ca.url(), "bad-token"),
    )
    .await;
    let (_, job) = issue(&api, &wrong, "denied.example.com").await;
    let err = job["last_error"].as_str().unwrap_or_default();
    assert_eq!(job["status"], "Failed", "{job}\n{}", server.logs());
    assert!(err.contains("fake CA: bearer token rejected"), "{job}");
    assert!(err.contains("401"), "{job}");
    assert!(job["scheduled_at"].is_null(), "no retry scheduled: {job}");

    let nowhere = created(
        &api,
        "issuers",
        issuer_body(
            "nowhere",
            &format!("http://127.0.0.1:{unreachable}/sign"),
            TOKEN,
        ),
    )
    .await;
    let (_, job) = issue(&api, &nowhere, "nowhere.example.com").await;
    let err = job["last_error"].as_str().unwrap_or_default();
    assert!(err.contains("unavailable"), "retryable: {job}");
    // A retryable failure is `Failed` with the next attempt scheduled.
    assert!(job["scheduled_at"].is_string(), "retry scheduled: {job}");
    assert!(
        job["attempts"].as_i64() < job["max_attempts"].as_i64(),
        "attempts left: {job}"
    );

    let (_, local) = issue(&api, "iss-local", "still-local.example.com").await;
    assert_eq!(local["status"], "Completed", "{local}");
}

/// A plugin copied into the directory after start is accepted as an issuer type after
/// `POST /api/v1/plugins/reload`, without a restart, and issues; an issuer whose plugin
/// was missing at start gets its connector at the next reload.
#[tokio::test(flavor = "multi_thread")]
async fn an_issuer_plugin_added_at_runtime_works_after_reload() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = FakeCa::start();
    let server = server_with_plugin(tmp.path(), &ca, free_port(), false).await;
    let api = server.admin();

    let r = api
        .post("issuers", &issuer_body("early", &ca.url(), TOKEN))
        .await;
    assert_eq!(r.status, 400, "not loaded yet: {:?}", r.body);
    assert_eq!(r.body["error"]["field"], "type", "{:?}", r.body);

    install(&tmp.path().join("plugins"), "http-issuer", "http-issuer");
    let r = api.post("plugins/reload", &json!({})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    let issuer = created(&api, "issuers", issuer_body("late", &ca.url(), TOKEN)).await;
    let (_, job) = issue(&api, &issuer, "late.example.com").await;
    assert_eq!(job["status"], "Completed", "{job}\n{}", server.logs());

    // A restart without the plugin leaves the issuer without a connector (its jobs fail
    // naming the type); putting the plugin back and reloading revives it, no restart.
    let mut server = server;
    std::fs::remove_dir_all(tmp.path().join("plugins/http-issuer")).unwrap();
    server.restart().await;
    let api = server.admin();
    let (_, job) = issue(&api, &issuer, "gone.example.com").await;
    let err = job["last_error"].as_str().unwrap_or_default();
    assert!(err.contains("http-issuer"), "{job}");
    install(&tmp.path().join("plugins"), "http-issuer", "http-issuer");
    let r = api.post("plugins/reload", &json!({})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let (_, job) = issue(&api, &issuer, "back.example.com").await;
    assert_eq!(job["status"], "Completed", "{job}\n{}", server.logs());
}

/// Hostile guests: a plugin that traps or hangs past the call deadline fails that job
/// only (the trap as a crash, the timeout as retryable); the same plugin with a sane
/// config, and the Local CA, keep issuing.
#[tokio::test(flavor = "multi_thread")]
async fn a_trapping_or_hanging_plugin_fails_only_its_job() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = FakeCa::start();
    let server = plugin_server(tmp.path(), &ca, free_port(), true)
        .env("CERTCTL_PLUGIN_CALL_TIMEOUT", "1s")
        .start()
        .await;
    let api = server.admin();

    let with_mode = |name: &str, mode: &str| json!({"name": name, "type": "http-issuer", "config": {"url": ca.url(), "token": TOKEN, "mode": mode}});
    let trap = created(&api, "issuers", with_mode("trap", "trap")).await;
    let (_, job) = issue(&api, &trap, "trap.example.com").await;
    let err = job["last_error"].as_str().unwrap_or_default();
    assert!(
        err.contains("crashed") && err.contains("trapped"),
        "{job}\n{}",
        server.logs()
    );

    let hang = created(&api, "issuers", with_mode("hang", "hang")).await;
    let (_, job) = issue(&api, &hang, "hang.example.com").await;
    let err = job["last_error"].as_str().unwrap_or_default();
    assert!(
        err.contains("unavailable") && err.contains("timed out"),
        "{job}"
    );
    assert!(job["scheduled_at"].is_string(), "retry scheduled: {job}");

    let sane = created(&api, "issuers", issuer_body("sane", &ca.url(), TOKEN)).await;
    let (_, job) = issue(&api, &sane, "sane.example.com").await;
    assert_eq!(job["status"], "Completed", "{job}");
    let (_, local) = issue(&api, "iss-local", "local-too.example.com").await;
    assert_eq!(local["status"], "Completed", "{local}");
}
