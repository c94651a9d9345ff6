//! The world: true time, two ledgers, a relay, and one driver per party that feeds its saga
//! what it observes, performs what the saga asks (journal first), and crashes or goes
//! offline when the run says so — then resumes from its last journal.

use std::collections::{BTreeMap, BTreeSet};

use tally_core::{AccountId, Amount, Digest, EscrowId, EscrowSecret, NetworkId, SecretKey, sha256};

mod network;

use super::greedy::Greedy;
use super::ledger::{Ledger, VALIDATORS};
use super::{MakerKind, Params, PayerKind, Rng};
use crate::maker::{Maker, MakerConfig, MakerState};
use crate::payer::{Payer, PayerConfig, PayerState};
use crate::quote::{Quote, SignedQuote, Want};
use crate::timing::{Timing, min_delta, min_lock_window};
use crate::wire::{Action, Event, LockTerms, Message, Outcome, Standing, Target};

/// Where the simulated clock starts (ms since the Unix epoch).
pub const T0: u64 = 1_700_000_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Who {
    Payer,
    Maker,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Net {
    A,
    B,
}

enum Saga {
    None,
    Payer(Box<Payer>),
    Maker(Box<Maker>),
    Greedy(Box<Greedy>),
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Claim(EscrowId, EscrowSecret),
    Refund(EscrowId),
}

enum Ev {
    Deliver {
        who: Who,
        inc: u64,
        event: Event,
    },
    Msg {
        to: Who,
        msg: Message,
    },
    Vote {
        net: Net,
        validator: usize,
        op: Op,
    },
    Report {
        who: Who,
        inc: u64,
        net: Net,
        op: Op,
    },
    LockEval {
        who: Who,
        inc: u64,
        net: Net,
        terms: LockTerms,
    },
    Poll {
        who: Who,
        inc: u64,
    },
    Wake {
        who: Who,
        inc: u64,
    },
    Restart {
        who: Who,
    },
    Offline {
        who: Who,
        len: u64,
    },
}

struct Party {
    saga: Saga,
    up: bool,
    inc: u64,
    clock_err: i64,
    account: AccountId,
    journal: Option<String>,
    subs: BTreeSet<(Net, Target)>,
    seen: BTreeMap<(Net, Target), (EscrowId, Standing, bool)>,
    crashes: u32,
    downtime: u64,
    outcome: Option<Outcome>,
    calls: u64,
}

impl Party {
    fn new(account: AccountId, clock_err: i64) -> Self {
        Party {
            saga: Saga::None,
            up: true,
            inc: 0,
            clock_err,
            account,
            journal: None,
            subs: BTreeSet::new(),
            seen: BTreeMap::new(),
            crashes: 0,
            downtime: 0,
            outcome: None,
            calls: 0,
        }
    }
}

/// One wire's world.
pub struct World {
    pub p: Params,
    pub timing: Timing,
    rng: Rng,
    pub now: u64,
    seq: u64,
    queue: BTreeMap<(u64, u64), Ev>,
    pub a: Ledger,
    pub b: Ledger,
    parties: [Party; 2],
    pub quote: SignedQuote,
    pub hash_lock: Digest,
    /// Every distinct lock the maker's driver performed on B, by payer escrow.
    pub maker_locks: BTreeMap<Option<EscrowId>, BTreeSet<(u64, u64)>>,
    /// Crash the party after its n-th step, performing this many of its actions first.
    forced_crash: Option<(Who, u64, usize)>,
    pub horizon: u64,
    /// `SWAP_TRACE` set: print every step (for replaying a failing seed).
    trace: bool,
}

fn network(name: &[u8]) -> NetworkId {
    NetworkId(sha256(&[b"tally-swap sim network ", name]))
}

impl World {
    pub fn new(p: Params) -> World {
        World::with_crash(p, None)
    }

    /// A world whose `who` crashes after its `call`-th step, `prefix` of that step's
    /// actions done (the first step is the saga's creation).
    pub fn with_crash(p: Params, forced_crash: Option<(Who, u64, usize)>) -> World {
        let mut rng = Rng::new(p.seed);
        let timing = p.timing();
        let payer_key = SecretKey::from_bytes([1; 32]);
        let maker_key = SecretKey::from_bytes([2; 32]);
        let (id_a, id_b) = (network(b"A"), network(b"B"));
        let offsets = |skew: u64, rng: &mut Rng| {
            let mut out = [0i64; VALIDATORS];
            for offset in &mut out {
                *offset = rng.upto(2 * skew) as i64 - skew as i64;
            }
            out
        };
        let (offsets_a, offsets_b) = (offsets(p.skew_a, &mut rng), offsets(p.skew_b, &mut rng));
        let down = |rng: &mut Rng| p.validator_down.then(|| rng.upto(3) as usize);
        let mut a = Ledger::new(id_a, p.skew_a, offsets_a, down(&mut rng));
        let mut b = Ledger::new(id_b, p.skew_b, offsets_b, down(&mut rng));
        a.mint(payer_key.account(), 1_000_000_000_000);
        b.mint(maker_key.account(), 1_000_000_000_000);
        let quote = Quote {
            maker: maker_key.account(),
            asset: "cash".into(),
            network_a: id_a,
            network_b: id_b,
            min_amount: Amount::from_microcash(1_000_000),
            max_amount: Amount::from_microcash(100_000_000),
            fee_ppm: p.fee_ppm,
            fee_fixed: Amount::from_microcash(p.fee_fixed),
            maker_a: maker_key.account(),
            maker_b: maker_key.account(),
            lock_time_ms: min_lock_window(&timing) + p.extra_lock,
            delta_ms: min_delta(&timing) + p.extra_delta,
            expires_ms: T0 + 60_000,
            nonce: 7,
        }
        .sign(&maker_key);
        let mut bytes = [0u8; 32];
        for chunk in bytes.chunks_mut(8) {
            chunk.copy_from_slice(&rng.next().to_le_bytes());
        }
        let secret = EscrowSecret::from(bytes);
        let err = |rng: &mut Rng| rng.upto(2 * p.clock_err) as i64 - p.clock_err as i64;
        let parties = [
            Party::new(payer_key.account(), err(&mut rng)),
            Party::new(maker_key.account(), err(&mut rng)),
        ];
        let offline_end = [p.payer_offline, p.maker_offline]
            .iter()
            .flatten()
            .map(|(start, len)| start + len)
            .max()
            .unwrap_or(0);
        let q = &quote.quote;
        let horizon = T0 + q.lock_time_ms + q.delta_ms + 4 * (p.skew_a + p.skew_b) + offline_end;
        let mut world = World {
            timing,
            rng,
            now: T0,
            seq: 0,
            queue: BTreeMap::new(),
            a,
            b,
            parties,
            hash_lock: secret.hash_lock(),
            quote,
            maker_locks: BTreeMap::new(),
            forced_crash,
            horizon: horizon + 30_000,
            trace: std::env::var_os("SWAP_TRACE").is_some(),
            p,
        };
        world.start(secret);
        world
    }

    fn start(&mut self, secret: EscrowSecret) {
        let now = self.party_now(Who::Payer);
        let q = &self.quote.quote;
        let config = PayerConfig {
            quote: self.quote.clone(),
            want: Want {
                asset: q.asset.clone(),
                network_a: q.network_a,
                network_b: q.network_b,
            },
            account: self.parties[0].account,
            amount: Amount::from_microcash(self.p.amount),
            timing: self.timing,
            secret,
        };
        let actions = match self.p.payer {
            PayerKind::Greedy { cut, lead } => {
                let mut greedy = Greedy {
                    cut,
                    lead,
                    account: config.account,
                    quote: config.quote,
                    secret,
                    amount: self.p.amount,
                    terms: None,
                    escrow_a: None,
                };
                let actions = greedy.start(self.now, self.p.skew_a);
                self.parties[0].saga = Saga::Greedy(Box::new(greedy));
                actions
            }
            _ => match Payer::new(config, now) {
                Ok((payer, actions)) => {
                    self.parties[0].saga = Saga::Payer(Box::new(payer));
                    actions
                }
                Err(error) => panic!("the payer refused the quote: {error}"),
            },
        };
        self.perform_all(Who::Payer, actions);
        for who in [Who::Payer, Who::Maker] {
            let at = self.now + self.rng.upto(self.p.poll);
            self.schedule(at, Ev::Poll { who, inc: 0 });
        }
        for (who, offline) in [
            (Who::Payer, self.p.payer_offline),
            (Who::Maker, self.p.maker_offline),
        ] {
            if let Some((start, len)) = offline {
                self.schedule(T0 + start, Ev::Offline { who, len });
            }
        }
    }

    fn party(&mut self, who: Who) -> &mut Party {
        &mut self.parties[who as usize]
    }

    fn party_now(&self, who: Who) -> u64 {
        (self.now as i64 + self.parties[who as usize].clock_err) as u64
    }

    fn ledger(&mut self, net: Net) -> &mut Ledger {
        match net {
            Net::A => &mut self.a,
            Net::B => &mut self.b,
        }
    }

    fn net(&self, id: &NetworkId) -> Net {
        if *id == self.a.id { Net::A } else { Net::B }
    }

    fn schedule(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.insert((at.max(self.now), self.seq), ev);
    }

    fn deliver_later(&mut self, who: Who, event: Event) {
        let inc = self.parties[who as usize].inc;
        let at = self.now + self.rng.upto(self.p.event_delay);
        self.schedule(at, Ev::Deliver { who, inc, event });
    }

    /// Runs to the horizon, checking conservation after every step.
    pub fn run(&mut self) {
        while let Some(((at, _), ev)) = self.queue.pop_first() {
            if at > self.horizon {
                break;
            }
            self.now = at;
            self.process(ev);
            self.a.assert_conserved();
            self.b.assert_conserved();
        }
    }

    fn process(&mut self, ev: Ev) {
        match ev {
            Ev::Deliver { who, inc, event } => {
                if self.parties[who as usize].up && self.parties[who as usize].inc == inc {
                    self.handle(who, event);
                }
            }
            Ev::Msg { to, msg } => self.on_message(to, msg),
            Ev::Vote { net, validator, op } => self.vote(net, validator, op),
            Ev::Report { who, inc, net, op } => {
                let event = self.report(net, op);
                if self.parties[who as usize].inc == inc {
                    self.deliver_later(who, event);
                }
            }
            Ev::LockEval {
                who,
                inc,
                net,
                terms,
            } => {
                let (account, now) = (self.parties[who as usize].account, self.now);
                let network = self.ledger(net).id;
                let event = match self.ledger(net).lock(account, &terms, now) {
                    Ok((escrow, lock)) => Event::Locked {
                        network,
                        escrow,
                        lock,
                    },
                    Err(reason) => Event::LockRefused { network, reason },
                };
                if self.parties[who as usize].inc == inc {
                    self.deliver_later(who, event);
                }
            }
            Ev::Poll { who, inc } => self.poll(who, inc),
            Ev::Wake { who, inc } => {
                if self.parties[who as usize].up && self.parties[who as usize].inc == inc {
                    self.handle(who, Event::Tick);
                }
            }
            Ev::Restart { who } => self.restart(who),
            Ev::Offline { who, len } => {
                if self.parties[who as usize].up {
                    let len = match who {
                        // Within the maker's downtime budget, unless notices claim for it.
                        Who::Maker if self.p.notice_delay.is_none() => len.min(
                            self.p
                                .maker_downtime
                                .saturating_sub(self.parties[1].downtime),
                        ),
                        _ => len,
                    };
                    self.crash(who, len);
                }
            }
        }
    }

    fn handle(&mut self, who: Who, event: Event) {
        let now = self.party_now(who);
        if self.trace && event != Event::Tick {
            println!("{} {who:?} <- {event:?}", self.now - T0);
        }
        let actions = match &mut self.party(who).saga {
            Saga::None => return,
            Saga::Payer(payer) => payer.handle(event, now),
            Saga::Maker(maker) => maker.handle(event, now),
            Saga::Greedy(greedy) => {
                greedy.on_event(&event);
                return;
            }
        };
        self.perform_all(who, actions);
    }

    /// Performs `actions` in order, unless the party crashes part-way (after any step, with
    /// any prefix of its actions done).
    fn perform_all(&mut self, who: Who, actions: Vec<Action>) {
        let party = &mut self.parties[who as usize];
        party.calls += 1;
        let calls = party.calls;
        let real = matches!(party.saga, Saga::Payer(_) | Saga::Maker(_));
        let mut crash_after = None;
        if let Some((forced, call, prefix)) = self.forced_crash
            && forced == who
            && call == calls
        {
            crash_after = Some(prefix.min(actions.len()));
        } else if real
            && party.crashes < self.p.max_crashes
            && self.rng.chance(self.p.crash_per_mille)
        {
            crash_after = Some(self.rng.upto(actions.len() as u64) as usize);
        }
        for (done, action) in actions.into_iter().enumerate() {
            if crash_after == Some(done) {
                break;
            }
            self.perform(who, action);
        }
        if crash_after.is_some() {
            let len = self.downtime(who);
            self.crash(who, len);
        }
    }

    /// How long a crash keeps the party down: the maker's within what its timing allows
    /// (unless the notices claim for it), the payer's up to three seconds.
    fn downtime(&mut self, who: Who) -> u64 {
        let budget = match who {
            Who::Maker if self.p.notice_delay.is_none() => self
                .p
                .maker_downtime
                .saturating_sub(self.parties[1].downtime),
            _ => 3_000,
        };
        self.rng.upto(budget)
    }

    fn crash(&mut self, who: Who, len: u64) {
        let party = self.party(who);
        party.up = false;
        party.saga = Saga::None;
        party.inc += 1;
        party.crashes += 1;
        party.downtime += len;
        let at = self.now + len;
        self.schedule(at, Ev::Restart { who });
    }

    fn restart(&mut self, who: Who) {
        let now = self.party_now(who);
        let party = self.party(who);
        party.up = true;
        party.inc += 1;
        party.subs.clear();
        party.seen.clear();
        let inc = party.inc;
        let actions = match (who, party.journal.as_deref()) {
            (_, None) => Vec::new(),
            (Who::Payer, Some(json)) => match serde_json::from_str::<PayerState>(json) {
                Ok(state) => {
                    let (payer, actions) = Payer::resume(state, now);
                    party.saga = Saga::Payer(Box::new(payer));
                    actions
                }
                Err(error) => panic!("the payer's journal does not read back: {error}"),
            },
            (Who::Maker, Some(json)) => match serde_json::from_str::<MakerState>(json) {
                Ok(state) => {
                    let (maker, actions) = Maker::resume(state, now);
                    party.saga = Saga::Maker(Box::new(maker));
                    actions
                }
                Err(error) => panic!("the maker's journal does not read back: {error}"),
            },
        };
        self.perform_all(who, actions);
        let at = self.now;
        self.schedule(at, Ev::Poll { who, inc });
    }

    fn perform(&mut self, who: Who, action: Action) {
        if self.trace && !matches!(action, Action::Journal | Action::WakeAt(_)) {
            println!("{} {who:?} -> {action:?}", self.now - T0);
        }
        match action {
            Action::Journal => {
                let json = match &self.party(who).saga {
                    Saga::Payer(payer) => serde_json::to_string(&payer.snapshot()),
                    Saga::Maker(maker) => serde_json::to_string(&maker.snapshot()),
                    _ => return,
                };
                self.party(who).journal = Some(json.unwrap_or_else(|e| panic!("journal: {e}")));
            }
            Action::Lock { network, terms } => {
                if who == Who::Maker {
                    if self.p.maker == MakerKind::NeverLocks {
                        return;
                    }
                    let key = (terms.deadline_ms, terms.amount.microcash());
                    let wire = terms.counterpart.escrow;
                    self.maker_locks.entry(wire).or_default().insert(key);
                }
                let (net, inc) = (self.net(&network), self.party(who).inc);
                let at = self.now + self.rng.upto(self.p.delivery);
                self.schedule(
                    at,
                    Ev::LockEval {
                        who,
                        inc,
                        net,
                        terms,
                    },
                );
            }
            Action::Claim {
                network,
                escrow,
                secret,
            } => {
                if who == Who::Payer && self.p.payer == PayerKind::NeverClaims {
                    return;
                }
                self.send_op(who, network, Op::Claim(escrow, secret));
            }
            Action::Refund { network, escrow } => self.send_op(who, network, Op::Refund(escrow)),
            Action::Watch { network, target } => {
                let net = self.net(&network);
                self.party(who).subs.insert((net, target));
            }
            Action::Send(msg) => {
                if !self.rng.chance(self.p.loss_per_mille) {
                    let to = if who == Who::Payer {
                        Who::Maker
                    } else {
                        Who::Payer
                    };
                    let at = self.now + self.rng.upto(self.p.event_delay);
                    self.schedule(at, Ev::Msg { to, msg });
                }
            }
            Action::WakeAt(at) => {
                let inc = self.party(who).inc;
                let true_at = (at as i64 - self.parties[who as usize].clock_err) as u64;
                self.schedule(true_at, Ev::Wake { who, inc });
            }
            Action::Done(outcome) => self.party(who).outcome = Some(outcome),
        }
    }

    fn on_message(&mut self, to: Who, msg: Message) {
        if !self.parties[to as usize].up {
            return;
        }
        let creates = matches!(self.parties[to as usize].saga, Saga::None)
            && self.parties[to as usize].journal.is_none();
        match (to, &msg) {
            (Who::Maker, Message::PayerLocked { quote, escrow })
                if creates && *quote == self.quote.hash() =>
            {
                let mut config = MakerConfig::new(self.quote.clone(), self.timing);
                config.skip_delta_check = self.p.maker == MakerKind::SkipsDeltaCheck;
                let now = self.party_now(Who::Maker);
                match Maker::new(config, *escrow, now) {
                    Ok((maker, actions)) => {
                        self.party(Who::Maker).saga = Saga::Maker(Box::new(maker));
                        self.perform_all(Who::Maker, actions);
                    }
                    Err(error) => panic!("the maker refused its own quote: {error}"),
                }
            }
            _ => self.handle(to, Event::Message(msg)),
        }
    }

    /// How the escrow under the wire's hash lock stands on `net`, if there is one.
    pub fn standing(&self, net: Net) -> Option<Standing> {
        let ledger = if net == Net::A { &self.a } else { &self.b };
        ledger.by_hash(&self.hash_lock).map(|(_, e)| e.standing)
    }

    pub fn outcome(&self, who: Who) -> Option<&Outcome> {
        self.parties[who as usize].outcome.as_ref()
    }

    pub fn calls(&self, who: Who) -> u64 {
        self.parties[who as usize].calls
    }

    pub fn journaled(&self, who: Who) -> bool {
        self.parties[who as usize].journal.is_some()
    }

    pub fn crashes(&self, who: Who) -> u32 {
        self.parties[who as usize].crashes
    }

    pub fn account(&self, who: Who) -> AccountId {
        self.parties[who as usize].account
    }
}
