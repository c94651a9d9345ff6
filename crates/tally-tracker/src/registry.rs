//! The in-memory registry: one compact entry per (network, key), with expiry judged against
//! a `now` the caller passes in (sans-I/O: tests drive the clock).
//!
//! Layout, for a million entries in little memory: per network a `Vec` of fixed-size
//! entries (96 bytes each) plus a hash table of 4-byte indices into it, hashed by the
//! entry's key. Removal swaps the last entry into the hole, so random sampling is a matter
//! of drawing indices.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use hashbrown::HashTable;
use rand::Rng;
use tally_core::{AccountId, NetworkId};
use tally_proto::tracker::Refusal;

/// An IP address as 16 bytes (IPv4 mapped into IPv6).
pub type IpBytes = [u8; 16];

/// Packs an IP address.
pub fn ip_bytes(ip: IpAddr) -> IpBytes {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// Unpacks an IP address (mapped IPv4 comes back as IPv4).
pub fn ip_from_bytes(bytes: IpBytes) -> IpAddr {
    Ipv6Addr::from(bytes).to_canonical()
}

/// One registered key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The key.
    pub account: AccountId,
    /// The reachable address's IP.
    pub ip: IpBytes,
    /// The IP the registration came from (what per-address limits count).
    pub source: IpBytes,
    /// The key's proof-of-work nonce.
    pub proof_of_work: u64,
    /// The registration's own timestamp (ms), which a newer one must exceed.
    pub timestamp: u64,
    /// The tracker's clock when it was registered (ms): what expiry counts from.
    pub seen: u64,
    /// The reachable address's port.
    pub port: u16,
}

impl Entry {
    /// The reachable address.
    pub fn address(&self) -> SocketAddr {
        SocketAddr::new(ip_from_bytes(self.ip), self.port)
    }

    /// Whether it is still live at `now` with this `ttl`.
    pub fn is_live(&self, now: u64, ttl_ms: u64) -> bool {
        now < self.seen.saturating_add(ttl_ms)
    }
}

/// What `apply` changed, so that a failed commit can put it back.
#[derive(Clone, Copy, Debug)]
pub struct Undo {
    network: NetworkId,
    account: AccountId,
    previous: Option<Entry>,
}

#[derive(Default)]
struct Table {
    entries: Vec<Entry>,
    index: HashTable<u32>,
}

/// The limits the registry enforces.
#[derive(Clone, Copy, Debug)]
pub struct RegistryLimits {
    /// Entries in all.
    pub max_entries: usize,
    /// Entries per source IP.
    pub max_entries_per_ip: usize,
    /// Entries (keys) listed at one reachable address: one host cannot crowd peer lists
    /// with many keys pointing at itself.
    pub max_entries_per_address: usize,
}

/// Every entry of every served network.
pub struct Registry {
    tables: HashMap<NetworkId, Table>,
    per_source: HashMap<IpBytes, u32>,
    /// Entries per reachable address (IP and port).
    per_address: HashMap<(IpBytes, u16), u32>,
    total: usize,
    hasher: std::hash::RandomState,
    limits: RegistryLimits,
}

impl Registry {
    /// An empty registry for these networks.
    pub fn new<'a>(
        networks: impl IntoIterator<Item = &'a NetworkId>,
        limits: RegistryLimits,
    ) -> Self {
        Registry {
            tables: networks
                .into_iter()
                .map(|n| (*n, Table::default()))
                .collect(),
            per_source: HashMap::new(),
            per_address: HashMap::new(),
            total: 0,
            hasher: std::hash::RandomState::new(),
            limits,
        }
    }

    /// Entries stored, live or awaiting the sweep.
    pub fn len(&self) -> usize {
        self.total
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Entries stored for one network.
    pub fn network_len(&self, network: &NetworkId) -> usize {
        self.tables.get(network).map_or(0, |t| t.entries.len())
    }

    /// Entries stored for one source IP.
    pub fn source_len(&self, source: IpAddr) -> usize {
        self.per_source
            .get(&ip_bytes(source))
            .map_or(0, |n| *n as usize)
    }

    /// Reserves room for `additional` entries in `network` (used when loading).
    pub fn reserve(&mut self, network: &NetworkId, additional: usize) {
        if let Some(table) = self.tables.get_mut(network) {
            table.entries.reserve_exact(additional);
            let hasher = &self.hasher;
            let entries = &table.entries;
            table.index.reserve(additional, |i| {
                hasher.hash_one(entries[*i as usize].account)
            });
        }
    }

    /// The entry of `account` in `network`, live or not.
    pub fn get(&self, network: &NetworkId, account: &AccountId) -> Option<&Entry> {
        let table = self.tables.get(network)?;
        let hash = self.hasher.hash_one(account);
        let i = table
            .index
            .find(hash, |i| table.entries[*i as usize].account == *account)?;
        table.entries.get(*i as usize)
    }

    /// Stores `entry` in `network` if its timestamp is newer than the stored one's and the
    /// limits allow; returns what to undo if the commit fails.
    pub fn apply(&mut self, network: &NetworkId, entry: Entry) -> Result<Undo, Refusal> {
        let limits = self.limits;
        let hash = self.hasher.hash_one(entry.account);
        let table = self
            .tables
            .get_mut(network)
            .ok_or(Refusal::UnknownNetwork)?;
        let found = table
            .index
            .find(hash, |i| {
                table.entries[*i as usize].account == entry.account
            })
            .copied();
        match found {
            Some(i) => {
                let slot = &mut table.entries[i as usize];
                if entry.timestamp <= slot.timestamp {
                    return Err(Refusal::Stale);
                }
                let moves = (slot.ip, slot.port) != (entry.ip, entry.port);
                if moves
                    && self
                        .per_address
                        .get(&(entry.ip, entry.port))
                        .is_some_and(|n| *n as usize >= limits.max_entries_per_address)
                {
                    return Err(Refusal::AddressCrowded);
                }
                if slot.source != entry.source {
                    let count = self.per_source.get(&entry.source).copied().unwrap_or(0);
                    if count as usize >= limits.max_entries_per_ip {
                        return Err(Refusal::TooManyEntriesFromAddress);
                    }
                    let old_source = slot.source;
                    *self.per_source.entry(entry.source).or_insert(0) += 1;
                    decrement(&mut self.per_source, &old_source);
                }
                if moves {
                    *self.per_address.entry((entry.ip, entry.port)).or_insert(0) += 1;
                    decrement(&mut self.per_address, &(slot.ip, slot.port));
                }
                let previous = *slot;
                *slot = entry;
                Ok(Undo {
                    network: *network,
                    account: entry.account,
                    previous: Some(previous),
                })
            }
            None => {
                if self.total >= limits.max_entries {
                    return Err(Refusal::Full);
                }
                let count = self.per_source.get(&entry.source).copied().unwrap_or(0);
                if count as usize >= limits.max_entries_per_ip {
                    return Err(Refusal::TooManyEntriesFromAddress);
                }
                if self
                    .per_address
                    .get(&(entry.ip, entry.port))
                    .is_some_and(|n| *n as usize >= limits.max_entries_per_address)
                {
                    return Err(Refusal::AddressCrowded);
                }
                let i = u32::try_from(table.entries.len()).map_err(|_| Refusal::Full)?;
                table.entries.push(entry);
                let hasher = &self.hasher;
                let entries = &table.entries;
                table
                    .index
                    .insert_unique(hash, i, |j| hasher.hash_one(entries[*j as usize].account));
                *self.per_source.entry(entry.source).or_insert(0) += 1;
                *self.per_address.entry((entry.ip, entry.port)).or_insert(0) += 1;
                self.total += 1;
                Ok(Undo {
                    network: *network,
                    account: entry.account,
                    previous: None,
                })
            }
        }
    }

    /// Puts back what `apply` changed. Undo in the reverse order of applying.
    pub fn undo(&mut self, undo: Undo) {
        match undo.previous {
            Some(previous) => {
                self.remove(&undo.network, &undo.account);
                self.insert_unchecked(&undo.network, previous);
            }
            None => {
                self.remove(&undo.network, &undo.account);
            }
        }
    }

    /// Stores an entry without checks (loading from disk, undo).
    pub fn insert_unchecked(&mut self, network: &NetworkId, entry: Entry) {
        self.remove(network, &entry.account);
        let hash = self.hasher.hash_one(entry.account);
        let Some(table) = self.tables.get_mut(network) else {
            return;
        };
        let Ok(i) = u32::try_from(table.entries.len()) else {
            return;
        };
        table.entries.push(entry);
        let hasher = &self.hasher;
        let entries = &table.entries;
        table
            .index
            .insert_unique(hash, i, |j| hasher.hash_one(entries[*j as usize].account));
        *self.per_source.entry(entry.source).or_insert(0) += 1;
        *self.per_address.entry((entry.ip, entry.port)).or_insert(0) += 1;
        self.total += 1;
    }

    /// Removes an entry; returns it.
    pub fn remove(&mut self, network: &NetworkId, account: &AccountId) -> Option<Entry> {
        let hash = self.hasher.hash_one(account);
        let table = self.tables.get_mut(network)?;
        let found = table
            .index
            .find_entry(hash, |i| table.entries[*i as usize].account == *account)
            .ok()?;
        let (i, _) = found.remove();
        let i = i as usize;
        let last = table.entries.len() - 1;
        if i != last {
            let moved = table.entries[last].account;
            let moved_hash = self.hasher.hash_one(moved);
            if let Some(slot) = table.index.find_mut(moved_hash, |j| *j as usize == last) {
                *slot = i as u32;
            }
        }
        let removed = table.entries.swap_remove(i);
        decrement(&mut self.per_source, &removed.source);
        decrement(&mut self.per_address, &(removed.ip, removed.port));
        self.total -= 1;
        Some(removed)
    }

    /// Removes every entry not live at `now`; returns which were removed.
    pub fn sweep(&mut self, now: u64, ttl_ms: u64) -> Vec<(NetworkId, AccountId)> {
        let mut dead = Vec::new();
        for (network, table) in &self.tables {
            for entry in &table.entries {
                if !entry.is_live(now, ttl_ms) {
                    dead.push((*network, entry.account));
                }
            }
        }
        for (network, account) in &dead {
            self.remove(network, account);
        }
        if self.per_source.capacity() > 4 * self.per_source.len().max(16) {
            self.per_source.shrink_to_fit();
        }
        if self.per_address.capacity() > 4 * self.per_address.len().max(16) {
            self.per_address.shrink_to_fit();
        }
        dead
    }

    /// Every live entry of `network` (for small networks and tests).
    pub fn live(&self, network: &NetworkId, now: u64, ttl_ms: u64) -> Vec<Entry> {
        self.tables.get(network).map_or_else(Vec::new, |t| {
            t.entries
                .iter()
                .filter(|e| e.is_live(now, ttl_ms))
                .copied()
                .collect()
        })
    }

    /// Up to `n` live entries of `network` chosen at random, none for which `exclude`
    /// holds. When the network has no more than `n` such entries, all of them.
    pub fn sample(
        &self,
        network: &NetworkId,
        n: usize,
        now: u64,
        ttl_ms: u64,
        rng: &mut impl Rng,
        exclude: impl Fn(&Entry) -> bool,
    ) -> Vec<Entry> {
        let Some(table) = self.tables.get(network) else {
            return Vec::new();
        };
        let keep = |e: &Entry| e.is_live(now, ttl_ms) && !exclude(e);
        let len = table.entries.len();
        if n == 0 || len == 0 {
            return Vec::new();
        }
        if len <= n.saturating_mul(4) {
            let mut all: Vec<Entry> = table.entries.iter().copied().filter(keep).collect();
            if all.len() > n {
                let (chosen, _) = all.partial_shuffle(rng, n);
                return chosen.to_vec();
            }
            return all;
        }
        // Large table: draw distinct indices; the draws cover at most 2n + 16 slots, and a
        // full scan takes over only if most of them were expired or excluded.
        let draws = (n.saturating_mul(2) + 16).min(len);
        let mut out: Vec<Entry> = rand::seq::index::sample(rng, len, draws)
            .into_iter()
            .map(|i| table.entries[i])
            .filter(keep)
            .take(n)
            .collect();
        if out.len() < n {
            let mut all: Vec<Entry> = table.entries.iter().copied().filter(keep).collect();
            let take = n.min(all.len());
            let (chosen, _) = all.partial_shuffle(rng, take);
            out = chosen.to_vec();
        }
        out
    }

    /// Bytes of memory the registry's tables hold (capacity, not length).
    pub fn memory_bytes(&self) -> usize {
        let tables: usize = self
            .tables
            .values()
            .map(|t| {
                t.entries.capacity() * std::mem::size_of::<Entry>()
                    + t.index.capacity() * (std::mem::size_of::<u32>() + 1)
            })
            .sum();
        tables
            + self.per_source.capacity() * (std::mem::size_of::<(IpBytes, u32)>() + 1)
            + self.per_address.capacity() * (std::mem::size_of::<((IpBytes, u16), u32)>() + 1)
    }
}

fn decrement<K: std::hash::Hash + Eq>(map: &mut HashMap<K, u32>, key: &K) {
    if let Some(n) = map.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(key);
        }
    }
}

use rand::seq::SliceRandom as _;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tally_core::SecretKey;

    fn net(n: u8) -> NetworkId {
        NetworkId(tally_core::sha256(&[&[n]]))
    }

    fn entry(k: u8, src: u8, ts: u64, seen: u64) -> Entry {
        Entry {
            account: SecretKey::from_bytes([k; 32]).account(),
            ip: ip_bytes(IpAddr::from([10, 0, 0, k])),
            source: ip_bytes(IpAddr::from([192, 168, 0, src])),
            proof_of_work: u64::from(k),
            timestamp: ts,
            seen,
            port: 2222,
        }
    }

    const LIMITS: RegistryLimits = RegistryLimits {
        max_entries: 100,
        max_entries_per_ip: 3,
        max_entries_per_address: 1000,
    };

    #[test]
    fn one_address_lists_a_bounded_number_of_keys_and_frees_them_as_they_go() {
        let n = net(1);
        let limits = RegistryLimits {
            max_entries_per_address: 2,
            ..LIMITS
        };
        let mut r = Registry::new([&n], limits);
        let at = |k: u8, host: u8, ts: u64| Entry {
            ip: ip_bytes(IpAddr::from([10, 0, 0, host])),
            ..entry(k, k, ts, 1)
        };
        r.apply(&n, at(1, 9, 1)).unwrap();
        r.apply(&n, at(2, 9, 1)).unwrap();
        assert_eq!(
            r.apply(&n, at(3, 9, 1)).err(),
            Some(Refusal::AddressCrowded)
        );
        // Moving a key onto the crowded address is refused too; elsewhere it is fine.
        r.apply(&n, at(3, 8, 1)).unwrap();
        assert_eq!(
            r.apply(&n, at(3, 9, 2)).err(),
            Some(Refusal::AddressCrowded)
        );
        // A key leaving the address frees its place.
        r.apply(&n, at(1, 7, 2)).unwrap();
        r.apply(&n, at(3, 9, 3)).unwrap();
        r.remove(&n, &at(2, 9, 0).account);
        r.apply(&n, at(4, 9, 1)).unwrap();
        assert_eq!(
            r.apply(&n, at(5, 9, 1)).err(),
            Some(Refusal::AddressCrowded)
        );
    }

    #[test]
    fn entries_are_compact() {
        assert!(std::mem::size_of::<Entry>() <= 96);
    }

    #[test]
    fn apply_refuses_replays_and_enforces_limits() {
        let n = net(1);
        let mut r = Registry::new([&n], LIMITS);
        r.apply(&n, entry(1, 1, 10, 100)).unwrap();
        assert_eq!(
            r.apply(&n, entry(1, 1, 10, 200)).err(),
            Some(Refusal::Stale)
        );
        assert_eq!(r.apply(&n, entry(1, 1, 9, 200)).err(), Some(Refusal::Stale));
        r.apply(&n, entry(1, 1, 11, 200)).unwrap();
        assert_eq!(r.get(&n, &entry(1, 1, 0, 0).account).unwrap().seen, 200);
        r.apply(&n, entry(2, 1, 1, 1)).unwrap();
        r.apply(&n, entry(3, 1, 1, 1)).unwrap();
        assert_eq!(
            r.apply(&n, entry(4, 1, 1, 1)).err(),
            Some(Refusal::TooManyEntriesFromAddress)
        );
        assert_eq!(r.source_len(IpAddr::from([192, 168, 0, 1])), 3);
        // A key moving to another source frees a slot at the old one.
        r.apply(&n, entry(3, 2, 2, 1)).unwrap();
        assert_eq!(r.source_len(IpAddr::from([192, 168, 0, 1])), 2);
        r.apply(&n, entry(4, 1, 1, 1)).unwrap();
        assert_eq!(
            r.apply(&net(9), entry(5, 5, 1, 1)).err(),
            Some(Refusal::UnknownNetwork)
        );
        let mut full = Registry::new(
            [&n],
            RegistryLimits {
                max_entries: 2,
                max_entries_per_ip: 10,
                max_entries_per_address: 1000,
            },
        );
        full.apply(&n, entry(1, 1, 1, 1)).unwrap();
        full.apply(&n, entry(2, 1, 1, 1)).unwrap();
        assert_eq!(full.apply(&n, entry(3, 1, 1, 1)).err(), Some(Refusal::Full));
        // Re-registering an existing key is fine when full.
        full.apply(&n, entry(2, 1, 2, 2)).unwrap();
    }

    #[test]
    fn undo_restores_the_previous_state() {
        let n = net(1);
        let mut r = Registry::new([&n], LIMITS);
        r.apply(&n, entry(1, 1, 10, 100)).unwrap();
        let u1 = r.apply(&n, entry(1, 2, 11, 200)).unwrap();
        let u2 = r.apply(&n, entry(2, 2, 1, 1)).unwrap();
        r.undo(u2);
        r.undo(u1);
        assert_eq!(r.len(), 1);
        assert_eq!(
            r.get(&n, &entry(1, 1, 0, 0).account),
            Some(&entry(1, 1, 10, 100))
        );
        assert_eq!(r.source_len(IpAddr::from([192, 168, 0, 1])), 1);
        assert_eq!(r.source_len(IpAddr::from([192, 168, 0, 2])), 0);
    }

    #[test]
    fn expiry_follows_the_clock_given() {
        let n = net(1);
        let mut r = Registry::new([&n], LIMITS);
        r.apply(&n, entry(1, 1, 1, 1000)).unwrap();
        r.apply(&n, entry(2, 2, 1, 5000)).unwrap();
        assert_eq!(r.live(&n, 1500, 1000).len(), 2);
        assert_eq!(r.live(&n, 2000, 1000).len(), 1);
        assert_eq!(r.len(), 2);
        let dead = r.sweep(2000, 1000);
        assert_eq!(dead, vec![(n, entry(1, 1, 0, 0).account)]);
        assert_eq!(r.len(), 1);
        assert_eq!(r.source_len(IpAddr::from([192, 168, 0, 1])), 0);
        assert!(r.sweep(6000, 1000).len() == 1 && r.is_empty());
    }

    #[test]
    fn sample_is_random_live_and_excludes() {
        let n = net(1);
        let mut r = Registry::new(
            [&n],
            RegistryLimits {
                max_entries: 1000,
                max_entries_per_ip: 1000,
                max_entries_per_address: 1000,
            },
        );
        for k in 0..200u8 {
            r.apply(&n, entry(k, 1, 1, if k < 100 { 0 } else { 1000 }))
                .unwrap();
        }
        let mut rng = rand::thread_rng();
        let me = entry(150, 1, 0, 0).account;
        for want in [1, 5, 30, 99, 100, 500] {
            let s = r.sample(&n, want, 1500, 1000, &mut rng, |e| e.account == me);
            assert_eq!(s.len(), want.min(99));
            assert!(s.iter().all(|e| e.seen == 1000 && e.account != me));
            let mut ids: Vec<_> = s.iter().map(|e| e.account).collect();
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), s.len());
        }
        assert!(r.sample(&net(2), 5, 0, 1, &mut rng, |_| false).is_empty());
    }

    proptest! {
        /// Any sequence of applies, removes and sweeps keeps the index, the counts and the
        /// entries consistent.
        #[test]
        fn registry_stays_consistent(ops in proptest::collection::vec((0u8..3, 0u8..20, 0u8..4, 0u64..50), 1..200)) {
            let n = net(1);
            let mut r = Registry::new([&n], RegistryLimits { max_entries: 15, max_entries_per_ip: 6, max_entries_per_address: 1000 });
            for (op, k, src, t) in ops {
                match op {
                    0 => { let _ = r.apply(&n, entry(k, src, t, t)); }
                    1 => { r.remove(&n, &entry(k, 0, 0, 0).account); }
                    _ => { r.sweep(t, 20); }
                }
                let live = r.live(&n, 0, u64::MAX);
                prop_assert_eq!(live.len(), r.len());
                prop_assert!(r.len() <= 15);
                for e in &live {
                    prop_assert_eq!(r.get(&n, &e.account), Some(e));
                }
                let per: usize = (0..4u8).map(|s| r.source_len(IpAddr::from([192, 168, 0, s]))).sum();
                prop_assert_eq!(per, r.len());
                for s in 0..4u8 {
                    prop_assert!(r.source_len(IpAddr::from([192, 168, 0, s])) <= 6);
                }
            }
        }
    }
}
