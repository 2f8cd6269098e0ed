//! The single timestamp format stored and served by certctl.
//!
//! Timestamps are UTC, RFC 3339, with exactly three fractional digits and a `Z`
//! (`2026-11-25T10:30:00.000Z`). A fixed width makes the text sort in time order,
//! which lets both SQLite and PostgreSQL compare and index them as plain text.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

/// A timestamp in a form other than RFC 3339, or one the canonical form cannot hold.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TimestampError {
    /// Not RFC 3339.
    #[error("not an RFC 3339 timestamp (e.g. 2026-11-25T10:30:00Z): {0}")]
    Parse(#[from] time::error::Parse),
    /// Valid RFC 3339, but its UTC year is outside 0000..=9999 (e.g. `9999-12-31T23:59:59-01:00`).
    #[error("timestamp out of range: its UTC year must be between 0000 and 9999")]
    OutOfRange,
}

/// Formats an instant in the canonical stored form.
pub fn format(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    // Formatting a UTC datetime with a fixed description cannot fail for years 0..=9999.
    t.format(&fmt).unwrap_or_else(|_| t.to_string())
}

/// Parses any RFC 3339 timestamp (any offset, any precision) whose UTC form has a
/// four-digit year, so that [`format()`] can neither panic nor lose the fixed width.
pub fn parse(s: &str) -> Result<OffsetDateTime, TimestampError> {
    let t = OffsetDateTime::parse(s, &Rfc3339)?;
    match t.checked_to_offset(UtcOffset::UTC) {
        Some(utc) if (0..=9999).contains(&utc.year()) => Ok(t),
        _ => Err(TimestampError::OutOfRange),
    }
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

    #[test]
    fn rejects_instants_outside_four_digit_utc_years() {
        // 9999-12-31T23:59:59-01:00 is in year 10000 UTC: converting it used to panic.
        assert!(matches!(
            normalize("9999-12-31T23:59:59-01:00"),
            Err(TimestampError::OutOfRange)
        ));
        assert!(matches!(
            normalize("0000-01-01T00:00:00+01:00"),
            Err(TimestampError::OutOfRange)
        ));
        assert_eq!(
            normalize("9999-12-31T23:59:59+01:00").unwrap(),
            "9999-12-31T22:59:59.000Z"
        );
    }
}
