//! The single timestamp format stored and served by certctl.
//!
//! Timestamps are UTC, RFC 3339, with exactly three fractional digits and a `Z`
//! (`2026-11-25T10:30:00.000Z`). A fixed width makes the text sort in time order,
//! which lets both SQLite and PostgreSQL compare and index them as plain text.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

/// A timestamp in a form other than RFC 3339.
#[derive(Debug, thiserror::Error)]
#[error("not an RFC 3339 timestamp (e.g. 2026-11-25T10:30:00Z): {0}")]
pub struct TimestampError(#[from] time::error::Parse);

/// Formats an instant in the canonical stored form.
pub fn format(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    // Formatting a UTC datetime with a fixed description cannot fail for years 0..=9999.
    t.format(&fmt).unwrap_or_else(|_| t.to_string())
}

/// Parses any RFC 3339 timestamp (any offset, any precision).
pub fn parse(s: &str) -> Result<OffsetDateTime, TimestampError> {
    Ok(OffsetDateTime::parse(s, &Rfc3339)?)
}

/// Parses any RFC 3339 timestamp and returns its canonical stored form.
pub fn normalize(s: &str) -> Result<String, TimestampError> {
    parse(s).map(format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_is_fixed_width_utc() {
        let t = parse("2026-11-25T12:30:00+02:00").unwrap();
        assert_eq!(format(t), "2026-11-25T10:30:00.000Z");
        assert_eq!(
            normalize("2026-01-02T03:04:05.123456Z").unwrap(),
            "2026-01-02T03:04:05.123Z"
        );
    }

    #[test]
    fn rejects_non_rfc3339() {
        assert!(parse("2026-11-25").is_err());
        assert!(parse("yesterday").is_err());
    }
}
