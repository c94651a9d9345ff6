//! The payer's side of a wire (Alice, DESIGN §8): collect the makers' quotes in the topic,
//! take the cheapest valid one, and drive the payer saga to its end — lock on A, see the
//! maker's lock on B, claim it — or to the refund. Every step is journaled in `wires/`
//! (the secret first, in `secrets/`), so `resume` picks a wire up after any crash, and the
//! finished record is the **wire receipt**: the signed quote and the certificates.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tally_core::{
    AccountId, Amount, Digest, EscrowId, EscrowLock, NetworkContract, NetworkId, Order, SecretKey,
};
use tally_swap::{
    Event, Message, Outcome, Payer, PayerConfig, PayerPhase, PayerState, SignedQuote, Standing,
    Target, TopicLine, Want, topic,
};

use super::exec::{Reach, Side, Sides};
use super::runner::{Driven, Runner};
use super::topic::{Heard, TopicRoom};
use super::{Bounds, Proof, WireError, keep_once, read_journal, write_journal};
use crate::Wallet;
use crate::escrow::{new_secret, unix_ms};

/// The asset a Tally network's wire moves: its cash.
pub const ASSET: &str = "cash";

/// The most quotes a payer keeps while listening (one per maker): a topic flooded with
/// makers costs it no more.
const MAX_QUOTES: usize = 64;

/// How often the driver looks at the escrows while nothing else happens.
const POLL: Duration = Duration::from_millis(250);

/// How long, after its own claim on B, the payer waits to see the maker's claim on A (for
/// the receipt; the wire is complete without it), and how often it looks meanwhile.
const SEE_MAKER_CLAIM: Duration = Duration::from_secs(10);
const SEE_POLL: Duration = Duration::from_millis(20);

/// A wire as the wallet keeps it in `wires/<id>.json`: what was asked, the saga's state,
/// the proofs gathered (certificates, or transactions mined on a proof-of-work side), and
/// how it ended. Journaled at every step.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WireRecord {
    /// The hash lock: one per wire.
    pub id: Digest,
    pub started_ms: u64,
    pub relay: String,
    pub contract_a: NetworkContract,
    pub contract_b: NetworkContract,
    pub state: PayerState,
    /// The payer's lock on A, the maker's lock on B, the claim on B or the refund on A.
    #[serde(alias = "certificates")]
    pub proofs: Vec<Proof>,
    pub outcome: Option<Outcome>,
}

/// The wire receipt: the signed quote and the proofs of what happened, each checkable
/// against its network: a certificate against the contract's committee, a proof-of-work
/// transaction against the network's chain.
#[derive(Clone, Debug, Serialize)]
pub struct WireReceipt {
    pub id: Digest,
    pub quote: SignedQuote,
    pub amount: Amount,
    pub fee: Option<Amount>,
    pub lock_a: Option<Proof>,
    pub lock_b: Option<Proof>,
    pub claim_b: Option<Proof>,
    pub refund_a: Option<Proof>,
    pub outcome: Option<Outcome>,
}

impl WireRecord {
    /// The receipt this record makes.
    pub fn receipt(&self) -> WireReceipt {
        let config = self.state.config();
        let find = |pick: &dyn Fn(&Order) -> bool| {
            self.proofs
                .iter()
                .find(|proof| pick(proof.order()))
                .cloned()
        };
        let payer = config.account;
        let maker_b = config.quote.quote.maker_b;
        WireReceipt {
            id: self.id,
            quote: config.quote.clone(),
            amount: config.amount,
            fee: config.quote.quote.fee_for(config.amount),
            lock_a: find(&|order| matches!(order, Order::EscrowLock(lock) if lock.payer == payer)),
            lock_b: find(
                &|order| matches!(order, Order::EscrowLock(lock) if lock.payer == maker_b),
            ),
            claim_b: find(&|order| matches!(order, Order::EscrowClaim(_))),
            refund_a: find(&|order| matches!(order, Order::EscrowRefund(_))),
            outcome: self.outcome.clone(),
        }
    }

    /// How it ended (or that it runs), in words.
    pub fn outcome_words(&self) -> String {
        match &self.outcome {
            None => "running".into(),
            Some(Outcome::Completed) => "completed".into(),
            Some(Outcome::Refunded) => "refunded".into(),
            Some(Outcome::Aborted(why)) => format!("aborted: {why}"),
            Some(Outcome::Lost(why)) => format!("lost: {why}"),
        }
    }

    /// Whether the wire still needs driving.
    pub fn is_open(&self) -> bool {
        self.outcome.is_none()
    }
}

/// A step of the wire as it happens (the seed's steps), for the caller to show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WireStep {
    /// The quote taken: its maker, the fee, how many quotes were heard.
    Quote {
        maker: AccountId,
        fee: Amount,
        heard: usize,
    },
    /// The payer's lock on A is certified.
    LockedA { escrow: EscrowId, amount: Amount },
    /// The maker's lock on B is seen, valid.
    MakerLockedB { escrow: EscrowId, amount: Amount },
    /// A line in the topic says the maker declined (anyone can send one: the wire goes on
    /// by what the networks say, to a refund after the deadline unless the maker locks).
    Declined(String),
    /// The payer's claim on B is certified: the money is on B.
    ClaimedB { escrow: EscrowId },
    /// The maker's claim on A is seen: the wire is settled on both sides.
    MakerClaimedA { escrow: EscrowId },
    /// The payer's lock on A came back.
    RefundedA { escrow: EscrowId },
    /// Waiting (for the maker, or for the refund time), and why.
    Waiting(String),
}

impl std::fmt::Display for WireStep {
    /// The step as a person reads it, numbered as the seed numbers the wire's steps.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireStep::Quote { maker, fee, heard } => write!(
                f,
                "1. quote: maker {} for a fee of {fee} cash ({heard} quote{} heard)",
                maker.short(),
                if *heard == 1 { "" } else { "s" }
            ),
            WireStep::LockedA { escrow, amount } => write!(
                f,
                "2. locked {amount} cash on A for the maker (escrow {})",
                escrow.short()
            ),
            WireStep::MakerLockedB { escrow, amount } => write!(
                f,
                "3. the maker locked {amount} cash on B for us (escrow {})",
                escrow.short()
            ),
            WireStep::ClaimedB { .. } => f.write_str("4. claimed on B: the money is ours there"),
            WireStep::MakerClaimedA { .. } => f.write_str(
                "5. the maker claimed on A with the revealed secret: settled on both sides",
            ),
            // Anyone can send this line: it is shown, and the wire goes on by what A and B
            // say.
            WireStep::Declined(reason) => write!(
                f,
                "   … a line in the topic says the maker declined ({reason}); the wire goes on: a refund after the deadline unless the maker locks after all"
            ),
            WireStep::RefundedA { .. } => f.write_str("refunded on A: the money is back"),
            WireStep::Waiting(why) => write!(f, "   … {why}"),
        }
    }
}

/// What to wire.
pub struct WireRequest {
    pub key: SecretKey,
    /// Network A (pays), reached through its validators or miners.
    pub client_a: Reach,
    /// Network B (receives).
    pub client_b: Reach,
    pub relay: String,
    /// What arrives on B.
    pub amount: Amount,
    /// The most fee the payer accepts.
    pub max_fee: Option<Amount>,
    pub bounds: Bounds,
    /// How long to listen for quotes.
    pub listen: Duration,
    /// Quotes heard already (a payer wiring again soon): taken from instead of listening.
    pub known_quotes: Vec<SignedQuote>,
}

/// The payer saga with its record, journaled in `wires/`.
struct PayerWire {
    payer: Payer,
    record: WireRecord,
    path: PathBuf,
    network_b: NetworkId,
    /// The maker's lock the saga accepted, once seen (its certificate joins the receipt).
    maker_lock: Option<EscrowLock>,
}

impl Driven for PayerWire {
    fn handle(&mut self, event: Event, now: u64) -> Vec<tally_swap::Action> {
        let seen = match &event {
            Event::Seen {
                network,
                escrow,
                lock,
                ..
            } if *network == self.network_b => Some((*escrow, *lock)),
            _ => None,
        };
        let actions = self.payer.handle(event, now);
        self.record.state = self.payer.snapshot();
        if let Some((escrow, lock)) = seen
            && self.record.state.escrow_b() == Some(escrow)
        {
            self.maker_lock = Some(lock);
        }
        actions
    }

    fn journal(&mut self) -> Result<(), WireError> {
        self.record.state = self.payer.snapshot();
        self.record.outcome = self.payer.outcome().cloned();
        write_journal(&self.path, &self.record)
    }

    fn signer(&self, _network: &NetworkId) -> Option<AccountId> {
        Some(self.record.state.config().account)
    }

    fn keep(&mut self, proof: Proof) {
        keep_once(&mut self.record.proofs, proof);
    }
}

/// Listens in the topic of `want` for `listen` (makers announce at once when someone
/// joins) and returns the quotes heard, newest per maker.
pub async fn collect_quotes(relay: &str, want: &Want, listen: Duration) -> Vec<SignedQuote> {
    let mut room = TopicRoom::new(relay, &topic(&want.asset, &want.network_a, &want.network_b));
    if let Err(error) = room.join().await {
        tracing::warn!(%relay, %error, "cannot join the wire topic");
        return Vec::new();
    }
    let until = Instant::now() + listen;
    let mut quotes: Vec<SignedQuote> = Vec::new();
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        if let Heard::Line(TopicLine::Quote(quote)) = room.next(left).await
            // Anyone may send anything to the topic: a quote its maker did not sign never
            // replaces one it did.
            && quote.verify()
        {
            // The newest of each of a maker's quotes (one per account it pays from on B).
            quotes.retain(|known| {
                (known.quote.maker, known.quote.maker_b) != (quote.quote.maker, quote.quote.maker_b)
            });
            if quotes.len() < MAX_QUOTES {
                quotes.push(*quote);
            }
        }
    }
    quotes
}

/// The cheapest quote the payer may take (see [`SignedQuote::check`]) whose fee is within
/// `max_fee` (any one of those of the same fee); when none, why each was refused.
pub fn choose(
    quotes: &[SignedQuote],
    want: &Want,
    payer: &AccountId,
    amount: Amount,
    timing: &tally_swap::Timing,
    max_fee: Option<Amount>,
    now: u64,
) -> Result<SignedQuote, WireError> {
    let mut refused = Vec::new();
    let mut best: Vec<(Amount, &SignedQuote)> = Vec::new();
    for quote in quotes {
        let maker = quote.quote.maker.short();
        if let Err(error) = quote.check(want, payer, amount, timing, now) {
            refused.push(format!("{maker}: {error}"));
            continue;
        }
        let Some(fee) = quote.quote.fee_for(amount) else {
            refused.push(format!("{maker}: the fee overflows"));
            continue;
        };
        if max_fee.is_some_and(|most| fee > most) {
            refused.push(format!("{maker}: fee {fee} is above the most accepted"));
            continue;
        }
        match best.first() {
            Some((known, _)) if fee > *known => {}
            Some((known, _)) if fee == *known => best.push((fee, quote)),
            _ => best = vec![(fee, quote)],
        }
    }
    // Among quotes of the same fee, any: payers spread over a maker's accounts.
    let pick = (!best.is_empty()).then(|| rand::random::<usize>() % best.len());
    match pick.and_then(|i| best.get(i)) {
        Some((_, quote)) => Ok((*quote).clone()),
        None if quotes.is_empty() => Err(WireError::Refused(
            "no maker announced a quote in the topic".into(),
        )),
        None => Err(WireError::Refused(format!(
            "no quote can be taken: {}",
            refused.join("; ")
        ))),
    }
}

/// Runs a wire from A to B to its end: quotes, the lock on A, the maker's lock on B, the
/// claim on B (or the refund on A), showing each step through `on_step` with when it
/// happened.
pub async fn wire(
    wallet: &Wallet,
    request: WireRequest,
    mut on_step: impl FnMut(WireStep, Instant),
) -> Result<WireRecord, WireError> {
    let contract_a = request.client_a.contract().clone();
    let contract_b = request.client_b.contract().clone();
    let timing = request.bounds.timing(&contract_a, &contract_b)?;
    let want = Want {
        asset: ASSET.into(),
        network_a: request.client_a.network(),
        network_b: request.client_b.network(),
    };
    let account = request.key.account();
    let quotes = if request.known_quotes.is_empty() {
        collect_quotes(&request.relay, &want, request.listen).await
    } else {
        request.known_quotes
    };
    let quote = choose(
        &quotes,
        &want,
        &account,
        request.amount,
        &timing,
        request.max_fee,
        unix_ms(),
    )?;
    on_step(
        WireStep::Quote {
            maker: quote.quote.maker,
            fee: quote.quote.fee_for(request.amount).unwrap_or(Amount::ZERO),
            heard: quotes.len(),
        },
        Instant::now(),
    );
    // The secret is durable before anything can lock under it.
    let secret = new_secret(wallet)?;
    let config = PayerConfig {
        quote,
        want,
        account,
        amount: request.amount,
        timing,
        secret,
    };
    let (payer, actions) =
        Payer::new(config, unix_ms()).map_err(|error| WireError::Refused(error.to_string()))?;
    let id = secret.hash_lock();
    let record = WireRecord {
        id,
        started_ms: unix_ms(),
        relay: request.relay.clone(),
        contract_a,
        contract_b,
        state: payer.snapshot(),
        proofs: Vec::new(),
        outcome: None,
    };
    let sides = sides(request.client_a, request.client_b, Some(request.key));
    let saga = PayerWire {
        payer,
        path: record_path(wallet.dir(), &id),
        network_b: want_b(&record),
        record,
        maker_lock: None,
    };
    drive(wallet, saga, actions, &sides, &mut on_step).await
}

/// Picks up wire `id` (a prefix will do) where its journal left it; on a proof-of-work
/// side, orders count at `bounds`'s confirmations.
pub async fn resume(
    wallet: &Wallet,
    id: &str,
    key: SecretKey,
    timeout: Duration,
    bounds: &Bounds,
    mut on_step: impl FnMut(WireStep, Instant),
) -> Result<WireRecord, WireError> {
    let (path, record) = find(wallet, id)?;
    if !record.is_open() {
        return Ok(record);
    }
    let client_a = Reach::connect(&record.contract_a, timeout, bounds).await?;
    let client_b = Reach::connect(&record.contract_b, timeout, bounds).await?;
    let sides = sides(client_a, client_b, Some(key));
    let (payer, actions) = Payer::resume(record.state.clone(), unix_ms());
    let saga = PayerWire {
        payer,
        path,
        network_b: want_b(&record),
        record,
        maker_lock: None,
    };
    drive(wallet, saga, actions, &sides, &mut on_step).await
}

/// Every wire this wallet keeps, newest first.
pub fn list(wallet: &Wallet) -> Result<Vec<WireRecord>, WireError> {
    let dir = wallet.dir().join("wires");
    let mut records = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(records);
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|ext| ext == "json") {
            records.push(read_journal(&path)?);
        }
    }
    records.sort_by_key(|record| std::cmp::Reverse(record.started_ms));
    Ok(records)
}

/// The wire whose id starts with `id`, and where it is kept.
pub fn find(wallet: &Wallet, id: &str) -> Result<(PathBuf, WireRecord), WireError> {
    let id = id.to_ascii_lowercase();
    let mut found = list(wallet)?
        .into_iter()
        .filter(|record| record.id.to_hex().starts_with(&id));
    match (found.next(), found.next()) {
        (Some(record), None) => Ok((record_path(wallet.dir(), &record.id), record)),
        (Some(_), Some(_)) => Err(WireError::Refused(format!(
            "{id} names more than one wire; give more digits"
        ))),
        (None, _) => Err(WireError::Unknown(id)),
    }
}

fn want_b(record: &WireRecord) -> NetworkId {
    record.contract_b.id()
}

fn sides(client_a: Reach, client_b: Reach, key: Option<SecretKey>) -> Sides {
    let mut sides = Sides::default();
    sides.add(Side {
        reach: client_a,
        keys: key.into_iter().collect(),
    });
    // Claims are signed by no key: the payer needs none on B.
    sides.add(Side {
        reach: client_b,
        keys: Vec::new(),
    });
    sides
}

async fn drive(
    wallet: &Wallet,
    saga: PayerWire,
    actions: Vec<tally_swap::Action>,
    sides: &Sides,
    on_step: &mut impl FnMut(WireStep, Instant),
) -> Result<WireRecord, WireError> {
    let network_a = saga.record.contract_a.id();
    let network_b = saga.network_b;
    let quote = saga.record.state.config().quote.clone();
    let mut room = TopicRoom::new(&saga.record.relay, &quote.quote.topic());
    if let Err(error) = room.join().await {
        tracing::warn!(relay = %saga.record.relay, %error, "cannot join the wire topic yet");
    }
    let mut runner = Runner::start(saga, actions, wallet, sides).await?;
    let mut shown = 0;
    let mut last_wait = String::new();
    let mut keepalive = Instant::now();
    loop {
        for message in std::mem::take(&mut runner.outbox) {
            room.send(&TopicLine::Wire(message)).await;
        }
        for (at, event) in &runner.log[shown..] {
            if let Some(step) = step_of(event, &runner.saga, network_a, network_b) {
                on_step(step, *at);
            }
        }
        shown = runner.log.len();
        if runner.done.is_some() {
            break;
        }
        let wait = waiting(runner.saga.payer.phase());
        if wait != last_wait && !wait.is_empty() {
            on_step(WireStep::Waiting(wait.clone()), Instant::now());
            last_wait = wait;
        }
        if let Heard::Line(TopicLine::Wire(message)) = room.next(POLL).await
            && concerns(&message, runner.saga.record.state.escrow_a())
        {
            runner.feed(Event::Message(message), wallet, sides).await?;
        }
        runner.poll(wallet, sides).await?;
        if keepalive.elapsed() > Duration::from_secs(10) {
            room.keepalive().await;
            keepalive = Instant::now();
        }
    }
    let mut saga = runner.saga;
    if let Some(lock) = saga.maker_lock
        && let Some(proof) = sides.lock_proof(&network_b, &lock).await
    {
        saga.keep(proof);
    }
    saga.journal()?;
    if saga.record.outcome == Some(Outcome::Completed)
        && let Some(escrow) = saga.record.state.escrow_a()
    {
        let until = Instant::now() + SEE_MAKER_CLAIM;
        while Instant::now() < until {
            let seen = sides.observe(network_a, Target::Escrow(escrow)).await;
            if seen.iter().any(|event| {
                matches!(
                    event,
                    Event::Seen {
                        standing: Standing::Claimed,
                        ..
                    }
                )
            }) {
                on_step(WireStep::MakerClaimedA { escrow }, Instant::now());
                break;
            }
            tokio::time::sleep(SEE_POLL).await;
        }
    }
    Ok(saga.record)
}

/// Whether a message in the topic is for this payer's escrow.
fn concerns(message: &Message, escrow_a: Option<EscrowId>) -> bool {
    match message {
        Message::MakerLocked { escrow_a: id, .. } | Message::Declined { escrow_a: id, .. } => {
            Some(*id) == escrow_a
        }
        Message::PayerLocked { .. } => false,
    }
}

fn waiting(phase: &PayerPhase) -> String {
    match phase {
        PayerPhase::AwaitingMaker => "waiting for the maker's lock on B".into(),
        PayerPhase::AwaitingRefund => {
            "no valid maker lock in time: waiting for the deadline to refund on A".into()
        }
        _ => String::new(),
    }
}

fn step_of(
    event: &Event,
    saga: &PayerWire,
    network_a: NetworkId,
    network_b: NetworkId,
) -> Option<WireStep> {
    let state = &saga.record.state;
    match event {
        Event::Locked {
            network,
            escrow,
            lock,
        } if *network == network_a => Some(WireStep::LockedA {
            escrow: *escrow,
            amount: lock.amount,
        }),
        Event::Seen {
            network,
            escrow,
            lock,
            standing: Standing::Open,
        } if *network == network_b && state.escrow_b() == Some(*escrow) => {
            Some(WireStep::MakerLockedB {
                escrow: *escrow,
                amount: lock.amount,
            })
        }
        Event::Claimed { network, escrow } if *network == network_b => {
            Some(WireStep::ClaimedB { escrow: *escrow })
        }
        Event::Refunded { network, escrow } if *network == network_a => {
            Some(WireStep::RefundedA { escrow: *escrow })
        }
        Event::Message(Message::Declined { reason, .. }) => {
            Some(WireStep::Declined(reason.clone()))
        }
        _ => None,
    }
}

fn record_path(dir: &Path, id: &Digest) -> PathBuf {
    dir.join("wires").join(format!("{id}.json"))
}
