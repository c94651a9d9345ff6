//! A deterministic test harness: both machines, a relay (in-order delivery, `#` replaced by
//! the sender's address, lines to an absent member dropped), a clock, crashes and restarts
//! from the journal, and an in-memory coin world (who holds which coin; a pown moves a coin
//! to the receiver).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use tally_core::{AccountId, Amount};
use tally_live::*;
use tally_proto::live::parse_line;

/// Who holds a coin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder {
    /// The sender's Bank.
    SenderBank,
    /// The sender's hidden Sender wallet (prepared for this transfer).
    SenderHidden,
    /// The receiver (powned).
    Receiver,
}

/// The coins: denomination and holder of each.
#[derive(Clone, Debug)]
pub struct World {
    pub coins: BTreeMap<AccountId, (u64, Holder)>,
    /// The pown deadline of the sealed coins (from `SealCoins`), checked by reclaim.
    pub deadline: Option<u64>,
}

pub fn coin_id(n: u8) -> AccountId {
    AccountId::from([n; 32])
}

impl World {
    /// The sender's Bank holds these denominations.
    pub fn new(denominations: &[u64]) -> World {
        let coins = denominations
            .iter()
            .enumerate()
            .map(|(i, d)| (coin_id(i as u8 + 1), (*d, Holder::SenderBank)))
            .collect();
        World {
            coins,
            deadline: None,
        }
    }

    pub fn held(&self, holder: Holder) -> u64 {
        self.coins
            .values()
            .filter(|(_, h)| *h == holder)
            .map(|(d, _)| d)
            .sum()
    }

    pub fn total(&self) -> u64 {
        self.coins.values().map(|(d, _)| d).sum()
    }

    fn summary(&self, account: &AccountId) -> CoinSummary {
        CoinSummary {
            account: *account,
            denomination_cash: self.coins[account].0,
        }
    }

    fn in_hidden(&self) -> Vec<CoinSummary> {
        self.coins
            .iter()
            .filter(|(_, (_, h))| *h == Holder::SenderHidden)
            .map(|(a, _)| self.summary(a))
            .collect()
    }

    /// Largest first from the Bank; idempotent: coins already in the hidden wallet count.
    fn prepare(&mut self, amount: Amount) -> Result<Vec<CoinSummary>, String> {
        let want = amount.microcash() / 1_000_000;
        let mut have: u64 = self.in_hidden().iter().map(|c| c.denomination_cash).sum();
        let mut bank: Vec<(AccountId, u64)> = self
            .coins
            .iter()
            .filter(|(_, (_, h))| *h == Holder::SenderBank)
            .map(|(a, (d, _))| (*a, *d))
            .collect();
        bank.sort_by_key(|(_, d)| Reverse(*d));
        for (account, d) in bank {
            if have + d <= want {
                have += d;
                self.coins.get_mut(&account).unwrap().1 = Holder::SenderHidden;
            }
        }
        if have == want {
            Ok(self.in_hidden())
        } else {
            Err(format!("cannot make {want} from the bank"))
        }
    }
}

/// The test "seal": hex (a valid base64 shape) of the deadline and the accounts; opening
/// checks the deadline, as a real seal's associated data would.
pub fn seal(coins: &[CoinSummary], deadline: u64) -> String {
    let mut bytes = deadline.to_le_bytes().to_vec();
    for c in coins {
        bytes.extend_from_slice(c.account.as_bytes());
    }
    hex::encode(bytes)
}

fn open(world: &World, b64: &str, deadline: u64) -> Result<Vec<CoinSummary>, String> {
    let bytes = hex::decode(b64).map_err(|e| e.to_string())?;
    if bytes.len() < 8 || (bytes.len() - 8) % 32 != 0 {
        return Err("bad length".into());
    }
    if bytes[..8] != deadline.to_le_bytes() {
        return Err("the deadline was altered".into());
    }
    bytes[8..]
        .chunks(32)
        .map(|c| {
            let account = AccountId::from(<[u8; 32]>::try_from(c).unwrap());
            world
                .coins
                .contains_key(&account)
                .then(|| world.summary(&account))
                .ok_or_else(|| "unknown coin".to_owned())
        })
        .collect()
}

fn receipt_of(coins: &[CoinSummary]) -> String {
    let mut bytes = Vec::new();
    for c in coins {
        bytes.extend_from_slice(c.account.as_bytes());
    }
    hex::encode(bytes)
}

/// Faults the wallets inject.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// The receiver's wallet cannot open the coins.
    pub open_fails: bool,
    /// The receiver's wallet opens one coin fewer than sealed.
    pub open_drops_a_coin: bool,
    /// The sender's receipt check refuses every receipt.
    pub receipt_rejected: bool,
    /// The receiver never starts (a silent peer).
    pub receiver_absent: bool,
    /// The receiver disappears for good after this many handle calls.
    pub receiver_vanishes_after: Option<usize>,
}

/// When a side crashes relative to its handle call number `k`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CrashMode {
    /// After journaling, before performing the actions (they are lost).
    BeforeActions,
    /// After performing the actions (their completions are lost).
    AfterActions,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SideId {
    Sender,
    Receiver,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Item {
    Sender(SenderEvent),
    Receiver(ReceiverEvent),
    Line(SideId, String),
    Tick(SideId),
    Restart(SideId),
}

struct Side<M, S> {
    machine: Option<M>,
    journal: Option<S>,
    calls: usize,
    crashes: BTreeMap<usize, (CrashMode, u64)>,
    restarts: usize,
    crashed: usize,
}

/// The simulation.
pub struct Sim {
    pub now: u64,
    pub world: World,
    pub faults: Faults,
    pub timing: Timing,
    pub amount: Amount,
    queue: BTreeMap<(u64, u64), Item>,
    seq: u64,
    sender: Side<Sender, String>,
    receiver: Side<Receiver, String>,
    pub sender_outcome: Option<SenderOutcome>,
    pub receiver_outcome: Option<ReceiverOutcome>,
    pub sender_steps: BTreeSet<u8>,
    pub receiver_steps: BTreeSet<u8>,
    /// Calls made by each side (to plan crashes).
    pub sender_calls: usize,
    pub receiver_calls: usize,
}

pub const LATENCY: u64 = 20;
pub const WORK: u64 = 300;

pub fn test_timing() -> Timing {
    Timing {
        heartbeat_ms: 1_000,
        peer_timeout_ms: 10_000,
        join_timeout_ms: 60_000,
        pown_window_ms: 300_000,
        min_pown_window_ms: 60_000,
        skew_ms: 2_000,
    }
}

impl Sim {
    /// A transfer of `amount` cash out of a Bank of `bank`.
    pub fn new(bank: &[u64], amount: u64, faults: Faults) -> Sim {
        Sim {
            now: 1_000_000,
            world: World::new(bank),
            faults,
            timing: test_timing(),
            amount: Amount::from_cash(amount).unwrap(),
            queue: BTreeMap::new(),
            seq: 0,
            sender: Side {
                machine: None,
                journal: None,
                calls: 0,
                crashes: BTreeMap::new(),
                restarts: 0,
                crashed: 0,
            },
            receiver: Side {
                machine: None,
                journal: None,
                calls: 0,
                crashes: BTreeMap::new(),
                restarts: 0,
                crashed: 0,
            },
            sender_outcome: None,
            receiver_outcome: None,
            sender_steps: BTreeSet::new(),
            receiver_steps: BTreeSet::new(),
            sender_calls: 0,
            receiver_calls: 0,
        }
    }

    /// Crash `side` right after its `call`-th handle call (1-based), down for `downtime`.
    pub fn crash(&mut self, side: SideId, call: usize, mode: CrashMode, downtime: u64) {
        match side {
            SideId::Sender => self.sender.crashes.insert(call, (mode, downtime)),
            SideId::Receiver => self.receiver.crashes.insert(call, (mode, downtime)),
        };
    }

    fn at(&mut self, delay: u64, item: Item) {
        self.seq += 1;
        self.queue.insert((self.now + delay, self.seq), item);
    }

    fn up(&self, side: SideId) -> bool {
        match side {
            SideId::Sender => self.sender.machine.is_some(),
            SideId::Receiver => self.receiver.machine.is_some(),
        }
    }

    /// Runs until both sides finished (or `limit` ms of simulated time passed).
    pub fn run(&mut self) {
        let (sender, acts) = Sender::new(
            SenderConfig {
                amount: self.amount,
                timing: self.timing,
            },
            self.now,
        )
        .unwrap();
        self.sender.journal = Some(serde_json::to_string(sender.state()).unwrap());
        self.sender.machine = Some(sender);
        self.perform_sender(acts);
        self.at(1_000, Item::Tick(SideId::Sender));
        if !self.faults.receiver_absent {
            self.at(500, Item::Restart(SideId::Receiver));
        }
        let limit = self.now + 3_600_000;
        while let Some(((time, _), item)) = self.queue.pop_first() {
            assert!(time <= limit, "the transfer did not settle within an hour");
            self.now = time;
            match item {
                Item::Sender(event) => self.feed_sender(event),
                Item::Receiver(event) => self.feed_receiver(event),
                Item::Line(to, line) => self.deliver(to, line),
                Item::Tick(side) => {
                    match side {
                        SideId::Sender => self.feed_sender(SenderEvent::Tick),
                        SideId::Receiver => self.feed_receiver(ReceiverEvent::Tick),
                    }
                    if !self.settled() {
                        self.at(1_000, Item::Tick(side));
                    }
                }
                Item::Restart(side) => self.restart(side),
            }
            if self.settled() {
                break;
            }
        }
        self.sender_calls = self.sender.calls;
        self.receiver_calls = self.receiver.calls;
    }

    fn settled(&self) -> bool {
        self.sender_outcome.is_some()
            && (self.receiver_outcome.is_some() || self.faults.receiver_absent || self.gone())
    }

    fn gone(&self) -> bool {
        self.faults
            .receiver_vanishes_after
            .is_some_and(|n| self.receiver.calls >= n)
    }

    fn restart(&mut self, side: SideId) {
        match side {
            SideId::Sender => {
                let state = serde_json::from_str(self.sender.journal.as_ref().unwrap()).unwrap();
                let (machine, acts) = Sender::resume(state, self.now);
                self.sender.machine = Some(machine);
                self.sender.restarts += 1;
                self.perform_sender(acts);
            }
            SideId::Receiver => {
                let acts = match &self.receiver.journal {
                    None => {
                        let config = ReceiverConfig {
                            expected_amount: None,
                            timing: self.timing,
                        };
                        let (machine, acts) = Receiver::new(config, self.now).unwrap();
                        self.receiver.journal =
                            Some(serde_json::to_string(machine.state()).unwrap());
                        self.receiver.machine = Some(machine);
                        self.at(1_000, Item::Tick(SideId::Receiver));
                        acts
                    }
                    Some(journal) => {
                        let state = serde_json::from_str(journal).unwrap();
                        let (machine, acts) = Receiver::resume(state, self.now);
                        self.receiver.machine = Some(machine);
                        self.receiver.restarts += 1;
                        acts
                    }
                };
                self.perform_receiver(acts);
            }
        }
        // The relay: `@here` to the newcomer, `@arrived` to the other.
        let other = match side {
            SideId::Sender => SideId::Receiver,
            SideId::Receiver => SideId::Sender,
        };
        if self.up(other) {
            self.join_notice(side);
            self.join_notice(other);
        }
    }

    fn join_notice(&mut self, side: SideId) {
        match side {
            SideId::Sender => self.at(LATENCY, Item::Sender(SenderEvent::PeerJoined)),
            SideId::Receiver => self.at(LATENCY, Item::Receiver(ReceiverEvent::PeerJoined)),
        }
    }

    fn deliver(&mut self, to: SideId, line: String) {
        match to {
            SideId::Sender => match parse_line(&line) {
                Ok(m) => self.feed_sender(SenderEvent::Line(m)),
                Err(e) => self.feed_sender(SenderEvent::BadLine(e.to_string())),
            },
            SideId::Receiver => match parse_line(&line) {
                Ok(m) => self.feed_receiver(ReceiverEvent::Line(m)),
                Err(e) => self.feed_receiver(ReceiverEvent::BadLine(e.to_string())),
            },
        }
    }

    /// Puts a line from `from` on the wire, as the relay forwards it.
    pub fn wire(&mut self, from: SideId, line: &str) {
        let (to, ip) = match from {
            SideId::Sender => (SideId::Receiver, "10.0.0.1"),
            SideId::Receiver => (SideId::Sender, "10.0.0.2"),
        };
        if self.up(from) && self.up(to) {
            self.at(LATENCY, Item::Line(to, line.replace('#', ip)));
        }
    }

    fn feed_sender(&mut self, event: SenderEvent) {
        let Some(machine) = self.sender.machine.as_mut() else {
            return;
        };
        let acts = machine.handle(event, self.now);
        self.sender.journal = Some(serde_json::to_string(machine.state()).unwrap());
        self.sender.calls += 1;
        let crash = self.sender.crashes.get(&self.sender.calls).copied();
        if let Some((CrashMode::BeforeActions, downtime)) = crash {
            return self.go_down(SideId::Sender, downtime);
        }
        self.perform_sender(acts);
        if let Some((CrashMode::AfterActions, downtime)) = crash {
            self.go_down(SideId::Sender, downtime);
        }
    }

    fn feed_receiver(&mut self, event: ReceiverEvent) {
        let Some(machine) = self.receiver.machine.as_mut() else {
            return;
        };
        let acts = machine.handle(event, self.now);
        self.receiver.journal = Some(serde_json::to_string(machine.state()).unwrap());
        self.receiver.calls += 1;
        if self.gone() {
            self.receiver.machine = None;
            return self.at(LATENCY, Item::Sender(SenderEvent::PeerLeft));
        }
        let crash = self.receiver.crashes.get(&self.receiver.calls).copied();
        if let Some((CrashMode::BeforeActions, downtime)) = crash {
            return self.go_down(SideId::Receiver, downtime);
        }
        self.perform_receiver(acts);
        if let Some((CrashMode::AfterActions, downtime)) = crash {
            self.go_down(SideId::Receiver, downtime);
        }
    }

    fn go_down(&mut self, side: SideId, downtime: u64) {
        match side {
            SideId::Sender => {
                self.sender.crashed += 1;
                self.sender.machine = None;
                self.at(LATENCY, Item::Receiver(ReceiverEvent::PeerLeft));
            }
            SideId::Receiver => {
                self.receiver.crashed += 1;
                self.receiver.machine = None;
                self.at(LATENCY, Item::Sender(SenderEvent::PeerLeft));
            }
        }
        self.at(downtime, Item::Restart(side));
    }

    fn perform_sender(&mut self, acts: Vec<SenderAction>) {
        for act in acts {
            match act {
                SenderAction::Send(m) => self.wire(SideId::Sender, &m.to_line()),
                SenderAction::Step(n) => {
                    self.sender_steps.insert(n.number());
                }
                SenderAction::PrepareCoins { amount } => {
                    for n in 5..=10u64 {
                        let step = tally_proto::live::MessageNumber::from_number(n).unwrap();
                        self.at(WORK, Item::Sender(SenderEvent::PreparationStep(step)));
                    }
                    let done = match self.world.prepare(amount) {
                        Ok(coins) => SenderEvent::CoinsPrepared { coins },
                        Err(why) => SenderEvent::PreparationFailed(why),
                    };
                    self.at(WORK, Item::Sender(done));
                }
                SenderAction::SealCoins {
                    coins,
                    pown_deadline_ms,
                } => {
                    self.world.deadline = Some(pown_deadline_ms);
                    let coins_b64 = seal(&coins, pown_deadline_ms);
                    self.at(WORK, Item::Sender(SenderEvent::CoinsSealed { coins_b64 }));
                }
                SenderAction::CheckReceipt { receipt_b64, .. } => {
                    let result = if self.faults.receipt_rejected {
                        Err("a certificate's votes do not verify".to_owned())
                    } else {
                        check_receipt(&self.world, &receipt_b64)
                    };
                    self.at(WORK, Item::Sender(SenderEvent::ReceiptChecked(result)));
                }
                SenderAction::Reclaim { coins } => {
                    let deadline = self.world.deadline.expect("reclaim before any seal");
                    assert!(
                        self.now >= deadline + self.timing.skew_ms,
                        "reclaim before the deadline plus the skew"
                    );
                    let (mut reclaimed, mut powned_by_receiver) = (Vec::new(), Vec::new());
                    for c in coins {
                        let holder = &mut self.world.coins.get_mut(&c.account).unwrap().1;
                        match holder {
                            Holder::Receiver => powned_by_receiver.push(c),
                            _ => {
                                *holder = Holder::SenderBank;
                                reclaimed.push(c);
                            }
                        }
                    }
                    let done = SenderEvent::Reclaimed {
                        reclaimed,
                        powned_by_receiver,
                        frozen: vec![],
                    };
                    self.at(WORK, Item::Sender(done));
                }
                SenderAction::Failed(_) => {}
                SenderAction::Finished(outcome) => {
                    if let SenderOutcome::Kept { .. } = outcome {
                        for (_, h) in self.world.coins.values_mut() {
                            if *h == Holder::SenderHidden {
                                *h = Holder::SenderBank;
                            }
                        }
                    }
                    self.sender_outcome = Some(outcome);
                }
            }
        }
    }

    fn perform_receiver(&mut self, acts: Vec<ReceiverAction>) {
        for act in acts {
            match act {
                ReceiverAction::Send(m) => self.wire(SideId::Receiver, &m.to_line()),
                ReceiverAction::Step(n) => {
                    self.receiver_steps.insert(n.number());
                }
                ReceiverAction::OpenCoins {
                    coins_b64,
                    pown_deadline_ms,
                } => {
                    let done = match open(&self.world, &coins_b64, pown_deadline_ms) {
                        _ if self.faults.open_fails => {
                            ReceiverEvent::OpenFailed("authentication tag mismatch".into())
                        }
                        Ok(mut coins) => {
                            if self.faults.open_drops_a_coin {
                                coins.pop();
                            }
                            ReceiverEvent::CoinsOpened { coins }
                        }
                        Err(why) => ReceiverEvent::OpenFailed(why),
                    };
                    self.at(WORK, Item::Receiver(done));
                }
                ReceiverAction::PownCoins {
                    coins,
                    sign_before_ms,
                    ..
                } => {
                    let mut powned = Vec::new();
                    for c in coins {
                        let holder = &mut self.world.coins.get_mut(&c.account).unwrap().1;
                        match holder {
                            Holder::Receiver => powned.push(c),
                            Holder::SenderHidden if self.now < sign_before_ms => {
                                *holder = Holder::Receiver;
                                powned.push(c);
                            }
                            _ => {}
                        }
                    }
                    let done = if powned.is_empty() {
                        ReceiverEvent::PownFailed("every coin was spent by someone else".into())
                    } else {
                        ReceiverEvent::CoinsPowned {
                            receipt_b64: receipt_of(&powned),
                            powned,
                        }
                    };
                    self.at(WORK, Item::Receiver(done));
                }
                ReceiverAction::Failed(_) => {}
                ReceiverAction::Finished(outcome) => self.receiver_outcome = Some(outcome),
            }
        }
    }

    /// Coins are conserved and every outcome agrees with the world.
    pub fn assert_consistent(&self, initial_total: u64) {
        assert_eq!(
            self.world.total(),
            initial_total,
            "coins appeared or vanished"
        );
        assert_eq!(
            self.world.held(Holder::SenderHidden),
            0,
            "coins left in limbo"
        );
        let at_receiver = Amount::from_cash(self.world.held(Holder::Receiver)).unwrap();
        match self.sender_outcome.as_ref().expect("the sender finished") {
            SenderOutcome::Delivered { .. } => assert_eq!(at_receiver, self.amount),
            SenderOutcome::Kept { .. } => assert_eq!(at_receiver, Amount::ZERO),
            SenderOutcome::Reclaimed {
                reclaimed,
                powned_by_receiver,
                ..
            } => {
                assert_eq!(*powned_by_receiver, at_receiver);
                assert_eq!(
                    reclaimed.checked_add(*powned_by_receiver),
                    Some(self.amount)
                );
            }
        }
        match &self.receiver_outcome {
            Some(ReceiverOutcome::Received { received, .. }) => {
                assert_eq!(*received, at_receiver)
            }
            Some(ReceiverOutcome::Aborted { .. }) => assert_eq!(at_receiver, Amount::ZERO),
            // A vanished receiver may have powned before it vanished.
            None => assert!(self.faults.receiver_absent || self.gone()),
        }
    }

    /// How often `side` crashed, and how often it was restarted from its journal.
    pub fn crashes(&self, side: SideId) -> (usize, usize) {
        match side {
            SideId::Sender => (self.sender.crashed, self.sender.restarts),
            SideId::Receiver => (self.receiver.crashed, self.receiver.restarts),
        }
    }

    /// Whether the transfer completed: delivered, and received in full.
    pub fn completed(&self) -> bool {
        matches!(self.sender_outcome, Some(SenderOutcome::Delivered { .. }))
            && matches!(&self.receiver_outcome, Some(ReceiverOutcome::Received { received, .. }) if *received == self.amount)
    }
}

fn check_receipt(world: &World, receipt: &str) -> Result<Vec<CoinSummary>, String> {
    let bytes = hex::decode(receipt).map_err(|e| e.to_string())?;
    bytes
        .chunks(32)
        .map(|c| {
            let account = AccountId::from(<[u8; 32]>::try_from(c).map_err(|_| "short")?);
            match world.coins.get(&account) {
                Some((_, Holder::Receiver)) => Ok(world.summary(&account)),
                _ => Err("a certificate is for a coin the receiver does not hold".to_owned()),
            }
        })
        .collect()
}
