//! A deterministic simulation of a quorum network (DESIGN §9, `tally-sim`).
//!
//! Honest validators are the node's own request handling ([`tally_node::decider`], which
//! runs the real [`tally_ledger::Validator`]) on the real in-memory store
//! ([`tally_ledger::MemoryLedgerStore`], which loses what was not committed when it
//! crashes), spoken to in the wire's packets. Honest wallets and two copies of one wallet
//! (twins: one key, two folders) are the wallet library's own payment code
//! ([`tally_wallet::ops::pay`] on real wallet folders, through a transport that is the
//! simulated network: [`wallet`]), and so are two holders handed the same bearer coins at
//! once (the wallet's own `coins::import`, `find` and `pown`); equivocating owners, which
//! the wallet never is, are a model. Up to f validators are Byzantine (each seed draws what they do: vote for every
//! order, withhold every vote, or vote honestly but lie about the ledger and send forged
//! and replayed certificates). Everything runs in one thread, under a scheduler seeded by
//! one number: a simulated clock, and a network that drops, delays, duplicates and
//! reorders messages and cuts validators off for a while. Validators crash and restart and
//! their commits fail; wallet processes die mid-payment. Every step is checked against
//! Tally's safety invariants ([`check`]); a run that breaks one stops with a [`Violation`]
//! naming the seed, the step and the last events, and the same seed replays it exactly.
//!
//! Each seed then runs a proof-of-work network ([`chain`]): the real chain rules on the
//! real in-memory chain store, miners with skewed clocks that fork, withhold and try to
//! mint money, crashes and failed commits, checked for exact supply, announced blocks
//! surviving crashes, and convergence on the most work.
//!
//! What it does not cover: the engine's threads and the wire's bytes (the engine is tested
//! on its own, the codec by vectors and properties), and the quorum world's nodes share one
//! clock.

pub mod chain;
mod check;
mod equivocator;
mod net;
mod validator;
mod wallet;
mod world;

use std::fmt;

pub use chain::ChainOutcome;
pub use check::Violation;

/// Mistakes the simulator can plant to show that its invariants catch them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlantedBug {
    /// Honest validators vote for a second order in a slot they already voted in.
    VoteTwice,
    /// Honest validators apply a certificate again each time it arrives.
    ApplyTwice,
    /// Honest validators send their votes before the batch that holds them is committed.
    VoteBeforeCommit,
    /// Two copies of one wallet send each order to every validator at once, without asking
    /// the first voter first (the wallet as it was before the first-voter rule).
    TwinsSkipFirstVoter,
    /// A miner whose commit failed announces the block anyway (an announcement before the
    /// block is durable).
    AnnounceUncommitted,
    /// Honest validators vote for an escrow's refund after voting for its claim (or the
    /// other way round), as if claim and refund did not share the escrow's slot.
    VoteClaimAndRefund,
}

/// What one run simulates.
#[derive(Clone, Debug)]
pub struct Config {
    /// Everything random in the run comes from this.
    pub seed: u64,
    /// Committee size (4, 7, 10, …).
    pub validators: usize,
    /// Events processed before the network heals and the run settles.
    pub steps: usize,
    /// Miners in the proof-of-work network.
    pub miners: usize,
    /// A planted mistake, for the tests that show the checks bite.
    pub planted: Option<PlantedBug>,
    /// Whether the run has escrows (locked, claimed on time or late or never, refunded).
    /// The regression seeds of bugs found before escrows existed run without, so that
    /// they replay the run that found them.
    pub escrows: bool,
}

impl Config {
    /// A run of `steps` steps over `validators` validators from `seed`.
    pub fn new(seed: u64, validators: usize, steps: usize) -> Self {
        Config {
            seed,
            validators,
            steps,
            miners: 4,
            planted: None,
            escrows: true,
        }
    }

    /// As [`Config::new`], without escrows: the run as it was before escrows existed.
    pub fn without_escrows(seed: u64, validators: usize, steps: usize) -> Self {
        Config {
            escrows: false,
            ..Config::new(seed, validators, steps)
        }
    }
}

/// What a run did, for the campaign's report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Events processed, settling included.
    pub steps: u64,
    /// Messages the network delivered.
    pub messages: u64,
    /// Certificates the wallets assembled.
    pub certificates: u64,
    /// Payments a quorum acknowledged as applied and durable.
    pub acknowledged: u64,
    /// Validator crashes (and failed commits, which stop a validator the same way).
    pub crashes: u64,
    /// Slots an equivocating owner froze by signing two orders (allowed; counted).
    pub frozen_by_equivocation: u64,
    /// Slots two copies of one wallet froze: the residual race, allowed only where a copy
    /// asked everyone without its first voter's answer (or that voter is Byzantine).
    pub twin_slots_frozen: u64,
    /// Slots where a twin asked everyone without its first voter's answer.
    pub twin_fallbacks: u64,
    /// Orders of one copy that the other copy finished.
    pub twin_orders_finished_for_the_other: u64,
    /// Forged certificates (a lying validator's) that honest validators refused.
    pub forgeries_refused: u64,
    /// Wallet processes that died mid-payment (the next payment finished their journal).
    pub wallet_crashes: u64,
    /// Payments that failed under the faults (no quorum in time) and were made again.
    pub payments_retried: u64,
    /// Bearer coins handed to two holders at once.
    pub coins_handed_twice: u64,
    /// Of those, coins exactly one holder took in.
    pub coins_taken: u64,
    /// Of those, coins whose slot the two holders split (the residual race).
    pub coins_frozen: u64,
    /// Escrows claimed by their payee.
    pub escrows_claimed: u64,
    /// Escrows refunded to their payer after the deadline.
    pub escrows_refunded: u64,
    /// Escrows whose claim and refund votes split (a claim racing the deadline, or sent
    /// while the network was faulty): allowed, counted.
    pub escrows_frozen: u64,
    /// The proof-of-work network's run.
    pub chain: ChainOutcome,
    /// The faults this seed drew.
    pub faults: String,
}

impl Outcome {
    /// Adds another run's counts to this one.
    pub fn add(&mut self, other: &Outcome) {
        self.steps += other.steps;
        self.messages += other.messages;
        self.certificates += other.certificates;
        self.acknowledged += other.acknowledged;
        self.crashes += other.crashes;
        self.frozen_by_equivocation += other.frozen_by_equivocation;
        self.twin_slots_frozen += other.twin_slots_frozen;
        self.twin_fallbacks += other.twin_fallbacks;
        self.twin_orders_finished_for_the_other += other.twin_orders_finished_for_the_other;
        self.forgeries_refused += other.forgeries_refused;
        self.wallet_crashes += other.wallet_crashes;
        self.payments_retried += other.payments_retried;
        self.coins_handed_twice += other.coins_handed_twice;
        self.coins_taken += other.coins_taken;
        self.coins_frozen += other.coins_frozen;
        self.escrows_claimed += other.escrows_claimed;
        self.escrows_refunded += other.escrows_refunded;
        self.escrows_frozen += other.escrows_frozen;
        self.chain.add(&other.chain);
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} steps, {} messages, {} certificates, {} payments acknowledged, {} validator crashes, {} wallet crashes, {} payments retried, {} slots frozen by equivocating owners; twins: {} orders finished for the other copy, {} slots asked without the first voter, {} slots frozen (the residual race); coins: {} handed to two holders at once, {} taken by one, {} frozen (the residual race); escrows: {} claimed, {} refunded, {} frozen by a claim racing the deadline or sent under faults; {} forged certificates refused",
            self.steps,
            self.messages,
            self.certificates,
            self.acknowledged,
            self.crashes,
            self.wallet_crashes,
            self.payments_retried,
            self.frozen_by_equivocation,
            self.twin_orders_finished_for_the_other,
            self.twin_fallbacks,
            self.twin_slots_frozen,
            self.coins_handed_twice,
            self.coins_taken,
            self.coins_frozen,
            self.escrows_claimed,
            self.escrows_refunded,
            self.escrows_frozen,
            self.forgeries_refused
        )?;
        let c = &self.chain;
        write!(
            f,
            "\n  proof of work: {} steps, {} messages, {} blocks, {} reorganisations (deepest {}), {} blocks withheld and released, {} money-minting blocks refused, {} payments confirmed ({} sent again after a reorganisation dropped them), {} miner crashes",
            c.steps,
            c.messages,
            c.blocks,
            c.reorgs,
            c.deepest_reorg,
            c.withheld,
            c.invalid_refused,
            c.payments,
            c.resent,
            c.crashes
        )
    }
}

/// Runs one seed: its outcome, or the first invariant it broke.
pub fn run(config: &Config) -> Result<Outcome, Box<Violation>> {
    let mut outcome = world::World::new(config)?.run()?;
    let chain = chain::ChainWorld::new(config)?;
    outcome.faults = format!("{}; proof of work: {}", outcome.faults, chain.faults());
    outcome.chain = chain.run()?;
    Ok(outcome)
}
