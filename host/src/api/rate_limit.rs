//! Per-caller token buckets: each API key (or, unauthenticated, each client IP) gets its own.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

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
}

/// Keyed token-bucket limiter. Critical sections are a few arithmetic operations, so a
/// plain mutex is cheaper than anything lock-free here.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// Takes one token from `key`'s bucket, or says how many whole seconds until one is due.
    pub fn check(&self, key: &str, rate: Rate, now: Instant) -> Result<(), u64> {
        let mut buckets = match self.buckets.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let burst = f64::from(rate.burst.max(1));
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate.per_second).min(burst);
        bucket.last = now;
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
}
