//! The bounded queue between request handling and the API-call table, and the counters
//! that say what went through it.
//!
//! Recording a call never waits and never grows memory: [`ApiCallLog::record`] is a
//! `try_send` into a fixed-capacity channel, and a full queue drops the record, counts it
//! and warns at most once per [`DROP_WARNING_INTERVAL`]. One [`ApiCallWriter`] drains the
//! queue in batches (one transaction each) so it keeps up with bursts. OCSP and CRL
//! requests are only counted here: relying parties poll them, and a row each would drown
//! the log.
//!
//! What is recorded and when stays with the request pipeline (`api::request_context`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::ApiCall;
use crate::store::Store;

/// Queue capacity when the operator does not choose one.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// At most one "queue full" warning per this interval, however many records are dropped.
pub const DROP_WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// Most rows the writer inserts in one transaction.
pub const WRITE_BATCH: usize = 1_000;

/// A PKI request that is counted instead of logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PkiRequest {
    /// `/.well-known/pki/ocsp/…`
    Ocsp,
    /// `/.well-known/pki/crl/…`
    Crl,
}

/// Lets one caller through per interval (lock-free; the first call always passes).
#[derive(Debug)]
struct WarnGate {
    base: Instant,
    /// Milliseconds since `base` of the last warning, `u64::MAX` before the first.
    last_ms: AtomicU64,
    interval: Duration,
}

impl WarnGate {
    fn new(interval: Duration) -> Self {
        Self {
            base: Instant::now(),
            last_ms: AtomicU64::new(u64::MAX),
            interval,
        }
    }

    fn allow(&self, now: Instant) -> bool {
        let now_ms = u64::try_from(now.saturating_duration_since(self.base).as_millis())
            .unwrap_or(u64::MAX - 1);
        let interval_ms = u64::try_from(self.interval.as_millis()).unwrap_or(u64::MAX);
        let last = self.last_ms.load(Ordering::Relaxed);
        if last != u64::MAX && now_ms < last.saturating_add(interval_ms) {
            return false;
        }
        self.last_ms
            .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }
}

#[derive(Debug)]
struct Shared {
    capacity: usize,
    dropped: AtomicU64,
    recorded: AtomicU64,
    failed: AtomicU64,
    ocsp: AtomicU64,
    crl: AtomicU64,
    warn: WarnGate,
}

/// The sending side, shared by every request (cheap to clone).
#[derive(Debug, Clone)]
pub struct ApiCallLog {
    tx: mpsc::Sender<ApiCall>,
    shared: Arc<Shared>,
}

/// The receiving side; run it once with [`ApiCallWriter::run`].
#[derive(Debug)]
pub struct ApiCallWriter {
    rx: mpsc::Receiver<ApiCall>,
    shared: Arc<Shared>,
}

impl ApiCallLog {
    /// A queue holding at most `capacity` records (at least one), and its writer.
    pub fn new(capacity: usize) -> (Self, ApiCallWriter) {
        let capacity = capacity.max(1);
        let (tx, rx) = mpsc::channel(capacity);
        let shared = Arc::new(Shared {
            capacity,
            dropped: AtomicU64::new(0),
            recorded: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            ocsp: AtomicU64::new(0),
            crl: AtomicU64::new(0),
            warn: WarnGate::new(DROP_WARNING_INTERVAL),
        });
        let writer = ApiCallWriter {
            rx,
            shared: shared.clone(),
        };
        (Self { tx, shared }, writer)
    }

    /// Queues `call` for the writer without waiting; a full queue drops it (counted).
    pub fn record(&self, call: ApiCall) {
        match self.tx.try_send(call) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let dropped = self.shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if self.shared.warn.allow(Instant::now()) {
                    tracing::warn!(
                        dropped,
                        capacity = self.shared.capacity,
                        "API-call log queue full: dropping records (warned at most once a minute; see CERTCTL_API_CALL_LOG_QUEUE)"
                    );
                }
            }
            // Only at shutdown (or in tests without a writer): nothing is waiting for it.
            Err(TrySendError::Closed(_)) => {}
        }
    }

    /// Counts one OCSP or CRL request.
    pub fn count_pki(&self, request: PkiRequest) {
        let counter = match request {
            PkiRequest::Ocsp => &self.shared.ocsp,
            PkiRequest::Crl => &self.shared.crl,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Records dropped because the queue was full, since start.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Records waiting for the writer now (never more than [`Self::capacity`]).
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// The most records the queue holds.
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// Records written to the table, since start.
    pub fn recorded(&self) -> u64 {
        self.shared.recorded.load(Ordering::Relaxed)
    }

    /// Records lost because the database refused or could not take them, since start.
    pub fn failed(&self) -> u64 {
        self.shared.failed.load(Ordering::Relaxed)
    }

    /// OCSP requests answered, since start.
    pub fn ocsp_requests(&self) -> u64 {
        self.shared.ocsp.load(Ordering::Relaxed)
    }

    /// CRL requests answered, since start.
    pub fn crl_requests(&self) -> u64 {
        self.shared.crl.load(Ordering::Relaxed)
    }
}

impl ApiCallWriter {
    /// Writes queued records in batches until `shutdown` completes (or every sender is
    /// gone), then refuses new records and writes what is still queued. The caller bounds
    /// the whole drain with its shutdown budget.
    pub async fn run(mut self, store: Store, shutdown: impl Future<Output = ()>) {
        let mut batch = Vec::with_capacity(WRITE_BATCH);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                n = self.rx.recv_many(&mut batch, WRITE_BATCH) => {
                    if n == 0 {
                        return;
                    }
                    self.write(&store, &mut batch).await;
                }
            }
        }
        self.rx.close();
        while self.rx.recv_many(&mut batch, WRITE_BATCH).await > 0 {
            self.write(&store, &mut batch).await;
        }
    }

    async fn write(&self, store: &Store, batch: &mut Vec<ApiCall>) {
        let n = batch.len() as u64;
        match super::append_batch(store, batch).await {
            Ok(()) => {
                self.shared.recorded.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                self.shared.failed.fetch_add(n, Ordering::Relaxed);
                tracing::warn!(error = %e, records = n, "could not record API calls");
            }
        }
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(n: usize) -> ApiCall {
        ApiCall {
            request_id: format!("req-{n}"),
            method: "GET".into(),
            path: "/api/v1/teams".into(),
            actor: "anonymous".into(),
            body_sha256: None,
            status: 401,
            latency_ms: 0,
            timestamp: "2026-03-01T00:00:00.000Z".into(),
        }
    }

    #[test]
    fn warnings_are_rate_limited() {
        let gate = WarnGate::new(Duration::from_secs(60));
        let t0 = gate.base;
        assert!(gate.allow(t0), "the first drop warns");
        assert!(!gate.allow(t0 + Duration::from_secs(1)));
        assert!(!gate.allow(t0 + Duration::from_millis(59_999)));
        assert!(gate.allow(t0 + Duration::from_secs(60)));
        assert!(!gate.allow(t0 + Duration::from_secs(61)));
    }

    /// With the writer not draining, a full queue drops and counts every further record,
    /// each `record` returning at once; the queue never holds more than its capacity.
    #[tokio::test]
    async fn overflow_is_counted_and_never_blocks() {
        let (log, writer) = ApiCallLog::new(8);
        for n in 0..10_000 {
            log.record(call(n));
            assert!(log.queued() <= 8);
        }
        assert_eq!(log.capacity(), 8);
        assert_eq!(log.queued(), 8);
        assert_eq!(log.dropped(), 10_000 - 8);
        assert_eq!(log.recorded(), 0);

        // Once a writer runs, what was queued reaches the table and the queue empties.
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::connect(&crate::store::default_sqlite_url(dir.path()))
            .await
            .expect("store");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(writer.run(store.clone(), async {
            let _ = stopped.await;
        }));
        let _ = stop.send(());
        task.await.expect("writer");
        assert_eq!(log.recorded(), 8);
        assert_eq!(log.queued(), 0);
        let rows: i64 = sqlx::Row::try_get(
            &sqlx::query("SELECT COUNT(*) FROM api_calls")
                .fetch_one(store.pool())
                .await
                .expect("count"),
            0,
        )
        .expect("count");
        assert_eq!(rows, 8);
        // After shutdown the queue is closed: recording neither blocks nor counts a drop.
        log.record(call(0));
        assert_eq!(log.dropped(), 10_000 - 8);
        store.close().await;
    }

    #[test]
    fn pki_requests_are_counted() {
        let (log, _writer) = ApiCallLog::new(1);
        log.count_pki(PkiRequest::Ocsp);
        log.count_pki(PkiRequest::Ocsp);
        log.count_pki(PkiRequest::Crl);
        assert_eq!((log.ocsp_requests(), log.crl_requests()), (2, 1));
        assert_eq!(log.queued(), 0);
    }
}
