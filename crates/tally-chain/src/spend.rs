//! What a transaction does: the one view of a transaction that the mempool, templates,
//! block checks and state application share. A `Transfer`, a `Split` and an `EscrowLock`
//! are spends and follow exactly the same rules (one sender, one sequence, a total debited
//! all or nothing, each payment credited; a lock pays nobody yet, its money goes into the
//! escrow) without a match arm per kind in every place. An `EscrowClaim` or `EscrowRefund`
//! is a settlement: no sender, no signature, the escrow's own slot (DESIGN §8).

use std::slice;

use tally_core::{
    AccountId, Amount, EscrowId, EscrowLock, EscrowSecret, EscrowShapeError, NetworkId, Order,
    Payment, SplitError,
};

use crate::block::Transaction;
use crate::error::{BlockError, TxRejected};

/// A transaction seen as a spend from one account: the sender's lock slot
/// `(sender, sequence)`, the total it is debited, and who is credited what. Only orders
/// that pass their own shape rules have one (see [`Spend::of`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spend<'a> {
    /// The account debited, which signed the order.
    pub sender: AccountId,
    /// The sender's sequence number this spend uses.
    pub sequence: u64,
    /// What the sender is debited: the sum of the payments, never zero.
    pub total: Amount,
    payments: Payments<'a>,
}

/// The outputs without copying a split's list or allocating for a transfer's one payment
/// (blocks apply thousands of transfers).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Payments<'a> {
    One(Payment),
    Many(&'a [Payment]),
}

/// Why a transaction is not a spend the chain can ever apply, whatever the accounts hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpendError {
    /// A kind of order that moves no cash between accounts (an `IntroKey`).
    #[error("a {0} order spends nothing; a proof-of-work network takes transfers and splits")]
    NotASpend(&'static str),
    /// A transfer of zero.
    #[error("the transfer moves nothing")]
    ZeroAmount,
    /// A split that breaks its shape rules (PROTOCOL §3).
    #[error("malformed split: {0}")]
    MalformedSplit(SplitError),
    /// An escrow lock that breaks its shape rules.
    #[error("malformed escrow lock: {0}")]
    MalformedEscrow(EscrowShapeError),
}

/// The claim or refund of one escrow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settle {
    /// The escrow settled.
    pub escrow: EscrowId,
    /// The secret a claim shows; `None` for a refund.
    pub secret: Option<EscrowSecret>,
}

/// What a transaction does to the chain's state, once its shape is valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect<'a> {
    /// A transfer, a split, or an escrow lock (`lock` is then set: the spend's total goes
    /// into the new escrow).
    Spend {
        spend: Spend<'a>,
        lock: Option<&'a EscrowLock>,
    },
    /// An escrow's claim or refund.
    Settle(Settle),
}

impl<'a> Effect<'a> {
    /// The effect of `tx` on the chain of `network`: a spend ([`Spend::of`]), an escrow
    /// lock whose shape is valid there, or a settlement.
    pub fn of(tx: &'a Transaction, network: &NetworkId) -> Result<Self, SpendError> {
        match &tx.order {
            Order::EscrowLock(lock) => {
                lock.check_shape(network)
                    .map_err(SpendError::MalformedEscrow)?;
                Ok(Effect::Spend {
                    spend: Spend::of(tx)?,
                    lock: Some(lock),
                })
            }
            Order::EscrowClaim(claim) => Ok(Effect::Settle(Settle {
                escrow: claim.escrow,
                secret: Some(claim.secret),
            })),
            Order::EscrowRefund(refund) => Ok(Effect::Settle(Settle {
                escrow: refund.escrow,
                secret: None,
            })),
            _ => Ok(Effect::Spend {
                spend: Spend::of(tx)?,
                lock: None,
            }),
        }
    }
}

impl<'a> Spend<'a> {
    /// The spend `tx` makes: a transfer of a positive amount, a well-formed split (1 to 64
    /// outputs, none zero, none to the sender, no recipient twice, a total that fits), or
    /// an escrow lock of a positive amount (which pays nobody: its payee is paid only by a
    /// claim). The lock's other shape rules need the network: see [`Effect::of`].
    pub fn of(tx: &'a Transaction) -> Result<Self, SpendError> {
        match &tx.order {
            Order::Transfer(t) if t.amount.is_zero() => Err(SpendError::ZeroAmount),
            Order::Transfer(t) => Ok(Spend {
                sender: t.sender,
                sequence: t.sequence,
                total: t.amount,
                payments: Payments::One(Payment {
                    recipient: t.recipient,
                    amount: t.amount,
                }),
            }),
            Order::Split(split) => {
                let total = split.total().map_err(SpendError::MalformedSplit)?;
                Ok(Spend {
                    sender: split.sender,
                    sequence: split.sequence,
                    total,
                    payments: Payments::Many(&split.outputs),
                })
            }
            Order::EscrowLock(lock) if lock.amount.is_zero() => Err(SpendError::ZeroAmount),
            Order::EscrowLock(lock) => Ok(Spend {
                sender: lock.payer,
                sequence: lock.sequence,
                total: lock.amount,
                payments: Payments::Many(&[]),
            }),
            Order::IntroKey(_) | Order::EscrowClaim(_) | Order::EscrowRefund(_) => {
                Err(SpendError::NotASpend(tx.order.kind_name()))
            }
        }
    }

    /// Who is credited what, in order. A transfer's single recipient may be its sender; a
    /// split's recipients are distinct and never the sender.
    pub fn payments(&self) -> &[Payment] {
        match &self.payments {
            Payments::One(payment) => slice::from_ref(payment),
            Payments::Many(payments) => payments,
        }
    }

    /// What `account` receives from this spend (zero if it is not paid). Recipients are
    /// distinct, so at most one payment matches.
    pub fn paid_to(&self, account: &AccountId) -> Amount {
        self.payments()
            .iter()
            .find(|p| p.recipient == *account)
            .map_or(Amount::ZERO, |p| p.amount)
    }
}

/// The lock slot `(signer, sequence)` of a transaction that has one, whatever its shape:
/// the mempool and the recent-block index are keyed by it.
pub fn slot(tx: &Transaction) -> Option<(AccountId, u64)> {
    tx.order.spender()
}

impl SpendError {
    /// The block rule this breaks, for the transaction at `index`.
    pub fn in_block(self, index: usize) -> BlockError {
        match self {
            SpendError::NotASpend(kind) => BlockError::NotASpend { index, kind },
            SpendError::ZeroAmount => BlockError::ZeroAmount { index },
            SpendError::MalformedSplit(reason) => BlockError::MalformedSplit { index, reason },
            SpendError::MalformedEscrow(reason) => BlockError::MalformedEscrow { index, reason },
        }
    }
}

impl From<SpendError> for TxRejected {
    fn from(error: SpendError) -> Self {
        match error {
            SpendError::NotASpend(kind) => TxRejected::NotASpend { kind },
            SpendError::ZeroAmount => TxRejected::ZeroAmount,
            SpendError::MalformedSplit(reason) => TxRejected::MalformedSplit(reason),
            SpendError::MalformedEscrow(reason) => TxRejected::MalformedEscrow(reason),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tally_core::{IntroKey, NetworkId, SecretKey, Split, Transfer};

    fn signed(order: Order) -> Transaction {
        let key = SecretKey::from_bytes([5; 32]);
        Transaction::sign(order, &key, &NetworkId(tally_core::Digest::default()))
    }

    fn micro(n: u64) -> Amount {
        Amount::from_microcash(n)
    }

    /// A transfer and a split are the same kind of thing to the chain: one sender, one
    /// sequence, a total and the payments; an introduction is not a spend, and a zero
    /// transfer or malformed split has no spend at all (so nothing can apply half of it).
    #[test]
    fn transfers_and_splits_are_spends_and_nothing_else_is() {
        let sender = SecretKey::from_bytes([5; 32]).account();
        let (b, c) = (AccountId::from([1; 32]), AccountId::from([2; 32]));
        let transfer = signed(Order::Transfer(Transfer {
            sender,
            recipient: b,
            amount: micro(7),
            sequence: 3,
        }));
        let spend = Spend::of(&transfer).unwrap();
        assert_eq!(
            (spend.sender, spend.sequence, spend.total),
            (sender, 3, micro(7))
        );
        assert_eq!(spend.payments().len(), 1);
        assert_eq!(
            (spend.paid_to(&b), spend.paid_to(&c)),
            (micro(7), Amount::ZERO)
        );
        assert_eq!(slot(&transfer), Some((sender, 3)));

        let outputs = vec![
            Payment {
                recipient: b,
                amount: micro(2),
            },
            Payment {
                recipient: c,
                amount: micro(5),
            },
        ];
        let split = signed(Order::Split(Split {
            sender,
            sequence: 3,
            outputs: outputs.clone(),
        }));
        let spend = Spend::of(&split).unwrap();
        assert_eq!((spend.total, spend.payments()), (micro(7), &outputs[..]));
        assert_eq!(spend.paid_to(&c), micro(5));
        assert_eq!(
            slot(&split),
            slot(&transfer),
            "one lock slot for both kinds"
        );

        let zero = signed(Order::Transfer(Transfer {
            sender,
            recipient: b,
            amount: Amount::ZERO,
            sequence: 0,
        }));
        assert_eq!(Spend::of(&zero), Err(SpendError::ZeroAmount));
        let empty = signed(Order::Split(Split {
            sender,
            sequence: 0,
            outputs: vec![],
        }));
        assert_eq!(
            Spend::of(&empty),
            Err(SpendError::MalformedSplit(SplitError::OutputCount(0)))
        );
        let intro = signed(Order::IntroKey(IntroKey {
            account: sender,
            proof_of_work: 0,
        }));
        assert_eq!(Spend::of(&intro), Err(SpendError::NotASpend("IntroKey")));
        assert_eq!(slot(&intro), None);
        assert_eq!(
            SpendError::NotASpend("IntroKey").in_block(4),
            BlockError::NotASpend {
                index: 4,
                kind: "IntroKey"
            }
        );
    }
}
