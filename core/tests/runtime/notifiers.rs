//! The first-party notifier plugins (webhook, Slack, Teams, PagerDuty, OpsGenie,
//! e-mail) against local receivers: an HTTP server on 127.0.0.1 that records each
//! request and checks the exact payload each service documents, and a real SMTP
//! server (Python aiosmtpd) for e-mail.
//!
//! aiosmtpd comes from the interpreter named by `CERTCTL_AIOSMTPD_PYTHON` (default
//! `target/pyenv/bin/python`, which `scripts/test` creates). When it is missing the
//! e-mail tests fail if `CERTCTL_REQUIRE_AIOSMTPD` is set (as `scripts/test` does)
//! and are skipped with a loud message otherwise.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use certctl_core::runtime::{
    Capability, ConnectorErrorKind, Grants, Notification, PluginGrant, PluginSet, RuntimeConfig,
    RuntimeError,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::{install, load, plugin_dir, runtime, runtime_with};

/// One request as the receiver saw it.
#[derive(Debug)]
struct Captured {
    method: String,
    path: String,
    /// Lower-case names, in order.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Captured {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

/// An HTTP/1.1 receiver on 127.0.0.1 answering each request with the next of
/// `answers` (then 200), and handing every request to the test.
struct Receiver {
    port: u16,
    requests: mpsc::Receiver<Captured>,
}

impl Receiver {
    fn start(answers: &[(u16, &str)]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let mut answers: Vec<(u16, String)> =
            answers.iter().map(|(s, b)| (*s, b.to_string())).collect();
        answers.reverse();
        let (tx, requests) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (status, body) = answers.pop().unwrap_or((200, "ok".into()));
                match serve(stream, status, &body) {
                    Some(request) => {
                        if tx.send(request).is_err() {
                            return;
                        }
                    }
                    None => continue,
                }
            }
        });
        Self { port, requests }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn authority(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn next(&self) -> Captured {
        self.requests
            .recv_timeout(Duration::from_secs(10))
            .expect("the receiver got a request")
    }
}

fn serve(stream: TcpStream, status: u16, answer: &str) -> Option<Captured> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if let Some(length) = find("content-length") {
        body.resize(length.parse().ok()?, 0);
        reader.read_exact(&mut body).ok()?;
    } else if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
    let mut stream = stream;
    let reason = match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        _ => "Status",
    };
    write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{answer}",
        answer.len()
    )
    .ok()?;
    Some(Captured {
        method,
        path,
        headers,
        body,
    })
}

/// Plugin `id` installed and granted `hosts`.
fn notifier_set(id: &str, hosts: &[String]) -> (tempfile::TempDir, PluginSet) {
    let plugins = plugin_dir(&[id]);
    let grants = Grants::default().with_plugin(
        id,
        PluginGrant {
            hosts: hosts.to_vec(),
            ..PluginGrant::default()
        },
    );
    let set = load(&runtime(), plugins.path(), &grants);
    (plugins, set)
}

fn details() -> Value {
    json!({
        "certificate_id": "mc-api",
        "certificate_name": "api",
        "common_name": "api.example.com",
        "serial": "0a1b2c",
        "expires_at": "2026-12-03T00:00:00Z",
        "days_remaining": 7,
        "threshold_days": 7,
        "status": "Active",
    })
}

fn notification(config: Value) -> Notification {
    Notification {
        id: "notif-42".into(),
        event: "ExpirationWarning".into(),
        subject: "Certificate api.example.com expires in 7 days".into(),
        body: "The certificate mc-api (api.example.com) expires on 2026-12-03.".into(),
        recipient: "ops@example.com".into(),
        details_json: details().to_string(),
        config_json: config.to_string(),
    }
}

/// HMAC-SHA256 written out (RFC 2104), independent of the plugin's `hmac` crate.
fn hmac_sha256(key: &[u8], message: &[u8]) -> String {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    let outer = Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize();
    hex::encode(outer)
}

fn connector_kind(err: &RuntimeError) -> ConnectorErrorKind {
    match err {
        RuntimeError::Connector { kind, .. } => *kind,
        other => panic!("expected a connector error, got {other:?}"),
    }
}

#[tokio::test]
async fn webhook_posts_the_documented_json_signed_over_the_exact_bytes() {
    let receiver = Receiver::start(&[]);
    let (_dir, set) = notifier_set("webhook", &[receiver.authority()]);
    let webhook = set.notifier("webhook").expect("webhook");
    let secret = "whsec-test-secret";
    webhook
        .notify(notification(json!({
            "url": receiver.url("/hooks/certctl?source=test"),
            "secret": secret,
            "headers": {"Authorization": "Bearer abc"},
        })))
        .await
        .expect("delivered");
    let request = receiver.next();
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/hooks/certctl?source=test");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("authorization"), Some("Bearer abc"));
    assert_eq!(request.header("x-certctl-event"), Some("ExpirationWarning"));
    assert_eq!(request.header("x-certctl-delivery"), Some("notif-42"));
    let expected = format!("sha256={}", hmac_sha256(secret.as_bytes(), &request.body));
    assert_eq!(
        request.header("x-certctl-signature"),
        Some(expected.as_str())
    );

    let mut body = request.json();
    let sent_at = body["sent_at"].as_str().expect("sent_at").to_string();
    assert!(
        time::OffsetDateTime::parse(&sent_at, &time::format_description::well_known::Rfc3339)
            .is_ok(),
        "{sent_at}"
    );
    body.as_object_mut().expect("object").remove("sent_at");
    assert_eq!(
        body,
        json!({
            "id": "notif-42",
            "event": "ExpirationWarning",
            "subject": "Certificate api.example.com expires in 7 days",
            "message": "The certificate mc-api (api.example.com) expires on 2026-12-03.",
            "recipient": "ops@example.com",
            "details": details(),
        })
    );

    // Without a secret: the same payload, unsigned; a tampered body would not verify.
    webhook
        .notify(notification(json!({ "url": receiver.url("/plain") })))
        .await
        .expect("delivered");
    let request = receiver.next();
    assert_eq!(request.header("x-certctl-signature"), None);
    assert_eq!(request.json()["id"], "notif-42");
    assert_ne!(
        hmac_sha256(secret.as_bytes(), &request.body),
        hmac_sha256(b"another secret", &request.body)
    );
}

#[tokio::test]
async fn receiver_errors_map_to_retryable_or_rejected() {
    let receiver = Receiver::start(&[
        (500, "database is down"),
        (429, "slow down"),
        (400, "bad payload"),
    ]);
    let (_dir, set) = notifier_set("webhook", &[receiver.authority()]);
    let webhook = set.notifier("webhook").expect("webhook");
    let config = json!({ "url": receiver.url("/hook") });

    let err = webhook
        .notify(notification(config.clone()))
        .await
        .unwrap_err();
    assert_eq!(connector_kind(&err), ConnectorErrorKind::Unavailable);
    assert!(err.is_retryable());
    assert!(
        err.to_string()
            .contains("webhook receiver answered HTTP 500: database is down"),
        "{err}"
    );
    let err = webhook
        .notify(notification(config.clone()))
        .await
        .unwrap_err();
    assert_eq!(connector_kind(&err), ConnectorErrorKind::Unavailable);
    let err = webhook.notify(notification(config)).await.unwrap_err();
    assert_eq!(connector_kind(&err), ConnectorErrorKind::Rejected);
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("HTTP 400: bad payload"), "{err}");
}

#[tokio::test]
async fn a_receiver_that_is_not_granted_is_denied() {
    let receiver = Receiver::start(&[]);
    let granted_elsewhere = format!("127.0.0.1:{}", receiver.port.wrapping_add(1));
    let (_dir, set) = notifier_set("slack", &[granted_elsewhere]);
    let err = set
        .notifier("slack")
        .expect("slack")
        .notify(notification(
            json!({ "webhook_url": receiver.url("/services/T/B/X") }),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RuntimeError::Denied { capability: Capability::Host(host), .. }
            if *host == receiver.authority()),
        "{err:?}"
    );
    assert!(receiver.requests.try_recv().is_err(), "nothing was sent");
}

#[tokio::test]
async fn slack_posts_an_incoming_webhook_message() {
    let receiver = Receiver::start(&[]);
    let (_dir, set) = notifier_set("slack", &[receiver.authority()]);
    let mut n = notification(json!({
        "webhook_url": receiver.url("/services/T000/B000/XXXX"),
        "channel": "#certificates",
        "username": "certctl",
        "icon_emoji": ":lock:",
    }));
    n.body = "Renew <now> & check".into();
    set.notifier("slack")
        .expect("slack")
        .notify(n)
        .await
        .expect("delivered");
    let request = receiver.next();
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/services/T000/B000/XXXX");
    assert_eq!(request.header("content-type"), Some("application/json"));
    // https://api.slack.com/messaging/webhooks: text (mrkdwn, &<> escaped) and the
    // legacy overrides.
    assert_eq!(
        request.json(),
        json!({
            "text": "*Certificate api.example.com expires in 7 days*\nRenew &lt;now&gt; &amp; check",
            "channel": "#certificates",
            "username": "certctl",
            "icon_emoji": ":lock:",
        })
    );
}

#[tokio::test]
async fn teams_posts_a_message_card() {
    let receiver = Receiver::start(&[(200, "1")]);
    let (_dir, set) = notifier_set("teams", &[receiver.authority()]);
    set.notifier("teams")
        .expect("teams")
        .notify(notification(
            json!({ "webhook_url": receiver.url("/webhookb2/abc/IncomingWebhook/def") }),
        ))
        .await
        .expect("delivered");
    let request = receiver.next();
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/webhookb2/abc/IncomingWebhook/def");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.json(),
        json!({
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "summary": "Certificate api.example.com expires in 7 days",
            "themeColor": "FFA500",
            "title": "Certificate api.example.com expires in 7 days",
            "text": "The certificate mc-api (api.example.com) expires on 2026-12-03.",
            "sections": [{"facts": [
                {"name": "Certificate", "value": "api"},
                {"name": "Certificate ID", "value": "mc-api"},
                {"name": "Common name", "value": "api.example.com"},
                {"name": "Serial", "value": "0a1b2c"},
                {"name": "Expires", "value": "2026-12-03T00:00:00Z"},
                {"name": "Days remaining", "value": "7"},
                {"name": "Status", "value": "Active"},
            ]}],
        })
    );
}

#[tokio::test]
async fn pagerduty_triggers_an_events_v2_alert_deduplicated_by_id() {
    let receiver = Receiver::start(&[(
        202,
        r#"{"status":"success","message":"Event processed","dedup_key":"notif-42"}"#,
    )]);
    let (_dir, set) = notifier_set("pagerduty", &[receiver.authority()]);
    let mut n = notification(json!({
        "routing_key": "R0UT1NGKEY",
        "severity": "critical",
        "events_url": receiver.url("/v2/enqueue"),
    }));
    n.subject = "x".repeat(1500);
    set.notifier("pagerduty")
        .expect("pagerduty")
        .notify(n)
        .await
        .expect("delivered");
    let request = receiver.next();
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v2/enqueue");
    assert_eq!(request.header("content-type"), Some("application/json"));
    let body = request.json();
    let summary = body["payload"]["summary"].as_str().expect("summary");
    assert_eq!(summary.chars().count(), 1024, "PagerDuty's summary limit");
    let mut custom = details();
    custom["event"] = json!("ExpirationWarning");
    custom["message"] = json!("The certificate mc-api (api.example.com) expires on 2026-12-03.");
    custom["recipient"] = json!("ops@example.com");
    assert_eq!(
        body,
        json!({
            "routing_key": "R0UT1NGKEY",
            "event_action": "trigger",
            "dedup_key": "notif-42",
            "payload": {
                "summary": summary,
                "source": "certctl",
                "severity": "critical",
                "custom_details": custom,
            },
        })
    );
}

#[tokio::test]
async fn opsgenie_creates_an_alert_with_genie_key_auth() {
    let receiver = Receiver::start(&[(
        202,
        r#"{"result":"Request will be processed","took":0.1,"requestId":"r-1"}"#,
    )]);
    let (_dir, set) = notifier_set("opsgenie", &[receiver.authority()]);
    let mut n = notification(json!({
        "api_key": "eb243592-faa2-4ba2-a551q-1afdf565c889",
        "api_url": receiver.url("/v2/alerts"),
    }));
    n.subject = "s".repeat(200);
    set.notifier("opsgenie")
        .expect("opsgenie")
        .notify(n)
        .await
        .expect("delivered");
    let request = receiver.next();
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v2/alerts");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.header("authorization"),
        Some("GenieKey eb243592-faa2-4ba2-a551q-1afdf565c889")
    );
    let body = request.json();
    let message = body["message"].as_str().expect("message");
    assert_eq!(message.chars().count(), 130, "OpsGenie's message limit");
    assert_eq!(
        body,
        json!({
            "message": message,
            "alias": "notif-42",
            "description": "The certificate mc-api (api.example.com) expires on 2026-12-03.",
            "priority": "P3",
            "source": "certctl",
            "details": {
                "certificate_id": "mc-api",
                "certificate_name": "api",
                "common_name": "api.example.com",
                "serial": "0a1b2c",
                "expires_at": "2026-12-03T00:00:00Z",
                "days_remaining": "7",
                "threshold_days": "7",
                "status": "Active",
                "event": "ExpirationWarning",
                "recipient": "ops@example.com",
            },
        })
    );
}

#[tokio::test]
async fn bad_configurations_are_refused_naming_the_field() {
    let ids = [
        "webhook",
        "slack",
        "teams",
        "pagerduty",
        "opsgenie",
        "email",
    ];
    let plugins = plugin_dir(&ids);
    let set = load(&runtime(), plugins.path(), &Grants::default());
    let cases: &[(&str, Value, &str)] = &[
        ("webhook", json!({}), "missing field `url`"),
        ("webhook", json!({"url": "ftp://x"}), "url: `ftp://x`"),
        (
            "webhook",
            json!({"url": "https://x", "secret": ""}),
            "secret must not be empty",
        ),
        (
            "webhook",
            json!({"url": "https://x", "headers": {"Content-Type": "text/plain"}}),
            "headers: `Content-Type`",
        ),
        (
            "webhook",
            json!({"url": "https://x", "headers": {"X-A": "1\r\nX-B: 2"}}),
            "headers.X-A",
        ),
        ("slack", json!({"webhook_url": "x"}), "webhook_url"),
        (
            "slack",
            json!({"webhook_url": "https://hooks.slack.com/s", "icon_emoji": "lock"}),
            "icon_emoji",
        ),
        ("teams", json!({"url": "https://x"}), "unknown field `url`"),
        (
            "pagerduty",
            json!({"routing_key": "k", "severity": "fatal"}),
            "severity: unknown variant `fatal`",
        ),
        ("pagerduty", json!({"routing_key": " "}), "routing_key"),
        (
            "opsgenie",
            json!({"api_key": "k", "priority": "P9"}),
            "priority: unknown variant `P9`",
        ),
        (
            "opsgenie",
            json!({"api_key": "k", "api_url": "mailto:x"}),
            "api_url",
        ),
        (
            "email",
            json!({"host": "smtp.example.com"}),
            "missing field `from`",
        ),
        (
            "email",
            json!({"host": "smtp.example.com", "from": "nobody"}),
            "from: `nobody`",
        ),
        (
            "email",
            json!({"host": "smtp.example.com", "from": "a@b", "username": "u"}),
            "password is required",
        ),
        (
            "email",
            json!({"host": "smtp.example.com", "from": "a@b", "port": 70000}),
            "port: invalid value",
        ),
    ];
    for (id, config, expected) in cases {
        let err = set
            .notifier(id)
            .expect("notifier")
            .validate_config(config.to_string())
            .await
            .unwrap_err();
        assert_eq!(
            connector_kind(&err),
            ConnectorErrorKind::InvalidConfig,
            "{id} {config}"
        );
        assert!(err.to_string().contains(expected), "{id} {config}: {err}");
    }
    let good: &[(&str, Value)] = &[
        (
            "webhook",
            json!({"url": "https://hooks.example.com/x", "secret": "s"}),
        ),
        (
            "slack",
            json!({"webhook_url": "https://hooks.slack.com/services/T/B/X"}),
        ),
        (
            "teams",
            json!({"webhook_url": "https://example.webhook.office.com/x"}),
        ),
        ("pagerduty", json!({"routing_key": "R0UT1NGKEY"})),
        ("opsgenie", json!({"api_key": "k", "priority": "P1"})),
        (
            "email",
            json!({"host": "smtp.example.com", "from": "Certctl <certctl@example.com>"}),
        ),
    ];
    for (id, config) in good {
        set.notifier(id)
            .expect("notifier")
            .validate_config(config.to_string())
            .await
            .unwrap_or_else(|e| panic!("{id} {config}: {e}"));
    }
}

// ---------------------------------------------------------------------------
// E-mail against aiosmtpd.

/// The aiosmtpd script: a Controller on 127.0.0.1:<port> that accepts AUTH
/// (user `certctl`, password `s3cret`, also without TLS) and writes each message,
/// parsed by Python's `email` package, as JSON into <dir>. Given `<cert> <key>` it
/// offers STARTTLS and requires it before AUTH and mail.
const SMTP_SERVER: &str = r#"
import email, json, os, sys, time
from email import policy
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port, out = int(sys.argv[1]), sys.argv[2]

def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"certctl" \
        and auth_data.password == b"s3cret"
    if not ok:
        return AuthResult(success=False, handled=False)
    return AuthResult(success=True, auth_data=auth_data.login.decode())

class Capture:
    count = 0
    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=policy.default)
        text = msg.get_body(preferencelist=("plain",))
        html = msg.get_body(preferencelist=("html",))
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "auth_login": session.auth_data if session.authenticated else None,
            "tls": session.ssl is not None,
            "subject": str(msg["subject"]),
            "from": str(msg["from"]),
            "to": str(msg["to"]),
            "has_date": msg["date"] is not None and msg["date"].datetime is not None,
            "message_id": str(msg["message-id"]),
            "content_type": msg.get_content_type(),
            "text": text.get_content() if text is not None else None,
            "html": html.get_content() if html is not None and html.get_content_type() == "text/html" else None,
        }
        Capture.count += 1
        path = os.path.join(out, "%03d.json" % Capture.count)
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(path + ".tmp", path)
        return "250 Message accepted for delivery"

options = {"authenticator": authenticator, "auth_require_tls": False}
if len(sys.argv) > 3:
    # With a certificate: STARTTLS is offered and required before AUTH or mail.
    import ssl
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(sys.argv[3], sys.argv[4])
    options.update(tls_context=context, require_starttls=True, auth_require_tls=True)
controller = Controller(Capture(), hostname="127.0.0.1", port=port, **options)
controller.start()
print("ready", flush=True)
while True:
    time.sleep(3600)
"#;

/// A running aiosmtpd, stopped on drop.
struct SmtpServer {
    child: Child,
    port: u16,
    out: tempfile::TempDir,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SmtpServer {
    /// Starts aiosmtpd, or returns `None` (after saying so loudly) when it is not
    /// installed and `CERTCTL_REQUIRE_AIOSMTPD` is unset.
    fn start() -> Option<Self> {
        Self::start_with(&[])
    }

    /// [`SmtpServer::start`] with extra script arguments (`<cert> <key>`: offer
    /// STARTTLS with that certificate).
    fn start_with(extra: &[&Path]) -> Option<Self> {
        let python = std::env::var_os("CERTCTL_AIOSMTPD_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/pyenv/bin/python")
            });
        let available = Command::new(&python)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !available {
            let message = format!(
                "aiosmtpd is not available through {} (set CERTCTL_AIOSMTPD_PYTHON, or run \
                 `python3 -m venv target/pyenv && target/pyenv/bin/pip install aiosmtpd`; \
                 scripts/test does this)",
                python.display()
            );
            if std::env::var_os("CERTCTL_REQUIRE_AIOSMTPD").is_some() {
                panic!("{message}");
            }
            eprintln!("\n!!!!! SKIPPING the e-mail notifier test: {message} !!!!!\n");
            return None;
        }
        let out = tempfile::tempdir().expect("tempdir");
        let script = out.path().join("smtp_server.py");
        std::fs::write(&script, SMTP_SERVER).expect("write script");
        let messages = out.path().join("messages");
        std::fs::create_dir(&messages).expect("mkdir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut child = Command::new(&python)
            .arg(&script)
            .arg(port.to_string())
            .arg(&messages)
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start aiosmtpd");
        let mut ready = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout)
            .read_line(&mut ready)
            .expect("read readiness");
        assert_eq!(ready.trim(), "ready", "aiosmtpd did not start");
        Some(Self { child, port, out })
    }

    fn authority(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The `n`-th received message (1-based), waiting for it.
    fn message(&self, n: usize) -> Value {
        self.message_within(n, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("message {n} did not arrive"))
    }

    /// The `n`-th received message if it arrives within `wait`.
    fn message_within(&self, n: usize, wait: Duration) -> Option<Value> {
        let path = self
            .out
            .path()
            .join("messages")
            .join(format!("{n:03}.json"));
        let start = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(&path) {
                return Some(serde_json::from_str(&text).expect("message JSON"));
            }
            if start.elapsed() >= wait {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[tokio::test]
async fn email_arrives_at_a_real_smtp_server() {
    let Some(server) = SmtpServer::start() else {
        return;
    };
    let (_dir, set) = notifier_set("email", &[server.authority()]);
    let email = set.notifier("email").expect("email");
    let config = json!({
        "host": "127.0.0.1",
        "port": server.port,
        "starttls": false,
        "from": "Certctl <certctl@example.com>",
    });

    // Plain text, two recipients, a line starting with a dot, a non-ASCII subject.
    let mut n = notification(config.clone());
    n.recipient = "ops@example.com, Sec Team <security@example.com>".into();
    n.subject = "Zertifikat läuft ab: api.example.com".into();
    n.body = "Line one\n.hidden? no: dot-stuffed\nLast line".into();
    email.notify(n).await.expect("sent");
    let m = server.message(1);
    assert_eq!(m["mail_from"], "certctl@example.com");
    assert_eq!(
        m["rcpt_tos"],
        json!(["ops@example.com", "security@example.com"])
    );
    assert_eq!(m["subject"], "Zertifikat läuft ab: api.example.com");
    assert_eq!(m["from"], "Certctl <certctl@example.com>");
    assert_eq!(m["to"], "ops@example.com, security@example.com");
    assert_eq!(m["has_date"], true);
    assert!(
        m["message_id"]
            .as_str()
            .is_some_and(|id| id.starts_with('<') && id.ends_with("@example.com>")),
        "{m}"
    );
    assert_eq!(m["content_type"], "text/plain");
    assert_eq!(
        m["text"].as_str().map(|t| t.replace("\r\n", "\n")),
        Some("Line one\n.hidden? no: dot-stuffed\nLast line\n".to_string())
    );
    assert_eq!(m["html"], Value::Null);

    // HTML (the digest): flagged in details; with AUTH over loopback.
    let mut n = notification(json!({
        "host": "127.0.0.1",
        "port": server.port,
        "starttls": false,
        "username": "certctl",
        "password": "s3cret",
        "from": "certctl@example.com",
    }));
    n.event = "Digest".into();
    n.subject = "certctl digest".into();
    n.body = "<html><body><h1>Digest</h1><table><tr><td>api</td><td>7 days</td></tr></table>\
              </body></html>"
        .into();
    n.details_json = json!({"html": true, "text": "Digest\napi: 7 days"}).to_string();
    email.notify(n).await.expect("sent");
    let m = server.message(2);
    assert_eq!(m["auth_login"], "certctl");
    assert_eq!(m["subject"], "certctl digest");
    assert_eq!(m["rcpt_tos"], json!(["ops@example.com"]));
    assert_eq!(m["content_type"], "multipart/alternative");
    assert!(
        m["html"]
            .as_str()
            .is_some_and(|h| h.contains("<h1>Digest</h1>")),
        "{m}"
    );
    assert_eq!(
        m["text"]
            .as_str()
            .map(|t| t.replace("\r\n", "\n").trim_end().to_string()),
        Some("Digest\napi: 7 days".to_string())
    );

    // HTML by configuration, no text supplied: the plugin renders one.
    let mut n = notification(json!({
        "host": "127.0.0.1",
        "port": server.port,
        "starttls": false,
        "from": "certctl@example.com",
        "html": true,
    }));
    n.body = "<p>Renew <b>api</b> &amp; deploy</p><style>p {}</style>".into();
    email.notify(n).await.expect("sent");
    let m = server.message(3);
    assert_eq!(m["content_type"], "multipart/alternative");
    assert_eq!(
        m["text"].as_str().map(|t| t.trim_end().to_string()),
        Some("Renew api & deploy".to_string())
    );

    // Wrong password: the server's 535 is `rejected`.
    let err = email
        .notify(notification(json!({
            "host": "127.0.0.1",
            "port": server.port,
            "starttls": false,
            "username": "certctl",
            "password": "wrong",
            "from": "certctl@example.com",
        })))
        .await
        .unwrap_err();
    assert_eq!(connector_kind(&err), ConnectorErrorKind::Rejected, "{err}");
    assert!(err.to_string().contains("535"), "{err}");

    // STARTTLS required but not offered: `unsupported`, nothing sent in clear.
    let err = email
        .notify(notification(json!({
            "host": "127.0.0.1",
            "port": server.port,
            "from": "certctl@example.com",
        })))
        .await
        .unwrap_err();
    assert_eq!(
        connector_kind(&err),
        ConnectorErrorKind::Unsupported,
        "{err}"
    );
    assert!(err.to_string().contains("STARTTLS"), "{err}");
}

#[tokio::test]
async fn email_goes_only_to_granted_servers_of_plugins_that_request_smtp() {
    let Some(server) = SmtpServer::start() else {
        return;
    };
    let config = json!({
        "host": "127.0.0.1",
        "port": server.port,
        "starttls": false,
        "from": "certctl@example.com",
    });

    // Granted another port.
    let (_dir, set) = notifier_set("email", &[format!("127.0.0.1:{}", server.port + 1)]);
    let err = set
        .notifier("email")
        .expect("email")
        .notify(notification(config.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RuntimeError::Denied { capability: Capability::Host(host), .. }
            if *host == server.authority()),
        "{err:?}"
    );

    // Granted the server, but the manifest does not request `smtp`.
    let plugins = tempfile::tempdir().expect("tempdir");
    let dir = install(plugins.path(), "email", "email");
    let manifest = std::fs::read_to_string(dir.join("plugin.toml")).expect("manifest");
    assert!(manifest.contains("smtp = true"));
    std::fs::write(
        dir.join("plugin.toml"),
        manifest.replace("smtp = true", "smtp = false"),
    )
    .expect("write manifest");
    let grants = Grants::default().with_plugin(
        "email",
        PluginGrant {
            hosts: vec![server.authority()],
            ..PluginGrant::default()
        },
    );
    let set = load(&runtime(), plugins.path(), &grants);
    let err = set
        .notifier("email")
        .expect("email")
        .notify(notification(config))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            RuntimeError::Denied {
                capability: Capability::Host(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        !server.out.path().join("messages/001.json").exists(),
        "nothing was sent"
    );
}

#[tokio::test]
async fn a_notifier_that_traps_or_hangs_fails_only_its_own_call() {
    let receiver = Receiver::start(&[]);
    let plugins = plugin_dir(&["hostile-notifier", "webhook"]);
    let grant = PluginGrant {
        hosts: vec![receiver.authority()],
        ..PluginGrant::default()
    };
    let grants = Grants::default()
        .with_plugin("hostile-notifier", grant.clone())
        .with_plugin("webhook", grant);
    let set = load(&runtime(), plugins.path(), &grants);
    let hostile = set.notifier("hostile-notifier").expect("hostile");
    let webhook = set.notifier("webhook").expect("webhook");

    let err = hostile
        .notify(notification(json!({"mode": "trap"})))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RuntimeError::Trap { message, .. } if message.contains("trapped on notif-42")),
        "{err:?}"
    );
    let (hang, delivered) = tokio::join!(
        hostile.notify(notification(json!({"mode": "hang"}))),
        webhook.notify(notification(json!({"url": receiver.url("/hook")}))),
    );
    assert!(
        matches!(hang, Err(RuntimeError::Timeout { .. })),
        "{hang:?}"
    );
    delivered.expect("the webhook is unaffected");
    assert_eq!(receiver.next().json()["id"], "notif-42");

    // The fixture's GET carries the id and event, for the host's own tests.
    hostile
        .notify(notification(json!({"url": receiver.url("/get")})))
        .await
        .expect("get");
    let request = receiver.next();
    assert_eq!(request.method, "GET");
    assert_eq!(request.header("x-certctl-delivery"), Some("notif-42"));
    assert_eq!(request.header("x-certctl-event"), Some("ExpirationWarning"));
}

/// Runs `cmd` (an openssl invocation), asserting it succeeds.
fn openssl(cmd: &mut Command) {
    let status = cmd.stderr(Stdio::null()).status().expect("run openssl");
    assert!(status.success(), "{cmd:?}");
}

/// A throwaway CA (`ca.pem`) and a server certificate it signed for 127.0.0.1
/// (`cert.pem`, `key.pem`) in `dir`.
fn throwaway_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (ca, ca_key) = (dir.join("ca.pem"), dir.join("ca.key"));
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let p256 = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "1",
    ];
    openssl(
        Command::new("openssl")
            .args(["req", "-x509"])
            .args(p256)
            .args(["-subj", "/CN=certctl test SMTP CA", "-keyout"])
            .arg(&ca_key)
            .arg("-out")
            .arg(&ca),
    );
    openssl(
        Command::new("openssl")
            .args(["req", "-x509", "-CA"])
            .arg(&ca)
            .arg("-CAkey")
            .arg(&ca_key)
            .args(p256)
            .args(["-subj", "/CN=127.0.0.1"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1"])
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .args(["-addext", "extendedKeyUsage=serverAuth", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert),
    );
    (ca, cert, key)
}

/// An email plugin granted `server`, in a runtime changed by `change`.
fn email_set(
    server: &SmtpServer,
    change: impl FnOnce(&mut RuntimeConfig),
) -> (tempfile::TempDir, PluginSet) {
    let plugins = plugin_dir(&["email"]);
    let grants = Grants::default().with_plugin(
        "email",
        PluginGrant {
            hosts: vec![server.authority()],
            ..PluginGrant::default()
        },
    );
    let set = load(&runtime_with(change), plugins.path(), &grants);
    (plugins, set)
}

#[tokio::test]
async fn starttls_trusts_the_operators_ca_bundle_and_verifies_always() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, cert, key) = throwaway_ca(dir.path());
    let Some(server) = SmtpServer::start_with(&[&cert, &key]) else {
        return;
    };
    let config = json!({
        "host": "127.0.0.1",
        "port": server.port,
        "starttls": true,
        "username": "certctl",
        "password": "s3cret",
        "from": "certctl@example.com",
    });

    // The public roots alone do not trust the private CA: the handshake fails before
    // any credentials or mail are sent.
    let (_plugins, set) = email_set(&server, |_| {});
    let err = set
        .notifier("email")
        .expect("email")
        .notify(notification(config.clone()))
        .await
        .unwrap_err();
    assert_eq!(
        connector_kind(&err),
        ConnectorErrorKind::Unavailable,
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("TLS handshake")
            && message.contains("UnknownIssuer")
            && message.contains("add it to the SMTP CA bundle"),
        "{message}"
    );
    assert!(
        server.message_within(1, Duration::ZERO).is_none(),
        "nothing was sent"
    );

    // With the CA in the SMTP CA bundle: STARTTLS, AUTH over TLS, delivered.
    let (_plugins, set) = email_set(&server, |c| c.smtp_ca_bundle = Some(ca.clone()));
    set.notifier("email")
        .expect("email")
        .notify(notification(config.clone()))
        .await
        .expect("delivered over STARTTLS");
    let m = server.message(1);
    assert_eq!(m["tls"], true, "{m}");
    assert_eq!(m["auth_login"], "certctl", "{m}");
    assert_eq!(m["mail_from"], "certctl@example.com", "{m}");
    assert_eq!(m["rcpt_tos"], json!(["ops@example.com"]), "{m}");
    assert_eq!(
        m["subject"], "Certificate api.example.com expires in 7 days",
        "{m}"
    );

    // The bundle adds trust; it never removes verification: a certificate the bundle's
    // CA did not sign (here: the server's own, self-signed) still fails.
    let (_plugins, set) = email_set(&server, |c| c.smtp_ca_bundle = Some(cert.clone()));
    let err = set
        .notifier("email")
        .expect("email")
        .notify(notification(config))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("TLS handshake"), "{err}");
    assert!(server.message_within(2, Duration::ZERO).is_none());
}

#[test]
fn an_unusable_smtp_ca_bundle_stops_the_runtime() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.pem");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").expect("write");
    for path in [missing, empty] {
        let err = certctl_core::runtime::read_ca_bundle(&path).unwrap_err();
        assert!(
            matches!(err, RuntimeError::Setup(_)) && err.to_string().contains("SMTP CA bundle"),
            "{err}"
        );
        assert!(err.to_string().contains(path.to_str().unwrap()), "{err}");
        let config = RuntimeConfig {
            smtp_ca_bundle: Some(path),
            ..RuntimeConfig::default()
        };
        assert!(matches!(
            certctl_core::runtime::PluginRuntime::new(config),
            Err(RuntimeError::Setup(_))
        ));
    }
}
