//! The wall clock, in the unit every timestamp of the tracker protocol uses.

/// Milliseconds since 1970 by the system clock (0 before 1970, `u64::MAX` past its range).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
