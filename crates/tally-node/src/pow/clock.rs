//! Where time enters the miner daemon: the wall clock in milliseconds, which the sans-I/O
//! decisions ([`PeerBook`](super::peers::PeerBook), [`PeerSync`](super::sync::PeerSync))
//! take as an argument.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The milliseconds since 1970 by this machine's clock.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `d` in whole milliseconds, saturating.
pub fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
