//! Room membership rules as a plain data structure, without I/O: who may join which room,
//! with which token, up to which cap, and who is told when someone leaves. The server keeps
//! one [`Rooms`] behind a lock and attaches its connection handles as `M`.

use std::collections::HashMap;
use std::net::IpAddr;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::protocol::{PRIVATE_ROOM_CAP, RoomKind};

/// One member of a room: its relay-wide id, its address, and the caller's handle.
#[derive(Clone, Debug)]
pub struct Member<M> {
    /// Relay-wide connection id, shown in notices (two members may share an address).
    pub id: u64,
    /// The member's address as the relay sees it.
    pub ip: IpAddr,
    /// Whatever the caller needs to reach the member (a connection, in the server).
    pub handle: M,
}

#[derive(Debug)]
struct Room<M> {
    kind: RoomKind,
    /// SHA-256 of the token set by the first member: compared in constant time, and the
    /// token itself is never kept.
    token_hash: [u8; 32],
    members: Vec<Member<M>>,
}

/// Why a join was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinRefusal {
    /// The room exists and its token is different.
    WrongToken,
    /// The room has `cap` members already.
    RoomFull {
        /// The room's cap.
        cap: usize,
    },
    /// The room exists with the other kind.
    WrongKind {
        /// The kind the room has.
        existing: RoomKind,
    },
}

/// A successful join: the members that were already there (to be told of the newcomer, and
/// to be listed to it), and the room's size and cap now.
#[derive(Debug)]
pub struct Joined<'a, M> {
    /// The members present before the newcomer, in joining order.
    pub present: &'a [Member<M>],
    /// Members now, the newcomer included.
    pub members: usize,
    /// The room's cap.
    pub cap: usize,
}

/// All rooms of a relay. A room exists while it has members: the first member creates it
/// and sets its kind and token; it disappears when the last member leaves.
#[derive(Debug)]
pub struct Rooms<M> {
    rooms: HashMap<Box<str>, Room<M>>,
    topic_cap: usize,
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl<M> Rooms<M> {
    /// No rooms; topic rooms will take at most `topic_cap` members (private rooms take
    /// [`PRIVATE_ROOM_CAP`]).
    pub fn new(topic_cap: usize) -> Rooms<M> {
        Rooms {
            rooms: HashMap::new(),
            topic_cap,
        }
    }

    /// The member cap of a room of this kind.
    pub fn cap(&self, kind: RoomKind) -> usize {
        match kind {
            RoomKind::Private => PRIVATE_ROOM_CAP,
            RoomKind::Topic => self.topic_cap,
        }
    }

    /// Adds `member` to `room` (creating it with `kind` and `token` if it does not exist),
    /// or says why not. The kind is checked before the token, the token before the cap, so a
    /// stranger learns nothing about a room's occupancy without its token.
    pub fn join(
        &mut self,
        kind: RoomKind,
        room: &str,
        token: &str,
        member: Member<M>,
    ) -> Result<Joined<'_, M>, JoinRefusal> {
        let hash = token_hash(token);
        let cap = self.cap(kind);
        if cap == 0 {
            return Err(JoinRefusal::RoomFull { cap });
        }
        let entry = match self.rooms.entry(room.into()) {
            std::collections::hash_map::Entry::Occupied(occupied) => {
                let entry = occupied.into_mut();
                if entry.kind != kind {
                    return Err(JoinRefusal::WrongKind {
                        existing: entry.kind,
                    });
                }
                if !bool::from(entry.token_hash.ct_eq(&hash)) {
                    return Err(JoinRefusal::WrongToken);
                }
                if entry.members.len() >= cap {
                    return Err(JoinRefusal::RoomFull { cap });
                }
                entry
            }
            std::collections::hash_map::Entry::Vacant(vacant) => vacant.insert(Room {
                kind,
                token_hash: hash,
                members: Vec::with_capacity(if kind == RoomKind::Private { cap } else { 1 }),
            }),
        };
        entry.members.push(member);
        let members = entry.members.len();
        Ok(Joined {
            present: &entry.members[..members - 1],
            members,
            cap,
        })
    }

    /// Removes member `id` from `room`. Returns the removed member and the members left to
    /// be told, or `None` if it was not there. An emptied room is removed.
    pub fn leave(&mut self, room: &str, id: u64) -> Option<(Member<M>, &[Member<M>])> {
        let entry = self.rooms.get_mut(room)?;
        let at = entry.members.iter().position(|m| m.id == id)?;
        let gone = entry.members.remove(at);
        if entry.members.is_empty() {
            self.rooms.remove(room);
            return Some((gone, &[]));
        }
        let rest = self.rooms.get(room).map_or(&[][..], |r| &r.members[..]);
        Some((gone, rest))
    }

    /// The members of `room` (empty if there is no such room).
    pub fn members(&self, room: &str) -> &[Member<M>] {
        self.rooms.get(room).map_or(&[], |r| &r.members)
    }

    /// How many rooms exist.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::net::Ipv4Addr;

    fn m(id: u64) -> Member<u64> {
        Member {
            id,
            ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, id as u8)),
            handle: id,
        }
    }

    /// A private room takes two members with the first member's token, then refuses.
    #[test]
    fn private_room_rules() {
        let mut rooms = Rooms::new(8);
        let j = rooms.join(RoomKind::Private, "r", "tok", m(1)).unwrap();
        assert_eq!((j.present.len(), j.members, j.cap), (0, 1, 2));
        assert_eq!(
            rooms.join(RoomKind::Private, "r", "bad", m(2)).unwrap_err(),
            JoinRefusal::WrongToken
        );
        let j = rooms.join(RoomKind::Private, "r", "tok", m(2)).unwrap();
        assert_eq!(j.present.iter().map(|m| m.id).collect::<Vec<_>>(), vec![1]);
        assert_eq!(j.members, 2);
        assert_eq!(
            rooms.join(RoomKind::Private, "r", "tok", m(3)).unwrap_err(),
            JoinRefusal::RoomFull { cap: 2 }
        );
        assert_eq!(
            rooms.join(RoomKind::Topic, "r", "tok", m(3)).unwrap_err(),
            JoinRefusal::WrongKind {
                existing: RoomKind::Private
            }
        );
        // A stranger with a wrong token is told "wrong token", not "full".
        assert_eq!(
            rooms.join(RoomKind::Private, "r", "bad", m(4)).unwrap_err(),
            JoinRefusal::WrongToken
        );
    }

    /// Leaving tells the rest; the last member leaving removes the room, so the name is free
    /// again with a new token.
    #[test]
    fn rooms_disappear_when_empty() {
        let mut rooms = Rooms::new(8);
        rooms.join(RoomKind::Private, "r", "tok", m(1)).unwrap();
        rooms.join(RoomKind::Private, "r", "tok", m(2)).unwrap();
        let (gone, rest) = rooms.leave("r", 1).unwrap();
        assert_eq!(gone.id, 1);
        assert_eq!(rest.iter().map(|m| m.id).collect::<Vec<_>>(), vec![2]);
        assert!(rooms.leave("r", 1).is_none());
        let (_, rest) = rooms.leave("r", 2).unwrap();
        assert!(rest.is_empty());
        assert_eq!(rooms.room_count(), 0);
        assert!(rooms.members("r").is_empty());
        let j = rooms.join(RoomKind::Topic, "r", "other", m(3)).unwrap();
        assert_eq!(j.cap, 8);
    }

    /// Topic rooms take as many members as configured, then refuse.
    #[test]
    fn topic_cap_is_configurable() {
        let mut rooms = Rooms::new(3);
        for id in 1..=3 {
            rooms.join(RoomKind::Topic, "t", "tok", m(id)).unwrap();
        }
        assert_eq!(
            rooms.join(RoomKind::Topic, "t", "tok", m(4)).unwrap_err(),
            JoinRefusal::RoomFull { cap: 3 }
        );
        assert_eq!(rooms.members("t").len(), 3);
    }
}
