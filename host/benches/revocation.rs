//! Revocation benchmark (run with `cargo bench -p certctl-host --bench revocation`).
//!
//! 1. OCSP: starts a real `certctl-server` (SQLite, server keygen, TLS off) on loopback,
//!    issues one certificate from the Local CA, and serves the same CA with
//!    `openssl ocsp -index … -port …` (a responder certificate issued by that CA from the
//!    CA key in the server's data dir, an index.txt listing the leaf). One DER request,
//!    built by `openssl ocsp -reqout`, is POSTed for a fixed time by a bounded number of
//!    keep-alive HTTP/1.1 clients to each responder; only HTTP 200 answers whose OCSP
//!    responseStatus is `successful` count. A connection the server closes (openssl
//!    answers HTTP/1.0) is reopened, and the connect time is part of that request's latency;
//!    the output says how many requests each connection carried.
//! 2. CRL: inserts 100 000 revocations of one issuer straight into a fresh store (one
//!    transaction) and times one generation through `RevocationService::regenerate_crl`,
//!    the call the CRL loop makes; openssl checks the result.
//!
//! The load generator shares the machine's cores with the responder under test, the same
//! for both.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Actor as _;
use certctl_host::actors::issuer_registry::{IssuerRegistry, Rebuild};
use certctl_host::clock::{Clock, SystemClock};
use certctl_host::domain::audit::Actor;
use certctl_host::domain::revocation::RevocationReason;
use certctl_host::domain::{certificate, issuer};
use certctl_host::issuer::{ConnectorContext, ConnectorTypes};
use certctl_host::pki::local_ca::LocalCa;
use certctl_host::revocation::{RevocationService, RevocationSettings};
use certctl_host::store::{self, Store, records};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use x509_parser::prelude::FromDer as _;

const KEY: &str = "bench-admin-key";
/// Concurrent keep-alive clients per run.
const CLIENTS: usize = 8;
/// How long each responder is loaded.
const DURATION: Duration = Duration::from_secs(5);
/// Revoked entries in the benchmarked CRL.
const CRL_ENTRIES: usize = 100_000;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18998)
}

/// Kills the child on every exit path.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn openssl(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    anyhow::ensure!(out.status.success(), "openssl {}: {text}", args.join(" "));
    Ok(text)
}

// ---------------------------------------------------------------------------------------
// Load generator
// ---------------------------------------------------------------------------------------

/// What one run measured.
#[derive(Default)]
struct Run {
    ok: u64,
    errors: u64,
    connections: u64,
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Run {
    fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * self.latencies.len() as f64).ceil() as usize;
        self.latencies[rank.clamp(1, self.latencies.len()) - 1]
    }

    fn per_connection(&self) -> f64 {
        self.ok as f64 / self.connections.max(1) as f64
    }
}

/// A parsed HTTP response: status, whether the connection stays open, body.
struct Response {
    status: u16,
    keep_alive: bool,
    body: Vec<u8>,
}

async fn read_response(reader: &mut BufReader<TcpStream>) -> anyhow::Result<Response> {
    let mut line = String::new();
    anyhow::ensure!(reader.read_line(&mut line).await? > 0, "connection closed");
    let mut parts = line.split_whitespace();
    let version = parts.next().unwrap_or_default().to_owned();
    let status: u16 = parts.next().unwrap_or_default().parse()?;
    let mut length = None;
    let mut connection = None;
    loop {
        line.clear();
        anyhow::ensure!(reader.read_line(&mut line).await? > 0, "truncated headers");
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            continue;
        };
        let value = value.trim().to_ascii_lowercase();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = Some(value.parse::<usize>()?),
            "connection" => connection = Some(value),
            "transfer-encoding" => anyhow::bail!("transfer-encoding {value} not supported"),
            _ => {}
        }
    }
    let keep_alive = match connection.as_deref() {
        Some("close") => false,
        Some("keep-alive") => true,
        _ => version == "HTTP/1.1",
    };
    let mut body = Vec::new();
    match length {
        Some(n) => {
            body.resize(n, 0);
            reader.read_exact(&mut body).await?;
        }
        None => {
            reader.read_to_end(&mut body).await?;
        }
    }
    Ok(Response {
        status,
        keep_alive: keep_alive && length.is_some(),
        body,
    })
}

/// Whether a DER OCSPResponse says `successful` (SEQUENCE { ENUMERATED 0, … }).
fn ocsp_successful(der: &[u8]) -> bool {
    if der.first() != Some(&0x30) || der.len() < 2 {
        return false;
    }
    let skip = match der[1] {
        n if n < 0x80 => 2,
        n => 2 + usize::from(n & 0x7f),
    };
    der.get(skip..skip + 3) == Some(&[0x0a, 0x01, 0x00][..])
}

/// One client: POSTs `request` over one connection for as long as the server keeps it,
/// reconnecting when it does not, until `deadline`.
async fn client(port: u16, path: String, request: Arc<Vec<u8>>, deadline: Instant) -> Run {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/ocsp-request\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n",
        request.len()
    );
    let mut message = head.into_bytes();
    message.extend_from_slice(&request);
    let mut run = Run::default();
    let mut connection: Option<BufReader<TcpStream>> = None;
    while Instant::now() < deadline {
        let started = Instant::now();
        let reader = match connection.as_mut() {
            Some(r) => r,
            None => match TcpStream::connect(("127.0.0.1", port)).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    run.connections += 1;
                    connection.insert(BufReader::new(s))
                }
                Err(_) => {
                    run.errors += 1;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
            },
        };
        let answer = async {
            reader.get_mut().write_all(&message).await?;
            read_response(reader).await
        }
        .await;
        match answer {
            Ok(r) => {
                if r.status == 200 && ocsp_successful(&r.body) {
                    run.ok += 1;
                    run.latencies.push(started.elapsed());
                } else {
                    run.errors += 1;
                }
                if !r.keep_alive {
                    connection = None;
                }
            }
            Err(_) => {
                run.errors += 1;
                connection = None;
            }
        }
    }
    run
}

/// [`CLIENTS`] clients against `127.0.0.1:port` for [`DURATION`].
async fn load(port: u16, path: &str, request: &[u8]) -> anyhow::Result<Run> {
    let request = Arc::new(request.to_vec());
    let started = Instant::now();
    let deadline = started + DURATION;
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(client(port, path.to_owned(), request.clone(), deadline)))
        .collect();
    let mut total = Run::default();
    for t in tasks {
        let r = t.await?;
        total.ok += r.ok;
        total.errors += r.errors;
        total.connections += r.connections;
        total.latencies.extend(r.latencies);
    }
    total.elapsed = started.elapsed();
    total.latencies.sort_unstable();
    Ok(total)
}

// ---------------------------------------------------------------------------------------
// OCSP: certctl against openssl
// ---------------------------------------------------------------------------------------

/// Starts certctl, issues a leaf, and prepares openssl's responder files in `work`.
/// Answers the server process and the certctl OCSP port.
async fn certctl_with_leaf(work: &Path) -> anyhow::Result<(Killed, tempfile::TempDir, u16)> {
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let child = Killed(
        Command::new(env!("CARGO_BIN_EXE_certctl-server"))
            .env("CERTCTL_DATA_DIR", dir.path())
            .env("CERTCTL_SERVER_HOST", "127.0.0.1")
            .env("CERTCTL_SERVER_PORT", port.to_string())
            .env("CERTCTL_TLS_MODE", "off")
            .env("CERTCTL_KEYGEN_MODE", "server")
            .env("CERTCTL_ADMIN_API_KEY", KEY)
            .env("CERTCTL_RATE_LIMIT_ENABLED", "false")
            .env("CERTCTL_LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.get(format!("{base}/health")).send().await.is_err() {
        anyhow::ensure!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let created: Value = client
        .post(format!("{base}/api/v1/certificates"))
        .bearer_auth(KEY)
        .json(&json!({"name": "ocsp-bench", "common_name": "ocsp.bench.example", "issuer_id": "iss-local"}))
        .send()
        .await?
        .json()
        .await?;
    let id = created["id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("create: {created}"))?
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let c: Value = client
            .get(format!("{base}/api/v1/certificates/{id}"))
            .bearer_auth(KEY)
            .send()
            .await?
            .json()
            .await?;
        if c["status"] == "Active" {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "not issued: {c}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let export: Value = client
        .get(format!("{base}/api/v1/certificates/{id}/export/pem"))
        .bearer_auth(KEY)
        .send()
        .await?
        .json()
        .await?;
    let leaf = export["certificate"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("export: {export}"))?;
    std::fs::write(work.join("leaf.pem"), leaf)?;
    let ca = client
        .get(format!("{base}/api/v1/issuers/iss-local/ca"))
        .bearer_auth(KEY)
        .send()
        .await?
        .text()
        .await?;
    std::fs::write(work.join("ca.pem"), ca)?;
    std::fs::copy(dir.path().join("ca/ca.key"), work.join("ca.key"))?;

    // openssl's side: a delegated responder issued by the same CA, and the index.
    std::fs::write(
        work.join("responder.cnf"),
        "[v3]\nbasicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = OCSPSigning\nnoCheck = ignored\n",
    )?;
    for args in [
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "rkey.pem",
        ][..],
        &[
            "req",
            "-new",
            "-key",
            "rkey.pem",
            "-subj",
            "/CN=openssl OCSP responder",
            "-out",
            "responder.csr",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "responder.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-set_serial",
            "0x4f435350",
            "-days",
            "30",
            "-sha256",
            "-extfile",
            "responder.cnf",
            "-extensions",
            "v3",
            "-out",
            "rsigner.pem",
        ],
    ] {
        openssl(work, args)?;
    }
    std::fs::write(work.join("index.txt"), index_line(leaf)?)?;
    std::fs::write(work.join("index.txt.attr"), "unique_subject = no\n")?;
    Ok((child, dir, port))
}

/// The leaf as a valid `V` entry of an `openssl ca` index: status, expiry (UTCTime), no
/// revocation date, serial as `BN_bn2hex` prints it, file name, subject.
fn index_line(leaf_pem: &str) -> anyhow::Result<String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(leaf_pem.as_bytes())?;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&pem.contents)?;
    let raw = cert.raw_serial();
    let start = raw.iter().take_while(|b| **b == 0).count();
    let serial = hex::encode_upper(&raw[start..]);
    let t = cert.validity().not_after.to_datetime();
    let expiry = format!(
        "{:02}{:02}{:02}{:02}{:02}{:02}Z",
        t.year() % 100,
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let subject = format!("/{}", cert.subject().to_string().replace(", ", "/"));
    Ok(format!("V\t{expiry}\t\t{serial}\tunknown\t{subject}\n"))
}

/// Starts `openssl ocsp` as a responder on `port` (`multi` processes when > 1).
fn openssl_responder(work: &Path, port: u16, multi: usize) -> anyhow::Result<Killed> {
    let port = port.to_string();
    let multi = multi.to_string();
    let mut args = vec![
        "ocsp",
        "-index",
        "index.txt",
        "-port",
        &port,
        "-rsigner",
        "rsigner.pem",
        "-rkey",
        "rkey.pem",
        "-CA",
        "ca.pem",
        "-nmin",
        "60",
    ];
    if multi != "1" {
        args.extend(["-multi", &multi]);
    }
    Ok(Killed(
        Command::new("openssl")
            .args(&args)
            .current_dir(work)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    ))
}

/// One `openssl ocsp` client query; checks that the answer verifies and says good.
async fn check_good(work: &Path, url: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = openssl(
            work,
            &[
                "ocsp",
                "-issuer",
                "ca.pem",
                "-cert",
                "leaf.pem",
                "-url",
                url,
                "-CAfile",
                "ca.pem",
                "-no_nonce",
            ],
        );
        match out {
            Ok(text) if text.contains("Response verify OK") && text.contains("leaf.pem: good") => {
                return Ok(());
            }
            other => {
                anyhow::ensure!(Instant::now() < deadline, "{url}: {other:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn print_run(name: &str, run: &Run) {
    println!(
        "  {name:<34} {:>9.0} {:>9.2} {:>9.2} {:>8} {:>7} {:>8.1}",
        run.rps(),
        run.percentile(50.0).as_secs_f64() * 1000.0,
        run.percentile(99.0).as_secs_f64() * 1000.0,
        run.errors,
        run.connections,
        run.per_connection()
    );
}

async fn ocsp_bench() -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let (_server, _data, port) = certctl_with_leaf(work.path()).await?;
    openssl(
        work.path(),
        &[
            "ocsp", "-issuer", "ca.pem", "-cert", "leaf.pem", "-reqout", "req.der",
        ],
    )?;
    let request = std::fs::read(work.path().join("req.der"))?;
    let certctl_path = "/.well-known/pki/ocsp/iss-local";
    check_good(
        work.path(),
        &format!("http://127.0.0.1:{port}{certctl_path}"),
    )
    .await?;

    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let certctl = load(port, certctl_path, &request).await?;
    let mut openssl_runs = Vec::new();
    let mut variants = vec![1];
    if cores > 1 {
        variants.push(cores);
    }
    for multi in variants {
        let oport = free_port();
        let _responder = openssl_responder(work.path(), oport, multi)?;
        check_good(work.path(), &format!("http://127.0.0.1:{oport}/")).await?;
        openssl_runs.push((multi, load(oport, "/", &request).await?));
    }

    println!(
        "OCSP bench: one leaf of the Local CA, the same DER request (with nonce) POSTed by {CLIENTS} keep-alive HTTP/1.1 clients for {}s each, loopback, {cores} cores",
        DURATION.as_secs()
    );
    println!(
        "  {:<34} {:>9} {:>9} {:>9} {:>8} {:>7} {:>8}",
        "responder", "resp/s", "p50 ms", "p99 ms", "errors", "conns", "req/conn"
    );
    print_run("certctl (actix, SQLite)", &certctl);
    for (multi, run) in &openssl_runs {
        let name = if *multi == 1 {
            "openssl ocsp -index -port".to_owned()
        } else {
            format!("openssl ocsp -index -port -multi {multi}")
        };
        print_run(&name, run);
    }
    for (multi, run) in &openssl_runs {
        println!(
            "  ratio certctl / openssl ({multi} process{}): {:.2}x resp/s, {:.2}x p99",
            if *multi == 1 { "" } else { "es" },
            certctl.rps() / run.rps().max(f64::MIN_POSITIVE),
            certctl.percentile(99.0).as_secs_f64()
                / run.percentile(99.0).as_secs_f64().max(f64::MIN_POSITIVE)
        );
    }
    for (name, run) in std::iter::once(("certctl", &certctl))
        .chain(openssl_runs.iter().map(|(_, r)| ("openssl", r)))
    {
        println!(
            "  keep-alive {name}: {}",
            if run.per_connection() > 1.5 {
                "used (connections reused)".to_owned()
            } else {
                format!(
                    "not honoured: the server closed after each answer, {} connections reopened",
                    run.connections
                )
            }
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// CRL with 100 000 entries
// ---------------------------------------------------------------------------------------

async fn crl_bench() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().to_path_buf();
    let store = Store::connect(&store::default_sqlite_url(&path)).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let ca = Arc::new(LocalCa::load_or_create(&path.join("ca"))?);
    std::fs::write(path.join("ca.pem"), ca.chain_pem())?;
    let now = clock.now_text();
    let values = |v: Value| v.as_object().cloned().unwrap_or_default();
    records::create(
        &store,
        &issuer::SPEC,
        "iss-local",
        values(json!({"name": "Local CA", "type": "local", "config": {}, "enabled": true})),
        &now,
        &Actor::system(),
    )
    .await?;
    records::create(
        &store,
        &certificate::SPEC,
        "mc-crl-bench",
        values(json!({"name": "crl-bench", "common_name": "crl.bench.example"})),
        &now,
        &Actor::system(),
    )
    .await?;
    let ctx = ConnectorContext::new(ca, path.clone());
    let registry = IssuerRegistry::new(store.clone(), ConnectorTypes::native(), ctx).start();
    registry
        .send(Rebuild)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))??;

    // 100 000 rows, 16-octet positive serials like the Local CA's, mixed reasons.
    let inserted = Instant::now();
    let base = clock.now();
    let not_after = certctl_core::timestamp::format(base + time::Duration::days(30));
    let reasons = [
        RevocationReason::Unspecified,
        RevocationReason::KeyCompromise,
        RevocationReason::Superseded,
        RevocationReason::CessationOfOperation,
    ];
    let mut tx = store.begin_write().await?;
    for chunk in (0..CRL_ENTRIES).collect::<Vec<_>>().chunks(1000) {
        let mut sql = String::from(
            "INSERT INTO certificate_revocations (id, certificate_id, version_id, serial_number, issuer_id, reason, reason_code, revoked_at, revoked_by, not_after, crl_exempt, bulk_revocation_id) VALUES ",
        );
        for (n, i) in chunk.iter().enumerate() {
            let mut serial = [0u8; 16];
            serial[..8].copy_from_slice(&(*i as u64 + 1).to_be_bytes());
            serial[8..].copy_from_slice(&0x5a5a_5a5a_5a5a_5a5a_u64.to_be_bytes());
            serial[0] |= 0x40;
            let reason = reasons[i % reasons.len()];
            let revoked_at = certctl_core::timestamp::format(
                base - time::Duration::seconds(i64::try_from(*i).unwrap_or(0)),
            );
            if n > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!(
                "('rev-bench-{i}', 'mc-crl-bench', NULL, '{}', 'iss-local', '{}', {}, '{revoked_at}', 'bench', '{not_after}', 0, NULL)",
                hex::encode(serial),
                reason.as_str(),
                reason.code()
            ));
        }
        sqlx::query(&sql).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    let inserted = inserted.elapsed();

    let service = RevocationService::new(
        store.clone(),
        clock,
        registry,
        &RevocationSettings {
            crl_generation_interval: Duration::from_secs(3600),
            ocsp_responder_validity: Duration::from_secs(30 * 86_400),
            ocsp_responder_rotation_grace: Duration::from_secs(7 * 86_400),
            ocsp_responder_key_dir: None,
        },
        &path,
    );
    let started = Instant::now();
    let crl = service.regenerate_crl("iss-local", "scheduled").await?;
    let first = started.elapsed();
    let started = Instant::now();
    let again = service.regenerate_crl("iss-local", "scheduled").await?;
    let second = started.elapsed();
    anyhow::ensure!(again.crl_number > crl.crl_number, "CRL number increases");

    let (_, parsed) = x509_parser::revocation_list::CertificateRevocationList::from_der(&crl.der)?;
    let listed = parsed.iter_revoked_certificates().count();
    anyhow::ensure!(listed == CRL_ENTRIES, "{listed} entries listed");
    std::fs::write(path.join("crl.der"), &crl.der)?;
    let verified = openssl(
        &path,
        &[
            "crl", "-inform", "DER", "-in", "crl.der", "-noout", "-CAfile", "ca.pem",
        ],
    )?;
    anyhow::ensure!(verified.contains("verify OK"), "{verified}");

    println!(
        "CRL bench: {CRL_ENTRIES} revoked entries of one issuer (SQLite), generated by RevocationService::regenerate_crl (the CRL loop's call)"
    );
    println!(
        "  rows inserted in one transaction            : {:>9.0} ms",
        inserted.as_secs_f64() * 1000.0
    );
    println!(
        "  CRL generation (read, build, sign, cache)   : {:>9.0} ms  (again: {:.0} ms)",
        first.as_secs_f64() * 1000.0,
        second.as_secs_f64() * 1000.0
    );
    println!(
        "  CRL size                                    : {:>9} bytes ({:.1} MiB), {listed} entries, CRL number {}",
        crl.der.len(),
        crl.der.len() as f64 / 1_048_576.0,
        crl.crl_number
    );
    println!("  openssl crl -inform DER -noout -CAfile      : verify OK");
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes --bench; nothing here needs it.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(ocsp_bench())?;
    actix::System::new().block_on(crl_bench())
}
