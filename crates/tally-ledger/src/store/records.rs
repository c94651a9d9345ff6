//! The byte layouts of everything the redb store writes: account rows, vote-lock rows and
//! journal records, index keys, certificate log records and meta keys.
//!
//! This is the only module that knows those bytes; the tables, recovery and queries go
//! through the functions here. Integers in values are little-endian as in the signing
//! bytes; integers in index keys are big-endian, so that keys sort by account, then number.

use tally_core::{
    AccountId, Amount, Certificate, IntroKey, LockSlot, NetworkId, Order, OrderDigest, Signature,
    Transfer, Vote,
};

use super::ledger_store::StoreError;
use crate::state::AccountState;

/// First byte of a binary certificate record (a JSON record starts with `{`).
pub(super) const CERT_FORMAT_V1: u8 = 1;

/// A vote-lock row's key: kind (1 transfer, 2 intro) ‖ account.
pub(super) type LockKey = [u8; 33];
/// A vote-lock row's value: sequence (0 for an intro) ‖ order digest.
pub(super) type LockValue = [u8; 40];
/// An index key: account ‖ big-endian number (a sequence or a log position).
pub(super) type IndexKey = [u8; 40];
/// One record of the vote journal: a lock row's key followed by its value.
pub(super) const LOCK_RECORD: usize = 33 + 40;

const LOCK_KIND_SEQUENCE: u8 = 1;
const LOCK_KIND_INTRO: u8 = 2;

const ORDER_KIND_INTRO: u8 = 1;
const ORDER_KIND_TRANSFER: u8 = 2;

/// An account row's value: balance (i128) ‖ next sequence ‖ introduced (0 or 1).
pub(super) fn encode_account(state: &AccountState) -> [u8; 25] {
    let mut out = [0u8; 25];
    out[..16].copy_from_slice(&state.balance.to_le_bytes());
    out[16..24].copy_from_slice(&state.next_sequence.to_le_bytes());
    out[24] = u8::from(state.introduced);
    out
}

pub(super) fn decode_account(bytes: &[u8]) -> Result<AccountState, StoreError> {
    let corrupt = || StoreError::Corrupt("account record".into());
    if bytes.len() != 25 {
        return Err(corrupt());
    }
    let balance = i128::from_le_bytes(bytes[..16].try_into().map_err(|_| corrupt())?);
    let next_sequence = u64::from_le_bytes(bytes[16..24].try_into().map_err(|_| corrupt())?);
    Ok(AccountState {
        balance,
        next_sequence,
        introduced: bytes[24] == 1,
    })
}

/// An account row's key is the account's 32 bytes.
pub(super) fn decode_account_id(bytes: &[u8]) -> Result<AccountId, StoreError> {
    let array: [u8; 32] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("account key".into()))?;
    Ok(AccountId::from(array))
}

pub(super) fn lock_key(slot: &LockSlot) -> LockKey {
    let mut out = [0u8; 33];
    let account = match slot {
        LockSlot::Sequence(account, _) => {
            out[0] = LOCK_KIND_SEQUENCE;
            account
        }
        LockSlot::Intro(account) => {
            out[0] = LOCK_KIND_INTRO;
            account
        }
    };
    out[1..].copy_from_slice(account.as_bytes());
    out
}

pub(super) fn lock_value(slot: &LockSlot, digest: &OrderDigest) -> LockValue {
    let sequence = match slot {
        LockSlot::Sequence(_, s) => *s,
        LockSlot::Intro(_) => 0,
    };
    let mut value = [0u8; 40];
    value[..8].copy_from_slice(&sequence.to_le_bytes());
    value[8..].copy_from_slice(digest.as_bytes());
    value
}

pub(super) fn decode_lock(key: &[u8], value: &[u8]) -> Result<(LockSlot, OrderDigest), StoreError> {
    let corrupt = || StoreError::Corrupt("lock record".into());
    if key.len() != 33 || value.len() != 40 {
        return Err(corrupt());
    }
    let account = decode_account_id(&key[1..])?;
    let sequence = u64::from_le_bytes(value[..8].try_into().map_err(|_| corrupt())?);
    let digest: [u8; 32] = value[8..].try_into().map_err(|_| corrupt())?;
    let slot = match key[0] {
        LOCK_KIND_SEQUENCE => LockSlot::Sequence(account, sequence),
        LOCK_KIND_INTRO => LockSlot::Intro(account),
        _ => return Err(StoreError::Corrupt("lock kind".into())),
    };
    Ok((slot, OrderDigest::from(digest)))
}

/// The account and sequence of a transfer-lock row; `None` for an intro lock (or a row too
/// damaged to say).
pub(super) fn transfer_lock(key: &LockKey, value: &LockValue) -> Option<(AccountId, u64)> {
    if key[0] != LOCK_KIND_SEQUENCE {
        return None;
    }
    let account = decode_account_id(&key[1..]).ok()?;
    let sequence = u64_at(value, 0).ok()?;
    Some((account, sequence))
}

/// Appends one vote-journal record (the lock row it stands for) to `out`.
pub(super) fn push_lock_record(out: &mut Vec<u8>, slot: &LockSlot, digest: &OrderDigest) {
    out.extend_from_slice(&lock_key(slot));
    out.extend_from_slice(&lock_value(slot, digest));
}

/// The locks of one vote-journal row, in the order they were given.
pub(super) fn decode_lock_records(
    records: &[u8],
) -> Result<Vec<(LockSlot, OrderDigest)>, StoreError> {
    if !records.len().is_multiple_of(LOCK_RECORD) {
        return Err(StoreError::Corrupt("vote journal".into()));
    }
    records
        .chunks_exact(LOCK_RECORD)
        .map(|record| decode_lock(&record[..33], &record[33..]))
        .collect()
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

fn array_at<const N: usize>(bytes: &[u8], at: usize) -> Result<[u8; N], StoreError> {
    bytes
        .get(at..at + N)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| StoreError::Corrupt("short record".into()))
}

/// The certificate log's record: `1 ‖ kind ‖ order fields ‖ signature ‖ checksum ‖ n ‖ n ×
/// (validator ‖ vote signature)`, integers little-endian as in the signing bytes. About
/// half the size of the JSON and an order of magnitude cheaper to write and read.
fn encode_certificate(certificate: &Certificate, out: &mut Vec<u8>) {
    out.push(CERT_FORMAT_V1);
    match &certificate.order {
        Order::IntroKey(intro) => {
            out.push(ORDER_KIND_INTRO);
            out.extend_from_slice(intro.account.as_bytes());
            out.extend_from_slice(&intro.proof_of_work.to_le_bytes());
        }
        Order::Transfer(t) => {
            out.push(ORDER_KIND_TRANSFER);
            out.extend_from_slice(t.sender.as_bytes());
            out.extend_from_slice(t.recipient.as_bytes());
            out.extend_from_slice(&t.amount.microcash().to_le_bytes());
            out.extend_from_slice(&t.sequence.to_le_bytes());
        }
    }
    out.extend_from_slice(certificate.signature.as_bytes());
    out.extend_from_slice(certificate.checksum.as_bytes());
    // A certificate holds at most one vote per committee member; a committee of more than
    // 255 would need a wider count (the JSON form below still stores it).
    out.push(certificate.votes.len() as u8);
    for vote in &certificate.votes {
        out.extend_from_slice(vote.validator.as_bytes());
        out.extend_from_slice(vote.signature.as_bytes());
    }
}

/// The log record of `certificate` into `out`: binary, or JSON for a committee too large
/// for the binary form's vote count.
pub(super) fn certificate_record(
    certificate: &Certificate,
    out: &mut Vec<u8>,
) -> Result<(), StoreError> {
    out.clear();
    if certificate.votes.len() > usize::from(u8::MAX) {
        serde_json::to_writer(out, certificate).map_err(|e| StoreError::Database(e.to_string()))
    } else {
        encode_certificate(certificate, out);
        Ok(())
    }
}

/// A certificate from its log record.
pub(super) fn parse_certificate(bytes: &[u8]) -> Result<Certificate, StoreError> {
    match bytes.first() {
        Some(&CERT_FORMAT_V1) => decode_certificate(bytes),
        // Records written before the binary form, and oversized committees.
        _ => serde_json::from_slice(bytes)
            .map_err(|e| StoreError::Corrupt(format!("certificate: {e}"))),
    }
}

fn decode_certificate(bytes: &[u8]) -> Result<Certificate, StoreError> {
    let kind = *bytes
        .get(1)
        .ok_or_else(|| StoreError::Corrupt("short certificate".into()))?;
    let (order, mut at) = match kind {
        ORDER_KIND_INTRO => (
            Order::IntroKey(IntroKey {
                account: AccountId::from(array_at::<32>(bytes, 2)?),
                proof_of_work: u64_at(bytes, 34)?,
            }),
            42,
        ),
        ORDER_KIND_TRANSFER => (
            Order::Transfer(Transfer {
                sender: AccountId::from(array_at::<32>(bytes, 2)?),
                recipient: AccountId::from(array_at::<32>(bytes, 34)?),
                amount: Amount::from_microcash(u64_at(bytes, 66)?),
                sequence: u64_at(bytes, 74)?,
            }),
            82,
        ),
        _ => return Err(StoreError::Corrupt("certificate kind".into())),
    };
    let signature = Signature::from(array_at::<64>(bytes, at)?);
    let checksum = OrderDigest::from(array_at::<32>(bytes, at + 64)?);
    at += 96;
    let count = usize::from(
        *bytes
            .get(at)
            .ok_or_else(|| StoreError::Corrupt("short certificate".into()))?,
    );
    at += 1;
    if bytes.len() != at + 96 * count {
        return Err(StoreError::Corrupt("certificate length".into()));
    }
    let mut votes = Vec::with_capacity(count);
    for _ in 0..count {
        votes.push(Vote {
            validator: AccountId::from(array_at::<32>(bytes, at)?),
            signature: Signature::from(array_at::<64>(bytes, at + 32)?),
        });
        at += 96;
    }
    Ok(Certificate {
        order,
        signature,
        checksum,
        votes,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::store::test_fixture::Network;

    #[test]
    fn certificate_records_round_trip_and_old_json_records_still_read() {
        let n = Network::new("records", 2);
        let transfer = n.certificate(n.pay(&n.alice, &n.bob, 123_456, 7));
        let intro = n.certificate(n.intro(&n.bob, 99));
        for cert in [&transfer, &intro] {
            let mut record = Vec::new();
            certificate_record(cert, &mut record).unwrap();
            assert_eq!(record[0], CERT_FORMAT_V1);
            assert_eq!(&parse_certificate(&record).unwrap(), cert);
            let json = serde_json::to_vec(cert).unwrap();
            assert!(json.len() > record.len());
            assert_eq!(&parse_certificate(&json).unwrap(), cert);
            // A truncated or padded record is refused, not misread.
            assert!(parse_certificate(&record[..record.len() - 1]).is_err());
            record.push(0);
            assert!(parse_certificate(&record).is_err());
        }
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

        let alice = n.alice.account();
        let digest = OrderDigest::from([7u8; 32]);
        let mut journal = Vec::new();
        push_lock_record(&mut journal, &LockSlot::Sequence(alice, 9), &digest);
        push_lock_record(&mut journal, &LockSlot::Intro(alice), &digest);
        let mut expected = vec![1];
        expected.extend_from_slice(alice.as_bytes());
        expected.extend_from_slice(&9u64.to_le_bytes());
        expected.extend_from_slice(digest.as_bytes());
        expected.push(2);
        expected.extend_from_slice(alice.as_bytes());
        expected.extend_from_slice(&0u64.to_le_bytes());
        expected.extend_from_slice(digest.as_bytes());
        assert_eq!(journal, expected);
        assert_eq!(
            decode_lock_records(&journal).unwrap(),
            [
                (LockSlot::Sequence(alice, 9), digest),
                (LockSlot::Intro(alice), digest)
            ]
        );

        let key = index_key(&alice, 0x0102);
        assert_eq!(&key[..32], alice.as_bytes());
        assert_eq!(key[32..], [0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(index_number(&key).unwrap(), 0x0102);
        assert_eq!(cursor_key(&alice), format!("cursor/{alice}"));
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(&n.net.as_bytes()[..8]);
        assert_eq!(network_marker(&n.net), u64::from_le_bytes(prefix));

        let certificate = n.certificate(n.pay(&n.alice, &n.bob, 500, 4));
        let mut expected = vec![CERT_FORMAT_V1, 2];
        expected.extend_from_slice(alice.as_bytes());
        expected.extend_from_slice(n.bob.account().as_bytes());
        expected.extend_from_slice(&500u64.to_le_bytes());
        expected.extend_from_slice(&4u64.to_le_bytes());
        expected.extend_from_slice(certificate.signature.as_bytes());
        expected.extend_from_slice(certificate.checksum.as_bytes());
        expected.push(3);
        for vote in &certificate.votes {
            expected.extend_from_slice(vote.validator.as_bytes());
            expected.extend_from_slice(vote.signature.as_bytes());
        }
        let mut record = Vec::new();
        certificate_record(&certificate, &mut record).unwrap();
        assert_eq!(record, expected);

        let intro = n.certificate(n.intro(&n.bob, 0x0a0b));
        certificate_record(&intro, &mut record).unwrap();
        assert_eq!(record[..2], [CERT_FORMAT_V1, 1]);
        assert_eq!(&record[2..34], n.bob.account().as_bytes());
        assert_eq!(record[34..42], 0x0a0bu64.to_le_bytes());
        assert_eq!(record.len(), 42 + 96 + 1 + 3 * 96);
    }
}
