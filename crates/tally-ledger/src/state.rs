//! The validator state machine.

mod escrow;

use std::collections::{HashMap, HashSet};

use tally_core::pow::check_intro_pow;
use tally_core::{
    AccountId, Amount, Certificate, Committee, Digest, EscrowId, EscrowSecret, LockSlot,
    NetworkContract, NetworkId, Order, OrderDigest, SecretKey, SignedOrder, Split, Transfer, Vote,
};

pub use escrow::{EscrowState, MAX_ESCROW_MS, Settlement};

/// One account as a validator keeps it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AccountState {
    /// Microcash; below zero only while credits are missing (see the crate docs).
    pub balance: i128,
    /// The sequence number the account's next order must carry.
    pub next_sequence: u64,
    /// Whether the key's `IntroKey` certificate was applied.
    pub introduced: bool,
}

/// Why a request was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("the order's signature does not verify")]
    BadSignature,
    #[error("a vote in the certificate does not verify")]
    BadVote,
    #[error("sequence {got} is not the account's next order number {expected}")]
    Sequence { expected: u64, got: u64 },
    #[error("certificate for sequence {got} arrived before sequence {expected} was applied")]
    MissingPredecessor { expected: u64, got: u64 },
    #[error("balance {} cash cannot pay {amount} cash", tally_core::SignedCash(*.balance))]
    InsufficientFunds { balance: i128, amount: Amount },
    #[error("already voted for another order ({voted}) in this slot")]
    Conflict { voted: OrderDigest },
    #[error("key {0} was introduced before")]
    AlreadyIntroduced(AccountId),
    #[error("the proof of work does not meet {bits} bits")]
    BadProofOfWork { bits: u32 },
    #[error("amount must be more than zero")]
    ZeroAmount,
    #[error("an account cannot pay itself")]
    SelfTransfer,
    #[error("the arithmetic would overflow")]
    Overflow,
    #[error("{0}")]
    BadSplit(#[from] tally_core::SplitError),
    #[error("{0}")]
    BadEscrow(#[from] tally_core::EscrowShapeError),
    #[error("this network takes no escrows (its contract declares no clock skew bound)")]
    NoEscrows,
    #[error("the escrow cites network {0}, which this validator does not know")]
    UnknownCounterpart(NetworkId),
    #[error("the escrow's deadline {deadline} is more than 30 days ahead")]
    DeadlineTooFar { deadline: u64 },
    #[error("hash lock {0} is already used by an escrow on this network")]
    HashLockReused(Digest),
    #[error("no escrow {0} is open here")]
    UnknownEscrow(EscrowId),
    #[error("escrow {0} was settled already")]
    EscrowSettled(EscrowId),
    #[error("the secret does not open this escrow")]
    WrongSecret,
    #[error(
        "the escrow's deadline {deadline} has passed by this validator's clock ({now} ms): it takes no claim"
    )]
    DeadlinePassed { deadline: u64, now: u64 },
    #[error(
        "the escrow can be refunded from {from} ms by this validator's clock, not yet ({now} ms)"
    )]
    RefundTooEarly { from: u64, now: u64 },
    #[error("certificate for escrow {0} arrived before the escrow's lock was applied")]
    MissingEscrow(EscrowId),
}

/// What an order that spends from an account (a transfer or a split) takes from it.
struct Spend {
    sender: AccountId,
    sequence: u64,
    total: Amount,
}

impl Spend {
    /// A transfer's spend, once its shape is valid whatever the ledger holds.
    fn of_transfer(transfer: &Transfer) -> Result<Self, LedgerError> {
        if transfer.amount.is_zero() {
            return Err(LedgerError::ZeroAmount);
        }
        if transfer.sender == transfer.recipient {
            return Err(LedgerError::SelfTransfer);
        }
        Ok(Spend {
            sender: transfer.sender,
            sequence: transfer.sequence,
            total: transfer.amount,
        })
    }

    /// A split's spend, once its shape is valid whatever the ledger holds.
    fn of_split(split: &Split) -> Result<Self, LedgerError> {
        Ok(Spend {
            sender: split.sender,
            sequence: split.sequence,
            total: split.total()?,
        })
    }
}

/// A certificate's effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Applied {
    /// False if the certificate had been applied before.
    pub new: bool,
}

/// A vote this validator holds in a lock slot, as its store keeps it: the digest of the
/// order voted for and, in an account's sequence slot, the signed order itself, so that
/// any copy of the owner's wallet can learn it and finish it rather than sign a second one
/// (DESIGN §3), even after this validator restarted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoteLock {
    pub slot: LockSlot,
    pub digest: OrderDigest,
    /// `None` for an introduction's lock (any copy can make the same intro), and for locks
    /// a store kept before it kept orders.
    pub order: Option<SignedOrder>,
}

/// A change to the vote locks.
// `Set` carries the signed order (with an escrow lock, the largest order) by value: both
// variants are made once per vote or certificate, and boxing would add an allocation to
// every vote for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockChange {
    /// A vote was given in this slot.
    Set(VoteLock),
    /// The slot's certificate was applied; the lock is history.
    Clear(LockSlot),
}

/// What a batch changed, for the store to make durable.
#[derive(Debug, Default)]
pub struct Changes {
    /// Accounts whose state changed (the store writes their current state).
    pub accounts: HashSet<AccountId>,
    /// Lock changes, in order.
    pub locks: Vec<LockChange>,
    /// Certificates appended to the log, with their log positions.
    pub certificates: Vec<(u64, Certificate)>,
    /// Escrows opened or settled (the store writes their current state).
    pub escrows: HashSet<EscrowId>,
}

impl Changes {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
            && self.locks.is_empty()
            && self.certificates.is_empty()
            && self.escrows.is_empty()
    }
}

/// A batch's changes together with the state they leave (each changed account's state, the
/// supply, the log length), detached from the validator: the store can write it while the
/// validator already decides the next batch.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Every account the batch changed, with its state after the batch.
    pub accounts: Vec<(AccountId, AccountState)>,
    /// Lock changes, in order.
    pub locks: Vec<LockChange>,
    /// Certificates appended to the log, with their log positions.
    pub certificates: Vec<(u64, Certificate)>,
    /// Every escrow the batch opened or settled, with its state after the batch.
    pub escrows: Vec<(EscrowId, EscrowState)>,
    /// The supply after the batch.
    pub supply: Amount,
    /// The log length after the batch.
    pub log_len: u64,
}

impl Snapshot {
    /// Appends `later`, the snapshot of the batch decided right after this one, so that
    /// both are written as one (group commit): changes keep their order, the later state
    /// of an account or escrow follows the earlier one (writers apply them in order, so
    /// the later wins), and the supply and log length are the later batch's.
    pub fn absorb(&mut self, later: Snapshot) {
        let Snapshot {
            accounts,
            locks,
            certificates,
            escrows,
            supply,
            log_len,
        } = later;
        self.accounts.extend(accounts);
        self.locks.extend(locks);
        self.certificates.extend(certificates);
        self.escrows.extend(escrows);
        self.supply = supply;
        self.log_len = log_len;
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
            && self.locks.is_empty()
            && self.certificates.is_empty()
            && self.escrows.is_empty()
    }
}

/// A validator: its key, its network's rules and its ledger.
pub struct Validator {
    key: SecretKey,
    network: NetworkId,
    committee: Committee,
    faucet: Amount,
    intro_pow_bits: u32,
    accounts: HashMap<AccountId, AccountState>,
    transfer_locks: HashMap<AccountId, (u64, OrderDigest)>,
    /// The signed order behind each transfer lock, so that any copy of the owner's wallet
    /// can finish it instead of signing another (DESIGN §3, prevention). The store keeps
    /// it with the lock ([`VoteLock`]); only a lock restored from a store written before
    /// orders were kept comes without it.
    held_orders: HashMap<AccountId, SignedOrder>,
    intro_locks: HashMap<AccountId, OrderDigest>,
    /// Every escrow whose lock was applied here, open or settled.
    escrows: HashMap<EscrowId, EscrowState>,
    /// The first escrow locked under each hash lock.
    hash_locks: HashMap<Digest, EscrowId>,
    /// The vote held in each open escrow's slot: its digest and the claim or refund voted
    /// for (a claim carries the secret, published by the vote).
    escrow_votes: HashMap<EscrowId, (OrderDigest, Option<SignedOrder>)>,
    /// Secrets known by hash lock: from claims voted for or applied.
    secrets: HashMap<Digest, EscrowSecret>,
    /// ε, the contract's bound on validator clock skew; `None`: no escrows.
    max_clock_skew_ms: Option<u64>,
    /// Networks whose contracts this validator knows: escrows may cite them.
    counterparts: HashSet<NetworkId>,
    /// This validator's clock (milliseconds since the Unix epoch), as its caller last set
    /// it ([`Self::set_clock`]): escrow deadlines are judged by it.
    now_ms: u64,
    supply: Amount,
    log_len: u64,
    changes: Changes,
    /// A planted mistake (simulator only): see [`PlantedBug`].
    #[cfg(feature = "planted-bugs")]
    planted: Option<PlantedBug>,
}

/// Mistakes the simulator plants in the validator to show that its invariants catch them.
#[cfg(feature = "planted-bugs")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlantedBug {
    /// Applies a certificate again when it arrives again (the sender pays twice).
    ApplyTwice,
    /// Votes for a second order in a slot it already voted in (the new vote replaces the
    /// old one's lock).
    VoteTwice,
    /// Votes for an escrow's refund after it voted for its claim, or the other way round
    /// (as `VoteTwice`, in escrow slots only).
    VoteClaimAndRefund,
}

impl Validator {
    /// Makes this validator break its rules as `bug` says (simulator only).
    #[cfg(feature = "planted-bugs")]
    pub fn plant_bug(&mut self, bug: PlantedBug) {
        self.planted = Some(bug);
    }

    /// A validator of `contract` with an empty ledger (call [`Self::apply_genesis`] or
    /// restore from a store).
    pub fn new(
        key: SecretKey,
        contract: &NetworkContract,
    ) -> Result<Self, tally_core::ContractError> {
        Ok(Validator {
            key,
            network: contract.id(),
            committee: Committee::new(&contract.validators)?,
            faucet: contract.faucet,
            intro_pow_bits: contract.intro_pow_bits,
            accounts: HashMap::new(),
            transfer_locks: HashMap::new(),
            held_orders: HashMap::new(),
            intro_locks: HashMap::new(),
            escrows: HashMap::new(),
            hash_locks: HashMap::new(),
            escrow_votes: HashMap::new(),
            secrets: HashMap::new(),
            max_clock_skew_ms: contract.max_clock_skew_ms,
            counterparts: HashSet::new(),
            now_ms: 0,
            supply: Amount::ZERO,
            log_len: 0,
            changes: Changes::default(),
            #[cfg(feature = "planted-bugs")]
            planted: None,
        })
    }

    /// Funds the contract's genesis allocations (only on an empty ledger).
    pub fn apply_genesis(&mut self, contract: &NetworkContract) -> Result<(), LedgerError> {
        for allocation in &contract.genesis {
            let account = self.accounts.entry(allocation.account).or_default();
            account.balance += i128::from(allocation.amount.microcash());
            self.supply = self
                .supply
                .checked_add(allocation.amount)
                .ok_or(LedgerError::Overflow)?;
            self.changes.accounts.insert(allocation.account);
        }
        Ok(())
    }

    /// Restores state loaded from a store.
    pub fn restore(
        &mut self,
        accounts: HashMap<AccountId, AccountState>,
        locks: Vec<VoteLock>,
        supply: Amount,
        log_len: u64,
    ) {
        self.accounts = accounts;
        self.supply = supply;
        self.log_len = log_len;
        self.restore_locks(locks);
    }

    /// Restores vote locks loaded from a store; the store calls it after it has re-applied
    /// the certificate log's tail, so that it can drop the locks that tail made history.
    pub fn restore_locks(&mut self, locks: Vec<VoteLock>) {
        for VoteLock {
            slot,
            digest,
            order,
        } in locks
        {
            match slot {
                LockSlot::Sequence(account, sequence) => {
                    self.transfer_locks.insert(account, (sequence, digest));
                    match order {
                        Some(order) => self.held_orders.insert(account, order),
                        None => self.held_orders.remove(&account),
                    };
                }
                LockSlot::Intro(account) => {
                    self.intro_locks.insert(account, digest);
                }
                LockSlot::Escrow(id) => self.restore_escrow_vote(id, digest, order),
            }
        }
    }

    /// Sets this validator's clock (milliseconds since the Unix epoch). The caller sets it
    /// before each batch: the state machine reads no clock of its own.
    pub fn set_clock(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
    }

    /// This validator's clock as last set.
    pub fn clock(&self) -> u64 {
        self.now_ms
    }

    /// The networks escrows may cite as their counterpart: those whose contracts this
    /// validator's node knows (it sends them notices).
    pub fn set_counterparts(&mut self, networks: impl IntoIterator<Item = NetworkId>) {
        self.counterparts = networks.into_iter().collect();
    }

    /// This validator's account key.
    pub fn id(&self) -> AccountId {
        self.key.account()
    }

    /// The validator's signing key (the node signs ledger views with it).
    pub fn key(&self) -> &SecretKey {
        &self.key
    }

    /// The network this validator serves.
    pub fn network(&self) -> &NetworkId {
        &self.network
    }

    /// The committee certificates are checked against.
    pub fn committee(&self) -> &Committee {
        &self.committee
    }

    /// Microcash in existence: genesis plus every faucet mint.
    pub fn supply(&self) -> Amount {
        self.supply
    }

    /// How many certificates were applied.
    pub fn log_len(&self) -> u64 {
        self.log_len
    }

    /// How many accounts the ledger holds.
    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    /// One account's state (default for an account never seen).
    pub fn account(&self, account: &AccountId) -> AccountState {
        self.accounts.get(account).copied().unwrap_or_default()
    }

    /// Every account, for audits and tests.
    pub fn accounts(&self) -> impl Iterator<Item = (&AccountId, &AccountState)> {
        self.accounts.iter()
    }

    /// Takes the changes recorded since the last call.
    pub fn take_changes(&mut self) -> Changes {
        std::mem::take(&mut self.changes)
    }

    /// `changes` (taken from this validator) with the state they leave, for the store.
    pub fn snapshot(&self, changes: Changes) -> Snapshot {
        Snapshot {
            accounts: changes
                .accounts
                .into_iter()
                .map(|account| (account, self.account(&account)))
                .collect(),
            locks: changes.locks,
            certificates: changes.certificates,
            escrows: changes
                .escrows
                .into_iter()
                .filter_map(|id| Some((id, self.escrow(&id)?)))
                .collect(),
            supply: self.supply,
            log_len: self.log_len,
        }
    }

    /// Takes the changes recorded since the last call, with the state they leave.
    pub fn take_snapshot(&mut self) -> Snapshot {
        let changes = self.take_changes();
        self.snapshot(changes)
    }

    /// Decides whether to vote for an order whose signature check gave `signature_ok`, and
    /// signs the vote.
    pub fn handle_order(
        &mut self,
        order: &SignedOrder,
        signature_ok: bool,
    ) -> Result<Vote, LedgerError> {
        let digest = self.decide_order(order, signature_ok)?;
        Ok(self.vote(&digest))
    }

    /// Decides whether to vote for an order and locks its slot, without signing: the node
    /// signs a batch's votes in parallel with [`Self::vote`].
    pub fn decide_order(
        &mut self,
        order: &SignedOrder,
        signature_ok: bool,
    ) -> Result<OrderDigest, LedgerError> {
        if !signature_ok {
            return Err(LedgerError::BadSignature);
        }
        let digest = order.order.digest(&self.network);
        match &order.order {
            Order::IntroKey(intro) => {
                let account = self.account(&intro.account);
                if account.introduced {
                    return Err(LedgerError::AlreadyIntroduced(intro.account));
                }
                if let Some(voted) = self.intro_locks.get(&intro.account) {
                    if *voted != digest {
                        return Err(LedgerError::Conflict { voted: *voted });
                    }
                    return Ok(digest);
                }
                if !check_intro_pow(&intro.account, intro.proof_of_work, self.intro_pow_bits) {
                    return Err(LedgerError::BadProofOfWork {
                        bits: self.intro_pow_bits,
                    });
                }
                self.intro_locks.insert(intro.account, digest);
                self.changes.locks.push(LockChange::Set(VoteLock {
                    slot: LockSlot::Intro(intro.account),
                    digest,
                    order: None,
                }));
            }
            Order::Transfer(transfer) => {
                self.decide_spend(Spend::of_transfer(transfer)?, digest, order)?
            }
            Order::Split(split) => self.decide_spend(Spend::of_split(split)?, digest, order)?,
            Order::EscrowLock(lock) => self.decide_escrow_lock(lock, digest, order)?,
            Order::EscrowClaim(claim) => self.decide_escrow_claim(claim, digest, order)?,
            Order::EscrowRefund(refund) => self.decide_escrow_refund(refund, digest, order)?,
        }
        Ok(digest)
    }

    /// Decides an order that spends `spend` from its sender's slot, and locks the slot
    /// unless this very order holds it already.
    fn decide_spend(
        &mut self,
        spend: Spend,
        digest: OrderDigest,
        order: &SignedOrder,
    ) -> Result<(), LedgerError> {
        let sender = self.account(&spend.sender);
        if spend.sequence != sender.next_sequence {
            return Err(LedgerError::Sequence {
                expected: sender.next_sequence,
                got: spend.sequence,
            });
        }
        if let Some((sequence, voted)) = self.transfer_locks.get(&spend.sender)
            && *sequence == spend.sequence
        {
            #[cfg(feature = "planted-bugs")]
            let votes_twice = self.planted == Some(PlantedBug::VoteTwice);
            #[cfg(not(feature = "planted-bugs"))]
            let votes_twice = false;
            if *voted != digest && !votes_twice {
                return Err(LedgerError::Conflict { voted: *voted });
            }
            if *voted != digest {
                // Only a planted second vote gets here: it takes the slot's lock.
                self.lock_slot(&spend, digest, order);
                return Ok(());
            }
            // The same order again (a resend, perhaps by another copy of the wallet):
            // remember it if a restart had made us forget it.
            self.held_orders
                .entry(spend.sender)
                .or_insert_with(|| order.clone());
            return Ok(());
        }
        if sender.balance < i128::from(spend.total.microcash()) {
            return Err(LedgerError::InsufficientFunds {
                balance: sender.balance,
                amount: spend.total,
            });
        }
        self.lock_slot(&spend, digest, order);
        Ok(())
    }

    /// Holds this validator's vote in `spend`'s slot for `order` (of `digest`): the lock,
    /// the order handed out on request, and the change the store records.
    fn lock_slot(&mut self, spend: &Spend, digest: OrderDigest, order: &SignedOrder) {
        self.transfer_locks
            .insert(spend.sender, (spend.sequence, digest));
        self.held_orders.insert(spend.sender, order.clone());
        self.changes.locks.push(LockChange::Set(VoteLock {
            slot: LockSlot::Sequence(spend.sender, spend.sequence),
            digest,
            order: Some(order.clone()),
        }));
    }

    /// This validator's vote for the order with `digest`.
    pub fn vote(&self, digest: &OrderDigest) -> Vote {
        Vote::sign(&self.key, &self.network, digest)
    }

    /// The order this validator voted for in `account`'s next sequence slot, if it holds a
    /// vote there (a certificate for it is not applied yet). Wallets read it to grade coins
    /// and to complete an order already voted for rather than sign a conflicting one.
    pub fn held_vote(&self, account: &AccountId) -> Option<OrderDigest> {
        let next = self.account(account).next_sequence;
        match self.transfer_locks.get(account) {
            Some((sequence, digest)) if *sequence == next => Some(*digest),
            _ => None,
        }
    }

    /// The accounts, at most `limit` in key order, whose next sequence slot holds this
    /// validator's vote (its certificate not applied yet): in flight, or frozen if the
    /// votes of the others split it. The control API reports them (DESIGN §3, containment).
    pub fn open_slots(&self, limit: usize) -> Vec<AccountId> {
        let mut open: Vec<AccountId> = self
            .transfer_locks
            .iter()
            .filter(|(account, (sequence, _))| *sequence == self.account(account).next_sequence)
            .map(|(account, _)| *account)
            .collect();
        open.sort_unstable();
        open.truncate(limit);
        open
    }

    /// The signed order this validator voted for in `account`'s next sequence slot, when
    /// it holds a vote there and still knows the order (see `held_orders`): a copy of the
    /// owner's wallet that did not sign it finishes it rather than sign a conflicting one.
    pub fn held_order(&self, account: &AccountId) -> Option<&SignedOrder> {
        let digest = self.held_vote(account)?;
        self.held_orders
            .get(account)
            .filter(|order| order.order.digest(&self.network) == digest)
    }

    /// Whether this validator has voted for exactly this order in its slot (and the slot's
    /// certificate is not applied yet). A certificate's vote that claims to be ours then
    /// need not be verified: we know we gave it.
    pub fn has_voted_for(&self, order: &Order, digest: &OrderDigest) -> bool {
        match order.lock_slot() {
            LockSlot::Intro(account) => self.intro_locks.get(&account) == Some(digest),
            LockSlot::Sequence(sender, sequence) => {
                self.transfer_locks.get(&sender) == Some(&(sequence, *digest))
            }
            LockSlot::Escrow(id) => self
                .escrow_votes
                .get(&id)
                .is_some_and(|(voted, _)| voted == digest),
        }
    }

    /// Whether a certificate for this order was applied already; lets the caller skip the
    /// signature checks of certificates it has (peers re-send them while catching up).
    pub fn is_applied(&self, order: &Order) -> bool {
        match order.lock_slot() {
            LockSlot::Intro(account) => self.account(&account).introduced,
            LockSlot::Sequence(sender, sequence) => sequence < self.account(&sender).next_sequence,
            LockSlot::Escrow(id) => self
                .escrows
                .get(&id)
                .is_some_and(|e| e.settlement != Settlement::Open),
        }
    }

    /// Applies a certificate whose structure passed
    /// [`Certificate::check_structure`] and whose vote checks gave `votes_ok`.
    pub fn handle_certificate(
        &mut self,
        certificate: &Certificate,
        votes_ok: bool,
    ) -> Result<Applied, LedgerError> {
        #[cfg(feature = "planted-bugs")]
        let replay = self.planted == Some(PlantedBug::ApplyTwice);
        #[cfg(not(feature = "planted-bugs"))]
        let replay = false;
        // Votes are judged first, even for an order already applied: a certificate with a
        // bad vote is a bad certificate, not "already known", whatever it certifies.
        if !votes_ok {
            return Err(LedgerError::BadVote);
        }
        let again = self.is_applied(&certificate.order);
        if again && !replay {
            return Ok(Applied { new: false });
        }
        match &certificate.order {
            Order::IntroKey(intro) => {
                let supply = self
                    .supply
                    .checked_add(self.faucet)
                    .ok_or(LedgerError::Overflow)?;
                let account = self.accounts.entry(intro.account).or_default();
                account.balance += i128::from(self.faucet.microcash());
                account.introduced = true;
                self.supply = supply;
                self.changes.accounts.insert(intro.account);
                if self.intro_locks.remove(&intro.account).is_some() {
                    self.changes
                        .locks
                        .push(LockChange::Clear(LockSlot::Intro(intro.account)));
                }
            }
            // A certified order was well formed when its quorum voted; a malformed one here
            // means the committee's rules were broken, and applying it could create money:
            // it is refused.
            Order::Transfer(transfer) => {
                self.apply_spend(Spend::of_transfer(transfer)?, &certificate.order)?
            }
            Order::Split(split) => self.apply_spend(Spend::of_split(split)?, &certificate.order)?,
            Order::EscrowLock(lock) => {
                self.apply_escrow_lock(lock, certificate.checksum, &certificate.order)?
            }
            Order::EscrowClaim(claim) => self.apply_settlement(claim.escrow, Some(claim.secret))?,
            Order::EscrowRefund(refund) => self.apply_settlement(refund.escrow, None)?,
        }
        if again {
            // Only a planted replay gets here: its balances moved, its log did not.
            return Ok(Applied { new: false });
        }
        self.changes
            .certificates
            .push((self.log_len, certificate.clone()));
        self.log_len += 1;
        Ok(Applied { new: true })
    }

    /// Applies the spend of a certified transfer or split: the sender pays the total and
    /// moves to its next sequence, each recipient receives its payment.
    fn apply_spend(&mut self, spend: Spend, order: &Order) -> Result<(), LedgerError> {
        let sender = self.account(&spend.sender);
        #[cfg(feature = "planted-bugs")]
        let replay = self.planted == Some(PlantedBug::ApplyTwice);
        #[cfg(not(feature = "planted-bugs"))]
        let replay = false;
        if spend.sequence != sender.next_sequence && !replay {
            return Err(LedgerError::MissingPredecessor {
                expected: sender.next_sequence,
                got: spend.sequence,
            });
        }
        let sender = self.accounts.entry(spend.sender).or_default();
        sender.balance -= i128::from(spend.total.microcash());
        // `max`: a planted replay of an old sequence must not move the account backwards.
        sender.next_sequence = sender.next_sequence.max(spend.sequence + 1);
        self.changes.accounts.insert(spend.sender);
        for payment in order.payments() {
            self.accounts.entry(payment.recipient).or_default().balance +=
                i128::from(payment.amount.microcash());
            self.changes.accounts.insert(payment.recipient);
        }
        self.held_orders.remove(&spend.sender);
        if self.transfer_locks.remove(&spend.sender).is_some() {
            self.changes
                .locks
                .push(LockChange::Clear(LockSlot::Sequence(
                    spend.sender,
                    spend.sequence,
                )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
