//! Key paths into payloads: `a.b.c` walks nested objects, a trailing `[]` on a segment
//! is allowed and ignored (arrays are always flattened). Filters and payload indexes
//! name fields this way.

use crate::error::{Result, ValidationError};

/// Longest key path, in characters.
pub const MAX_KEY_CHARS: usize = 256;

/// Checks a key path: non-empty segments of at most 256 characters in all.
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() || key.chars().count() > MAX_KEY_CHARS {
        return Err(ValidationError::invalid_filter(format!("key must be 1..={MAX_KEY_CHARS} characters")));
    }
    if key_segments(key).any(str::is_empty) {
        return Err(ValidationError::invalid_filter(format!("key {key:?} has an empty segment")));
    }
    Ok(())
}

/// Splits a dotted path into field names; a trailing `[]` on a segment is dropped
/// (arrays are always flattened).
pub(crate) fn key_segments(key: &str) -> impl Iterator<Item = &str> {
    key.split('.').map(|s| s.strip_suffix("[]").unwrap_or(s))
}

/// The top-level payload field a key path starts at (`a` for `a.b`, `a[]` and `a`).
pub fn root_field(key: &str) -> &str {
    key_segments(key).next().unwrap_or(key)
}
