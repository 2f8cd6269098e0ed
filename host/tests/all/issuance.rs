//! Acceptance tests of the issuance pipeline against the real server, with the `openssl`
//! CLI as the independent verifier of everything the Local CA signs:
//!
//! 1. server keygen: Active within seconds, chain verifies against `/issuers/iss-local/ca`,
//!    SANs exactly as requested, serial ≥ 64 bits, NotAfter capped by a profile's max TTL,
//!    the CA survives a restart;
//! 2. agent keygen: AwaitingCSR for the mapped target's agent, CSR checks (names,
//!    signature, profile key rules) answered with a 400 that names the problem, the
//!    issued leaf carries the CSR's key, one deployment job per mapped target;
//! 3. crash safety: an abort between signing and commit, or a SIGKILL right after
//!    creation, still ends in exactly one version and one completed job;
//! 4. job actions: approve, reject, cancel, retry, invalid transitions, renew.
//!
//! Every state change leaves audit events; the tests spot-check them per job.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::support::{
    ADMIN_KEY, Api, ServerBuilder, WAIT, eventually, get_ca, openssl, openssl_ok, pem_blocks,
};

// ---------------------------------------------------------------------------------------
// API helpers
// ---------------------------------------------------------------------------------------

/// POSTs a record and returns its id (asserting 201).
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

/// `GET /issuers/iss-local/ca` as text.
async fn ca_pem(api: &Api) -> String {
    let r = get_ca(api).await;
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        ct.starts_with("application/x-pem-file"),
        "content-type {ct}"
    );
    let pem = r.text().await.unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    pem
}

async fn job(api: &Api, id: &str) -> Value {
    get_ok(api, &format!("jobs/{id}")).await
}

/// Waits until the job is in `status`; fails fast if it ends in another final state.
async fn wait_job(api: &Api, id: &str, status: &str) -> Value {
    eventually(&format!("job {id} to be {status}"), async || {
        let j = job(api, id).await;
        let now = j["status"].as_str().unwrap_or_default();
        if now == status {
            return Ok(j);
        }
        assert!(
            !matches!(now, "Completed" | "Failed" | "Cancelled"),
            "job {id} ended {now} while waiting for {status}: {j}"
        );
        Err(j.to_string())
    })
    .await
}

/// Jobs of one type for a certificate.
async fn jobs_of(api: &Api, certificate: &str, job_type: &str) -> Vec<Value> {
    let body = get_ok(
        api,
        &format!("jobs?certificate_id={certificate}&type={job_type}&per_page=100"),
    )
    .await;
    body["data"].as_array().unwrap().clone()
}

/// The single Issuance job of a certificate.
async fn issuance_job(api: &Api, certificate: &str) -> Value {
    let jobs = jobs_of(api, certificate, "Issuance").await;
    assert_eq!(jobs.len(), 1, "exactly one Issuance job: {jobs:?}");
    jobs[0].clone()
}

async fn wait_certificate(api: &Api, id: &str, status: &str) -> Value {
    eventually(&format!("certificate {id} to be {status}"), async || {
        let c = get_ok(api, &format!("certificates/{id}")).await;
        if c["status"] == status {
            Ok(c)
        } else {
            let jobs = get_ok(api, &format!("jobs?certificate_id={id}")).await;
            Err(format!("{c} jobs {}", jobs["data"]))
        }
    })
    .await
}

/// Versions, newest first (also checks `total`).
async fn versions(api: &Api, certificate: &str) -> Vec<Value> {
    let body = get_ok(api, &format!("certificates/{certificate}/versions")).await;
    let data = body["data"].as_array().unwrap().clone();
    assert_eq!(body["total"], json!(data.len()));
    data
}

/// Audit actions recorded for one resource, oldest first.
async fn audit_actions(api: &Api, resource_id: &str) -> Vec<String> {
    let body = get_ok(
        api,
        &format!("audit?resource_id={resource_id}&sort=timestamp&per_page=500"),
    )
    .await;
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

async fn audit_events(api: &Api, resource_id: &str, action: &str) -> Vec<Value> {
    let body = get_ok(
        api,
        &format!("audit?resource_id={resource_id}&action={action}&per_page=500"),
    )
    .await;
    body["data"].as_array().unwrap().clone()
}

fn assert_audited(actions: &[String], expected: &[&str]) {
    for a in expected {
        assert!(
            actions.iter().any(|x| x == a),
            "audit lacks {a}: {actions:?}"
        );
    }
    let count = |a: &str| actions.iter().filter(|x| *x == a).count();
    assert_eq!(count("job_created"), 1, "{actions:?}");
    assert!(count("job_completed") <= 1, "{actions:?}");
}

fn error_message(body: &Value) -> String {
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn parse_time(v: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(v.as_str().unwrap(), &Rfc3339).unwrap()
}

// ---------------------------------------------------------------------------------------
// openssl helpers
// ---------------------------------------------------------------------------------------

/// What openssl says about an issued version.
struct Leaf {
    text: String,
    serial_hex: String,
}

/// Writes `ca.pem` and `<name>.pem` (the chain's first certificate), checks the chain
/// shape, `openssl verify`, serial and fingerprint against the stored version.
fn verify_version(dir: &Path, ca: &str, version: &Value, name: &str) -> Leaf {
    std::fs::write(dir.join("ca.pem"), ca).unwrap();
    let chain = pem_blocks(version["pem_chain"].as_str().unwrap());
    assert_eq!(chain.len(), 2, "pem_chain is leaf then CA: {version}");
    assert_eq!(
        chain[1].trim(),
        ca.trim(),
        "the chain ends with the CA that /issuers/iss-local/ca serves"
    );
    let leaf_file = format!("{name}.pem");
    std::fs::write(dir.join(&leaf_file), &chain[0]).unwrap();

    let out = openssl(
        dir,
        &["verify", "-x509_strict", "-CAfile", "ca.pem", &leaf_file],
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "openssl verify failed: {said}");
    assert_eq!(said.trim(), format!("{leaf_file}: OK"));

    // Serial: ≥ 64 bits, stored as lower hex, the same one openssl reads.
    let stored = version["serial_number"].as_str().unwrap();
    assert!(
        stored
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
        "serial_number is lower hex: {stored}"
    );
    let serial_out = openssl_ok(dir, &["x509", "-in", &leaf_file, "-noout", "-serial"]);
    let serial_hex = serial_out
        .trim()
        .strip_prefix("serial=")
        .unwrap()
        .to_owned();
    assert_eq!(
        serial_hex,
        stored.to_uppercase(),
        "openssl reads the stored serial"
    );
    let significant = serial_hex.trim_start_matches('0');
    assert!(
        significant.len() >= 16,
        "serial has at least 64 bits (8 octets): {serial_hex}"
    );

    // Fingerprint.
    let fp = openssl_ok(
        dir,
        &[
            "x509",
            "-in",
            &leaf_file,
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
    );
    let fp = fp
        .trim()
        .split_once('=')
        .unwrap()
        .1
        .replace(':', "")
        .to_lowercase();
    assert_eq!(fp, version["fingerprint_sha256"].as_str().unwrap());

    let text = openssl_ok(dir, &["x509", "-in", &leaf_file, "-noout", "-text"]);
    Leaf { text, serial_hex }
}

/// SANs from `openssl x509 -text`, normalised (`DNS:a`, `IP:<rust display>`).
fn sans_of(text: &str) -> BTreeSet<String> {
    let mut lines = text.lines();
    lines
        .find(|l| l.contains("X509v3 Subject Alternative Name"))
        .expect("a SAN extension");
    let line = lines.next().unwrap().trim();
    line.split(", ")
        .map(|s| match s.strip_prefix("IP Address:") {
            Some(ip) => format!("IP:{}", ip.parse::<IpAddr>().unwrap()),
            None => s.to_owned(),
        })
        .collect()
}

/// `openssl x509 -checkend`: true when the certificate is still valid `seconds` from now.
fn valid_in(dir: &Path, leaf_file: &str, seconds: i64) -> bool {
    let out = openssl(
        dir,
        &[
            "x509",
            "-in",
            leaf_file,
            "-noout",
            "-checkend",
            &seconds.to_string(),
        ],
    );
    match out.status.code() {
        Some(0) => true,
        Some(1) => false,
        other => panic!("openssl -checkend: {other:?} {out:?}"),
    }
}

/// A PEM block from DER.
fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).unwrap());
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

/// An openssl-made CSR (`-newkey <newkey>`): writes `<name>.key` and `<name>.csr`.
fn make_csr(dir: &Path, name: &str, newkey: &[&str], subject_cn: &str, sans: &str) -> String {
    let key = format!("{name}.key");
    let csr = format!("{name}.csr");
    let subj = format!("/CN={subject_cn}");
    let ext = format!("subjectAltName={sans}");
    let mut args = vec!["req", "-new"];
    args.extend_from_slice(newkey);
    args.extend_from_slice(&[
        "-nodes", "-keyout", &key, "-out", &csr, "-subj", &subj, "-addext", &ext,
    ]);
    openssl_ok(dir, &args);
    std::fs::read_to_string(dir.join(csr)).unwrap()
}

const P256: &[&str] = &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];

// ---------------------------------------------------------------------------------------
// 1. Server keygen
// ---------------------------------------------------------------------------------------

/// Server keygen: Active within seconds; the chain verifies against the served CA; SANs
/// exactly as requested (DNS and IP); a 128-bit serial; NotAfter ≈ 90 days by default and
/// capped by a profile's `max_ttl_seconds`; renewal issues a second version with a new
/// serial; every step of each job is audited.
#[tokio::test]
async fn server_keygen_issues_certificates_that_openssl_verifies() {
    let server = ServerBuilder::new()
        .env("CERTCTL_KEYGEN_MODE", "server")
        .start()
        .await;
    let api = server.admin();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let ca = ca_pem(&api).await;
    std::fs::write(dir.join("ca.pem"), &ca).unwrap();
    let ca_text = openssl_ok(dir, &["x509", "-in", "ca.pem", "-noout", "-text"]);
    assert!(ca_text.contains("CA:TRUE"), "{ca_text}");

    let t0 = OffsetDateTime::now_utc();
    let started = Instant::now();
    let cert = created(
        &api,
        "certificates",
        json!({
            "name": "svc", "common_name": "svc.example.com", "issuer_id": "iss-local",
            "sans": ["svc.example.com", "api.example.com", "10.0.0.7", "2001:db8::1"],
        }),
    )
    .await;
    let c = wait_certificate(&api, &cert, "Active").await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "Active took {:?}",
        started.elapsed()
    );

    let vs = versions(&api, &cert).await;
    assert_eq!(vs.len(), 1, "{vs:?}");
    let v = &vs[0];
    let job = issuance_job(&api, &cert).await;
    assert_eq!(job["status"], "Completed");
    assert_eq!(job["attempts"], 1);
    assert_eq!(v["job_id"], job["id"]);
    assert_eq!(v["issuer_id"], "iss-local");
    assert_eq!(v["key_algorithm"], "ECDSA");
    assert_eq!(v["key_size"], 256);
    assert_eq!(c["expires_at"], v["not_after"]);

    let leaf = verify_version(dir, &ca, v, "svc");
    let expected: BTreeSet<String> = [
        "DNS:svc.example.com",
        "DNS:api.example.com",
        "IP:10.0.0.7",
        "IP:2001:db8::1",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(sans_of(&leaf.text), expected, "{}", leaf.text);
    assert!(
        leaf.text.contains("Subject: CN = svc.example.com"),
        "{}",
        leaf.text
    );
    assert!(leaf.text.contains("CA:FALSE"), "{}", leaf.text);
    assert!(
        leaf.text.contains("TLS Web Server Authentication"),
        "{}",
        leaf.text
    );

    // Default lifetime: 90 days.
    assert!(valid_in(dir, "svc.pem", 89 * 86_400));
    assert!(!valid_in(dir, "svc.pem", 91 * 86_400));
    let not_after = parse_time(&v["not_after"]);
    assert!((not_after - t0 - time::Duration::days(90)).abs() < time::Duration::minutes(5));
    assert!(parse_time(&v["not_before"]) <= OffsetDateTime::now_utc());

    let actions = audit_actions(&api, job["id"].as_str().unwrap()).await;
    assert_audited(&actions, &["job_created", "job_started", "job_completed"]);
    assert_eq!(actions.first().map(String::as_str), Some("job_created"));

    // A profile's max TTL caps NotAfter.
    let profile = created(
        &api,
        "profiles",
        json!({"name": "one-day", "max_ttl_seconds": 86_400}),
    )
    .await;
    let t1 = OffsetDateTime::now_utc();
    let short = created(
        &api,
        "certificates",
        json!({
            "name": "short", "common_name": "short.example.com", "issuer_id": "iss-local",
            "sans": ["short.example.com"], "profile_id": profile,
        }),
    )
    .await;
    wait_certificate(&api, &short, "Active").await;
    let vs = versions(&api, &short).await;
    assert_eq!(vs.len(), 1);
    let short_leaf = verify_version(dir, &ca, &vs[0], "short");
    assert_eq!(
        sans_of(&short_leaf.text),
        BTreeSet::from(["DNS:short.example.com".to_owned()])
    );
    assert!(
        !valid_in(dir, "short.pem", 86_400 + 300),
        "NotAfter ≤ now + 1 day (+ slack)"
    );
    assert!(valid_in(dir, "short.pem", 86_400 - 3_600));
    let not_after = parse_time(&vs[0]["not_after"]);
    assert!(not_after <= OffsetDateTime::now_utc() + time::Duration::seconds(86_400 + 60));
    assert!(not_after >= t1 + time::Duration::seconds(86_400 - 3_600));

    // Manual renewal: a Renewal job that completes with a second version and a new serial.
    let r = api
        .post(&format!("certificates/{cert}/renew"), &json!({}))
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(r.body["type"], "Renewal");
    assert_eq!(r.body["certificate_id"], json!(cert));
    let renewal = r.body["id"].as_str().unwrap().to_owned();
    let done = wait_job(&api, &renewal, "Completed").await;
    assert_eq!(done["attempts"], 1);
    wait_certificate(&api, &cert, "Active").await;
    let vs = versions(&api, &cert).await;
    assert_eq!(vs.len(), 2, "{vs:?}");
    assert_eq!(vs[0]["job_id"], json!(renewal), "newest first");
    assert_eq!(vs[1]["job_id"], job["id"]);
    let renewed = verify_version(dir, &ca, &vs[0], "svc-renewed");
    assert_ne!(renewed.serial_hex, leaf.serial_hex);
    assert_ne!(vs[0]["fingerprint_sha256"], vs[1]["fingerprint_sha256"]);
    assert_eq!(sans_of(&renewed.text), expected);
    let actions = audit_actions(&api, &renewal).await;
    assert_audited(&actions, &["job_created", "job_started", "job_completed"]);
    assert_eq!(jobs_of(&api, &cert, "Renewal").await.len(), 1);
}

/// The Local CA is persisted: the same CA after a restart, and certificates issued after
/// the restart verify against the CA fetched before it.
#[tokio::test]
async fn local_ca_survives_a_restart() {
    let mut server = ServerBuilder::new()
        .env("CERTCTL_KEYGEN_MODE", "server")
        .start()
        .await;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let api = server.admin();
    let ca_before = ca_pem(&api).await;
    let first = created(
        &api,
        "certificates",
        json!({"name": "before", "common_name": "before.example.com", "issuer_id": "iss-local"}),
    )
    .await;
    wait_certificate(&api, &first, "Active").await;
    let v1 = versions(&api, &first).await;

    server.restart().await;
    let api = server.admin();
    let ca_after = ca_pem(&api).await;
    assert_eq!(ca_before, ca_after, "the CA is the same after a restart");

    let second = created(
        &api,
        "certificates",
        json!({
            "name": "after", "common_name": "after.example.com", "issuer_id": "iss-local",
            "sans": ["after.example.com"],
        }),
    )
    .await;
    wait_certificate(&api, &second, "Active").await;
    let v2 = versions(&api, &second).await;
    assert_eq!(v2.len(), 1);
    // Verified against the CA fetched before the restart.
    let l1 = verify_version(dir, &ca_before, &v1[0], "before");
    let l2 = verify_version(dir, &ca_before, &v2[0], "after");
    assert_ne!(l1.serial_hex, l2.serial_hex);
    // The certificate issued before the restart is unchanged.
    assert_eq!(versions(&api, &first).await, v1);
}

// ---------------------------------------------------------------------------------------
// 2. Agent keygen
// ---------------------------------------------------------------------------------------

/// Agent keygen (the default): the job waits for the mapped target's agent; bad CSRs are
/// refused with a 400 naming the problem and leave the job waiting; a good CSR is issued
/// with its own key and queues one deployment job for the target. Then cancel/retry and
/// refused transitions on agent jobs.
#[tokio::test]
async fn agent_keygen_issues_the_csr_key_and_refuses_bad_csrs() {
    let server = ServerBuilder::new().start().await;
    let api = server.admin();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let ca = ca_pem(&api).await;

    let agent = created(&api, "agents", json!({"name": "web-1"})).await;
    let target = created(
        &api,
        "targets",
        json!({"name": "nginx-1", "type": "nginx", "agent_id": agent}),
    )
    .await;
    let profile = created(
        &api,
        "profiles",
        json!({
            "name": "p256-only",
            "allowed_key_algorithms": [{"algorithm": "ECDSA", "min_size": 256}],
        }),
    )
    .await;
    let cert = created(
        &api,
        "certificates",
        json!({
            "name": "app", "common_name": "app.example", "issuer_id": "iss-local",
            "sans": ["app.example", "www.app.example"], "profile_id": profile,
        }),
    )
    .await;
    let r = api
        .post(
            &format!("certificates/{cert}/targets"),
            &json!({"target_id": target}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);

    let job_id = issuance_job(&api, &cert).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let waiting = eventually("the job to await the agent's CSR", async || {
        let j = job(&api, &job_id).await;
        if j["status"] == "AwaitingCSR" && j["agent_id"] == json!(agent) {
            Ok(j)
        } else {
            Err(j.to_string())
        }
    })
    .await;
    assert_eq!(waiting["attempts"], 0);
    assert_eq!(
        get_ok(&api, &format!("certificates/{cert}")).await["status"],
        "Pending"
    );
    // The assignment is audited: with the AwaitingCSR transition when the target was
    // mapped first, or on its own when the job was already waiting.
    let assigned = audit_events(&api, &job_id, "job_agent_assigned").await;
    let awaiting = audit_events(&api, &job_id, "job_awaiting_csr").await;
    assert!(
        assigned
            .iter()
            .any(|e| e["details"]["agent_id"] == json!(agent))
            || awaiting
                .iter()
                .any(|e| e["details"]["agent_id"] == json!(agent)),
        "agent assignment audited: {assigned:?} {awaiting:?}"
    );

    let csr_path = format!("agents/{agent}/csr");
    let post_csr = async |csr: &str| {
        api.post(&csr_path, &json!({"job_id": job_id, "csr_pem": csr}))
            .await
    };
    let still_waiting = async || {
        let j = job(&api, &job_id).await;
        assert_eq!(
            j["status"], "AwaitingCSR",
            "a refused CSR leaves the job waiting: {j}"
        );
    };

    // Wrong SANs: one missing, one extra; the message names both.
    let wrong = make_csr(
        dir,
        "wrong",
        P256,
        "app.example",
        "DNS:app.example,DNS:evil.example",
    );
    let r = post_csr(&wrong).await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.body["error"]["field"], "csr_pem");
    let msg = error_message(&r.body);
    assert!(msg.contains("evil.example"), "names the extra SAN: {msg}");
    assert!(
        msg.contains("www.app.example"),
        "names the missing SAN: {msg}"
    );
    still_waiting().await;

    // Broken signature: a valid CSR with one byte flipped inside the signature.
    make_csr(
        dir,
        "good-for-tamper",
        P256,
        "app.example",
        "DNS:app.example,DNS:www.app.example",
    );
    openssl_ok(
        dir,
        &[
            "req",
            "-in",
            "good-for-tamper.csr",
            "-outform",
            "DER",
            "-out",
            "tamper.der",
        ],
    );
    let mut der = std::fs::read(dir.join("tamper.der")).unwrap();
    let at = der.len() - 3;
    der[at] ^= 0x01;
    let tampered = pem_encode("CERTIFICATE REQUEST", &der);
    std::fs::write(dir.join("tampered.csr"), &tampered).unwrap();
    // openssl 3.0 exits 0 either way; what it prints is the verdict.
    let check = openssl(dir, &["req", "-in", "tampered.csr", "-noout", "-verify"]);
    let verdict = format!(
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(
        verdict.contains("verify failure") && !verdict.contains("verify OK"),
        "openssl agrees the tampered CSR's signature is bad: {verdict}"
    );
    let r = post_csr(&tampered).await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.body["error"]["field"], "csr_pem");
    let msg = error_message(&r.body);
    assert!(msg.to_lowercase().contains("signature"), "{msg}");
    still_waiting().await;

    // RSA-1024 against a profile that allows only ECDSA ≥ 256.
    let rsa = make_csr(
        dir,
        "rsa",
        &["-newkey", "rsa:1024"],
        "app.example",
        "DNS:app.example,DNS:www.app.example",
    );
    let r = post_csr(&rsa).await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.body["error"]["field"], "csr_pem");
    let msg = error_message(&r.body);
    assert!(
        msg.contains("RSA") && msg.contains("1024"),
        "names the key: {msg}"
    );
    still_waiting().await;

    // Not a CSR at all.
    let r = post_csr("hello").await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    still_waiting().await;

    // Unknown job → 404; unknown agent → 404.
    let r = api
        .post(
            &csr_path,
            &json!({"job_id": "job-does-not-exist", "csr_pem": wrong}),
        )
        .await;
    assert_eq!(r.status, 404, "{:?}", r.body);
    let r = api
        .post(
            "agents/ag-does-not-exist/csr",
            &json!({"job_id": job_id, "csr_pem": wrong}),
        )
        .await;
    assert_eq!(r.status, 404, "{:?}", r.body);

    // The good CSR: 202, issued with the CSR's key.
    let good = make_csr(
        dir,
        "good",
        P256,
        "app.example",
        "DNS:app.example,DNS:www.app.example",
    );
    let r = post_csr(&good).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(r.body["id"], json!(job_id));
    let done = wait_job(&api, &job_id, "Completed").await;
    assert_eq!(done["attempts"], 1);
    assert!(done["last_error"].is_null(), "{done}");
    wait_certificate(&api, &cert, "Active").await;

    let vs = versions(&api, &cert).await;
    assert_eq!(vs.len(), 1, "{vs:?}");
    assert_eq!(vs[0]["job_id"], json!(job_id));
    assert_eq!(vs[0]["key_algorithm"], "ECDSA");
    assert_eq!(vs[0]["key_size"], 256);
    let leaf = verify_version(dir, &ca, &vs[0], "app");
    assert_eq!(
        sans_of(&leaf.text),
        BTreeSet::from([
            "DNS:app.example".to_owned(),
            "DNS:www.app.example".to_owned()
        ])
    );
    let leaf_key = openssl_ok(dir, &["x509", "-in", "app.pem", "-noout", "-pubkey"]);
    let csr_key = openssl_ok(dir, &["req", "-in", "good.csr", "-noout", "-pubkey"]);
    assert_eq!(
        leaf_key.trim(),
        csr_key.trim(),
        "the leaf carries the CSR's key"
    );
    assert!(leaf_key.starts_with("-----BEGIN PUBLIC KEY-----"));

    // One deployment job for the mapped target, routed to its agent.
    let deployments = jobs_of(&api, &cert, "Deployment").await;
    assert_eq!(deployments.len(), 1, "{deployments:?}");
    assert_eq!(deployments[0]["target_id"], json!(target));
    assert_eq!(deployments[0]["agent_id"], json!(agent));

    // A CSR for a job that no longer waits for one → 409.
    let r = post_csr(&good).await;
    assert_eq!(r.status, 409, "{:?}", r.body);
    assert!(error_message(&r.body).contains("Completed"), "{:?}", r.body);

    // Only the accepted CSR left a trace on the job.
    let actions = audit_actions(&api, &job_id).await;
    assert_audited(
        &actions,
        &[
            "job_created",
            "job_awaiting_csr",
            "job_csr_received",
            "job_started",
            "job_completed",
        ],
    );
    assert_eq!(
        actions.iter().filter(|a| *a == "job_csr_received").count(),
        1,
        "{actions:?}"
    );

    // Invalid transitions on the completed job → 409 with a message.
    for action in ["approve", "cancel", "retry"] {
        let r = api
            .post(&format!("jobs/{job_id}/{action}"), &json!({}))
            .await;
        assert_eq!(r.status, 409, "{action}: {:?}", r.body);
        let msg = error_message(&r.body);
        assert!(msg.contains("Completed"), "{action}: {msg}");
    }
    let r = api
        .post(&format!("jobs/{job_id}/reject"), &json!({"reason": "no"}))
        .await;
    assert_eq!(r.status, 409, "{:?}", r.body);
    let r = api.post("jobs/job-does-not-exist/cancel", &json!({})).await;
    assert_eq!(r.status, 404, "{:?}", r.body);

    // Cancel a job waiting for a CSR, then retry it: back to AwaitingCSR.
    let other = created(
        &api,
        "certificates",
        json!({
            "name": "other", "common_name": "other.example", "issuer_id": "iss-local",
            "profile_id": profile,
        }),
    )
    .await;
    let other_job = issuance_job(&api, &other).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_job(&api, &other_job, "AwaitingCSR").await;
    let r = api
        .post(
            &format!("jobs/{other_job}/cancel"),
            &json!({"reason": "wrong host"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "Cancelled");
    assert!(r.body["completed_at"].is_string(), "{:?}", r.body);
    let r = api
        .post(&format!("jobs/{other_job}/cancel"), &json!({}))
        .await;
    assert_eq!(r.status, 409, "cancelling twice: {:?}", r.body);
    let other_csr = make_csr(dir, "other", P256, "other.example", "DNS:other.example");
    let r = api
        .post(
            &format!("agents/{agent}/csr"),
            &json!({"job_id": other_job, "csr_pem": other_csr}),
        )
        .await;
    assert_eq!(r.status, 409, "CSR for a cancelled job: {:?}", r.body);

    let r = api
        .post(&format!("jobs/{other_job}/retry"), &json!({}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(
        matches!(r.body["status"].as_str(), Some("Pending" | "AwaitingCSR")),
        "{:?}",
        r.body
    );
    let again = wait_job(&api, &other_job, "AwaitingCSR").await;
    assert_eq!(again["attempts"], 0);
    assert!(again["completed_at"].is_null(), "{again}");
    let actions = audit_actions(&api, &other_job).await;
    assert_audited(
        &actions,
        &[
            "job_created",
            "job_awaiting_csr",
            "job_cancelled",
            "job_retried",
        ],
    );
    assert_eq!(
        actions.iter().filter(|a| *a == "job_awaiting_csr").count(),
        2,
        "{actions:?}"
    );
    let cancelled = audit_events(&api, &other_job, "job_cancelled").await;
    assert_eq!(cancelled[0]["details"]["reason"], "wrong host");

    // And now it can be issued.
    let r = api
        .post(
            &format!("agents/{agent}/csr"),
            &json!({"job_id": other_job, "csr_pem": other_csr}),
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    wait_job(&api, &other_job, "Completed").await;
    assert_eq!(versions(&api, &other).await.len(), 1);
    assert!(jobs_of(&api, &other, "Deployment").await.is_empty());
}

// ---------------------------------------------------------------------------------------
// 3. Crash safety
// ---------------------------------------------------------------------------------------

/// A crash after the issuer signed and before the result is committed: after a restart
/// (without the fault), the job runs again and the certificate ends with exactly one
/// version and one completed job.
#[tokio::test]
async fn abort_between_signing_and_commit_issues_exactly_once() {
    let mut server = ServerBuilder::new()
        .env("CERTCTL_KEYGEN_MODE", "server")
        .env("CERTCTL_FAULT_INJECT", "abort_before_commit")
        .start()
        .await;
    let api = server.admin();
    // The server may abort before it answers; the certificate is found by name later.
    let _ = api
        .client
        .post(api.url("certificates"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({
            "name": "crash-me", "common_name": "crash.example.com", "issuer_id": "iss-local",
            "sans": ["crash.example.com"],
        }))
        .send()
        .await;
    let status = server
        .wait_exit(WAIT)
        .await
        .expect("the server aborts after the issuer signed");
    assert_eq!(status.signal(), Some(6), "SIGABRT: {status:?}");
    assert!(
        server.logs().contains("fault injection"),
        "{}",
        server.logs()
    );

    server.unset_env("CERTCTL_FAULT_INJECT");
    server.restart().await;
    let api = server.admin();
    let found = get_ok(&api, "certificates?name=crash-me").await;
    assert_eq!(found["total"], 1, "{found}");
    let cert = found["data"][0]["id"].as_str().unwrap().to_owned();
    wait_certificate(&api, &cert, "Active").await;

    let job = issuance_job(&api, &cert).await;
    let job_id = job["id"].as_str().unwrap();
    let job = wait_job(&api, job_id, "Completed").await;
    assert_eq!(job["attempts"], 2, "the lost attempt is counted: {job}");
    let vs = versions(&api, &cert).await;
    assert_eq!(vs.len(), 1, "exactly one version: {vs:?}");
    assert_eq!(vs[0]["job_id"], json!(job_id));

    let actions = audit_actions(&api, job_id).await;
    assert_audited(
        &actions,
        &[
            "job_created",
            "job_started",
            "job_lease_expired",
            "job_completed",
        ],
    );
    let count = |a: &str| actions.iter().filter(|x| *x == a).count();
    assert_eq!(count("job_started"), 2, "{actions:?}");
    assert_eq!(count("job_completed"), 1, "{actions:?}");

    let dir = tempfile::tempdir().unwrap();
    let ca = ca_pem(&api).await;
    verify_version(dir.path(), &ca, &vs[0], "crash");

    // Still one a little later: nothing else picks the job up again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(versions(&api, &cert).await.len(), 1);
}

/// SIGKILL right after creating certificates (their jobs anywhere between Pending and
/// Completed): after a restart each ends Active with exactly one version and one
/// Completed Issuance job — never two — and every serial is unique.
#[tokio::test]
async fn sigkill_right_after_create_never_issues_twice() {
    let mut server = ServerBuilder::new()
        .env("CERTCTL_KEYGEN_MODE", "server")
        .start()
        .await;
    let api = server.admin();
    let mut certs = Vec::new();
    for i in 0..4 {
        certs.push(
            created(
                &api,
                "certificates",
                json!({
                    "name": format!("k{i}"), "common_name": format!("k{i}.example.com"),
                    "issuer_id": "iss-local",
                }),
            )
            .await,
        );
    }
    server.kill();
    server.restart().await;
    let api = server.admin();
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_pem(&api).await;
    let mut serials = BTreeSet::new();
    for cert in &certs {
        wait_certificate(&api, cert, "Active").await;
        let job = issuance_job(&api, cert).await;
        let job = wait_job(&api, job["id"].as_str().unwrap(), "Completed").await;
        let vs = versions(&api, cert).await;
        assert_eq!(vs.len(), 1, "{cert}: {vs:?}");
        assert_eq!(vs[0]["job_id"], job["id"]);
        let leaf = verify_version(dir.path(), &ca, &vs[0], cert);
        assert!(serials.insert(leaf.serial_hex), "serials are unique");
        let actions = audit_actions(&api, job["id"].as_str().unwrap()).await;
        assert_audited(&actions, &["job_created", "job_started", "job_completed"]);
    }
}

// ---------------------------------------------------------------------------------------
// 4. Approval, rejection, renewal
// ---------------------------------------------------------------------------------------

/// A profile that requires approval: approve → issued; reject (reason required) →
/// Cancelled with the reason audited and no certificate; renewal waits for approval too,
/// and a second renewal while one is open is a 409.
#[tokio::test]
async fn approval_rejection_and_renewal() {
    let server = ServerBuilder::new()
        .env("CERTCTL_KEYGEN_MODE", "server")
        .start()
        .await;
    let api = server.admin();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let ca = ca_pem(&api).await;
    let profile = created(
        &api,
        "profiles",
        json!({"name": "gated", "requires_approval": true}),
    )
    .await;

    // Approve.
    let a = created(
        &api,
        "certificates",
        json!({
            "name": "gated-a", "common_name": "a.example.com", "issuer_id": "iss-local",
            "profile_id": profile,
        }),
    )
    .await;
    let a_job = issuance_job(&api, &a).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_job(&api, &a_job, "AwaitingApproval").await;
    assert_eq!(
        get_ok(&api, &format!("certificates/{a}")).await["status"],
        "Pending"
    );
    assert!(versions(&api, &a).await.is_empty());
    let r = api
        .post(
            &format!("jobs/{a_job}/approve"),
            &json!({"reason": "ticket 42"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let done = wait_job(&api, &a_job, "Completed").await;
    assert_eq!(done["attempts"], 1);
    wait_certificate(&api, &a, "Active").await;
    let vs = versions(&api, &a).await;
    assert_eq!(vs.len(), 1);
    let first = verify_version(dir, &ca, &vs[0], "a1");
    let actions = audit_actions(&api, &a_job).await;
    assert_audited(
        &actions,
        &[
            "job_created",
            "job_awaiting_approval",
            "job_approved",
            "job_started",
            "job_completed",
        ],
    );
    let approved = audit_events(&api, &a_job, "job_approved").await;
    assert_eq!(approved[0]["details"]["reason"], "ticket 42");

    // Approving (or rejecting) a completed job is refused with a reason.
    let r = api.post(&format!("jobs/{a_job}/approve"), &json!({})).await;
    assert_eq!(r.status, 409, "{:?}", r.body);
    let msg = error_message(&r.body);
    assert!(
        msg.contains("Completed") && msg.contains("approved"),
        "{msg}"
    );

    // Reject.
    let b = created(
        &api,
        "certificates",
        json!({
            "name": "gated-b", "common_name": "b.example.com", "issuer_id": "iss-local",
            "profile_id": profile,
        }),
    )
    .await;
    let b_job = issuance_job(&api, &b).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_job(&api, &b_job, "AwaitingApproval").await;
    let r = api.post(&format!("jobs/{b_job}/reject"), &json!({})).await;
    assert_eq!(r.status, 400, "a rejection needs a reason: {:?}", r.body);
    assert_eq!(r.body["error"]["field"], "reason");
    assert_eq!(job(&api, &b_job).await["status"], "AwaitingApproval");
    let r = api
        .post(
            &format!("jobs/{b_job}/reject"),
            &json!({"reason": "not for production"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "Cancelled");
    let rejected = audit_events(&api, &b_job, "job_rejected").await;
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["details"]["reason"], "not for production");
    assert_eq!(rejected[0]["details"]["to"], "Cancelled");
    // Approving a rejected job is refused; nothing is issued.
    let r = api.post(&format!("jobs/{b_job}/approve"), &json!({})).await;
    assert_eq!(r.status, 409, "{:?}", r.body);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let b_cert = get_ok(&api, &format!("certificates/{b}")).await;
    assert_ne!(b_cert["status"], "Active", "{b_cert}");
    assert!(versions(&api, &b).await.is_empty());
    assert_eq!(job(&api, &b_job).await["status"], "Cancelled");

    // Renewal through approval; a second renewal while it is open → 409.
    let r = api
        .post(&format!("certificates/{a}/renew"), &json!({}))
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(r.body["type"], "Renewal");
    let renewal = r.body["id"].as_str().unwrap().to_owned();
    wait_job(&api, &renewal, "AwaitingApproval").await;
    let r = api
        .post(&format!("certificates/{a}/renew"), &json!({}))
        .await;
    assert_eq!(r.status, 409, "{:?}", r.body);
    let msg = error_message(&r.body);
    assert!(msg.contains(&renewal) && msg.contains("open"), "{msg}");
    assert_eq!(jobs_of(&api, &a, "Renewal").await.len(), 1);

    let r = api
        .post(&format!("jobs/{renewal}/approve"), &json!({}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    wait_job(&api, &renewal, "Completed").await;
    wait_certificate(&api, &a, "Active").await;
    let vs = versions(&api, &a).await;
    assert_eq!(vs.len(), 2, "{vs:?}");
    assert_eq!(vs[0]["job_id"], json!(renewal));
    let second = verify_version(dir, &ca, &vs[0], "a2");
    assert_ne!(first.serial_hex, second.serial_hex);
    let actions = audit_actions(&api, &renewal).await;
    assert_audited(
        &actions,
        &[
            "job_created",
            "job_awaiting_approval",
            "job_approved",
            "job_started",
            "job_completed",
        ],
    );

    // Once the renewal is done, another may be requested.
    let r = api
        .post(&format!("certificates/{a}/renew"), &json!({}))
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
}
