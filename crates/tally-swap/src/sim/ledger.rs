//! A model of one quorum network's escrows, exactly as its validators decide them: n = 4
//! validators (quorum 3), each with its own clock offset within ±ε; a lock is taken when a
//! quorum's clocks see its deadline more than ε ahead; each validator votes once per escrow
//! slot — a claim while its clock is before the deadline, a refund from deadline + ε — and a
//! claim vote publishes the secret. A certificate forms the moment a quorum voted one order
//! (the model takes the assembling as done by whoever holds the votes).

use std::collections::BTreeMap;

use tally_core::{AccountId, Digest, EscrowId, EscrowLock, EscrowSecret, NetworkId};

use crate::wire::{LockTerms, Standing, escrow_id};

/// Validators per network.
pub const VALIDATORS: usize = 4;
const QUORUM: usize = 3;
/// The validators' upper bound on a deadline (30 days), as `tally-ledger` has it.
const MAX_ESCROW_MS: u64 = 30 * 24 * 60 * 60 * 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vote {
    Claim,
    Refund,
}

#[derive(Clone, Debug)]
pub struct Escrow {
    pub lock: EscrowLock,
    pub votes: [Option<Vote>; VALIDATORS],
    pub standing: Standing,
    /// Published by the first claim vote.
    pub secret: Option<EscrowSecret>,
}

/// What a vote did, for the world to react to (a first claim vote sends the notice).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Voted {
    Nothing,
    /// A claim vote that published the secret for the first time.
    FirstClaim,
    Other,
}

#[derive(Clone, Debug)]
pub struct Ledger {
    pub id: NetworkId,
    pub skew: u64,
    /// Each validator's clock minus true time, within ±ε.
    pub offsets: [i64; VALIDATORS],
    /// A crashed validator votes nothing (f = 1).
    pub down: Option<usize>,
    pub balances: BTreeMap<AccountId, u64>,
    sequences: BTreeMap<AccountId, u64>,
    pub escrows: BTreeMap<EscrowId, Escrow>,
    by_hash: BTreeMap<Digest, EscrowId>,
    supply: u64,
}

impl Ledger {
    pub fn new(id: NetworkId, skew: u64, offsets: [i64; VALIDATORS], down: Option<usize>) -> Self {
        Ledger {
            id,
            skew,
            offsets,
            down,
            balances: BTreeMap::new(),
            sequences: BTreeMap::new(),
            escrows: BTreeMap::new(),
            by_hash: BTreeMap::new(),
            supply: 0,
        }
    }

    pub fn mint(&mut self, account: AccountId, amount: u64) {
        *self.balances.entry(account).or_default() += amount;
        self.supply += amount;
    }

    pub fn balance(&self, account: &AccountId) -> u64 {
        self.balances.get(account).copied().unwrap_or_default()
    }

    fn clock(&self, validator: usize, now: u64) -> i64 {
        now as i64 + self.offsets[validator]
    }

    fn up(&self) -> impl Iterator<Item = usize> + '_ {
        (0..VALIDATORS).filter(move |v| Some(*v) != self.down)
    }

    /// Money is neither made nor lost: balances plus open escrows equal what was minted.
    pub fn assert_conserved(&self) {
        let balances: u64 = self.balances.values().sum();
        let open: u64 = self
            .escrows
            .values()
            .filter(|e| e.standing == Standing::Open)
            .map(|e| e.lock.amount.microcash())
            .sum();
        assert_eq!(
            balances + open,
            self.supply,
            "money conserved on {}",
            self.id
        );
    }

    pub fn by_hash(&self, hash: &Digest) -> Option<(EscrowId, &Escrow)> {
        let id = self.by_hash.get(hash)?;
        Some((*id, self.escrows.get(id)?))
    }

    /// Locks for `payer` at true time `now`. The same terms again return the same escrow
    /// (the wallet finishing its journaled order); other terms under a used hash lock,
    /// a deadline a quorum finds too soon, or too little money are refused.
    pub fn lock(
        &mut self,
        payer: AccountId,
        terms: &LockTerms,
        now: u64,
    ) -> Result<(EscrowId, EscrowLock), String> {
        if let Some((id, escrow)) = self.by_hash(&terms.hash_lock) {
            if escrow.lock.payer == payer && terms.matches(&escrow.lock) {
                return Ok((id, escrow.lock));
            }
            return Err("hash lock already used on this network".into());
        }
        let deadline = terms.deadline_ms as i64;
        let skew = self.skew as i64;
        let willing = self
            .up()
            .filter(|v| {
                let clock = self.clock(*v, now);
                deadline > clock + skew && deadline <= clock + MAX_ESCROW_MS as i64
            })
            .count();
        if willing < QUORUM {
            return Err("deadline too soon for the validators' clocks".into());
        }
        let sequence = self.sequences.get(&payer).copied().unwrap_or_default();
        let lock = terms.to_lock(payer, sequence);
        lock.check_shape(&self.id).map_err(|e| e.to_string())?;
        let amount = lock.amount.microcash();
        let balance = self.balances.entry(payer).or_default();
        if *balance < amount {
            return Err("insufficient funds".into());
        }
        *balance -= amount;
        self.sequences.insert(payer, sequence + 1);
        let id = escrow_id(&self.id, &lock);
        self.by_hash.insert(lock.hash_lock, id);
        let escrow = Escrow {
            lock,
            votes: [None; VALIDATORS],
            standing: Standing::Open,
            secret: None,
        };
        self.escrows.insert(id, escrow);
        Ok((id, lock))
    }

    /// A claim reaches `validator` at true time `now`.
    pub fn vote_claim(
        &mut self,
        id: &EscrowId,
        secret: EscrowSecret,
        validator: usize,
        now: u64,
    ) -> Voted {
        if Some(validator) == self.down {
            return Voted::Nothing;
        }
        let clock = self.clock(validator, now);
        let Some(escrow) = self.escrows.get_mut(id) else {
            return Voted::Nothing;
        };
        let open = escrow.standing == Standing::Open;
        let free = matches!(escrow.votes[validator], None | Some(Vote::Claim));
        if !open
            || !free
            || secret.hash_lock() != escrow.lock.hash_lock
            || clock >= escrow.lock.deadline as i64
        {
            return Voted::Nothing;
        }
        escrow.votes[validator] = Some(Vote::Claim);
        let first = escrow.secret.is_none();
        escrow.secret = Some(secret);
        let claims = escrow
            .votes
            .iter()
            .filter(|v| **v == Some(Vote::Claim))
            .count();
        if claims >= QUORUM {
            escrow.standing = Standing::Claimed;
            let (payee, amount) = (escrow.lock.payee, escrow.lock.amount.microcash());
            *self.balances.entry(payee).or_default() += amount;
        }
        if first {
            Voted::FirstClaim
        } else {
            Voted::Other
        }
    }

    /// A refund reaches `validator` at true time `now`.
    pub fn vote_refund(&mut self, id: &EscrowId, validator: usize, now: u64) {
        if Some(validator) == self.down {
            return;
        }
        let clock = self.clock(validator, now);
        let skew = self.skew as i64;
        let Some(escrow) = self.escrows.get_mut(id) else {
            return;
        };
        let free = matches!(escrow.votes[validator], None | Some(Vote::Refund));
        if escrow.standing != Standing::Open || !free || clock < escrow.lock.deadline as i64 + skew
        {
            return;
        }
        escrow.votes[validator] = Some(Vote::Refund);
        let refunds = escrow
            .votes
            .iter()
            .filter(|v| **v == Some(Vote::Refund))
            .count();
        if refunds >= QUORUM {
            escrow.standing = Standing::Refunded;
            let (payer, amount) = (escrow.lock.payer, escrow.lock.amount.microcash());
            *self.balances.entry(payer).or_default() += amount;
        }
    }

    /// Whether some validator holds a vote of `kind` for escrow `id`.
    pub fn holds(&self, id: &EscrowId, kind: Vote) -> bool {
        self.escrows
            .get(id)
            .is_some_and(|e| e.votes.contains(&Some(kind)))
    }
}
