//! The validator state machine.

use std::collections::{HashMap, HashSet};

use tally_core::pow::check_intro_pow;
use tally_core::{
    AccountId, Amount, Certificate, Committee, LockSlot, NetworkContract, NetworkId, Order,
    OrderDigest, SecretKey, SignedOrder, Vote,
};

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
}

/// A certificate's effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Applied {
    /// False if the certificate had been applied before.
    pub new: bool,
}

/// A change to the vote locks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockChange {
    /// A vote was given for `OrderDigest` in this slot.
    Set(LockSlot, OrderDigest),
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
}

impl Changes {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty() && self.locks.is_empty() && self.certificates.is_empty()
    }
}

/// A batch's changes together with the state they leave (each changed account's state, the
/// supply, the log length), detached from the validator: the store can write it while the
/// validator already decides the next batch.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Every account the batch changed, with its state after the batch.
    pub accounts: Vec<(AccountId, AccountState)>,
    /// Lock changes, in order.
    pub locks: Vec<LockChange>,
    /// Certificates appended to the log, with their log positions.
    pub certificates: Vec<(u64, Certificate)>,
    /// The supply after the batch.
    pub supply: Amount,
    /// The log length after the batch.
    pub log_len: u64,
}

impl Snapshot {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty() && self.locks.is_empty() && self.certificates.is_empty()
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
    intro_locks: HashMap<AccountId, OrderDigest>,
    supply: Amount,
    log_len: u64,
    changes: Changes,
}

impl Validator {
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
            intro_locks: HashMap::new(),
            supply: Amount::ZERO,
            log_len: 0,
            changes: Changes::default(),
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
        locks: Vec<(LockSlot, OrderDigest)>,
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
    pub fn restore_locks(&mut self, locks: Vec<(LockSlot, OrderDigest)>) {
        for (slot, digest) in locks {
            match slot {
                LockSlot::Sequence(account, sequence) => {
                    self.transfer_locks.insert(account, (sequence, digest));
                }
                LockSlot::Intro(account) => {
                    self.intro_locks.insert(account, digest);
                }
            }
        }
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
                self.changes
                    .locks
                    .push(LockChange::Set(LockSlot::Intro(intro.account), digest));
            }
            Order::Transfer(transfer) => {
                if transfer.amount.is_zero() {
                    return Err(LedgerError::ZeroAmount);
                }
                if transfer.sender == transfer.recipient {
                    return Err(LedgerError::SelfTransfer);
                }
                let sender = self.account(&transfer.sender);
                if transfer.sequence != sender.next_sequence {
                    return Err(LedgerError::Sequence {
                        expected: sender.next_sequence,
                        got: transfer.sequence,
                    });
                }
                if let Some((sequence, voted)) = self.transfer_locks.get(&transfer.sender)
                    && *sequence == transfer.sequence
                {
                    if *voted != digest {
                        return Err(LedgerError::Conflict { voted: *voted });
                    }
                    return Ok(digest);
                }
                if sender.balance < i128::from(transfer.amount.microcash()) {
                    return Err(LedgerError::InsufficientFunds {
                        balance: sender.balance,
                        amount: transfer.amount,
                    });
                }
                self.transfer_locks
                    .insert(transfer.sender, (transfer.sequence, digest));
                self.changes
                    .locks
                    .push(LockChange::Set(order.order.lock_slot(), digest));
            }
        }
        Ok(digest)
    }

    /// This validator's vote for the order with `digest`.
    pub fn vote(&self, digest: &OrderDigest) -> Vote {
        Vote::sign(&self.key, &self.network, digest)
    }

    /// Whether this validator has voted for exactly this order in its slot (and the slot's
    /// certificate is not applied yet). A certificate's vote that claims to be ours then
    /// need not be verified: we know we gave it.
    pub fn has_voted_for(&self, order: &Order, digest: &OrderDigest) -> bool {
        match order {
            Order::IntroKey(intro) => self.intro_locks.get(&intro.account) == Some(digest),
            Order::Transfer(t) => {
                self.transfer_locks.get(&t.sender) == Some(&(t.sequence, *digest))
            }
        }
    }

    /// Whether a certificate for this order was applied already; lets the caller skip the
    /// signature checks of certificates it has (peers re-send them while catching up).
    pub fn is_applied(&self, order: &Order) -> bool {
        match order {
            Order::IntroKey(intro) => self.account(&intro.account).introduced,
            Order::Transfer(t) => t.sequence < self.account(&t.sender).next_sequence,
        }
    }

    /// Applies a certificate whose structure passed
    /// [`Certificate::check_structure`] and whose vote checks gave `votes_ok`.
    pub fn handle_certificate(
        &mut self,
        certificate: &Certificate,
        votes_ok: bool,
    ) -> Result<Applied, LedgerError> {
        if self.is_applied(&certificate.order) {
            return Ok(Applied { new: false });
        }
        if !votes_ok {
            return Err(LedgerError::BadVote);
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
            Order::Transfer(t) => {
                let sender = self.account(&t.sender);
                if t.sequence != sender.next_sequence {
                    return Err(LedgerError::MissingPredecessor {
                        expected: sender.next_sequence,
                        got: t.sequence,
                    });
                }
                let amount = i128::from(t.amount.microcash());
                let sender = self.accounts.entry(t.sender).or_default();
                sender.balance -= amount;
                sender.next_sequence += 1;
                self.accounts.entry(t.recipient).or_default().balance += amount;
                self.changes.accounts.insert(t.sender);
                self.changes.accounts.insert(t.recipient);
                if self.transfer_locks.remove(&t.sender).is_some() {
                    self.changes
                        .locks
                        .push(LockChange::Clear(LockSlot::Sequence(t.sender, t.sequence)));
                }
            }
        }
        self.changes
            .certificates
            .push((self.log_len, certificate.clone()));
        self.log_len += 1;
        Ok(Applied { new: true })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use proptest::prelude::*;
    use tally_core::pow::IntroPowHasher;
    use tally_core::{Allocation, IntroKey, Mode, Transfer, ValidatorInfo};

    const BITS: u32 = 4;

    fn network(
        validators: usize,
        genesis: &[(AccountId, u64)],
    ) -> (NetworkContract, Vec<SecretKey>) {
        let keys: Vec<SecretKey> = (0..validators)
            .map(|i| SecretKey::from_bytes([i as u8 + 1; 32]))
            .collect();
        let contract = NetworkContract {
            name: "test".into(),
            mode: Mode::Quorum,
            unit: "cash".into(),
            faucet: Amount::from_microcash(10_000_000),
            intro_pow_bits: BITS,
            validators: keys
                .iter()
                .map(|k| ValidatorInfo {
                    key: k.account(),
                    address: "127.0.0.1:1".into(),
                })
                .collect(),
            tracker: None,
            genesis: genesis
                .iter()
                .map(|(a, m)| Allocation {
                    account: *a,
                    amount: Amount::from_microcash(*m),
                })
                .collect(),
            pow: None,
        };
        (contract, keys)
    }

    fn validators(contract: &NetworkContract, keys: &[SecretKey]) -> Vec<Validator> {
        keys.iter()
            .map(|k| {
                let mut v = Validator::new(k.clone(), contract).unwrap();
                v.apply_genesis(contract).unwrap();
                v.take_changes();
                v
            })
            .collect()
    }

    fn user(i: u8) -> SecretKey {
        SecretKey::from_bytes([0x80 + i; 32])
    }

    fn transfer(
        from: &SecretKey,
        to: AccountId,
        amount: u64,
        sequence: u64,
        net: &NetworkId,
    ) -> SignedOrder {
        SignedOrder::sign(
            Order::Transfer(Transfer {
                sender: from.account(),
                recipient: to,
                amount: Amount::from_microcash(amount),
                sequence,
            }),
            from,
            net,
        )
    }

    fn certify(validators: &mut [Validator], order: &SignedOrder) -> Certificate {
        let net = *validators[0].network();
        let votes: Vec<Vote> = validators
            .iter_mut()
            .take(3)
            .map(|v| v.handle_order(order, true).unwrap())
            .collect();
        Certificate::new(*order, &net, votes)
    }

    #[test]
    fn intro_pays_the_faucet_exactly_once() {
        let (contract, keys) = network(4, &[]);
        let mut vs = validators(&contract, &keys);
        let net = contract.id();
        let alice = user(1);
        let nonce = IntroPowHasher::new(&alice.account())
            .search(0..100_000, BITS)
            .unwrap();
        let intro = SignedOrder::sign(
            Order::IntroKey(IntroKey {
                account: alice.account(),
                proof_of_work: nonce,
            }),
            &alice,
            &net,
        );
        let cert = certify(&mut vs, &intro);
        cert.verify(vs[0].committee(), &net).unwrap();
        assert_eq!(
            vs[0].handle_certificate(&cert, true),
            Ok(Applied { new: true })
        );
        assert_eq!(
            vs[0].handle_certificate(&cert, true),
            Ok(Applied { new: false })
        );
        assert_eq!(vs[0].account(&alice.account()).balance, 10_000_000);
        assert_eq!(vs[0].supply(), Amount::from_microcash(10_000_000));
        assert_eq!(
            vs[0].handle_order(&intro, true),
            Err(LedgerError::AlreadyIntroduced(alice.account()))
        );
        // A second intro with another nonce is refused by a validator that locked the first.
        let other = IntroPowHasher::new(&alice.account())
            .search(nonce + 1..200_000, BITS)
            .unwrap();
        let intro2 = SignedOrder::sign(
            Order::IntroKey(IntroKey {
                account: alice.account(),
                proof_of_work: other,
            }),
            &alice,
            &net,
        );
        assert!(matches!(
            vs[1].handle_order(&intro2, true),
            Err(LedgerError::Conflict { .. })
        ));
    }

    #[test]
    fn bad_proof_of_work_gets_no_vote() {
        let (contract, keys) = network(4, &[]);
        let mut vs = validators(&contract, &keys);
        let net = contract.id();
        let alice = user(1);
        let bad = (0..)
            .find(|n| !check_intro_pow(&alice.account(), *n, BITS))
            .unwrap();
        let intro = SignedOrder::sign(
            Order::IntroKey(IntroKey {
                account: alice.account(),
                proof_of_work: bad,
            }),
            &alice,
            &net,
        );
        assert_eq!(
            vs[0].handle_order(&intro, true),
            Err(LedgerError::BadProofOfWork { bits: BITS })
        );
        assert!(vs[0].take_changes().is_empty());
    }

    #[test]
    fn refusals_change_nothing() {
        let alice = user(1);
        let bob = user(2);
        let (contract, keys) = network(4, &[(alice.account(), 100)]);
        let mut vs = validators(&contract, &keys);
        let net = contract.id();
        let cases = [
            (transfer(&alice, bob.account(), 101, 0, &net), true),
            (transfer(&alice, bob.account(), 0, 0, &net), true),
            (transfer(&alice, bob.account(), 10, 1, &net), true),
            (transfer(&alice, alice.account(), 10, 0, &net), true),
            (transfer(&alice, bob.account(), 10, 0, &net), false),
        ];
        for (order, signature_ok) in cases {
            assert!(vs[0].handle_order(&order, signature_ok).is_err());
            assert!(vs[0].take_changes().is_empty());
        }
        assert_eq!(
            vs[0].account(&alice.account()),
            AccountState {
                balance: 100,
                next_sequence: 0,
                introduced: false
            }
        );
    }

    #[test]
    fn certificates_apply_in_sequence_and_idempotently() {
        let alice = user(1);
        let bob = user(2);
        let (contract, keys) = network(4, &[(alice.account(), 100)]);
        let mut vs = validators(&contract, &keys);
        let net = contract.id();
        let first = transfer(&alice, bob.account(), 30, 0, &net);
        let c1 = certify(&mut vs[..3], &first);
        for v in vs.iter_mut().take(3) {
            v.handle_certificate(&c1, true).unwrap();
        }
        let second = transfer(&alice, bob.account(), 50, 1, &net);
        let c2 = certify(&mut vs[..3], &second);
        // The fourth validator saw neither: the second certificate must wait for the first.
        assert_eq!(
            vs[3].handle_certificate(&c2, true),
            Err(LedgerError::MissingPredecessor {
                expected: 0,
                got: 1
            })
        );
        assert_eq!(
            vs[3].handle_certificate(&c1, true),
            Ok(Applied { new: true })
        );
        assert_eq!(
            vs[3].handle_certificate(&c2, true),
            Ok(Applied { new: true })
        );
        assert_eq!(
            vs[3].handle_certificate(&c1, true),
            Ok(Applied { new: false })
        );
        assert_eq!(vs[3].account(&alice.account()).balance, 20);
        assert_eq!(vs[3].account(&bob.account()).balance, 80);
        assert_eq!(vs[3].log_len(), 2);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Intro(u8),
        Pay { from: u8, to: u8, amount: u64 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..6).prop_map(Op::Intro),
            (0u8..6, 0u8..6, 0u64..30_000_000).prop_map(|(from, to, amount)| Op::Pay {
                from,
                to,
                amount
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Transfers move microcash without creating or destroying any; only intros mint,
        /// each key once, by exactly the faucet amount.
        #[test]
        fn supply_is_conserved_and_grows_only_by_faucet_mints(ops in proptest::collection::vec(op(), 1..40)) {
            let genesis_holder = user(0);
            let (contract, keys) = network(4, &[(genesis_holder.account(), 5_000_000)]);
            let mut vs = validators(&contract, &keys);
            let net = contract.id();
            let users: Vec<SecretKey> = (0..6).map(user).collect();
            let mut introduced = HashSet::new();
            for op in ops {
                match op {
                    Op::Intro(i) => {
                        let key = &users[usize::from(i)];
                        let nonce = IntroPowHasher::new(&key.account()).search(0..100_000, BITS).unwrap();
                        let intro = SignedOrder::sign(Order::IntroKey(IntroKey { account: key.account(), proof_of_work: nonce }), key, &net);
                        let votes: Vec<Vote> = vs.iter_mut().filter_map(|v| v.handle_order(&intro, true).ok()).collect();
                        if votes.len() >= 3 {
                            let cert = Certificate::new(intro, &net, votes);
                            for v in vs.iter_mut() { v.handle_certificate(&cert, true).unwrap(); }
                            introduced.insert(i);
                        }
                    }
                    Op::Pay { from, to, amount } => {
                        let key = &users[usize::from(from)];
                        let seq = vs[0].account(&key.account()).next_sequence;
                        let order = transfer(key, users[usize::from(to)].account(), amount, seq, &net);
                        let votes: Vec<Vote> = vs.iter_mut().filter_map(|v| v.handle_order(&order, true).ok()).collect();
                        if votes.len() >= 3 {
                            let cert = Certificate::new(order, &net, votes);
                            for v in vs.iter_mut() { v.handle_certificate(&cert, true).unwrap(); }
                        }
                    }
                }
                for v in &vs {
                    let total: i128 = v.accounts().map(|(_, a)| a.balance).sum();
                    let expected = 5_000_000 + 10_000_000 * introduced.len() as i128;
                    prop_assert_eq!(total, expected);
                    prop_assert_eq!(i128::from(v.supply().microcash()), expected);
                    prop_assert!(v.accounts().all(|(_, a)| a.balance >= 0));
                }
            }
        }

        /// Whatever order conflicting requests arrive in, and with up to f validators that
        /// vote for everything, at most one certificate can form per lock slot.
        #[test]
        fn at_most_one_certificate_per_lock_slot(
            deliveries in proptest::collection::vec((0usize..4, 0usize..3), 1..40),
            byzantine in 0usize..4,
        ) {
            let alice = user(1);
            let (contract, keys) = network(4, &[(alice.account(), 1_000)]);
            let mut vs = validators(&contract, &keys);
            let net = contract.id();
            let orders: Vec<SignedOrder> = (0..3u8)
                .map(|i| transfer(&alice, user(10 + i).account(), 100 + u64::from(i), 0, &net))
                .collect();
            let mut votes: Vec<HashSet<AccountId>> = vec![HashSet::new(); orders.len()];
            for (validator, order) in deliveries {
                let vote = if validator == byzantine {
                    // A Byzantine validator ignores its locks and signs anything.
                    Some(Vote::sign(&keys[validator], &net, &orders[order].order.digest(&net)))
                } else {
                    vs[validator].handle_order(&orders[order], true).ok()
                };
                if let Some(vote) = vote {
                    prop_assert!(vote.verify(&net, &orders[order].order.digest(&net)));
                    votes[order].insert(vote.validator);
                }
            }
            let certified = votes.iter().filter(|v| v.len() >= 3).count();
            prop_assert!(certified <= 1, "{} certificates for one slot", certified);
        }
    }
}
