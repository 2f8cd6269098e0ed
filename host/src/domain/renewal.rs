//! Expiry rules: which alert thresholds a certificate has crossed, what its status should be,
//! and whether it is due for renewal. Pure functions of (expiry, now, policy).

use time::{Duration, OffsetDateTime};

/// Alert thresholds when a certificate has no renewal policy.
pub const DEFAULT_THRESHOLDS: [i64; 4] = [30, 14, 7, 0];
/// Renewal window when a certificate has no renewal policy.
pub const DEFAULT_RENEWAL_WINDOW_DAYS: i64 = 30;

/// The time-derived status of an issued certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryStatus {
    /// Outside every alert threshold.
    Active,
    /// Inside the largest alert threshold, not yet expired.
    Expiring,
    /// Past NotAfter.
    Expired,
}

impl ExpiryStatus {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ExpiryStatus::Active => "Active",
            ExpiryStatus::Expiring => "Expiring",
            ExpiryStatus::Expired => "Expired",
        }
    }
}

/// What the renewal check concludes for one certificate at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiryAssessment {
    /// Status by time.
    pub status: ExpiryStatus,
    /// Thresholds (days) already crossed, largest first; each deserves one warning.
    pub crossed: Vec<i64>,
    /// Inside the renewal window (or expired): a renewal job should exist.
    pub renewal_due: bool,
}

/// Assesses a certificate expiring at `not_after`.
pub fn assess(
    not_after: OffsetDateTime,
    now: OffsetDateTime,
    thresholds: &[i64],
    renewal_window_days: i64,
) -> ExpiryAssessment {
    let remaining = not_after - now;
    let mut crossed: Vec<i64> = thresholds
        .iter()
        .copied()
        .filter(|&days| remaining <= Duration::days(days))
        .collect();
    crossed.sort_unstable_by(|a, b| b.cmp(a));
    crossed.dedup();
    let largest = thresholds.iter().copied().max().unwrap_or(0);
    let status = if remaining <= Duration::ZERO {
        ExpiryStatus::Expired
    } else if remaining <= Duration::days(largest) {
        ExpiryStatus::Expiring
    } else {
        ExpiryStatus::Active
    };
    ExpiryAssessment {
        status,
        crossed,
        renewal_due: remaining <= Duration::days(renewal_window_days),
    }
}

/// The key that makes an expiry warning unique: one per certificate, version and threshold.
pub fn warning_dedup_key(certificate_id: &str, not_after: &str, threshold_days: i64) -> String {
    format!("expiry:{certificate_id}:{not_after}:{threshold_days}")
}

/// How often to ask a CA for a renewal window when it gives no `Retry-After` (RFC 9773 §4.3
/// suggests polling a few times a day).
pub const ARI_DEFAULT_POLL: Duration = Duration::hours(6);
/// Bounds on a CA's `Retry-After`: never hammer it, never go a day without asking.
pub const ARI_POLL_BOUNDS: (Duration, Duration) = (Duration::minutes(1), Duration::days(1));

/// The instant to renew at inside a CA-suggested window (RFC 9773 §4.2: a random point in
/// the window, so that certificates do not all renew at once). The point is derived from
/// `seed` (the certificate's ARI id) instead of a random draw, so it is stable across polls
/// and restarts while still spreading certificates over the window. Always in
/// `[start, end)` (whole seconds), or `start` for an empty or inverted window.
pub fn ari_renewal_time(start: OffsetDateTime, end: OffsetDateTime, seed: &str) -> OffsetDateTime {
    use sha2::Digest as _;
    let span = (end - start).whole_seconds();
    if span <= 0 {
        return start;
    }
    let digest = sha2::Sha256::digest(seed.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let offset = u64::from_be_bytes(first) % span.unsigned_abs();
    start + Duration::seconds(i64::try_from(offset).unwrap_or(0))
}

/// When to ask the CA again, given its `Retry-After` (clamped to [`ARI_POLL_BOUNDS`]).
pub fn ari_next_poll(
    now: OffsetDateTime,
    retry_after: Option<std::time::Duration>,
) -> OffsetDateTime {
    let wait = retry_after
        .and_then(|d| Duration::try_from(d).ok())
        .unwrap_or(ARI_DEFAULT_POLL)
        .clamp(ARI_POLL_BOUNDS.0, ARI_POLL_BOUNDS.1);
    now + wait
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const EXP: OffsetDateTime = datetime!(2027-01-31 00:00 UTC);

    #[test]
    fn walks_through_thresholds() {
        let at = |days_before: i64| {
            assess(
                EXP,
                EXP - Duration::days(days_before),
                &DEFAULT_THRESHOLDS,
                30,
            )
        };
        let a = at(40);
        assert_eq!(
            (a.status, a.crossed.clone(), a.renewal_due),
            (ExpiryStatus::Active, vec![], false)
        );
        let a = at(29);
        assert_eq!(
            (a.status, a.crossed.clone(), a.renewal_due),
            (ExpiryStatus::Expiring, vec![30], true)
        );
        assert_eq!(at(13).crossed, vec![30, 14]);
        assert_eq!(at(6).crossed, vec![30, 14, 7]);
        let a = at(-1);
        assert_eq!(
            (a.status, a.crossed),
            (ExpiryStatus::Expired, vec![30, 14, 7, 0])
        );
    }

    #[test]
    fn exact_boundary_counts_as_crossed() {
        let a = assess(EXP, EXP - Duration::days(14), &DEFAULT_THRESHOLDS, 30);
        assert_eq!(a.crossed, vec![30, 14]);
        assert_eq!(
            assess(EXP, EXP, &DEFAULT_THRESHOLDS, 30).status,
            ExpiryStatus::Expired
        );
    }

    #[test]
    fn custom_policy() {
        let a = assess(EXP, EXP - Duration::days(50), &[60, 45], 10);
        assert_eq!(
            (a.status, a.crossed, a.renewal_due),
            (ExpiryStatus::Expiring, vec![60], false)
        );
    }

    #[test]
    fn ari_time_is_inside_the_window_and_stable() {
        let start = EXP - Duration::days(10);
        let end = EXP - Duration::days(8);
        let mut seen = std::collections::HashSet::new();
        for i in 0..50 {
            let id = format!("aki.serial{i}");
            let t = ari_renewal_time(start, end, &id);
            assert!(t >= start && t < end, "{t} outside [{start}, {end})");
            assert_eq!(t, ari_renewal_time(start, end, &id), "stable");
            seen.insert(t);
        }
        assert!(seen.len() > 40, "spread over the window: {}", seen.len());
        assert_eq!(ari_renewal_time(end, start, "x"), end, "inverted window");
        assert_eq!(ari_renewal_time(start, start, "x"), start, "empty window");
    }

    #[test]
    fn ari_poll_interval_honours_retry_after_within_bounds() {
        let now = EXP;
        assert_eq!(ari_next_poll(now, None), now + Duration::hours(6));
        assert_eq!(
            ari_next_poll(now, Some(std::time::Duration::from_secs(3600))),
            now + Duration::hours(1)
        );
        assert_eq!(
            ari_next_poll(now, Some(std::time::Duration::from_secs(1))),
            now + Duration::minutes(1)
        );
        assert_eq!(
            ari_next_poll(now, Some(std::time::Duration::from_secs(10 * 86_400))),
            now + Duration::days(1)
        );
    }
}
