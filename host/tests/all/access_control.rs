//! Acceptance tests of access control (issue #12), against the real server:
//!
//! 1. the route walk: every operation of `/api/v1/openapi.json`, with no key, a revoked key
//!    and a key of each role, in five spellings of its path (plain, percent-encoded, `//`,
//!    dot segments, encoded dot segments) sent byte for byte over a raw connection, gets
//!    the answer its `x-certctl-role` promises; every 403 is audited;
//! 2. completeness: the served document and the route table agree operation by operation
//!    and role by role, and a path no route serves answers 401 without a key and 404 with
//!    one, in any spelling, never the dashboard;
//! 3. agent key confinement: only its own heartbeat, work, CSRs and job reports;
//! 4. the key lifecycle: create, use, rotate, revoke, expire, each decided on the very next
//!    request; agent sessions closed within 5 s of revocation, rotation or retirement; a
//!    retired agent stays out; key names cannot pass for agents, and the last working admin
//!    key stays;
//! 5. the credential routes (register, auth/check) are rate-limited per client IP.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::api_resources::{assert_error, created, quiet_server};
use crate::support::{ADMIN_KEY, Api, Resp, ServerBuilder, TestServer, eventually, openssl_ok};

/// The bootstrap token of every server here.
const TOKEN: &str = "access-control-bootstrap-token";

// ---------------------------------------------------------------------------------------
// A raw HTTP/1.1 client: the request target goes into the request line exactly as given
// (reqwest's `url` resolves dot segments, so it cannot send `/x/../y`).
// ---------------------------------------------------------------------------------------

/// A request as it goes on the wire.
#[derive(Debug, Clone, Default)]
struct RawRequest {
    method: String,
    /// Written into the request line unchanged.
    target: String,
    key: Option<String>,
    /// Sent with `Content-Type: application/json` when present.
    body: Option<Vec<u8>>,
    /// Sent as `X-Request-Id` (the API-call log is searchable by it).
    request_id: Option<String>,
}

impl RawRequest {
    fn new(method: &str, target: &str) -> Self {
        Self {
            method: method.to_owned(),
            target: target.to_owned(),
            ..Self::default()
        }
    }

    fn key(mut self, key: Option<&str>) -> Self {
        self.key = key.map(str::to_owned);
        self
    }

    fn json_body(mut self, body: &Value) -> Self {
        self.body = Some(body.to_string().into_bytes());
        self
    }

    /// The exact bytes sent.
    fn bytes(&self, host: SocketAddr) -> Vec<u8> {
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n",
            self.method, self.target
        );
        if let Some(k) = &self.key {
            head.push_str(&format!("Authorization: Bearer {k}\r\n"));
        }
        if let Some(id) = &self.request_id {
            head.push_str(&format!("X-Request-Id: {id}\r\n"));
        }
        if let Some(b) = &self.body {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        if let Some(b) = &self.body {
            out.extend_from_slice(b);
        }
        out
    }
}

/// An answer read off the wire.
#[derive(Debug)]
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn error_message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = find(rest, b"\r\n") {
        let size_line = std::str::from_utf8(&rest[..eol]).unwrap();
        let size = usize::from_str_radix(size_line.split(';').next().unwrap().trim(), 16)
            .unwrap_or_else(|e| panic!("chunk size {size_line:?}: {e}"));
        rest = &rest[eol + 2..];
        if size == 0 {
            break;
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
    out
}

fn parse_response(bytes: &[u8]) -> Raw {
    let end = find(bytes, b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(bytes)));
    let head = std::str::from_utf8(&bytes[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &bytes[end + 4..];
    let mut raw = Raw {
        status,
        headers,
        body: Vec::new(),
    };
    raw.body = if raw
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        dechunk(rest)
    } else if let Some(n) = raw
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        rest[..n.min(rest.len())].to_vec()
    } else {
        rest.to_vec()
    };
    raw
}

/// Sends `req` to `server` over a fresh connection, from the loopback address `from` when
/// given (each 127.0.0.0/8 address is its own client IP to the rate limiter).
async fn send_raw(server: SocketAddr, from: Option<Ipv4Addr>, req: &RawRequest) -> Raw {
    let socket = TcpSocket::new_v4().unwrap();
    if let Some(ip) = from {
        assert!(ip.is_loopback(), "tests stay on loopback");
        socket.bind(SocketAddr::new(IpAddr::V4(ip), 0)).unwrap();
    }
    let mut stream: TcpStream = socket.connect(server).await.unwrap();
    stream.write_all(&req.bytes(server)).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut buf))
        .await
        .unwrap_or_else(|_| panic!("no answer to {} {}", req.method, req.target))
        .unwrap();
    parse_response(&buf)
}

fn addr(server: &TestServer) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], server.port))
}

async fn raw(server: &TestServer, req: RawRequest) -> Raw {
    send_raw(addr(server), None, &req).await
}

/// What the raw client writes is what a peer reads: no spelling is normalised on the way.
async fn raw_client_sends_the_target_verbatim() {
    for target in [
        "/api/v1/x/../certificates",
        "/api/./v1//certificates",
        "/%61pi/v1/%2e%2E/v1/certificates",
    ] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at = listener.local_addr().unwrap();
        let peer = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            let mut chunk = [0u8; 1024];
            while find(&got, b"\r\n\r\n").is_none() {
                let n = s.read(&mut chunk).await.unwrap();
                assert!(n > 0, "peer closed early");
                got.extend_from_slice(&chunk[..n]);
            }
            s.write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8(got).unwrap()
        });
        let r = send_raw(at, None, &RawRequest::new("GET", target)).await;
        assert_eq!(r.status, 204);
        let seen = peer.await.unwrap();
        assert_eq!(
            seen.lines().next(),
            Some(format!("GET {target} HTTP/1.1").as_str()),
            "the request line went out as spelled"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Keys, agents and the role table
// ---------------------------------------------------------------------------------------

/// A key made by `POST /api-keys`: (id, secret).
async fn create_key(admin: &Api, name: &str, role: &str) -> (String, String) {
    create_key_with(admin, json!({"name": name, "role": role})).await
}

async fn create_key_with(admin: &Api, body: Value) -> (String, String) {
    let r = admin.post("api-keys", &body).await;
    assert_eq!(r.status, 201, "POST /api-keys {body}: {}", r.body);
    let secret = r.body["key"].as_str().expect("the secret, once").to_owned();
    assert!(secret.starts_with("cctl_"), "{secret}");
    let key = &r.body["api_key"];
    assert_eq!(key["name"], body["name"], "{key}");
    assert!(
        !key.to_string().contains(&secret),
        "the key record does not carry its secret: {key}"
    );
    (key["id"].as_str().unwrap().to_owned(), secret)
}

/// Registers an agent with the bootstrap token: (agent id, its key).
async fn register(server: &TestServer, name: &str) -> (String, String) {
    let r = server
        .with_key(TOKEN)
        .post("agents/register", &json!({"name": name}))
        .await;
    assert_eq!(r.status, 201, "register {name}: {}", r.body);
    (
        r.body["agent"]["id"].as_str().unwrap().to_owned(),
        r.body["api_key"].as_str().unwrap().to_owned(),
    )
}

/// The id of the (live) key of `agent`, from `GET /api-keys`.
async fn agent_key_id(admin: &Api, agent: &str) -> String {
    let r = admin.get("api-keys").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let keys: Vec<&Value> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["agent_id"] == json!(agent))
        .collect();
    assert_eq!(keys.len(), 1, "one live key for {agent}: {}", r.body);
    assert_eq!(keys[0]["role"], "agent");
    keys[0]["id"].as_str().unwrap().to_owned()
}

/// Every operation of the served OpenAPI document: (METHOD, path template, x-certctl-role).
async fn operations(server: &TestServer) -> Vec<(String, String, String)> {
    let doc = server.anonymous().get("openapi.json").await;
    assert_eq!(doc.status, 200, "{}", doc.body);
    let mut ops = Vec::new();
    for (path, item) in doc.body["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("operations") {
            let role = op["x-certctl-role"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no x-certctl-role"));
            ops.push((method.to_uppercase(), path.clone(), role.to_owned()));
        }
    }
    ops
}

/// Who is calling, for the role table.
#[derive(Debug, Clone)]
enum Who {
    /// No `Authorization` header.
    Nobody,
    /// A key that was revoked.
    Revoked,
    /// A live user key.
    User(&'static str),
    /// A live agent key of this agent.
    Agent(String),
}

/// What the role table promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// 401 `unauthorized` with `WWW-Authenticate: Bearer`.
    Unauthorized,
    /// 403 `forbidden` (and an `access_denied` audit event).
    Forbidden,
    /// Through to the handler: neither 401 nor 403, below 500.
    Admitted,
    /// A public route: never 403; never 401 unless it checks a credential itself.
    Public,
}

/// The decision `x-certctl-role` promises for `who` calling a route whose `{id}` is
/// `path_agent` (agent routes).
fn expect(role: &str, who: &Who, path_agent: Option<&str>) -> Expect {
    if role == "public" {
        return Expect::Public;
    }
    let admitted = match who {
        Who::Nobody | Who::Revoked => return Expect::Unauthorized,
        Who::User(have) => match role {
            "viewer" => ["viewer", "operator", "admin"].contains(have),
            "operator" => ["operator", "admin"].contains(have),
            "admin" | "agent" => *have == "admin",
            other => panic!("unknown role {other}"),
        },
        Who::Agent(own) => role == "agent" && path_agent == Some(own.as_str()),
    };
    if admitted {
        Expect::Admitted
    } else {
        Expect::Forbidden
    }
}

/// Public routes that take a credential in the request and answer 401 to a wrong one.
fn checks_a_credential(path: &str) -> bool {
    matches!(path, "/api/v1/agents/register" | "/api/v1/auth/check")
}

/// `template` with every `{param}` replaced: `{id}` of an agent route by `agent`, anything
/// else by an id that does not exist.
fn concrete(template: &str, agent: Option<&str>) -> String {
    template
        .split('/')
        .map(|seg| match (seg.starts_with('{'), agent) {
            (true, Some(a)) if seg == "{id}" => a.to_owned(),
            (true, _) => "zz-not-there".to_owned(),
            (false, _) => seg.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// `%XX` for the first ASCII letter of `seg` (hex in the given case).
fn encode_one_letter(seg: &str, upper: bool) -> String {
    match seg.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, c)) => {
            let hex = if upper {
                format!("%{:02X}", c as u32)
            } else {
                format!("%{:02x}", c as u32)
            };
            format!("{}{hex}{}", &seg[..i], &seg[i + c.len_utf8()..])
        }
        None => seg.to_owned(),
    }
}

/// The spellings of one path that must all reach the same decision: plain; a letter of
/// the first and of the last literal segment percent-encoded; every `/` doubled; `./` and
/// `zz/../` inserted; the same with `%2e` dots.
fn spellings(template: &str, path: &str) -> Vec<(&'static str, String)> {
    let literal: Vec<bool> = template
        .trim_start_matches('/')
        .split('/')
        .map(|s| !s.starts_with('{'))
        .collect();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    assert_eq!(segs.len(), literal.len(), "{template} vs {path}");
    let last = literal.iter().rposition(|l| *l).expect("a literal segment");

    let encoded: Vec<String> = segs
        .iter()
        .enumerate()
        .map(|(i, s)| match i {
            0 => encode_one_letter(s, false),
            i if i == last => encode_one_letter(s, true),
            _ => (*s).to_owned(),
        })
        .collect();
    let dotted = |here: &str, up: &str| -> String {
        let mut out: Vec<String> = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            if i == last {
                out.push("zz".into());
                out.push(up.into());
            }
            out.push((*s).to_owned());
            if i == 0 && last != 0 {
                out.push(here.into());
            }
        }
        if last == 0 {
            out.insert(0, here.into());
        }
        format!("/{}", out.join("/"))
    };
    vec![
        ("plain", path.to_owned()),
        ("percent", format!("/{}", encoded.join("/"))),
        ("slashes", format!("//{}", segs.join("//"))),
        ("dots", dotted(".", "..")),
        ("encoded dots", dotted("%2e", "%2E%2e")),
    ]
}

#[test]
fn spellings_of_a_path() {
    let s = spellings("/api/v1/certificates", "/api/v1/certificates");
    let got: Vec<&str> = s.iter().map(|(_, p)| p.as_str()).collect();
    assert_eq!(
        got,
        [
            "/api/v1/certificates",
            "/%61pi/v1/%63ertificates",
            "//api//v1//certificates",
            "/api/./v1/zz/../certificates",
            "/api/%2e/v1/zz/%2E%2e/certificates",
        ]
    );
    let s = spellings("/health", "/health");
    assert_eq!(s[1].1, "/%68ealth");
    assert_eq!(s[3].1, "/./zz/../health");
    let s = spellings("/api/v1/agents/{id}/work", "/api/v1/agents/ag-1/work");
    assert_eq!(s[1].1, "/%61pi/v1/agents/ag-1/%77ork");
    assert_eq!(s[3].1, "/api/./v1/agents/ag-1/zz/../work");
    assert_eq!(
        concrete("/api/v1/agents/{id}/jobs/{job_id}/status", Some("ag-1")),
        "/api/v1/agents/ag-1/jobs/zz-not-there/status"
    );
}

/// Whether a canonical path is what the server should have seen.
fn is_canonical(path: &str) -> bool {
    !path.contains("//")
        && !path.contains("/./")
        && !path.contains("/../")
        && !path.contains('%')
        && path.starts_with('/')
}

/// Every audit event with `action`, all pages.
async fn audit_all(admin: &Api, action: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for page in 1.. {
        let r = admin
            .get(&format!("audit?action={action}&per_page=500&page={page}"))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let data = r.body["data"].as_array().unwrap();
        out.extend(data.iter().cloned());
        if data.len() < 500 {
            break;
        }
    }
    out
}

async fn audit_total(admin: &Api, action: &str) -> i64 {
    let r = admin
        .get(&format!("audit?action={action}&per_page=1"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["total"].as_i64().expect("total")
}

// ---------------------------------------------------------------------------------------
// 1. The route walk
// ---------------------------------------------------------------------------------------

/// One request of the walk and what it must answer.
#[derive(Debug, Clone)]
struct Case {
    who: &'static str,
    method: String,
    template: String,
    spelling: &'static str,
    target: String,
    key: Option<String>,
    expect: Expect,
    request_id: String,
}

impl Case {
    fn ctx(&self) -> String {
        format!(
            "{} {} [{}] as {} ({}; template {})",
            self.method, self.target, self.spelling, self.who, self.request_id, self.template
        )
    }
}

/// Checks one answer against the role table; `Err` says what is wrong.
fn judge(case: &Case, r: &Raw) -> Result<(), String> {
    let ctx = case.ctx();
    let fail = |what: &str| Err(format!("{ctx}: {what}: {} {}", r.status, r.text()));
    let json_error = r.json()["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty());
    // A spelling that did not reach the route: the fallback's 404 or the dashboard.
    if r.status == 404 && r.error_message().starts_with("no route") {
        return fail("not routed");
    }
    if r.header("content-type")
        .is_some_and(|c| c.starts_with("text/html"))
    {
        return fail("answered by the dashboard");
    }
    if r.status == 405 {
        return fail("documented method not allowed");
    }
    match case.expect {
        Expect::Unauthorized => {
            if r.status != 401 || r.error_code() != "unauthorized" || !json_error {
                return fail("expected 401 unauthorized");
            }
            if r.header("www-authenticate") != Some("Bearer") {
                return fail("401 without WWW-Authenticate: Bearer");
            }
        }
        Expect::Forbidden => {
            if r.status != 403 || r.error_code() != "forbidden" || !json_error {
                return fail("expected 403 forbidden with the JSON error body");
            }
        }
        Expect::Admitted | Expect::Public => {
            let credential = case.expect == Expect::Public && checks_a_credential(&case.template);
            if r.status == 403 || (r.status == 401 && !credential) {
                return fail("refused although the role table admits this caller");
            }
            // The digest needs an email channel; without one it says so (as documented).
            let unconfigured = case.template.starts_with("/api/v1/digest/")
                && r.status == 503
                && r.error_code() == "service_unavailable";
            if r.status >= 500 && !unconfigured {
                return fail("server error");
            }
        }
    }
    Ok(())
}

/// The acceptance walk: every operation of the OpenAPI document × {no key, a revoked key,
/// admin, operator, viewer, agent (its own id and another agent's)} × five spellings of the
/// path, sent verbatim. Each answer is the role table's: 401 without valid credentials, 403
/// `forbidden` for a role the table does not admit, through to the handler (neither 401
/// nor 403, below 500) otherwise. Every 403 wrote one `access_denied` audit event naming
/// the canonical path, and the API-call log records the canonical path too.
#[tokio::test]
async fn every_operation_in_every_spelling_answers_per_the_role_table() {
    raw_client_sends_the_target_verbatim().await;
    let server = quiet_server()
        .env("CERTCTL_AGENT_BOOTSTRAP_TOKEN", TOKEN)
        .start()
        .await;
    let admin = server.admin();
    let (_, operator) = create_key(&admin, "walk-operator", "operator").await;
    let (_, viewer) = create_key(&admin, "walk-viewer", "viewer").await;
    let (revoked_id, revoked) = create_key(&admin, "walk-revoked-admin", "admin").await;
    assert_eq!(server.with_key(&revoked).get("api-keys").await.status, 200);
    let r = admin.delete(&format!("api-keys/{revoked_id}")).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let (agent, agent_key) = register(&server, "walk-agent").await;
    let (other_agent, _) = register(&server, "walk-other-agent").await;
    let denied_before = audit_total(&admin, "access_denied").await;
    assert_eq!(denied_before, 0);

    let ops = operations(&server).await;
    assert!(ops.len() >= 100, "{} operations", ops.len());
    let callers: Vec<(&'static str, Who, Option<String>)> = vec![
        ("nobody", Who::Nobody, None),
        ("revoked admin key", Who::Revoked, Some(revoked.clone())),
        ("admin", Who::User("admin"), Some(ADMIN_KEY.to_owned())),
        ("operator", Who::User("operator"), Some(operator.clone())),
        ("viewer", Who::User("viewer"), Some(viewer.clone())),
        ("agent", Who::Agent(agent.clone()), Some(agent_key.clone())),
    ];
    let mut cases = Vec::new();
    for (method, template, role) in &ops {
        for (who, whom, key) in &callers {
            // Agent routes: the agent names itself (and, below, another agent); everyone
            // else names the other agent, which exists. Nothing else exists.
            let mut ids = vec![if role == "agent" {
                Some(match whom {
                    Who::Agent(own) => own.clone(),
                    _ => other_agent.clone(),
                })
            } else {
                None
            }];
            if role == "agent" && matches!(whom, Who::Agent(_)) {
                ids.push(Some(other_agent.clone()));
            }
            for id in ids {
                let path = concrete(template, id.as_deref());
                let expect = expect(role, whom, id.as_deref());
                for (spelling, target) in spellings(template, &path) {
                    let n = cases.len();
                    cases.push(Case {
                        who,
                        method: method.clone(),
                        template: template.clone(),
                        spelling,
                        target,
                        key: key.clone(),
                        expect,
                        request_id: format!("walk-{n}"),
                    });
                }
            }
        }
    }

    let at = addr(&server);
    let started = Instant::now();
    let results: Vec<(Case, u16, Result<(), String>)> = futures_util::stream::iter(cases)
        .map(|case| async move {
            let body = matches!(case.method.as_str(), "POST" | "PUT").then(|| b"{}".to_vec());
            let req = RawRequest {
                method: case.method.clone(),
                target: case.target.clone(),
                key: case.key.clone(),
                body,
                request_id: Some(case.request_id.clone()),
            };
            let r = send_raw(at, None, &req).await;
            let verdict = judge(&case, &r);
            (case, r.status, verdict)
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let failures: Vec<&String> = results
        .iter()
        .filter_map(|(_, _, v)| v.as_ref().err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} answers break the role table, e.g.:\n{}",
        failures.len(),
        results.len(),
        failures
            .iter()
            .take(40)
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    eprintln!(
        "route walk: {} requests over {} operations in {:?}",
        results.len(),
        ops.len(),
        started.elapsed()
    );

    // A fresh client: the one from before the walk may hold a connection the server is
    // just closing for idleness (keep-alive 5 s).
    let admin = server.admin();

    // The walk is not vacuous: every caller saw each kind of answer its role can get.
    let mut seen: BTreeMap<(&str, u16), usize> = BTreeMap::new();
    let mut outcomes: BTreeMap<&str, BTreeSet<&'static str>> = BTreeMap::new();
    for (case, status, _) in &results {
        *seen.entry((case.who, *status)).or_default() += 1;
        let kind = match case.expect {
            Expect::Unauthorized => "401",
            Expect::Forbidden => "403",
            Expect::Admitted => "admitted",
            Expect::Public => "public",
        };
        outcomes.entry(case.who).or_default().insert(kind);
    }
    for (who, kinds) in [
        ("nobody", &["401", "public"][..]),
        ("revoked admin key", &["401", "public"]),
        ("admin", &["admitted", "public"]),
        ("operator", &["403", "admitted", "public"]),
        ("viewer", &["403", "admitted", "public"]),
        ("agent", &["403", "admitted", "public"]),
    ] {
        let got: Vec<&str> = outcomes[who].iter().copied().collect();
        assert_eq!(got, kinds, "{who}: {seen:?}");
    }
    let agent_admitted = results
        .iter()
        .filter(|(c, _, _)| c.who == "agent" && c.expect == Expect::Admitted)
        .count();
    assert_eq!(agent_admitted, 5 * 5, "five agent routes, five spellings");
    let success = results
        .iter()
        .filter(|(c, s, _)| c.expect == Expect::Admitted && (200..300).contains(s))
        .count();
    assert!(
        success > 100,
        "{success} admitted calls succeeded: {seen:?}"
    );

    // Every 403 wrote exactly one access_denied event, decided on the canonical path.
    let forbidden = results.iter().filter(|(_, s, _)| *s == 403).count();
    let events = audit_all(&admin, "access_denied").await;
    assert_eq!(
        events.len(),
        forbidden,
        "one access_denied audit event per 403"
    );
    let mut by_route: BTreeMap<String, usize> = BTreeMap::new();
    for e in &events {
        let path = e["details"]["path"].as_str().unwrap_or_default();
        assert!(is_canonical(path), "audited path {path:?}: {e}");
        assert!(
            ["walk-operator", "walk-viewer", &agent].contains(&e["actor"].as_str().unwrap()),
            "{e}"
        );
        assert!(
            e["details"]["reason"]
                .as_str()
                .is_some_and(|r| !r.is_empty()),
            "{e}"
        );
        *by_route
            .entry(format!(
                "{} {}",
                e["actor"],
                e["resource_id"].as_str().unwrap()
            ))
            .or_default() += 1;
    }
    // Each refusal of one caller on one route happened in every spelling (a multiple of 5).
    for (route, n) in &by_route {
        assert_eq!(n % 5, 0, "{route}: {n} events, not one per spelling");
    }
    let teams = by_route
        .get("\"walk-viewer\" POST /api/v1/teams")
        .copied()
        .unwrap_or_default();
    assert_eq!(teams, 5, "{by_route:?}");

    // The API-call log records the canonical path whatever the spelling (and who called).
    let certificates: Vec<&Case> = results
        .iter()
        .map(|(c, _, _)| c)
        .filter(|c| c.template == "/api/v1/certificates" && c.method == "GET")
        .filter(|c| matches!(c.who, "viewer" | "nobody"))
        .collect();
    assert_eq!(certificates.len(), 10);
    for case in certificates {
        let call = eventually(&format!("the API call {}", case.request_id), async || {
            let r = admin
                .get(&format!("audit/api-calls?request_id={}", case.request_id))
                .await;
            match r.body["data"].as_array().map(Vec::as_slice) {
                Some([one]) => Ok(one.clone()),
                _ => Err(r.body.to_string()),
            }
        })
        .await;
        assert_eq!(
            call["path"],
            "/api/v1/certificates",
            "{}: {call}",
            case.ctx()
        );
        assert_eq!(call["method"], "GET");
        let (actor, status) = match case.who {
            "viewer" => ("walk-viewer", 200),
            _ => ("anonymous", 401),
        };
        assert_eq!(call["actor"], actor, "{call}");
        assert_eq!(call["status"], status, "{call}");
    }
}

// ---------------------------------------------------------------------------------------
// 2. Completeness
// ---------------------------------------------------------------------------------------

/// The role policy, written independently of the route table: `admin` for keys,
/// plugins, the organisation (teams, owners) and the fleet (agents) and the admin views;
/// `operator` for every other write; `viewer` for reads (a PKCS#12 export without key is a
/// read); `agent` for an agent's own routes; public only for the probes, PKI endpoints and
/// the four pre-authentication routes.
fn policy(method: &str, path: &str) -> &'static str {
    let Some(rest) = path.strip_prefix("/api/v1/") else {
        return "public";
    };
    if matches!(
        rest,
        "agents/register" | "auth/check" | "auth/info" | "openapi.json"
    ) {
        return "public";
    }
    if rest.starts_with("agents/{id}/") && !rest.ends_with("/retire") {
        return "agent";
    }
    let first = rest.split('/').next().unwrap_or_default();
    let read = method == "GET" || rest.ends_with("/export/pkcs12");
    match first {
        "api-keys" | "admin" => "admin",
        "plugins" | "teams" | "owners" | "agents" if !read => "admin",
        _ if read => "viewer",
        _ => "operator",
    }
}

/// The served document and the route table the server registers (`api::routes()`, the only
/// place routes are registered) agree operation by operation, each with a declared role and
/// the matching security requirement; a path no route serves answers 401 without a key and
/// 404 with one, in any spelling or letter case, never the dashboard and never 200; a
/// method a route does not serve needs a key too (then 405).
#[tokio::test]
async fn the_role_table_is_complete_and_unknown_paths_need_a_key() {
    let server = quiet_server()
        .env("CERTCTL_AGENT_BOOTSTRAP_TOKEN", TOKEN)
        .start()
        .await;
    let admin = server.admin();
    let (_, viewer) = create_key(&admin, "complete-viewer", "viewer").await;
    let (_, agent_key) = register(&server, "complete-agent").await;

    let table: BTreeMap<(String, String), String> = certctl_host::api::routes()
        .endpoints()
        .iter()
        .map(|e| {
            (
                (
                    e.method.as_str().to_owned(),
                    certctl_host::api::openapi::openapi_path(&e.path),
                ),
                e.access.as_str().to_owned(),
            )
        })
        .collect();
    let doc = server.anonymous().get("openapi.json").await.body;
    let mut served = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let ctx = format!("{method} {path}");
            let role = op["x-certctl-role"].as_str().unwrap_or_default();
            assert!(
                ["public", "viewer", "operator", "admin", "agent"].contains(&role),
                "{ctx}: x-certctl-role {role:?}"
            );
            if role == "public" {
                assert_eq!(op["security"], json!([]), "{ctx}");
            } else {
                assert_eq!(op["security"], json!([{"bearer": []}]), "{ctx}");
                for code in ["401", "403"] {
                    assert!(op["responses"][code].is_object(), "{ctx}: documents {code}");
                }
            }
            served.insert((method.to_uppercase(), path.clone()), role.to_owned());
        }
    }
    let missing: Vec<_> = table.keys().filter(|k| !served.contains_key(*k)).collect();
    let extra: Vec<_> = served.keys().filter(|k| !table.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "registered, not documented: {missing:?}"
    );
    assert!(extra.is_empty(), "documented, not registered: {extra:?}");
    assert_eq!(served, table, "the served roles are the declared roles");
    // And the declared roles are the policy (so the walk checks the server against it).
    let off_policy: Vec<String> = table
        .iter()
        .filter(|((m, p), role)| policy(m, p) != role.as_str())
        .map(|((m, p), role)| format!("{m} {p}: {role}, policy {}", policy(m, p)))
        .collect();
    assert!(off_policy.is_empty(), "{off_policy:#?}");
    // Everything under /api/ except the declared public routes needs a key.
    let public: BTreeSet<&str> = served
        .iter()
        .filter(|(_, r)| *r == "public")
        .map(|((_, p), _)| p.as_str())
        .collect();
    assert_eq!(
        public
            .iter()
            .filter(|p| p.starts_with("/api/"))
            .copied()
            .collect::<Vec<_>>(),
        [
            "/api/v1/agents/register",
            "/api/v1/auth/check",
            "/api/v1/auth/info",
            "/api/v1/openapi.json"
        ]
    );

    let absolute = format!("http://127.0.0.1:{}/api/v1/not-a-route", server.port);
    let unknown = [
        "/api/v1/not-a-route",
        "/API/V1/certificates",
        "/Api/v1/certificates",
        "/api/V1/certificates",
        "/api/v1/Certificates",
        "/%41PI/v1/certificates",
        "/api%2Fv1/certificates",
        "/api%2fv1%2fcertificates",
        "/api/v1/certificates%2Fzz-not-there",
        "/api/v2/certificates",
        "/api",
        "/api/",
        "/api/v1",
        "/api/v1/",
        "/api/v1/certificates/",
        "/api/v1/certificates/zz-not-there/nothing",
        "/api/v1/teams/..",
        "/api/v1/%2e%2e/v2/teams",
        "//api//v1//not-a-route",
        "/api/./v1/zz/../not-a-route",
        absolute.as_str(),
    ];
    let keys = [
        ("nobody", None),
        ("admin", Some(ADMIN_KEY)),
        ("viewer", Some(viewer.as_str())),
        ("agent", Some(agent_key.as_str())),
    ];
    for target in unknown {
        for method in ["GET", "POST", "DELETE"] {
            for (who, key) in keys {
                let mut req = RawRequest::new(method, target).key(key);
                if method == "POST" {
                    req = req.json_body(&json!({"name": "should-not-exist"}));
                }
                let r = raw(&server, req).await;
                let ctx = format!("{method} {target} as {who}: {}", r.text());
                let (status, code) = if key.is_none() {
                    (401, "unauthorized")
                } else {
                    (404, "not_found")
                };
                assert_eq!(r.status, status, "{ctx}");
                assert_eq!(r.error_code(), code, "{ctx}");
                assert!(
                    r.header("content-type")
                        .is_some_and(|c| c.starts_with("application/json")),
                    "{ctx}: {:?}",
                    r.headers
                );
            }
        }
    }
    // A method a documented route does not serve: a key first, then 405.
    for (method, path) in [
        ("PATCH", "/api/v1/certificates"),
        ("DELETE", "/api/v1/audit"),
        ("PUT", "/%61pi/v1/api-keys"),
        ("HEAD", "/api/v1/teams"),
    ] {
        let r = raw(&server, RawRequest::new(method, path)).await;
        assert_eq!(r.status, 401, "{method} {path}: {}", r.text());
        let r = raw(&server, RawRequest::new(method, path).key(Some(ADMIN_KEY))).await;
        assert_eq!(r.status, 405, "{method} {path}: {}", r.text());
    }
    // None of the POSTs above created anything.
    let teams = admin.get("teams").await;
    assert_eq!(teams.body["total"], 0, "{}", teams.body);
}

// ---------------------------------------------------------------------------------------
// 3. Agent key confinement
// ---------------------------------------------------------------------------------------

/// An openssl-made P-256 CSR for `cn` (SAN DNS:`cn`).
fn p256_csr(dir: &Path, cn: &str) -> String {
    let subject = format!("/CN={cn}");
    let san = format!("subjectAltName=DNS:{cn}");
    openssl_ok(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "csr.key",
            "-out",
            "csr.pem",
            "-subj",
            &subject,
            "-addext",
            &san,
        ],
    );
    std::fs::read_to_string(dir.join("csr.pem")).unwrap()
}

async fn get_ok(api: &Api, path: &str) -> Value {
    let r = api.get(path).await;
    assert_eq!(r.status, 200, "GET {path}: {}", r.body);
    r.body
}

/// Waits for the one job of `certificate` of `job_type` to be `status` (and assigned to
/// `agent`).
async fn wait_agent_job(
    api: &Api,
    certificate: &str,
    job_type: &str,
    status: &str,
    agent: &str,
) -> String {
    eventually(
        &format!("a {status} {job_type} job of {certificate} for {agent}"),
        async || {
            let page = get_ok(
                api,
                &format!("jobs?certificate_id={certificate}&type={job_type}"),
            )
            .await;
            let jobs = page["data"].as_array().unwrap();
            match jobs.as_slice() {
                [j] if j["status"] == status && j["agent_id"] == json!(agent) => {
                    Ok(j["id"].as_str().unwrap().to_owned())
                }
                _ => Err(page.to_string()),
            }
        },
    )
    .await
}

/// Counts the 403s a test provokes, so the audit can be held to one event each.
#[derive(Default)]
struct Refusals(usize);

impl Refusals {
    fn forbidden(&mut self, r: &Resp, ctx: &str) {
        assert_error(r, 403, "forbidden", ctx);
        self.0 += 1;
    }
}

/// An agent key may do only its own agent's work: its heartbeat and work list (200), a CSR
/// for a job assigned to it (202), status reports on its own deployment job (200). Another
/// agent's heartbeat, work, CSR and job status are 403, as is a CSR or report for a job of
/// another agent through its own route; so is every lifecycle write (issuers, targets,
/// certificates, jobs, approving a job) and reading the audit log, and none of them changes
/// anything. `POST /jobs` (or `PUT`) naming an agent is an admin's: 403 for an operator,
/// 201 for the admin. Every 403 wrote one `access_denied` audit event.
#[tokio::test]
async fn agent_keys_do_only_their_own_agents_work() {
    let server = ServerBuilder::new()
        .env("CERTCTL_AGENT_BOOTSTRAP_TOKEN", TOKEN)
        .start()
        .await;
    let admin = server.admin();
    let dir = tempfile::tempdir().unwrap();
    let (_, operator_key) = create_key(&admin, "confine-operator", "operator").await;
    let operator = server.with_key(&operator_key);
    let (a, a_key) = register(&server, "confine-a").await;
    let (b, b_key) = register(&server, "confine-b").await;
    let agent_a = server.with_key(&a_key);
    let agent_b = server.with_key(&b_key);
    let mut refused = Refusals::default();

    // One certificate per agent, each deployed to a target of that agent (agent keygen).
    let mut certs = Vec::new();
    for (agent, name) in [(&a, "a"), (&b, "b")] {
        let target = created(
            &admin,
            "targets",
            json!({"name": format!("nginx-{name}"), "type": "nginx", "agent_id": agent}),
        )
        .await;
        let cert = created(
            &admin,
            "certificates",
            json!({"name": format!("cert-{name}"), "common_name": format!("{name}.confine.example"), "issuer_id": "iss-local"}),
        )
        .await;
        let r = admin
            .post(
                &format!("certificates/{cert}/targets"),
                &json!({"target_id": target}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        certs.push((target, cert));
    }
    let (target_a, cert_a) = certs[0].clone();
    let (_target_b, cert_b) = certs[1].clone();
    let job_a = wait_agent_job(&admin, &cert_a, "Issuance", "AwaitingCSR", &a).await;
    let job_b = wait_agent_job(&admin, &cert_b, "Issuance", "AwaitingCSR", &b).await;

    // Its own heartbeat and work: 200, and the work is its own job only.
    let r = agent_a
        .post(&format!("agents/{a}/heartbeat"), &json!({"version": "1.0"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let work = get_ok(&agent_a, &format!("agents/{a}/work")).await;
    let ids: Vec<&str> = work["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["job_id"].as_str())
        .collect();
    assert_eq!(ids, [job_a.as_str()], "{work}");
    // Another agent's: 403.
    let r = agent_a
        .post(
            &format!("agents/{b}/heartbeat"),
            &json!({"hostname": "evil"}),
        )
        .await;
    refused.forbidden(&r, "A heartbeats for B");
    refused.forbidden(
        &agent_a.get(&format!("agents/{b}/work")).await,
        "A reads B's work",
    );
    assert!(
        get_ok(&admin, &format!("agents/{b}")).await["hostname"].is_null(),
        "B's record untouched"
    );

    // CSRs: B's job, through B's route or its own → 403; the job keeps waiting.
    let csr_b = p256_csr(dir.path(), "b.confine.example");
    for route in [&b, &a] {
        let r = agent_a
            .post(
                &format!("agents/{route}/csr"),
                &json!({"job_id": job_b, "csr_pem": csr_b}),
            )
            .await;
        refused.forbidden(
            &r,
            &format!("A submits a CSR for B's job via agents/{route}"),
        );
    }
    assert_eq!(
        get_ok(&admin, &format!("jobs/{job_b}")).await["status"],
        "AwaitingCSR"
    );
    // Its own job: 202, issued, and a deployment job for its target follows.
    let csr_a = p256_csr(dir.path(), "a.confine.example");
    let r = agent_a
        .post(
            &format!("agents/{a}/csr"),
            &json!({"job_id": job_a, "csr_pem": csr_a}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let deploy_a = wait_agent_job(&admin, &cert_a, "Deployment", "Pending", &a).await;

    // Job status: B may not report A's job, not even through its own route; A may not use
    // B's route; A's own reports go through.
    let report = |status: &str| json!({"status": status, "message": "from the test"});
    let r = agent_b
        .post(
            &format!("agents/{b}/jobs/{deploy_a}/status"),
            &report("Completed"),
        )
        .await;
    refused.forbidden(&r, "B reports A's job via its own route");
    let r = agent_b
        .post(
            &format!("agents/{a}/jobs/{deploy_a}/status"),
            &report("Completed"),
        )
        .await;
    refused.forbidden(&r, "B reports A's job via A's route");
    let r = agent_a
        .post(
            &format!("agents/{b}/jobs/{deploy_a}/status"),
            &report("Completed"),
        )
        .await;
    refused.forbidden(&r, "A reports through B's route");
    assert_eq!(
        get_ok(&admin, &format!("jobs/{deploy_a}")).await["status"],
        "Pending"
    );
    let r = agent_a
        .post(
            &format!("agents/{a}/jobs/{deploy_a}/status"),
            &report("Running"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "Running");
    let r = agent_a
        .post(
            &format!("agents/{a}/jobs/{deploy_a}/status"),
            &report("Completed"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "Completed");

    // Lifecycle writes and the audit log are not an agent's, whatever the body says.
    let snapshot = async || {
        let mut out = Vec::new();
        for path in [
            "issuers/iss-local".to_owned(),
            format!("targets/{target_a}"),
            format!("certificates/{cert_b}"),
            format!("jobs/{job_b}"),
        ] {
            out.push(get_ok(&admin, &path).await);
        }
        for path in ["issuers", "targets", "certificates", "jobs"] {
            out.push(get_ok(&admin, path).await["total"].clone());
        }
        out
    };
    let before = snapshot().await;
    let issuer = json!({"name": "rogue", "type": "local"});
    let target = json!({"name": "rogue", "type": "nginx", "agent_id": a});
    let certificate =
        json!({"name": "rogue", "common_name": "b.confine.example", "issuer_id": "iss-local"});
    let job = json!({"type": "Issuance", "certificate_id": cert_b, "agent_id": a});
    let writes: Vec<(&str, String, Option<Value>)> = vec![
        ("POST", "issuers".into(), Some(issuer)),
        (
            "PUT",
            "issuers/iss-local".into(),
            Some(json!({"name": "renamed"})),
        ),
        ("DELETE", "issuers/iss-local".into(), None),
        ("POST", "targets".into(), Some(target)),
        (
            "PUT",
            format!("targets/{target_a}"),
            Some(json!({"agent_id": b})),
        ),
        ("DELETE", format!("targets/{target_a}"), None),
        ("POST", "certificates".into(), Some(certificate)),
        (
            "PUT",
            format!("certificates/{cert_b}"),
            Some(json!({"name": "mine"})),
        ),
        ("DELETE", format!("certificates/{cert_b}"), None),
        ("POST", "jobs".into(), Some(job.clone())),
        ("PUT", format!("jobs/{job_b}"), Some(json!({"agent_id": a}))),
        ("DELETE", format!("jobs/{job_b}"), None),
        ("POST", format!("jobs/{job_b}/approve"), Some(json!({}))),
        (
            "POST",
            format!("certificates/{cert_b}/renew"),
            Some(json!({})),
        ),
        (
            "POST",
            "api-keys".into(),
            Some(json!({"name": "escalate", "role": "admin"})),
        ),
        ("POST", format!("agents/{a}/retire"), Some(json!({}))),
    ];
    for (method, path, body) in &writes {
        let r = match (*method, body) {
            ("POST", Some(b)) => agent_a.post(path, b).await,
            ("PUT", Some(b)) => agent_a.put(path, b).await,
            _ => agent_a.delete(path).await,
        };
        refused.forbidden(&r, &format!("agent key: {method} {path}"));
    }
    for path in [
        "audit",
        "audit/api-calls",
        "api-keys",
        "agents",
        "certificates",
        "issuers",
    ] {
        refused.forbidden(&agent_a.get(path).await, &format!("agent key: GET {path}"));
    }
    assert_eq!(
        snapshot().await,
        before,
        "the refused calls changed nothing"
    );

    // Naming an agent on a job is an admin's decision.
    refused.forbidden(
        &operator.post("jobs", &job).await,
        "operator: POST /jobs naming an agent",
    );
    // A job's agent is set when it is created and never changed afterwards, by anyone.
    for api in [&operator, &admin] {
        let r = api
            .put(&format!("jobs/{job_b}"), &json!({"agent_id": a}))
            .await;
        assert_error(&r, 400, "validation_error", "PUT /jobs changing the agent");
    }
    assert_eq!(
        snapshot().await,
        before,
        "the operator's refused calls changed nothing"
    );
    let r = admin.post("jobs", &job).await;
    assert_eq!(
        r.status, 201,
        "admin: POST /jobs naming an agent: {}",
        r.body
    );
    assert_eq!(r.body["agent_id"], json!(a));

    // One access_denied event per 403, naming who was refused where and why.
    let events = audit_all(&admin, "access_denied").await;
    assert_eq!(events.len(), refused.0, "{events:#?}");
    for e in &events {
        let actor = e["actor"].as_str().unwrap();
        assert!(
            [a.as_str(), b.as_str(), "confine-operator"].contains(&actor),
            "{e}"
        );
        let role = if actor == "confine-operator" {
            "operator"
        } else {
            "agent"
        };
        assert_eq!(e["details"]["role"], role, "{e}");
        assert_eq!(e["resource_type"], "route", "{e}");
        assert!(
            e["details"]["path"].as_str().is_some_and(is_canonical),
            "{e}"
        );
    }
    let by = |actor: &str, route: &str| {
        events
            .iter()
            .filter(|e| e["actor"] == json!(actor) && e["resource_id"] == json!(route))
            .count()
    };
    assert_eq!(by(&a, "POST /api/v1/agents/{id}/csr"), 2);
    assert_eq!(by(&a, "GET /api/v1/audit"), 1);
    assert_eq!(by(&a, "POST /api/v1/jobs/{id}/approve"), 1);
    assert_eq!(by(&b, "POST /api/v1/agents/{id}/jobs/{job_id}/status"), 2);
    assert_eq!(by("confine-operator", "POST /api/v1/jobs"), 1);
}

// ---------------------------------------------------------------------------------------
// 4. Key lifecycle
// ---------------------------------------------------------------------------------------

fn assert_unauthorized(r: &Resp, ctx: &str) -> String {
    assert_error(r, 401, "unauthorized", ctx);
    r.body["error"]["message"].as_str().unwrap().to_owned()
}

/// create → use → rotate → revoke, each taking effect on the very next request; the list
/// shows names, roles and times but never a secret; the last working admin key cannot be
/// revoked; a key past its `expires_at` is refused (401) from then on.
#[tokio::test]
async fn key_lifecycle_takes_effect_on_the_next_request() {
    let server = quiet_server().start().await;
    let admin = server.admin();

    // Create (shown once) and use.
    let (id, first) = create_key(&admin, "life-operator", "operator").await;
    let key = server.with_key(&first);
    let r = key.get("certificates").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let who = get_ok(&key, "auth/check").await;
    assert_eq!(who["role"], "operator", "{who}");
    assert_eq!(who["actor"], "life-operator", "{who}");
    let r = key
        .post("teams", &json!({"name": "not-an-operators"}))
        .await;
    assert_error(&r, 403, "forbidden", "an operator key manages no teams");
    let listed = admin.get("api-keys").await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let text = listed.body.to_string();
    assert!(!text.contains(&first), "the list shows no secret");
    assert!(!text.contains(ADMIN_KEY), "the list shows no secret");
    assert!(!text.contains("hash"), "the list shows no hash: {text}");
    let mine = &listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == json!(id))
        .cloned()
        .expect("listed");
    assert_eq!(mine["role"], "operator");
    assert_eq!(mine["created_by"], "admin");
    assert!(
        mine["created_at"].is_string() && mine["last_used_at"].is_string(),
        "{mine}"
    );
    assert!(
        mine["revoked_at"].is_null() && mine["expires_at"].is_null(),
        "{mine}"
    );

    // Rotate: the old secret is dead on the very next request, the new one works.
    let r = admin
        .post(&format!("api-keys/{id}/rotate"), &json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let second = r.body["key"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    assert!(r.body["api_key"]["rotated_at"].is_string(), "{}", r.body);
    assert_unauthorized(&key.get("certificates").await, "the rotated-away secret");
    let key = server.with_key(&second);
    assert_eq!(key.get("certificates").await.status, 200);
    assert_eq!(get_ok(&key, "auth/check").await["actor"], "life-operator");

    // Revoke: 401 on the next request; revoking again is a no-op; no rotation back to life.
    let r = admin.delete(&format!("api-keys/{id}")).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let msg = assert_unauthorized(&key.get("certificates").await, "the revoked key");
    assert!(msg.contains("revoked"), "{msg}");
    assert_unauthorized(
        &key.get("auth/check").await,
        "the revoked key on auth/check",
    );
    assert_eq!(admin.delete(&format!("api-keys/{id}")).await.status, 204);
    let r = admin
        .post(&format!("api-keys/{id}/rotate"), &json!({}))
        .await;
    assert_error(&r, 409, "conflict", "rotating a revoked key");
    assert_unauthorized(&key.get("certificates").await, "still revoked");
    let r = get_ok(&admin, &format!("api-keys/{id}")).await;
    assert!(r["revoked_at"].is_string(), "{r}");
    let live = get_ok(&admin, "api-keys").await;
    assert!(
        !live.to_string().contains(&id),
        "revoked keys leave the default list: {live}"
    );
    let all = get_ok(&admin, "api-keys?include_revoked=true").await;
    assert!(all.to_string().contains(&id), "{all}");

    // The last working admin key cannot be revoked; with a second admin it can.
    let seeded = live["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "admin")
        .expect("the seeded admin key")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = admin.delete(&format!("api-keys/{seeded}")).await;
    assert_error(&r, 409, "conflict", "revoking the last admin key");
    assert_eq!(admin.get("api-keys").await.status, 200, "still an admin");
    let (_, second_admin) = create_key(&admin, "life-admin-2", "admin").await;
    let r = server
        .with_key(&second_admin)
        .delete(&format!("api-keys/{seeded}"))
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_unauthorized(&admin.get("api-keys").await, "the revoked seeded admin key");
    let admin = server.with_key(&second_admin);

    // Expiry: valid until expires_at, refused from then on.
    let past = (OffsetDateTime::now_utc() - time::Duration::seconds(5))
        .format(&Rfc3339)
        .unwrap();
    let r = admin
        .post(
            "api-keys",
            &json!({"name": "life-late", "role": "viewer", "expires_at": past}),
        )
        .await;
    assert_error(&r, 400, "validation_error", "expires_at in the past");
    let soon = OffsetDateTime::now_utc() + time::Duration::seconds(3);
    let (_, expiring) = create_key_with(
        &admin,
        json!({"name": "life-expiring", "role": "viewer", "expires_at": soon.format(&Rfc3339).unwrap()}),
    )
    .await;
    let key = server.with_key(&expiring);
    let r = key.get("certificates").await;
    assert_eq!(r.status, 200, "before expires_at: {}", r.body);
    let msg = eventually("the key to expire", async || {
        let r = key.get("certificates").await;
        match r.status {
            200 => Err("still valid".to_owned()),
            401 => Ok(r.body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned()),
            other => panic!("{other}: {}", r.body),
        }
    })
    .await;
    assert!(
        OffsetDateTime::now_utc() >= soon,
        "refused before expires_at"
    );
    assert!(msg.contains("expired"), "{msg}");
    assert_unauthorized(
        &key.get("auth/check").await,
        "the expired key on auth/check",
    );
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// Opens `agent`'s session with `key`: the socket, or the handshake's refusal status.
async fn open_session(server: &TestServer, agent: &str, key: &str) -> Result<Ws, u16> {
    let url = format!(
        "ws://127.0.0.1:{}/api/v1/agents/{agent}/session",
        server.port
    );
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {key}")).unwrap(),
    );
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("session handshake: {e}"),
    }
}

/// Reads until the server's first nudge: the session is established and registered.
async fn await_nudge(ws: &mut Ws) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(msg) = ws.next().await {
            if let Message::Text(t) = msg.unwrap() {
                assert!(t.contains("\"work\""), "{t}");
                return;
            }
        }
        panic!("the session ended before the first nudge");
    })
    .await
    .expect("a nudge on a fresh session");
}

/// Waits at most `limit` for the server to close `ws`; the close code and reason.
async fn server_closes(ws: &mut Ws, limit: Duration) -> (CloseCode, String) {
    let started = Instant::now();
    let frame = tokio::time::timeout(limit, async {
        while let Some(msg) = ws.next().await {
            match msg {
                Ok(Message::Close(frame)) => return frame,
                Ok(Message::Ping(p)) => {
                    let _ = ws.send(Message::Pong(p)).await;
                }
                Ok(_) => {}
                Err(e) => panic!("session error instead of a close frame: {e}"),
            }
        }
        panic!("the session ended without a close frame");
    })
    .await
    .unwrap_or_else(|_| panic!("the session was still open after {limit:?}"));
    let frame = frame.expect("a close frame with a code");
    eprintln!("session closed after {:?}: {frame:?}", started.elapsed());
    (frame.code, frame.reason.to_string())
}

/// An agent's open session is closed by the server (1008) within 5 s of revoking its key
/// (`DELETE /api-keys/{id}`, the id found in `GET /api-keys`), of rotating it, of
/// `POST /agents/{id}/retire` and of `DELETE /agents/{id}`; so is a session an admin opened
/// with a key that is then revoked or rotated; a dead key cannot open one.
#[tokio::test]
async fn agent_sessions_close_within_five_seconds_of_revocation_or_retirement() {
    let server = quiet_server()
        .env("CERTCTL_AGENT_BOOTSTRAP_TOKEN", TOKEN)
        .start()
        .await;
    let admin = server.admin();
    let limit = Duration::from_secs(5);

    // Revocation.
    let (a, a_key) = register(&server, "session-revoked").await;
    let mut ws = open_session(&server, &a, &a_key).await.expect("session");
    await_nudge(&mut ws).await;
    let key_id = agent_key_id(&admin, &a).await;
    let r = admin.delete(&format!("api-keys/{key_id}")).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let (code, reason) = server_closes(&mut ws, limit).await;
    assert_eq!(code, CloseCode::Policy, "{reason}");
    assert!(reason.contains("revoked"), "{reason}");
    assert_eq!(open_session(&server, &a, &a_key).await.err(), Some(401));
    assert_unauthorized(
        &server
            .with_key(&a_key)
            .get(&format!("agents/{a}/work"))
            .await,
        "revoked agent key",
    );

    // Rotation: the session opened with the old secret closes; the new secret opens one.
    let (r_id, r_key) = register(&server, "session-rotated").await;
    let mut ws = open_session(&server, &r_id, &r_key).await.expect("session");
    await_nudge(&mut ws).await;
    let key_id = agent_key_id(&admin, &r_id).await;
    let r = admin
        .post(&format!("api-keys/{key_id}/rotate"), &json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (code, _) = server_closes(&mut ws, limit).await;
    assert_eq!(code, CloseCode::Policy);
    assert_eq!(open_session(&server, &r_id, &r_key).await.err(), Some(401));
    let new_key = r.body["key"].as_str().unwrap();
    let mut ws = open_session(&server, &r_id, new_key)
        .await
        .expect("the new secret opens a session");
    await_nudge(&mut ws).await;

    // A session an admin opened for an agent (admins may act for any agent) closes when
    // that admin key is revoked or rotated.
    let (c, _) = register(&server, "session-admin-opened").await;
    for how in ["revoke", "rotate"] {
        let (key_id, key) = create_key(&admin, &format!("session-admin-{how}"), "admin").await;
        let mut ws = open_session(&server, &c, &key)
            .await
            .expect("an admin opens a session");
        await_nudge(&mut ws).await;
        let r = match how {
            "revoke" => admin.delete(&format!("api-keys/{key_id}")).await,
            _ => {
                admin
                    .post(&format!("api-keys/{key_id}/rotate"), &json!({}))
                    .await
            }
        };
        assert!(matches!(r.status, 200 | 204), "{how}: {}", r.body);
        let (code, reason) = server_closes(&mut ws, limit).await;
        assert_eq!(code, CloseCode::Policy, "{how}: {reason}");
        assert_eq!(
            open_session(&server, &c, &key).await.err(),
            Some(401),
            "{how}"
        );
    }

    // Retirement, both ways; the record stays.
    for how in ["retire", "delete"] {
        let (id, key) = register(&server, &format!("session-{how}")).await;
        let mut ws = open_session(&server, &id, &key).await.expect("session");
        await_nudge(&mut ws).await;
        let r = match how {
            "retire" => admin.post(&format!("agents/{id}/retire"), &json!({})).await,
            _ => admin.delete(&format!("agents/{id}")).await,
        };
        assert!(matches!(r.status, 200 | 204), "{how}: {}", r.body);
        let (code, reason) = server_closes(&mut ws, limit).await;
        assert_eq!(code, CloseCode::Policy, "{how}: {reason}");
        assert_eq!(
            open_session(&server, &id, &key).await.err(),
            Some(401),
            "{how}"
        );
        let record = get_ok(&admin, &format!("agents/{id}")).await;
        assert_eq!(record["status"], "Retired", "{how}: {record}");
    }
}

/// A retired agent's key gets 401 on every agent route, its session and auth/check; the
/// agent can neither re-register with its old key (with or without a bootstrap token
/// configured) nor under its old id with the bootstrap token; its record stays, retired.
#[tokio::test]
async fn a_retired_agent_stays_out() {
    let mut server = quiet_server()
        .env("CERTCTL_AGENT_BOOTSTRAP_TOKEN", TOKEN)
        .start()
        .await;
    let admin = server.admin();
    let r = server
        .with_key(TOKEN)
        .post(
            "agents/register",
            &json!({"name": "retiree", "id": "ag-retiree"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = "ag-retiree";
    let old = r.body["api_key"].as_str().unwrap().to_owned();
    let agent = server.with_key(&old);
    assert_eq!(agent.get(&format!("agents/{id}/work")).await.status, 200);
    let r = admin.delete(&format!("agents/{id}")).await;
    assert_eq!(r.status, 204, "{}", r.body);
    // Retiring is idempotent and the record stays.
    assert_eq!(admin.delete(&format!("agents/{id}")).await.status, 204);
    let record = get_ok(&admin, &format!("agents/{id}")).await;
    assert_eq!(record["status"], "Retired", "{record}");
    assert!(record["retired_at"].is_string(), "{record}");
    let keys = get_ok(&admin, "api-keys?include_revoked=true").await;
    let own: Vec<&Value> = keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["agent_id"] == json!(id))
        .collect();
    assert_eq!(own.len(), 1, "{keys}");
    assert!(own[0]["revoked_at"].is_string(), "{keys}");
    let retired = audit_all(&admin, "agent_retired").await;
    assert_eq!(retired.len(), 1, "{retired:?}");

    // The old key, everywhere.
    let body = json!({"status": "Running"});
    for r in [
        agent
            .post(&format!("agents/{id}/heartbeat"), &json!({}))
            .await,
        agent.get(&format!("agents/{id}/work")).await,
        agent
            .post(
                &format!("agents/{id}/csr"),
                &json!({"job_id": "job-x", "csr_pem": "x"}),
            )
            .await,
        agent
            .post(&format!("agents/{id}/jobs/job-x/status"), &body)
            .await,
        agent.get("auth/check").await,
        agent.get("certificates").await,
    ] {
        assert_unauthorized(&r, "the retired agent's key");
    }
    assert_eq!(open_session(&server, id, &old).await.err(), Some(401));
    // A heartbeat sent for it by an admin does not bring it back.
    let _ = admin
        .post(&format!("agents/{id}/heartbeat"), &json!({}))
        .await;
    assert_eq!(
        get_ok(&admin, &format!("agents/{id}")).await["status"],
        "Retired"
    );

    // Re-registering: with the old key as bearer, or the same id with the token.
    let r = agent
        .post("agents/register", &json!({"name": "retiree"}))
        .await;
    assert_unauthorized(&r, "re-register with the old key");
    let r = server
        .with_key(TOKEN)
        .post("agents/register", &json!({"name": "retiree", "id": id}))
        .await;
    assert_error(&r, 409, "conflict", "re-register the retired id");
    assert_unauthorized(&agent.get(&format!("agents/{id}/work")).await, "still out");

    // Without a bootstrap token, registration takes an admin key; the old key is no admin's.
    server.unset_env("CERTCTL_AGENT_BOOTSTRAP_TOKEN");
    server.restart().await;
    let r = agent
        .post("agents/register", &json!({"name": "retiree"}))
        .await;
    assert_unauthorized(&r, "re-register with the old key, no bootstrap token");
    let r = admin
        .post("agents/register", &json!({"name": "retiree", "id": id}))
        .await;
    assert_error(&r, 409, "conflict", "the admin re-registers the retired id");
    assert_eq!(
        get_ok(&admin, &format!("agents/{id}")).await["status"],
        "Retired"
    );
    assert_unauthorized(
        &agent.get(&format!("agents/{id}/work")).await,
        "out after a restart",
    );
    // A key that is not an admin's is refused (403), and like every 403, audited.
    let (_, operator) = create_key(&admin, "retiree-operator", "operator").await;
    let before = audit_total(&admin, "access_denied").await;
    let r = server
        .with_key(&operator)
        .post("agents/register", &json!({"name": "sneaky"}))
        .await;
    assert_error(&r, 403, "forbidden", "an operator registers an agent");
    let events = audit_all(&admin, "access_denied").await;
    assert_eq!(
        events.len() as i64,
        before + 1,
        "the refused registration is audited"
    );
    assert!(
        events.iter().any(|e| e["actor"] == "retiree-operator"
            && e["resource_id"] == "POST /api/v1/agents/register"),
        "{events:?}"
    );
    let agents = get_ok(&admin, "agents?name=sneaky").await;
    assert_eq!(agents["total"], 0, "{agents}");
}

// ---------------------------------------------------------------------------------------
// 5. Rate limits on the credential routes
// ---------------------------------------------------------------------------------------

fn retry_after(r: &Raw, ctx: &str) -> u64 {
    assert_eq!(r.status, 429, "{ctx}: {}", r.text());
    assert_eq!(r.error_code(), "rate_limited", "{ctx}");
    r.header("retry-after")
        .and_then(|v| v.parse().ok())
        .filter(|s| *s >= 1)
        .unwrap_or_else(|| panic!("{ctx}: Retry-After in whole seconds: {:?}", r.headers))
}

/// With `CERTCTL_RATE_LIMIT_AUTH_BURST=5`, agent registration (with a wrong token) and
/// `auth/check` answer 429 with Retry-After from the sixth attempt of one client IP; the
/// right token does not skip the queue; other IPs and the admin key's own bucket are
/// unaffected. Each 127.0.0.x address is a client IP of its own.
#[tokio::test]
async fn register_and_auth_check_are_rate_limited_per_ip() {
    let server = quiet_server()
        .env("CERTCTL_AGENT_BOOTSTRAP_TOKEN", TOKEN)
        .env("CERTCTL_RATE_LIMIT_ENABLED", "true")
        .env("CERTCTL_RATE_LIMIT_AUTH_BURST", "5")
        .env("CERTCTL_RATE_LIMIT_AUTH_RPS", "0.05")
        .start()
        .await;
    let at = addr(&server);
    let register = |token: &str| {
        RawRequest::new("POST", "/api/v1/agents/register")
            .key(Some(token))
            .json_body(&json!({"name": "guess"}))
    };
    let check = |key: Option<&str>| RawRequest::new("GET", "/api/v1/auth/check").key(key);
    let admin_call = || RawRequest::new("GET", "/api/v1/certificates").key(Some(ADMIN_KEY));

    // Registration guesses from one IP.
    let guesser = Ipv4Addr::new(127, 0, 0, 2);
    for i in 0..5 {
        let r = send_raw(at, Some(guesser), &register("wrong-token")).await;
        assert_eq!(r.status, 401, "guess {i}: {}", r.text());
    }
    let wait = retry_after(
        &send_raw(at, Some(guesser), &register("wrong-token")).await,
        "the sixth guess",
    );
    assert!(wait <= 20, "one token per 20 s: Retry-After {wait}");
    retry_after(
        &send_raw(at, Some(guesser), &register(TOKEN)).await,
        "the right token, same IP",
    );
    // The admin key's own bucket, from the same IP.
    for i in 0..10 {
        let r = send_raw(at, Some(guesser), &admin_call()).await;
        assert_eq!(
            r.status,
            200,
            "admin call {i} from the limited IP: {}",
            r.text()
        );
    }
    // Another IP registers.
    let r = send_raw(at, Some(Ipv4Addr::new(127, 0, 0, 4)), &register(TOKEN)).await;
    assert_eq!(r.status, 201, "{}", r.text());

    // auth/check guesses from another IP.
    let checker = Ipv4Addr::new(127, 0, 0, 3);
    for i in 0..5 {
        let r = send_raw(at, Some(checker), &check(Some("guessed-key"))).await;
        assert_eq!(r.status, 401, "check {i}: {}", r.text());
    }
    retry_after(
        &send_raw(at, Some(checker), &check(Some("guessed-key"))).await,
        "the sixth check",
    );
    retry_after(
        &send_raw(at, Some(checker), &check(None)).await,
        "no key, same IP",
    );
    for i in 0..10 {
        let r = send_raw(at, Some(checker), &admin_call()).await;
        assert_eq!(
            r.status,
            200,
            "admin call {i} from the limited IP: {}",
            r.text()
        );
    }
    let r = send_raw(
        at,
        Some(Ipv4Addr::new(127, 0, 0, 5)),
        &check(Some(ADMIN_KEY)),
    )
    .await;
    assert_eq!(r.status, 200, "another IP checks its key: {}", r.text());
    assert_eq!(r.json()["role"], "admin");
}

/// Key names are the actors of audit events and API-call records, so a user key may not
/// take a name that stands for someone else (an agent id, `system`, `anonymous`) — nor
/// block an agent's registration by holding its id; and an expired admin key is no
/// administrator: the last admin key that still works cannot be revoked.
#[tokio::test]
async fn key_names_are_not_borrowed_and_the_last_working_admin_stays() {
    let server = quiet_server()
        .env("CERTCTL_AGENT_BOOTSTRAP_TOKEN", TOKEN)
        .start()
        .await;
    let admin = server.admin();
    for name in ["ag-future", "system", "anonymous", "admin"] {
        let r = admin
            .post("api-keys", &json!({"name": name, "role": "viewer"}))
            .await;
        let status = if name == "admin" { 409 } else { 400 };
        assert_eq!(r.status, status, "{name}: {}", r.body);
    }
    let r = server
        .with_key(TOKEN)
        .post(
            "agents/register",
            &json!({"name": "future", "id": "ag-future"}),
        )
        .await;
    assert_eq!(r.status, 201, "the id is the agent's to take: {}", r.body);
    let key = r.body["api_key"].as_str().unwrap();
    assert_eq!(
        server
            .with_key(key)
            .get("agents/ag-future/work")
            .await
            .status,
        200
    );

    // An admin key that has expired does not count as a second admin.
    let soon = OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let (short_id, expiring) = create_key_with(
        &admin,
        json!({"name": "short-admin", "role": "admin", "expires_at": soon.format(&Rfc3339).unwrap()}),
    )
    .await;
    let short = server.with_key(&expiring);
    assert_eq!(short.get("api-keys").await.status, 200);
    eventually("the short admin key to expire", async || {
        match short.get("api-keys").await.status {
            401 => Ok(()),
            s => Err(s.to_string()),
        }
    })
    .await;
    let keys = get_ok(&admin, "api-keys").await;
    let seeded = keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "admin")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = admin.delete(&format!("api-keys/{seeded}")).await;
    assert_error(&r, 409, "conflict", "revoking the last working admin key");
    assert_eq!(
        admin.get("api-keys").await.status,
        200,
        "the admin can still administer"
    );
    // The expired one itself may go.
    let r = admin.delete(&format!("api-keys/{short_id}")).await;
    assert_eq!(r.status, 204, "{}", r.body);
}
