//! The invariants, and what the simulator remembers to check them: every vote any validator
//! gave (honest or not), every certificate any wallet assembled, every acknowledgement.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use tally_core::{
    AccountId, Certificate, EscrowLock, LockSlot, Order, OrderDigest, Signature, SignedOrder,
};
use tally_ledger::Validator;

/// An invariant a run broke: the seed replays it exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub seed: u64,
    pub step: u64,
    pub invariant: String,
    /// The last events before it, oldest first.
    pub trace: Vec<String>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed {} broke an invariant at step {}: {}",
            self.seed, self.step, self.invariant
        )?;
        writeln!(f, "replay: tally sim --seed {}", self.seed)?;
        writeln!(f, "the last {} events:", self.trace.len())?;
        for line in &self.trace {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

/// Signature checks, remembered: a verdict never changes, and the same vote is checked by
/// every validator that receives its certificate.
#[derive(Default)]
pub struct Signatures {
    verdicts: HashMap<(AccountId, Signature, Vec<u8>), bool>,
}

impl Signatures {
    pub fn check(&mut self, signer: &AccountId, signature: &Signature, message: &[u8]) -> bool {
        *self
            .verdicts
            .entry((*signer, *signature, message.to_vec()))
            .or_insert_with(|| signer.verify(signature, message))
    }
}

/// The node's decider asks the simulator's remembered verdicts instead of checking each
/// signature again.
impl tally_node::decider::SignatureOracle for Signatures {
    fn verify(&mut self, signer: &AccountId, signature: &Signature, message: &[u8]) -> bool {
        self.check(signer, signature, message)
    }
}

/// What every party did that the invariants are about.
#[derive(Default)]
pub struct Observer {
    quorum: usize,
    /// Every order any wallet signed, by digest.
    orders: HashMap<OrderDigest, Order>,
    /// Slot → order digest → the validators that gave a vote for it.
    votes: BTreeMap<LockSlot, BTreeMap<OrderDigest, BTreeSet<usize>>>,
    /// Per honest validator: the votes it gave, for the check after a restart.
    given: BTreeMap<usize, BTreeSet<OrderDigest>>,
    /// Per honest validator: the certificates it acknowledged as applied.
    acknowledged: BTreeMap<usize, BTreeSet<OrderDigest>>,
    /// Every certificate assembled, one per slot (a second one is a violation).
    pub certificates: BTreeMap<LockSlot, Certificate>,
    /// Slots for which two different orders were signed.
    pub equivocated: BTreeSet<LockSlot>,
}

impl Observer {
    pub fn new(quorum: usize) -> Self {
        Observer {
            quorum,
            ..Observer::default()
        }
    }

    /// A wallet signed `order`.
    pub fn signed(&mut self, order: &SignedOrder, digest: OrderDigest) {
        self.orders.insert(digest, order.order.clone());
        let slot = order.order.lock_slot();
        let others = self
            .orders
            .iter()
            .filter(|(d, o)| o.lock_slot() == slot && **d != digest)
            .count();
        if others > 0 {
            self.equivocated.insert(slot);
        }
    }

    /// Validator `validator` gave a vote for the order with `digest` (sent it out).
    /// At most one certificate can ever be assembled per slot, by anyone: no two orders of
    /// one slot may both hold a quorum of votes.
    pub fn vote_given(
        &mut self,
        validator: usize,
        honest: bool,
        digest: OrderDigest,
    ) -> Result<(), String> {
        let Some(order) = self.orders.get(&digest) else {
            return Err(format!(
                "validator {validator} voted for an order no wallet signed"
            ));
        };
        let slot = order.lock_slot();
        if honest {
            self.given.entry(validator).or_default().insert(digest);
        }
        let digests = self.votes.entry(slot).or_default();
        digests.entry(digest).or_default().insert(validator);
        let certifiable = digests
            .values()
            .filter(|voters| voters.len() >= self.quorum)
            .count();
        if certifiable > 1 {
            return Err(format!(
                "two orders of slot {slot:?} each hold a quorum of votes: two certificates can be assembled"
            ));
        }
        Ok(())
    }

    /// Whether the votes given in `slot` (by anyone, honest or not) are split so that no
    /// order can reach a quorum even with every one of the `members` validators that still
    /// vote (all but those that withhold their votes) that gave none.
    pub fn is_split(&self, slot: &LockSlot, members: usize) -> bool {
        let Some(digests) = self.votes.get(slot) else {
            return false;
        };
        let voters: BTreeSet<usize> = digests.values().flatten().copied().collect();
        let most = digests.values().map(BTreeSet::len).max().unwrap_or(0);
        digests.len() > 1 && most + members.saturating_sub(voters.len()) < self.quorum
    }

    /// How many (validator, certificate) acknowledgements honest validators gave in all.
    pub fn acknowledgements(&self) -> usize {
        self.acknowledged.values().map(BTreeSet::len).sum()
    }

    /// The votes given in `slot`, per order, for a violation's message.
    pub fn describe_votes(&self, slot: &LockSlot) -> String {
        let Some(digests) = self.votes.get(slot) else {
            return "no votes".into();
        };
        digests
            .iter()
            .map(|(digest, voters)| format!("{digest}: validators {voters:?}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// A wallet assembled `certificate`.
    pub fn assembled(&mut self, certificate: &Certificate) -> Result<(), String> {
        let slot = certificate.order.lock_slot();
        match self.certificates.get(&slot) {
            Some(earlier) if earlier.checksum != certificate.checksum => Err(format!(
                "two certificates for slot {slot:?}: {} (votes of {:?}) and {} (votes of {:?}); votes given in the slot: {}",
                earlier.checksum,
                earlier
                    .votes
                    .iter()
                    .map(|v| v.validator.short())
                    .collect::<Vec<_>>(),
                certificate.checksum,
                certificate
                    .votes
                    .iter()
                    .map(|v| v.validator.short())
                    .collect::<Vec<_>>(),
                self.describe_votes(&slot)
            )),
            Some(_) => Ok(()),
            None => {
                self.certificates.insert(slot, certificate.clone());
                Ok(())
            }
        }
    }

    /// Honest validator `validator` acknowledged the certificate with `digest` as applied.
    pub fn acknowledged(&mut self, validator: usize, digest: OrderDigest) {
        self.acknowledged
            .entry(validator)
            .or_default()
            .insert(digest);
    }

    /// After a restart from its store: every vote the validator gave still blocks a
    /// conflicting order (its slot is still locked for that order, or applied), and every
    /// certificate it acknowledged is still applied.
    pub fn after_restart(&self, index: usize, validator: &Validator) -> Result<(), String> {
        for digest in self.given.get(&index).into_iter().flatten() {
            let Some(order) = self.orders.get(digest) else {
                continue;
            };
            if !validator.is_applied(order) && !validator.has_voted_for(order, digest) {
                return Err(format!(
                    "validator {index} forgot its vote for {digest} in slot {:?} across a crash",
                    order.lock_slot()
                ));
            }
        }
        for digest in self.acknowledged.get(&index).into_iter().flatten() {
            if let Some(order) = self.orders.get(digest)
                && !validator.is_applied(order)
            {
                return Err(format!(
                    "validator {index} acknowledged {digest} and lost it across a crash"
                ));
            }
        }
        Ok(())
    }
}

/// Money is neither created nor destroyed: the validator's supply is the genesis, and its
/// balances plus what its open escrows hold add up to it.
pub fn conservation(index: usize, validator: &Validator, genesis: i128) -> Result<(), String> {
    let supply = i128::from(validator.supply().microcash());
    let held: i128 = validator.accounts().map(|(_, state)| state.balance).sum();
    let escrowed = i128::from(validator.escrowed().microcash());
    if supply != genesis || held + escrowed != supply {
        return Err(format!(
            "validator {index}: supply {supply}, balances {held} and escrowed {escrowed}, genesis {genesis}"
        ));
    }
    Ok(())
}

/// An account as the end state compares it.
pub type Ledger = BTreeMap<AccountId, (i128, u64)>;

/// A validator's accounts, leaving out the ones it holds nothing about.
pub fn ledger_of(validator: &Validator) -> Ledger {
    validator
        .accounts()
        .filter(|(_, state)| state.balance != 0 || state.next_sequence != 0)
        .map(|(account, state)| (*account, (state.balance, state.next_sequence)))
        .collect()
}

/// The ledger every honest validator must end with: the genesis, then every certificate
/// assembled, each applied exactly once.
pub fn expected_ledger(genesis: &[(AccountId, i128)], observer: &Observer) -> Ledger {
    let mut ledger: Ledger = genesis
        .iter()
        .map(|(account, amount)| (*account, (*amount, 0)))
        .collect();
    // Escrows by id: what their claim or refund pays, and to whom.
    let locks: BTreeMap<OrderDigest, EscrowLock> = observer
        .certificates
        .values()
        .filter_map(|c| match &c.order {
            Order::EscrowLock(lock) => Some((c.checksum, **lock)),
            _ => None,
        })
        .collect();
    for certificate in observer.certificates.values() {
        let order = &certificate.order;
        let settled = match order {
            Order::EscrowClaim(claim) => locks.get(&claim.escrow).map(|l| (l.payee, l.amount)),
            Order::EscrowRefund(refund) => locks.get(&refund.escrow).map(|l| (l.payer, l.amount)),
            _ => None,
        };
        if let Some((to, amount)) = settled {
            ledger.entry(to).or_default().0 += i128::from(amount.microcash());
            continue;
        }
        let Some(signer) = order.signer() else {
            continue;
        };
        let mut total = 0i128;
        for payment in order.payments() {
            let amount = i128::from(payment.amount.microcash());
            total += amount;
            ledger.entry(payment.recipient).or_default().0 += amount;
        }
        if let Order::EscrowLock(lock) = order {
            total += i128::from(lock.amount.microcash());
        }
        let sender = ledger.entry(signer).or_default();
        sender.0 -= total;
        sender.1 += 1;
    }
    ledger.retain(|_, (balance, sequence)| *balance != 0 || *sequence != 0);
    ledger
}
