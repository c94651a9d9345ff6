//! The sender's driver: a fresh room, token and session key in a connection file, then
//! `tally_live::Sender` run against the relay, its wallet work done with the coin
//! operations on the wallet's Bank and the transfer's hidden Sender sub-wallet.

use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use rand::rngs::OsRng;
use serde::Serialize;
use tally_core::amount::MICROCASH_PER_CASH;
use tally_core::seal::seal_coins;
use tally_core::{Amount, Denomination, SecretKey, SessionKey};
use tally_live::{
    CoinSummary, Sender, SenderAction, SenderConfig, SenderEvent, SenderOutcome, SenderPhase,
    SenderState, Timing,
};
use tally_proto::live::{ConnectionFile, MessageNumber};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio::sync::watch;

use super::ledger::LiveLedger;
use super::room::{Room, RoomEvent};
use super::{
    LiveError, Progress, TICK, hidden_store, journal_path, now_ms, parse_connection, read_journal,
    summary, sweep_to_bank, write_journal,
};
use crate::Wallet;
use crate::coins::{
    self, CoinFolder, CoinOpError, CoinStore, FreshKeys, Grade, ListedCoin, cash_of, choose_exact,
    own_orders,
};
use crate::wallet::write_atomic;

/// What to send, where.
#[derive(Clone, Debug)]
pub struct SendRequest {
    /// The amount: whole, non-zero cash.
    pub amount: Amount,
    /// The relay, `host:port`.
    pub relay: String,
    /// Where the connection file goes (written 0600). If it already names a transfer this
    /// wallet journaled, that transfer is resumed instead of a new one started, so running
    /// the same command again after a crash finishes what was begun.
    pub connection_file: PathBuf,
    /// The transfer's clocks.
    pub timing: Timing,
    /// Becomes `true` when the user gives up (Ctrl-C): fed to the machine as its `Cancel`
    /// event, which keeps the coins before message 24 and changes nothing after it (the
    /// deadline rule still decides), so cancelling never loses a coin.
    pub cancel: Option<watch::Receiver<bool>>,
}

/// How a send ended.
#[derive(Clone, Debug, Serialize)]
pub struct SendReport {
    /// The relay room.
    pub room: String,
    /// The connection file.
    pub connection_file: PathBuf,
    /// The amount.
    pub amount: Amount,
    /// Whether a journaled transfer was resumed.
    pub resumed: bool,
    /// The outcome.
    pub outcome: SenderOutcome,
}

/// How often a sender waiting for the receipt asks the validators whether the receiver
/// powned the coins (a receipt it can get without the receiver: the pown certificates).
const RECEIPT_POLL: Duration = Duration::from_secs(3);

/// The longest a finished sender waits for an absent receiver to come back (see
/// `Driver::linger`).
const LINGER_MAX_MS: u64 = 10_000;

/// Where each sent coin ended after the deadline.
struct Reclaim {
    /// Powned back to this wallet.
    reclaimed: Vec<CoinSummary>,
    /// Spent by the receiver.
    theirs: Vec<CoinSummary>,
    /// Split between orders: spendable by no one.
    frozen: Vec<CoinSummary>,
}

/// Work for the wallet, one piece at a time.
enum Job {
    Action(SenderAction),
    /// Ask the validators whether these sent coins are all powned; if so, report their
    /// certificates as `ReceiverPowned`.
    Watch(Vec<CoinSummary>),
    Finish(SenderOutcome),
}

type Work<'b, K> = Pin<Box<dyn Future<Output = &'b mut K> + Send + 'b>>;

/// What the sender's wallet work needs.
struct Ctx<'a, L> {
    wallet: &'a Wallet,
    net: &'a L,
    bank: &'a CoinStore,
    hidden: CoinStore,
    from: Option<&'a SecretKey>,
    room: String,
    key: SessionKey,
}

fn random_hex(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    OsRng.fill_bytes(&mut raw);
    hex::encode(raw)
}

/// Sends `request.amount` through a live transfer (DESIGN §7): writes the connection file
/// for the receiver, joins the relay room and runs the sender to its outcome, reporting each
/// step to `progress`. Coins are prepared from the Bank, after withdrawing what it lacks
/// from `from` (if given) and making change. Returns once the transfer is over: delivered
/// (receipt checked), kept (failed before the coins left; they are back in the Bank) or
/// reclaimed (failed after; what the receiver did not pown was powned back after the
/// deadline).
pub async fn send<L: LiveLedger, K: FreshKeys + Send>(
    wallet: &Wallet,
    net: &L,
    bank: &CoinStore,
    keys: &mut K,
    from: Option<&SecretKey>,
    request: &SendRequest,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<SendReport, LiveError> {
    let journaled = match std::fs::read_to_string(&request.connection_file) {
        Ok(text) => match ConnectionFile::parse(&text) {
            Ok(file) => {
                let path = journal_path(wallet.dir(), &file.room, "sender");
                read_journal::<SenderState>(&path)?.map(|j| (path, j))
            }
            Err(_) => None,
        },
        Err(_) => None,
    };
    let now = now_ms();
    let (connection, text, machine, actions, resumed) = match journaled {
        Some((path, (text, state))) => {
            if state.config().amount != request.amount {
                return Err(LiveError::AmountMismatch {
                    path,
                    journaled: state.config().amount,
                    asked: request.amount,
                });
            }
            let connection = parse_connection(&path, &text)?;
            let (machine, actions) = Sender::resume(state, now);
            tracing::info!(room = %connection.room, "resuming a journaled live send");
            (connection, text, machine, actions, true)
        }
        None => {
            let connection = ConnectionFile {
                relay: request.relay.clone(),
                room: format!("live-{}", random_hex(8)),
                token: random_hex(16),
                network: *net.network(),
                session_key: SessionKey::generate(&mut OsRng),
            };
            connection
                .validate()
                .map_err(|source| LiveError::ConnectionFile {
                    path: request.connection_file.clone(),
                    source,
                })?;
            let config = SenderConfig {
                amount: request.amount,
                timing: request.timing,
            };
            let (machine, actions) = Sender::new(config, now)?;
            let text = connection.to_text();
            // The journal first: a connection file always names a journaled transfer.
            let path = journal_path(wallet.dir(), &connection.room, "sender");
            write_journal(&path, &text, machine.state())?;
            write_atomic(&request.connection_file, text.as_bytes())?;
            (connection, text, machine, actions, false)
        }
    };
    if connection.network != *net.network() {
        return Err(LiveError::WrongNetwork {
            file: connection.network,
            client: *net.network(),
        });
    }
    let ctx = Ctx {
        wallet,
        net,
        bank,
        hidden: hidden_store(wallet.dir(), &connection.room, "sender", connection.network)?,
        from,
        room: connection.room.clone(),
        key: connection.session_key.clone(),
    };
    let mut room = Room::new(&connection.relay, &connection.room, &connection.token);
    let mut first = Vec::new();
    match room.join().await {
        Ok(true) => first.push(SenderEvent::PeerJoined),
        Ok(false) => {}
        Err(source) if !resumed => {
            return Err(LiveError::Relay {
                relay: connection.relay.clone(),
                source,
            });
        }
        Err(error) => tracing::warn!(%error, "joining the relay failed; retrying"),
    }
    let journal = journal_path(wallet.dir(), &connection.room, "sender");
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
    Ok(SendReport {
        room: connection.room,
        connection_file: request.connection_file.clone(),
        amount: request.amount,
        resumed,
        outcome,
    })
}

/// The loop: relay events, ticks and wallet reports in; journal; actions out.
struct Driver<'c, 'a, L> {
    machine: Sender,
    ctx: &'c Ctx<'a, L>,
    room: Room,
    journal: PathBuf,
    connection: String,
    queue: VecDeque<Job>,
    cancel: Option<watch::Receiver<bool>>,
    outcome: Option<SenderOutcome>,
}

impl<'c, 'a: 'c, L: LiveLedger> Driver<'c, 'a, L> {
    async fn run<K: FreshKeys + Send>(
        mut self,
        keys: &'c mut K,
        actions: Vec<SenderAction>,
        first: Vec<SenderEvent>,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<SenderOutcome, LiveError> {
        let (tx, mut rx) = unbounded_channel::<SenderEvent>();
        let mut keys_slot: Option<&'c mut K> = Some(keys);
        let mut work: Option<Work<'c, K>> = None;
        let mut finished_work = false;
        let mut cancel = self.cancel.take();
        let mut cancelled = false;
        let mut last_watch = Instant::now();
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.dispatch(actions, progress).await;
        for event in first {
            self.handle(event, progress).await?;
        }
        loop {
            if work.is_none()
                && self.queue.is_empty()
                && last_watch.elapsed() >= RECEIPT_POLL
                && let SenderPhase::AwaitingReceipt { coins, .. }
                | SenderPhase::AwaitingDeadline { coins, .. } = self.machine.phase()
            {
                last_watch = Instant::now();
                self.queue.push_back(Job::Watch(coins.clone()));
            }
            if work.is_none()
                && let Some(job) = self.queue.pop_front()
                && let Some(keys) = keys_slot.take()
            {
                finished_work = matches!(job, Job::Finish(_));
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
                && let Some(outcome) = self.outcome.clone()
            {
                if matches!(outcome, SenderOutcome::Delivered { .. }) && !self.room.peer_present() {
                    self.linger(progress).await?;
                }
                return Ok(outcome);
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
                    RoomEvent::PeerJoined => Some(SenderEvent::PeerJoined),
                    RoomEvent::PeerLeft => Some(SenderEvent::PeerLeft),
                    RoomEvent::Line(message) => Some(SenderEvent::Line(message)),
                    RoomEvent::BadLine(why) => Some(SenderEvent::BadLine(why)),
                    RoomEvent::Quiet => None,
                },
                _ = ticker.tick() => Some(SenderEvent::Tick),
                _ = wait_for_cancel(&mut cancel), if !cancelled => {
                    cancelled = true;
                    Some(SenderEvent::Cancel)
                }
            };
            if let Some(event) = event {
                self.handle(event, progress).await?;
            }
        }
    }

    /// Delivered, but the receiver is not in the room (it reconnects, or the relay
    /// restarted): waits a little for it, so that the confirmation (18, 19) sent while it
    /// was away reaches it when its arrival makes the machine re-send everything.
    async fn linger(
        &mut self,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<(), LiveError> {
        let timing = self.machine.state().config().timing;
        let linger = Duration::from_millis(timing.peer_timeout_ms.min(LINGER_MAX_MS));
        progress(Progress::Lingering(linger));
        let until = tokio::time::Instant::now() + linger;
        loop {
            let event = tokio::select! {
                event = self.room.next() => event,
                _ = tokio::time::sleep_until(until) => return Ok(()),
            };
            if let RoomEvent::PeerJoined = event {
                return self.handle(SenderEvent::PeerJoined, progress).await;
            }
        }
    }

    async fn handle(
        &mut self,
        event: SenderEvent,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<(), LiveError> {
        let actions = self.machine.handle(event, now_ms());
        write_journal(&self.journal, &self.connection, self.machine.state())?;
        self.dispatch(actions, progress).await;
        Ok(())
    }

    async fn dispatch(
        &mut self,
        actions: Vec<SenderAction>,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) {
        for action in actions {
            match action {
                SenderAction::Send(message) => self.room.send(&message.to_line()).await,
                SenderAction::Step(number) => progress(Progress::Step(number)),
                SenderAction::Failed(reason) => {
                    tracing::warn!(%reason, "live send failed");
                    progress(Progress::Failed(reason));
                }
                SenderAction::Finished(outcome) => {
                    self.outcome = Some(outcome.clone());
                    self.queue.push_back(Job::Finish(outcome));
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
        tx: &UnboundedSender<SenderEvent>,
    ) {
        // A send fails only when the loop has returned, and then nobody listens.
        let report = |event: SenderEvent| {
            let _ = tx.send(event);
        };
        match job {
            Job::Action(SenderAction::PrepareCoins { amount }) => {
                match self.prepare(keys, amount, tx).await {
                    Ok(coins) => report(SenderEvent::CoinsPrepared { coins }),
                    Err(error) => {
                        tracing::warn!(%error, "preparing the coins failed");
                        report(SenderEvent::PreparationFailed(error.to_string()))
                    }
                }
            }
            Job::Action(SenderAction::SealCoins {
                coins,
                pown_deadline_ms,
            }) => match self.seal(&coins, pown_deadline_ms) {
                Ok(coins_b64) => report(SenderEvent::CoinsSealed { coins_b64 }),
                Err(why) => report(SenderEvent::SealFailed(why)),
            },
            Job::Action(SenderAction::CheckReceipt { receipt_b64, coins }) => {
                let result = self
                    .net
                    .check_receipt(&receipt_b64, &coins)
                    .await
                    .map_err(|e| e.to_string());
                report(SenderEvent::ReceiptChecked(result));
            }
            Job::Action(SenderAction::Reclaim { coins }) => {
                match self.reclaim(keys, &coins).await {
                    Ok(Reclaim {
                        reclaimed,
                        theirs,
                        frozen,
                    }) => report(SenderEvent::Reclaimed {
                        reclaimed,
                        powned_by_receiver: theirs,
                        frozen,
                    }),
                    Err(error) => {
                        tracing::warn!(%error, "taking the coins back failed; retrying");
                        report(SenderEvent::ReclaimFailed(error.to_string()))
                    }
                }
            }
            Job::Action(_) => {}
            Job::Watch(coins) => {
                if let Some(receipt_b64) = self.net.powned_receipt(&coins).await {
                    report(SenderEvent::ReceiverPowned { receipt_b64 });
                }
            }
            Job::Finish(outcome) => {
                if let Err(error) = self.finish(&outcome).await {
                    tracing::error!(%error, "settling the hidden Sender wallet failed; run the send again to retry");
                }
            }
        }
    }

    /// Steps 5–10: coins worth exactly `amount` into the hidden wallet's Bank, detected
    /// authentic (fracked ones fixed). Idempotent: what the hidden wallet already holds
    /// counts, and an interrupted withdraw or change is settled by `find` first.
    async fn prepare<K: FreshKeys>(
        &self,
        keys: &mut K,
        amount: Amount,
        tx: &UnboundedSender<SenderEvent>,
    ) -> Result<Vec<CoinSummary>, CoinOpError> {
        let step = |number: MessageNumber| {
            let _ = tx.send(SenderEvent::PreparationStep(number));
        };
        let cash = amount.microcash() / MICROCASH_PER_CASH;
        // No other process of this wallet picks coins from the Bank meanwhile.
        let _held = self.wallet.lock_coins(self.net.network()).await?;
        step(MessageNumber::MakingChange);
        for _round in 0..4 {
            if !self.bank.list(CoinFolder::Limbo)?.is_empty() {
                // An interrupted withdraw or change left coins in Limbo: settle them first.
                step(MessageNumber::FindingChange);
                coins::find(self.wallet, self.net, self.bank, keys).await?;
            }
            let held = cash_of(&self.hidden.spendable()?);
            let need = cash.checked_sub(held).ok_or_else(|| {
                CoinOpError::Refused(format!(
                    "the hidden Sender wallet holds {held} cash, more than the {cash} to send"
                ))
            })?;
            if need > 0 {
                let chosen = self.gather(keys, need).await?;
                step(MessageNumber::MovingCoinsToSender);
                for coin in &chosen {
                    self.bank.move_into(coin, &self.hidden, coin.folder)?;
                }
            } else {
                step(MessageNumber::MovingCoinsToSender);
            }
            step(MessageNumber::DetectingCoinAuthenticity);
            let held = self.hidden.spendable()?;
            let own = own_orders(self.wallet, &self.hidden, &held)?;
            let pairs: Vec<_> = held.iter().map(|c| (c.account, c.denomination)).collect();
            let detections = self.net.detect(&pairs, &own).await;
            let mut fracked = Vec::new();
            let mut bad = false;
            for (coin, detection) in held.iter().zip(&detections) {
                match detection.grade {
                    Grade::Authentic if coin.folder == CoinFolder::Fracked => {
                        self.hidden.move_to(coin, CoinFolder::Bank)?;
                    }
                    Grade::Authentic => {}
                    Grade::Fracked => fracked.push(*coin),
                    Grade::Counterfeit => {
                        self.hidden
                            .move_into(coin, self.bank, CoinFolder::Counterfeit)?;
                        bad = true;
                    }
                    Grade::Frozen | Grade::Limbo => {
                        self.hidden.move_into(coin, self.bank, CoinFolder::Limbo)?;
                        bad = true;
                    }
                }
            }
            if !fracked.is_empty() {
                step(MessageNumber::FixingCoins);
                coins::fix(self.wallet, self.net, &self.hidden, &fracked).await?;
            }
            if !bad {
                return Ok(self.hidden.spendable()?.iter().map(summary).collect());
            }
        }
        Err(CoinOpError::Refused(
            "could not gather authentic coins for the amount".into(),
        ))
    }

    /// Coins of the Bank worth exactly `need` cash: withdraws what the Bank lacks from the
    /// `from` account, and breaks coins until an exact set exists.
    async fn gather<K: FreshKeys>(
        &self,
        keys: &mut K,
        need: u64,
    ) -> Result<Vec<ListedCoin>, CoinOpError> {
        let want = || Amount::from_microcash(need.saturating_mul(MICROCASH_PER_CASH));
        // Each round withdraws once or makes smaller coins; 250 breaks to ones in four.
        for _round in 0..16 {
            let available = self.bank.spendable()?;
            let have = cash_of(&available);
            if have < need {
                let Some(from) = self.from else {
                    return Err(CoinOpError::NotEnoughCoins {
                        have: Amount::from_microcash(have.saturating_mul(MICROCASH_PER_CASH)),
                        need: want(),
                    });
                };
                let short =
                    Amount::from_microcash((need - have).saturating_mul(MICROCASH_PER_CASH));
                coins::withdraw(self.wallet, self.net, self.bank, keys, from, short).await?;
                continue;
            }
            if let Some(chosen) = choose_exact(&available, need) {
                return Ok(chosen);
            }
            let Some(breakable) = available
                .iter()
                .rev()
                .find(|c| c.denomination != Denomination::One)
                .copied()
            else {
                break;
            };
            coins::change(self.wallet, self.net, self.bank, keys, &breakable).await?;
        }
        Err(CoinOpError::Refused(format!(
            "could not make an exact set of {need} cash from the Bank"
        )))
    }

    /// Puts the coins in the hidden wallet's Export and seals them for message 24, bound
    /// to the deadline. Sealing again (after a resume) gives other bytes, which is fine:
    /// message 24 leaves only once its coins are journaled.
    fn seal(&self, coins: &[CoinSummary], pown_deadline_ms: u64) -> Result<String, String> {
        let mut full = Vec::with_capacity(coins.len());
        for coin in coins {
            let listed = self
                .hidden
                .locate(&coin.account)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("coin {} is not in the hidden wallet", coin.account))?;
            let listed = match listed.folder {
                CoinFolder::Bank | CoinFolder::Fracked => self
                    .hidden
                    .move_to(&listed, CoinFolder::Export)
                    .map_err(|e| e.to_string())?,
                CoinFolder::Export => listed,
                other => return Err(format!("coin {} is in {other:?}", coin.account)),
            };
            full.push(self.hidden.read(&listed).map_err(|e| e.to_string())?);
        }
        let sealed = seal_coins(
            &self.key,
            &self.room,
            u32::from(MessageNumber::EncryptedCoins.number()),
            pown_deadline_ms,
            &full,
            &mut OsRng,
        )
        .map_err(|e| e.to_string())?;
        Ok(STANDARD.encode(sealed))
    }

    /// After the deadline plus the skew: each sent coin is either spent by the receiver
    /// (into the hidden wallet's Sent) or powned back to a fresh key of ours (into the
    /// Bank). Asks the validators first; completes a pown this wallet journaled.
    async fn reclaim<K: FreshKeys>(
        &self,
        keys: &mut K,
        coins: &[CoinSummary],
    ) -> Result<Reclaim, CoinOpError> {
        let _held = self.wallet.lock_coins(self.net.network()).await?;
        let mut reclaimed = Vec::new();
        let mut theirs = Vec::new();
        let mut frozen = Vec::new();
        let mut open = Vec::new();
        for coin in coins {
            let listed = self
                .hidden
                .locate(&coin.account)?
                .ok_or_else(|| CoinOpError::UnknownCoin(coin.account.to_string()))?;
            match listed.folder {
                CoinFolder::Spent => reclaimed.push(*coin),
                CoinFolder::Sent | CoinFolder::Counterfeit => theirs.push(*coin),
                _ => open.push(listed),
            }
        }
        let own = own_orders(self.wallet, &self.hidden, &open)?;
        let pairs: Vec<_> = open.iter().map(|c| (c.account, c.denomination)).collect();
        let detections = self.net.detect(&pairs, &own).await;
        let mut undecided = Vec::new();
        for (listed, detection) in open.iter().zip(&detections) {
            let coin = summary(listed);
            let ours_in_flight = own.contains_key(&listed.account);
            match detection.grade {
                _ if ours_in_flight => {}
                Grade::Counterfeit => {
                    self.hidden.move_to(listed, CoinFolder::Sent)?;
                    theirs.push(coin);
                    continue;
                }
                Grade::Authentic | Grade::Fracked => {}
                _ if self.net.taken(detection) => {
                    self.hidden.move_to(listed, CoinFolder::Sent)?;
                    theirs.push(coin);
                    continue;
                }
                Grade::Frozen => {
                    // Split between orders so that none can complete: final, and left
                    // where it is (the hidden wallet's Export), counted by no one.
                    tracing::warn!(coin = %listed.account, "a sent coin's slot is split: it is frozen");
                    frozen.push(coin);
                    continue;
                }
                Grade::Limbo => {
                    undecided.push(listed.account.short());
                    continue;
                }
            }
            let from = match listed.folder {
                CoinFolder::Export => self.hidden.move_to(listed, CoinFolder::Import)?,
                _ => *listed,
            };
            coins::pown(self.wallet, self.net, &self.hidden, keys, &from).await?;
            reclaimed.push(coin);
        }
        sweep_to_bank(&self.hidden, self.bank)?;
        if !undecided.is_empty() {
            return Err(CoinOpError::Refused(format!(
                "the validators cannot tell yet who holds coins {}",
                undecided.join(", ")
            )));
        }
        Ok(Reclaim {
            reclaimed,
            theirs,
            frozen,
        })
    }

    /// What the outcome asks of the hidden wallet: kept coins back to the Bank (sealed
    /// ones too: message 24 never left), delivered ones into its Sent, reclaimed ones
    /// already back.
    async fn finish(&self, outcome: &SenderOutcome) -> Result<(), LiveError> {
        match outcome {
            SenderOutcome::Kept { .. } => {
                sweep_to_bank(&self.hidden, self.bank)?;
                for (from, to) in [
                    (CoinFolder::Export, CoinFolder::Bank),
                    (CoinFolder::Limbo, CoinFolder::Limbo),
                    (CoinFolder::Import, CoinFolder::Import),
                ] {
                    for coin in self.hidden.list(from)? {
                        self.hidden.move_into(&coin, self.bank, to)?;
                    }
                }
            }
            SenderOutcome::Delivered { receipt_b64 } => {
                for coin in self.hidden.list(CoinFolder::Export)? {
                    self.hidden.move_to(&coin, CoinFolder::Sent)?;
                }
                self.net.keep_receipt(self.wallet, receipt_b64).await?;
            }
            SenderOutcome::Reclaimed { .. } => {
                sweep_to_bank(&self.hidden, self.bank)?;
            }
        }
        Ok(())
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
