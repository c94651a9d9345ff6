//! Loading the ledger at start: the checkpointed tables, then the log's tail re-applied and
//! the vote journal re-read; or, on a fresh database, the genesis.

use std::collections::{BTreeMap, HashMap};

use redb::{ReadableTable, ReadableTableMetadata};
use tally_core::{AccountId, Amount, NetworkContract};

use super::pending::Pending;
use super::tables::{
    ACCOUNTS, CERTIFICATES, ESCROWS, GENESIS_CHUNK, LOCKS, META, META_CHECKPOINT,
    META_CHECKPOINT_SUPPLY, META_LOG_LEN, META_NETWORK_CHECK, META_SUPPLY, VOTES,
};
use super::{RedbLedgerStore, lock};
use crate::state::{LockChange, Validator};
use crate::store::ledger_store::{StoreError, lock_is_live, touched_by};
use crate::store::records::{
    LockKey, decode_account, decode_account_id, decode_escrow, decode_escrow_id, decode_lock,
    decode_lock_records, encode_account, network_marker, parse_certificate,
};

impl RedbLedgerStore {
    /// [`crate::LedgerStore::load`] for redb.
    pub(super) fn recover(
        &self,
        validator: &mut Validator,
        contract: &NetworkContract,
    ) -> Result<(), StoreError> {
        let network_prefix = network_marker(&contract.id());
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let stored_network = meta.get(META_NETWORK_CHECK)?.map(|v| v.value());
        match stored_network {
            None => {
                drop(meta);
                drop(txn);
                return self.write_genesis(validator, contract, network_prefix);
            }
            Some(prefix) if prefix != network_prefix => return Err(StoreError::WrongNetwork),
            Some(_) => {}
        }
        let get = |key: &str| -> Result<Option<u64>, StoreError> {
            Ok(meta.get(key)?.map(|v| v.value()))
        };
        let supply = get(META_SUPPLY)?.unwrap_or(0);
        let log_len = get(META_LOG_LEN)?.unwrap_or(0);
        let recorded_base = get(META_CHECKPOINT)?;
        let base = recorded_base.unwrap_or(log_len);
        let base_supply = get(META_CHECKPOINT_SUPPLY)?.unwrap_or(supply);
        if base > log_len {
            return Err(StoreError::Corrupt("checkpoint beyond the log".into()));
        }

        let accounts_table = txn.open_table(ACCOUNTS)?;
        let mut accounts = HashMap::with_capacity(accounts_table.len()? as usize);
        for row in accounts_table.iter()? {
            let (key, value) = row?;
            accounts.insert(
                decode_account_id(key.value())?,
                decode_account(value.value())?,
            );
        }
        drop(accounts_table);
        validator.restore(
            accounts,
            Vec::new(),
            Amount::from_microcash(base_supply),
            base,
        );
        // The escrows as of the checkpoint, before the tail (whose claims and refunds settle
        // some of them) and before the locks (whether an escrow's vote binds depends on it).
        let mut escrows = Vec::new();
        for row in txn.open_table(ESCROWS)?.iter()? {
            let (key, value) = row?;
            escrows.push((
                decode_escrow_id(key.value())?,
                decode_escrow(value.value())?,
            ));
        }
        validator.restore_escrows(escrows);

        let mut pending = Pending {
            base,
            log_len,
            supply,
            ..Pending::default()
        };
        // Votes given since the checkpoint, in the order they were given.
        for row in txn.open_table(VOTES)?.iter()? {
            let (row, records) = row?;
            for lock in decode_lock_records(records.value())? {
                pending.lock(&LockChange::Set(lock));
                pending.votes += 1;
            }
            pending.next_vote_row = row.value() + 1;
        }
        // The log after the checkpoint: re-apply it (a certificate's effect depends only on
        // the state before it, and these were checked before they were logged).
        let certificates = txn.open_table(CERTIFICATES)?;
        let mut position = base;
        for row in certificates.range(base..log_len)? {
            let (index, bytes) = row?;
            if index.value() != position {
                return Err(StoreError::Corrupt(format!(
                    "certificate {position} is missing"
                )));
            }
            let certificate = parse_certificate(bytes.value())?;
            match validator.handle_certificate(&certificate, true) {
                Ok(applied) if applied.new => {}
                other => {
                    return Err(StoreError::Corrupt(format!(
                        "certificate {position} does not re-apply: {other:?}"
                    )));
                }
            }
            let touched = touched_by(&certificate.order, |id| Ok(validator.escrow(id)))?;
            pending.index(position, &certificate, &touched);
            // The intro or escrow lock the certificate closes (a transfer's is left behind
            // and skipped on load).
            pending.lock(&LockChange::Clear(certificate.order.lock_slot()));
            position += 1;
            // Keep memory flat while re-applying a long tail.
            if position % 4096 == 0 {
                let changes = validator.take_changes();
                pending.remember(validator, &changes);
            }
        }
        if position != log_len {
            return Err(StoreError::Corrupt(format!(
                "the log ends at {position}, not {log_len}"
            )));
        }
        let changes = validator.take_changes();
        pending.remember(validator, &changes);
        if validator.supply().microcash() != supply || validator.log_len() != log_len {
            return Err(StoreError::Corrupt(
                "the log does not re-apply to the recorded supply".into(),
            ));
        }

        // Locks: the checkpointed rows, then the journal's (newer) ones. A transfer lock whose
        // order was since applied, an intro lock of an introduced key, and an escrow lock of
        // a settled escrow are history.
        let mut locks: BTreeMap<LockKey, Vec<u8>> = BTreeMap::new();
        for row in txn.open_table(LOCKS)?.iter()? {
            let (key, value) = row?;
            let key: LockKey = key
                .value()
                .try_into()
                .map_err(|_| StoreError::Corrupt("lock key".into()))?;
            locks.insert(key, value.value().to_vec());
        }
        for (key, value) in &pending.locks {
            match value {
                Some(value) => locks.insert(*key, value.clone()),
                None => locks.remove(key),
            };
        }
        let mut live = Vec::new();
        for (key, value) in &locks {
            let lock = decode_lock(key, value)?;
            if lock_is_live(validator, &lock.slot) {
                live.push(lock);
            }
        }
        validator.restore_locks(live);
        drop(txn);
        if recorded_base.is_none() {
            // A data folder from before checkpoints: its tables cover the whole log. Say so,
            // so that batches appended from now on are re-applied after a crash.
            let txn = self.db.begin_write()?;
            {
                let mut meta = txn.open_table(META)?;
                meta.insert(META_CHECKPOINT, base)?;
                meta.insert(META_CHECKPOINT_SUPPLY, base_supply)?;
            }
            txn.commit()?;
        }
        *lock(&self.pending) = pending;
        Ok(())
    }

    /// Funds a fresh database from the contract's genesis.
    fn write_genesis(
        &self,
        validator: &mut Validator,
        contract: &NetworkContract,
        network_prefix: u64,
    ) -> Result<(), StoreError> {
        validator
            .apply_genesis(contract)
            .map_err(|e| StoreError::Corrupt(format!("genesis: {e}")))?;
        drop(validator.take_changes());
        // A genesis may fund millions of accounts: write them in key order (appends are much
        // cheaper than random inserts) and in bounded transactions, so the memory a write
        // transaction holds stays small. The network marker goes in last: a crash before it
        // makes the next start write the genesis again.
        let mut accounts: Vec<AccountId> = validator.accounts().map(|(a, _)| *a).collect();
        accounts.sort_unstable();
        for chunk in accounts.chunks(GENESIS_CHUNK) {
            let txn = self.db.begin_write()?;
            {
                let mut table = txn.open_table(ACCOUNTS)?;
                for account in chunk {
                    table.insert(
                        account.as_bytes().as_slice(),
                        encode_account(&validator.account(account)).as_slice(),
                    )?;
                }
            }
            txn.commit()?;
        }
        let supply = validator.supply().microcash();
        let txn = self.db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            meta.insert(META_SUPPLY, supply)?;
            meta.insert(META_LOG_LEN, 0)?;
            meta.insert(META_CHECKPOINT, 0)?;
            meta.insert(META_CHECKPOINT_SUPPLY, supply)?;
            meta.insert(META_NETWORK_CHECK, network_prefix)?;
        }
        txn.commit()?;
        *lock(&self.pending) = Pending {
            supply,
            ..Pending::default()
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use tally_core::LockSlot;

    use super::*;
    use crate::state::Settlement;
    use crate::store::ledger_store::LedgerStore;
    use crate::store::records::lock_key;
    use crate::store::test_fixture::{NOW_MS, Network, secret};

    /// A settlement re-applied from the log's tail clears its escrow's vote row, which the
    /// journal restored: loading would skip that row anyway, but without the clear the next
    /// checkpoint would write it to the lock table for good.
    #[test]
    fn a_replayed_settlement_deletes_its_escrows_vote_row() {
        let n = Network::with_escrows("escrow lock rows", 2);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.redb");
        let open = || {
            RedbLedgerStore::open(&path, 1 << 20)
                .unwrap()
                .with_checkpoint_every(1000)
        };
        let store = open();
        let mut v = n.load(&store);
        v.set_clock(NOW_MS);
        let lock = n.escrow_lock(&n.alice, &n.bob, 300, 0, &secret(1));
        let id = n.escrow_id(&lock);
        v.handle_certificate(&n.certificate(lock), true).unwrap();
        let claim = n.claim(id, secret(1));
        v.decide_order(&claim, true).unwrap();
        store.commit_snapshot(&v.take_snapshot(), &[]).unwrap();
        v.handle_certificate(&n.certificate(claim), true).unwrap();
        store.commit_snapshot(&v.take_snapshot(), &[]).unwrap();
        drop(store);

        let store = open();
        let v = n.load(&store);
        assert_eq!(store.replay_tail(), 2);
        store.checkpoint().unwrap();
        let txn = store.db.begin_read().unwrap();
        let locks = txn.open_table(LOCKS).unwrap();
        let key = lock_key(&LockSlot::Escrow(id));
        assert!(locks.get(key.as_slice()).unwrap().is_none());
        let escrows = txn.open_table(ESCROWS).unwrap();
        let row = escrows.get(id.as_bytes().as_slice()).unwrap().unwrap();
        let escrow = decode_escrow(row.value()).unwrap();
        assert_eq!(escrow.settlement, Settlement::Claimed(secret(1)));
        assert_eq!(Some(escrow), v.escrow(&id));
    }
}
