//! The receiver's driver: the connection file read, the room joined, `tally_live::Receiver`
//! run against the relay; sealed coins opened into the transfer's hidden Receiver
//! sub-wallet, each powned to a fresh key of ours before the deadline, the fresh coins
//! moved to the Bank and their pown proofs (certificates, or transactions on a
//! proof-of-work network) sent as the receipt.

use std::collections::VecDeque;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use tally_core::seal::open_coins;
use tally_core::{AccountId, Amount, SessionKey};
use tally_live::{
    CoinSummary, Receiver, ReceiverAction, ReceiverConfig, ReceiverEvent, ReceiverOutcome,
    ReceiverState, Timing,
};
use tally_proto::live::MessageNumber;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio::sync::watch;

use super::ledger::LiveLedger;
use super::room::{Room, RoomEvent};
use super::{
    LiveError, Progress, TICK, hidden_store, journal_path, live_dir, now_ms, parse_connection,
    read_connection_file, read_journal, summary, sweep_to_bank, write_journal,
};
use crate::Wallet;
use crate::coins::{self, CoinFolder, CoinOpError, CoinStore, FreshKeys};
use crate::wallet::write_atomic;

/// What to receive.
#[derive(Clone, Debug)]
pub struct ReceiveRequest {
    /// The connection file the sender handed over.
    pub connection_file: PathBuf,
    /// The amount the user expects, if they said: another announced amount is refused.
    pub expected_amount: Option<Amount>,
    /// The transfer's clocks.
    pub timing: Timing,
    /// Becomes `true` when the user gives up (Ctrl-C): fed to the machine as its `Cancel`
    /// event, which keeps the coins before message 24 and changes nothing after it (the
    /// deadline rule still decides), so cancelling never loses a coin.
    pub cancel: Option<watch::Receiver<bool>>,
}

/// How a receive ended.
#[derive(Clone, Debug, Serialize)]
pub struct ReceiveReport {
    /// The relay room.
    pub room: String,
    /// Whether a journaled transfer was resumed.
    pub resumed: bool,
    /// The outcome.
    pub outcome: ReceiverOutcome,
}

enum Job {
    Action(ReceiverAction),
    Finish,
}

type Work<'b, K> = Pin<Box<dyn Future<Output = &'b mut K> + Send + 'b>>;

struct Ctx<'a, L> {
    wallet: &'a Wallet,
    net: &'a L,
    bank: &'a CoinStore,
    hidden: CoinStore,
    /// `<wallet>/live/<room>/receiver/powns/`: each pown's proof, by the old coin.
    powns: PathBuf,
    room: String,
    key: SessionKey,
}

/// Receives the coins of the live transfer `request.connection_file` describes (DESIGN
/// §7): joins the room, follows the sender, opens the sealed coins, powns each to a fresh
/// key of this wallet before the deadline and sends the pown proofs as the receipt.
/// The new coins end in the Bank. A transfer this wallet journaled for that room is
/// resumed. Returns once the transfer is over for the receiver.
pub async fn receive<L: LiveLedger, K: FreshKeys + Send>(
    wallet: &Wallet,
    net: &L,
    bank: &CoinStore,
    keys: &mut K,
    request: &ReceiveRequest,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<ReceiveReport, LiveError> {
    let connection = read_connection_file(&request.connection_file)?;
    if connection.network != *net.network() {
        return Err(LiveError::WrongNetwork {
            file: connection.network,
            client: *net.network(),
        });
    }
    let journal = journal_path(wallet.dir(), &connection.room, "receiver");
    let now = now_ms();
    let (text, machine, actions, resumed) = match read_journal::<ReceiverState>(&journal)? {
        Some((text, state)) => {
            parse_connection(&journal, &text)?;
            let (machine, actions) = Receiver::resume(state, now);
            tracing::info!(room = %connection.room, "resuming a journaled live receive");
            (text, machine, actions, true)
        }
        None => {
            let config = ReceiverConfig {
                expected_amount: request.expected_amount,
                timing: request.timing,
            };
            let (machine, actions) = Receiver::new(config, now)?;
            let text = connection.to_text();
            write_journal(&journal, &text, machine.state())?;
            (text, machine, actions, false)
        }
    };
    let ctx = Ctx {
        wallet,
        net,
        bank,
        hidden: hidden_store(
            wallet.dir(),
            &connection.room,
            "receiver",
            connection.network,
        )?,
        powns: live_dir(wallet.dir())
            .join(&connection.room)
            .join("receiver")
            .join("powns"),
        room: connection.room.clone(),
        key: connection.session_key.clone(),
    };
    let mut room = Room::new(&connection.relay, &connection.room, &connection.token);
    let mut first = Vec::new();
    match room.join().await {
        Ok(true) => first.push(ReceiverEvent::PeerJoined),
        Ok(false) => {}
        Err(source) if !resumed => {
            return Err(LiveError::Relay {
                relay: connection.relay.clone(),
                source,
            });
        }
        Err(error) => tracing::warn!(%error, "joining the relay failed; retrying"),
    }
    let outcome = Driver {
        machine,
        ctx: &ctx,
        room,
        journal,
        connection: text,
        queue: VecDeque::new(),
        outcome: None,
        cancel: request.cancel.clone(),
    }
    .run(keys, actions, first, progress)
    .await?;
    Ok(ReceiveReport {
        room: connection.room,
        resumed,
        outcome,
    })
}

struct Driver<'c, 'a, L> {
    machine: Receiver,
    ctx: &'c Ctx<'a, L>,
    room: Room,
    journal: PathBuf,
    connection: String,
    queue: VecDeque<Job>,
    cancel: Option<watch::Receiver<bool>>,
    outcome: Option<ReceiverOutcome>,
}

impl<'c, 'a: 'c, L: LiveLedger> Driver<'c, 'a, L> {
    async fn run<K: FreshKeys + Send>(
        mut self,
        keys: &'c mut K,
        actions: Vec<ReceiverAction>,
        first: Vec<ReceiverEvent>,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<ReceiverOutcome, LiveError> {
        let (tx, mut rx) = unbounded_channel::<ReceiverEvent>();
        let mut keys_slot: Option<&'c mut K> = Some(keys);
        let mut work: Option<Work<'c, K>> = None;
        let mut finished_work = false;
        let mut cancel = self.cancel.take();
        let mut cancelled = false;
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.dispatch(actions, progress).await;
        for event in first {
            self.handle(event, progress).await?;
        }
        loop {
            if work.is_none()
                && let Some(job) = self.queue.pop_front()
                && let Some(keys) = keys_slot.take()
            {
                finished_work = matches!(job, Job::Finish);
                let ctx = self.ctx;
                let tx = tx.clone();
                work = Some(Box::pin(async move {
                    ctx.perform(&mut *keys, job, &tx).await;
                    keys
                }));
            }
            if work.is_none()
                && self.queue.is_empty()
                && finished_work
                && let Some(outcome) = &self.outcome
            {
                return Ok(outcome.clone());
            }
            let event = tokio::select! {
                Some(event) = rx.recv() => Some(event),
                keys = async {
                    match work.as_mut() {
                        Some(w) => w.await,
                        None => std::future::pending().await,
                    }
                } => {
                    keys_slot = Some(keys);
                    work = None;
                    None
                }
                event = self.room.next() => match event {
                    RoomEvent::PeerJoined => Some(ReceiverEvent::PeerJoined),
                    RoomEvent::PeerLeft => Some(ReceiverEvent::PeerLeft),
                    RoomEvent::Line(message) => Some(ReceiverEvent::Line(message)),
                    RoomEvent::BadLine(why) => Some(ReceiverEvent::BadLine(why)),
                    RoomEvent::Quiet => None,
                },
                _ = ticker.tick() => Some(ReceiverEvent::Tick),
                _ = wait_for_cancel(&mut cancel), if !cancelled => {
                    cancelled = true;
                    Some(ReceiverEvent::Cancel)
                }
            };
            if let Some(event) = event {
                self.handle(event, progress).await?;
            }
        }
    }

    async fn handle(
        &mut self,
        event: ReceiverEvent,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<(), LiveError> {
        let actions = self.machine.handle(event, now_ms());
        write_journal(&self.journal, &self.connection, self.machine.state())?;
        self.dispatch(actions, progress).await;
        Ok(())
    }

    async fn dispatch(
        &mut self,
        actions: Vec<ReceiverAction>,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) {
        for action in actions {
            match action {
                ReceiverAction::Send(message) => self.room.send(&message.to_line()).await,
                ReceiverAction::Step(number) => progress(Progress::Step(number)),
                ReceiverAction::Failed(reason) => {
                    tracing::warn!(%reason, "live receive failed");
                    progress(Progress::Failed(reason));
                }
                ReceiverAction::Finished(outcome) => {
                    self.outcome = Some(outcome);
                    self.queue.push_back(Job::Finish);
                }
                other => self.queue.push_back(Job::Action(other)),
            }
        }
    }
}

impl<L: LiveLedger> Ctx<'_, L> {
    async fn perform<K: FreshKeys>(
        &self,
        keys: &mut K,
        job: Job,
        tx: &UnboundedSender<ReceiverEvent>,
    ) {
        // A send fails only when the loop has returned, and then nobody listens.
        let report = |event: ReceiverEvent| {
            let _ = tx.send(event);
        };
        match job {
            Job::Action(ReceiverAction::OpenCoins {
                coins_b64,
                pown_deadline_ms,
            }) => match self.open(&coins_b64, pown_deadline_ms) {
                Ok(coins) => report(ReceiverEvent::CoinsOpened { coins }),
                Err(why) => report(ReceiverEvent::OpenFailed(why)),
            },
            Job::Action(ReceiverAction::PownCoins {
                coins,
                sign_before_ms,
                ..
            }) => match self.pown_all(keys, &coins, sign_before_ms).await {
                Ok((proofs, powned)) if !proofs.is_empty() => report(ReceiverEvent::CoinsPowned {
                    receipt_b64: L::encode_receipt(&proofs),
                    powned,
                }),
                Ok(_) => report(ReceiverEvent::PownFailed(
                    "no coin could be powned before the deadline".into(),
                )),
                Err(error) => {
                    tracing::warn!(%error, "powning the coins failed");
                    report(ReceiverEvent::PownFailed(error.to_string()))
                }
            },
            Job::Action(_) => {}
            Job::Finish => {
                if let Err(error) = sweep_to_bank(&self.hidden, self.bank) {
                    tracing::error!(%error, "moving the received coins to the Bank failed; run the receive again to retry");
                }
            }
        }
    }

    /// Opens message 24's coins (bound to the room, message 24 and the deadline) into the
    /// hidden wallet's Import. A coin already there (or further along) is left as it is.
    fn open(&self, coins_b64: &str, pown_deadline_ms: u64) -> Result<Vec<CoinSummary>, String> {
        let sealed = STANDARD
            .decode(coins_b64)
            .map_err(|e| format!("not base64: {e}"))?;
        let coins = open_coins(
            &self.key,
            &self.room,
            u32::from(MessageNumber::EncryptedCoins.number()),
            pown_deadline_ms,
            &sealed,
        )
        .map_err(|e| e.to_string())?;
        let mut opened = Vec::with_capacity(coins.len());
        for coin in &coins {
            if coin.network != *self.hidden.network() {
                return Err(format!(
                    "a coin of network {} in a transfer on {}",
                    coin.network,
                    self.hidden.network()
                ));
            }
        }
        for coin in &coins {
            let listed = match self
                .hidden
                .locate(&coin.account())
                .map_err(|e| e.to_string())?
            {
                Some(listed) => listed,
                None => {
                    self.hidden
                        .put(CoinFolder::Import, coin)
                        .map_err(|e| e.to_string())?;
                    self.hidden
                        .locate(&coin.account())
                        .map_err(|e| e.to_string())?
                        .ok_or_else(|| "a coin just written is missing".to_owned())?
                }
            };
            opened.push(summary(&listed));
        }
        Ok(opened)
    }

    /// Powns each coin to a fresh key (asking the validators first, inside `pown_many`);
    /// signs no new pown at or after `sign_before_ms` (the deadline less the skew),
    /// completes journaled ones; moves the fresh coins to the Bank. Returns the proofs and
    /// the coins they pown.
    async fn pown_all<K: FreshKeys>(
        &self,
        keys: &mut K,
        coins: &[CoinSummary],
        sign_before_ms: u64,
    ) -> Result<(Vec<L::Proof>, Vec<CoinSummary>), CoinOpError> {
        let _held = self.wallet.lock_coins(self.net.network()).await?;
        let mut certificates = Vec::new();
        let mut powned = Vec::new();
        let mut to_pown = Vec::new();
        let mut summaries = Vec::new();
        for coin in coins {
            let Some(listed) = self.hidden.locate(&coin.account)? else {
                tracing::warn!(coin = %coin.account, "an opened coin is missing");
                continue;
            };
            match listed.folder {
                CoinFolder::Spent => {
                    if let Some(certificate) = self.recorded_pown(&coin.account)? {
                        certificates.push(certificate);
                        powned.push(*coin);
                    }
                }
                CoinFolder::Import | CoinFolder::Limbo => {
                    let journaled = self.wallet.pending(&coin.account)?.is_some();
                    if !journaled && now_ms() >= sign_before_ms {
                        tracing::warn!(coin = %coin.account, "too close to the pown deadline; not powning");
                        continue;
                    }
                    to_pown.push(listed);
                    summaries.push(*coin);
                }
                _ => {}
            }
        }
        // Every coin at once: one pipelined exchange per validator.
        let results = coins::pown_many(self.wallet, self.net, &self.hidden, keys, &to_pown).await?;
        for (coin, result) in summaries.iter().zip(results) {
            match result {
                Ok((_, certificate)) => {
                    self.record_pown(&coin.account, &certificate)?;
                    certificates.push(certificate);
                    powned.push(*coin);
                }
                Err(error) => tracing::warn!(coin = %coin.account, %error, "pown failed"),
            }
        }
        sweep_to_bank(&self.hidden, self.bank)?;
        Ok((certificates, powned))
    }

    fn pown_path(&self, account: &AccountId) -> PathBuf {
        self.powns.join(format!("{account}.json"))
    }

    /// Keeps a pown's certificate by the old coin, before the new coin leaves the hidden
    /// wallet, so a resumed transfer can still send it as the receipt.
    fn record_pown(&self, account: &AccountId, certificate: &L::Proof) -> Result<(), CoinOpError> {
        std::fs::create_dir_all(&self.powns).map_err(|source| CoinOpError::Io {
            path: self.powns.clone(),
            source,
        })?;
        let json = serde_json::to_vec(certificate).map_err(|e| CoinOpError::Corrupt {
            path: self.pown_path(account),
            message: e.to_string(),
        })?;
        write_atomic(&self.pown_path(account), &json)?;
        Ok(())
    }

    /// The proof of a pown done before a crash: recorded, or (crashed before the record)
    /// the one the wallet kept with the new coin.
    fn recorded_pown(&self, account: &AccountId) -> Result<Option<L::Proof>, CoinOpError> {
        let path = self.pown_path(account);
        if let Some(proof) = read_certificate(&path)? {
            return Ok(Some(proof));
        }
        let kept = L::kept_pown(self.wallet, &self.hidden, account)?;
        if let Some(proof) = &kept {
            self.record_pown(account, proof)?;
        }
        Ok(kept)
    }
}

fn read_certificate<P: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<P>, CoinOpError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| CoinOpError::Corrupt {
                path: path.to_path_buf(),
                message: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CoinOpError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Resolves once `cancel` turns `true`; never without one (or once its sender is gone).
async fn wait_for_cancel(cancel: &mut Option<watch::Receiver<bool>>) {
    if let Some(cancel) = cancel
        && cancel.wait_for(|c| *c).await.is_ok()
    {
        return;
    }
    std::future::pending().await
}
