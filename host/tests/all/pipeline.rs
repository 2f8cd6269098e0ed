//! Library-level tests of the issuance pipeline and the scheduler loop tasks, against a
//! real SQLite store in a temp dir, inside an actix system, with an injected `ManualClock`.
//! No server process: the loops' `tick`/`run_once` are called directly, so each step is
//! deterministic and the whole module runs in a few seconds.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration as StdDuration;

use actix::Addr;
use certctl_host::actors::issuer_actor::Restarts;
use certctl_host::actors::issuer_registry::{IssuerRegistry, Lookup, Rebuild};
use certctl_host::actors::job_retry::JobRetry;
use certctl_host::actors::job_timeout::JobTimeoutReaper;
use certctl_host::actors::notification_processor::NotificationProcessor;
use certctl_host::actors::notification_retry::NotificationRetry;
use certctl_host::actors::renewal_check::RenewalCheck;
use certctl_host::actors::scheduler::LoopTask;
use certctl_host::clock::{Clock as _, ManualClock};
use certctl_host::config::KeygenMode;
use certctl_host::domain::audit::Actor;
use certctl_host::domain::job_state::{JobEvent, JobStatus};
use certctl_host::domain::{certificate, issuer, renewal_policy};
use certctl_host::issuer::local::LocalIssuer;
use certctl_host::issuer::{
    ConnectorContext, ConnectorError, ConnectorTypes, IssuanceRequest, IssuanceResult,
    IssuerConnector, OrderOutcome,
};
use certctl_host::notifier::{Notifier, Notifiers};
use certctl_host::pipeline::Pipeline;
use certctl_host::store::jobs::{self, Changes, Job};
use certctl_host::store::notifications::{self, NewNotification, Notification};
use certctl_host::store::{Store, certificates, records};
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use sqlx::Row as _;
use time::Duration;

use crate::support::{self, in_process, pipeline};

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

/// A store, a manual clock, a Local CA and a started issuer registry in a temp dir.
struct Env {
    _dir: tempfile::TempDir,
    path: PathBuf,
    store: Store,
    clock: Arc<ManualClock>,
    registry: Addr<IssuerRegistry>,
}

impl Env {
    async fn new(types: ConnectorTypes) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let (store, clock, registry) = in_process(&path, types).await;
        Self {
            _dir: dir,
            path,
            store,
            clock,
            registry,
        }
    }

    /// A pipeline sharing the store, clock and registry.
    fn pipeline(&self, keygen_mode: KeygenMode, validity_days: u64) -> Arc<Pipeline> {
        pipeline(
            (&self.store, &self.clock, &self.registry),
            &self.path,
            keygen_mode,
            validity_days,
        )
    }

    fn now(&self) -> String {
        self.clock.now_text()
    }

    /// Seeds an issuer directly (the API would refuse a type unknown to the domain enum).
    async fn seed_issuer(&self, id: &str, issuer_type: &str) {
        let values = json!({"name": id, "type": issuer_type, "config": {}, "enabled": true});
        records::create(
            &self.store,
            &issuer::SPEC,
            id,
            obj(values),
            &self.now(),
            &Actor::system(),
        )
        .await
        .unwrap();
        assert_eq!(
            self.registry.send(Rebuild).await.unwrap().unwrap(),
            1,
            "one issuer actor"
        );
    }

    /// Seeds one more issuer (the registry then holds `n` actors; not asserted).
    async fn seed_issuer_more(&self, id: &str, issuer_type: &str) {
        let values = json!({"name": id, "type": issuer_type, "config": {}, "enabled": true});
        records::create(
            &self.store,
            &issuer::SPEC,
            id,
            obj(values),
            &self.now(),
            &Actor::system(),
        )
        .await
        .unwrap();
        self.registry.send(Rebuild).await.unwrap().unwrap();
    }

    /// Creates a certificate the way the API does: with its Issuance job in the same transaction.
    async fn create_certificate(&self, id: &str, issuer_id: &str, renewal_policy_id: Option<&str>) {
        let cn = format!("{id}.example.test");
        let mut values =
            json!({"name": id, "common_name": cn, "sans": [cn], "issuer_id": issuer_id});
        if let Some(rp) = renewal_policy_id {
            values["renewal_policy_id"] = json!(rp);
        }
        records::create_with(
            &self.store,
            &certificate::SPEC,
            id,
            obj(values),
            &self.now(),
            &Actor::system(),
            Some(certctl_host::api::certificates::after_create),
        )
        .await
        .unwrap();
    }

    /// Due Issuance/Renewal jobs of one certificate.
    async fn due_for(&self, certificate_id: &str) -> Vec<Job> {
        jobs::due(&self.store, &["Issuance", "Renewal"], &self.now(), 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|j| j.certificate_id == certificate_id)
            .collect()
    }

    /// Runs the certificate's Issuance job through a server-keygen pipeline; answers expires_at.
    async fn issue_now(&self, certificate_id: &str, validity_days: u64) -> String {
        let server = self.pipeline(KeygenMode::Server, validity_days);
        let due = self.due_for(certificate_id).await;
        assert_eq!(due.len(), 1, "one Issuance job for {certificate_id}");
        let job_id = due[0].id.clone();
        server
            .process(due.into_iter().next().unwrap())
            .await
            .unwrap();
        let job = self.job(&job_id).await;
        assert_eq!(
            job.status,
            JobStatus::Completed,
            "issuance: {:?}",
            job.last_error
        );
        let cert = self.certificate(certificate_id).await;
        assert_eq!(cert.status, "Active");
        cert.expires_at.unwrap()
    }

    async fn job(&self, id: &str) -> Job {
        jobs::get(&self.store, id).await.unwrap().unwrap()
    }

    async fn certificate(&self, id: &str) -> certificates::Certificate {
        certificates::get(&self.store, id).await.unwrap().unwrap()
    }

    async fn jobs_of(&self, certificate_id: &str, job_type: &str) -> Vec<Job> {
        let rows = sqlx::query(
            "SELECT id FROM jobs WHERE certificate_id = ? AND type = ? ORDER BY created_at, id",
        )
        .bind(certificate_id)
        .bind(job_type)
        .fetch_all(self.store.pool())
        .await
        .unwrap();
        let mut out = Vec::new();
        for r in rows {
            out.push(self.job(&r.try_get::<String, _>(0).unwrap()).await);
        }
        out
    }

    /// (threshold from the dedup key, message) of every expiry warning, oldest first.
    async fn warnings(&self, certificate_id: &str) -> Vec<(i64, String)> {
        sqlx::query(
            "SELECT dedup_key, message FROM notification_events WHERE type = 'ExpirationWarning' AND certificate_id = ? ORDER BY created_at, id",
        )
        .bind(certificate_id)
        .fetch_all(self.store.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let key: String = r.try_get(0).unwrap();
            let threshold = key.rsplit(':').next().unwrap().parse().unwrap();
            (threshold, r.try_get(1).unwrap())
        })
        .collect()
    }
}

fn obj(v: Value) -> records::Record {
    v.as_object().unwrap().clone()
}

fn thresholds(w: &[(i64, String)]) -> Vec<i64> {
    w.iter().map(|(t, _)| *t).collect()
}

// ---------------------------------------------------------------------------------------
// 1. Time travel through the alert thresholds
// ---------------------------------------------------------------------------------------

#[actix::test]
async fn time_travel_through_default_thresholds() {
    let env = Env::new(ConnectorTypes::native()).await;
    env.seed_issuer("iss-local", "local").await;
    env.create_certificate("mc-travel", "iss-local", None).await;
    let expires_at = env.issue_now("mc-travel", 40).await;
    let expiry = certctl_core::timestamp::parse(&expires_at).unwrap();
    assert_eq!(
        expiry,
        env.clock.now() + Duration::days(40),
        "validity from the injected clock"
    );

    // Agent keygen: a renewal job stops in AwaitingCSR and stays open.
    let pipeline = env.pipeline(KeygenMode::Agent, 40);
    let check = RenewalCheck::new(pipeline.clone());
    let cert = "mc-travel";

    // 35 days before expiry: nothing to say, nothing to do.
    env.clock.set(expiry - Duration::days(35));
    for _ in 0..3 {
        assert_eq!(check.run_once().await.unwrap(), (0, 0, 0));
    }
    assert!(env.warnings(cert).await.is_empty());
    assert_eq!(env.certificate(cert).await.status, "Active");
    assert!(env.jobs_of(cert, "Renewal").await.is_empty());

    // 29 days: the 30-day warning, Expiring, one renewal job.
    env.clock.set(expiry - Duration::days(29));
    assert_eq!(check.run_once().await.unwrap(), (1, 1, 1));
    for _ in 0..3 {
        assert_eq!(
            check.run_once().await.unwrap(),
            (0, 0, 0),
            "no duplicates at 29 days"
        );
    }
    let w = env.warnings(cert).await;
    assert_eq!(thresholds(&w), vec![30]);
    assert!(
        w[0].1.contains("(29 days left; 30-day threshold)"),
        "{}",
        w[0].1
    );
    assert!(w[0].1.contains(&expires_at), "{}", w[0].1);
    assert_eq!(env.certificate(cert).await.status, "Expiring");
    let renewals = env.jobs_of(cert, "Renewal").await;
    assert_eq!(renewals.len(), 1);
    assert_eq!(renewals[0].status, JobStatus::Pending);
    let renewal_id = renewals[0].id.clone();

    // The processor moves it to AwaitingCSR (no agent will answer in this test).
    let due = env.due_for(cert).await;
    assert_eq!(due.len(), 1);
    pipeline
        .process(due.into_iter().next().unwrap())
        .await
        .unwrap();
    assert_eq!(env.job(&renewal_id).await.status, JobStatus::AwaitingCSR);
    assert_eq!(check.run_once().await.unwrap(), (0, 0, 0));
    assert_eq!(env.jobs_of(cert, "Renewal").await.len(), 1);
    assert_eq!(
        env.certificate(cert).await.status,
        "Expiring",
        "still Expiring while the CSR is awaited"
    );

    // 13 days: the 14-day warning only.
    env.clock.set(expiry - Duration::days(13));
    assert_eq!(check.run_once().await.unwrap(), (1, 0, 0));
    for _ in 0..3 {
        assert_eq!(
            check.run_once().await.unwrap(),
            (0, 0, 0),
            "no duplicates at 13 days"
        );
    }
    let w = env.warnings(cert).await;
    assert_eq!(thresholds(&w), vec![30, 14]);
    assert!(
        w[1].1.contains("(13 days left; 14-day threshold)"),
        "{}",
        w[1].1
    );
    assert_eq!(env.certificate(cert).await.status, "Expiring");
    assert_eq!(env.jobs_of(cert, "Renewal").await.len(), 1);

    // 6 days: the 7-day warning only.
    env.clock.set(expiry - Duration::days(6));
    assert_eq!(check.run_once().await.unwrap(), (1, 0, 0));
    for _ in 0..3 {
        assert_eq!(
            check.run_once().await.unwrap(),
            (0, 0, 0),
            "no duplicates at 6 days"
        );
    }
    let w = env.warnings(cert).await;
    assert_eq!(thresholds(&w), vec![30, 14, 7]);
    assert!(
        w[2].1.contains("(6 days left; 7-day threshold)"),
        "{}",
        w[2].1
    );
    assert_eq!(env.certificate(cert).await.status, "Expiring");
    assert_eq!(env.jobs_of(cert, "Renewal").await.len(), 1);

    // One day after expiry: the 0-day warning, Expired, still the one renewal job.
    env.clock.set(expiry + Duration::days(1));
    assert_eq!(check.run_once().await.unwrap(), (1, 1, 0));
    for _ in 0..3 {
        assert_eq!(
            check.run_once().await.unwrap(),
            (0, 0, 0),
            "no duplicates after expiry"
        );
    }
    let w = env.warnings(cert).await;
    assert_eq!(thresholds(&w), vec![30, 14, 7, 0]);
    assert_eq!(
        w[3].1,
        format!("Certificate mc-travel (mc-travel.example.test) expired at {expires_at}")
    );
    assert_eq!(env.certificate(cert).await.status, "Expired");
    let renewals = env.jobs_of(cert, "Renewal").await;
    assert_eq!(renewals.len(), 1);
    assert_eq!(
        (renewals[0].id.as_str(), renewals[0].status),
        (renewal_id.as_str(), JobStatus::AwaitingCSR)
    );

    // Every warning is queued once for delivery, and nothing else was notified.
    let all: i64 = sqlx::query("SELECT COUNT(*) FROM notification_events WHERE certificate_id = ?")
        .bind(cert)
        .fetch_one(env.store.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(all, 4);
}

#[actix::test]
async fn renewal_policy_thresholds_and_window_are_respected() {
    let env = Env::new(ConnectorTypes::native()).await;
    env.seed_issuer("iss-local", "local").await;
    let policy =
        json!({"name": "tight", "alert_thresholds_days": [60, 45], "renewal_window_days": 10});
    records::create(
        &env.store,
        &renewal_policy::SPEC,
        "rp-tight",
        obj(policy),
        &env.now(),
        &Actor::system(),
    )
    .await
    .unwrap();
    env.create_certificate("mc-policy", "iss-local", Some("rp-tight"))
        .await;
    let expiry = certctl_core::timestamp::parse(&env.issue_now("mc-policy", 90).await).unwrap();
    let check = RenewalCheck::new(env.pipeline(KeygenMode::Agent, 90));
    let cert = "mc-policy";

    // (days before expiry, expected run_once, thresholds warned so far, status, renewal jobs)
    type Step = (
        i64,
        (usize, usize, usize),
        &'static [i64],
        &'static str,
        usize,
    );
    let steps: [Step; 6] = [
        (61, (0, 0, 0), &[], "Active", 0),
        (59, (1, 1, 0), &[60], "Expiring", 0),
        (44, (1, 0, 0), &[60, 45], "Expiring", 0),
        // Past the default 30/14 thresholds and window: the policy's replace them.
        (11, (0, 0, 0), &[60, 45], "Expiring", 0),
        (9, (0, 0, 1), &[60, 45], "Expiring", 1),
        // No 0-day threshold in this policy: expiry changes the status but warns no more.
        (-1, (0, 1, 0), &[60, 45], "Expired", 1),
    ];
    for (days, expected, warned, status, renewal_jobs) in steps {
        env.clock.set(expiry - Duration::days(days));
        assert_eq!(
            check.run_once().await.unwrap(),
            expected,
            "{days} days before expiry"
        );
        assert_eq!(
            check.run_once().await.unwrap(),
            (0, 0, 0),
            "{days} days before expiry, again"
        );
        assert_eq!(
            thresholds(&env.warnings(cert).await),
            warned,
            "{days} days before expiry"
        );
        assert_eq!(
            env.certificate(cert).await.status,
            status,
            "{days} days before expiry"
        );
        assert_eq!(
            env.jobs_of(cert, "Renewal").await.len(),
            renewal_jobs,
            "{days} days before expiry"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 2. Supervision: a panicking connector fails only the job in hand
// ---------------------------------------------------------------------------------------

/// Delegates to the Local CA, except that the first `issue` call across every instance
/// (the counter is shared by the factory) panics.
struct Flaky {
    inner: LocalIssuer,
    calls: Arc<AtomicUsize>,
}

impl IssuerConnector for Flaky {
    fn issue<'a>(
        &'a self,
        req: &'a IssuanceRequest,
    ) -> BoxFuture<'a, Result<IssuanceResult, ConnectorError>> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("flaky connector exploded on its first call");
        }
        self.inner.issue(req)
    }

    fn revoke<'a>(
        &'a self,
        serial_hex: &'a str,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<(), ConnectorError>> {
        self.inner.revoke(serial_hex, reason)
    }

    fn ca_chain(&self) -> Result<String, ConnectorError> {
        self.inner.ca_chain()
    }
}

#[actix::test]
async fn panicking_connector_fails_one_job_and_restarts() {
    let calls = Arc::new(AtomicUsize::new(0));
    let builds = Arc::new(AtomicUsize::new(0));
    let mut types = ConnectorTypes::native();
    {
        let (calls, builds) = (calls.clone(), builds.clone());
        types.register(
            "flaky",
            Arc::new(move |_config: &Value, ctx: &ConnectorContext| {
                builds.fetch_add(1, Ordering::SeqCst);
                let inner = LocalIssuer::from_config(&json!({}), ctx)?;
                Ok(Arc::new(Flaky {
                    inner,
                    calls: calls.clone(),
                }) as Arc<dyn IssuerConnector>)
            }),
        );
    }
    let env = Env::new(types).await;
    env.seed_issuer("iss-flaky", "flaky").await;
    assert_eq!(builds.load(Ordering::SeqCst), 1);
    env.create_certificate("mc-first", "iss-flaky", None).await;
    env.create_certificate("mc-second", "iss-flaky", None).await;
    let pipeline = env.pipeline(KeygenMode::Server, 30);

    // First job: the connector panics; the job fails with a clear, retryable error.
    let first = env.due_for("mc-first").await.remove(0);
    let first_id = first.id.clone();
    pipeline.process(first).await.unwrap();
    let failed = env.job(&first_id).await;
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.attempts, 1);
    let error = failed.last_error.clone().unwrap();
    assert!(
        error.contains("crashed") && error.contains("panic"),
        "{error}"
    );
    assert!(
        error.contains("flaky connector exploded on its first call"),
        "{error}"
    );
    let retry_at = certctl_core::timestamp::parse(failed.scheduled_at.as_deref().unwrap()).unwrap();
    assert!(retry_at > env.clock.now(), "a backoff is scheduled");
    assert_eq!(
        env.certificate("mc-first").await.status,
        "Pending",
        "not final: attempts are left"
    );
    assert!(
        certificates::versions(&env.store, "mc-first")
            .await
            .unwrap()
            .is_empty()
    );

    // The issuer actor was restarted with a freshly built connector.
    let actor = env
        .registry
        .send(Lookup("iss-flaky".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(actor.send(Restarts).await.unwrap(), 1);
    assert_eq!(builds.load(Ordering::SeqCst), 2);

    // Second job on the same issuer: issued.
    let second = env.due_for("mc-second").await.remove(0);
    let second_id = second.id.clone();
    pipeline.process(second).await.unwrap();
    let done = env.job(&second_id).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.last_error);
    let versions = certificates::versions(&env.store, "mc-second")
        .await
        .unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0].job_id.as_deref(), Some(second_id.as_str()));
    assert_eq!(env.certificate("mc-second").await.status, "Active");

    // The retry loop leaves the failed job alone until its backoff passed…
    let retry = Arc::new(JobRetry(pipeline.clone()));
    assert_eq!(retry.clone().tick().await.unwrap(), "");
    assert_eq!(env.job(&first_id).await.status, JobStatus::Failed);
    env.clock.set(retry_at - Duration::seconds(1));
    assert_eq!(retry.clone().tick().await.unwrap(), "");
    assert_eq!(env.job(&first_id).await.status, JobStatus::Failed);

    // …then requeues it, and processing completes it: exactly one version.
    env.clock.set(retry_at);
    assert_eq!(retry.clone().tick().await.unwrap(), "1 jobs requeued");
    assert_eq!(env.job(&first_id).await.status, JobStatus::Pending);
    let again = env.due_for("mc-first").await;
    assert_eq!(again.len(), 1);
    pipeline
        .process(again.into_iter().next().unwrap())
        .await
        .unwrap();
    let done = env.job(&first_id).await;
    assert_eq!(
        (done.status, done.attempts, done.last_error.as_deref()),
        (JobStatus::Completed, 2, None)
    );
    let versions = certificates::versions(&env.store, "mc-first")
        .await
        .unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0].job_id.as_deref(), Some(first_id.as_str()));
    assert_eq!(env.certificate("mc-first").await.status, "Active");
    assert_eq!(retry.tick().await.unwrap(), "", "nothing left to retry");

    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "panic, second job, retried first job"
    );
    assert_eq!(
        actor.send(Restarts).await.unwrap(),
        1,
        "no further restarts"
    );
}

/// Panics on the first request for a `boom…` name. Every other request is slow (an issuer
/// answering over the network): it says it has started, stays in flight until the boom
/// happened (at most 5 s) and a little longer, then delegates to the Local CA.
struct SlowOrBoom {
    inner: LocalIssuer,
    booms: Arc<AtomicUsize>,
    in_flight: Arc<AtomicUsize>,
}

impl IssuerConnector for SlowOrBoom {
    fn issue<'a>(
        &'a self,
        req: &'a IssuanceRequest,
    ) -> BoxFuture<'a, Result<IssuanceResult, ConnectorError>> {
        Box::pin(async move {
            if req.common_name.starts_with("boom") && self.booms.fetch_add(1, Ordering::SeqCst) == 0
            {
                panic!("boom");
            }
            self.in_flight.fetch_add(1, Ordering::SeqCst);
            for _ in 0..500 {
                if self.booms.load(Ordering::SeqCst) > 0 {
                    break;
                }
                tokio::time::sleep(StdDuration::from_millis(10)).await;
            }
            tokio::time::sleep(StdDuration::from_millis(50)).await;
            self.inner.issue(req).await
        })
    }

    fn revoke<'a>(
        &'a self,
        serial_hex: &'a str,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<(), ConnectorError>> {
        self.inner.revoke(serial_hex, reason)
    }

    fn ca_chain(&self) -> Result<String, ConnectorError> {
        self.inner.ca_chain()
    }
}

/// A crash fails only the call in hand: a call already in flight on the same issuer (here
/// a slow one) still completes; it is not dropped with the crashed connector's actor.
#[actix::test]
async fn panic_does_not_fail_calls_in_flight_on_the_same_issuer() {
    let booms = Arc::new(AtomicUsize::new(0));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut types = ConnectorTypes::native();
    {
        let (booms, in_flight) = (booms.clone(), in_flight.clone());
        types.register(
            "slow-or-boom",
            Arc::new(move |_config: &Value, ctx: &ConnectorContext| {
                let inner = LocalIssuer::from_config(&json!({}), ctx)?;
                Ok(Arc::new(SlowOrBoom {
                    inner,
                    booms: booms.clone(),
                    in_flight: in_flight.clone(),
                }) as Arc<dyn IssuerConnector>)
            }),
        );
    }
    let env = Env::new(types).await;
    env.seed_issuer("iss-slow", "slow-or-boom").await;
    env.create_certificate("slow", "iss-slow", None).await;
    env.create_certificate("boom", "iss-slow", None).await;
    let pipeline = env.pipeline(KeygenMode::Server, 30);
    let slow = env.due_for("slow").await.remove(0);
    let boom = env.due_for("boom").await.remove(0);
    let (slow_id, boom_id) = (slow.id.clone(), boom.id.clone());

    let (a, b) = tokio::join!(pipeline.process(slow), async {
        // Crash the connector while the slow call is inside it.
        while in_flight.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(StdDuration::from_millis(5)).await;
        }
        pipeline.process(boom).await
    });
    a.unwrap();
    b.unwrap();

    let crashed = env.job(&boom_id).await;
    assert_eq!(crashed.status, JobStatus::Failed);
    assert!(
        crashed.last_error.as_deref().unwrap().contains("panic"),
        "{:?}",
        crashed.last_error
    );
    let slow_job = env.job(&slow_id).await;
    assert_eq!(
        slow_job.status,
        JobStatus::Completed,
        "in-flight call lost: {:?}",
        slow_job.last_error
    );
    assert_eq!(
        certificates::versions(&env.store, "slow")
            .await
            .unwrap()
            .len(),
        1
    );
    let actor = env
        .registry
        .send(Lookup("iss-slow".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        actor.send(Restarts).await.unwrap(),
        1,
        "the crashed connector was replaced"
    );
}

// ---------------------------------------------------------------------------------------
// 3. Job timeout reaper
// ---------------------------------------------------------------------------------------

#[actix::test]
async fn reaper_times_out_awaiting_csr_and_recovers_lost_leases() {
    let env = Env::new(ConnectorTypes::native()).await;
    env.seed_issuer("iss-local", "local").await;
    for id in ["mc-waiting", "mc-orphan", "mc-busy"] {
        env.create_certificate(id, "iss-local", None).await;
    }
    let pipeline = env.pipeline(KeygenMode::Agent, 30);
    let t0 = env.clock.now();

    // mc-waiting: AwaitingCSR (agent keygen, no agent answers).
    let waiting = env.due_for("mc-waiting").await.remove(0);
    let waiting_id = waiting.id.clone();
    pipeline.process(waiting).await.unwrap();
    assert_eq!(env.job(&waiting_id).await.status, JobStatus::AwaitingCSR);

    // mc-orphan: Running with a lease that already ended (its processor died).
    // mc-busy: Running with a live lease (10 minutes left).
    let mut running = Vec::new();
    for (id, lease) in [
        ("mc-orphan", t0 - Duration::minutes(1)),
        ("mc-busy", t0 + Duration::minutes(10)),
    ] {
        let job = env.due_for(id).await.remove(0);
        let changes = Changes {
            lease_expires_at: Some(certctl_core::timestamp::format(lease)),
            count_attempt: true,
            ..Changes::default()
        };
        let job = jobs::transition(
            &env.store,
            &job.id,
            JobEvent::Start,
            changes,
            &env.now(),
            &Actor::system(),
        )
        .await
        .unwrap();
        assert_eq!(job.status, JobStatus::Running);
        running.push(job.id);
    }
    let (orphan_id, busy_id) = (running[0].clone(), running[1].clone());

    let reaper = Arc::new(JobTimeoutReaper {
        pipeline: pipeline.clone(),
        awaiting_csr: StdDuration::from_secs(3600),
        awaiting_approval: StdDuration::from_secs(86_400),
    });

    // Now: only the expired lease is recovered.
    assert_eq!(
        reaper.clone().tick().await.unwrap(),
        "0 timed out, 1 requeued after lost lease"
    );
    let orphan = env.job(&orphan_id).await;
    assert_eq!(
        (orphan.status, orphan.attempts),
        (JobStatus::Pending, 1),
        "requeued, attempt kept"
    );
    assert_eq!(env.job(&busy_id).await.status, JobStatus::Running);
    assert_eq!(env.job(&waiting_id).await.status, JobStatus::AwaitingCSR);

    // 59 minutes: the CSR wait is still within its timeout; the busy job's lease ran out.
    env.clock.set(t0 + Duration::minutes(59));
    assert_eq!(
        reaper.clone().tick().await.unwrap(),
        "0 timed out, 1 requeued after lost lease"
    );
    assert_eq!(env.job(&waiting_id).await.status, JobStatus::AwaitingCSR);
    assert_eq!(env.job(&busy_id).await.status, JobStatus::Pending);

    // 61 minutes: the AwaitingCSR job fails with a clear error.
    env.clock.set(t0 + Duration::minutes(61));
    assert_eq!(
        reaper.clone().tick().await.unwrap(),
        "1 timed out, 0 requeued after lost lease"
    );
    let timed_out = env.job(&waiting_id).await;
    assert_eq!(timed_out.status, JobStatus::Failed);
    let error = timed_out.last_error.unwrap();
    assert!(
        error.contains("timed out") && error.contains("AwaitingCSR"),
        "{error}"
    );
    assert_eq!(reaper.tick().await.unwrap(), "", "nothing left to reap");
    assert_eq!(env.job(&orphan_id).await.status, JobStatus::Pending);
}

// ---------------------------------------------------------------------------------------
// 4. Notification retry and dead letter
// ---------------------------------------------------------------------------------------

/// The row of the test's notification (dedup key `test:dead-letter`).
async fn notification_row(store: &Store) -> (String, i64, Option<String>, Option<String>) {
    support::notification_row(store, "dedup_key", "test:dead-letter").await
}

/// A notifier that never delivers.
struct AlwaysFails(AtomicUsize);

impl Notifier for AlwaysFails {
    fn send<'a>(&'a self, _notification: &'a Notification) -> BoxFuture<'a, Result<(), String>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Err("smtp relay refused the message".to_owned()) })
    }
}

#[actix::test]
async fn failing_notifier_backs_off_then_dead_letters() {
    let env = Env::new(ConnectorTypes::native()).await;
    let pipeline = env.pipeline(KeygenMode::Agent, 30);
    let notifier = Arc::new(AlwaysFails(AtomicUsize::new(0)));
    let mut notifiers = Notifiers::default();
    notifiers.register("email", notifier.clone());
    let processor = Arc::new(NotificationProcessor {
        pipeline: pipeline.clone(),
        notifiers,
        concurrency: 8,
    });
    let retry = Arc::new(NotificationRetry(pipeline.clone()));

    let n = NewNotification {
        notification_type: "ExpirationWarning",
        certificate_id: None,
        channel: "email",
        recipient: Some("ops@example.test".into()),
        message: "test message".into(),
        dedup_key: Some("test:dead-letter".into()),
    };
    assert!(
        notifications::enqueue(&env.store, &n, &env.now())
            .await
            .unwrap()
    );

    let mut delays = Vec::new();
    for attempt in 1..=5_i64 {
        assert_eq!(
            processor.clone().tick().await.unwrap(),
            "0 sent, 1 failed, 0 without notifier",
            "attempt {attempt}"
        );
        let (status, attempts, next, error) = notification_row(&env.store).await;
        assert_eq!((status.as_str(), attempts), ("Failed", attempt));
        assert_eq!(error.as_deref(), Some("smtp relay refused the message"));
        let next = certctl_core::timestamp::parse(&next.unwrap()).unwrap();
        delays.push(next - env.clock.now());

        // Not yet due: the retry loop leaves it Failed, the processor does not see it.
        env.clock.set(next - Duration::seconds(1));
        assert_eq!(retry.clone().tick().await.unwrap(), "");
        assert_eq!(processor.clone().tick().await.unwrap(), "");
        assert_eq!(notification_row(&env.store).await.0, "Failed");

        env.clock.set(next);
        let (expected_summary, expected_status) = if attempt < 5 {
            ("1 requeued, 0 dead-lettered", "Pending")
        } else {
            ("0 requeued, 1 dead-lettered", "DeadLetter")
        };
        assert_eq!(
            retry.clone().tick().await.unwrap(),
            expected_summary,
            "attempt {attempt}"
        );
        assert_eq!(
            notification_row(&env.store).await.0,
            expected_status,
            "after attempt {attempt}"
        );
    }

    // Backoff grows: 1, 2, 4, 8, 16 minutes.
    assert!(delays.windows(2).all(|w| w[1] > w[0]), "{delays:?}");
    assert_eq!(delays, [1, 2, 4, 8, 16].map(Duration::minutes).to_vec());

    // Dead letters stay dead: no more attempts, however long we wait.
    let (status, attempts, next, error) = notification_row(&env.store).await;
    assert_eq!((status.as_str(), attempts, next), ("DeadLetter", 5, None));
    assert_eq!(
        error.as_deref(),
        Some("gave up after 5 attempts; last error: smtp relay refused the message")
    );
    env.clock.advance(Duration::days(1));
    assert_eq!(processor.tick().await.unwrap(), "");
    assert_eq!(retry.tick().await.unwrap(), "");
    assert_eq!(notification_row(&env.store).await.0, "DeadLetter");
    assert_eq!(
        notifier.0.load(Ordering::SeqCst),
        5,
        "exactly five delivery attempts"
    );
}

// ---------------------------------------------------------------------------------------
// 5. Asynchronous issuer orders
// ---------------------------------------------------------------------------------------

/// An asynchronous CA over the Local CA: `place_order` answers `pending(ord-N)`; the order
/// is issued at its `ready_after`-th status poll (`usize::MAX`: never).
struct Deferred {
    inner: LocalIssuer,
    ready_after: usize,
    orders: Arc<std::sync::Mutex<Vec<IssuanceRequest>>>,
    polls: Arc<AtomicUsize>,
}

impl IssuerConnector for Deferred {
    fn issue<'a>(
        &'a self,
        _req: &'a IssuanceRequest,
    ) -> BoxFuture<'a, Result<IssuanceResult, ConnectorError>> {
        Box::pin(async { Err(ConnectorError::Unsupported("asynchronous only".into())) })
    }

    fn place_order<'a>(
        &'a self,
        req: &'a IssuanceRequest,
    ) -> BoxFuture<'a, Result<OrderOutcome, ConnectorError>> {
        let mut orders = self.orders.lock().unwrap();
        orders.push(req.clone());
        let id = format!("ord-{}", orders.len() - 1);
        Box::pin(async move { Ok(OrderOutcome::Pending(id)) })
    }

    fn order_status<'a>(
        &'a self,
        order_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<IssuanceResult>, ConnectorError>> {
        Box::pin(async move {
            let polls = self.polls.fetch_add(1, Ordering::SeqCst) + 1;
            let n: usize = order_id.trim_start_matches("ord-").parse().unwrap();
            let req = self.orders.lock().unwrap()[n].clone();
            if polls < self.ready_after {
                return Ok(None);
            }
            self.inner.issue(&req).await.map(Some)
        })
    }

    fn revoke<'a>(
        &'a self,
        serial_hex: &'a str,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<(), ConnectorError>> {
        self.inner.revoke(serial_hex, reason)
    }

    fn ca_chain(&self) -> Result<String, ConnectorError> {
        self.inner.ca_chain()
    }
}

/// Registers a [`Deferred`] type; answers its (orders, polls) counters.
fn register_deferred(
    types: &mut ConnectorTypes,
    name: &str,
    ready_after: usize,
) -> (
    Arc<std::sync::Mutex<Vec<IssuanceRequest>>>,
    Arc<AtomicUsize>,
) {
    let orders = Arc::new(std::sync::Mutex::new(Vec::new()));
    let polls = Arc::new(AtomicUsize::new(0));
    let (o, p) = (orders.clone(), polls.clone());
    types.register(
        name,
        Arc::new(move |_config: &Value, ctx: &ConnectorContext| {
            Ok(Arc::new(Deferred {
                inner: LocalIssuer::from_config(&json!({}), ctx)?,
                ready_after,
                orders: o.clone(),
                polls: p.clone(),
            }) as Arc<dyn IssuerConnector>)
        }),
    );
    (orders, polls)
}

/// A pending order is stored on the job and the job requeued (lease released, no extra
/// attempt) for the first backoff step, 5 s ± 20 %; polls follow the schedule; the order is
/// placed once and the certificate ends Active. An order still pending at its deadline
/// (24 h) fails the job clearly and is forgotten.
#[actix::test]
async fn pending_orders_are_persisted_polled_on_the_backoff_and_bounded_by_the_deadline() {
    let mut types = ConnectorTypes::native();
    let (orders, polls) = register_deferred(&mut types, "deferred", 3);
    let (never_orders, _) = register_deferred(&mut types, "never", usize::MAX);
    let env = Env::new(types).await;
    env.seed_issuer("iss-deferred", "deferred").await;
    env.create_certificate("mc-async", "iss-deferred", None)
        .await;
    let pipeline = env.pipeline(KeygenMode::Server, 30);

    let job = env.due_for("mc-async").await.remove(0);
    let job_id = job.id.clone();
    pipeline.process(job).await.unwrap();
    let waiting = env.job(&job_id).await;
    assert_eq!(
        waiting.status,
        JobStatus::Pending,
        "{:?}",
        waiting.last_error
    );
    assert_eq!(waiting.issuer_order_id.as_deref(), Some("ord-0"));
    assert_eq!(waiting.attempts, 1);
    assert!(
        waiting.csr_pem.is_some(),
        "the CSR the order was placed with is kept"
    );
    let next =
        |j: &Job| certctl_core::timestamp::parse(j.scheduled_at.as_deref().unwrap()).unwrap();
    let delay = next(&waiting) - env.clock.now();
    assert!(
        delay >= Duration::seconds(4) && delay <= Duration::seconds(6),
        "{delay}"
    );
    assert!(
        env.due_for("mc-async").await.is_empty(),
        "not due before its poll"
    );

    // Two pending polls (15 s, then 45 s ± 20 %), then issued at the third.
    for (poll, step) in [(1, 15), (2, 45)] {
        env.clock.set(next(&env.job(&job_id).await));
        pipeline
            .process(env.due_for("mc-async").await.remove(0))
            .await
            .unwrap();
        let j = env.job(&job_id).await;
        assert_eq!(j.status, JobStatus::Pending);
        assert_eq!((j.issuer_order_polls, j.attempts), (poll, 1));
        let delay = (next(&j) - env.clock.now()).as_seconds_f64();
        let step = f64::from(step);
        assert!(
            delay >= step * 0.8 - 1.0 && delay <= step * 1.2 + 1.0,
            "{delay}"
        );
    }
    env.clock.set(next(&env.job(&job_id).await));
    pipeline
        .process(env.due_for("mc-async").await.remove(0))
        .await
        .unwrap();
    let done = env.job(&job_id).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.last_error);
    assert_eq!(env.certificate("mc-async").await.status, "Active");
    assert_eq!(orders.lock().unwrap().len(), 1, "one order");
    assert_eq!(polls.load(Ordering::SeqCst), 3);

    // The deadline: an order that never finishes fails its job after 24 h.
    env.seed_issuer_more("iss-never", "never").await;
    env.create_certificate("mc-never", "iss-never", None).await;
    let job = env.due_for("mc-never").await.remove(0);
    let never_id = job.id.clone();
    pipeline.process(job).await.unwrap();
    assert_eq!(env.job(&never_id).await.status, JobStatus::Pending);
    env.clock.advance(Duration::hours(25));
    pipeline
        .process(env.due_for("mc-never").await.remove(0))
        .await
        .unwrap();
    let failed = env.job(&never_id).await;
    assert_eq!(failed.status, JobStatus::Failed);
    let error = failed.last_error.clone().unwrap();
    assert!(
        error.contains("ord-0") && error.contains("deadline"),
        "{error}"
    );
    assert!(failed.scheduled_at.is_none(), "no automatic retry");
    assert_eq!(failed.issuer_order_id, None, "a manual retry orders anew");
    assert_eq!(never_orders.lock().unwrap().len(), 1);
}
