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
}
