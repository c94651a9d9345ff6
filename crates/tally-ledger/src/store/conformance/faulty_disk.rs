//! A disk for redb that can die at any write: a [`redb::StorageBackend`] in memory that
//! keeps what was synced apart from what was only written, so that a test can crash the
//! real redb store at its `k`-th write and restart it on what a power cut (unsynced writes
//! lost) or a killed process (unsynced writes kept) leaves.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// One write not synced yet.
#[derive(Debug)]
enum Unsynced {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

#[derive(Debug, Default)]
struct State {
    /// What reads see: every write so far.
    written: Vec<u8>,
    /// What survives a power cut: the bytes as of the last sync.
    synced: Vec<u8>,
    /// Writes since the last sync, in order.
    unsynced: Vec<Unsynced>,
    /// Writes (`write`, `set_len`, `sync_data`) left before the armed crash.
    crash_in: Option<u64>,
    /// The disk died: every later write fails and changes nothing.
    crashed: bool,
}

/// A disk shared by the store that writes it and the test that crashes it.
#[derive(Debug, Clone, Default)]
pub(crate) struct FaultyDisk(Arc<Mutex<State>>);

impl FaultyDisk {
    /// A disk holding `bytes`, all of them synced.
    fn holding(bytes: Vec<u8>) -> Self {
        FaultyDisk(Arc::new(Mutex::new(State {
            written: bytes.clone(),
            synced: bytes,
            ..State::default()
        })))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Kills the disk at its `k`-th write from now (counting from 0): that write fails and
    /// does not happen, nor does any later one.
    pub(crate) fn crash_at_write(&self, k: u64) {
        self.state().crash_in = Some(k);
    }

    /// Kills the disk now.
    pub(crate) fn crash_now(&self) {
        self.state().crashed = true;
    }

    /// Whether the disk died.
    pub(crate) fn crashed(&self) -> bool {
        self.state().crashed
    }

    /// The disk a restarted machine finds: the synced bytes, and the unsynced writes too
    /// when `keep_unsynced`.
    pub(crate) fn after_restart(&self, keep_unsynced: bool) -> Self {
        let state = self.state();
        FaultyDisk::holding(if keep_unsynced {
            state.written.clone()
        } else {
            state.synced.clone()
        })
    }

    /// Counts one write towards the armed crash.
    fn tick(state: &mut State) -> io::Result<()> {
        if state.crashed {
            return Err(io::Error::other("the disk is gone"));
        }
        match state.crash_in {
            Some(0) => {
                state.crash_in = None;
                state.crashed = true;
                Err(io::Error::other("crash at a write"))
            }
            Some(left) => {
                state.crash_in = Some(left - 1);
                Ok(())
            }
            None => Ok(()),
        }
    }
}

fn apply(bytes: &mut Vec<u8>, write: &Unsynced) {
    match write {
        Unsynced::Write(offset, data) => {
            let start = usize::try_from(*offset).unwrap_or(usize::MAX);
            let end = start.saturating_add(data.len());
            if bytes.len() < end {
                bytes.resize(end, 0);
            }
            bytes[start..end].copy_from_slice(data);
        }
        Unsynced::SetLen(len) => bytes.resize(usize::try_from(*len).unwrap_or(usize::MAX), 0),
    }
}

impl redb::StorageBackend for FaultyDisk {
    fn len(&self) -> io::Result<u64> {
        Ok(self.state().written.len() as u64)
    }

    fn read(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let state = self.state();
        let start = usize::try_from(offset).map_err(io::Error::other)?;
        state
            .written
            .get(start..start.saturating_add(len))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"))
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut state = self.state();
        Self::tick(&mut state)?;
        let write = Unsynced::SetLen(len);
        apply(&mut state.written, &write);
        state.unsynced.push(write);
        Ok(())
    }

    /// A full sync makes every write so far survive a power cut. An `eventual` one is only
    /// a barrier: the writes before it may reach the disk at any later time, and a power
    /// cut before the next full sync may lose them all, which is what is modelled.
    fn sync_data(&self, eventual: bool) -> io::Result<()> {
        let mut state = self.state();
        Self::tick(&mut state)?;
        if eventual {
            return Ok(());
        }
        let State {
            synced, unsynced, ..
        } = &mut *state;
        for write in unsynced.drain(..) {
            apply(synced, &write);
        }
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut state = self.state();
        Self::tick(&mut state)?;
        let write = Unsynced::Write(offset, data.to_vec());
        apply(&mut state.written, &write);
        state.unsynced.push(write);
        Ok(())
    }
}
