//! The byte layouts of everything the redb store writes: account rows, vote-lock rows and
//! journal records, escrow rows, index keys, certificate log records and meta keys.
//!
//! This is the only module that knows those bytes; the tables, recovery and queries go
//! through the functions here. Integers in values are little-endian as in the signing
//! bytes; integers in index keys are big-endian, so that keys sort by account, then number.
//!
//! The record decoders and their encoders are public (as `tally_ledger::records`): a
//! record read back from disk after a crash is outside input, and `tally-fuzz` feeds them
//! arbitrary bytes (target `ledger_records`).

use tally_core::{
    AccountId, Certificate, Decode, Encode, EscrowId, LockSlot, NetworkId, OrderDigest, SignedOrder,
};

use super::ledger_store::StoreError;
use crate::state::{AccountState, EscrowState, VoteLock};

/// First byte of a certificate log record: the record's format.
pub const CERT_FORMAT: u8 = 2;

/// A vote-lock row's key: kind (1 transfer, 2 intro, 3 escrow) ‖ account (the escrow's id
/// for an escrow's slot).
pub type LockKey = [u8; 33];
/// The fixed head of a vote-lock row's value: sequence (0 for an intro or an escrow's
/// slot) ‖ order digest.
/// The signed order follows it when the lock keeps one ([`lock_row`]).
pub type LockValue = [u8; 40];
/// First byte of a vote-journal row whose records carry their signed orders
/// ([`journal_row`]); rows of earlier builds hold bare 73-byte records (key ‖ value).
pub const JOURNAL_FORMAT: u8 = 3;
/// An index key: account ‖ big-endian number (a sequence or a log position).
pub(super) type IndexKey = [u8; 40];
/// One record of the vote journal: a lock row's key followed by its value.
pub const LOCK_RECORD: usize = 33 + 40;

const LOCK_KIND_SEQUENCE: u8 = 1;
const LOCK_KIND_INTRO: u8 = 2;
/// The slot of an escrow's one settlement (its claim or its refund).
const LOCK_KIND_ESCROW: u8 = 3;

/// An account row's value: balance (i128) ‖ next sequence ‖ introduced (0 or 1).
pub fn encode_account(state: &AccountState) -> [u8; 25] {
    let mut out = [0u8; 25];
    out[..16].copy_from_slice(&state.balance.to_le_bytes());
    out[16..24].copy_from_slice(&state.next_sequence.to_le_bytes());
    out[24] = u8::from(state.introduced);
    out
}

pub fn decode_account(bytes: &[u8]) -> Result<AccountState, StoreError> {
    let corrupt = || StoreError::Corrupt("account record".into());
    if bytes.len() != 25 {
        return Err(corrupt());
    }
    let balance = i128::from_le_bytes(bytes[..16].try_into().map_err(|_| corrupt())?);
    let next_sequence = u64::from_le_bytes(bytes[16..24].try_into().map_err(|_| corrupt())?);
    // Written as 0 or 1 only: any other byte is damage, not "not introduced".
    let introduced = match bytes[24] {
        0 => false,
        1 => true,
        _ => return Err(corrupt()),
    };
    Ok(AccountState {
        balance,
        next_sequence,
        introduced,
    })
}

/// An account row's key is the account's 32 bytes.
pub fn decode_account_id(bytes: &[u8]) -> Result<AccountId, StoreError> {
    let array: [u8; 32] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("account key".into()))?;
    Ok(AccountId::from(array))
}

pub fn lock_key(slot: &LockSlot) -> LockKey {
    let mut out = [0u8; 33];
    let (kind, body) = match slot {
        LockSlot::Sequence(account, _) => (LOCK_KIND_SEQUENCE, account.as_bytes()),
        LockSlot::Intro(account) => (LOCK_KIND_INTRO, account.as_bytes()),
        LockSlot::Escrow(id) => (LOCK_KIND_ESCROW, id.as_bytes()),
    };
    out[0] = kind;
    out[1..].copy_from_slice(body);
    out
}

pub fn lock_value(slot: &LockSlot, digest: &OrderDigest) -> LockValue {
    let sequence = match slot {
        LockSlot::Sequence(_, s) => *s,
        LockSlot::Intro(_) | LockSlot::Escrow(_) => 0,
    };
    let mut value = [0u8; 40];
    value[..8].copy_from_slice(&sequence.to_le_bytes());
    value[8..].copy_from_slice(digest.as_bytes());
    value
}

/// A vote-lock row's value: `sequence ‖ digest`, then the signed order's canonical
/// encoding when the lock keeps one.
pub fn lock_row(lock: &VoteLock) -> Vec<u8> {
    let head = lock_value(&lock.slot, &lock.digest);
    let mut value = Vec::with_capacity(40 + lock.order.as_ref().map_or(0, Encode::encoded_len));
    value.extend_from_slice(&head);
    if let Some(order) = &lock.order {
        order.encode_to(&mut value);
    }
    value
}

/// A vote lock from its row (key and value, with or without its signed order).
pub fn decode_lock(key: &[u8], value: &[u8]) -> Result<VoteLock, StoreError> {
    let corrupt = || StoreError::Corrupt("lock record".into());
    if key.len() != 33 || value.len() < 40 {
        return Err(corrupt());
    }
    let order = match &value[40..] {
        [] => None,
        encoded => Some(
            SignedOrder::from_bytes(encoded)
                .map_err(|e| StoreError::Corrupt(format!("lock record's order: {e}")))?,
        ),
    };
    let body: [u8; 32] = key[1..].try_into().map_err(|_| corrupt())?;
    let sequence = u64::from_le_bytes(value[..8].try_into().map_err(|_| corrupt())?);
    let digest: [u8; 32] = value[8..40].try_into().map_err(|_| corrupt())?;
    let slot = match key[0] {
        LOCK_KIND_SEQUENCE => LockSlot::Sequence(AccountId::from(body), sequence),
        // These slots have no sequence: [`lock_value`] writes 0, so anything else is
        // damage, refused rather than dropped.
        LOCK_KIND_INTRO | LOCK_KIND_ESCROW if sequence != 0 => {
            return Err(StoreError::Corrupt(
                "lock record: a sequence in a slot that has none".into(),
            ));
        }
        LOCK_KIND_INTRO => LockSlot::Intro(AccountId::from(body)),
        LOCK_KIND_ESCROW => LockSlot::Escrow(EscrowId::from(body)),
        _ => return Err(StoreError::Corrupt("lock kind".into())),
    };
    Ok(VoteLock {
        slot,
        digest: OrderDigest::from(digest),
        order,
    })
}

/// The account and sequence of a transfer-lock row; `None` for an intro lock (or a row too
/// damaged to say).
pub(super) fn transfer_lock(key: &LockKey, value: &[u8]) -> Option<(AccountId, u64)> {
    if key[0] != LOCK_KIND_SEQUENCE {
        return None;
    }
    let account = decode_account_id(&key[1..]).ok()?;
    let sequence = u64_at(value, 0).ok()?;
    Some((account, sequence))
}

/// One vote-journal row for a batch's new locks: `JOURNAL_FORMAT`, then per lock its row
/// key ‖ value length u16 ‖ value ([`lock_row`]); empty when there are none.
pub fn journal_row<'a>(locks: impl IntoIterator<Item = &'a VoteLock>) -> Vec<u8> {
    let mut out = Vec::new();
    for lock in locks {
        if out.is_empty() {
            out.push(JOURNAL_FORMAT);
        }
        let value = lock_row(lock);
        out.extend_from_slice(&lock_key(&lock.slot));
        // A lock row is at most 40 bytes and one signed order (a split of 64 outputs:
        // under 3 KB), far below u16::MAX.
        out.extend_from_slice(&(value.len() as u16).to_le_bytes());
        out.extend_from_slice(&value);
    }
    out
}

/// The locks of one vote-journal row, in the order they were given.
pub fn decode_lock_records(records: &[u8]) -> Result<Vec<VoteLock>, StoreError> {
    let corrupt = || StoreError::Corrupt("vote journal".into());
    match records.split_first() {
        // `journal_row` writes the format byte only in front of a record: a row that is
        // the byte alone lost its records, and is refused rather than read as "no votes".
        Some((&JOURNAL_FORMAT, [])) => Err(corrupt()),
        Some((&JOURNAL_FORMAT, mut rest)) => {
            let mut locks = Vec::new();
            while !rest.is_empty() {
                let key = rest.get(..33).ok_or_else(corrupt)?;
                let len = rest
                    .get(33..35)
                    .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])))
                    .ok_or_else(corrupt)?;
                let value = rest.get(35..35 + len).ok_or_else(corrupt)?;
                locks.push(decode_lock(key, value)?);
                rest = &rest[35 + len..];
            }
            Ok(locks)
        }
        // A row of an earlier build: bare fixed records, no orders.
        _ if records.len().is_multiple_of(LOCK_RECORD) => records
            .chunks_exact(LOCK_RECORD)
            .map(|record| decode_lock(&record[..33], &record[33..]))
            .collect(),
        _ => Err(corrupt()),
    }
}

/// An escrow row's value: the lock's canonical encoding (tally-core's codec), then the
/// settlement: `0` open, `1 ‖ secret` claimed, `2` refunded. The row's key is the escrow's
/// id. The lock is kept whole because a settlement needs its payer, payee and amount, and
/// the validator its hash lock and deadline.
pub fn encode_escrow(escrow: &EscrowState) -> Vec<u8> {
    escrow.to_bytes()
}

/// An escrow from its row's value; a row with bytes missing or left over is refused.
pub fn decode_escrow(bytes: &[u8]) -> Result<EscrowState, StoreError> {
    EscrowState::from_bytes(bytes).map_err(|e| StoreError::Corrupt(format!("escrow record: {e}")))
}

/// An escrow row's key is the escrow's 32-byte id.
pub fn decode_escrow_id(bytes: &[u8]) -> Result<EscrowId, StoreError> {
    let array: [u8; 32] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("escrow key".into()))?;
    Ok(EscrowId::from(array))
}

/// An index key: `account ‖ n` with `n` big-endian.
pub(super) fn index_key(account: &AccountId, n: u64) -> IndexKey {
    let mut out = [0u8; 40];
    out[..32].copy_from_slice(account.as_bytes());
    out[32..].copy_from_slice(&n.to_be_bytes());
    out
}

/// The number in an index key.
pub(super) fn index_number(key: &[u8]) -> Result<u64, StoreError> {
    key.get(32..)
        .and_then(|bytes| bytes.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| StoreError::Corrupt("index key".into()))
}

/// The `meta` value that marks which network a database belongs to: the first 8 bytes of
/// the network id, little-endian.
pub(super) fn network_marker(network: &NetworkId) -> u64 {
    let mut prefix = [0u8; 8];
    prefix.copy_from_slice(&network.as_bytes()[..8]);
    u64::from_le_bytes(prefix)
}

/// The `meta` key of the sync cursor for `peer`.
pub(super) fn cursor_key(peer: &AccountId) -> String {
    format!("cursor/{peer}")
}

fn u64_at(bytes: &[u8], at: usize) -> Result<u64, StoreError> {
    bytes
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| StoreError::Corrupt("short record".into()))
}

/// The certificate log's record: `2 ‖ the certificate's canonical encoding` (tally-core's
/// codec, PROTOCOL.md "Binary layouts"). The leading format byte lets a later layout be
/// told apart; records of earlier builds (format 1, or JSON) are refused as written by an
/// older build: the project has not shipped, so no folder needs migrating.
pub fn certificate_record(certificate: &Certificate, out: &mut Vec<u8>) -> Result<(), StoreError> {
    out.clear();
    out.reserve(1 + certificate.encoded_len());
    out.push(CERT_FORMAT);
    certificate.encode_to(out);
    Ok(())
}

/// A certificate from its log record.
pub fn parse_certificate(bytes: &[u8]) -> Result<Certificate, StoreError> {
    match bytes.split_first() {
        Some((&CERT_FORMAT, encoded)) => Certificate::from_bytes(encoded)
            .map_err(|e| StoreError::Corrupt(format!("certificate record: {e}"))),
        Some((format, _)) => Err(StoreError::Corrupt(format!(
            "certificate record format {format}: written by an older build of tally; \
             start this validator on a fresh folder"
        ))),
        None => Err(StoreError::Corrupt("empty certificate record".into())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::state::Settlement;
    use crate::store::test_fixture::Network;
    use tally_core::{EscrowLock, EscrowSecret};

    #[test]
    fn certificate_records_round_trip_and_older_formats_are_refused() {
        let n = Network::new("records", 2);
        let transfer = n.certificate(n.pay(&n.alice, &n.bob, 123_456, 7));
        let intro = n.certificate(n.intro(&n.bob, 99));
        for cert in [&transfer, &intro] {
            let mut record = Vec::new();
            certificate_record(cert, &mut record).unwrap();
            assert_eq!(record[0], CERT_FORMAT);
            assert_eq!(&parse_certificate(&record).unwrap(), cert);
            // A truncated or padded record is refused, not misread.
            assert!(parse_certificate(&record[..record.len() - 1]).is_err());
            record.push(0);
            assert!(parse_certificate(&record).is_err());
            // An earlier build's JSON record is refused with a reason, not misread.
            let json = serde_json::to_vec(cert).unwrap();
            let refused = parse_certificate(&json).unwrap_err().to_string();
            assert!(refused.contains("older build"), "{refused}");
        }
        assert!(parse_certificate(&[]).is_err());
    }

    /// The layouts written before this module existed, byte for byte: data folders written
    /// by earlier builds must still read.
    #[test]
    fn record_layouts_are_unchanged() {
        let n = Network::new("layouts", 2);
        let state = AccountState {
            balance: -5,
            next_sequence: 3,
            introduced: true,
        };
        let mut account = (-5i128).to_le_bytes().to_vec();
        account.extend_from_slice(&3u64.to_le_bytes());
        account.push(1);
        assert_eq!(encode_account(&state).to_vec(), account);
        assert_eq!(decode_account(&account).unwrap(), state);
        // The flag is 0 or 1; any other byte is damage, not "not introduced".
        let mut damaged = account.clone();
        damaged[24] = 2;
        assert!(decode_account(&damaged).is_err());

        let alice = n.alice.account();
        let digest = OrderDigest::from([7u8; 32]);
        // A journal row of an earlier build: bare `kind ‖ account ‖ sequence ‖ digest`
        // records, which still read (their locks without orders).
        let mut journal = vec![1];
        journal.extend_from_slice(alice.as_bytes());
        journal.extend_from_slice(&9u64.to_le_bytes());
        journal.extend_from_slice(digest.as_bytes());
        journal.push(2);
        journal.extend_from_slice(alice.as_bytes());
        journal.extend_from_slice(&0u64.to_le_bytes());
        journal.extend_from_slice(digest.as_bytes());
        let bare = |slot| VoteLock {
            slot,
            digest,
            order: None,
        };
        assert_eq!(
            decode_lock_records(&journal).unwrap(),
            [
                bare(LockSlot::Sequence(alice, 9)),
                bare(LockSlot::Intro(alice))
            ]
        );

        // Today's row: the format byte, then key ‖ value length u16 ‖ value, the value
        // carrying the signed order after the fixed head.
        let order = n.pay(&n.alice, &n.bob, 500, 9);
        let with_order = VoteLock {
            slot: LockSlot::Sequence(alice, 9),
            digest: order.order.digest(&n.net),
            order: Some(order.clone()),
        };
        let intro = bare(LockSlot::Intro(alice));
        let row = journal_row([&with_order, &intro]);
        let mut expected = vec![JOURNAL_FORMAT];
        for (lock, order_bytes) in [(&with_order, order.to_bytes()), (&intro, Vec::new())] {
            expected.extend_from_slice(&lock_key(&lock.slot));
            expected.extend_from_slice(&((40 + order_bytes.len()) as u16).to_le_bytes());
            expected.extend_from_slice(&lock_value(&lock.slot, &lock.digest));
            expected.extend_from_slice(&order_bytes);
        }
        assert_eq!(row, expected);
        assert_eq!(
            decode_lock_records(&row).unwrap(),
            [with_order.clone(), intro]
        );
        assert!(journal_row([]).is_empty());
        // The format byte without a record was never written: refused, not read as empty
        // (found by fuzzing).
        assert!(decode_lock_records(&[JOURNAL_FORMAT]).is_err());
        // A lock row is its fixed head, then the order; a cut order is refused, not misread.
        let value = lock_row(&with_order);
        let key = lock_key(&with_order.slot);
        assert_eq!(decode_lock(&key, &value).unwrap(), with_order);
        assert!(decode_lock(&key, &value[..value.len() - 1]).is_err());
        assert!(decode_lock_records(&row[..row.len() - 1]).is_err());

        let key = index_key(&alice, 0x0102);
        assert_eq!(&key[..32], alice.as_bytes());
        assert_eq!(key[32..], [0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(index_number(&key).unwrap(), 0x0102);
        assert_eq!(cursor_key(&alice), format!("cursor/{alice}"));
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(&n.net.as_bytes()[..8]);
        assert_eq!(network_marker(&n.net), u64::from_le_bytes(prefix));

        // A certificate record is the format byte, then tally-core's canonical encoding
        // (whose layout its own vectors pin): the store has no certificate layout of its own.
        let certificate = n.certificate(n.pay(&n.alice, &n.bob, 500, 4));
        let mut record = Vec::new();
        certificate_record(&certificate, &mut record).unwrap();
        assert_eq!(record[0], CERT_FORMAT);
        assert_eq!(record[1..], certificate.to_bytes()[..]);
        assert_eq!(record.len(), 1 + 1 + 80 + 64 + 32 + 4 + 3 * 96);
    }

    /// The escrow layouts, byte for byte: an escrow slot's lock row and journal record, and
    /// an escrow row in each settlement; each reads back, and a damaged one is refused.
    #[test]
    fn escrow_layouts_are_unchanged() {
        use tally_core::{Amount, Counterpart, Digest, EscrowClaim, Order};

        let n = Network::new("escrow layouts", 2);
        let id = EscrowId::from([0xe5; 32]);
        let slot = LockSlot::Escrow(id);
        // Key: kind 3 ‖ the escrow's id; value: sequence 0 ‖ digest, then the order.
        let mut key = vec![3];
        key.extend_from_slice(&[0xe5; 32]);
        assert_eq!(lock_key(&slot).to_vec(), key);
        let digest = OrderDigest::from([7u8; 32]);
        let mut head = vec![0u8; 8];
        head.extend_from_slice(&[7; 32]);
        assert_eq!(lock_value(&slot, &digest).to_vec(), head);
        assert!(transfer_lock(&lock_key(&slot), &head).is_none());

        // The vote for a claim keeps the claim, and so its secret.
        let secret = EscrowSecret::from([0x5e; 32]);
        let claim = SignedOrder::unsigned(Order::EscrowClaim(EscrowClaim { escrow: id, secret }));
        let vote = VoteLock {
            slot,
            digest: claim.order.digest(&n.net),
            order: Some(claim.clone()),
        };
        let value = lock_row(&vote);
        assert_eq!(value[..8], [0; 8]);
        assert_eq!(&value[8..40], vote.digest.as_bytes());
        assert_eq!(value[40..], claim.to_bytes()[..]);
        assert_eq!(decode_lock(&key, &value).unwrap(), vote);
        let bare = VoteLock {
            slot,
            digest,
            order: None,
        };
        assert_eq!(decode_lock(&key, &head).unwrap(), bare);
        let row = journal_row([&vote, &bare]);
        let mut expected = vec![JOURNAL_FORMAT];
        for (lock, value) in [(&vote, &value), (&bare, &head)] {
            expected.extend_from_slice(&lock_key(&lock.slot));
            expected.extend_from_slice(&(value.len() as u16).to_le_bytes());
            expected.extend_from_slice(value);
        }
        assert_eq!(row, expected);
        assert_eq!(decode_lock_records(&row).unwrap(), [vote, bare]);
        let mut unknown = key.clone();
        unknown[0] = 4;
        assert!(decode_lock(&unknown, &head).is_err());
        // An escrow's or an intro's slot has no sequence: a row carrying one is damaged
        // (found by fuzzing: it was read with the sequence dropped).
        let mut sequenced = head.clone();
        sequenced[0] = 1;
        assert!(decode_lock(&key, &sequenced).is_err());
        let mut intro_key = key.clone();
        intro_key[0] = 2;
        assert!(decode_lock(&intro_key, &head).is_ok());
        assert!(decode_lock(&intro_key, &sequenced).is_err());

        // An escrow row: payer ‖ sequence ‖ payee ‖ amount ‖ hash lock ‖ deadline ‖
        // counterpart option (0: none), then the settlement.
        let lock = EscrowLock {
            payer: AccountId::from([0x11; 32]),
            sequence: 0x0102,
            payee: AccountId::from([0x22; 32]),
            amount: Amount::from_microcash(0x0304),
            hash_lock: Digest::from([0x33; 32]),
            deadline: 0x0506,
            counterpart: None,
        };
        let mut lock_bytes = vec![0x11; 32];
        lock_bytes.extend_from_slice(&[2, 1, 0, 0, 0, 0, 0, 0]);
        lock_bytes.extend_from_slice(&[0x22; 32]);
        lock_bytes.extend_from_slice(&[4, 3, 0, 0, 0, 0, 0, 0]);
        lock_bytes.extend_from_slice(&[0x33; 32]);
        lock_bytes.extend_from_slice(&[6, 5, 0, 0, 0, 0, 0, 0]);
        lock_bytes.push(0);
        assert_eq!(lock_bytes.len(), 121);
        let mut claimed_tail = vec![1];
        claimed_tail.extend_from_slice(&[0x5e; 32]);
        for (settlement, tail) in [
            (Settlement::Open, vec![0]),
            (Settlement::Claimed(secret), claimed_tail),
            (Settlement::Refunded, vec![2]),
        ] {
            let escrow = EscrowState { lock, settlement };
            let mut bytes = lock_bytes.clone();
            bytes.extend_from_slice(&tail);
            assert_eq!(encode_escrow(&escrow), bytes, "{settlement:?}");
            assert_eq!(decode_escrow(&bytes).unwrap(), escrow);
            // Cut or padded, it is refused, not misread.
            assert!(decode_escrow(&bytes[..bytes.len() - 1]).is_err());
            bytes.push(0);
            assert!(decode_escrow(&bytes).is_err());
        }
        let mut bad = lock_bytes.clone();
        bad.push(3);
        assert!(decode_escrow(&bad).is_err(), "an unknown settlement");
        // A lock citing a counterpart: its option is `1 ‖ network ‖ options`.
        let cited = EscrowState {
            lock: EscrowLock {
                counterpart: Some(Counterpart {
                    network: n.net,
                    escrow: Some(id),
                    quote: None,
                }),
                ..lock
            },
            settlement: Settlement::Claimed(secret),
        };
        let bytes = encode_escrow(&cited);
        assert_eq!(bytes.len(), 120 + (1 + 32 + 33 + 1) + 33);
        assert_eq!(decode_escrow(&bytes).unwrap(), cited);
        assert_eq!(decode_escrow_id(&[0xe5; 32]).unwrap(), id);
        assert!(decode_escrow_id(&[0xe5; 31]).is_err());
    }
}
