//! The chain world: proof-of-work miners running the real chain rules ([`tally_chain::Chain`]
//! on its in-memory store) under the same seeded scheduler, with a clock per miner (skewed),
//! a network that drops, delays, duplicates, reorders and cuts miners off, crashes and
//! failed commits, a miner that withholds its blocks and releases them in bursts (selfish
//! mining: forks and deep reorganisations), and one that tries to mint money. Wallets pay
//! through it. Checked after every step: the supply is the genesis plus one reward per
//! block on every miner's chain; no invalid block is ever on a main chain; a block a miner
//! announced survives its crash. At the end: every miner is on one chain, with the most
//! work of any valid chain found (checked against [`tree::BlockTree`], which knows every
//! block), and every payment a wallet saw confirmed is on it.

mod miner;
mod payer;
mod receive;
mod settle;
mod tree;

use std::collections::VecDeque;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tally_chain::miner::{expected_hashes, solve};
use tally_chain::{
    Block, BlockHash, BlockOutcome, ChainError, ChainParams, Transaction, U256, default_pow_params,
};
use tally_core::{
    AccountId, Allocation, Amount, Mode, NetworkContract, NetworkId, SecretKey, TxStatus,
};

use crate::check::Violation;
use crate::net::{NetFaults, Queue};
use crate::{Config, PlantedBug};
use miner::{MinerKind, SimMiner};
use payer::{Ask, SimPayer};
use tree::BlockTree;

/// What each wallet holds at genesis.
const GENESIS_PER_PAYER: u64 = 10_000_000;
const PAYERS: usize = 3;
/// Events kept for a violation's trace.
const TRACE: usize = 200;
/// Most blocks a miner sends when a peer with less work connects: everything from the fork
/// point (a node sends it in batches, each asked for after the last; one message per
/// block here, so the network may still lose or reorder some, which orphans and the next
/// connect repair).
const SYNC_BLOCKS: usize = 4_096;

/// Who sends or receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Party {
    Miner(usize),
    Payer(usize),
}

/// The proof-of-work protocol's messages, as values.
#[derive(Clone, Debug)]
enum Payload {
    /// `HASH_BROADCAST` / `RECEIVE_BLOCK`.
    Block(Box<Block>),
    /// `SEND_REQUEST` for one block (an orphan's parent).
    GetBlock(BlockHash),
    /// `CONNECT`: the sender's total work and locator; the side with less work asks.
    Connect { work: U256, locator: Vec<BlockHash> },
    /// `PUSH_TRANSACTION`, one or several in sequence order.
    Tx(Vec<Transaction>),
    /// `REQ_TX_STATUS`.
    Status(Box<Transaction>),
    /// The answer to `REQ_TX_STATUS`.
    StatusIs(Box<Transaction>, TxStatus),
    /// `REQ_ACCOUNT`.
    Account(AccountId),
    /// The answer: the account's next sequence at the miner's tip.
    AccountIs(u64),
}

#[derive(Clone, Debug)]
struct Message {
    from: Party,
    to: Party,
    payload: Payload,
}

#[derive(Clone, Debug)]
enum Event {
    Deliver(Box<Message>),
    /// A miner finds a block on its tip, if this is still its current search (its
    /// `search`; a restart starts a new one, so a miner never searches twice at once).
    Mine(usize, u64),
    /// A miner's timer: connect to a peer, and (a withholder) maybe release its blocks.
    Gossip(usize),
    Crash(usize),
    Restart(usize),
    /// A payer's timer.
    Wake(usize),
}

/// The faults one seed drew.
#[derive(Clone, Copy, Debug)]
struct Faults {
    net: NetFaults,
    block_time_ms: u64,
    max_skew_ms: i64,
    crash_per_mille: u32,
    failed_commit_per_mille: u32,
    partitions: bool,
    withholder: bool,
    inflator: bool,
}

/// What a chain run did, for the campaign's report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainOutcome {
    pub steps: u64,
    pub messages: u64,
    /// Valid blocks found.
    pub blocks: u64,
    /// Reorganisations miners went through, and the deepest.
    pub reorgs: u64,
    pub deepest_reorg: u64,
    /// Blocks a withholder kept back and released later.
    pub withheld: u64,
    /// Blocks minting money that miners refused.
    pub invalid_refused: u64,
    pub payments: u64,
    /// Confirmed payments a reorganisation dropped from every miner, sent again by their
    /// wallets.
    pub resent: u64,
    pub crashes: u64,
}

impl ChainOutcome {
    pub fn add(&mut self, other: &ChainOutcome) {
        self.steps += other.steps;
        self.messages += other.messages;
        self.blocks += other.blocks;
        self.reorgs += other.reorgs;
        self.deepest_reorg = self.deepest_reorg.max(other.deepest_reorg);
        self.withheld += other.withheld;
        self.invalid_refused += other.invalid_refused;
        self.payments += other.payments;
        self.resent += other.resent;
        self.crashes += other.crashes;
    }
}

pub struct ChainWorld {
    seed: u64,
    steps: u64,
    planted: Option<PlantedBug>,
    rng: StdRng,
    params: ChainParams,
    network: NetworkId,
    miners: Vec<SimMiner>,
    payers: Vec<SimPayer>,
    queue: Queue<Event>,
    faults: Faults,
    /// A miner cut off until this time, if any.
    partitioned: Option<(usize, u64)>,
    /// Whether miners still find blocks (the end stops them, to let the network settle).
    mining: bool,
    tree: BlockTree,
    trace: VecDeque<String>,
    outcome: ChainOutcome,
    step: u64,
}

/// Keys from the seed's generator, so that a seed replays exactly.
fn key(rng: &mut StdRng) -> SecretKey {
    SecretKey::from_bytes(rng.r#gen())
}

impl ChainWorld {
    pub fn new(config: &Config) -> Result<Self, Box<Violation>> {
        // Its own stream, so that the chain world's draws do not shift the quorum world's.
        let mut rng = StdRng::seed_from_u64(config.seed ^ 0xC4A1_0000_0000_0000);
        let block_time_ms = rng.gen_range(50..=400);
        let faults = Faults {
            net: NetFaults {
                drop_per_mille: rng.gen_range(0..=100),
                duplicate_per_mille: rng.gen_range(0..=50),
                max_delay_ms: rng.gen_range(1..=block_time_ms / 4),
            },
            block_time_ms,
            // Within what a node accepts (blocks up to 10 minutes ahead of its clock), so
            // that every valid block stays acceptable to every miner.
            max_skew_ms: rng.gen_range(0..=120_000),
            crash_per_mille: rng.gen_range(0..=60),
            failed_commit_per_mille: rng.gen_range(0..=10),
            partitions: rng.gen_bool(0.5),
            withholder: rng.gen_bool(0.4),
            inflator: rng.gen_bool(0.4),
        };
        let count = config.miners.max(1);
        let miner_keys: Vec<SecretKey> = (0..count).map(|_| key(&mut rng)).collect();
        let payer_keys: Vec<SecretKey> = (0..PAYERS).map(|_| key(&mut rng)).collect();
        let contract = NetworkContract {
            name: format!("sim-chain-{}", config.seed),
            mode: Mode::Pow,
            unit: "cash".into(),
            faucet: Amount::from_microcash(0),
            intro_pow_bits: 0,
            validators: Vec::new(),
            max_clock_skew_ms: None,
            tracker: None,
            genesis: payer_keys
                .iter()
                .map(|k| Allocation {
                    account: k.account(),
                    amount: Amount::from_microcash(GENESIS_PER_PAYER),
                })
                .collect(),
            pow: Some(tally_core::PowParams {
                retarget_window: 8,
                ..default_pow_params(block_time_ms, Amount::from_microcash(50_000), 3)
            }),
        };
        let params = ChainParams::from_contract(&contract).map_err(|e| {
            Box::new(Violation {
                seed: config.seed,
                step: 0,
                invariant: format!("the simulated chain contract is not valid: {e}"),
                trace: Vec::new(),
            })
        })?;
        let miners = miner_keys
            .into_iter()
            .enumerate()
            .map(|(i, k)| {
                // Miner 0 is always honest; the last may withhold, the one before may
                // inflate.
                let kind = if i > 0 && i == count - 1 && faults.withholder {
                    MinerKind::Withholder
                } else if i > 0 && i + 2 == count && faults.inflator {
                    MinerKind::Inflator
                } else {
                    MinerKind::Honest
                };
                let skew = rng.gen_range(-faults.max_skew_ms..=faults.max_skew_ms);
                SimMiner::new(i, kind, k, skew)
            })
            .collect();
        let payments = u32::try_from(config.steps / 40).unwrap_or(u32::MAX).max(1);
        let payers = payer_keys
            .into_iter()
            .map(|k| SimPayer::new(k, payments))
            .collect();
        Ok(ChainWorld {
            seed: config.seed,
            steps: config.steps as u64,
            planted: config.planted,
            rng,
            network: params.network,
            tree: BlockTree::new(params.genesis_hash, U256::ZERO),
            params,
            miners,
            payers,
            queue: Queue::new(),
            faults,
            partitioned: None,
            mining: true,
            trace: VecDeque::with_capacity(TRACE),
            outcome: ChainOutcome::default(),
            step: 0,
        })
    }

    fn violation(&self, invariant: String) -> Box<Violation> {
        Box::new(Violation {
            seed: self.seed,
            step: self.step,
            invariant: format!("chain world: {invariant}"),
            trace: self.trace.iter().cloned().collect(),
        })
    }

    fn note(&mut self, line: String) {
        if self.trace.len() == TRACE {
            self.trace.pop_front();
        }
        self.trace
            .push_back(format!("{:>7} ms  {line}", self.queue.now()));
    }

    /// The faults this seed drew, for `tally sim --seed`.
    pub fn faults(&self) -> String {
        let kinds: Vec<String> = self
            .miners
            .iter()
            .map(|m| format!("{:?} (clock {:+} ms)", m.kind, m.skew_ms))
            .collect();
        format!("{:?}; miners: {}", self.faults, kinds.join(", "))
    }

    pub fn run(mut self) -> Result<ChainOutcome, Box<Violation>> {
        for m in 0..self.miners.len() {
            self.miners[m]
                .start(&self.params)
                .map_err(|e| self.violation(e))?;
        }
        // The tree's genesis has the work the chain gives its genesis.
        if let Some(chain) = &self.miners[0].chain {
            self.tree = BlockTree::new(self.params.genesis_hash, chain.tip().work);
        }
        for m in 0..self.miners.len() {
            self.schedule_mining(m);
            let after = self.rng.gen_range(0..self.faults.block_time_ms);
            self.queue.schedule(after, Event::Gossip(m));
        }
        for p in 0..self.payers.len() {
            let after = self.rng.gen_range(0..self.faults.block_time_ms);
            self.queue.schedule(after, Event::Wake(p));
        }
        while self.step < self.steps {
            let Some(event) = self.queue.pop() else { break };
            self.handle(event, true)?;
        }
        self.heal()?;
        self.converge()?;
        // The tie-break of convergence may itself drop a payment from the main chain: the
        // wallets settle again (they send it again) until they find the chain whole.
        for _ in 0..4 {
            if self.payments_on_chain() {
                break;
            }
            self.settle_payers()?;
            self.converge()?;
        }
        self.check_end()?;
        self.outcome.resent = self.payers.iter().map(|p| p.resent).sum();
        self.outcome.steps = self.step;
        self.outcome.blocks = self.tree.valid_blocks() as u64;
        Ok(self.outcome)
    }

    fn up_chains(
        &self,
    ) -> impl Iterator<Item = &tally_chain::Chain<tally_chain::store::MemoryStore>> {
        self.miners.iter().filter_map(|m| m.chain.as_ref())
    }

    fn schedule_mining(&mut self, m: usize) {
        if !self.mining {
            return;
        }
        // Each miner has an equal share of the hash rate; a harder target takes longer
        // in proportion, so retargeting sees the time it expects.
        let difficulty = self.miners[m]
            .chain
            .as_ref()
            .map(|c| {
                expected_hashes(&c.next_target()) / expected_hashes(&self.params.initial_target)
            })
            .unwrap_or(1.0);
        let mean = self.faults.block_time_ms as f64 * self.miners.len() as f64 * difficulty;
        let uniform: f64 = self.rng.gen_range(f64::EPSILON..1.0);
        let after = (-uniform.ln() * mean).clamp(1.0, 1e9) as u64;
        self.miners[m].search += 1;
        let search = self.miners[m].search;
        self.queue.schedule(after, Event::Mine(m, search));
    }

    /// Whether `party` is the miner cut off now.
    fn cut_off(&self, party: Party) -> bool {
        match (self.partitioned, party) {
            (Some((m, until)), Party::Miner(x)) => m == x && self.queue.now() < until,
            _ => false,
        }
    }

    fn send(&mut self, message: Message) {
        if self.cut_off(message.from) || self.cut_off(message.to) {
            return;
        }
        for delay in self.faults.net.delays(&mut self.rng) {
            self.queue
                .schedule(delay, Event::Deliver(Box::new(message.clone())));
        }
    }

    fn broadcast(&mut self, from: usize, payload: &Payload, except: Option<usize>) {
        for to in 0..self.miners.len() {
            if to != from && Some(to) != except {
                self.send(Message {
                    from: Party::Miner(from),
                    to: Party::Miner(to),
                    payload: payload.clone(),
                });
            }
        }
    }

    /// Miner `m`'s `CONNECT`: its total work and locator (`None` while it is down).
    fn connect_payload(&self, m: usize) -> Option<Payload> {
        let chain = self.miners[m].chain.as_ref()?;
        Some(Payload::Connect {
            work: chain.tip().work,
            locator: chain.locator(),
        })
    }

    fn connect_all(&mut self, m: usize) {
        if let Some(payload) = self.connect_payload(m) {
            self.broadcast(m, &payload, None);
        }
    }

    /// The block `hash` from miner `m`'s disk, if it has it; a disk that cannot be read is
    /// a violation (the simulated disk fails only commits).
    fn stored_block(&self, m: usize, hash: &BlockHash) -> Result<Option<Block>, Box<Violation>> {
        match &self.miners[m].chain {
            Some(chain) => chain
                .block(hash)
                .map_err(|e| self.violation(format!("miner {m} cannot read block {hash}: {e}"))),
            None => Ok(None),
        }
    }

    /// A withholder announces every block it kept back.
    fn release(&mut self, m: usize) {
        let blocks = std::mem::take(&mut self.miners[m].withheld);
        if !blocks.is_empty() {
            self.note(format!(
                "miner {m} releases {} withheld blocks",
                blocks.len()
            ));
        }
        for block in blocks {
            self.outcome.withheld += 1;
            self.miners[m].announce(block.hash());
            self.broadcast(m, &Payload::Block(Box::new(block)), None);
        }
    }

    fn handle(&mut self, event: Event, faulty: bool) -> Result<(), Box<Violation>> {
        self.step += 1;
        match event {
            Event::Deliver(message) => self.deliver(*message)?,
            Event::Mine(m, search) => {
                if search != self.miners[m].search {
                    return Ok(());
                }
                if self.mining && self.miners[m].is_up() {
                    self.mine(m, faulty)?;
                }
                // A miner that is down resumes mining when it restarts.
                if self.miners[m].is_up() {
                    self.schedule_mining(m);
                }
            }
            Event::Gossip(m) => {
                if self.miners[m].is_up() {
                    let to = self.rng.gen_range(0..self.miners.len());
                    if let Some(payload) = self.connect_payload(m)
                        && to != m
                    {
                        self.send(Message {
                            from: Party::Miner(m),
                            to: Party::Miner(to),
                            payload,
                        });
                    }
                    if self.miners[m].kind == MinerKind::Withholder && self.rng.gen_bool(0.25) {
                        self.release(m);
                    }
                    if faulty && self.rng.gen_range(0..1000) < self.faults.crash_per_mille {
                        let at = self.rng.gen_range(0..self.faults.block_time_ms);
                        self.queue.schedule(at, Event::Crash(m));
                    }
                    if faulty && self.faults.partitions {
                        self.maybe_partition();
                    }
                }
                if self.mining || faulty {
                    let after = self
                        .rng
                        .gen_range(self.faults.block_time_ms..=3 * self.faults.block_time_ms);
                    self.queue.schedule(after, Event::Gossip(m));
                }
            }
            Event::Crash(m) => {
                if self.miners[m].is_up() {
                    self.note(format!("miner {m} crashes"));
                    self.crash(m);
                }
            }
            Event::Restart(m) => {
                if !self.miners[m].is_up() {
                    self.miners[m]
                        .start(&self.params)
                        .map_err(|e| self.violation(e))?;
                    self.note(format!("miner {m} restarts from its disk"));
                    self.miners[m]
                        .check_announced()
                        .map_err(|e| self.violation(e))?;
                    self.check_chain(m, &[])?;
                    self.schedule_mining(m);
                    self.connect_all(m);
                }
            }
            Event::Wake(p) => {
                if let Some(ask) = self.payers[p].wake() {
                    self.ask(p, ask);
                }
                if self.payers[p].busy() {
                    let after = self
                        .rng
                        .gen_range(self.faults.block_time_ms..=2 * self.faults.block_time_ms);
                    self.queue.schedule(after, Event::Wake(p));
                }
            }
        }
        Ok(())
    }

    fn ask(&mut self, p: usize, ask: Ask) {
        let to = self.rng.gen_range(0..self.miners.len());
        let payload = match ask {
            Ask::Push(txs) => Payload::Tx(txs),
            Ask::Status(tx) => Payload::Status(Box::new(tx)),
            Ask::Account(account) => Payload::Account(account),
        };
        self.send(Message {
            from: Party::Payer(p),
            to: Party::Miner(to),
            payload,
        });
    }

    fn crash(&mut self, m: usize) {
        self.miners[m].crash();
        self.outcome.crashes += 1;
        let after = self.rng.gen_range(10..=300);
        self.queue.schedule(after, Event::Restart(m));
    }

    fn maybe_partition(&mut self) {
        let now = self.queue.now();
        if self
            .partitioned
            .is_some_and(|(_, until)| now < until + 2 * self.faults.block_time_ms)
        {
            return;
        }
        let victim = self.rng.gen_range(0..self.miners.len());
        let length = self
            .rng
            .gen_range(self.faults.block_time_ms..=10 * self.faults.block_time_ms);
        self.partitioned = Some((victim, now + length));
        self.note(format!("miner {victim} cut off for {length} ms"));
    }

    /// Miner `m` finds a block on its tip.
    fn mine(&mut self, m: usize, faulty: bool) -> Result<(), Box<Violation>> {
        let now = self.queue.now();
        let miner = &self.miners[m];
        let Some(chain) = &miner.chain else {
            return Ok(());
        };
        let mut block = chain.block_template(miner.key.account(), miner.clock(now));
        if miner.kind == MinerKind::Inflator && self.rng.gen_bool(0.3) {
            // A coinbase paying more than the reward, properly hashed and mined: only the
            // rules refuse it.
            block.coinbase.amount = Amount::from_microcash(block.coinbase.amount.microcash() + 1);
            block.header.merkle_root = block.compute_merkle_root();
            let Some(header) = solve(&block.header) else {
                return Ok(());
            };
            block.header = header;
            self.tree.found_invalid(&block);
            self.note(format!(
                "miner {m} announces block {} minting 1 microcash too many",
                block.hash()
            ));
            self.broadcast(m, &Payload::Block(Box::new(block)), None);
            return Ok(());
        }
        let Some(header) = solve(&block.header) else {
            return Ok(());
        };
        block.header = header;
        let hash = block.hash();
        self.note(format!(
            "miner {m} finds block {hash} at height {}",
            block.header.height
        ));
        self.accept(m, block, None, faulty)
    }

    /// Miner `m` takes in `block` (its own if `from` is `None`), and relays or asks as the
    /// outcome says.
    fn accept(
        &mut self,
        m: usize,
        block: Block,
        from: Option<usize>,
        faulty: bool,
    ) -> Result<(), Box<Violation>> {
        if faulty && self.rng.gen_range(0..1000) < self.faults.failed_commit_per_mille {
            self.miners[m].fail_next_commit();
        }
        let hash = block.hash();
        let own = from.is_none();
        let kept = own.then(|| block.clone());
        let now = self.queue.now();
        let Some(result) = self.miners[m].accept(block.clone(), now) else {
            return Ok(());
        };
        match result {
            Ok(BlockOutcome::Stored {
                tip_change,
                adopted_orphans,
                ..
            }) => {
                if let Some(block) = &kept {
                    self.tree
                        .found_valid(block)
                        .map_err(|e| self.violation(e))?;
                }
                let connected = tip_change
                    .as_ref()
                    .map(|c| {
                        if c.is_reorg() {
                            self.outcome.reorgs += 1;
                            self.outcome.deepest_reorg =
                                self.outcome.deepest_reorg.max(c.disconnected.len() as u64);
                        }
                        c.connected.clone()
                    })
                    .unwrap_or_default();
                if tip_change.as_ref().is_some_and(|c| c.is_reorg()) {
                    self.note(format!("miner {m} reorganises onto {hash}"));
                }
                self.check_chain(m, &connected)?;
                if own && self.miners[m].kind == MinerKind::Withholder {
                    self.miners[m].withheld.push(block);
                    return Ok(());
                }
                let mut relay = vec![hash];
                relay.extend(adopted_orphans);
                for h in relay {
                    if let Some(b) = self.stored_block(m, &h)? {
                        self.miners[m].announce(h);
                        self.broadcast(m, &Payload::Block(Box::new(b)), from);
                    }
                }
            }
            Ok(BlockOutcome::Orphan { missing_parent }) => {
                if let Some(peer) = from {
                    self.send(Message {
                        from: Party::Miner(m),
                        to: Party::Miner(peer),
                        payload: Payload::GetBlock(missing_parent),
                    });
                }
            }
            Ok(BlockOutcome::Held { height }) => {
                self.note(format!("miner {m} holds block {hash} at height {height}"));
            }
            Ok(BlockOutcome::Duplicate) => {}
            Err(ChainError::Store(error)) => {
                self.note(format!("miner {m}: commit failed ({error}); it stops"));
                if self.planted == Some(PlantedBug::AnnounceUncommitted) {
                    self.miners[m].announce(hash);
                    self.broadcast(m, &Payload::Block(Box::new(block)), from);
                }
                self.crash(m);
            }
            Err(ChainError::Invalid { error, .. }) => {
                if self.tree.invalid.contains(&hash) {
                    self.outcome.invalid_refused += 1;
                } else {
                    self.note(format!("miner {m} refuses block {hash}: {error}"));
                }
            }
        }
        Ok(())
    }

    /// After miner `m`'s chain moved: the supply is exactly the genesis plus one reward per
    /// block, and no block it connected is one the simulation knows to be invalid.
    fn check_chain(&self, m: usize, connected: &[BlockHash]) -> Result<(), Box<Violation>> {
        let Some(chain) = &self.miners[m].chain else {
            return Ok(());
        };
        if let Some(bad) = connected.iter().find(|h| self.tree.invalid.contains(h)) {
            return Err(self.violation(format!(
                "miner {m} put block {bad}, which mints money, on its main chain"
            )));
        }
        let height = chain.tip().height;
        if chain.supply() != self.params.supply_at(height) {
            return Err(self.violation(format!(
                "miner {m} at height {height} holds a supply of {:?}, not the genesis plus {height} rewards ({:?})",
                chain.supply(),
                self.params.supply_at(height)
            )));
        }
        Ok(())
    }
}
