//! One run: the committee, the wallets, the network and the observer, stepped event by
//! event from one seed; then the network heals, everything settles, and the end state is
//! checked ([`end`]). The real wallets' side of the run is in [`wallets`].

mod end;
mod escrows;
mod wallets;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tally_core::{
    AccountId, Allocation, Amount, Mode, NetworkContract, NetworkId, OrderDigest, SecretKey,
    ValidatorInfo,
};

use crate::check::{self, Observer, Signatures, Violation};
use crate::equivocator::{Context, Equivocator};
use crate::net::{Event, Message, NetFaults, Network, Node, Payload};
use crate::validator::{Behaviour, SimValidator};
use crate::wallet::{self, WalletProcess};
use crate::{Config, Outcome};

/// What each wallet holds at genesis (payments are at most 1,000 microcash each).
const GENESIS_PER_WALLET: u64 = 10_000_000;
/// The validators' clocks start at this Unix time (ms) and each is off true (simulated)
/// time by up to [`CLOCK_SKEW_MS`] either way, drawn per seed.
const CLOCK_EPOCH_MS: u64 = 1_700_000_000_000;
/// ε: the most a simulated validator's clock is off.
const CLOCK_SKEW_MS: u64 = 100;
/// Events kept for a violation's trace.
const TRACE: usize = 200;
/// Honest wallets (real ones) and equivocating owners (a model), then one pair of twins
/// (two real copies of one wallet: one key, two folders).
const HONEST_WALLETS: usize = 3;
const EQUIVOCATORS: usize = 2;
/// Wallets handed the same bearer coins, and the honest wallet that withdraws them.
const HOLDERS: usize = 2;
const ISSUER: usize = 0;

/// The faults one seed drew, beyond the network's.
#[derive(Clone, Copy, Debug)]
struct Faults {
    net: NetFaults,
    /// Per mille of batches after which the validator crashes before or just after its
    /// commit (any point of the commit path).
    crash_per_mille: u32,
    /// Per mille of commits that fail.
    failed_commit_per_mille: u32,
    /// Whether validators are cut off from time to time.
    partitions: bool,
    byzantine: usize,
    /// What the Byzantine validators do.
    byzantine_behaviour: Behaviour,
    /// Per mille of payments during which the wallet's process dies.
    wallet_crash_per_mille: u32,
}

pub struct World {
    config: Config,
    rng: StdRng,
    contract: NetworkContract,
    network_id: NetworkId,
    validator_keys: Vec<AccountId>,
    quorum: usize,
    validators: Vec<SimValidator>,
    equivocators: Vec<Equivocator>,
    wallets: Vec<WalletProcess>,
    /// Where the wallets' folders are (removed with the world).
    _folders: tempfile::TempDir,
    /// Which wallet first sent each order for votes (its signer, for a twin's order).
    first_sender: BTreeMap<OrderDigest, usize>,
    /// Orders a twin finished for the other copy.
    finished_for_other: BTreeSet<OrderDigest>,
    /// Whether the issuer's coins are out.
    coins_issued: bool,
    /// The coins handed to both holders.
    handed: Vec<AccountId>,
    /// Whether faults are still being injected (false once the network healed).
    faulty: bool,
    accounts: Vec<AccountId>,
    genesis: Vec<(AccountId, i128)>,
    net: Network,
    faults: Faults,
    /// Each validator's clock error in ms, within ±[`CLOCK_SKEW_MS`].
    clock_skews: Vec<i64>,
    /// Each real wallet's clock error in ms, within ±[`CLOCK_SKEW_MS`].
    wallet_skews: Vec<i64>,
    /// The generator of what was added after the regression seeds were found (clocks,
    /// escrows): drawing from it leaves the main generator's sequence as it was.
    side: StdRng,
    /// The escrow payer and payee, when the run has escrows.
    escrows: Option<escrows::Escrows>,
    observer: Observer,
    signatures: Signatures,
    trace: VecDeque<String>,
    outcome: Outcome,
    step: u64,
}

/// What wallets need of the network, from the world's fields (a function, not a method, so
/// that a caller can borrow the wallets and the generator mutably beside it).
fn context<'a>(
    network: &'a NetworkId,
    validator_keys: &'a [AccountId],
    quorum: usize,
    accounts: &'a [AccountId],
) -> Context<'a> {
    Context {
        network,
        validator_keys,
        quorum,
        accounts,
    }
}

/// Keys from the seed's generator, so that a seed replays exactly.
fn key(rng: &mut StdRng) -> SecretKey {
    SecretKey::from_bytes(rng.r#gen())
}

/// Where the wallets' folders go: memory-backed where the machine has it (`/dev/shm`), so
/// that the wallet's syncs cost little; they are real files either way.
fn folders() -> Result<tempfile::TempDir, String> {
    let shm = std::path::Path::new("/dev/shm");
    let root = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    tempfile::Builder::new()
        .prefix("tally-sim-")
        .tempdir_in(root)
        .map_err(|e| format!("the simulator cannot make the wallets' folders: {e}"))
}

impl World {
    pub fn new(config: &Config) -> Result<Self, Box<Violation>> {
        let infrastructure = |invariant: String| {
            Box::new(Violation {
                seed: config.seed,
                step: 0,
                invariant,
                trace: Vec::new(),
            })
        };
        let mut rng = StdRng::seed_from_u64(config.seed);
        let n = config.validators.max(1);
        let f = (n - 1) / 3;
        let faults = Faults {
            net: NetFaults {
                drop_per_mille: rng.gen_range(0..=100),
                duplicate_per_mille: rng.gen_range(0..=50),
                max_delay_ms: rng.gen_range(1..=20),
            },
            crash_per_mille: rng.gen_range(0..=40),
            failed_commit_per_mille: rng.gen_range(0..=10),
            partitions: rng.gen_bool(0.5),
            byzantine: rng.gen_range(0..=f),
            byzantine_behaviour: match rng.gen_range(0..3) {
                0 => Behaviour::DoubleVoter,
                1 => Behaviour::Silent,
                _ => Behaviour::Liar,
            },
            wallet_crash_per_mille: rng.gen_range(0..=150),
        };
        let validator_secrets: Vec<SecretKey> = (0..n).map(|_| key(&mut rng)).collect();
        // Clocks and escrows come from a generator of their own, so that adding them left
        // every earlier seed's run (and the regression seeds, run without escrows) as it
        // was.
        let mut side = StdRng::seed_from_u64(config.seed ^ 0x636c_6f63_6b73);
        let skew = CLOCK_SKEW_MS as i64;
        let clock_skews: Vec<i64> = (0..n).map(|_| side.gen_range(-skew..=skew)).collect();
        // The escrow payer (funded at genesis) and payee.
        let escrow_keys: Vec<SecretKey> = if config.escrows {
            vec![key(&mut side), key(&mut side)]
        } else {
            Vec::new()
        };
        let wallet_keys: Vec<SecretKey> = (0..HONEST_WALLETS + EQUIVOCATORS + 1)
            .map(|_| key(&mut rng))
            .collect();
        let contract = NetworkContract {
            name: format!("sim-{}", config.seed),
            mode: Mode::Quorum,
            unit: "cash".into(),
            faucet: Amount::from_microcash(0),
            intro_pow_bits: 0,
            validators: validator_secrets
                .iter()
                .map(|k| ValidatorInfo {
                    key: k.account(),
                    address: "sim".into(),
                })
                .collect(),
            tracker: None,
            genesis: wallet_keys
                .iter()
                .chain(escrow_keys.first())
                .map(|k| Allocation {
                    account: k.account(),
                    amount: Amount::from_microcash(GENESIS_PER_WALLET),
                })
                .collect(),
            pow: None,
            max_clock_skew_ms: config.escrows.then_some(CLOCK_SKEW_MS),
        };
        let network_id = contract.id();
        // The Byzantine validators are the last ones.
        let validators = validator_secrets
            .into_iter()
            .enumerate()
            .map(|(i, secret)| {
                let behaviour = if i >= n - faults.byzantine {
                    faults.byzantine_behaviour
                } else {
                    Behaviour::Honest
                };
                SimValidator::new(i, secret, behaviour, config.planted)
            })
            .collect();
        let payments = u32::try_from(config.steps).unwrap_or(u32::MAX);
        let folders = folders().map_err(infrastructure)?;
        let skip_first_voter = config.planted == Some(crate::PlantedBug::TwinsSkipFirstVoter);
        // Honest wallets, two copies of the last key (each with its own folder), and the
        // holders (keys of their own, never funded: they only take coins in).
        let mut owners: Vec<(wallet::Kind, SecretKey)> = wallet_keys
            .iter()
            .take(HONEST_WALLETS)
            .map(|k| (wallet::Kind::Honest, k.clone()))
            .collect();
        if let Some(twin) = wallet_keys.last() {
            owners.push((wallet::Kind::Twin, twin.clone()));
            owners.push((wallet::Kind::Twin, twin.clone()));
        }
        for _ in 0..HOLDERS {
            owners.push((wallet::Kind::Holder, key(&mut rng)));
        }
        let mut escrow_owners = Vec::new();
        if let [payer, payee] = escrow_keys.as_slice() {
            escrow_owners.push((wallet::Kind::EscrowPayer, payer.clone()));
            escrow_owners.push((wallet::Kind::EscrowPayee, payee.clone()));
        }
        let escrows = match escrow_owners.len() {
            2 => Some(escrows::Escrows::new(owners.len(), owners.len() + 1)),
            _ => None,
        };
        let mut wallets = Vec::with_capacity(owners.len() + escrow_owners.len());
        let owners = owners
            .into_iter()
            .map(|owner| (owner, false))
            .chain(escrow_owners.into_iter().map(|owner| (owner, true)));
        for (index, ((kind, secret), escrow)) in owners.enumerate() {
            let key_seed = if escrow { side.r#gen() } else { rng.r#gen() };
            let mut process = WalletProcess::new(
                index,
                kind,
                secret,
                folders.path(),
                &contract,
                skip_first_voter && kind == wallet::Kind::Twin,
                key_seed,
            )
            .map_err(infrastructure)?;
            if matches!(kind, wallet::Kind::Honest | wallet::Kind::Twin) {
                process.payments_left = payments;
            }
            wallets.push(process);
        }
        let wallet_skews: Vec<i64> = (0..wallets.len())
            .map(|_| side.gen_range(-skew..=skew))
            .collect();
        let equivocators = wallet_keys
            .iter()
            .skip(HONEST_WALLETS)
            .take(EQUIVOCATORS)
            .enumerate()
            .map(|(i, secret)| Equivocator::new(i, secret.clone(), payments))
            .collect();
        let accounts: Vec<AccountId> = wallet_keys.iter().map(SecretKey::account).collect();
        let quorum = n - f;
        let outcome = Outcome {
            faults: format!("{faults:?}"),
            ..Outcome::default()
        };
        Ok(World {
            config: config.clone(),
            rng,
            validator_keys: contract.validators.iter().map(|v| v.key).collect(),
            network_id,
            quorum,
            validators,
            genesis: accounts
                .iter()
                .chain(escrow_keys.first().map(SecretKey::account).as_ref())
                .map(|a| (*a, i128::from(GENESIS_PER_WALLET)))
                .collect(),
            accounts,
            equivocators,
            wallets,
            _folders: folders,
            first_sender: BTreeMap::new(),
            finished_for_other: BTreeSet::new(),
            coins_issued: false,
            handed: Vec::new(),
            faulty: true,
            net: Network::new(faults.net),
            faults,
            clock_skews,
            wallet_skews,
            side,
            escrows,
            observer: Observer::new(quorum),
            signatures: Signatures::default(),
            trace: VecDeque::with_capacity(TRACE),
            outcome,
            step: 0,
            contract,
        })
    }

    /// Validator `v`'s own clock now: true simulated time plus its skew.
    fn validator_clock(&self, v: usize) -> u64 {
        (CLOCK_EPOCH_MS + self.net.now()).saturating_add_signed(self.clock_skews[v])
    }

    fn violation(&self, invariant: String) -> Box<Violation> {
        Box::new(Violation {
            seed: self.config.seed,
            step: self.step,
            invariant,
            trace: self.trace.iter().cloned().collect(),
        })
    }

    fn note(&mut self, line: String) {
        if self.trace.len() == TRACE {
            self.trace.pop_front();
        }
        self.trace
            .push_back(format!("{:>7} ms  {line}", self.net.now()));
    }

    pub fn run(mut self) -> Result<Outcome, Box<Violation>> {
        for v in 0..self.validators.len() {
            self.validators[v]
                .start(&self.contract)
                .map_err(|e| self.violation(e))?;
        }
        for e in 0..self.equivocators.len() {
            let after = self.rng.gen_range(0..10);
            self.net.schedule(after, Event::Wake(e));
        }
        for w in 0..self.wallets.len() {
            let after = self.rng.gen_range(0..10);
            self.net.schedule(after, Event::WalletStart(w));
        }
        self.start_escrows();
        // The faulty part of the run.
        while self.step < self.config.steps as u64 {
            let Some(event) = self.net.pop() else { break };
            self.handle(event)?;
        }
        self.heal()?;
        self.check_end()?;
        self.outcome.steps = self.step;
        self.outcome.messages = self.net.delivered;
        self.outcome.certificates = self.observer.certificates.len() as u64;
        self.outcome.frozen_by_equivocation =
            self.equivocators.iter().filter(|e| e.frozen).count() as u64;
        let twins = self.wallets.iter().filter(|w| w.kind == wallet::Kind::Twin);
        self.outcome.twin_slots_frozen =
            twins.clone().filter(|w| w.frozen.is_some()).count() as u64;
        self.outcome.twin_fallbacks = twins.map(|w| w.link.fell_back().len() as u64).sum();
        self.outcome.twin_orders_finished_for_the_other = self.finished_for_other.len() as u64;
        Ok(self.outcome)
    }

    /// Runs until nothing is left to happen (bounded: a run that never settles is itself
    /// a violation, of liveness).
    fn settle(&mut self) -> Result<(), Box<Violation>> {
        let limit = self.step + 200_000;
        while let Some(event) = self.net.pop() {
            if self.step >= limit {
                return Err(
                    self.violation("the healed network did not settle within 200,000 steps".into())
                );
            }
            self.handle(event)?;
        }
        Ok(())
    }

    fn context(&self) -> Context<'_> {
        context(
            &self.network_id,
            &self.validator_keys,
            self.quorum,
            &self.accounts,
        )
    }

    /// Cuts one validator off for a while, if none is cut off now.
    fn maybe_partition(&mut self) {
        let now = self.net.now();
        if self
            .net
            .partitioned
            .is_some_and(|(_, until)| now < until + 200)
        {
            return;
        }
        let victim = self.rng.gen_range(0..self.validators.len());
        let length = self.rng.gen_range(20..300);
        self.net.partitioned = Some((victim, now + length));
        self.note(format!("validator {victim} cut off for {length} ms"));
    }

    fn send_all(&mut self, messages: Vec<Message>) {
        for message in messages {
            self.net.send(&mut self.rng, message);
        }
    }

    fn handle(&mut self, event: Event) -> Result<(), Box<Violation>> {
        self.step += 1;
        let faulty = self.faulty;
        match event {
            Event::Deliver(message) => self.deliver(*message)?,
            Event::Process(v) => {
                let now = self.validator_clock(v);
                let answers =
                    self.validators[v].process(&self.network_id, &mut self.signatures, now);
                self.note(format!("validator {v} decides a batch"));
                self.release(v, answers)?;
                if self.validators[v].honest() && self.validators[v].is_up() {
                    let commit_delay = self.rng.gen_range(1..=3);
                    self.net.schedule(commit_delay, Event::Commit(v));
                    if faulty && self.rng.gen_range(0..1000) < self.faults.crash_per_mille {
                        // Before, at or after the commit: any point of its path.
                        let at = self.rng.gen_range(0..=commit_delay + 1);
                        self.net.schedule(at, Event::Crash(v));
                    }
                } else if !self.validators[v].honest() {
                    let answers = self.validators[v].commit().unwrap_or_default();
                    self.release(v, answers)?;
                    // A liar sends forged and replayed certificates to other validators.
                    for payload in self.validators[v].forgeries(&self.network_id) {
                        let to = self.rng.gen_range(0..self.validators.len());
                        if to != v {
                            self.net.send(
                                &mut self.rng,
                                Message {
                                    from: Node::Validator(v),
                                    to: Node::Validator(to),
                                    payload,
                                },
                            );
                        }
                    }
                }
            }
            Event::Commit(v) => {
                if !self.validators[v].is_up() {
                    return Ok(());
                }
                if faulty && self.rng.gen_range(0..1000) < self.faults.failed_commit_per_mille {
                    self.validators[v].fail_next_commit();
                }
                match self.validators[v].commit() {
                    Ok(answers) => {
                        self.release(v, answers)?;
                        self.check_conservation(v)?;
                    }
                    Err(error) => {
                        self.note(format!("validator {v}: commit failed ({error}); it stops"));
                        self.crash(v);
                    }
                }
            }
            Event::Crash(v) => {
                if self.validators[v].is_up() {
                    self.note(format!("validator {v} crashes"));
                    self.crash(v);
                }
            }
            Event::Restart(v) => {
                if !self.validators[v].is_up() {
                    self.validators[v]
                        .start(&self.contract)
                        .map_err(|e| self.violation(e))?;
                    self.note(format!("validator {v} restarts from its store"));
                    if let Some(state) = self.validators[v].state() {
                        self.observer
                            .after_restart(v, state)
                            .map_err(|e| self.violation(e))?;
                    }
                    self.check_conservation(v)?;
                }
            }
            Event::Wake(e) => {
                let messages = {
                    let ctx = context(
                        &self.network_id,
                        &self.validator_keys,
                        self.quorum,
                        &self.accounts,
                    );
                    self.equivocators[e].wake(&mut self.rng, &ctx, &mut self.observer)
                };
                if !messages.is_empty() {
                    self.note(format!("equivocator {e} sends {} requests", messages.len()));
                }
                self.send_all(messages);
                if self.equivocators[e].wants_wake() {
                    let after = self.rng.gen_range(30..=60);
                    self.net.schedule(after, Event::Wake(e));
                }
                if faulty && self.faults.partitions {
                    self.maybe_partition();
                }
            }
            Event::WalletStart(w) => self.start_work(w)?,
            Event::WalletTimer(w, id) => {
                if self.wallets[w].link.expire(id) {
                    self.poll_wallet(w)?;
                }
            }
            Event::WalletCrash(w) => self.crash_wallet(w),
        }
        Ok(())
    }

    fn crash(&mut self, v: usize) {
        self.validators[v].crash();
        self.outcome.crashes += 1;
        let after = self.rng.gen_range(10..=200);
        self.net.schedule(after, Event::Restart(v));
    }

    fn deliver(&mut self, message: Message) -> Result<(), Box<Violation>> {
        if !self.net.reaches(&message) {
            return Ok(());
        }
        self.net.delivered += 1;
        match message.to {
            Node::Validator(v) => {
                if self.validators[v].receive(message) && !self.validators[v].processing {
                    self.validators[v].processing = true;
                    let after = self.rng.gen_range(0..=2);
                    self.net.schedule(after, Event::Process(v));
                }
            }
            Node::Client(e) => {
                let Node::Validator(from) = message.from else {
                    return Ok(());
                };
                let result = {
                    let ctx = context(
                        &self.network_id,
                        &self.validator_keys,
                        self.quorum,
                        &self.accounts,
                    );
                    self.equivocators[e].on_answer(
                        from,
                        &message.payload,
                        &ctx,
                        &mut self.signatures,
                        &mut self.observer,
                    )
                };
                let (messages, acknowledged) = result.map_err(|e| self.violation(e))?;
                self.send_all(messages);
                if self.equivocators[e].take_revived() {
                    self.note(format!(
                        "equivocator {e}: a late quorum certifies a slot given up"
                    ));
                    self.net.schedule(1, Event::Wake(e));
                }
                if acknowledged {
                    self.outcome.acknowledged += 1;
                    self.note(format!("equivocator {e}: payment acknowledged by a quorum"));
                    let after = self.rng.gen_range(0..=5);
                    self.net.schedule(after, Event::Wake(e));
                }
            }
            Node::Wallet(w) => {
                // Only answers to its requests reach a wallet's calls (the acknowledgements
                // of the certificates the world pushed for it at the end are not asked for).
                if let Payload::Answer(id, packet) = message.payload
                    && self.wallets[w].link.answer(id, packet)
                {
                    self.poll_wallet(w)?;
                }
            }
        }
        Ok(())
    }

    /// Sends a validator's answers, recording each vote and acknowledgement it gives.
    fn release(&mut self, v: usize, answers: Vec<Message>) -> Result<(), Box<Violation>> {
        let honest = self.validators[v].honest();
        for message in answers {
            match &message.payload {
                Payload::Voted(digest, _) => self
                    .observer
                    .vote_given(v, honest, *digest)
                    .map_err(|e| self.violation(e))?,
                Payload::Answer(_, tally_proto::Packet::RespPay(reply)) => self
                    .observer
                    .vote_given(v, honest, reply.checksum)
                    .map_err(|e| self.violation(e))?,
                Payload::Applied(digest) if honest => self.observer.acknowledged(v, *digest),
                Payload::Answer(_, tally_proto::Packet::RespPayEnd(ack)) if honest => {
                    self.observer.acknowledged(v, ack.checksum);
                }
                // An honest validator refusing a certificate a liar sent it (a forgery; a
                // replay it had applied is answered as applied).
                Payload::Refused(..) if honest && matches!(message.to, Node::Validator(_)) => {
                    self.outcome.forgeries_refused += 1;
                }
                _ => {}
            }
            self.net.send(&mut self.rng, message);
        }
        Ok(())
    }

    fn check_conservation(&self, v: usize) -> Result<(), Box<Violation>> {
        if !self.validators[v].honest() {
            return Ok(());
        }
        let genesis = i128::from(GENESIS_PER_WALLET) * self.genesis.len() as i128;
        match self.validators[v].state() {
            Some(state) => check::conservation(v, state, genesis).map_err(|e| self.violation(e)),
            None => Ok(()),
        }
    }
}
