//! Abuse limits, black-box: a burst of anonymous requests from thousands of source
//! addresses leaves the server's memory, its API-call queue and its rate-limiter table
//! bounded; OCSP and CRL requests are counted, not logged; retention prunes old API calls.
//!
//! These tests assert bounds and counts, never timings.

use std::net::{Ipv4Addr, SocketAddr};

use certctl_host::store::api_calls::{self, ApiCall};
use certctl_host::store::{self, Store};
use futures_util::StreamExt as _;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpSocket;

use crate::support::{Api, ServerBuilder, TestServer, eventually};

/// Requests in the measured burst.
const BURST: usize = 10_000;
/// Requests sent before measuring, so allocator pools and caches are at steady state.
const WARM_UP: usize = 3_000;
/// Distinct loopback source addresses per phase (each a rate-limiter key).
const SOURCES: usize = 2_000;
/// Requests in flight at once.
const CONCURRENCY: usize = 32;
/// The limiter's table bound for these tests: well below the number of sources.
const LIMITER_KEYS: usize = 1_000;
/// How much the server's resident memory may grow over the burst.
const RSS_SLACK_KB: u64 = 20 * 1024;

/// Resident set size of `pid`, in kB.
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line")
}

/// The `i`-th loopback source address of `phase` (127.phase.x.y; all of 127/8 is local).
fn source(phase: u8, i: usize) -> Ipv4Addr {
    let i = i % SOURCES;
    Ipv4Addr::new(127, phase, (i / 250) as u8, (i % 250 + 1) as u8)
}

/// One `GET path` from `from` on a fresh connection; the response status.
async fn get_from(from: Ipv4Addr, port: u16, path: &str, bearer: Option<&str>) -> u16 {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from((from, 0)))
        .unwrap_or_else(|e| panic!("bind {from}: {e}"));
    let mut stream = socket
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap_or_else(|e| panic!("connect from {from}: {e}"));
    let auth = bearer.map_or_else(String::new, |k| format!("Authorization: Bearer {k}\r\n"));
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let head = String::from_utf8_lossy(&response[..response.len().min(64)]).into_owned();
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {head:?}"))
}

/// Varied paths under `/api/v1`: collections, items, unknown routes, queries.
fn path(i: usize) -> String {
    match i % 5 {
        0 => "/api/v1/certificates".to_owned(),
        1 => format!("/api/v1/teams/team-{i}"),
        2 => format!("/api/v1/jobs?page={i}&per_page=5"),
        3 => format!("/api/v1/no-such-thing/{i}"),
        _ => format!("/api/v1/audit/api-calls?request_id=req-{i}"),
    }
}

/// Sends `n` anonymous (or wrong-key) requests from `SOURCES` addresses of `phase`,
/// `CONCURRENCY` at a time; every answer must refuse the caller.
async fn burst(port: u16, phase: u8, n: usize) {
    let statuses: Vec<u16> = futures_util::stream::iter(0..n)
        .map(|i| async move {
            // Every fourth caller guesses a key, which costs a database lookup.
            let guess = format!("guessed-key-{i}");
            let bearer = (i % 4 == 3).then_some(guess.as_str());
            get_from(source(phase, i), port, &path(i), bearer).await
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let unexpected: Vec<&u16> = statuses
        .iter()
        .filter(|s| **s != 401 && **s != 429)
        .collect();
    assert!(
        unexpected.is_empty(),
        "{} anonymous requests were not refused: {:?}",
        unexpected.len(),
        &unexpected[..unexpected.len().min(20)]
    );
}

async fn stats(admin: &Api) -> Value {
    let r = admin.get("admin/request-stats").await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

fn count(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// Waits until the queue is empty and every one of the `sent` `/api/` requests (plus the
/// stats calls made while waiting) is accounted for as recorded, dropped or failed.
async fn drained(admin: &Api, sent: u64) -> Value {
    let mut polls = 0;
    eventually("the API-call queue to drain", async || {
        let s = stats(admin).await;
        let log = &s["api_call_log"];
        let accounted = count(&log["recorded"]) + count(&log["dropped"]) + count(&log["failed"]);
        let expected = sent + polls;
        polls += 1;
        if count(&log["queued"]) == 0 && accounted == expected {
            Ok(s)
        } else {
            Err(format!("expected {expected} accounted: {s}"))
        }
    })
    .await
}

fn limited_server() -> ServerBuilder {
    ServerBuilder::new()
        .env("CERTCTL_RATE_LIMIT_ENABLED", "true")
        .env("CERTCTL_RATE_LIMIT_MAX_KEYS", &LIMITER_KEYS.to_string())
        .env("CERTCTL_LOG_LEVEL", "warn")
}

/// 10,000 unauthenticated requests in a burst, from 2,000 source addresses the server has
/// not seen: its resident memory stays within 20 MB of where it was after warm-up, the
/// API-call queue never holds more than its capacity, every request is accounted for,
/// and the rate limiter's table stays within its bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_anonymous_requests_leaves_memory_and_queues_bounded() {
    let server: TestServer = limited_server().start().await;
    let admin = server.admin();
    let pid = server.pid().expect("running");

    burst(server.port, 10, WARM_UP).await;
    let warm = drained(&admin, WARM_UP as u64).await;
    let before = rss_kb(pid);
    let polls_so_far = count(&warm["api_call_log"]["recorded"])
        + count(&warm["api_call_log"]["dropped"])
        + count(&warm["api_call_log"]["failed"])
        + 1
        - WARM_UP as u64;

    burst(server.port, 20, BURST).await;
    let after_burst = stats(&admin).await;
    let s = drained(&admin, (WARM_UP + BURST) as u64 + polls_so_far + 1).await;
    let after = rss_kb(pid);
    eprintln!("server RSS: {before} kB after warm-up, {after} kB after the burst");

    for snapshot in [&after_burst, &s] {
        let log = &snapshot["api_call_log"];
        assert!(
            count(&log["queued"]) <= count(&log["capacity"]),
            "{snapshot}"
        );
        let limiter = &snapshot["rate_limiter"];
        assert_eq!(limiter["enabled"], true, "{snapshot}");
        assert_eq!(count(&limiter["capacity"]), LIMITER_KEYS as u64);
        let keys = count(&limiter["keys"]);
        assert!(
            keys > 0 && keys <= LIMITER_KEYS as u64,
            "{keys} limiter keys: {snapshot}"
        );
    }
    assert_eq!(count(&s["api_call_log"]["capacity"]), 10_000);
    assert!(
        after <= before + RSS_SLACK_KB,
        "RSS grew from {before} kB to {after} kB over {BURST} requests: {s}"
    );
}

/// A queue of one record cannot keep up with a burst: records are dropped and counted
/// (never blocking a request, never growing the queue), and the warning is logged once,
/// not once per dropped record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_and_counts_records() {
    let server = limited_server()
        .env("CERTCTL_API_CALL_LOG_QUEUE", "1")
        .start()
        .await;
    let admin = server.admin();
    let started = std::time::Instant::now();
    burst(server.port, 30, 2_000).await;
    let s = drained(&admin, 2_000).await;
    let minutes = started.elapsed().as_secs() / 60;
    let log = &s["api_call_log"];
    assert_eq!(count(&log["capacity"]), 1);
    assert!(count(&log["recorded"]) > 0, "{s}");
    let dropped = count(&log["dropped"]);
    let warnings = server.logs().matches("API-call log queue full").count() as u64;
    if dropped > 0 {
        // At most one warning a minute, however many records were dropped.
        assert!(
            warnings >= 1 && warnings <= 1 + minutes,
            "{warnings} warnings for {dropped} drops in {minutes} min: {s}"
        );
    } else {
        // The writer kept up with every record (possible on a fast machine): no warning.
        assert_eq!(warnings, 0);
    }
}

/// OCSP and CRL requests are counted in the request stats and leave no API-call rows;
/// `/api/` calls are still logged.
#[tokio::test]
async fn pki_requests_are_counted_not_logged() {
    let server = ServerBuilder::new().start().await;
    let admin = server.admin();
    let anonymous = server.anonymous();
    for _ in 0..3 {
        let r = anonymous.get("/.well-known/pki/crl/iss-local").await;
        assert_eq!(r.status, 200);
    }
    for junk in ["AAAA", "not-a-request"] {
        let r = anonymous
            .get(&format!("/.well-known/pki/ocsp/iss-local/{junk}"))
            .await;
        assert!(r.status < 500, "OCSP {junk}: {}", r.status);
    }
    let s = stats(&admin).await;
    assert_eq!(count(&s["pki_requests"]["crl"]), 3, "{s}");
    assert_eq!(count(&s["pki_requests"]["ocsp"]), 2, "{s}");

    // The stats call above is logged; no PKI request is.
    let logged = eventually("the stats call to be logged", async || {
        let r = admin
            .get("audit/api-calls?path=/api/v1/admin/request-stats")
            .await;
        match r.body["total"].as_i64() {
            Some(n) if n >= 1 => Ok(r),
            _ => Err(r.body.to_string()),
        }
    })
    .await;
    assert_eq!(logged.status, 200);
    let all = admin.get("audit/api-calls?per_page=500").await;
    let paths: Vec<&str> = all.body["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|c| c["path"].as_str())
        .collect();
    assert!(
        paths.iter().all(|p| p.starts_with("/api/")),
        "non-API paths logged: {paths:?}"
    );
}

/// The retention loop deletes API calls older than `CERTCTL_API_CALL_RETENTION` and keeps
/// the newer ones.
#[tokio::test]
async fn retention_prunes_old_api_calls() {
    let mut server = ServerBuilder::new()
        .env("CERTCTL_API_CALL_RETENTION", "30d")
        .start()
        .await;
    let admin = server.admin();
    assert_eq!(admin.get("teams").await.status, 200);
    // A graceful stop drains the API-call queue into the table.
    assert!(server.terminate().success());

    // Rows from before the retention window, written straight into the server's database.
    let db = Store::connect(&store::default_sqlite_url(server.data_dir.path()))
        .await
        .expect("database");
    let now = time::OffsetDateTime::now_utc();
    for (request_id, days) in [("req-old-1", 45), ("req-old-2", 31), ("req-kept", 29)] {
        let timestamp = certctl_core::timestamp::format(now - time::Duration::days(days));
        let call = ApiCall {
            request_id: request_id.into(),
            method: "GET".into(),
            path: "/api/v1/teams".into(),
            actor: "admin".into(),
            body_sha256: None,
            status: 200,
            latency_ms: 1,
            timestamp,
        };
        api_calls::append(&db, &call).await.expect("append");
    }
    db.close().await;

    // The loop's first tick runs at start.
    server.restart().await;
    let admin = server.admin();
    let total = async |request_id: &str| {
        admin
            .get(&format!("audit/api-calls?request_id={request_id}"))
            .await
            .body["total"]
            .as_i64()
            .unwrap_or(-1)
    };
    eventually("old API calls to be pruned", async || {
        match (total("req-old-1").await, total("req-old-2").await) {
            (0, 0) => Ok(()),
            seen => Err(format!("{seen:?}")),
        }
    })
    .await;
    assert_eq!(total("req-kept").await, 1);
    let recent = admin.get("audit/api-calls?path=/api/v1/teams").await;
    assert!(
        recent.body["total"].as_i64().unwrap_or_default() >= 2,
        "recent calls kept: {}",
        recent.body
    );
    assert!(
        server.logs().contains("pruned 2 API calls"),
        "{}",
        server.logs()
    );
}
