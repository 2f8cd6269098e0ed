//! API-call records: one per request, read-only through `/api/v1/audit/api-calls`, and
//! the retention rule that is the only way rows leave the log.

use std::time::Duration;

use time::OffsetDateTime;

use super::resource::{Access, DeleteMode, FieldKind::*, FieldSpec, ResourceSpec, TimeFilter};

/// `/api/v1/audit/api-calls` (read-only).
pub static SPEC: ResourceSpec = ResourceSpec {
    path: "audit/api-calls",
    table: "api_calls",
    singular: "api_call",
    id_prefix: "call",
    fields: &[
        FieldSpec::new("request_id", Text, "Request id (X-Request-Id)")
            .access(Access::ReadOnly)
            .filter(),
        FieldSpec::new("method", Text, "HTTP method")
            .access(Access::ReadOnly)
            .filter(),
        FieldSpec::new("path", Text, "Request path")
            .access(Access::ReadOnly)
            .filter(),
        FieldSpec::new("actor", Text, "API key name or anonymous")
            .access(Access::ReadOnly)
            .filter()
            .sort(),
        FieldSpec::new(
            "body_sha256",
            Text,
            "First 16 hex digits of the body's SHA-256",
        )
        .access(Access::ReadOnly),
        FieldSpec::new("status", Int { min: 100, max: 599 }, "Response status")
            .access(Access::ReadOnly)
            .filter()
            .sort(),
        FieldSpec::new(
            "latency_ms",
            Int {
                min: 0,
                max: i64::MAX,
            },
            "Time to respond",
        )
        .access(Access::ReadOnly)
        .sort(),
        FieldSpec::new("timestamp", Timestamp, "When the call finished")
            .access(Access::ReadOnly)
            .sort(),
    ],
    timestamps: false,
    created_field: "timestamp",
    writable: false,
    delete: DeleteMode::Forbidden,
    time_filters: &[
        TimeFilter {
            param: "since",
            field: "timestamp",
            before: false,
        },
        TimeFilter {
            param: "until",
            field: "timestamp",
            before: true,
        },
    ],
    default_sort: "-timestamp",
    doc: "API-call log (append-only)",
};

/// The shortest retention the schema allows: its triggers refuse a cutoff less than 24
/// hours old, so the recent log can never be pruned away.
pub const MIN_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// Slack kept below the schema's 24-hour floor, so that a database clock a little behind
/// the server's does not refuse every prune when the retention is exactly the minimum.
const CLOCK_SKEW_MARGIN: Duration = Duration::from_secs(5 * 60);

/// Whether `retention` is acceptable: zero (keep forever) or at least [`MIN_RETENTION`].
pub fn retention_is_valid(retention: Duration) -> bool {
    retention.is_zero() || retention >= MIN_RETENTION
}

/// The instant before which API calls are pruned at `now`: `None` keeps everything
/// (retention zero). Never later than the schema's floor (minus a clock-skew margin).
pub fn retention_cutoff(now: OffsetDateTime, retention: Duration) -> Option<OffsetDateTime> {
    if retention.is_zero() {
        return None;
    }
    let floor = MIN_RETENTION + CLOCK_SKEW_MARGIN;
    let keep = time::Duration::try_from(retention.max(floor)).ok()?;
    now.checked_sub(keep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn retention_cutoffs() {
        let now = datetime!(2026-06-01 12:00 UTC);
        assert_eq!(retention_cutoff(now, Duration::ZERO), None);
        assert_eq!(
            retention_cutoff(now, Duration::from_secs(90 * 86_400)),
            Some(datetime!(2026-03-03 12:00 UTC))
        );
        // The minimum keeps a margin below the schema's 24-hour floor.
        assert_eq!(
            retention_cutoff(now, MIN_RETENTION),
            Some(datetime!(2026-05-31 11:55 UTC))
        );
        // An absurd retention keeps everything rather than overflowing.
        assert_eq!(retention_cutoff(now, Duration::MAX), None);
        assert!(retention_is_valid(Duration::ZERO));
        assert!(retention_is_valid(MIN_RETENTION));
        assert!(!retention_is_valid(Duration::from_secs(3600)));
    }
}
