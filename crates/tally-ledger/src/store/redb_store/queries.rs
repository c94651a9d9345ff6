//! The reads the node serves, each merging the checkpointed tables with the changes since
//! the last checkpoint, so that they see the last committed batch.

use std::ops::Bound;

use tally_core::AccountId;

use super::tables::{ACCOUNTS, CERTIFICATES, META, SENT, TOUCHING};
use super::{RedbLedgerStore, lock};
use crate::state::AccountState;
use crate::store::ledger_store::{CertificatePage, StoreError};
use crate::store::records::{
    cursor_key, decode_account, decode_account_id, index_key, index_number, parse_certificate,
};

impl RedbLedgerStore {
    /// [`crate::LedgerStore::cursor`] for redb.
    pub(super) fn read_cursor(&self, peer: &AccountId) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        Ok(meta
            .get(cursor_key(peer).as_str())?
            .map(|v| v.value())
            .unwrap_or(0))
    }

    /// [`crate::LedgerStore::certificates_since`] for redb.
    pub(super) fn read_log(&self, since: u64, limit: usize) -> Result<CertificatePage, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(CERTIFICATES)?;
        let mut out = Vec::new();
        for row in table.range(since..)? {
            let (index, bytes) = row?;
            if out.len() == limit {
                return Ok((out, Some(index.value())));
            }
            out.push((index.value(), parse_certificate(bytes.value())?));
        }
        Ok((out, None))
    }

    /// [`crate::LedgerStore::sent`] for redb.
    pub(super) fn read_sent(
        &self,
        account: &AccountId,
        from: u64,
        limit: usize,
    ) -> Result<CertificatePage, StoreError> {
        let start = index_key(account, from);
        let end = index_key(account, u64::MAX);
        // The pending rows first (a copy: the lock is not held while reading the disk), then
        // the table's rows below the checkpoint they were taken at. A sender's sequence grows
        // with the log position, so the table's rows all come first.
        let (base, tail): (u64, Vec<(u64, u64)>) = {
            let pending = lock(&self.pending);
            let tail = pending
                .sent
                .range(start..=end)
                .take(limit + 1)
                .map(|(key, position)| Ok((index_number(key)?, *position)))
                .collect::<Result<_, StoreError>>()?;
            (pending.base, tail)
        };
        let txn = self.db.begin_read()?;
        let sent = txn.open_table(SENT)?;
        let mut rows: Vec<(u64, u64)> = Vec::new();
        for row in sent.range(start.as_slice()..=end.as_slice())? {
            if rows.len() > limit {
                break;
            }
            let (key, position) = row?;
            let position = position.value();
            if position < base {
                rows.push((index_number(key.value())?, position));
            }
        }
        rows.extend(tail);
        let certificates = txn.open_table(CERTIFICATES)?;
        page(&certificates, rows, limit)
    }

    /// [`crate::LedgerStore::touching`] for redb.
    pub(super) fn read_touching(
        &self,
        account: &AccountId,
        since: u64,
        limit: usize,
    ) -> Result<CertificatePage, StoreError> {
        let start = index_key(account, since);
        let end = index_key(account, u64::MAX);
        let (base, tail): (u64, Vec<(u64, u64)>) = {
            let pending = lock(&self.pending);
            let tail = pending
                .touching
                .range(start..=end)
                .take(limit + 1)
                .map(|key| index_number(key).map(|position| (position, position)))
                .collect::<Result<_, StoreError>>()?;
            (pending.base, tail)
        };
        let txn = self.db.begin_read()?;
        let touching = txn.open_table(TOUCHING)?;
        let mut rows: Vec<(u64, u64)> = Vec::new();
        for row in touching.range(start.as_slice()..=end.as_slice())? {
            if rows.len() > limit {
                break;
            }
            let (key, _) = row?;
            let position = index_number(key.value())?;
            if position < base {
                rows.push((position, position));
            }
        }
        rows.extend(tail);
        let certificates = txn.open_table(CERTIFICATES)?;
        page(&certificates, rows, limit)
    }

    /// [`crate::LedgerStore::accounts_page`] for redb.
    pub(super) fn read_accounts(
        &self,
        after: Option<&AccountId>,
        limit: usize,
    ) -> Result<Vec<(AccountId, AccountState)>, StoreError> {
        let lower = match after {
            Some(after) => Bound::Excluded(*after),
            None => Bound::Unbounded,
        };
        let recent: Vec<(AccountId, AccountState)> = lock(&self.pending)
            .accounts
            .range((lower, Bound::Unbounded))
            .take(limit)
            .map(|(a, s)| (*a, *s))
            .collect();
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ACCOUNTS)?;
        let after_bytes = after.map(|a| *a.as_bytes());
        let rows = match &after_bytes {
            Some(after) => {
                table.range::<&[u8]>((Bound::Excluded(after.as_slice()), Bound::Unbounded))?
            }
            None => table.range::<&[u8]>(..)?,
        };
        let mut stored = Vec::with_capacity(limit.min(1024));
        for row in rows.take(limit) {
            let (key, value) = row?;
            stored.push((
                decode_account_id(key.value())?,
                decode_account(value.value())?,
            ));
        }
        // Merge the two key-ordered lists; the recent state wins.
        let mut out = Vec::with_capacity(limit.min(1024));
        let (mut a, mut b) = (stored.into_iter().peekable(), recent.into_iter().peekable());
        while out.len() < limit {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x.0 < y.0 => a.next(),
                (Some(x), Some(y)) if x.0 == y.0 => {
                    a.next();
                    b.next()
                }
                (Some(_), Some(_)) | (None, Some(_)) => b.next(),
                (Some(_), None) => a.next(),
                (None, None) => None,
            };
            match next {
                Some(entry) => out.push(entry),
                None => break,
            }
        }
        Ok(out)
    }
}

/// Reads the certificates of `rows` ((cursor, log position), in order): at most `limit`,
/// and the cursor of the next one if there is one.
fn page(
    certificates: &redb::ReadOnlyTable<u64, &[u8]>,
    rows: Vec<(u64, u64)>,
    limit: usize,
) -> Result<CertificatePage, StoreError> {
    let next = rows.get(limit).map(|(cursor, _)| *cursor);
    let mut out = Vec::with_capacity(rows.len().min(limit));
    for (_, position) in rows.into_iter().take(limit) {
        let bytes = certificates
            .get(position)?
            .ok_or_else(|| StoreError::Corrupt(format!("an index points at {position}")))?;
        out.push((position, parse_certificate(bytes.value())?));
    }
    Ok((out, next))
}
