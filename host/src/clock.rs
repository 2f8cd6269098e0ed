//! The server's notion of "now", injectable so tests can move time.

use std::fmt::Debug;

use time::OffsetDateTime;

/// A source of the current time.
pub trait Clock: Send + Sync + Debug {
    /// The current instant.
    fn now(&self) -> OffsetDateTime;

    /// The current instant in the canonical stored form.
    fn now_text(&self) -> String {
        certctl_core::timestamp::format(self.now())
    }
}

/// Wall-clock time.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that only moves when told to: lets tests walk a certificate through its
/// alert thresholds in milliseconds.
#[derive(Debug)]
pub struct ManualClock {
    now: std::sync::Mutex<OffsetDateTime>,
}

impl ManualClock {
    /// Starts at `start`.
    pub fn new(start: OffsetDateTime) -> Self {
        Self {
            now: std::sync::Mutex::new(start),
        }
    }

    /// Moves time forward (or back, with a negative duration).
    pub fn advance(&self, by: time::Duration) {
        if let Ok(mut now) = self.now.lock() {
            *now += by;
        }
    }

    /// Jumps to `at`.
    pub fn set(&self, at: OffsetDateTime) {
        if let Ok(mut now) = self.now.lock() {
            *now = at;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        match self.now.lock() {
            Ok(now) => *now,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }
}
