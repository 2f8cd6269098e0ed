//! Readable, prefixed identifiers (`mc-…`, `iss-…`, `job-…`).
//!
//! Every id keeps its prefix everywhere (API, database, logs, dashboard) so that a
//! person reading one knows what it names.

use std::fmt::Write as _;

/// Why a client-chosen id was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdError {
    /// The id does not start with the resource's prefix and a dash.
    #[error("id must start with \"{prefix}-\"")]
    MissingPrefix {
        /// The prefix the resource requires.
        prefix: String,
    },
    /// Longer than [`MAX_ID_LEN`].
    #[error("id must be at most {MAX_ID_LEN} characters")]
    TooLong,
    /// Something other than ASCII letters, digits, `.`, `_`, `-`.
    #[error("id may only contain ASCII letters, digits, '.', '_' and '-'")]
    BadCharacter,
    /// Only the prefix, nothing after it.
    #[error("id needs something after the prefix")]
    Empty,
}

/// Longest id accepted from a client.
pub const MAX_ID_LEN: usize = 128;

/// Checks a client-supplied id against the resource prefix and the allowed alphabet.
pub fn validate(prefix: &str, id: &str) -> Result<(), IdError> {
    let rest = id
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('-'))
        .ok_or_else(|| IdError::MissingPrefix {
            prefix: prefix.to_owned(),
        })?;
    if id.len() > MAX_ID_LEN {
        return Err(IdError::TooLong);
    }
    if rest.is_empty() {
        return Err(IdError::Empty);
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(IdError::BadCharacter);
    }
    Ok(())
}

/// Builds `{prefix}-{hex}` from caller-provided random bytes (the caller owns the CSPRNG).
pub fn from_random(prefix: &str, random: &[u8]) -> String {
    let mut id = String::with_capacity(prefix.len() + 1 + random.len() * 2);
    id.push_str(prefix);
    id.push('-');
    for b in random {
        let _ = write!(id, "{b:02x}");
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_readable_ids_with_prefix() {
        assert_eq!(validate("mc", "mc-api-prod"), Ok(()));
        assert_eq!(validate("team", "team-platform_1.x"), Ok(()));
    }

    #[test]
    fn refuses_wrong_prefix_empty_rest_and_bad_characters() {
        assert!(matches!(
            validate("mc", "t-x"),
            Err(IdError::MissingPrefix { .. })
        ));
        assert!(matches!(
            validate("mc", "mcx"),
            Err(IdError::MissingPrefix { .. })
        ));
        assert_eq!(validate("mc", "mc-"), Err(IdError::Empty));
        assert_eq!(validate("mc", "mc-a b"), Err(IdError::BadCharacter));
        assert_eq!(validate("mc", "mc-ü"), Err(IdError::BadCharacter));
        let long = format!("mc-{}", "a".repeat(200));
        assert_eq!(validate("mc", &long), Err(IdError::TooLong));
    }

    #[test]
    fn random_ids_are_hex_after_prefix() {
        assert_eq!(from_random("job", &[0, 171, 255]), "job-00abff");
    }
}
