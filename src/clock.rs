//! One clock for the crate: every timestamp authsome stores, compares or
//! signs is Unix seconds from [`now_unix`] (the request log, which times
//! requests, uses milliseconds: [`now_unix_millis`]).
//!
//! A leaf: it uses no other module of the crate.

/// Seconds since the Unix epoch (0 if the system clock is before it).
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch (0 if the system clock is before it).
pub fn now_unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
