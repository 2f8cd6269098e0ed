//! Issuance throughput benchmark (run with `cargo bench -p certctl-host --bench issuance`).
//!
//! Starts a real `certctl-server` (SQLite, server keygen, TLS off) on loopback, creates a
//! bounded number of certificates through the API and measures how many become Active per
//! second; then measures raw ECDSA P-256 signatures per second of the crypto provider (ring)
//! on this machine, and prints both side by side. The ratio says how much of the CA's budget
//! the pipeline (HTTP, SQL, job state machine, lint) costs beyond the signature itself.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
use serde_json::{Value, json};

const CERTIFICATES: usize = 200;
const CONCURRENCY: usize = 16;
const KEY: &str = "bench-admin-key";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18999)
}

async fn issuance_rate() -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_certctl-server"))
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
        .spawn()?;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.get(format!("{base}/health")).send().await.is_err() {
        anyhow::ensure!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let started = Instant::now();
    let mut pending = Vec::new();
    for i in 0..CERTIFICATES {
        let (client, base) = (client.clone(), base.clone());
        pending.push(tokio::spawn(async move {
            client
                .post(format!("{base}/api/v1/certificates"))
                .bearer_auth(KEY)
                .json(&json!({"name": format!("bench-{i}"), "common_name": format!("b{i}.bench.example"), "issuer_id": "iss-local"}))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }));
        if pending.len() >= CONCURRENCY {
            let first = pending.remove(0);
            anyhow::ensure!(first.await?? == 201, "create failed");
        }
    }
    for p in pending {
        anyhow::ensure!(p.await?? == 201, "create failed");
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let body: Value = client
            .get(format!(
                "{base}/api/v1/certificates?status=Active&per_page=1"
            ))
            .bearer_auth(KEY)
            .send()
            .await?
            .json()
            .await?;
        if body["total"].as_u64() == Some(CERTIFICATES as u64) {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "issuance did not finish in time: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    Ok(CERTIFICATES as f64 / elapsed.as_secs_f64())
}

fn signature_rate() -> anyhow::Result<f64> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .map_err(|_| anyhow::anyhow!("keygen"))?;
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|_| anyhow::anyhow!("key"))?;
    let message = [0x5a_u8; 512];
    let started = Instant::now();
    let mut n = 0_u64;
    while started.elapsed() < Duration::from_secs(2) {
        for _ in 0..100 {
            key.sign(&rng, &message)
                .map_err(|_| anyhow::anyhow!("sign"))?;
        }
        n += 100;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing we need.
    let issued = issuance_rate().await?;
    let signatures = signature_rate()?;
    println!(
        "issuance bench ({CERTIFICATES} certificates, {CONCURRENCY} concurrent API clients, server keygen, SQLite, loopback)"
    );
    println!("  certificates issued per second through the API : {issued:>10.1}");
    println!("  raw ECDSA P-256 signatures per second (ring)   : {signatures:>10.1}");
    println!(
        "  ratio signatures / issued certificates         : {:>10.1}",
        signatures / issued
    );
    Ok(())
}
