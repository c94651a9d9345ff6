//! The LiveConnect transfer driven for real (DESIGN §7 "The live transfer", PROTOCOL.md §7
//! "LiveConnect transfer"): [`send`] and [`receive`] own the relay connection, the clock
//! and the coins, and run `tally_live`'s sans-I/O [`Sender`](tally_live::Sender) and
//! [`Receiver`](tally_live::Receiver) to the end, performing their actions with the coin
//! operations of [`crate::coins`].
//!
//! **Hidden sub-wallets.** Each transfer isolates its coins in a coin store of its own,
//! `<wallet>/live/<room>/sender/` or `…/receiver/` (the seed's hidden `Sender` and
//! `Receiver` wallets), so the Bank never counts a coin that is on its way. Coins move
//! between the Bank and a sub-wallet by one rename ([`CoinStore::move_into`]): after a
//! crash each coin is in exactly one place. The sender's prepared coins wait in the
//! sub-wallet's `Bank`, sealed ones in its `Export`, delivered ones in its `Sent`; kept
//! coins go back to the Bank, reclaimed ones are powned back there. The receiver's opened
//! coins wait in its sub-wallet's `Import` until powned; the fresh coins go to the Bank.
//!
//! **Journals.** `<wallet>/live/<room>.sender.json` / `.receiver.json` hold the connection
//! file's text and the machine's state, written atomically after every event and before
//! any action is performed. Starting a transfer whose journal exists resumes it: the
//! machine re-issues the work that was in flight, and every piece of work here is
//! idempotent (the coin operations journal their own orders).
//!
//! **Time and the relay.** Every relay read waits at most [`TICK`]; the machines get a
//! `Tick` every second for heartbeats and timeouts; a lost relay connection is joined again
//! once a second, and the peer's `@here`/`@arrived` makes each side re-send what it sent.
//! Wallet work runs beside the relay loop, so heartbeats go on while coins are powned.

mod ledger;
mod receipt;
mod receiver;
mod room;
mod sender;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tally_core::{Amount, NetworkId};
use tally_live::{CoinSummary, ConfigError, FailReason};
use tally_proto::live::{ConnectionFile, ConnectionFileError, MessageNumber};

pub use ledger::LiveLedger;
pub use receipt::{ReceiptError, check_receipt, decode_receipt, encode_receipt};
pub use receiver::{ReceiveReport, ReceiveRequest, receive};
pub use sender::{SendReport, SendRequest, send};

use crate::WalletError;
use crate::coins::{CoinFolder, CoinOpError, CoinStore, ListedCoin};
use crate::wallet::write_atomic;

/// How often the machines are ticked, and the longest one relay read waits.
pub const TICK: Duration = Duration::from_secs(1);

/// What a transfer reports as it goes, for the CLI to show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// A numbered step was reached (sent or received).
    Step(MessageNumber),
    /// The transfer failed; what happens to the coins follows (the outcome says).
    Failed(FailReason),
    /// Delivered, but the receiver left before the confirmation reached it: the sender
    /// waits this long for it to come back before it ends.
    Lingering(Duration),
}

/// Why a live transfer could not run. Failures of the transfer itself (the peer went
/// silent, a receipt did not verify…) are not errors: they are its outcome.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The wallet folder (journal or connection file writes).
    #[error(transparent)]
    Wallet(#[from] WalletError),
    /// The coin folders, outside the transfer's own work (opening a hidden wallet).
    #[error(transparent)]
    Coins(#[from] CoinOpError),
    /// Reading a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The connection file is not valid (or a new one could not be made valid).
    #[error("connection file {path}: {source}")]
    ConnectionFile {
        path: PathBuf,
        source: ConnectionFileError,
    },
    /// A journal exists but cannot be read: nothing is done rather than guess.
    #[error("journal {path} is not valid: {message}")]
    Journal { path: PathBuf, message: String },
    /// The connection file names another network than the wallet's contract.
    #[error("the transfer is for network {file}, this wallet's client is for {client}")]
    WrongNetwork { file: NetworkId, client: NetworkId },
    /// The first join of a new transfer failed (a resumed one keeps retrying instead).
    #[error("relay {relay}: {source}")]
    Relay {
        relay: String,
        source: tally_relay::ClientError,
    },
    /// The amount or the clocks are not acceptable to the machine.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The connection file names a journaled transfer of another amount.
    #[error("the journaled transfer in {path} is for {journaled}, not {asked}")]
    AmountMismatch {
        path: PathBuf,
        journaled: Amount,
        asked: Amount,
    },
}

/// Unix time in milliseconds: what the machines and the pown deadline count in.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A journal: the connection file's text (everything needed to rejoin) and the state.
#[derive(Serialize, Deserialize)]
struct Journal<S> {
    connection: String,
    state: S,
}

/// `<wallet>/live`.
fn live_dir(wallet_dir: &Path) -> PathBuf {
    wallet_dir.join("live")
}

/// The file-name form of a room. A room name comes from a connection file and may hold
/// `/` and `.` (the relay allows them), so only a name of letters, digits, `_` and `-` is
/// used as it is; any other is written `x` and its bytes in hex, which names no path
/// outside the wallet's `live` folder.
fn room_key(room: &str) -> String {
    if !room.is_empty()
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && !room.starts_with('x')
    {
        room.to_owned()
    } else {
        format!("x{}", hex::encode(room.as_bytes()))
    }
}

/// The room a file-name form stands for (the inverse of [`room_key`]).
fn room_of_key(key: &str) -> String {
    key.strip_prefix('x')
        .and_then(|hex_bytes| hex::decode(hex_bytes).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_else(|| key.to_owned())
}

/// The journal of `room` for `side` (`sender` or `receiver`).
fn journal_path(wallet_dir: &Path, room: &str, side: &str) -> PathBuf {
    live_dir(wallet_dir).join(format!("{}.{side}.json", room_key(room)))
}

/// The hidden sub-wallet of `room` for `side`.
fn hidden_store(
    wallet_dir: &Path,
    room: &str,
    side: &str,
    network: NetworkId,
) -> Result<CoinStore, LiveError> {
    let dir = live_dir(wallet_dir).join(room_key(room)).join(side);
    Ok(CoinStore::open(&dir, network)?)
}

fn write_journal<S: Serialize>(path: &Path, connection: &str, state: &S) -> Result<(), LiveError> {
    let journal = Journal {
        connection: connection.to_owned(),
        state,
    };
    let text = serde_json::to_vec_pretty(&journal).map_err(|e| LiveError::Journal {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| LiveError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    write_atomic(path, &text)?;
    Ok(())
}

/// The journal at `path`, if there is one.
fn read_journal<S: DeserializeOwned>(path: &Path) -> Result<Option<(String, S)>, LiveError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(LiveError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let journal: Journal<S> = serde_json::from_slice(&bytes).map_err(|e| LiveError::Journal {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(Some((journal.connection, journal.state)))
}

/// Reads and checks a connection file.
fn read_connection_file(path: &Path) -> Result<ConnectionFile, LiveError> {
    let text = std::fs::read_to_string(path).map_err(|source| LiveError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_connection(path, &text)
}

fn parse_connection(path: &Path, text: &str) -> Result<ConnectionFile, LiveError> {
    ConnectionFile::parse(text).map_err(|source| LiveError::ConnectionFile {
        path: path.to_path_buf(),
        source,
    })
}

/// The machines' view of a listed coin.
fn summary(coin: &ListedCoin) -> CoinSummary {
    CoinSummary {
        account: coin.account,
        denomination_cash: coin.denomination.cash(),
    }
}

/// Moves every coin of a sub-wallet's `Bank` and `Fracked` into the same folder of the
/// wallet's own store (fresh coins from a pown; coins a failed transfer keeps). Safe to
/// repeat: a coin already moved is no longer listed.
fn sweep_to_bank(hidden: &CoinStore, bank: &CoinStore) -> Result<Vec<ListedCoin>, CoinOpError> {
    let mut moved = Vec::new();
    for folder in [CoinFolder::Bank, CoinFolder::Fracked] {
        for coin in hidden.list(folder)? {
            moved.push(hidden.move_into(&coin, bank, folder)?);
        }
    }
    Ok(moved)
}

/// Which side of a transfer a journal is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Side {
    /// `live send`.
    Sender,
    /// `live receive`.
    Receiver,
}

/// A journaled transfer, as [`transfers`] lists it: so a transfer interrupted and never
/// resumed is not forgotten (its coins wait in its hidden sub-wallet until it is).
#[derive(Clone, Debug, Serialize)]
pub struct TransferSummary {
    /// The relay room, which names the transfer.
    pub room: String,
    /// Which side this wallet took.
    pub side: Side,
    /// Where the machine stands, in words.
    pub phase: &'static str,
    /// Whether it is over.
    pub finished: bool,
    /// The journal (it holds the connection file's text, to resume with).
    pub journal: PathBuf,
}

fn sender_phase(phase: &tally_live::SenderPhase) -> &'static str {
    use tally_live::SenderPhase as P;
    match phase {
        P::WaitingForReceiver => "waiting for the receiver",
        P::AwaitingEmpty | P::AwaitingEcho => "agreeing on the amount",
        P::Preparing { .. } => "preparing the coins",
        P::Sealing { .. } => "sealing the coins",
        P::AwaitingReceipt { .. } => "coins sent, waiting for the receipt",
        P::CheckingReceipt { .. } => "checking the receipt",
        P::AwaitingDeadline { .. } => "failed after sending, waiting for the pown deadline",
        P::Reclaiming { .. } => "taking unpowned coins back",
        P::Finished(_) => "finished",
    }
}

fn receiver_phase(phase: &tally_live::ReceiverPhase) -> &'static str {
    use tally_live::ReceiverPhase as P;
    match phase {
        P::AwaitingRequest | P::AwaitingAmount => "agreeing on the amount",
        P::FollowingSender { .. } => "following the sender's preparation",
        P::AwaitingCoins { .. } => "waiting for the coins",
        P::Opening { .. } => "opening the coins",
        P::Powning { .. } => "powning the coins",
        P::AwaitingConfirmation { .. } => "receipt sent, waiting for the confirmation",
        P::Finished(_) => "finished",
    }
}

/// Every transfer journaled in the wallet at `wallet_dir`, by room.
pub fn transfers(wallet_dir: &Path) -> Result<Vec<TransferSummary>, LiveError> {
    let dir = live_dir(wallet_dir);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(LiveError::Io { path: dir, source }),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|source| LiveError::Io {
                path: dir.clone(),
                source,
            })?
            .path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some(room) = name.strip_suffix(".sender.json") {
            if let Some((_, state)) = read_journal::<tally_live::SenderState>(&path)? {
                out.push(TransferSummary {
                    room: room_of_key(room),
                    side: Side::Sender,
                    phase: sender_phase(state.phase()),
                    finished: matches!(state.phase(), tally_live::SenderPhase::Finished(_)),
                    journal: path.clone(),
                });
            }
        } else if let Some(room) = name.strip_suffix(".receiver.json")
            && let Some((_, state)) = read_journal::<tally_live::ReceiverState>(&path)?
        {
            out.push(TransferSummary {
                room: room_of_key(room),
                side: Side::Receiver,
                phase: receiver_phase(state.phase()),
                finished: matches!(state.phase(), tally_live::ReceiverPhase::Finished(_)),
                journal: path.clone(),
            });
        }
    }
    out.sort_by(|a, b| a.room.cmp(&b.room));
    Ok(out)
}

/// A journaled transfer made ready to resume without the connection file the user had:
/// the journal's copy is written back beside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resumable {
    /// Which side this wallet took.
    pub side: Side,
    /// The connection file to run `send` or `receive` with (it names the journaled room).
    pub connection_file: PathBuf,
    /// For a sender, the amount it journaled (a resumed send must ask for the same).
    pub amount: Option<Amount>,
}

/// Prepares the journaled transfer of `room` to be resumed: a transfer whose connection
/// file was lost would otherwise leave its coins in the hidden sub-wallet, where no other
/// command looks. `None` if this wallet journaled no transfer in that room.
pub fn resumable(wallet_dir: &Path, room: &str) -> Result<Option<Resumable>, LiveError> {
    if !tally_proto::live::valid_room(room) {
        return Ok(None);
    }
    let connection_file = live_dir(wallet_dir).join(format!("{}.connection.txt", room_key(room)));
    let sender = journal_path(wallet_dir, room, "sender");
    if let Some((text, state)) = read_journal::<tally_live::SenderState>(&sender)? {
        write_atomic(&connection_file, text.as_bytes())?;
        return Ok(Some(Resumable {
            side: Side::Sender,
            connection_file,
            amount: Some(state.config().amount),
        }));
    }
    let receiver = journal_path(wallet_dir, room, "receiver");
    if let Some((text, _)) = read_journal::<tally_live::ReceiverState>(&receiver)? {
        write_atomic(&connection_file, text.as_bytes())?;
        return Ok(Some(Resumable {
            side: Side::Receiver,
            connection_file,
            amount: None,
        }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_names_a_file_inside_the_live_folder_and_is_read_back() {
        for room in [
            "6b1f0c3e9a7d2254",
            "../../etc/x",
            "a/b",
            "x123",
            ".",
            "room.with.dots",
        ] {
            let key = room_key(room);
            assert!(
                key.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
                "{room} -> {key}"
            );
            assert_eq!(room_of_key(&key), room);
        }
        assert_eq!(room_key("6b1f0c3e9a7d2254"), "6b1f0c3e9a7d2254");
    }
}
