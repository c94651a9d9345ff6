//! Every limit of the relay, with documented defaults, so operators, tests and benchmarks can
//! tune them without touching code.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::error::RelayError;
use crate::protocol::MAX_JOIN_LINE_BYTES;

/// The relay's settings. `RelayConfig::default()` is what `tally relay` runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayConfig {
    /// Address to listen on. Default `0.0.0.0:7777`; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Longest line accepted from a client, in bytes, line ending excluded. Default 65,536
    /// (room for base64 coins). At least 512 so any join line fits.
    pub max_line_bytes: usize,
    /// Most bytes queued for one connection that it has not read yet; a member whose queue
    /// would grow past this is disconnected as a slow reader. Default 1 MiB.
    pub max_queue_bytes: usize,
    /// A joined connection that sends no complete line (an empty line counts) for this long
    /// is closed and its room told. Default 60 s.
    pub idle_timeout: Duration,
    /// A connection must send its join line within this long. Default 10 s.
    pub join_timeout: Duration,
    /// A member whose queued output makes no progress for this long is disconnected as a
    /// slow reader. Default 10 s.
    pub write_timeout: Duration,
    /// When closing a connection, how long the relay keeps flushing its last lines and
    /// draining what the client still sends (so the client sees the final `@error` line
    /// rather than a reset). Default 1 s.
    pub close_linger: Duration,
    /// Member cap of topic rooms (private rooms always take 2). Default 64, at least 2.
    pub topic_cap: usize,
    /// Most open connections in all. Default 10,000.
    pub max_connections: usize,
    /// Most open connections from one IP address. Default 32.
    pub max_connections_per_ip: usize,
    /// Sustained lines per second one connection may send (keepalives included); 0 means
    /// no limit. Default 200.
    pub lines_per_sec: u32,
    /// Lines one connection may send in a burst above the sustained rate. Default 1,000.
    pub line_burst: u32,
    /// Sustained bytes per second one connection may send, counted after `#`
    /// substitution; 0 means no limit. Default 1 MiB. All the connections of one host
    /// together may send four times this rate and burst.
    pub bytes_per_sec: u64,
    /// Bytes one connection may send in a burst. Default 4 MiB.
    pub byte_burst: u64,
    /// Refused lines (too long, bad UTF-8, reserved `@`) one connection may send before it
    /// is closed. Default 10.
    pub max_bad_lines: u32,
    /// Listen backlog (pending connections the kernel queues). Default 1,024.
    pub backlog: u32,
    /// After each read, keep polling the sockets for this long instead of sleeping, so the
    /// next line is seen without a thread (or virtual CPU) wake-up; zero turns it off. Costs
    /// up to one core while lines keep coming, nothing when idle. Effective on a
    /// single-threaded runtime (`tally relay --threads 1`). Default 0 (off).
    pub busy_poll: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 7777)),
            max_line_bytes: 65_536,
            max_queue_bytes: 1 << 20,
            idle_timeout: Duration::from_secs(60),
            join_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            close_linger: Duration::from_secs(1),
            topic_cap: 64,
            max_connections: 10_000,
            max_connections_per_ip: 32,
            lines_per_sec: 200,
            line_burst: 1_000,
            bytes_per_sec: 1 << 20,
            byte_burst: 4 << 20,
            max_bad_lines: 10,
            backlog: 1_024,
            busy_poll: Duration::ZERO,
        }
    }
}

impl RelayConfig {
    /// The defaults, listening on `listen`: handy for tests (`127.0.0.1:0`).
    pub fn listening_on(listen: SocketAddr) -> RelayConfig {
        RelayConfig {
            listen,
            ..RelayConfig::default()
        }
    }

    /// Checks that the limits make sense together; [`crate::Relay::bind`] calls it.
    pub fn validate(&self) -> Result<(), RelayError> {
        let bad = |why: String| Err(RelayError::Config(why));
        if self.max_line_bytes < 512 {
            return bad(format!(
                "max line bytes must be at least 512 (a join line can be {MAX_JOIN_LINE_BYTES})"
            ));
        }
        if self.max_queue_bytes < self.max_line_bytes {
            return bad("max queue bytes must be at least max line bytes".into());
        }
        if self.topic_cap < 2 {
            return bad("the topic cap must be at least 2".into());
        }
        if self.max_connections == 0 || self.max_connections_per_ip == 0 {
            return bad("connection limits must be at least 1".into());
        }
        for (name, d) in [
            ("idle timeout", self.idle_timeout),
            ("join timeout", self.join_timeout),
            ("write timeout", self.write_timeout),
        ] {
            if d.is_zero() {
                return bad(format!("the {name} must be more than zero"));
            }
        }
        if self.lines_per_sec > 0 && self.line_burst == 0 {
            return bad("the line burst must be at least 1 when lines are limited".into());
        }
        if self.bytes_per_sec > 0 && self.byte_burst < self.max_line_bytes as u64 {
            return bad("the byte burst must be at least max line bytes".into());
        }
        if self.backlog == 0 {
            return bad("the backlog must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// The defaults are valid and match the documentation; nonsense is refused.
    #[test]
    fn defaults_are_valid_and_nonsense_is_refused() {
        let config = RelayConfig::default();
        config.validate().unwrap();
        assert_eq!(config.listen.to_string(), "0.0.0.0:7777");
        let broken = [
            RelayConfig {
                max_line_bytes: 100,
                ..RelayConfig::default()
            },
            RelayConfig {
                topic_cap: 1,
                ..RelayConfig::default()
            },
            RelayConfig {
                idle_timeout: Duration::ZERO,
                ..RelayConfig::default()
            },
            RelayConfig {
                max_queue_bytes: 1000,
                ..RelayConfig::default()
            },
            RelayConfig {
                max_connections_per_ip: 0,
                ..RelayConfig::default()
            },
        ];
        for config in broken {
            assert!(config.validate().is_err(), "{config:?}");
        }
    }
}
