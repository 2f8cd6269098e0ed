//! ACME Renewal Information (RFC 9773) and profiles against Debian's Pebble 2.4, which has
//! neither: a small HTTPS proxy in front of Pebble adds a `renewalInfo` resource (with a
//! window the test controls, or 404) and `meta.profiles` to the directory, and records every
//! newOrder payload. Everything else is forwarded to Pebble with the proxy's Host header, so
//! the URLs Pebble hands out (and checks in the JWS `url`) point at the proxy.
//!
//! In-process with an injected clock: the renewal check does not renew before the suggested
//! window (even past the policy threshold), renews inside it (audit trigger `ari`), the
//! renewal completes through Pebble with `replaces` and the configured profile, and with
//! renewalInfo answering 404 it falls back to the thresholds (audit trigger `threshold`), and
//! with renewalInfo answering 500 too (asking again after the error back-off).

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use actix_web::http::StatusCode;
use actix_web::http::header::HeaderValue;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine as _;
use serde_json::{Value, json};
use sqlx::Row as _;
use time::{Duration, OffsetDateTime};

use certctl_host::actors::issuer_registry::Rebuild;
use certctl_host::actors::renewal_check::RenewalCheck;
use certctl_host::clock::{Clock as _, ManualClock};
use certctl_host::config::KeygenMode;
use certctl_host::domain::audit::Actor;
use certctl_host::domain::job_state::JobStatus;
use certctl_host::domain::{certificate, issuer};
use certctl_host::issuer::ConnectorTypes;
use certctl_host::pipeline::Pipeline;
use certctl_host::store::{Store, certificates, jobs, records};

use crate::acme::{Pebble, acme_config, have_pebble};
use crate::support::{in_process_with, pipeline};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// What the proxy answers on `GET /renewalInfo/{id}`.
#[derive(Debug, Clone, Copy)]
enum RenewalInfo {
    Window(OffsetDateTime, OffsetDateTime),
    NotFound,
    /// A server error without Retry-After.
    ServerError,
}

struct ProxyState {
    /// `https://127.0.0.1:PORT` of Pebble.
    upstream: String,
    new_order_path: String,
    client: reqwest::Client,
    renewal_info: Mutex<RenewalInfo>,
    /// ARI ids asked for, in order.
    asked: Mutex<Vec<String>>,
    /// Decoded newOrder payloads, in order.
    new_orders: Mutex<Vec<Value>>,
}

/// The proxy (actix-web over rustls with Pebble's own TLS certificate, which the issuer
/// trusts through the operator's `pebble` CA bundle).
struct AriProxy {
    directory_url: String,
    state: Arc<ProxyState>,
    server: actix_web::dev::ServerHandle,
}

impl AriProxy {
    async fn start(pebble: &Pebble) -> AriProxy {
        let client = pebble.client();
        let upstream = pebble.directory_url.trim_end_matches("/dir").to_owned();
        let dir: Value = client
            .get(&pebble.directory_url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            dir.get("renewalInfo").is_none() && dir["meta"].get("profiles").is_none(),
            "this Pebble offers ARI/profiles itself; the proxy is not needed: {dir}"
        );
        let new_order_path = dir["newOrder"]
            .as_str()
            .unwrap()
            .trim_start_matches(&upstream)
            .to_owned();
        let d = pebble.dir.path();
        let tls =
            certctl_host::tls::load_files(Some(&d.join("cert.pem")), Some(&d.join("key.pem")))
                .unwrap();
        let state = Arc::new(ProxyState {
            upstream,
            new_order_path,
            client,
            renewal_info: Mutex::new(RenewalInfo::NotFound),
            asked: Mutex::new(Vec::new()),
            new_orders: Mutex::new(Vec::new()),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(forward))
        })
        .workers(1)
        .disable_signals()
        .listen_rustls_0_23(listener, tls)
        .unwrap()
        .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        AriProxy {
            directory_url: format!("https://127.0.0.1:{port}/dir"),
            state,
            server: handle,
        }
    }

    fn set(&self, info: RenewalInfo) {
        *self.state.renewal_info.lock().unwrap() = info;
    }

    fn asked(&self) -> Vec<String> {
        self.state.asked.lock().unwrap().clone()
    }

    fn new_orders(&self) -> Vec<Value> {
        self.state.new_orders.lock().unwrap().clone()
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

async fn forward(req: HttpRequest, body: web::Bytes, state: web::Data<ProxyState>) -> HttpResponse {
    let path = req.uri().path().to_owned();
    let method = req.method().as_str().to_owned();
    let host = req
        .headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if method == "GET"
        && let Some(id) = path.strip_prefix("/renewalInfo/")
    {
        state.asked.lock().unwrap().push(id.to_owned());
        let info = *state.renewal_info.lock().unwrap();
        return match info {
            RenewalInfo::Window(start, end) => HttpResponse::Ok()
                .insert_header(("Retry-After", "60"))
                .json(json!({"suggestedWindow": {"start": rfc3339(start), "end": rfc3339(end)}})),
            // Like Boulder and newer Pebbles: a problem document, no Retry-After.
            RenewalInfo::NotFound => HttpResponse::NotFound()
                .content_type("application/problem+json")
                .body(
                    json!({"type": "urn:ietf:params:acme:error:malformed",
                        "detail": "certificate not found", "status": 404})
                    .to_string(),
                ),
            RenewalInfo::ServerError => HttpResponse::InternalServerError()
                .content_type("application/problem+json")
                .body(
                    json!({"type": "urn:ietf:params:acme:error:serverInternal",
                        "detail": "renewalInfo is down", "status": 500})
                    .to_string(),
                ),
        };
    }
    let new_order = (method == "POST" && path == state.new_order_path).then(|| {
        let jws: Value = serde_json::from_slice(&body).unwrap();
        let payload = B64.decode(jws["payload"].as_str().unwrap()).unwrap();
        let payload: Value = serde_json::from_slice(&payload).unwrap();
        state.new_orders.lock().unwrap().push(payload.clone());
        payload
    });
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| path.clone());
    let mut out = state.client.request(
        reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
        format!("{}{pq}", state.upstream),
    );
    for (k, v) in req.headers() {
        if !matches!(
            k.as_str(),
            "content-length" | "connection" | "transfer-encoding"
        ) {
            out = out.header(k.as_str(), v.as_bytes());
        }
    }
    let rsp = match out.body(body.to_vec()).send().await {
        Ok(r) => r,
        Err(e) => return HttpResponse::BadGateway().body(e.to_string()),
    };
    let status = rsp.status().as_u16();
    let headers: Vec<(String, Vec<u8>)> = rsp
        .headers()
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "content-length" | "connection" | "transfer-encoding"
            )
        })
        .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect();
    let mut bytes = rsp.bytes().await.unwrap_or_default().to_vec();
    if method == "GET" && path == "/dir" {
        let mut d: Value = serde_json::from_slice(&bytes).unwrap();
        d["renewalInfo"] = json!(format!("https://{host}/renewalInfo"));
        d["meta"]["profiles"] = json!({
            "classic": "the usual 90-day certificate",
            "shortlived": "a six-day certificate",
        });
        bytes = serde_json::to_vec(&d).unwrap();
    }
    if let Some(payload) = new_order
        && status == 201
    {
        // An ARI/profiles CA reflects both in the order object (instant-acme checks
        // `replaces`); Pebble 2.4 ignores them.
        let mut order: Value = serde_json::from_slice(&bytes).unwrap();
        for k in ["replaces", "profile"] {
            if let Some(v) = payload.get(k) {
                order[k] = v.clone();
            }
        }
        bytes = serde_json::to_vec(&order).unwrap();
    }
    let mut b = HttpResponse::build(StatusCode::from_u16(status).unwrap());
    for (k, v) in headers {
        b.append_header((k.as_str(), HeaderValue::from_bytes(&v).unwrap()));
    }
    b.body(bytes)
}

/// The RFC 9773 id computed here independently: base64url(AKI keyIdentifier) "."
/// base64url(serial DER content).
fn ari_id_of(leaf_der: &[u8]) -> String {
    use x509_parser::extensions::ParsedExtension;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf_der).unwrap();
    let aki = cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
        .expect("Pebble's leaf has an AKI");
    format!("{}.{}", B64.encode(aki), B64.encode(cert.raw_serial()))
}

struct Env {
    _dir: tempfile::TempDir,
    store: Store,
    clock: Arc<ManualClock>,
    pipeline: Arc<Pipeline>,
}

impl Env {
    async fn new(pebble: &Pebble, issuers: &[(&str, Value)]) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        // The operator's side, as a server would get it from CERTCTL_ACME_HOOKS and
        // CERTCTL_OUTBOUND_ALLOW: Pebble's listener and CA bundle, loopback granted.
        let (store, clock, registry) =
            in_process_with(&path, ConnectorTypes::native(), |ctx| pebble.operate(ctx)).await;
        for (id, config) in issuers {
            records::create(
                &store,
                &issuer::SPEC,
                id,
                json!({"name": id, "type": "acme", "enabled": true, "config": config})
                    .as_object()
                    .unwrap()
                    .clone(),
                &clock.now_text(),
                &Actor::system(),
            )
            .await
            .unwrap();
        }
        assert_eq!(
            registry.send(Rebuild).await.unwrap().unwrap(),
            issuers.len()
        );
        let pipeline = pipeline((&store, &clock, &registry), &path, KeygenMode::Server, 90);
        Env {
            _dir: dir,
            store,
            clock,
            pipeline,
        }
    }

    async fn create_certificate(&self, id: &str, issuer_id: &str) {
        let cn = format!("{id}.example.com");
        records::create_with(
            &self.store,
            &certificate::SPEC,
            id,
            json!({"name": id, "common_name": cn, "sans": [cn], "issuer_id": issuer_id})
                .as_object()
                .unwrap()
                .clone(),
            &self.clock.now_text(),
            &Actor::system(),
            Some(certctl_host::api::certificates::after_create),
        )
        .await
        .unwrap();
    }

    /// Runs the certificate's due job (Issuance or Renewal) to its end; returns it.
    async fn run_due(&self, certificate_id: &str) -> jobs::Job {
        let due: Vec<_> = jobs::due(
            &self.store,
            &["Issuance", "Renewal"],
            &self.clock.now_text(),
            100,
        )
        .await
        .unwrap()
        .into_iter()
        .filter(|j| j.certificate_id == certificate_id)
        .collect();
        assert_eq!(due.len(), 1, "{due:?}");
        let id = due[0].id.clone();
        self.pipeline
            .process(due.into_iter().next().unwrap())
            .await
            .unwrap();
        jobs::get(&self.store, &id).await.unwrap().unwrap()
    }

    /// (leaf DER, NotBefore, NotAfter) of the newest version.
    async fn current(&self, certificate_id: &str) -> (Vec<u8>, OffsetDateTime, OffsetDateTime) {
        let v = certificates::versions(&self.store, certificate_id)
            .await
            .unwrap()
            .into_iter()
            .next()
            .unwrap();
        let leaf = x509_parser::pem::parse_x509_pem(v.pem_chain.as_bytes())
            .unwrap()
            .1
            .contents;
        let parse = |t: &str| certctl_core::timestamp::parse(t).unwrap();
        (leaf, parse(&v.not_before), parse(&v.not_after))
    }

    /// Renewal jobs of a certificate with the details of their `job_created` audit event, in
    /// the order they were made (the injected clock moves back and forth).
    async fn renewals(&self, certificate_id: &str) -> Vec<Value> {
        sqlx::query(
            "SELECT a.details FROM jobs j JOIN audit_events a ON a.resource_id = j.id AND a.action = 'job_created' WHERE j.certificate_id = ? AND j.type = 'Renewal' ORDER BY a.rowid",
        )
        .bind(certificate_id)
        .fetch_all(self.store.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_str(&r.try_get::<String, _>(0).unwrap()).unwrap())
        .collect()
    }
}

#[actix::test]
async fn ari_window_drives_renewal_with_profile_and_falls_back_to_thresholds() {
    if !have_pebble() {
        eprintln!("pebble is not installed (scripts/test installs it); skipping");
        return;
    }
    let pebble = Pebble::start(false).await;
    let proxy = AriProxy::start(&pebble).await;
    let via_proxy = |extra: Value| {
        let mut c = acme_config(&pebble, extra);
        c["directory_url"] = json!(proxy.directory_url);
        c
    };
    let env = Env::new(
        &pebble,
        &[
            ("iss-acme-ari", via_proxy(json!({"profile": "shortlived"}))),
            (
                "iss-acme-bad-profile",
                via_proxy(json!({"profile": "nonexistent"})),
            ),
        ],
    )
    .await;
    let cert = "mc-ari";

    // Issuance through the proxy: newOrder carries the profile, no `replaces`.
    env.create_certificate(cert, "iss-acme-ari").await;
    let job = env.run_due(cert).await;
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    let orders = proxy.new_orders();
    assert_eq!(orders.len(), 1, "{orders:?}");
    assert_eq!(orders[0]["profile"], "shortlived", "{orders:?}");
    assert!(orders[0].get("replaces").is_none(), "{orders:?}");

    let (leaf, not_before, not_after) = env.current(cert).await;
    let id = ari_id_of(&leaf);
    assert!(
        not_after - not_before > Duration::days(200),
        "Pebble's default validity is long; the windows below assume it"
    );
    let check = RenewalCheck::new(env.pipeline.clone());

    // An early window (long before the 30-day policy threshold): before it, nothing.
    let (start, end) = (
        not_before + Duration::days(100),
        not_before + Duration::days(101),
    );
    proxy.set(RenewalInfo::Window(start, end));
    env.clock.set(start - Duration::days(1));
    assert_eq!(check.run_once().await.unwrap().2, 0);
    assert_eq!(
        proxy.asked(),
        vec![id.clone()],
        "asked with the RFC 9773 id"
    );
    assert!(env.renewals(cert).await.is_empty());

    // A late window: the policy threshold (30 days) is passed, but the CA says later.
    let (start, end) = (
        not_after - Duration::days(10),
        not_after - Duration::days(9),
    );
    proxy.set(RenewalInfo::Window(start, end));
    env.clock.set(not_after - Duration::days(20));
    assert_eq!(
        check.run_once().await.unwrap().2,
        0,
        "not before the window"
    );
    assert_eq!(proxy.asked().len(), 2, "asked again after Retry-After");
    assert!(env.renewals(cert).await.is_empty());

    // Inside the window: one renewal job, audited as an ARI renewal.
    env.clock.set(end - Duration::seconds(1));
    assert_eq!(check.run_once().await.unwrap().2, 1);
    let renewals = env.renewals(cert).await;
    assert_eq!(renewals.len(), 1, "{renewals:?}");
    assert_eq!(renewals[0]["trigger"], "ari", "{renewals:?}");
    assert_eq!(renewals[0]["ari_certificate_id"], id.as_str());
    assert_eq!(
        renewals[0]["window_start"],
        certctl_core::timestamp::format(start)
    );
    assert_eq!(check.run_once().await.unwrap().2, 0, "one job only");

    // The renewal completes through Pebble, replacing the old certificate, same profile.
    let job = env.run_due(cert).await;
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    let orders = proxy.new_orders();
    assert_eq!(orders.len(), 2, "{orders:?}");
    assert_eq!(orders[1]["replaces"], id.as_str(), "{orders:?}");
    assert_eq!(orders[1]["profile"], "shortlived", "{orders:?}");
    let (leaf2, _, not_after2) = env.current(cert).await;
    let id2 = ari_id_of(&leaf2);
    assert_ne!(id2, id, "a new certificate");
    assert_eq!(
        certificates::versions(&env.store, cert)
            .await
            .unwrap()
            .len(),
        2
    );

    // renewalInfo answers 404: the policy thresholds decide again.
    proxy.set(RenewalInfo::NotFound);
    env.clock.set(not_after2 - Duration::days(31));
    assert_eq!(
        check.run_once().await.unwrap().2,
        0,
        "threshold not reached"
    );
    assert_eq!(proxy.asked().last(), Some(&id2), "the CA was asked first");
    assert_eq!(env.renewals(cert).await.len(), 1);
    env.clock.set(not_after2 - Duration::days(29));
    assert_eq!(check.run_once().await.unwrap().2, 1, "threshold reached");
    let renewals = env.renewals(cert).await;
    assert_eq!(renewals.len(), 2, "{renewals:?}");
    assert_eq!(renewals[1]["trigger"], "threshold", "{renewals:?}");

    // renewalInfo fails (500, no Retry-After) for another certificate: not "no ARI" but an
    // error; the thresholds decide, and the CA is asked again only after the back-off.
    let cert3 = "mc-ari-500";
    env.create_certificate(cert3, "iss-acme-ari").await;
    let job = env.run_due(cert3).await;
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    let (leaf3, _, not_after3) = env.current(cert3).await;
    let id3 = ari_id_of(&leaf3);
    let asked3 = || proxy.asked().iter().filter(|a| **a == id3).count();
    proxy.set(RenewalInfo::ServerError);
    env.clock.set(not_after3 - Duration::days(31));
    assert_eq!(
        check.run_once().await.unwrap().2,
        0,
        "threshold not reached"
    );
    // (Twice: the connector asks again to learn the status instant-acme does not report.)
    let asked = asked3();
    assert!(asked >= 1, "the CA was asked");
    env.clock
        .set(not_after3 - Duration::days(31) + Duration::minutes(30));
    check.run_once().await.unwrap();
    assert_eq!(asked3(), asked, "not asked again within the error back-off");
    // After the error back-off (1 h, shorter than the 6 h for "no ARI"), asked again.
    env.clock
        .set(not_after3 - Duration::days(31) + Duration::hours(2));
    check.run_once().await.unwrap();
    assert!(asked3() > asked, "asked again after the error back-off");
    let asked = asked3();
    assert!(env.renewals(cert3).await.is_empty());
    env.clock.set(not_after3 - Duration::days(29));
    assert_eq!(check.run_once().await.unwrap().2, 1, "threshold reached");
    assert!(asked3() > asked, "asked again");
    let renewals = env.renewals(cert3).await;
    assert_eq!(renewals.len(), 1, "{renewals:?}");
    assert_eq!(renewals[0]["trigger"], "threshold", "{renewals:?}");

    // A profile the directory does not advertise: a clear configuration error.
    env.create_certificate("mc-bad-profile", "iss-acme-bad-profile")
        .await;
    let job = env.run_due("mc-bad-profile").await;
    assert_eq!(job.status, JobStatus::Failed, "{job:?}");
    let err = job.last_error.clone().unwrap_or_default();
    assert!(
        err.contains("invalid issuer configuration")
            && err.contains("\"nonexistent\"")
            && err.contains("shortlived"),
        "{err}"
    );
    assert!(job.scheduled_at.is_none(), "not retried: {job:?}");

    proxy.server.stop(false).await;
}
