//! The miner daemon's connections (miners and wallets, in and out): each one's write queue
//! and sync state, sending, broadcasting, and the limits on how many are held
//! (an [`Admission`]) and which of two connections to the same miner is kept
//! ([`choose_between_duplicates`], sans-I/O).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::pow::peers::PeerKey;
use crate::pow::sync::PeerSync;
use tally_proto::admission::{Admission, Admitted};
use tally_proto::pow::PowPacket;

/// Packets queued for one connection's writer before it counts as too slow and is dropped.
pub const WRITE_QUEUE: usize = 1024;
/// Bytes queued for one connection's writer before it counts as too slow and is dropped
/// (a peer that does not read cannot make us hold more than this for it: eight of the
/// largest blocks).
const MAX_QUEUED_BYTES: usize = 8 << 20;
/// Bytes queued for one connection's writer past which its next request is not read until
/// the writer catches up: a peer that asks and never reads is not asked for more.
pub const READ_PAUSE_BYTES: usize = 1 << 20;

/// One open connection.
pub struct Conn {
    tx: mpsc::Sender<Bytes>,
    /// Bytes queued and not yet written.
    queued: Arc<AtomicUsize>,
    /// The connection's remote address.
    pub remote: SocketAddr,
    /// The address we dialed (outbound connections).
    pub dialed: Option<String>,
    /// The address it listens on, from its `CONNECT`.
    pub listen: Option<String>,
    /// Whether it sent `CONNECT` (a miner, not a wallet): gossip goes to these only.
    pub miner: bool,
    /// Whether we sent our `CONNECT`.
    pub greeted: bool,
    /// The highest block it sent us that we stored (for display).
    pub best_height: u64,
    /// When to ask it for blocks.
    pub sync: PeerSync,
    /// Closes the connection.
    pub cancel: CancellationToken,
}

impl Conn {
    /// A connection to `remote` whose writer drains `tx`; `dialed` when we dialed it (a
    /// miner, which gets our `CONNECT` first).
    pub fn new(
        tx: mpsc::Sender<Bytes>,
        queued: Arc<AtomicUsize>,
        remote: SocketAddr,
        dialed: Option<String>,
        sync: PeerSync,
        cancel: CancellationToken,
    ) -> Self {
        let outbound = dialed.is_some();
        Conn {
            tx,
            queued,
            remote,
            listen: dialed.clone(),
            dialed,
            miner: outbound,
            greeted: outbound,
            best_height: 0,
            sync,
            cancel,
        }
    }

    /// Who the peer is for scoring.
    pub fn peer_key(&self) -> PeerKey {
        PeerKey::of(self.remote, self.listen.as_deref())
    }

    /// Queues bytes for the writer, or drops a connection that is too slow to read.
    fn queue(&self, bytes: Bytes) {
        let len = bytes.len();
        if self.queued.load(Ordering::Relaxed).saturating_add(len) > MAX_QUEUED_BYTES
            || self.tx.try_send(bytes).is_err()
        {
            debug!(remote = %self.remote, "write queue full; dropping the connection");
            self.cancel.cancel();
            return;
        }
        self.queued.fetch_add(len, Ordering::Relaxed);
    }
}

/// Every open connection, the addresses being dialed, and the connection limits.
pub struct Connections {
    conns: Mutex<HashMap<u64, Conn>>,
    /// Addresses being dialed, so one address is never dialed twice at once.
    dialing: Mutex<HashSet<String>>,
    next_id: AtomicU64,
    admission: Admission,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock is a bug elsewhere; the data is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Connections {
    /// No connections yet, held to `admission`'s limits.
    pub fn new(admission: Admission) -> Self {
        Connections {
            conns: Mutex::new(HashMap::new()),
            dialing: Mutex::new(HashSet::new()),
            next_id: AtomicU64::new(1),
            admission,
        }
    }

    /// The open connections, locked (keep it short: every send waits).
    pub fn lock(&self) -> MutexGuard<'_, HashMap<u64, Conn>> {
        lock(&self.conns)
    }

    /// A fresh connection id.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Reserves a place for a connection with `ip`: inbound ones are held to the
    /// per-address limit, ones we dialed only to the total (we dial few, and on one host,
    /// a devnet, every miner shares an IP).
    pub fn reserve(&self, ip: IpAddr, inbound: bool) -> Option<Admitted> {
        if inbound {
            self.admission.admit(ip).ok()
        } else {
            self.admission.admit_outbound()
        }
    }

    /// Connections held now (miners and wallets, in and out).
    pub fn open(&self) -> usize {
        self.admission.open()
    }

    /// Marks `address` as being dialed; `false` if it already is.
    pub fn start_dialing(&self, address: &str) -> bool {
        lock(&self.dialing).insert(address.to_string())
    }

    /// `address` is no longer being dialed.
    pub fn done_dialing(&self, address: &str) {
        lock(&self.dialing).remove(address);
    }

    /// Queues `bytes` for connection `id`; a connection whose queue is full is too slow
    /// and is dropped (it syncs again when it reconnects).
    pub fn send_to(&self, id: u64, bytes: Bytes) {
        if let Some(conn) = self.lock().get(&id) {
            conn.queue(bytes);
        }
    }

    /// Sends `packet` to connection `id`.
    pub fn reply(&self, id: u64, packet: &PowPacket) {
        self.send_to(id, packet.encode());
    }

    /// Sends to every miner peer but `except`.
    pub fn broadcast(&self, packet: &PowPacket, except: Option<u64>) {
        let bytes = packet.encode();
        for (id, conn) in self.lock().iter() {
            if Some(*id) == except || !conn.miner {
                continue;
            }
            conn.queue(bytes.clone());
        }
    }

    /// Who connection `id`'s peer is for scoring.
    pub fn peer_key(&self, id: u64) -> Option<PeerKey> {
        self.lock().get(&id).map(Conn::peer_key)
    }

    /// Whether connection `id` is a miner's (it sent `CONNECT`).
    pub fn is_miner(&self, id: u64) -> bool {
        self.lock().get(&id).is_some_and(|conn| conn.miner)
    }

    /// Miners connected (they sent `CONNECT`).
    pub fn miners(&self) -> usize {
        self.lock().values().filter(|conn| conn.miner).count()
    }

    /// Closes every connection of the peer `key`.
    pub fn close_peer(&self, key: &PeerKey) {
        for conn in self.lock().values() {
            if &conn.peer_key() == key {
                conn.cancel.cancel();
            }
        }
    }

    /// Closes every connection.
    pub fn close_all(&self) {
        for conn in self.lock().values() {
            conn.cancel.cancel();
        }
    }
}

/// Which of two connections to the same miner to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Duplicate {
    /// Keep the new one, close the other.
    KeepThis,
    /// Close the new one.
    CloseThis,
}

/// Two miners that dialed each other at once hold two connections; both sides keep the
/// one dialed by the miner with the smaller address (the same one, seen from either side)
/// and close the other. The same direction twice: the older is kept. `me`: our address;
/// `listen`: the other miner's.
pub fn choose_between_duplicates(
    me: &str,
    listen: &str,
    this_outbound: bool,
    other_outbound: bool,
) -> Duplicate {
    if this_outbound == other_outbound {
        return Duplicate::CloseThis;
    }
    let keep_outbound = me < listen;
    if this_outbound == keep_outbound {
        Duplicate::KeepThis
    } else {
        Duplicate::CloseThis
    }
}

/// Whether to keep connection `id` to the miner listening at `listen`, closing an older
/// duplicate if the rule says so (see [`choose_between_duplicates`]).
pub fn keep_connection(me: &str, conns: &HashMap<u64, Conn>, id: u64, listen: &str) -> bool {
    let Some(this) = conns.get(&id) else {
        return false;
    };
    let Some((_, other)) = conns
        .iter()
        .find(|(other_id, c)| **other_id != id && c.miner && c.listen.as_deref() == Some(listen))
    else {
        return true;
    };
    match choose_between_duplicates(me, listen, this.dialed.is_some(), other.dialed.is_some()) {
        Duplicate::KeepThis => {
            other.cancel.cancel();
            true
        }
        Duplicate::CloseThis => false,
    }
}

/// Whether `listen` (a `CONNECT`'s `Listen`) is an address of the host at `remote`.
pub fn listens_at(remote: SocketAddr, listen: &str) -> bool {
    listen
        .parse::<SocketAddr>()
        .is_ok_and(|claimed| claimed.ip().to_canonical() == remote.ip().to_canonical())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// Inbound connections are held to the per-address limit, ones we dialed to the total
    /// only; a closed connection frees its place.
    #[test]
    fn connections_are_held_to_the_total_and_per_address_limits() {
        let conns = Connections::new(Admission::new(
            tally_proto::admission::AdmissionLimits {
                max_total: 3,
                max_per_source: 2,
                reserved: 0,
            },
            [],
        ));
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        let first = conns.reserve(a, true).unwrap();
        let _second = conns.reserve(a, true).unwrap();
        assert!(conns.reserve(a, true).is_none(), "a third from one address");
        let _out = conns.reserve(a, false).unwrap();
        assert!(conns.reserve(b, true).is_none(), "the total is reached");
        assert_eq!(conns.open(), 3);
        drop(first);
        assert!(conns.reserve(b, true).is_some());
    }

    /// Both sides of a double dial keep the connection dialed by the smaller address.
    #[test]
    fn both_sides_keep_the_same_one_of_two_connections() {
        let (small, large) = ("127.0.0.1:1000", "127.0.0.1:2000");
        // The small side dialed (outbound for it, inbound for the large side): kept by both.
        assert_eq!(
            choose_between_duplicates(small, large, true, false),
            Duplicate::KeepThis
        );
        assert_eq!(
            choose_between_duplicates(large, small, false, true),
            Duplicate::KeepThis
        );
        // The large side's dial: closed by both.
        assert_eq!(
            choose_between_duplicates(small, large, false, true),
            Duplicate::CloseThis
        );
        assert_eq!(
            choose_between_duplicates(large, small, true, false),
            Duplicate::CloseThis
        );
        assert_eq!(
            choose_between_duplicates(small, large, true, true),
            Duplicate::CloseThis,
            "the same direction twice: the older stays"
        );
    }

    #[test]
    fn a_listen_address_is_believed_only_for_the_connections_host() {
        let remote: SocketAddr = "[::ffff:192.0.2.7]:5000".parse().unwrap();
        assert!(listens_at(remote, "192.0.2.7:9000"));
        assert!(!listens_at(remote, "192.0.2.8:9000"));
        assert!(!listens_at(remote, "not an address"));
    }
}
