//! A scheduler loop: runs one [`LoopTask`] every interval, never two ticks at once (a tick
//! that finds the previous one still running is skipped and logged), can be poked to run
//! early, and stops cleanly within a drain budget.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures_util::future::BoxFuture;
use tokio::sync::watch;
use tracing::Instrument as _;

/// The work of one loop. Returns a short summary for the log on success.
pub trait LoopTask: Send + Sync + 'static {
    /// Loop name for logs (`renewal_check`).
    fn name(&self) -> &'static str;
    /// One tick.
    fn tick(self: Arc<Self>) -> BoxFuture<'static, Result<String, String>>;
}

/// The actor driving a [`LoopTask`].
pub struct LoopActor {
    task: Arc<dyn LoopTask>,
    interval: Duration,
    in_flight: bool,
    poked_while_busy: bool,
    tick_seq: u64,
    idle: watch::Sender<bool>,
    interval_handle: Option<SpawnHandle>,
}

impl LoopActor {
    /// A loop running `task` every `interval`.
    pub fn new(task: Arc<dyn LoopTask>, interval: Duration) -> Self {
        let (idle, _) = watch::channel(true);
        Self {
            task,
            interval,
            in_flight: false,
            poked_while_busy: false,
            tick_seq: 0,
            idle,
            interval_handle: None,
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>, reason: &'static str) {
        let name = self.task.name();
        if self.in_flight {
            if reason == "interval" {
                tracing::info!(
                    loop_name = name,
                    "previous tick still running; skipping this one"
                );
            } else {
                self.poked_while_busy = true;
            }
            return;
        }
        self.in_flight = true;
        self.tick_seq += 1;
        let _ = self.idle.send(false);
        let span = tracing::info_span!("loop", loop_name = name, tick = self.tick_seq, reason);
        let fut = self.task.clone().tick().instrument(span.clone());
        ctx.spawn(fut.into_actor(self).map(move |result, act, ctx| {
            let _enter = span.enter();
            match result {
                Ok(summary) if summary.is_empty() => tracing::debug!("tick done"),
                Ok(summary) => tracing::info!(%summary, "tick done"),
                Err(error) => tracing::warn!(%error, "tick failed"),
            }
            act.in_flight = false;
            let _ = act.idle.send(true);
            if act.poked_while_busy && act.interval_handle.is_some() {
                act.poked_while_busy = false;
                act.tick(ctx, "poke");
            }
        }));
    }
}

impl Actor for LoopActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        tracing::info!(loop_name = self.task.name(), interval = ?self.interval, "scheduler loop started");
        self.interval_handle =
            Some(ctx.run_interval(self.interval, |act, ctx| act.tick(ctx, "interval")));
        // First tick right away, so work left from before a restart is picked up promptly.
        self.tick(ctx, "startup");
    }
}

/// Run a tick now (e.g. a job became actionable). Coalesces with a running tick.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Poke;

impl Handler<Poke> for LoopActor {
    type Result = ();
    fn handle(&mut self, _: Poke, ctx: &mut Context<Self>) {
        if self.interval_handle.is_some() {
            self.tick(ctx, "poke");
        }
    }
}

/// Stop ticking and wait (up to the budget) for the tick in flight; answers whether it drained.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Shutdown(pub Duration);

impl Handler<Shutdown> for LoopActor {
    type Result = ResponseActFuture<Self, bool>;
    fn handle(&mut self, msg: Shutdown, ctx: &mut Context<Self>) -> Self::Result {
        if let Some(h) = self.interval_handle.take() {
            ctx.cancel_future(h);
        }
        let mut idle = self.idle.subscribe();
        let name = self.task.name();
        Box::pin(
            async move {
                tokio::time::timeout(msg.0, idle.wait_for(|idle| *idle))
                    .await
                    .is_ok()
            }
            .into_actor(self)
            .map(move |drained, _act, ctx| {
                if !drained {
                    tracing::warn!(loop_name = name, "tick still running at shutdown deadline");
                }
                ctx.stop();
                drained
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Slow {
        runs: AtomicUsize,
        max_parallel: AtomicUsize,
        current: AtomicUsize,
    }

    impl LoopTask for Slow {
        fn name(&self) -> &'static str {
            "slow"
        }
        fn tick(self: Arc<Self>) -> BoxFuture<'static, Result<String, String>> {
            Box::pin(async move {
                let now = self.current.fetch_add(1, Ordering::SeqCst) + 1;
                self.max_parallel.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(120)).await;
                self.current.fetch_sub(1, Ordering::SeqCst);
                self.runs.fetch_add(1, Ordering::SeqCst);
                Ok(String::new())
            })
        }
    }

    #[actix::test]
    async fn never_overlaps_and_drains_on_shutdown() {
        let task = Arc::new(Slow {
            runs: AtomicUsize::new(0),
            max_parallel: AtomicUsize::new(0),
            current: AtomicUsize::new(0),
        });
        let addr = LoopActor::new(task.clone(), Duration::from_millis(20)).start();
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(addr.send(Shutdown(Duration::from_secs(2))).await.unwrap());
        assert_eq!(task.max_parallel.load(Ordering::SeqCst), 1);
        let runs = task.runs.load(Ordering::SeqCst);
        // 400 ms of 120 ms ticks with 20 ms interval: about 3–4 runs, never 20.
        assert!((2..=5).contains(&runs), "runs = {runs}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            task.runs.load(Ordering::SeqCst),
            runs,
            "no ticks after shutdown"
        );
    }

    #[actix::test]
    async fn poke_runs_early() {
        let task = Arc::new(Slow {
            runs: AtomicUsize::new(0),
            max_parallel: AtomicUsize::new(0),
            current: AtomicUsize::new(0),
        });
        let addr = LoopActor::new(task.clone(), Duration::from_secs(3600)).start();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(task.runs.load(Ordering::SeqCst), 1, "startup tick");
        addr.send(Poke).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(task.runs.load(Ordering::SeqCst), 2);
    }
}
