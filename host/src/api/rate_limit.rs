//! Per-caller token buckets: each API key (or, unauthenticated, each client IP) gets its own.
//!
//! The table is bounded: anonymous callers choose their own keys (one per source address),
//! so an unbounded map would grow with every address that ever knocked. Keys are spread
//! over [`SHARDS`] independently locked shards, each holding at most its share of the
//! capacity. Inserting into a full shard sweeps it once: every bucket that has refilled to
//! its burst goes (it carries no state — a fresh bucket would answer the same), and if that
//! frees less than a quarter of the shard, the least recently used buckets go too. A sweep
//! is O(shard size) but frees at least a quarter of it, so its cost is amortised over the
//! inserts that follow; requests for keys already present never scan.
//!
//! Hand-written rather than a crate (`governor`): its keyed limiter is unbounded unless
//! the caller runs `retain_recent` on a timer, which is the very scan this avoids.

use std::collections::HashMap;
use std::hash::BuildHasher as _;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

/// Number of independently locked shards.
pub const SHARDS: usize = 16;

/// Keys kept when the caller does not choose a capacity.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// Bucket parameters.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    /// Tokens added per second.
    pub per_second: f64,
    /// Bucket capacity.
    pub burst: u32,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
    /// The rate of the last check, so a sweep can tell whether the bucket has refilled.
    per_second: f64,
    burst: f64,
}

impl Bucket {
    /// Whether the bucket holds its whole burst again at `now` (forgetting it loses nothing).
    fn is_full(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * self.per_second >= self.burst
    }
}

#[derive(Debug)]
struct Shard {
    buckets: HashMap<Box<str>, Bucket>,
    /// This shard's share of the table's capacity.
    capacity: usize,
}

impl Shard {
    /// Makes room for at least one key: drops every full bucket, then, if less than a
    /// quarter of the capacity was freed, the least recently used until it is.
    fn sweep(&mut self, now: Instant) {
        let capacity = self.capacity;
        let target = (capacity / 4).max(1);
        let before = self.buckets.len();
        self.buckets.retain(|_, b| !b.is_full(now));
        let freed = before - self.buckets.len();
        let still_over = (self.buckets.len() + 1).saturating_sub(capacity);
        let evict = target.saturating_sub(freed).max(still_over);
        if evict == 0 {
            return;
        }
        if evict >= self.buckets.len() {
            self.buckets.clear();
            return;
        }
        let mut ages: Vec<Instant> = self.buckets.values().map(|b| b.last).collect();
        let (_, &mut threshold, _) = ages.select_nth_unstable(evict - 1);
        // Ties at the threshold may leave a few more than `evict`: never fewer.
        let mut left = evict;
        self.buckets.retain(|_, b| {
            if left > 0 && b.last <= threshold {
                left -= 1;
                false
            } else {
                true
            }
        });
    }
}

/// Keyed token-bucket limiter with a bounded table (see the module comment). Critical
/// sections are a few arithmetic operations on one shard, so plain mutexes are cheaper
/// than anything lock-free here.
#[derive(Debug)]
pub struct RateLimiter {
    shards: Box<[Mutex<Shard>]>,
    capacity: usize,
    hasher: std::collections::hash_map::RandomState,
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl RateLimiter {
    /// A limiter that never holds more than `capacity` keys (at least one), split as
    /// evenly as possible over [`SHARDS`] shards (fewer when the capacity is smaller).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let shards = SHARDS.min(capacity);
        let (share, extra) = (capacity / shards, capacity % shards);
        Self {
            shards: (0..shards)
                .map(|i| {
                    Mutex::new(Shard {
                        buckets: HashMap::new(),
                        capacity: share + usize::from(i < extra),
                    })
                })
                .collect(),
            capacity,
            hasher: Default::default(),
        }
    }

    /// The most keys the table holds at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Keys held now (for metrics and tests).
    pub fn len(&self) -> usize {
        (0..self.shards.len())
            .map(|i| self.shard(i).buckets.len())
            .sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, i: usize) -> MutexGuard<'_, Shard> {
        match self.shards[i].lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Takes one token from `key`'s bucket, or says how many whole seconds until one is due.
    pub fn check(&self, key: &str, rate: Rate, now: Instant) -> Result<(), u64> {
        let index = (self.hasher.hash_one(key) % self.shards.len() as u64) as usize;
        let mut shard = self.shard(index);
        let burst = f64::from(rate.burst.max(1));
        if !shard.buckets.contains_key(key) {
            if shard.buckets.len() >= shard.capacity {
                shard.sweep(now);
            }
            shard.buckets.insert(
                key.into(),
                Bucket {
                    tokens: burst,
                    last: now,
                    per_second: rate.per_second,
                    burst,
                },
            );
        }
        let Some(bucket) = shard.buckets.get_mut(key) else {
            // Just inserted under the same lock.
            return Ok(());
        };
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate.per_second).min(burst);
        // Concurrent callers may pass instants slightly out of order: never go back.
        bucket.last = bucket.last.max(now);
        bucket.per_second = rate.per_second;
        bucket.burst = burst;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else if rate.per_second <= 0.0 {
            Err(60)
        } else {
            let wait = (1.0 - bucket.tokens) / rate.per_second;
            Err(wait.ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_refill() {
        let l = RateLimiter::default();
        let rate = Rate {
            per_second: 2.0,
            burst: 3,
        };
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.check("k", rate, t0).is_ok());
        }
        assert_eq!(l.check("k", rate, t0), Err(1));
        // Other keys are independent.
        assert!(l.check("other", rate, t0).is_ok());
        // Half a second refills one token at 2/s.
        assert!(l.check("k", rate, t0 + Duration::from_millis(500)).is_ok());
        assert!(l.check("k", rate, t0 + Duration::from_millis(500)).is_err());
    }

    /// 100,000 distinct callers, all still mid-burst (nothing refills: time stands still),
    /// so only the least-recently-used rule makes room; the table never exceeds its bound.
    #[test]
    fn capacity_is_never_exceeded() {
        let l = RateLimiter::new(10_000);
        assert_eq!(l.capacity(), 10_000);
        let rate = Rate {
            per_second: 1.0,
            burst: 5,
        };
        let t0 = Instant::now();
        for i in 0..100_000u32 {
            let now = t0 + Duration::from_micros(u64::from(i));
            assert!(l.check(&format!("ip:10.{i}"), rate, now).is_ok());
            if i % 997 == 0 {
                assert!(l.len() <= 10_000, "{} keys after {i}", l.len());
            }
        }
        let n = l.len();
        assert!(n <= 10_000, "{n} keys");
        // Sweeps free a quarter of a shard at a time, so the table stays mostly in use.
        assert!(n >= 7_000, "{n} keys: evicting far more than needed");
    }

    #[test]
    fn tiny_capacities_hold_exactly() {
        for capacity in [0, 1, 3, 15, 16, 17, 100] {
            let l = RateLimiter::new(capacity);
            let rate = Rate {
                per_second: 0.0,
                burst: 1,
            };
            let t0 = Instant::now();
            for i in 0..1_000 {
                let _ = l.check(&format!("k{i}"), rate, t0);
            }
            assert_eq!(l.capacity(), capacity.max(1));
            assert!(
                l.len() <= capacity.max(1),
                "capacity {capacity}: {}",
                l.len()
            );
            assert!(!l.is_empty());
        }
    }

    /// A drained bucket (a caller being throttled) outlives a flood of one-off callers whose
    /// buckets have refilled, even though it is the least recently used key of all.
    #[test]
    fn a_drained_bucket_survives_idle_ones() {
        let l = RateLimiter::new(1_000);
        let slow = Rate {
            per_second: 1.0 / 3600.0,
            burst: 5,
        };
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(l.check("ip:attacker", slow, t0).is_ok());
        }
        assert!(l.check("ip:attacker", slow, t0).is_err());
        // One-off callers at 1 ms apart, refilling one token in 100 ms.
        let quick = Rate {
            per_second: 10.0,
            burst: 2,
        };
        for i in 0..100_000u64 {
            let now = t0 + Duration::from_millis(i + 1);
            assert!(l.check(&format!("ip:{i}"), quick, now).is_ok());
        }
        assert!(l.len() <= 1_000);
        // Still throttled: had it been evicted, a fresh bucket would grant a full burst.
        let end = t0 + Duration::from_millis(100_001);
        assert!(l.check("ip:attacker", slow, end).is_err());
    }

    /// When nothing has refilled, the least recently used go first: a caller that keeps
    /// coming back keeps its (drained) bucket.
    #[test]
    fn recently_used_buckets_are_kept() {
        let l = RateLimiter::new(64);
        let rate = Rate {
            per_second: 0.0,
            burst: 1,
        };
        let t0 = Instant::now();
        assert!(l.check("ip:busy", rate, t0).is_ok());
        for i in 0..10_000u64 {
            let now = t0 + Duration::from_micros(i + 1);
            let _ = l.check(&format!("ip:{i}"), rate, now);
            assert!(l.check("ip:busy", rate, now).is_err(), "evicted after {i}");
        }
    }
}
