//! The maker's loop: listen in each pair's topic, announce quotes, start a saga for each
//! payer lock that follows one of them, and drive every open saga; publish the status.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use tally_core::{AccountId, Amount, EscrowId, NetworkId, SecretKey};
use tally_swap::{
    Event, Maker, MakerConfig, Message, Outcome, Quote, SignedQuote, Target, Timing, TopicLine,
    min_delta, min_lock_window, topic,
};
use tally_wallet::escrow::unix_ms;

use tally_wallet::Wallet;
use tally_wallet::wire::payer::ASSET;
use tally_wallet::wire::{Heard, Reach, Runner, Side, Sides, TopicRoom};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::book::QuoteBook;
use crate::journal::{self, MakerRecord, MakerWire};
use crate::{MakerError, MakerSettings, MakerStatus, PairStatus};

/// How long one pass of the loop listens in the topics before looking at the escrows.
const POLL: Duration = Duration::from_millis(200);

/// How long the first read of a pass waits while wires run: they are polled after it.
const BUSY_LISTEN: Duration = Duration::from_millis(20);

/// How often the open wires look at their escrows.
const POLL_WIRES: Duration = Duration::from_millis(100);

/// The most new notices checked in one pass (a query to every validator of A each): a
/// flood of made-up notices costs the validators no more than this per pass, and a real
/// payer's notice comes again.
const MAX_CHECKS_PER_PASS: usize = 32;

/// The most topic lines handled in one pass before the wires are polled.
const MAX_LINES_PER_PASS: usize = 256;

/// How often the balances on each side are asked for the status.
const LIQUIDITY_EVERY: Duration = Duration::from_secs(5);

/// Announcing for someone who just joined waits at least this long after the last
/// announcement (each is signed and made durable): a topic that many join costs no more.
const ANNOUNCE_AT_MOST_EVERY: Duration = Duration::from_secs(1);

/// The most wires answered at once: a notice beyond it waits for the payer's next one.
const MAX_OPEN_WIRES: usize = 256;

/// A payer's notice of a lock under one of the maker's quotes, not yet checked.
struct Notice {
    escrow: EscrowId,
    quote: SignedQuote,
    timing: Timing,
}

/// One pair A → B with its topic room.
struct Pair {
    a: NetworkId,
    b: NetworkId,
    name_a: String,
    name_b: String,
    topic: String,
    timing: Timing,
    delta_ms: u64,
    room: TopicRoom,
    announced: Option<Instant>,
    announce_now: bool,
    /// The quotes announced last, one per account the maker pays from on B.
    quotes: Vec<SignedQuote>,
    liquidity_a: Option<i128>,
    /// Each of those accounts' balance on B.
    liquidity_b: Vec<Option<i128>>,
}

/// Runs the maker until `cancel`: resumes every open wire from its journal, then serves.
/// The status is published on `status` after every pass.
pub async fn run(
    settings: MakerSettings,
    status: watch::Sender<MakerStatus>,
    cancel: CancellationToken,
) -> Result<(), MakerError> {
    let wallet = Wallet::open(&settings.wallet_dir)?;
    let key = wallet.find(settings.account.as_deref())?.secret_key()?;
    let payers_b = accounts_b(&wallet, &key, settings.accounts)?;
    if settings.pairs.is_empty() {
        return Err(MakerError::Settings("no pair of networks to trade".into()));
    }
    if settings.min.is_zero() || settings.min > settings.max {
        return Err(MakerError::Settings(format!(
            "the amount range {}..={} is empty",
            settings.min, settings.max
        )));
    }
    let mut sides = Sides::default();
    let mut pairs = Vec::new();
    for (a, b) in &settings.pairs {
        pairs.push(pair(&settings, a, b)?);
        for contract in [a, b] {
            sides.add(Side {
                reach: Reach::connect(contract, settings.timeout, &settings.bounds).await?,
                keys: payers_b.clone(),
            });
        }
    }
    let dir = wallet.dir().join("maker");
    let mut book = QuoteBook::load(&dir)?;
    let mut open: HashMap<EscrowId, Runner<MakerWire>> = HashMap::new();
    let mut finished = History::default();
    for (path, record) in journal::load_all(&dir)? {
        let escrow = record.state.escrow_a();
        if record.outcome.is_some() {
            finished.add(&record);
            continue;
        }
        tracing::info!(escrow = %escrow, "resuming a wire from its journal");
        let (maker, actions) = Maker::resume(record.state.clone(), unix_ms());
        let saga = MakerWire {
            maker,
            record,
            path,
            payer: None,
        };
        open.insert(escrow, Runner::start(saga, actions, &wallet, &sides).await?);
    }
    let mut liquidity_at: Option<Instant> = None;
    let mut polled: Option<Instant> = None;
    while !cancel.is_cancelled() {
        if liquidity_at.is_none_or(|at| at.elapsed() >= LIQUIDITY_EVERY) {
            liquidity_at = Some(Instant::now());
            for pair in &mut pairs {
                pair.liquidity_a = liquidity(&sides, &pair.a, &key).await;
                pair.liquidity_b = Vec::with_capacity(payers_b.len());
                for payer in &payers_b {
                    pair.liquidity_b
                        .push(liquidity(&sides, &pair.b, payer).await);
                }
            }
        }
        let listen = POLL / u32::try_from(pairs.len()).unwrap_or(1).max(1);
        let mut fresh: Vec<Notice> = Vec::new();
        for pair in &mut pairs {
            let since = pair.announced.map(|at| at.elapsed());
            if pair.room.joined()
                && since.is_none_or(|since| {
                    since >= settings.announce_every
                        || (pair.announce_now && since >= ANNOUNCE_AT_MOST_EVERY)
                })
            {
                announce(pair, &settings, (&key, &payers_b), &mut book).await?;
            }
            // Every line waiting, then on: the first read waits (less while wires run).
            let mut wait = if open.is_empty() { listen } else { BUSY_LISTEN };
            for _ in 0..MAX_LINES_PER_PASS {
                let heard = pair.room.next(wait).await;
                wait = Duration::ZERO;
                match heard {
                    Heard::Quiet => break,
                    Heard::Arrived => pair.announce_now = true,
                    Heard::Line(TopicLine::Wire(Message::PayerLocked { quote, escrow })) => {
                        if let Some(runner) = open.get_mut(&escrow) {
                            runner.push(Event::Message(Message::PayerLocked { quote, escrow }));
                        } else if !finished.contains(&escrow)
                            && fresh.len() < MAX_CHECKS_PER_PASS
                            && !fresh.iter().any(|notice: &Notice| notice.escrow == escrow)
                            && let Some(signed) = book.get(&quote)
                            && signed.quote.network_a == pair.a
                            && signed.quote.network_b == pair.b
                        {
                            fresh.push(Notice {
                                escrow,
                                quote: signed.clone(),
                                timing: pair.timing,
                            });
                        }
                    }
                    Heard::Line(_) => {}
                }
            }
        }
        // A notice is a hint: a wire (a journal, watches) only for a lock A certified, so a
        // made-up notice costs one query; the new notices' locks are checked side by side.
        let checks = futures::future::join_all(
            fresh
                .iter()
                .map(|notice| locked(&sides, notice.quote.quote.network_a, notice.escrow)),
        )
        .await;
        for (notice, check) in fresh.into_iter().zip(checks) {
            let Some((payer, seen)) = check else {
                continue;
            };
            if open.len() >= MAX_OPEN_WIRES
                || open_for(&open, &payer) >= settings.max_open_per_taker
            {
                continue;
            }
            let escrow = notice.escrow;
            match start(&wallet, &sides, &dir, notice.quote, notice.timing, escrow).await? {
                Some(mut runner) => {
                    runner.saga.payer = Some(payer);
                    // What the check saw is what the saga waits for: it locks on B at
                    // once, not at the next look.
                    runner.push(seen);
                    open.insert(escrow, runner);
                }
                None => {
                    tracing::warn!(%escrow, "a lock under a quote this maker no longer supports");
                }
            }
        }
        // Every open wire steps at once (their requests interleave): what waits for it, what
        // is due, and every POLL_WIRES a look at its escrows (each look asks every validator
        // about every watch).
        let look = polled.is_none_or(|at| at.elapsed() >= POLL_WIRES);
        if look {
            polled = Some(Instant::now());
        }
        let steps = futures::future::join_all(
            open.values_mut()
                .map(|runner| runner.step(&wallet, &sides, look)),
        )
        .await;
        for step in steps {
            step?;
        }
        // Hints to the payers, in the topic of each wire's quote.
        for runner in open.values_mut() {
            let messages = std::mem::take(&mut runner.outbox);
            let topic = runner.saga.record.quote.quote.topic();
            if let Some(pair) = pairs.iter_mut().find(|pair| pair.topic == topic) {
                for message in messages {
                    pair.room.send(&TopicLine::Wire(message)).await;
                }
            }
        }
        let done: Vec<EscrowId> = open
            .iter()
            .filter(|(_, runner)| runner.done.is_some())
            .map(|(escrow, _)| *escrow)
            .collect();
        for escrow in done {
            if let Some(runner) = open.remove(&escrow) {
                tracing::info!(escrow = %escrow, outcome = ?runner.done, "wire over");
                finished.add(&runner.saga.record);
            }
        }
        status.send_replace(snapshot(&key, &pairs, &open, &finished));
    }
    Ok(())
}

/// A pair's timing and topic, refused when its quote could not be taken (a lock time
/// shorter than the claim window the rule demands).
fn pair(
    settings: &MakerSettings,
    a: &tally_core::NetworkContract,
    b: &tally_core::NetworkContract,
) -> Result<Pair, MakerError> {
    if a.id() == b.id() {
        return Err(MakerError::Settings(format!(
            "pair {}/{} names one network twice",
            a.name, b.name
        )));
    }
    let timing = settings.bounds.timing(a, b)?;
    let lock_ms = millis(settings.lock_time);
    let window = min_lock_window(&timing);
    if lock_ms < window {
        return Err(MakerError::Settings(format!(
            "a lock time of {lock_ms} ms leaves payers no claim window: at least {window} ms for {}/{}",
            a.name, b.name
        )));
    }
    let least = min_delta(&timing);
    let delta_ms = settings.delta.map_or(least, millis).max(least);
    let topic = topic(ASSET, &a.id(), &b.id());
    Ok(Pair {
        a: a.id(),
        b: b.id(),
        name_a: a.name.clone(),
        name_b: b.name.clone(),
        room: TopicRoom::new(&settings.relay, &topic),
        topic,
        timing,
        delta_ms,
        announced: None,
        announce_now: true,
        quotes: Vec::new(),
        liquidity_a: None,
        liquidity_b: Vec::new(),
    })
}

/// Signs a fresh quote for `pair` per account the maker pays from on B, keeps them, and
/// announces them. The most each offers is what its account holds on B; an account with
/// less than the least gets no quote.
async fn announce(
    pair: &mut Pair,
    settings: &MakerSettings,
    (key, payers_b): (&SecretKey, &[SecretKey]),
    book: &mut QuoteBook,
) -> Result<(), MakerError> {
    pair.announced = Some(Instant::now());
    pair.announce_now = false;
    let had = pair.quotes.len();
    pair.quotes.clear();
    let now = unix_ms();
    for (i, payer) in payers_b.iter().enumerate() {
        let held = pair
            .liquidity_b
            .get(i)
            .copied()
            .flatten()
            .and_then(|balance| u64::try_from(balance).ok())
            .map(Amount::from_microcash);
        let max = held.map_or(settings.max, |held| held.min(settings.max));
        if max < settings.min {
            continue;
        }
        let quote = Quote {
            maker: key.account(),
            asset: ASSET.into(),
            network_a: pair.a,
            network_b: pair.b,
            min_amount: settings.min,
            max_amount: max,
            fee_ppm: settings.fee_ppm,
            fee_fixed: settings.fee_fixed,
            maker_a: key.account(),
            maker_b: payer.account(),
            lock_time_ms: millis(settings.lock_time),
            delta_ms: pair.delta_ms,
            expires_ms: now.saturating_add(millis(settings.announce_every).saturating_mul(3)),
            nonce: rand::random(),
        }
        .sign(key);
        book.add(quote.clone(), now)?;
        pair.room
            .send(&TopicLine::Quote(Box::new(quote.clone())))
            .await;
        pair.quotes.push(quote);
    }
    if pair.quotes.is_empty() && had > 0 {
        tracing::warn!(b = %pair.name_b, "too little on B to quote the least amount");
    }
    Ok(())
}

/// The keys the maker pays from on B: `key` and the wallet's next `count − 1` others.
fn accounts_b(
    wallet: &Wallet,
    key: &SecretKey,
    count: usize,
) -> Result<Vec<SecretKey>, MakerError> {
    let mut keys = vec![key.clone()];
    for entry in wallet.keys() {
        if keys.len() >= count.max(1) {
            break;
        }
        if entry.account != key.account() {
            keys.push(entry.secret_key()?);
        }
    }
    if keys.len() < count {
        return Err(MakerError::Settings(format!(
            "--accounts {count}: the wallet holds only {} accounts",
            keys.len()
        )));
    }
    Ok(keys)
}

/// A saga for the payer's escrow `escrow` under `quote`, started (its journal written).
async fn start(
    wallet: &Wallet,
    sides: &Sides,
    dir: &std::path::Path,
    quote: SignedQuote,
    timing: Timing,
    escrow: EscrowId,
) -> Result<Option<Runner<MakerWire>>, MakerError> {
    let config = MakerConfig::new(quote.clone(), timing);
    let Ok((maker, actions)) = Maker::new(config, escrow, unix_ms()) else {
        return Ok(None);
    };
    tracing::info!(escrow = %escrow, "a payer locked under our quote; answering");
    let record = MakerRecord {
        started_ms: unix_ms(),
        quote,
        state: maker.snapshot(),
        proofs: Vec::new(),
        outcome: None,
    };
    let saga = MakerWire {
        maker,
        record,
        path: journal::path(dir, &escrow),
        payer: None,
    };
    Ok(Some(Runner::start(saga, actions, wallet, sides).await?))
}

/// The payer of `escrow` and the escrow as seen, if f + 1 validators of `network` report
/// it applied.
async fn locked(sides: &Sides, network: NetworkId, escrow: EscrowId) -> Option<(AccountId, Event)> {
    sides
        .observe(network, Target::Escrow(escrow))
        .await
        .into_iter()
        .find_map(|event| match event {
            Event::Seen { lock, .. } => Some((lock.payer, event)),
            _ => None,
        })
}

/// How many open wires answer `payer` (as the maker's lock on B pays it back).
fn open_for(open: &HashMap<EscrowId, Runner<MakerWire>>, payer: &AccountId) -> usize {
    open.values()
        .filter(|runner| {
            runner
                .saga
                .record
                .state
                .terms_b()
                .is_some_and(|terms| terms.payee == *payer)
                || runner.saga.payer == Some(*payer)
        })
        .count()
}

async fn liquidity(sides: &Sides, network: &NetworkId, key: &SecretKey) -> Option<i128> {
    sides.balance(network, &key.account()).await
}

/// The wires over: their ids (a payer's notice repeated later starts nothing), how they
/// ended, the fees earned, and the latest few for the status (the journals keep them all).
#[derive(Default)]
struct History {
    ids: HashSet<EscrowId>,
    completed: usize,
    refunded: usize,
    aborted: usize,
    fees: u64,
    recent: VecDeque<crate::WireSummary>,
}

/// How many finished wires the status lists.
const RECENT_WIRES: usize = 100;

impl History {
    fn add(&mut self, record: &MakerRecord) {
        let summary = record.summary();
        if !self.ids.insert(summary.escrow_a) {
            return;
        }
        match &record.outcome {
            Some(Outcome::Completed) => {
                self.completed += 1;
                self.fees += summary.fee.map_or(0, |fee| fee.microcash());
            }
            Some(Outcome::Refunded) => self.refunded += 1,
            Some(Outcome::Aborted(_) | Outcome::Lost(_)) | None => self.aborted += 1,
        }
        self.recent.push_back(summary);
        if self.recent.len() > RECENT_WIRES {
            self.recent.pop_front();
        }
    }

    fn contains(&self, escrow: &EscrowId) -> bool {
        self.ids.contains(escrow)
    }
}

fn snapshot(
    key: &SecretKey,
    pairs: &[Pair],
    open: &HashMap<EscrowId, Runner<MakerWire>>,
    finished: &History,
) -> MakerStatus {
    let mut status = MakerStatus {
        account: Some(key.account()),
        open: open.len(),
        completed: finished.completed,
        refunded: finished.refunded,
        aborted: finished.aborted,
        fees_earned: finished.fees,
        ..MakerStatus::default()
    };
    for pair in pairs {
        status.pairs.push(PairStatus {
            a: pair.name_a.clone(),
            b: pair.name_b.clone(),
            topic: pair.topic.clone(),
            joined: pair.room.joined(),
            liquidity_a: pair.liquidity_a,
            liquidity_b: pair
                .liquidity_b
                .iter()
                .copied()
                .try_fold(0i128, |sum, held| held.map(|held| sum + held)),
            quotes: pair.quotes.clone(),
        });
    }
    let mut wires: Vec<_> = open
        .values()
        .map(|runner| runner.saga.record.summary())
        .chain(finished.recent.iter().cloned())
        .collect();
    wires.sort_by_key(|wire| std::cmp::Reverse(wire.started_ms));
    status.wires = wires;
    status
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
