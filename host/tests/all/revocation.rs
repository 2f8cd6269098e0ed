//! Acceptance tests of revocation against the real server, with the `openssl` CLI as the
//! independent relying party:
//!
//! 1. OCSP (openssl's POST, the hex GET form and the RFC 6960 base64 GET form) answers good,
//!    then revoked with time and reason; unknown serials answer unknown; garbage answers
//!    malformedRequest; unknown issuers unauthorized; the nonce is echoed; responses verify.
//! 2. The CRL verifies, lists revoked serials with reasons, its number strictly increases,
//!    and `openssl verify -crl_check` rejects a revoked leaf and accepts a good one;
//!    short-lived certificates stay out of it.
//! 3. The responder certificate is delegated (OCSPSigning, ocsp-nocheck, not the CA),
//!    rotates near expiry and when its key file disappears.
//! 4. The revoke API: 400 unknown reason, 409 double revoke / never issued, 404 unknown;
//!    bulk revocation by criteria with per-certificate outcomes and one audit event.
//! 5. The admin CRL cache view (403 for a non-admin key) and the PEM / PKCS#12 exports.
//! 6. An issuer whose best-effort revocation notice fails stops no revocation (single or
//!    bulk). That needs a connector type the binary does not have, so this one test runs the
//!    server in-process, assembled like `server::run`, with the type registered.
//!
//! The main flow also runs on PostgreSQL (a fresh database on the server named by
//! `CERTCTL_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`).

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::Actor as _;
use actix_web::middleware::from_fn;
use base64::Engine as _;
use certctl_host::actors::agent_hub::AgentHub;
use certctl_host::actors::issuer_registry::{IssuerRegistry, Rebuild};
use certctl_host::actors::job_processor::JobProcessor;
use certctl_host::actors::scheduler::LoopActor;
use certctl_host::api::state::AppState;
use certctl_host::clock::{Clock, SystemClock};
use certctl_host::config::{AuthType, KeygenMode};
use certctl_host::domain::audit::Actor;
use certctl_host::domain::issuer;
use certctl_host::issuer::local::LocalIssuer;
use certctl_host::issuer::{
    Capabilities, ConnectorContext, ConnectorError, ConnectorTypes, IssuanceRequest,
    IssuanceResult, IssuerConnector,
};
use certctl_host::pipeline::{Pipeline, PipelineSettings};
use certctl_host::pki::local_ca::LocalCa;
use certctl_host::revocation::{RevocationService, RevocationSettings};
use certctl_host::store::{Store, api_keys, records};
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use sqlx::Row as _;

use crate::support::{ADMIN_KEY, Api, ServerBuilder, TestServer, eventually, get_ca, openssl};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn builder() -> ServerBuilder {
    ServerBuilder::new()
        .env("CERTCTL_KEYGEN_MODE", "server")
        .env("CERTCTL_LOG_LEVEL", "warn")
}

async fn created(api: &Api, path: &str, body: Value) -> String {
    let r = api.post(path, &body).await;
    assert_eq!(r.status, 201, "POST {path} {body}: {}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

/// Creates a certificate on the Local CA and waits until it is Active.
async fn active_certificate(api: &Api, name: &str, extra: Value) -> String {
    let mut body =
        json!({"name": name, "common_name": format!("{name}.example"), "issuer_id": "iss-local"});
    if let Value::Object(extra) = extra {
        for (k, v) in extra {
            body[k] = v;
        }
    }
    let id = created(api, "certificates", body).await;
    eventually(&format!("certificate {id} to be Active"), async || {
        let c = api.get(&format!("certificates/{id}")).await;
        if c.body["status"] == "Active" {
            Ok(())
        } else {
            Err(c.body.to_string())
        }
    })
    .await;
    id
}

/// A scratch directory where openssl runs.
struct Work(tempfile::TempDir);

impl Work {
    fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.0.path().join(name)
    }

    fn write(&self, name: &str, data: impl AsRef<[u8]>) {
        std::fs::write(self.path(name), data).unwrap();
    }

    /// Runs openssl; (success, stdout + stderr).
    fn openssl(&self, args: &[&str]) -> (bool, String) {
        let out = openssl(self.0.path(), args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    fn openssl_ok(&self, args: &[&str]) -> String {
        let (ok, text) = self.openssl(args);
        assert!(ok, "openssl {}: {text}", args.join(" "));
        text
    }
}

/// The Local CA chain (PEM).
async fn ca_pem(api: &Api) -> String {
    let r = get_ca(api).await;
    r.text().await.unwrap()
}

/// The PEM export of a certificate (asserts 200).
async fn pem_export(api: &Api, id: &str) -> Value {
    let r = api.get(&format!("certificates/{id}/export/pem")).await;
    assert_eq!(r.status, 200, "export: {}", r.body);
    r.body
}

/// Writes `ca.pem` and `<name>.pem` (the leaf) into `work`; returns the leaf's serial.
async fn fetch_leaf(api: &Api, work: &Work, id: &str, name: &str) -> String {
    work.write("ca.pem", ca_pem(api).await);
    let export = pem_export(api, id).await;
    work.write(
        &format!("{name}.pem"),
        export["certificate"].as_str().unwrap(),
    );
    export["serial_number"].as_str().unwrap().to_owned()
}

async fn get_bytes(api: &Api, path: &str) -> (u16, String, Vec<u8>) {
    let r = api.client.get(api.url(path)).send().await.unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ct, r.bytes().await.unwrap().to_vec())
}

async fn post_bytes(api: &Api, path: &str, body: Vec<u8>) -> (u16, String, Vec<u8>) {
    let r = api
        .client
        .post(api.url(path))
        .header("content-type", "application/ocsp-request")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ct, r.bytes().await.unwrap().to_vec())
}

/// `openssl ocsp` against the server's POST endpoint, verifying against the CA.
fn ocsp_post(work: &Work, base: &str, leaf: &str) -> String {
    ocsp_post_to(work, base, "iss-local", leaf)
}

/// [`ocsp_post`] for any issuer.
fn ocsp_post_to(work: &Work, base: &str, issuer_id: &str, leaf: &str) -> String {
    let url = format!("{base}/.well-known/pki/ocsp/{issuer_id}");
    work.openssl_ok(&[
        "ocsp",
        "-issuer",
        "ca.pem",
        "-cert",
        leaf,
        "-url",
        &url,
        "-CAfile",
        "ca.pem",
        "-resp_text",
    ])
}

/// Reads a stored OCSP response with openssl (verifying it for `leaf`).
fn ocsp_read(work: &Work, der: &[u8], leaf: &str) -> String {
    work.write("resp.der", der);
    work.openssl_ok(&[
        "ocsp",
        "-respin",
        "resp.der",
        "-resp_text",
        "-CAfile",
        "ca.pem",
        "-issuer",
        "ca.pem",
        "-cert",
        leaf,
        "-no_nonce",
    ])
}

/// Fetches the CRL, checks content type and signature, writes `crl.pem`; returns its text.
async fn fetch_crl(api: &Api, work: &Work) -> String {
    fetch_crl_of(api, work, "iss-local").await
}

/// [`fetch_crl`] for any issuer.
async fn fetch_crl_of(api: &Api, work: &Work, issuer_id: &str) -> String {
    let (status, ct, der) = get_bytes(api, &format!("/.well-known/pki/crl/{issuer_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(ct, "application/pkix-crl");
    work.write("crl.der", &der);
    let text = work.openssl_ok(&[
        "crl", "-inform", "DER", "-in", "crl.der", "-CAfile", "ca.pem", "-noout", "-text",
    ]);
    assert!(text.contains("verify OK"), "{text}");
    work.openssl_ok(&["crl", "-inform", "DER", "-in", "crl.der", "-out", "crl.pem"]);
    text
}

fn crl_number(text: &str) -> u64 {
    text.lines()
        .skip_while(|l| !l.contains("X509v3 CRL Number"))
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no CRL number in {text}"))
}

/// The reason code `openssl crl -text` prints for `serial` (hex); panics when it is not listed.
fn crl_reason(text: &str, serial: &str) -> String {
    let wanted = serial.trim_start_matches('0').to_uppercase();
    let entry = text
        .split("Serial Number: ")
        .skip(1)
        .find(|e| {
            e.split_whitespace()
                .next()
                .is_some_and(|s| s.trim_start_matches('0') == wanted)
        })
        .unwrap_or_else(|| panic!("{serial} not in the CRL"));
    let mut lines = entry.lines();
    lines
        .by_ref()
        .find(|l| l.contains("CRL Reason Code"))
        .and_then(|_| lines.next())
        .map(|l| l.trim().to_owned())
        .unwrap_or_default()
}

/// The instant openssl printed after `label` (`Nov  6 05:29:25 2026 GMT`, always UTC).
fn openssl_time(text: &str, label: &str) -> time::OffsetDateTime {
    let format = time::macros::format_description!(
        "[month repr:short] [day padding:space] [hour]:[minute]:[second] [year] GMT"
    );
    let value = text
        .lines()
        .find_map(|l| l.split_once(label).map(|(_, v)| v.trim()))
        .unwrap_or_else(|| panic!("no {label:?} in {text}"));
    time::PrimitiveDateTime::parse(value, format)
        .unwrap_or_else(|e| panic!("{label} {value:?}: {e}"))
        .assume_utc()
}

/// Runs `openssl verify -crl_check` for a leaf; (accepted, output).
fn crl_verify(work: &Work, leaf: &str) -> (bool, String) {
    work.openssl(&[
        "verify",
        "-crl_check",
        "-CRLfile",
        "crl.pem",
        "-CAfile",
        "ca.pem",
        leaf,
    ])
}

async fn audit_actions(api: &Api, filter: &str) -> Vec<Value> {
    let r = api.get(&format!("audit?{filter}&per_page=500")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["data"].as_array().unwrap().clone()
}

/// The responder certificate's serial from `-resp_text` output (the embedded certificate's
/// "Serial Number:" is followed by the value on the next line).
fn responder_serial(text: &str) -> String {
    text.lines()
        .skip_while(|l| l.trim() != "Serial Number:")
        .nth(1)
        .map(|l| l.trim().to_owned())
        .unwrap_or_else(|| panic!("no responder certificate in {text}"))
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

/// The whole relying-party story on one server (SQLite here, PostgreSQL below).
async fn revoke_then_ocsp_and_crl_say_so(server: &TestServer) {
    let api = server.admin();
    let work = Work::new();
    let id = active_certificate(&api, "web", json!({})).await;
    let good_id = active_certificate(&api, "other", json!({})).await;
    let serial = fetch_leaf(&api, &work, &id, "leaf").await;
    fetch_leaf(&api, &work, &good_id, "good").await;

    // Good before revocation: POST (openssl, nonce checked), hex GET.
    let out = ocsp_post(&work, &server.base, "leaf.pem");
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains("leaf.pem: good"), "{out}");
    assert!(!out.contains("WARNING"), "{out}");
    assert!(out.contains("OCSP Nonce"), "{out}");
    let (status, ct, der) =
        get_bytes(&api, &format!("/.well-known/pki/ocsp/iss-local/{serial}")).await;
    assert_eq!((status, ct.as_str()), (200, "application/ocsp-response"));
    let out = ocsp_read(&work, &der, "leaf.pem");
    assert!(
        out.contains("Response verify OK") && out.contains("leaf.pem: good"),
        "{out}"
    );

    let before = fetch_crl(&api, &work).await;
    assert!(
        crl_verify(&work, "leaf.pem").0,
        "good leaf accepted before revocation"
    );

    // Revoke.
    let r = api
        .post(
            &format!("certificates/{id}/revoke"),
            &json!({"reason": "keyCompromise"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "Revoked");
    assert_eq!(r.body["id"], id.as_str());

    // OCSP: POST, hex GET (upper case, colons) and the RFC 6960 base64 GET form.
    let out = ocsp_post(&work, &server.base, "leaf.pem");
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains("leaf.pem: revoked"), "{out}");
    assert!(out.contains("Reason: keyCompromise"), "{out}");
    assert!(!out.contains("WARNING"), "{out}");
    // The time is the stored revoked_at, to the second (the audit entry is written in the
    // same transaction with the same instant).
    let revoked_at = audit_actions(&api, "action=certificate_revoked")
        .await
        .into_iter()
        .find(|e| e["resource_id"] == id.as_str())
        .expect("a certificate_revoked audit entry")["timestamp"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked_at = certctl_core::timestamp::parse(&revoked_at)
        .unwrap()
        .replace_nanosecond(0)
        .unwrap();
    assert_eq!(openssl_time(&out, "Revocation Time:"), revoked_at, "{out}");
    let colons = serial
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(":");
    let (_, _, der) = get_bytes(&api, &format!("/.well-known/pki/ocsp/iss-local/{colons}")).await;
    let out = ocsp_read(&work, &der, "leaf.pem");
    assert!(
        out.contains("leaf.pem: revoked") && out.contains("Reason: keyCompromise"),
        "{out}"
    );
    work.openssl_ok(&[
        "ocsp",
        "-issuer",
        "ca.pem",
        "-cert",
        "leaf.pem",
        "-no_nonce",
        "-reqout",
        "req.der",
    ]);
    let request = std::fs::read(work.path("req.der")).unwrap();
    let encoded = base64::engine::general_purpose::STANDARD
        .encode(request)
        .replace('/', "%2F")
        .replace('+', "%2B")
        .replace('=', "%3D");
    let (_, _, der) = get_bytes(&api, &format!("/.well-known/pki/ocsp/iss-local/{encoded}")).await;
    let out = ocsp_read(&work, &der, "leaf.pem");
    assert!(out.contains("leaf.pem: revoked"), "{out}");
    // The other certificate is still good.
    let out = ocsp_post(&work, &server.base, "good.pem");
    assert!(out.contains("good.pem: good"), "{out}");

    // Unknown serial, garbage, unknown issuer.
    let (_, _, der) = get_bytes(&api, "/.well-known/pki/ocsp/iss-local/4a0b0c0d").await;
    work.write("unknown.der", &der);
    let out = work.openssl_ok(&[
        "ocsp",
        "-respin",
        "unknown.der",
        "-resp_text",
        "-CAfile",
        "ca.pem",
    ]);
    assert!(out.contains("Cert Status: unknown"), "{out}");
    assert!(out.contains("Response verify OK"), "{out}");
    let (status, ct, der) =
        post_bytes(&api, "/.well-known/pki/ocsp/iss-local", b"garbage".to_vec()).await;
    assert_eq!((status, ct.as_str()), (200, "application/ocsp-response"));
    work.write("bad.der", &der);
    let (_, out) = work.openssl(&["ocsp", "-respin", "bad.der", "-resp_text", "-noverify"]);
    assert!(out.contains("malformedrequest (1)"), "{out}");
    let (status, _, der) = post_bytes(
        &api,
        "/.well-known/pki/ocsp/iss-nowhere",
        b"garbage".to_vec(),
    )
    .await;
    assert_eq!(status, 200);
    work.write("unauth.der", &der);
    let (_, out) = work.openssl(&["ocsp", "-respin", "unauth.der", "-resp_text", "-noverify"]);
    assert!(out.contains("unauthorized (6)"), "{out}");

    // The CRL now lists the serial with its reason under a higher number.
    let after = fetch_crl(&api, &work).await;
    assert!(
        crl_number(&after) > crl_number(&before),
        "{before}\n{after}"
    );
    assert!(after.contains(&serial.to_uppercase()), "{after}");
    assert!(after.contains("Key Compromise"), "{after}");
    assert_eq!(
        openssl_time(&after, "Revocation Date:"),
        revoked_at,
        "{after}"
    );
    assert_eq!(
        openssl_time(&after, "Next Update:") - openssl_time(&after, "Last Update:"),
        time::Duration::hours(24),
        "{after}"
    );
    let (ok, out) = crl_verify(&work, "leaf.pem");
    assert!(!ok && out.contains("certificate revoked"), "{out}");
    let (ok, out) = crl_verify(&work, "good.pem");
    assert!(ok, "{out}");
    let (status, _, _) = get_bytes(&api, "/.well-known/pki/crl/iss-nowhere").await;
    assert_eq!(status, 404);

    // Audit and notification.
    let events = audit_actions(
        &api,
        &format!("resource_id={id}&action=certificate_revoked"),
    )
    .await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["details"]["reason"], "keyCompromise");
    assert_eq!(events[0]["details"]["serial_numbers"], json!([serial]));
    let n = api
        .get(&format!(
            "notifications?certificate_id={id}&type=Revocation"
        ))
        .await;
    assert_eq!(n.body["total"], 1, "{}", n.body);
}

#[tokio::test]
async fn revoke_then_ocsp_and_crl_say_so_sqlite() {
    let server = builder().start().await;
    revoke_then_ocsp_and_crl_say_so(&server).await;
}

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[tokio::test]
async fn revoke_then_ocsp_and_crl_say_so_postgres() {
    use sqlx::{Connection as _, Executor as _};
    let base = std::env::var("CERTCTL_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_owned());
    let db = format!("certctl_revocation_{}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {base}: {e}"));
    admin
        .execute(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)").as_str())
        .await
        .unwrap();
    admin
        .execute(format!("CREATE DATABASE {db}").as_str())
        .await
        .unwrap();
    let (head, query) = match base.split_once('?') {
        Some((h, q)) => (h.to_owned(), format!("?{q}")),
        None => (base.clone(), String::new()),
    };
    let authority = head.find("://").map_or(0, |i| i + 3);
    let root = match head[authority..].find('/') {
        Some(i) => head[..authority + i].to_owned(),
        None => head.clone(),
    };
    let url = format!("{root}/{db}{query}");
    {
        let server = builder().env("CERTCTL_DATABASE_URL", &url).start().await;
        revoke_then_ocsp_and_crl_say_so(&server).await;
    }
    admin
        .execute(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)").as_str())
        .await
        .unwrap();
}

/// 400 unknown reason (naming the allowed ones), 409 twice / never issued, 404 unknown,
/// default reason unspecified (no reason code published), short-lived certificates kept
/// out of the CRL, open jobs cancelled.
#[tokio::test]
async fn revoke_api_answers_and_exemptions() {
    let server = builder().start().await;
    let api = server.admin();
    let work = Work::new();
    let id = active_certificate(&api, "plain", json!({})).await;

    let r = api
        .post(
            &format!("certificates/{id}/revoke"),
            &json!({"reason": "stolen"}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["error"]["field"], "reason");
    let message = r.body["error"]["message"].as_str().unwrap();
    for allowed in [
        "unspecified",
        "keyCompromise",
        "cessationOfOperation",
        "privilegeWithdrawn",
    ] {
        assert!(message.contains(allowed), "{message}");
    }
    let r = api
        .post(&format!("certificates/{id}/revoke"), &json!({"why": "x"}))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        api.get(&format!("certificates/{id}")).await.body["status"],
        "Active"
    );

    // No body at all: reason unspecified.
    let r = api
        .raw(
            reqwest::Method::POST,
            &format!("certificates/{id}/revoke"),
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "Revoked");
    let r = api
        .post(
            &format!("certificates/{id}/revoke"),
            &json!({"reason": "superseded"}),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already revoked")
    );
    let r = api
        .post("certificates/mc-not-there/revoke", &json!({}))
        .await;
    assert_eq!(r.status, 404, "{}", r.body);

    // Never issued (no issuer, so no job): 409 saying so.
    let pending = created(
        &api,
        "certificates",
        json!({"name": "draft", "common_name": "draft.example"}),
    )
    .await;
    let r = api
        .post(&format!("certificates/{pending}/revoke"), &json!({}))
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("never issued"),
        "{}",
        r.body
    );
    // Archived: 409 saying so.
    let archived = active_certificate(&api, "gone", json!({})).await;
    assert_eq!(
        api.delete(&format!("certificates/{archived}")).await.status,
        204
    );
    let r = api
        .post(&format!("certificates/{archived}/revoke"), &json!({}))
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("archived"),
        "{}",
        r.body
    );

    // A short-lived certificate is revoked but never listed; the plain one is, without a
    // reason code (unspecified). OCSP answers `unknown` for the short-lived one before and
    // after its revocation: it is outside revocation status altogether.
    let profile = created(
        &api,
        "profiles",
        json!({"name": "short", "max_ttl_seconds": 600}),
    )
    .await;
    let short = active_certificate(&api, "short", json!({"profile_id": profile})).await;
    let short_serial = fetch_leaf(&api, &work, &short, "short").await;
    let out = ocsp_post(&work, &server.base, "short.pem");
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains("short.pem: unknown"), "{out}");
    let plain_serial = pem_export(&api, &id).await["serial_number"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = api
        .post(
            &format!("certificates/{short}/revoke"),
            &json!({"reason": "keyCompromise"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    work.write("ca.pem", ca_pem(&api).await);
    let crl = fetch_crl(&api, &work).await;
    assert!(crl.contains(&plain_serial.to_uppercase()), "{crl}");
    assert!(!crl.contains(&short_serial.to_uppercase()), "{crl}");
    assert!(
        !crl.contains("Reason Code"),
        "unspecified carries no reason code: {crl}"
    );
    let out = ocsp_post(&work, &server.base, "short.pem");
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains("short.pem: unknown"), "{out}");
    assert!(!out.contains("Revocation Time"), "{out}");

    // A renewal job open at revocation time is cancelled.
    let renewing = active_certificate(&api, "renewing", json!({})).await;
    let job = api
        .post(&format!("certificates/{renewing}/renew"), &json!({}))
        .await;
    assert_eq!(job.status, 202, "{}", job.body);
    let r = api
        .post(
            &format!("certificates/{renewing}/revoke"),
            &json!({"reason": "superseded"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let job_id = job.body["id"].as_str().unwrap();
    let j = api.get(&format!("jobs/{job_id}")).await.body;
    // The processor may have finished it first; either way the certificate stays Revoked.
    assert!(
        matches!(j["status"].as_str(), Some("Cancelled" | "Completed")),
        "{j}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        api.get(&format!("certificates/{renewing}")).await.body["status"],
        "Revoked"
    );
}

/// Bulk revocation by criteria: 400 without one, AND-ed criteria, per-certificate outcomes,
/// partial failures tolerated, exactly one `bulk_revocation_initiated` audit event.
#[tokio::test]
async fn bulk_revoke_by_criteria() {
    let server = builder().start().await;
    let api = server.admin();
    let team = created(&api, "teams", json!({"name": "platform"})).await;
    let owner = created(&api, "owners", json!({"name": "ops", "team_id": team})).await;
    let profile = created(&api, "profiles", json!({"name": "staging"})).await;
    let a = active_certificate(&api, "a", json!({"profile_id": profile, "owner_id": owner})).await;
    let b = active_certificate(&api, "b", json!({"profile_id": profile, "owner_id": owner})).await;
    let c = active_certificate(&api, "c", json!({"profile_id": profile})).await;
    let d = active_certificate(&api, "d", json!({})).await;

    let r = api
        .post(
            "certificates/bulk-revoke",
            &json!({"reason": "keyCompromise"}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = api
        .post(
            "certificates/bulk-revoke",
            &json!({"profile_id": profile, "reason": "nope"}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["error"]["field"], "reason");

    // profile AND team (through the owner): a and b, not c.
    let r = api
        .post(
            "certificates/bulk-revoke",
            &json!({"profile_id": profile, "team_id": team, "reason": "cessationOfOperation"}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let job_id = r.body["job_id"].as_str().unwrap().to_owned();
    assert!(job_id.starts_with("brv-"), "{}", r.body);
    assert_eq!(r.body["affected"], 2, "{}", r.body);
    let mut results: Vec<(String, String)> = r.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["certificate_id"].as_str().unwrap().to_owned(),
                x["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    results.sort();
    let mut expected = vec![
        (a.clone(), "Revoked".to_owned()),
        (b.clone(), "Revoked".to_owned()),
    ];
    expected.sort();
    assert_eq!(results, expected);
    for id in [&a, &b] {
        assert_eq!(
            api.get(&format!("certificates/{id}")).await.body["status"],
            "Revoked"
        );
    }
    for id in [&c, &d] {
        assert_eq!(
            api.get(&format!("certificates/{id}")).await.body["status"],
            "Active"
        );
    }
    let initiated = audit_actions(&api, "action=bulk_revocation_initiated").await;
    assert_eq!(initiated.len(), 1, "{initiated:?}");
    assert_eq!(initiated[0]["resource_id"], job_id.as_str());
    assert_eq!(
        initiated[0]["details"]["criteria"]["team_id"],
        team.as_str()
    );
    let revoked = audit_actions(&api, "action=certificate_revoked").await;
    assert_eq!(revoked.len(), 2);
    assert!(
        revoked
            .iter()
            .all(|e| e["details"]["bulk_revocation_id"] == job_id.as_str())
    );

    let run = api.get(&format!("bulk-revocations/{job_id}")).await;
    assert_eq!(run.status, 200, "{}", run.body);
    assert_eq!(run.body["status"], "Completed");
    assert_eq!(run.body["succeeded"], 2);
    assert_eq!(run.body["reason"], "cessationOfOperation");
    assert_eq!(run.body["results"].as_array().unwrap().len(), 2);
    let list = api.get("bulk-revocations").await;
    assert_eq!(list.body["total"], 1, "{}", list.body);
    assert_eq!(api.get("bulk-revocations/brv-nope").await.status, 404);

    // Explicit ids: partial failures tolerated, each named certificate has an outcome.
    let r = api
        .post(
            "certificates/bulk-revoke",
            &json!({"certificate_ids": [a, "mc-not-there", c]}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["affected"], 3, "{}", r.body);
    let outcome = |id: &str| {
        r.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["certificate_id"] == id)
            .map(|x| x["outcome"].as_str().unwrap().to_owned())
    };
    assert_eq!(outcome(&a).as_deref(), Some("Skipped"));
    assert_eq!(outcome("mc-not-there").as_deref(), Some("Failed"));
    assert_eq!(outcome(&c).as_deref(), Some("Revoked"));
    assert_eq!(r.body["succeeded"], 1);
    assert_eq!(r.body["skipped"], 1);
    assert_eq!(r.body["failed"], 1);
    assert_eq!(
        audit_actions(&api, "action=bulk_revocation_initiated")
            .await
            .len(),
        2,
        "one event per bulk revocation"
    );

    // By agent (through a mapped target's agent).
    let agent = created(&api, "agents", json!({"name": "edge"})).await;
    let target = created(
        &api,
        "targets",
        json!({"name": "edge-nginx", "type": "nginx", "agent_id": agent}),
    )
    .await;
    let mapped = api
        .post(
            &format!("certificates/{d}/targets"),
            &json!({"target_id": target}),
        )
        .await;
    assert_eq!(mapped.status, 201, "{}", mapped.body);
    let r = api
        .post(
            "certificates/bulk-revoke",
            &json!({"agent_id": agent, "reason": "affiliationChanged"}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["affected"], 1, "{}", r.body);
    assert_eq!(r.body["results"][0]["certificate_id"], d.as_str());
    assert_eq!(
        api.get(&format!("certificates/{d}")).await.body["status"],
        "Revoked"
    );
}

/// The responder certificate is delegated, rotates within the grace of expiry, and a
/// deleted key file means a new responder, not a crash.
#[tokio::test]
async fn ocsp_responder_is_delegated_and_rotates() {
    // Validity shorter than the grace: every request finds it due for rotation.
    let server = builder()
        .env("CERTCTL_OCSP_RESPONDER_VALIDITY", "1h")
        .env("CERTCTL_OCSP_RESPONDER_ROTATION_GRACE", "2h")
        .start()
        .await;
    let api = server.admin();
    let work = Work::new();
    let id = active_certificate(&api, "rot", json!({})).await;
    fetch_leaf(&api, &work, &id, "leaf").await;
    let first = ocsp_post(&work, &server.base, "leaf.pem");
    assert!(first.contains("Response verify OK"), "{first}");
    assert!(first.contains("OCSP No Check"), "{first}");
    assert!(first.contains("OCSP Signing"), "{first}");
    assert!(
        first.contains("Subject: CN=certctl OCSP responder for iss-local"),
        "{first}"
    );
    assert!(first.contains("Issuer: CN=certctl Local CA"), "{first}");
    assert!(
        !first.contains("Subject: CN=certctl Local CA"),
        "the CA does not sign: {first}"
    );
    let second = ocsp_post(&work, &server.base, "leaf.pem");
    assert_ne!(
        responder_serial(&first),
        responder_serial(&second),
        "rotated"
    );
    drop(server);

    // Defaults: the responder is kept across requests until its key file goes.
    let server = builder().start().await;
    let api = server.admin();
    let work = Work::new();
    let id = active_certificate(&api, "keep", json!({})).await;
    fetch_leaf(&api, &work, &id, "leaf").await;
    let first = responder_serial(&ocsp_post(&work, &server.base, "leaf.pem"));
    let again = responder_serial(&ocsp_post(&work, &server.base, "leaf.pem"));
    assert_eq!(first, again, "kept while valid");
    let key = server
        .data_dir
        .path()
        .join("ocsp/ocsp-responder-iss-local.key");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "{}", key.display());
    std::fs::remove_file(&key).unwrap();
    let out = ocsp_post(&work, &server.base, "leaf.pem");
    assert!(
        out.contains("Response verify OK") && out.contains("leaf.pem: good"),
        "{out}"
    );
    assert_ne!(
        responder_serial(&out),
        first,
        "a missing key file means a new responder"
    );
    assert!(key.exists());
    assert_eq!(api.get("/health").await.status, 200);
    let rotations = audit_actions(&api, "action=ocsp_responder_rotated").await;
    assert_eq!(rotations.len(), 2, "{rotations:?}");
}

/// Admin-only CRL cache view: 403 for a non-admin key, per-issuer state and events for an
/// admin; generation events accumulate with increasing CRL numbers.
#[tokio::test]
async fn admin_crl_cache_needs_an_admin_key() {
    let server = builder().start().await;
    let api = server.admin();
    let id = active_certificate(&api, "cached", json!({})).await;
    assert_eq!(
        api.post(&format!("certificates/{id}/revoke"), &json!({}))
            .await
            .status,
        200
    );
    // A non-admin key, straight into the database.
    let key = "viewer-key-0123456789";
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(key.as_bytes()));
    insert_key(&server.data_dir.path().join("certctl.db"), &hash);

    let viewer = server.with_key(key);
    assert_eq!(
        viewer.get("certificates").await.status,
        200,
        "the key works"
    );
    let r = viewer.get("admin/crl/cache").await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "forbidden");

    let r = api.get("admin/crl/cache").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let local = r.body["issuers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["issuer_id"] == "iss-local")
        .cloned()
        .unwrap_or_else(|| panic!("{}", r.body));
    assert_eq!(local["revoked_count"], 1);
    assert_eq!(local["is_stale"], false);
    let events = r.body["events"].as_array().unwrap();
    assert!(events.len() >= 2, "startup and revocation: {events:?}");
    let numbers: Vec<i64> = events
        .iter()
        .filter(|e| e["issuer_id"] == "iss-local" && e["succeeded"] == true)
        .map(|e| e["crl_number"].as_i64().unwrap())
        .collect();
    assert!(
        numbers.windows(2).all(|w| w[0] > w[1]),
        "newest first, increasing: {numbers:?}"
    );
    assert_eq!(events[0]["cause"], "revocation", "{events:?}");
}

fn insert_key(db: &Path, hash: &str) {
    let sql = format!(
        "INSERT INTO api_keys (id, name, key_hash, role, agent_id, created_at) VALUES ('key-viewer', 'viewer', '{hash}', 'viewer', NULL, '2026-01-01T00:00:00.000Z');"
    );
    // The server writes to the same file (CRL loop, audit): wait for its lock, don't fail on it.
    let out = Command::new("sqlite3")
        .arg("-cmd")
        .arg(".timeout 10000")
        .arg(db)
        .arg(&sql)
        .output()
        .expect("the sqlite3 CLI must be installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// PEM export (JSON split leaf / chain, and as a download) and a certificates-only PKCS#12
/// that openssl reads with and without a password; each export audited.
#[tokio::test]
async fn exports_pem_and_pkcs12() {
    let server = builder().start().await;
    let api = server.admin();
    let work = Work::new();
    let id = active_certificate(&api, "export", json!({})).await;
    let ca = ca_pem(&api).await;
    work.write("ca.pem", &ca);

    let pem = pem_export(&api, &id).await;
    let certificate = pem["certificate"].as_str().unwrap();
    let chain = pem["chain"].as_str().unwrap();
    let full = pem["pem_chain"].as_str().unwrap();
    assert_eq!(certificate.matches("BEGIN CERTIFICATE").count(), 1);
    assert_eq!(chain, ca, "the chain is the CA chain");
    assert_eq!(format!("{certificate}{chain}"), full);
    assert!(full.starts_with(certificate), "the leaf comes first");
    work.write("leaf.pem", certificate);
    let text = work.openssl_ok(&[
        "x509",
        "-in",
        "leaf.pem",
        "-noout",
        "-serial",
        "-fingerprint",
        "-sha256",
    ]);
    let serial = pem["serial_number"].as_str().unwrap();
    assert!(
        text.to_lowercase().contains(&format!("serial={serial}")),
        "{text}"
    );
    let fp = pem["fingerprint_sha256"].as_str().unwrap().to_uppercase();
    assert!(text.replace(':', "").contains(&fp), "{text}");
    work.openssl_ok(&["verify", "-CAfile", "ca.pem", "leaf.pem"]);

    let r = api
        .client
        .get(api.url(&format!("certificates/{id}/export/pem?download=true")))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-pem-file");
    assert_eq!(
        r.headers()["content-disposition"],
        format!("attachment; filename=\"{id}.pem\"").as_str()
    );
    assert_eq!(r.text().await.unwrap(), full);

    for (body, pass) in [
        (None, "pass:"),
        (Some(json!({"password": "s3cret"})), "pass:s3cret"),
    ] {
        let mut req = api
            .client
            .post(api.url(&format!("certificates/{id}/export/pkcs12")))
            .bearer_auth(ADMIN_KEY);
        if let Some(b) = &body {
            req = req.json(b);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(r.headers()["content-type"], "application/x-pkcs12");
        assert_eq!(
            r.headers()["content-disposition"],
            format!("attachment; filename=\"{id}.p12\"").as_str()
        );
        work.write("x.p12", r.bytes().await.unwrap());
        let out = work.openssl_ok(&[
            "pkcs12", "-info", "-in", "x.p12", "-nokeys", "-passin", pass,
        ]);
        assert_eq!(out.matches("BEGIN CERTIFICATE").count(), 2, "{out}");
        assert!(out.contains("friendlyName: export"), "{out}");
        assert!(
            !out.contains("PRIVATE KEY") && !out.contains("Shrouded Keybag"),
            "{out}"
        );
        // Asking for keys only (unencrypted) yields no key block and no key bag at all.
        let keys = work.openssl_ok(&[
            "pkcs12", "-in", "x.p12", "-nocerts", "-nodes", "-passin", pass,
        ]);
        assert!(!keys.contains("-----BEGIN"), "{keys}");
        let info = work.openssl_ok(&[
            "pkcs12", "-info", "-in", "x.p12", "-nocerts", "-nodes", "-passin", pass,
        ]);
        assert!(
            info.contains("Certificate bag"),
            "the bags are listed: {info}"
        );
        for bag in ["Key bag", "Shrouded Keybag", "PRIVATE KEY"] {
            assert!(!info.contains(bag), "{bag}: {info}");
        }
    }
    let r = api
        .post(
            &format!("certificates/{id}/export/pkcs12"),
            &json!({"password": 7}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);

    let draft = created(
        &api,
        "certificates",
        json!({"name": "draft", "common_name": "draft.example"}),
    )
    .await;
    assert_eq!(
        api.get(&format!("certificates/{draft}/export/pem"))
            .await
            .status,
        409
    );
    assert_eq!(
        api.get("certificates/mc-not-there/export/pem").await.status,
        404
    );

    let exported = audit_actions(
        &api,
        &format!("resource_id={id}&action=certificate_exported"),
    )
    .await;
    assert_eq!(exported.len(), 4, "{exported:?}");
}

/// The issue's bulk scenario: 100 certificates of one profile, 3 already revoked. Bulk revoke
/// revokes the 97, reports the 3 with the reason they were skipped, and writes one
/// `bulk_revocation_initiated` event.
#[tokio::test]
async fn bulk_revoke_hundred_with_three_already_revoked() {
    let server = builder().start().await;
    let api = server.admin();
    let profile = created(&api, "profiles", json!({"name": "fleet"})).await;
    let mut ids = Vec::new();
    for i in 0..100 {
        let r = api
            .post(
                "certificates",
                &json!({"name": format!("fleet-{i}"), "common_name": format!("f{i}.example"),
                    "issuer_id": "iss-local", "profile_id": profile}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        ids.push(r.body["id"].as_str().unwrap().to_owned());
    }
    eventually("100 certificates Active", async || {
        let r = api
            .get(&format!(
                "certificates?profile_id={profile}&status=Active&per_page=1"
            ))
            .await;
        if r.body["total"] == 100 {
            Ok(())
        } else {
            Err(format!("{}", r.body["total"]))
        }
    })
    .await;
    for id in &ids[..3] {
        let r = api
            .post(
                &format!("certificates/{id}/revoke"),
                &json!({"reason": "superseded"}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = api
        .post(
            "certificates/bulk-revoke",
            &json!({"profile_id": profile, "reason": "keyCompromise"}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let bulk_id = r.body["job_id"].as_str().unwrap().to_owned();
    let run = eventually("the bulk run to complete", async || {
        let run = api.get(&format!("bulk-revocations/{bulk_id}")).await;
        if run.body["status"] == "Completed" {
            Ok(run.body)
        } else {
            Err(format!("{}", run.body["status"]))
        }
    })
    .await;
    assert_eq!(run["succeeded"], 97, "{run}");
    assert_eq!(run["skipped"], 3, "{run}");
    assert_eq!(run["failed"], 0, "{run}");
    let results = run["results"].as_array().unwrap();
    for id in &ids[..3] {
        let item = results
            .iter()
            .find(|x| x["certificate_id"] == id.as_str())
            .expect("an outcome for every certificate");
        assert_eq!(item["outcome"], "Skipped", "{item}");
        assert!(
            item["message"]
                .as_str()
                .unwrap_or_default()
                .contains(&format!(
                    "certificate {id} is already revoked (superseded) at 20"
                )),
            "{item}"
        );
    }
    // The 3 keep their original reason; the 97 carry the bulk one.
    let work = Work::new();
    work.write("ca.pem", ca_pem(&api).await);
    let crl = fetch_crl(&api, &work).await;
    for (n, id) in ids.iter().enumerate() {
        let serial = pem_export(&api, id).await["serial_number"]
            .as_str()
            .unwrap()
            .to_owned();
        let expected = if n < 3 {
            "Superseded"
        } else {
            "Key Compromise"
        };
        assert_eq!(crl_reason(&crl, &serial), expected, "{id}: {crl}");
    }
    let revoked = api
        .get(&format!(
            "certificates?profile_id={profile}&status=Revoked&per_page=1"
        ))
        .await;
    assert_eq!(revoked.body["total"], 100, "{}", revoked.body);
    let initiated = audit_actions(&api, "action=bulk_revocation_initiated").await;
    assert_eq!(initiated.len(), 1, "{initiated:?}");
}

// ---------------------------------------------------------------------------------------
// An issuer that fails its best-effort notice
// ---------------------------------------------------------------------------------------

/// The issuer type whose CA refuses every revocation notice.
const FAILING_TYPE: &str = "revoke-fails";
/// The issuer of that type every certificate of the test is signed by.
const FAILING_ISSUER: &str = "iss-revoke-fails";

/// Signs with the Local CA (so certctl publishes its CRL and answers OCSP for it) but its
/// CA is unreachable for revocations: every `revoke` call is recorded and then fails.
struct RevokeFails {
    inner: LocalIssuer,
    told: Arc<Mutex<Vec<String>>>,
}

impl IssuerConnector for RevokeFails {
    fn issue<'a>(
        &'a self,
        req: &'a IssuanceRequest,
    ) -> BoxFuture<'a, Result<IssuanceResult, ConnectorError>> {
        self.inner.issue(req)
    }

    fn revoke<'a>(
        &'a self,
        serial_hex: &'a str,
        _reason: &'a str,
    ) -> BoxFuture<'a, Result<(), ConnectorError>> {
        self.told.lock().unwrap().push(serial_hex.to_owned());
        Box::pin(async {
            Err(ConnectorError::Unavailable(
                "the CA's revocation endpoint is down".into(),
            ))
        })
    }

    fn ca_chain(&self) -> Result<String, ConnectorError> {
        self.inner.ca_chain()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn revocation_ca(&self) -> Option<Arc<LocalCa>> {
        self.inner.revocation_ca()
    }
}

/// The server assembled in-process the way `server::run` assembles it (store, issuer
/// registry, pipeline with its job processor loop, revocation service, the API's routes and
/// middleware on a loopback port), with extra connector types registered: the binary only
/// knows the native ones.
struct InProcessServer {
    base: String,
    api: Api,
    store: Store,
    handle: actix_web::dev::ServerHandle,
    arbiter: actix::Arbiter,
    _dir: tempfile::TempDir,
}

impl InProcessServer {
    /// Starts it with one enabled issuer `issuer_id` of `issuer_type`.
    async fn start(types: ConnectorTypes, issuer_id: &str, issuer_type: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let store = Store::connect(&certctl_host::store::default_sqlite_url(&path))
            .await
            .unwrap();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        api_keys::insert(
            &store,
            &api_keys::NewKey {
                name: "admin",
                role: certctl_host::domain::role::Role::Admin,
                agent_id: None,
                expires_at: None,
                created_by: "test",
            },
            ADMIN_KEY,
            &clock.now_text(),
        )
        .await
        .unwrap();
        let ctx = ConnectorContext::new(
            Arc::new(LocalCa::load_or_create(&path.join("ca")).unwrap()),
            path.clone(),
        );
        // Seeded directly: the API refuses a type unknown to the domain enum.
        let values = json!({"name": issuer_id, "type": issuer_type, "config": {}, "enabled": true});
        records::create(
            &store,
            &issuer::SPEC,
            issuer_id,
            values.as_object().unwrap().clone(),
            &clock.now_text(),
            &Actor::system(),
        )
        .await
        .unwrap();
        // The actors live on their own arbiter, as they would beside the HTTP workers: the
        // test thread blocks in `openssl ocsp`, which waits on them.
        let arbiter = actix::Arbiter::new();
        let registry = {
            let (store, types, ctx) = (store.clone(), types.clone(), ctx.clone());
            IssuerRegistry::start_in_arbiter(&arbiter.handle(), move |_| {
                IssuerRegistry::new(store, types, ctx)
            })
        };
        assert_eq!(registry.send(Rebuild).await.unwrap().unwrap(), 1);

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let pipeline = Arc::new(Pipeline::new(
            store.clone(),
            clock.clone(),
            PipelineSettings {
                keygen_mode: KeygenMode::Server,
                validity: Duration::from_secs(30 * 86_400),
                public_url: base.clone(),
                job_lease: Duration::from_secs(300),
                order_deadline: Duration::from_secs(24 * 3600),
                order_poll_scale: 1.0,
                server_key_dir: path.join("server-keys"),
                abort_before_commit: false,
            },
            registry.clone(),
        ));
        let processor = {
            let task = Arc::new(JobProcessor(pipeline.clone()));
            LoopActor::start_in_arbiter(&arbiter.handle(), move |_| {
                LoopActor::new(task, Duration::from_secs(1))
            })
        };
        pipeline.set_processor(processor);
        let revocation = Arc::new(RevocationService::new(
            store.clone(),
            clock.clone(),
            registry,
            &RevocationSettings {
                crl_generation_interval: Duration::from_secs(3600),
                ocsp_responder_validity: Duration::from_secs(30 * 86_400),
                ocsp_responder_rotation_grace: Duration::from_secs(7 * 86_400),
                ocsp_responder_key_dir: None,
            },
            &path,
        ));
        // The API-call log is not under test: its writer is left out.
        let (api_call_log, _) = certctl_host::store::api_calls::ApiCallLog::new(16);
        let state = actix_web::web::Data::new(AppState {
            store: store.clone(),
            clock,
            auth_type: AuthType::ApiKey,
            max_body_size: 1 << 20,
            rate_limit: None,
            api_call_log,
            pipeline,
            issuer_types: types,
            connector_ctx: ctx,
            agent_hub: AgentHub::start_in_arbiter(&arbiter.handle(), |_| AgentHub::default()),
            revocation,
            config_secrets: Default::default(),
            agent_bootstrap_token: None,
        });
        let server = actix_web::HttpServer::new(move || {
            actix_web::App::new()
                .app_data(state.clone())
                .configure(certctl_host::api::configure)
                .wrap(from_fn(certctl_host::api::request_context::request_context))
                .wrap(from_fn(certctl_host::api::normalize::normalize_path))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        actix::spawn(server);
        let api = Api::new(&base, Some(ADMIN_KEY));
        eventually("the in-process server to answer", async || {
            match api.client.get(api.url("/health")).send().await {
                Ok(r) if r.status().is_success() => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        Self {
            base,
            api,
            store,
            handle,
            arbiter,
            _dir: dir,
        }
    }
}

/// The issue's acceptance bullet: an issuer that errors on its best-effort notification
/// does not stop any revocation. Every certificate is signed by an issuer whose `revoke`
/// fails; a single revoke and a bulk revoke of three still answer success, every
/// certificate is Revoked with its `certificate_revocations` rows, the CRL and OCSP (read by
/// openssl) say revoked, and each failed notice — sent to the issuer that signed the
/// version — is audited as `certificate_revocation_issuer_notify_failed`.
#[actix::test]
async fn failing_issuer_notice_does_not_stop_revocations() {
    let told = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut types = ConnectorTypes::native();
    {
        let told = told.clone();
        types.register(
            FAILING_TYPE,
            Arc::new(move |_config: &Value, ctx: &ConnectorContext| {
                Ok(Arc::new(RevokeFails {
                    inner: LocalIssuer::from_config(&json!({}), ctx)?,
                    told: told.clone(),
                }) as Arc<dyn IssuerConnector>)
            }),
        );
    }
    let server = InProcessServer::start(types, FAILING_ISSUER, FAILING_TYPE).await;
    let api = &server.api;
    let work = Work::new();
    let ca = api
        .client
        .get(api.url(&format!("issuers/{FAILING_ISSUER}/ca")))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(ca.status().as_u16(), 200);
    work.write("ca.pem", ca.text().await.unwrap());
    let names = ["single", "bulk-a", "bulk-b", "bulk-c", "bystander"];
    let mut ids = Vec::new();
    let mut serials = Vec::new();
    for name in names {
        let id = active_certificate(api, name, json!({"issuer_id": FAILING_ISSUER})).await;
        let export = pem_export(api, &id).await;
        work.write(
            &format!("{name}.pem"),
            export["certificate"].as_str().unwrap(),
        );
        serials.push(export["serial_number"].as_str().unwrap().to_owned());
        ids.push(id);
    }
    let ocsp =
        |name: &str| ocsp_post_to(&work, &server.base, FAILING_ISSUER, &format!("{name}.pem"));
    let notify_failures = async |filter: &str, expected: usize| {
        eventually("the failed issuer notices to be audited", async || {
            let events = audit_actions(
                api,
                &format!("action=certificate_revocation_issuer_notify_failed{filter}"),
            )
            .await;
            if events.len() == expected {
                Ok(events)
            } else {
                Err(format!("{events:?}"))
            }
        })
        .await
    };

    // A single revoke: answered 200 Revoked although the issuer's notice fails.
    let r = api
        .post(
            &format!("certificates/{}/revoke", ids[0]),
            &json!({"reason": "keyCompromise"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "Revoked");
    let events = notify_failures(&format!("&resource_id={}", ids[0]), 1).await;
    assert_eq!(events[0]["details"]["issuer_id"], FAILING_ISSUER);
    assert_eq!(events[0]["details"]["serial_number"], serials[0].as_str());
    let error = events[0]["details"]["error"].as_str().unwrap();
    assert!(error.contains("revocation endpoint is down"), "{error}");
    let out = ocsp("single");
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains("single.pem: revoked"), "{out}");
    assert!(out.contains("Reason: keyCompromise"), "{out}");

    // A bulk revoke of three: completed, all three revoked, none failed.
    let r = api
        .post(
            "certificates/bulk-revoke",
            &json!({"certificate_ids": &ids[1..4], "reason": "cessationOfOperation"}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["status"], "Completed", "{}", r.body);
    assert_eq!(r.body["affected"], 3, "{}", r.body);
    assert_eq!(r.body["succeeded"], 3, "{}", r.body);
    assert_eq!(r.body["failed"], 0, "{}", r.body);
    for x in r.body["results"].as_array().unwrap() {
        assert_eq!(x["outcome"], "Revoked", "{x}");
    }
    let events = notify_failures("", 4).await;
    let mut audited: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            assert_eq!(e["details"]["issuer_id"], FAILING_ISSUER, "{e}");
            (
                e["resource_id"].as_str().unwrap().to_owned(),
                e["details"]["serial_number"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    audited.sort();
    let mut expected: Vec<(String, String)> = ids[..4]
        .iter()
        .cloned()
        .zip(serials[..4].iter().cloned())
        .collect();
    expected.sort();
    assert_eq!(audited, expected);

    // The notices went to the signing issuer, once per revoked serial.
    let mut notified = told.lock().unwrap().clone();
    notified.sort();
    let mut revoked_serials = serials[..4].to_vec();
    revoked_serials.sort();
    assert_eq!(notified, revoked_serials);

    // Statuses and rows.
    for (i, id) in ids.iter().enumerate() {
        let status = &api.get(&format!("certificates/{id}")).await.body["status"];
        assert_eq!(status, if i < 4 { "Revoked" } else { "Active" }, "{id}");
    }
    let rows = sqlx::query(
        "SELECT certificate_id, serial_number, issuer_id, reason FROM certificate_revocations ORDER BY certificate_id",
    )
    .fetch_all(server.store.pool())
    .await
    .unwrap();
    let mut rows: Vec<(String, String, String, String)> = rows
        .iter()
        .map(|r| {
            (
                r.try_get(0).unwrap(),
                r.try_get(1).unwrap(),
                r.try_get(2).unwrap(),
                r.try_get(3).unwrap(),
            )
        })
        .collect();
    rows.sort();
    let mut wanted: Vec<(String, String, String, String)> = (0..4)
        .map(|i| {
            let reason = if i == 0 {
                "keyCompromise"
            } else {
                "cessationOfOperation"
            };
            (
                ids[i].clone(),
                serials[i].clone(),
                FAILING_ISSUER.to_owned(),
                reason.to_owned(),
            )
        })
        .collect();
    wanted.sort();
    assert_eq!(rows, wanted);

    // OCSP and the CRL, as openssl reads them.
    for name in &names[1..4] {
        let out = ocsp(name);
        assert!(out.contains("Response verify OK"), "{out}");
        assert!(out.contains(&format!("{name}.pem: revoked")), "{out}");
        assert!(out.contains("Reason: cessationOfOperation"), "{out}");
    }
    let out = ocsp("bystander");
    assert!(out.contains("bystander.pem: good"), "{out}");
    let crl = fetch_crl_of(api, &work, FAILING_ISSUER).await;
    for serial in &serials[..4] {
        assert!(crl.contains(&serial.to_uppercase()), "{serial}: {crl}");
    }
    assert!(!crl.contains(&serials[4].to_uppercase()), "{crl}");
    for name in &names[..4] {
        let (ok, out) = crl_verify(&work, &format!("{name}.pem"));
        assert!(!ok && out.contains("certificate revoked"), "{name}: {out}");
    }
    let (ok, out) = crl_verify(&work, "bystander.pem");
    assert!(ok, "{out}");

    server.handle.stop(true).await;
    server.arbiter.stop();
}
