//! What the live-transfer tests share on both kinds of network: short clocks, the sender
//! and receiver as tasks whose steps come out of a channel, the connection file awaited.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tally_core::SecretKey;
use tally_live::Timing;
use tally_proto::live::{ConnectionFile, MessageNumber};
use tally_wallet::Wallet;
use tally_wallet::coins::{CoinFolder, CoinStore, RandomKeys};
use tally_wallet::live::{
    self, LiveLedger, Progress, ReceiveReport, ReceiveRequest, SendReport, SendRequest,
};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::task::JoinHandle;

/// Clocks short enough for a test, valid by `Timing::validate`; a chain needs a longer
/// pown window (its blocks must bury the powns).
pub fn timing(pown_window_ms: u64) -> Timing {
    Timing {
        heartbeat_ms: 500,
        peer_timeout_ms: 3_000,
        join_timeout_ms: 20_000,
        pown_window_ms,
        min_pown_window_ms: 3_000,
        skew_ms: 500,
    }
}

/// Cash in the Bank and Fracked folders: what the wallet counts as its coins.
pub fn banked(store: &CoinStore) -> u64 {
    [CoinFolder::Bank, CoinFolder::Fracked]
        .into_iter()
        .flat_map(|f| store.list(f).unwrap())
        .map(|c| c.denomination.cash())
        .sum()
}

fn steps_into(tx: UnboundedSender<MessageNumber>) -> impl FnMut(Progress) + Send {
    move |p: Progress| {
        if let Progress::Step(n) = p {
            let _ = tx.send(n);
        }
    }
}

/// Starts `live send` from the wallet in `dir` as a task; its steps come out of the
/// channel.
pub fn spawn_send<L: LiveLedger + Send + Sync + 'static>(
    dir: PathBuf,
    ledger: L,
    store: CoinStore,
    request: SendRequest,
    from: Option<SecretKey>,
) -> (JoinHandle<SendReport>, UnboundedReceiver<MessageNumber>) {
    let (tx, rx) = unbounded_channel();
    let task = tokio::spawn(async move {
        let wallet = Wallet::open(&dir).unwrap();
        let mut progress = steps_into(tx);
        let from = from.as_ref();
        live::send(
            &wallet,
            &ledger,
            &store,
            &mut RandomKeys,
            from,
            &request,
            &mut progress,
        )
        .await
        .unwrap()
    });
    (task, rx)
}

/// Starts `live receive` into the wallet in `dir` as a task; its steps come out of the
/// channel.
pub fn spawn_receive<L: LiveLedger + Send + Sync + 'static>(
    dir: PathBuf,
    ledger: L,
    store: CoinStore,
    connection_file: &Path,
    timing: Timing,
) -> (JoinHandle<ReceiveReport>, UnboundedReceiver<MessageNumber>) {
    let request = ReceiveRequest {
        connection_file: connection_file.to_path_buf(),
        expected_amount: None,
        timing,
        cancel: None,
    };
    let (tx, rx) = unbounded_channel();
    let task = tokio::spawn(async move {
        let wallet = Wallet::open(&dir).unwrap();
        let mut progress = steps_into(tx);
        live::receive(
            &wallet,
            &ledger,
            &store,
            &mut RandomKeys,
            &request,
            &mut progress,
        )
        .await
        .unwrap()
    });
    (task, rx)
}

/// The connection file the sender writes, once it is there and whole.
pub async fn wait_for_file(path: &Path) -> ConnectionFile {
    for _ in 0..400 {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(file) = ConnectionFile::parse(&text)
        {
            return file;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no connection file at {}", path.display());
}
