//! The first-party notifier plugins (webhook, Slack, Teams, PagerDuty, OpsGenie,
//! e-mail) against local receivers: an HTTP server on 127.0.0.1 that records each
//! request and checks the exact payload each service documents, and a real SMTP
//! server (Python aiosmtpd) for e-mail.
//!
//! The receivers and the SMTP server are `certctl_testkit`'s; aiosmtpd comes from
//! the interpreter named by `CERTCTL_AIOSMTPD_PYTHON` (default
//! `target/pyenv/bin/python`, which `scripts/test` creates). When it is missing the
//! e-mail tests fail if `CERTCTL_REQUIRE_AIOSMTPD` is set (as `scripts/test` does)
//! and are skipped with a loud message otherwise.

use std::time::Duration;

use certctl_core::runtime::{
    Capability, ConnectorErrorKind, Grants, Notification, PluginGrant, PluginSet, RuntimeConfig,
    RuntimeError,
};
use certctl_testkit::http::Receiver;
use certctl_testkit::smtp::SmtpServer;
use certctl_testkit::tls::throwaway_ca;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::{install, load, plugin_dir, runtime, runtime_with};

/// Plugin `id` installed and granted `hosts`.
fn notifier_set(id: &str, hosts: &[String]) -> (tempfile::TempDir, PluginSet) {
    notifier_set_with(id, hosts, |_| {})
}

/// [`notifier_set`] in a runtime changed by `change`.
fn notifier_set_with(
    id: &str,
    hosts: &[String],
    change: impl FnOnce(&mut RuntimeConfig),
) -> (tempfile::TempDir, PluginSet) {
    let plugins = plugin_dir(&[id]);
    let grants = Grants::default().with_plugin(
        id,
        PluginGrant {
            hosts: hosts.to_vec(),
            ..PluginGrant::default()
        },
    );
    let set = load(&runtime_with(change), plugins.path(), &grants);
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
    let (_dir, set) = notifier_set("webhook", &[receiver.grant()]);
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
    // A receiver verifying that header rejects the body with one byte changed
    // (`"days_remaining":7` → `8`), and rejects it under another secret.
    let signature = request.header("x-certctl-signature").expect("signed");
    let verifies =
        |key: &[u8], body: &[u8]| format!("sha256={}", hmac_sha256(key, body)) == signature;
    assert!(verifies(secret.as_bytes(), &request.body));
    let needle = br#""days_remaining":7"#;
    let at = request
        .body
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("days_remaining in the signed body")
        + needle.len()
        - 1;
    let mut tampered = request.body.clone();
    tampered[at] = b'8';
    assert!(
        !verifies(secret.as_bytes(), &tampered),
        "tampered body accepted"
    );
    assert!(
        !verifies(b"another secret", &request.body),
        "wrong secret accepted"
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

    // Without a secret: the same payload, unsigned.
    webhook
        .notify(notification(json!({ "url": receiver.url("/plain") })))
        .await
        .expect("delivered");
    let request = receiver.next();
    assert_eq!(request.header("x-certctl-signature"), None);
    assert_eq!(request.json()["id"], "notif-42");
}

#[tokio::test]
async fn receiver_errors_map_to_retryable_or_rejected() {
    let receiver = Receiver::start(&[
        (500, "database is down"),
        (429, "slow down"),
        (400, "bad payload"),
    ]);
    let (_dir, set) = notifier_set("webhook", &[receiver.grant()]);
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
    let granted_elsewhere = format!("http://127.0.0.1:{}", receiver.port().wrapping_add(1));
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
    assert!(receiver.try_next().is_none(), "nothing was sent");
}

#[tokio::test]
async fn slack_posts_an_incoming_webhook_message() {
    let receiver = Receiver::start(&[]);
    let (_dir, set) = notifier_set("slack", &[receiver.grant()]);
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
    let (_dir, set) = notifier_set("teams", &[receiver.grant()]);
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
    let (_dir, set) = notifier_set("pagerduty", &[receiver.grant()]);
    let mut n = notification(json!({
        "routing_key": "R0UT1NGKEY",
        "severity": "critical",
        "events_url": receiver.url("/v2/enqueue"),
    }));
    // A digest-style subject past PagerDuty's 1024 characters, with a non-ASCII one
    // (the limit counts characters, not bytes).
    let hosts = (0..80)
        .map(|i| format!("api-{i:03}.example.com"))
        .collect::<Vec<_>>()
        .join(", ");
    n.subject = format!("Zertifikate für prod laufen in 7 Tagen ab (80): {hosts}");
    assert!(n.subject.chars().count() > 1024);
    let expected_summary: String = n.subject.chars().take(1023).chain(['…']).collect();
    assert!(expected_summary.starts_with(
        "Zertifikate für prod laufen in 7 Tagen ab (80): api-000.example.com, api-001.example.com"
    ));
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
    assert_eq!(
        summary, expected_summary,
        "cut to PagerDuty's 1024 characters"
    );
    assert_eq!(summary.chars().count(), 1024);
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
    let (_dir, set) = notifier_set("opsgenie", &[receiver.grant()]);
    let mut n = notification(json!({
        "api_key": "eb243592-faa2-4ba2-a551q-1afdf565c889",
        "api_url": receiver.url("/v2/alerts"),
    }));
    n.subject = "Renewal of certificate api.example.com (mc-api) failed 5 times; \
                 it expires on 2026-12-03 — last error: CA unreachable (connection refused \
                 by acme.internal.example:443)"
        .into();
    assert!(n.subject.chars().count() > 130);
    let expected_message = "Renewal of certificate api.example.com (mc-api) failed 5 times; \
                            it expires on 2026-12-03 — last error: CA unreachable (connection…";
    assert_eq!(expected_message.chars().count(), 130);
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
    assert_eq!(
        message, expected_message,
        "cut to OpsGenie's 130 characters"
    );
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
    assert!(!server.message_path(1).exists(), "nothing was sent");
}

#[tokio::test]
async fn a_notifier_that_traps_or_hangs_fails_only_its_own_call() {
    let receiver = Receiver::start(&[]);
    let plugins = plugin_dir(&["hostile-notifier", "webhook"]);
    let grant = PluginGrant {
        hosts: vec![receiver.grant()],
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
    let (_plugins, set) = notifier_set("email", &[server.authority()]);
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
    let (_plugins, set) = notifier_set_with("email", &[server.authority()], |c| {
        c.smtp_ca_bundle = Some(ca.clone())
    });
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
    let (_plugins, set) = notifier_set_with("email", &[server.authority()], |c| {
        c.smtp_ca_bundle = Some(cert.clone())
    });
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
