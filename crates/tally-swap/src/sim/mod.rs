//! The sagas driven together against a model of two ledgers (`ledger`): one payer, one
//! maker, delays, crashes, offline periods, lost messages and deviating parties
//! (`world`), and the properties they must keep (`props`).

mod greedy;
mod ledger;
mod props;
mod world;

use crate::timing::Timing;

/// A small deterministic generator (SplitMix64): every run is replayed from its seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..=max`.
    pub fn upto(&mut self, max: u64) -> u64 {
        if max == u64::MAX {
            self.next()
        } else {
            self.next() % (max + 1)
        }
    }

    /// True with probability `per_mille` / 1000.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.next() % 1000 < per_mille
    }
}

/// How the payer's side behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayerKind {
    /// The saga, as built.
    Honest,
    /// The saga, but its driver never sends a claim.
    NeverClaims,
    /// A scripted cheat: locks A with T_A cut short by `cut` ms, refunds A as early as the
    /// validators allow, and claims B either once A is refunded or `lead` ms before T_B,
    /// whichever comes first (a late claim, past the rule's last moment when `lead` is
    /// small).
    Greedy { cut: u64, lead: u64 },
}

/// How the maker's side behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MakerKind {
    /// The saga, as built.
    Honest,
    /// The saga, but its driver never locks on B.
    NeverLocks,
    /// The saga with the T_A ≥ T_B + Δ check switched off (test-only flag).
    SkipsDeltaCheck,
}

/// One run's setting: the timing bounds the sagas assume, and faults that stay within them
/// (or, for deviating parties, do not).
#[derive(Clone, Debug)]
pub struct Params {
    pub seed: u64,
    pub skew_a: u64,
    pub skew_b: u64,
    /// Upper bound of a message's delay to a validator.
    pub delivery: u64,
    /// Upper bound of the driver's delay from an observation to the saga's step.
    pub event_delay: u64,
    /// Upper bound of a party's clock error.
    pub clock_err: u64,
    /// How often a driver polls its watches (and ticks).
    pub poll: u64,
    /// Upper bound of the counterpart validators' notice delay; `None`: no notices.
    pub notice_delay: Option<u64>,
    /// Per mille chance of a crash after each step, and the most crashes per party.
    pub crash_per_mille: u64,
    pub max_crashes: u32,
    /// Upper bound of the maker's total downtime (crashes and offline): its part of the
    /// `notice` bound. The payer's downtime is not bounded (it can only miss its claim).
    pub maker_downtime: u64,
    /// A long offline period of the payer: (start, length).
    pub payer_offline: Option<(u64, u64)>,
    /// An offline period of the maker: (start, length); its length counts in
    /// `maker_downtime` unless notices run.
    pub maker_offline: Option<(u64, u64)>,
    /// Per mille of relay messages lost.
    pub loss_per_mille: u64,
    /// One validator of each network down.
    pub validator_down: bool,
    pub payer: PayerKind,
    pub maker: MakerKind,
    /// Quote: lock time and Δ beyond their minimums, fee, amount received.
    pub extra_lock: u64,
    pub extra_delta: u64,
    pub fee_ppm: u32,
    pub fee_fixed: u64,
    pub amount: u64,
}

impl Params {
    /// A run without faults: honest parties, prompt drivers.
    pub fn clean(seed: u64) -> Self {
        Params {
            seed,
            skew_a: 500,
            skew_b: 700,
            delivery: 100,
            event_delay: 100,
            clock_err: 50,
            poll: 200,
            notice_delay: None,
            crash_per_mille: 0,
            max_crashes: 0,
            maker_downtime: 0,
            payer_offline: None,
            maker_offline: None,
            loss_per_mille: 0,
            validator_down: false,
            payer: PayerKind::Honest,
            maker: MakerKind::Honest,
            extra_lock: 2_000,
            extra_delta: 500,
            fee_ppm: 2_500,
            fee_fixed: 1_000,
            amount: 10_000_000,
        }
    }

    /// The bounds the sagas are configured with, derived from the faults: what "within the
    /// timing assumptions" means for this run.
    pub fn timing(&self) -> Timing {
        let certify = self.delivery + self.event_delay + self.clock_err + 50;
        let reaction = self.poll + self.event_delay * (1 + u64::from(self.max_crashes));
        let notice = reaction + self.maker_downtime + self.notice_delay.unwrap_or(0) + 100;
        Timing {
            skew_a: self.skew_a,
            skew_b: self.skew_b,
            certify_a: certify,
            certify_b: certify,
            notice,
            margin: self.clock_err + 100,
        }
    }
}
