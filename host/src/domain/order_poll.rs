//! When to poll an issuer's asynchronous order next (DESIGN.md §2, issuer actors): bounded
//! backoff 5 s, 15 s, 45 s, 2 m, 5 m (then 5 m repeating), ±20 % jitter, until the order's
//! deadline. Pure: the caller supplies the clock reading and the jitter draw, so the
//! schedule is unit-tested here and the pipeline only applies it. What lives elsewhere:
//! persisting the order id and rescheduling the job (`pipeline::issuance`).

use std::time::Duration;

use time::OffsetDateTime;

/// The un-jittered delays, in seconds; the last repeats.
pub const STEPS_SECONDS: [u64; 5] = [5, 15, 45, 120, 300];

/// Jitter either side of a step, as a fraction of it.
pub const JITTER: f64 = 0.2;

/// How long an order may stay pending when the operator sets nothing.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(24 * 60 * 60);

/// What to do with a pending order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextPoll {
    /// Poll again at this time.
    At(OffsetDateTime),
    /// The order's deadline has passed (or the next poll would land after it): give up.
    DeadlineExceeded,
}

/// The delay before the next poll once `polls_done` polls were made (0: the order was just
/// placed): the step for that poll, scaled by
/// `scale` (tests shorten the schedule; operators keep 1.0), with jitter `draw` in
/// [-1, 1] mapped to ±[`JITTER`].
pub fn delay(polls_done: u32, draw: f64, scale: f64) -> Duration {
    let index = usize::try_from(polls_done)
        .unwrap_or(usize::MAX)
        .min(STEPS_SECONDS.len() - 1);
    let base = STEPS_SECONDS[index] as f64;
    let factor = 1.0 + JITTER * draw.clamp(-1.0, 1.0);
    let scale = if scale.is_finite() && scale > 0.0 {
        scale
    } else {
        1.0
    };
    Duration::from_secs_f64(base * factor * scale)
}

/// The next poll of an order placed at `placed_at` after `polls_done` polls, seen at
/// `now`, with the order's `deadline` (measured from `placed_at`). The last poll is
/// clamped to the deadline itself, so an order that is ready just before the deadline
/// is still collected.
pub fn next_poll(
    placed_at: OffsetDateTime,
    polls_done: u32,
    now: OffsetDateTime,
    deadline: Duration,
    draw: f64,
    scale: f64,
) -> NextPoll {
    let deadline_at = placed_at + deadline;
    if now >= deadline_at {
        return NextPoll::DeadlineExceeded;
    }
    let at = now + delay(polls_done, draw, scale);
    NextPoll::At(at.min(deadline_at))
}

/// Parses an operator's deadline or scale, e.g. for `CERTCTL_ISSUER_POLL_SCALE`: a finite
/// positive number.
pub fn parse_scale(text: &str) -> Option<f64> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: OffsetDateTime = time::macros::datetime!(2026-12-04 12:00 UTC);

    #[test]
    fn steps_grow_then_cap_at_five_minutes() {
        let secs: Vec<u64> = (0..8).map(|n| delay(n, 0.0, 1.0).as_secs()).collect();
        assert_eq!(secs, [5, 15, 45, 120, 300, 300, 300, 300]);
        assert_eq!(delay(u32::MAX, 0.0, 1.0).as_secs(), 300);
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        for n in 0..6 {
            let base = STEPS_SECONDS[n.min(4)] as f64;
            for draw in [-5.0, -1.0, -0.5, 0.0, 0.5, 1.0, 5.0] {
                let d = delay(n as u32, draw, 1.0).as_secs_f64();
                assert!(
                    d >= base * 0.8 - 1e-9 && d <= base * 1.2 + 1e-9,
                    "{n} {draw} {d}"
                );
            }
        }
        assert_eq!(delay(0, -1.0, 1.0), Duration::from_secs(4));
        assert_eq!(delay(4, 1.0, 1.0), Duration::from_secs(360));
    }

    #[test]
    fn scale_shortens_the_schedule_and_nonsense_is_ignored() {
        assert_eq!(delay(0, 0.0, 0.1), Duration::from_millis(500));
        assert_eq!(delay(0, 0.0, 0.0), Duration::from_secs(5));
        assert_eq!(delay(0, 0.0, f64::NAN), Duration::from_secs(5));
        assert_eq!(parse_scale("0.05"), Some(0.05));
        assert_eq!(parse_scale("-1"), None);
        assert_eq!(parse_scale("x"), None);
    }

    #[test]
    fn the_deadline_ends_polling() {
        let day = DEFAULT_DEADLINE;
        assert_eq!(
            next_poll(T0, 0, T0, day, 0.0, 1.0),
            NextPoll::At(T0 + time::Duration::seconds(5))
        );
        // Close to the deadline the next poll lands on it, not after it.
        let late = T0 + time::Duration::hours(24) - time::Duration::seconds(10);
        assert_eq!(
            next_poll(T0, 9, late, day, 0.0, 1.0),
            NextPoll::At(T0 + time::Duration::hours(24))
        );
        assert_eq!(
            next_poll(T0, 9, T0 + time::Duration::hours(24), day, 0.0, 1.0),
            NextPoll::DeadlineExceeded
        );
    }
}
