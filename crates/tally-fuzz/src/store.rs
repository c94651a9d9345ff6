//! What the stores read back from disk: after a crash, or on a disk someone else wrote,
//! those bytes are outside input like any peer's.

use tally_chain::AccountState as ChainAccount;
use tally_chain::state::Undo;
use tally_core::block::HEADER_LEN;
use tally_core::{Block, BlockHeader, Decode, Encode, EscrowState, Transaction};
use tally_ledger::records;

/// `ledger_records`: the validator's redb records ([`tally_ledger::records`]) as
/// recovery and queries read them back. The first byte picks the record: an account row,
/// a vote-lock row (33-byte key, then value), a vote-journal row, an escrow row, or a
/// certificate log record.
///
/// Properties: an accepted record is refused or read, never misread: written again with
/// the store's own encoder it gives back exactly its bytes (account, lock, escrow and
/// certificate rows) or, for a journal row (whose older bare layout is still read), it
/// is written in today's layout and reads back to the same locks.
pub fn ledger_records(data: &[u8]) {
    let Some((&kind, bytes)) = data.split_first() else {
        return;
    };
    match kind % 5 {
        0 => {
            if let Ok(state) = records::decode_account(bytes) {
                assert_eq!(
                    records::encode_account(&state)[..],
                    bytes[..],
                    "an account row is misread"
                );
            }
        }
        1 => {
            let (key, value) = bytes.split_at(bytes.len().min(33));
            if let Ok(lock) = records::decode_lock(key, value) {
                assert_eq!(
                    records::lock_key(&lock.slot)[..],
                    key[..],
                    "a lock key is misread"
                );
                assert_eq!(records::lock_row(&lock), value, "a lock row is misread");
            }
        }
        2 => {
            if let Ok(locks) = records::decode_lock_records(bytes) {
                let row = records::journal_row(&locks);
                let back = records::decode_lock_records(&row);
                assert!(
                    back.as_ref().is_ok_and(|back| *back == locks),
                    "a vote-journal row does not read back: {back:?}"
                );
                if bytes.first() == Some(&records::JOURNAL_FORMAT) {
                    assert_eq!(row, bytes, "a vote-journal row is misread");
                }
            }
        }
        3 => {
            if let Ok(escrow) = records::decode_escrow(bytes) {
                assert_eq!(
                    records::encode_escrow(&escrow),
                    bytes,
                    "an escrow row is misread"
                );
            }
        }
        _ => {
            if let Ok(certificate) = records::parse_certificate(bytes) {
                let mut record = Vec::new();
                let written = records::certificate_record(&certificate, &mut record);
                assert!(written.is_ok());
                assert_eq!(record, bytes, "a certificate record is misread");
            }
        }
    }
}

/// `chain_records`: the proof-of-work chain's redb records as `RedbStore::load`, `block`
/// and `undo` read them back. The first byte picks the record: an undo record
/// ([`Undo::decode`]), an account row ([`tally_chain::AccountState::decode`]), an escrow
/// row, a header row (header then status byte), a stored block, or a transaction.
///
/// Properties: an accepted record re-encodes to exactly its bytes (one encoding per
/// value, so a record is never misread), and its computed lengths are its lengths.
pub fn chain_records(data: &[u8]) {
    let Some((&kind, bytes)) = data.split_first() else {
        return;
    };
    match kind % 6 {
        0 => {
            if let Some(undo) = Undo::decode(bytes) {
                assert_eq!(undo.encode(), bytes, "an undo record is misread");
                assert_eq!(undo.encoded_len(), bytes.len());
            }
        }
        1 => {
            if let Some(state) = ChainAccount::decode(bytes) {
                assert_eq!(state.encode()[..], bytes[..], "an account row is misread");
            }
        }
        2 => {
            if let Ok(escrow) = EscrowState::from_bytes(bytes) {
                assert_eq!(escrow.to_bytes(), bytes, "an escrow row is misread");
                assert_eq!(escrow.encoded_len(), bytes.len());
            }
        }
        3 => {
            if bytes.len() == HEADER_LEN + 1
                && let Ok(header) = BlockHeader::decode(&bytes[..HEADER_LEN])
            {
                assert_eq!(
                    header.encode()[..],
                    bytes[..HEADER_LEN],
                    "a header row is misread"
                );
                let _ = header.hash();
                let _ = header.meets_own_target();
            }
        }
        4 => {
            if let Ok(block) = Block::decode(bytes) {
                assert_eq!(block.encode(), bytes, "a block record is misread");
                assert_eq!(block.encoded_len(), bytes.len());
                let _ = block.compute_merkle_root();
            }
        }
        _ => {
            if let Ok(tx) = Transaction::decode(bytes) {
                assert_eq!(tx.encode(), bytes, "a transaction is misread");
                assert_eq!(tx.encoded_len(), bytes.len());
                let _ = tx.id();
            }
        }
    }
}
