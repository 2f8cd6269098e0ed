//! Notifications through the real notifier plugins (`plugins/build.sh` output) against
//! local HTTP receivers on 127.0.0.1: retries with growing delays and the dead letter,
//! requeue through the API, a trapping or hanging plugin failing only its own
//! notifications, one expiry warning per threshold through a configured webhook, the
//! read/requeue errors, the digest, and the start-up checks of channel configuration.
//!
//! Time-dependent parts run in process with a `ManualClock` (the loops' `tick` called
//! directly, as in `pipeline.rs`); API parts start the real server on the same data dir.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration as StdDuration;
use std::time::Instant;

use certctl_core::runtime::{Grants, PluginGrant};
use certctl_host::actors::issuer_registry::Rebuild;
use certctl_host::actors::notification_processor::NotificationProcessor;
use certctl_host::actors::notification_retry::NotificationRetry;
use certctl_host::actors::renewal_check::RenewalCheck;
use certctl_host::actors::scheduler::LoopTask;
use certctl_host::clock::{Clock as _, ManualClock};
use certctl_host::config::KeygenMode;
use certctl_host::domain::audit::Actor;
use certctl_host::domain::{certificate, issuer, renewal_policy};
use certctl_host::issuer::ConnectorTypes;
use certctl_host::notifier::channels::{NotificationSettings, implicit_grants};
use certctl_host::notifier::wasm::WasmNotifier;
use certctl_host::notifier::{NotificationService, Notifiers};
use certctl_host::pipeline::Pipeline;
use certctl_host::plugins::{PluginRegistry, PluginSettings};
use certctl_host::store::notifications::{self, NewNotification};
use certctl_host::store::{self, Store, jobs, records};
use certctl_testkit::http::{Captured, Receiver};
use certctl_testkit::plugins::install;
use certctl_testkit::smtp::SmtpServer;
use certctl_testkit::tls::throwaway_ca;
use serde_json::{Value, json};
use sqlx::Row as _;
use time::Duration;

use crate::support::{ServerBuilder, eventually, in_process, notification_row, pipeline};

const SECRET: &str = "webhook-test-secret";

/// Checks `X-Certctl-Signature: sha256=<hex HMAC-SHA256(SECRET, body)>`.
fn assert_signed(r: &Captured) {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let expected = format!(
        "sha256={}",
        hex::encode(ring::hmac::sign(&key, &r.body).as_ref())
    );
    assert_eq!(
        r.header("x-certctl-signature"),
        Some(expected.as_str()),
        "{r:?}"
    );
}

// ---------------------------------------------------------------------------------------
// In-process harness
// ---------------------------------------------------------------------------------------

/// A store, a manual clock, a pipeline and a plugin directory in a temp data dir (whose
/// `plugins/` is also the default plugin directory of a server started on it).
struct Env {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
    store: Store,
    clock: Arc<ManualClock>,
    pipeline: Arc<Pipeline>,
    server_pipeline: Arc<Pipeline>,
}

impl Env {
    async fn new(plugins: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        for id in plugins {
            install(&path.join("plugins"), id, id);
        }
        let (store, clock, registry) = in_process(&path, ConnectorTypes::native()).await;
        let parts = (&store, &clock, &registry);
        let env = Self {
            pipeline: pipeline(parts, &path, KeygenMode::Agent, 30),
            server_pipeline: pipeline(parts, &path, KeygenMode::Server, 40),
            dir: Some(dir),
            path,
            store,
            clock,
        };
        let values = json!({"name": "Local", "type": "local", "config": {}, "enabled": true});
        records::create(
            &env.store,
            &issuer::SPEC,
            "iss-local",
            values.as_object().unwrap().clone(),
            &env.now(),
            &Actor::system(),
        )
        .await
        .unwrap();
        registry.send(Rebuild).await.unwrap().unwrap();
        env
    }

    fn now(&self) -> String {
        self.clock.now_text()
    }

    /// The plugin registry over this data dir's `plugins/`, with a short call deadline.
    async fn plugins(&self, implicit: Grants, timeout: StdDuration) -> Arc<PluginRegistry> {
        let settings = PluginSettings {
            plugin_dir: Some(self.path.join("plugins")),
            plugin_grants: None,
            plugin_memory_limit_mb: 64,
            plugin_call_timeout: timeout,
        };
        Arc::new(PluginRegistry::start_with(&settings, &self.path, implicit, None).await)
    }

    /// What the server builds at start from `settings`.
    async fn service(&self, settings: &NotificationSettings) -> NotificationService {
        let channels = settings.channels().unwrap();
        let plugins = self
            .plugins(implicit_grants(&channels), StdDuration::from_secs(10))
            .await;
        NotificationService::setup(settings, plugins, &self.store, self.clock.clone())
            .await
            .unwrap()
    }

    fn processor(&self, notifiers: Notifiers) -> Arc<NotificationProcessor> {
        Arc::new(NotificationProcessor {
            pipeline: self.pipeline.clone(),
            notifiers,
            concurrency: 8,
        })
    }

    /// (status, attempts, next_attempt_at, last_error) of a notification.
    async fn row(&self, id: &str) -> (String, i64, Option<String>, Option<String>) {
        notification_row(&self.store, "id", id).await
    }

    /// Ids of the notifications with this dedup key, by channel.
    async fn ids(&self, dedup_key: &str) -> Vec<(String, String)> {
        sqlx::query(
            "SELECT channel, id FROM notification_events WHERE dedup_key = ? ORDER BY channel",
        )
        .bind(dedup_key)
        .fetch_all(self.store.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| (r.try_get(0).unwrap(), r.try_get(1).unwrap()))
        .collect()
    }

    async fn enqueue(&self, channel: &str, key: &str) -> String {
        let n = NewNotification {
            notification_type: "RenewalFailure",
            certificate_id: None,
            channel,
            recipient: Some("ops@example.test".into()),
            message: format!("Renewal of {key} failed: CA unreachable"),
            dedup_key: Some(key.into()),
        };
        assert!(
            notifications::enqueue(&self.store, &n, &self.now())
                .await
                .unwrap()
        );
        let ids = self.ids(key).await;
        assert_eq!(ids.len(), 1, "{ids:?}");
        ids[0].1.clone()
    }

    /// Creates a certificate (with its Issuance job) and issues it for 40 days.
    async fn issue(&self, id: &str) -> String {
        let cn = format!("{id}.example.test");
        let values = json!({"name": id, "common_name": cn, "sans": [cn], "issuer_id": "iss-local"});
        records::create_with(
            &self.store,
            &certificate::SPEC,
            id,
            values.as_object().unwrap().clone(),
            &self.now(),
            &Actor::system(),
            Some(certctl_host::api::certificates::after_create),
        )
        .await
        .unwrap();
        let due = jobs::due(&self.store, &["Issuance"], &self.now(), 10)
            .await
            .unwrap();
        let job = due.into_iter().find(|j| j.certificate_id == id).unwrap();
        self.server_pipeline.process(job).await.unwrap();
        store::certificates::get(&self.store, id)
            .await
            .unwrap()
            .unwrap()
            .expires_at
            .unwrap()
    }
}

fn webhook_settings(receiver: &Receiver) -> NotificationSettings {
    NotificationSettings {
        webhook_url: Some(receiver.url("/hook")),
        webhook_secret: Some(SECRET.into()),
        ..NotificationSettings::default()
    }
}

// ---------------------------------------------------------------------------------------
// (a) 500 → retries with growing delays → dead letter → API → requeue → delivered
// (d) read/requeue errors, (e) digest preview and 503 without the email channel
// ---------------------------------------------------------------------------------------

#[actix::test]
async fn failing_receiver_is_retried_then_dead_lettered_and_requeue_delivers() {
    let receiver = Receiver::with_status(500);
    let env = Env::new(&["webhook"]).await;
    let service = env.service(&webhook_settings(&receiver)).await;
    let processor = env.processor(service.notifiers.clone());
    let retry = Arc::new(NotificationRetry(env.pipeline.clone()));

    // Routed to the configured webhook although the caller names the inbox channel.
    let id = env.enqueue("email", "test:receiver-500").await;
    assert_eq!(
        env.ids("test:receiver-500").await,
        [("webhook".to_owned(), id.clone())]
    );

    let mut delays = Vec::new();
    let mut last_error = String::new();
    for attempt in 1..=5_i64 {
        assert_eq!(
            processor.clone().tick().await.unwrap(),
            "0 sent, 1 failed, 0 without notifier",
            "attempt {attempt}"
        );
        let (status, attempts, next, error) = env.row(&id).await;
        assert_eq!((status.as_str(), attempts), ("Failed", attempt));
        let error = error.unwrap();
        assert!(error.contains("500"), "{error}");
        last_error = error;
        let next = certctl_core::timestamp::parse(&next.unwrap()).unwrap();
        delays.push(next - env.clock.now());
        // Not due yet: nothing moves.
        env.clock.set(next - Duration::seconds(1));
        assert_eq!(retry.clone().tick().await.unwrap(), "");
        assert_eq!(processor.clone().tick().await.unwrap(), "");
        env.clock.set(next);
        retry.clone().tick().await.unwrap();
    }
    assert_eq!(delays, [1, 2, 4, 8, 16].map(Duration::minutes).to_vec());
    // The dead letter keeps the receiver's answer.
    let (status, _, _, error) = env.row(&id).await;
    assert_eq!(status, "DeadLetter");
    assert_eq!(
        error.as_deref(),
        Some(format!("gave up after 5 attempts; last error: {last_error}").as_str())
    );

    // Five deliveries of the same notification, each signed, with its id.
    let got = receiver.requests();
    assert_eq!(got.len(), 5);
    for r in &got {
        assert_eq!(r.path, "/hook");
        assert_signed(r);
        assert_eq!(r.header("x-certctl-delivery"), Some(id.as_str()));
        let body = r.json();
        assert_eq!(body["id"], id.as_str());
        assert_eq!(body["event"], "RenewalFailure");
        assert_eq!(body["recipient"], "ops@example.test");
        assert_eq!(body["details"]["error"], "CA unreachable");
    }

    // The real server on the same data dir, with the same channel.
    receiver.set_status(200);
    let server = ServerBuilder::new()
        .data_dir(env_dir(env.dir))
        .env("CERTCTL_WEBHOOK_URL", &receiver.url("/hook"))
        .env("CERTCTL_WEBHOOK_SECRET", SECRET)
        .start()
        .await;
    let api = server.admin();

    let dead = api
        .get("notifications?status=DeadLetter&channel=webhook&type=RenewalFailure")
        .await;
    assert_eq!(dead.status, 200, "{:?}", dead.body);
    assert_eq!(dead.body["total"], 1, "{:?}", dead.body);
    assert_eq!(dead.body["data"][0]["id"], id.as_str());
    assert_eq!(dead.body["data"][0]["attempts"], 5);
    let dead_error = dead.body["data"][0]["last_error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        dead_error.starts_with("gave up after 5 attempts; last error: ")
            && dead_error.contains("500"),
        "the receiver's HTTP 500 is kept: {dead_error}"
    );

    // The channel listing shows the webhook, without its secret.
    let listing = api.get("notifiers").await;
    assert_eq!(listing.status, 200, "{:?}", listing.body);
    assert_eq!(listing.body["data"][0]["channel"], "webhook");
    assert_eq!(listing.body["data"][0]["config"]["secret"], "***");
    assert_eq!(
        listing.body["data"][0]["granted_hosts"],
        json!([receiver.grant()])
    );
    assert!(!listing.body.to_string().contains(SECRET));

    // Requeue: Pending, attempts reset, delivered at once (the processor is poked).
    let requeued = api
        .post(&format!("notifications/{id}/requeue"), &Value::Null)
        .await;
    assert_eq!(requeued.status, 200, "{:?}", requeued.body);
    assert_eq!(requeued.body["attempts"], 0);
    eventually("the requeued notification to be sent", async || {
        let n = api.get(&format!("notifications/{id}")).await;
        match n.body["status"].as_str() {
            Some("Sent") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let got = receiver.requests();
    assert_eq!(got.len(), 6);
    assert_signed(&got[5]);
    assert_eq!(got[5].header("x-certctl-delivery"), Some(id.as_str()));
    let audit = api.get(&format!("audit?resource_id={id}")).await;
    assert!(
        audit.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "notification_requeued"
                && e["details"]["previous_status"] == "DeadLetter"),
        "{:?}",
        audit.body
    );

    // (d) Requeue of a Sent row is a conflict; unknown ids are 404; read marks read.
    let conflict = api
        .post(&format!("notifications/{id}/requeue"), &Value::Null)
        .await;
    assert_eq!(conflict.status, 409, "{:?}", conflict.body);
    assert!(
        conflict.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is Sent"),
        "{:?}",
        conflict.body
    );
    for action in ["read", "requeue"] {
        let missing = api
            .post(
                &format!("notifications/notif-missing/{action}"),
                &Value::Null,
            )
            .await;
        assert_eq!(missing.status, 404, "{action}: {:?}", missing.body);
        assert_eq!(missing.body["error"]["code"], "not_found");
    }
    assert_eq!(api.get("notifications?read=true").await.body["total"], 0);
    let read = api
        .post(&format!("notifications/{id}/read"), &Value::Null)
        .await;
    assert_eq!(read.status, 200, "{:?}", read.body);
    assert_eq!(read.body["read"], true);
    let unread = api.get("notifications?read=false").await;
    assert!(
        unread.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["id"] != id.as_str())
    );
    assert_eq!(api.get("notifications?read=true").await.body["total"], 1);

    // (e) Without an email channel the digest is not configured: both endpoints answer
    // 503 with a JSON error naming what to set.
    for (method, path) in [
        (reqwest::Method::GET, "digest/preview"),
        (reqwest::Method::POST, "digest/send"),
    ] {
        let r = api
            .raw(method.clone(), &format!("/api/v1/{path}"), Vec::new())
            .await;
        assert_eq!(r.status, 503, "{method} {path}: {:?}", r.body);
        assert_eq!(
            r.body["error"]["code"], "service_unavailable",
            "{:?}",
            r.body
        );
        let message = r.body["error"]["message"].as_str().unwrap();
        for variable in ["CERTCTL_SMTP_HOST", "CERTCTL_SMTP_FROM_ADDRESS"] {
            assert!(message.contains(variable), "{method} {path}: {message}");
        }
    }
    assert_eq!(
        server.anonymous().get("digest/preview").await.status,
        401,
        "the digest needs a key"
    );
}

fn env_dir(dir: Option<tempfile::TempDir>) -> tempfile::TempDir {
    dir.unwrap()
}

// ---------------------------------------------------------------------------------------
// (b) A trapping or hanging notifier fails only its own notifications
// ---------------------------------------------------------------------------------------

#[actix::test]
async fn trapping_or_hanging_notifier_fails_only_its_own_notifications() {
    let receiver = Receiver::with_status(200);
    let env = Env::new(&["webhook", "hostile-notifier"]).await;
    let grants = Grants::default().with_plugin(
        "webhook",
        PluginGrant {
            hosts: vec![receiver.grant()],
            ..PluginGrant::default()
        },
    );
    // A deadline longer than the wait below, so the hanging call is still running while
    // the others are checked.
    let plugins = env.plugins(grants, StdDuration::from_secs(15)).await;
    let notifier = |id: &str, config: Value| {
        Arc::new(WasmNotifier::new(
            plugins.clone(),
            id,
            &config,
            env.store.clone(),
            env.clock.clone(),
        ))
    };
    let mut notifiers = Notifiers::default();
    notifiers.register(
        "webhook",
        notifier("webhook", json!({"url": receiver.url("/ok")})),
    );
    notifiers.register(
        "trap",
        notifier("hostile-notifier", json!({"mode": "trap"})),
    );
    notifiers.register(
        "hang",
        notifier("hostile-notifier", json!({"mode": "hang"})),
    );
    let processor = env.processor(notifiers);

    let trap = env.enqueue("trap", "test:trap").await;
    let hang = env.enqueue("hang", "test:hang").await;
    let mut good = Vec::new();
    for i in 0..3 {
        good.push(env.enqueue("webhook", &format!("test:good-{i}")).await);
    }

    let tick = tokio::spawn(processor.clone().tick());
    // The good ones go out while the hanging plugin still holds its slot.
    eventually("the webhook notifications to be sent", async || {
        for id in &good {
            let status = env.row(id).await.0;
            if status != "Sent" {
                return Err(format!("{id}: {status}"));
            }
        }
        Ok(())
    })
    .await;
    assert!(!tick.is_finished(), "the tick waits for the hanging plugin");
    assert_eq!(env.row(&hang).await.0, "Pending", "still in flight");
    assert_eq!(
        tick.await.unwrap().unwrap(),
        "3 sent, 2 failed, 0 without notifier"
    );
    let delivered: Vec<String> = receiver
        .requests()
        .iter()
        .map(|r| r.header("x-certctl-delivery").unwrap().to_owned())
        .collect();
    assert_eq!(delivered.len(), 3);
    for id in &good {
        assert!(delivered.contains(id), "{delivered:?}");
    }
    let (status, attempts, _, error) = env.row(&trap).await;
    assert_eq!((status.as_str(), attempts), ("Failed", 1));
    let error = error.unwrap();
    assert!(
        error.contains("plugin `hostile-notifier` trapped"),
        "{error}"
    );
    let (status, attempts, _, error) = env.row(&hang).await;
    assert_eq!((status.as_str(), attempts), ("Failed", 1));
    let error = error.unwrap();
    assert!(
        error.contains("plugin `hostile-notifier` timed out after 15 s"),
        "{error}"
    );

    // The plugins are fine afterwards: the next good notification goes out.
    let later = env.enqueue("webhook", "test:good-after").await;
    assert_eq!(
        processor.tick().await.unwrap(),
        "1 sent, 0 failed, 0 without notifier"
    );
    assert_eq!(env.row(&later).await.0, "Sent");
}

// ---------------------------------------------------------------------------------------
// (c) One expiry warning per threshold through the configured webhook
// ---------------------------------------------------------------------------------------

#[actix::test]
async fn expiring_certificate_warns_once_per_threshold_through_the_webhook() {
    let receiver = Receiver::with_status(200);
    let env = Env::new(&["webhook"]).await;
    let service = env.service(&webhook_settings(&receiver)).await;
    let processor = env.processor(service.notifiers.clone());
    let check = RenewalCheck::new(env.pipeline.clone());
    let expires_at = env.issue("mc-expiring").await;
    let expiry = certctl_core::timestamp::parse(&expires_at).unwrap();
    assert_eq!(expiry, env.clock.now() + Duration::days(40));

    let mut seen = Vec::new();
    // Every day from 40 days before expiry to 2 days after, three checks a day.
    for day in 0..=42 {
        env.clock
            .set(expiry - Duration::days(40) + Duration::days(day));
        for _ in 0..3 {
            check.run_once().await.unwrap();
            processor.clone().tick().await.unwrap();
        }
        let got = receiver.requests();
        for r in &got[seen.len()..] {
            assert_signed(r);
            let body = r.json();
            assert_eq!(body["event"], "ExpirationWarning");
            assert_eq!(r.header("x-certctl-event"), Some("ExpirationWarning"));
            assert_eq!(body["details"]["certificate_id"], "mc-expiring");
            assert_eq!(body["details"]["certificate_name"], "mc-expiring");
            assert_eq!(body["details"]["common_name"], "mc-expiring.example.test");
            assert_eq!(body["details"]["expires_at"], expires_at.as_str());
            assert!(body["details"]["serial"].is_string(), "{body}");
            let threshold = body["details"]["threshold_days"].as_i64().unwrap();
            let left = body["details"]["days_remaining"].as_i64().unwrap();
            assert!(left <= threshold, "{body}");
            seen.push((day, threshold));
        }
        assert_eq!(seen.len(), got.len());
    }
    // Each threshold exactly once, on the day it was crossed.
    assert_eq!(seen, [(10, 30), (26, 14), (33, 7), (40, 0)]);
    let rows: i64 = sqlx::query(
        "SELECT COUNT(*) FROM notification_events WHERE type = 'ExpirationWarning' AND channel = 'webhook' AND status = 'Sent'",
    )
    .fetch_one(env.store.pool())
    .await
    .unwrap()
    .try_get(0)
    .unwrap();
    assert_eq!(rows, 4);

    // The digest lists the certificate as expired.
    let html = certctl_host::notifier::digest::render_html(
        &certctl_host::notifier::digest::collect(&env.store, env.clock.now())
            .await
            .unwrap(),
    );
    assert!(html.contains("mc-expiring.example.test"), "{html}");
    assert!(html.contains("badge expired"), "{html}");
}

// ---------------------------------------------------------------------------------------
// Channels per renewal policy, and dedup across channels
// ---------------------------------------------------------------------------------------

#[actix::test]
async fn renewal_policy_channels_override_the_routing() {
    let receiver = Receiver::with_status(200);
    let env = Env::new(&["webhook"]).await;
    let service = env.service(&webhook_settings(&receiver)).await;
    let processor = env.processor(service.notifiers.clone());
    let values = json!({"name": "loud", "notification_channels": ["teams", "webhook"]});
    records::create(
        &env.store,
        &renewal_policy::SPEC,
        "rp-loud",
        values.as_object().unwrap().clone(),
        &env.now(),
        &Actor::system(),
    )
    .await
    .unwrap();
    env.issue("mc-loud").await;
    env.issue("mc-quiet").await;
    sqlx::query(
        "UPDATE managed_certificates SET renewal_policy_id = 'rp-loud' WHERE id = 'mc-loud'",
    )
    .execute(env.store.pool())
    .await
    .unwrap();
    for cert in ["mc-loud", "mc-quiet"] {
        let n = NewNotification {
            notification_type: "Revocation",
            certificate_id: Some(cert),
            channel: "email",
            recipient: None,
            message: format!("Certificate {cert} was revoked: keyCompromise"),
            dedup_key: Some(format!("test-revocation:{cert}")),
        };
        assert!(
            notifications::enqueue(&env.store, &n, &env.now())
                .await
                .unwrap()
        );
        // The event is queued once, whatever the number of channels.
        assert!(
            !notifications::enqueue(&env.store, &n, &env.now())
                .await
                .unwrap()
        );
    }
    let channels =
        |rows: Vec<(String, String)>| rows.into_iter().map(|(c, _)| c).collect::<Vec<_>>();
    assert_eq!(
        channels(env.ids("test-revocation:mc-loud").await),
        ["teams", "webhook"]
    );
    assert_eq!(
        channels(env.ids("test-revocation:mc-quiet").await),
        ["webhook"]
    );
    // No teams notifier is configured: that row waits in the inbox, the others go out.
    assert_eq!(
        processor.tick().await.unwrap(),
        "2 sent, 0 failed, 1 without notifier"
    );
    let events: Vec<String> = receiver
        .requests()
        .iter()
        .map(|r| {
            r.json()["details"]["certificate_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(events.len(), 2);
    assert!(events.contains(&"mc-loud".to_owned()) && events.contains(&"mc-quiet".to_owned()));
}

// ---------------------------------------------------------------------------------------
// Digest through the email channel, against aiosmtpd (as core/tests/runtime/notifiers.rs)
// ---------------------------------------------------------------------------------------

/// A server builder whose `email` channel points at `smtp` (AUTH without TLS, allowed
/// because it is on loopback), with the email plugin installed in `plugins`.
fn server_builder(smtp: &SmtpServer, plugins: &Path) -> ServerBuilder {
    install(plugins, "email", "email");
    ServerBuilder::new()
        .env("CERTCTL_PLUGIN_DIR", plugins.to_str().unwrap())
        .env("CERTCTL_SMTP_HOST", "127.0.0.1")
        .env("CERTCTL_SMTP_PORT", &smtp.port.to_string())
        .env("CERTCTL_SMTP_USE_TLS", "false")
        .env("CERTCTL_SMTP_USERNAME", "certctl")
        .env("CERTCTL_SMTP_PASSWORD", "s3cret")
        .env("CERTCTL_SMTP_FROM_ADDRESS", "certctl@example.com")
}

fn assert_digest(m: &Value) {
    assert_eq!(m["mail_from"], "certctl@example.com", "{m}");
    assert!(
        m["subject"]
            .as_str()
            .unwrap()
            .starts_with("[certctl] Certificate digest: "),
        "{m}"
    );
    assert!(
        m["html"]
            .as_str()
            .unwrap()
            .contains("certctl certificate digest"),
        "{m}"
    );
}

#[tokio::test]
async fn digest_is_sent_through_the_email_channel() {
    let Some(smtp) = SmtpServer::start() else {
        return;
    };
    let plugins = tempfile::tempdir().unwrap();
    let server = server_builder(&smtp, plugins.path())
        .env(
            "CERTCTL_DIGEST_RECIPIENTS",
            "ops@example.com, sec@example.com",
        )
        .start()
        .await;
    let api = server.admin();
    let listing = api.get("notifiers").await;
    assert_eq!(listing.body["data"][0]["channel"], "email");
    assert_eq!(listing.body["data"][0]["config"]["password"], "***");
    assert_eq!(listing.body["digest"]["can_send"], true);

    let sent = api.post("digest/send", &Value::Null).await;
    assert_eq!(sent.status, 200, "{:?}", sent.body);
    assert_eq!(
        sent.body["recipients"],
        json!(["ops@example.com", "sec@example.com"])
    );
    let mut rcpts = Vec::new();
    for n in 1..=2 {
        let m = smtp.message(n);
        assert_eq!(m["mail_from"], "certctl@example.com");
        assert_eq!(m["auth_login"], "certctl");
        assert!(
            m["subject"]
                .as_str()
                .unwrap()
                .starts_with("[certctl] Certificate digest: "),
            "{m}"
        );
        let html = m["html"].as_str().unwrap();
        assert!(html.contains("certctl certificate digest"), "{m}");
        assert!(html.contains("Expiring within 30 days"), "{m}");
        assert!(
            m["text"].as_str().unwrap().contains("certificate digest"),
            "{m}"
        );
        rcpts.push(m["rcpt_tos"].clone());
    }
    rcpts.sort_by_key(|v| v.to_string());
    assert_eq!(
        rcpts,
        [json!(["ops@example.com"]), json!(["sec@example.com"])]
    );
}

/// The digest reaches a relay whose certificate comes from a private CA over STARTTLS
/// (AUTH only after it) once CERTCTL_SMTP_CA_BUNDLE names that CA; without it the
/// handshake fails and the API says so.
#[tokio::test]
async fn digest_goes_over_starttls_to_a_relay_of_the_smtp_ca_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = throwaway_ca(dir.path());
    let Some(smtp) = SmtpServer::start_with(&[&cert, &key]) else {
        return;
    };
    let plugins = tempfile::tempdir().unwrap();
    let builder = || {
        server_builder(&smtp, plugins.path())
            .env("CERTCTL_SMTP_USE_TLS", "true")
            .env("CERTCTL_DIGEST_RECIPIENTS", "ops@example.com")
    };

    let untrusting = builder().start().await;
    let failed = untrusting.admin().post("digest/send", &Value::Null).await;
    assert_eq!(failed.status, 503, "{:?}", failed.body);
    let message = failed.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("TLS handshake")
            && message.contains("UnknownIssuer")
            && message.contains("SMTP CA bundle"),
        "{message}"
    );
    assert!(smtp.message_within(1, StdDuration::ZERO).is_none());
    drop(untrusting);

    let trusting = builder()
        .env("CERTCTL_SMTP_CA_BUNDLE", ca.to_str().unwrap())
        .start()
        .await;
    let sent = trusting.admin().post("digest/send", &Value::Null).await;
    assert_eq!(sent.status, 200, "{:?}", sent.body);
    let m = smtp.message(1);
    assert_digest(&m);
    assert_eq!(m["tls"], true, "{m}");
    assert_eq!(m["auth_login"], "certctl", "{m}");
    assert_eq!(m["rcpt_tos"], json!(["ops@example.com"]), "{m}");
}

/// Without CERTCTL_DIGEST_RECIPIENTS the digest goes to the owners of certificates: each
/// owner once, however many certificates they own; owners without certificates or
/// without an address get nothing.
#[tokio::test]
async fn digest_without_recipients_goes_to_each_certificate_owner_once() {
    let Some(smtp) = SmtpServer::start() else {
        return;
    };
    let plugins = tempfile::tempdir().unwrap();
    let server = server_builder(&smtp, plugins.path()).start().await;
    let api = server.admin();
    // Nobody to send to yet.
    let none = api.post("digest/send", &Value::Null).await;
    assert_eq!(none.status, 409, "{:?}", none.body);
    assert!(
        none.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("CERTCTL_DIGEST_RECIPIENTS"),
        "{:?}",
        none.body
    );

    let mut owners = Vec::new();
    for (name, email) in [
        ("ann", Some("ann@example.com")),
        ("bob", Some("bob@example.com")),
        ("carol", Some("carol@example.com")),
        ("dan", None),
    ] {
        let mut body = json!({"name": name});
        if let Some(email) = email {
            body["email"] = json!(email);
        }
        let r = api.post("owners", &body).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        owners.push(r.body["id"].as_str().unwrap().to_owned());
    }
    // ann owns two certificates, bob and dan one each, carol none.
    for (n, owner) in [&owners[0], &owners[0], &owners[1], &owners[3]]
        .into_iter()
        .enumerate()
    {
        let r = api
            .post(
                "certificates",
                &json!({
                    "name": format!("digest-{n}"),
                    "common_name": format!("digest-{n}.example.com"),
                    "owner_id": owner,
                }),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }

    let sent = api.post("digest/send", &Value::Null).await;
    assert_eq!(sent.status, 200, "{:?}", sent.body);
    assert_eq!(
        sent.body["recipients"],
        json!(["ann@example.com", "bob@example.com"])
    );
    let mut rcpts = Vec::new();
    for n in 1..=2 {
        let m = smtp.message(n);
        assert_digest(&m);
        assert!(
            m["subject"].as_str().unwrap().contains("4 certificates"),
            "{m}"
        );
        rcpts.push(m["rcpt_tos"].clone());
    }
    rcpts.sort_by_key(|v| v.to_string());
    assert_eq!(
        rcpts,
        [json!(["ann@example.com"]), json!(["bob@example.com"])]
    );
    // The answer came after both deliveries: there is no third message.
    assert!(smtp.message_within(3, StdDuration::ZERO).is_none());
}

/// CERTCTL_DIGEST_ENABLED=true sends the digest every CERTCTL_DIGEST_INTERVAL, not at
/// start; without it no digest is sent on its own.
#[tokio::test]
async fn digest_loop_sends_after_each_interval_only_when_enabled() {
    let (Some(enabled_smtp), Some(disabled_smtp)) = (SmtpServer::start(), SmtpServer::start())
    else {
        return;
    };
    const INTERVAL: StdDuration = StdDuration::from_secs(3);
    let (enabled_plugins, disabled_plugins) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let before_start = Instant::now();
    let enabled = server_builder(&enabled_smtp, enabled_plugins.path())
        .env("CERTCTL_DIGEST_ENABLED", "true")
        .env("CERTCTL_DIGEST_INTERVAL", "3s")
        .env("CERTCTL_DIGEST_RECIPIENTS", "ops@example.com")
        .start()
        .await;
    let disabled = server_builder(&disabled_smtp, disabled_plugins.path())
        .env("CERTCTL_DIGEST_INTERVAL", "1s")
        .env("CERTCTL_DIGEST_RECIPIENTS", "ops@example.com")
        .start()
        .await;
    // Both servers are up; the enabled loop has had its start-up tick, which sends nothing.
    assert_eq!(enabled.admin().get("notifiers").await.status, 200);
    assert_eq!(disabled.admin().get("notifiers").await.status, 200);

    let first = enabled_smtp
        .message_within(1, INTERVAL + StdDuration::from_secs(20))
        .expect("a digest after the interval");
    // The loop waits a whole interval from its start (which came after `before_start`)
    // before its first digest: a digest sent at start-up would be earlier.
    assert!(
        before_start.elapsed() >= INTERVAL,
        "the first digest came {:?} after start",
        before_start.elapsed()
    );
    assert_digest(&first);
    assert_eq!(first["rcpt_tos"], json!(["ops@example.com"]));
    let second = enabled_smtp
        .message_within(2, INTERVAL + StdDuration::from_secs(20))
        .expect("another digest after the next interval");
    assert_digest(&second);

    // Disabled: several of its (1 s) intervals have passed, and nothing came.
    assert!(
        disabled_smtp
            .message_within(1, StdDuration::from_secs(1))
            .is_none(),
        "no digest without CERTCTL_DIGEST_ENABLED"
    );
}

// ---------------------------------------------------------------------------------------
// Start-up checks
// ---------------------------------------------------------------------------------------

/// Runs the server binary until it exits (it must, within 30 s); answers its output.
pub(crate) fn failed_start(env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_certctl-server"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CERTCTL_DATA_DIR", dir.path())
        .env(
            "CERTCTL_SERVER_PORT",
            crate::support::free_port().to_string(),
        )
        .env("CERTCTL_SERVER_HOST", "127.0.0.1")
        .env("CERTCTL_TLS_MODE", "off")
        .env("CERTCTL_ADMIN_API_KEY", crate::support::ADMIN_KEY)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        let v = v.replace("{dir}", dir.path().to_str().unwrap());
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = std::time::Instant::now() + StdDuration::from_secs(30);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server started although its notification config is unusable");
        }
        std::thread::sleep(StdDuration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn unusable_channel_configuration_stops_the_server() {
    let plugins = tempfile::tempdir().unwrap();
    install(plugins.path(), "webhook", "webhook");
    let dir = plugins.path().to_str().unwrap();

    // A channel without its plugin.
    let out = failed_start(&[
        ("CERTCTL_PLUGIN_DIR", dir),
        (
            "CERTCTL_TEAMS_WEBHOOK_URL",
            "https://example.webhook.office.com/x",
        ),
    ]);
    assert!(
        out.contains(
            "certctl-server: notifications: notification channel `teams` (CERTCTL_TEAMS_WEBHOOK_URL) needs the notifier plugin `teams`"
        ),
        "{out}"
    );
    // A configuration the plugin refuses.
    install(plugins.path(), "pagerduty", "pagerduty");
    let out = failed_start(&[
        ("CERTCTL_PLUGIN_DIR", dir),
        ("CERTCTL_PAGERDUTY_ROUTING_KEY", "routing-key"),
        ("CERTCTL_PAGERDUTY_SEVERITY", "loud"),
    ]);
    assert!(
        out.contains("notification channel `pagerduty` (CERTCTL_PAGERDUTY_ROUTING_KEY…): invalid configuration:"),
        "{out}"
    );
    assert!(out.contains("loud"), "{out}");
    // A route to a channel that is not configured.
    let out = failed_start(&[
        ("CERTCTL_PLUGIN_DIR", dir),
        ("CERTCTL_WEBHOOK_URL", "http://127.0.0.1:9/hook"),
        ("CERTCTL_NOTIFICATION_ROUTES", "Revocation=slack"),
    ]);
    assert!(
        out.contains("CERTCTL_NOTIFICATION_ROUTES: Revocation: channel `slack` is not configured"),
        "{out}"
    );
    // An SMTP CA bundle that cannot be read.
    let out = failed_start(&[
        ("CERTCTL_SMTP_CA_BUNDLE", "{dir}/no-such-ca.pem"),
        ("CERTCTL_SMTP_HOST", "smtp.example.com"),
        ("CERTCTL_SMTP_FROM_ADDRESS", "certctl@example.com"),
    ]);
    assert!(
        out.contains("CERTCTL_SMTP_CA_BUNDLE: SMTP CA bundle ") && out.contains("no-such-ca.pem"),
        "{out}"
    );
    // A setting that is incomplete.
    let out = failed_start(&[("CERTCTL_SMTP_HOST", "smtp.example.com")]);
    assert!(
        out.contains("CERTCTL_SMTP_FROM_ADDRESS: is required when CERTCTL_SMTP_HOST is set"),
        "{out}"
    );
}
