//! A small network for the store's tests: a committee of four fixed keys and three
//! accounts, and on [`Network::with_escrows`] the escrows between them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use tally_core::{
    AccountId, Allocation, Amount, Certificate, EscrowClaim, EscrowId, EscrowLock, EscrowRefund,
    EscrowSecret, IntroKey, Mode, NetworkContract, NetworkId, Order, Payment, SecretKey,
    SignedOrder, Split, Transfer, ValidatorInfo, Vote,
};

use crate::state::{AccountState, EscrowState, Validator};
use crate::store::ledger_store::LedgerStore;

/// ε, the clock skew bound of [`Network::with_escrows`].
pub(crate) const SKEW_MS: u64 = 1_000;
/// The validators' clock when escrows are locked and claimed.
pub(crate) const NOW_MS: u64 = 1_700_000_000_000;
/// Every escrow's deadline: a minute after [`NOW_MS`]; refunds are voted from
/// `DEADLINE_MS + SKEW_MS`.
pub(crate) const DEADLINE_MS: u64 = NOW_MS + 60_000;

/// The committee's keys, alice, bob and carol, of whom the first `funded` of alice and bob
/// hold 1000 microcash at genesis; the faucet pays 10.
pub(crate) struct Network {
    pub(crate) contract: NetworkContract,
    pub(crate) net: NetworkId,
    pub(crate) keys: Vec<SecretKey>,
    pub(crate) alice: SecretKey,
    pub(crate) bob: SecretKey,
    pub(crate) carol: SecretKey,
}

impl Network {
    pub(crate) fn new(name: &str, funded: usize) -> Self {
        let keys: Vec<SecretKey> = (0..4u8)
            .map(|i| SecretKey::from_bytes([i + 1; 32]))
            .collect();
        let alice = SecretKey::from_bytes([0xa1; 32]);
        let bob = SecretKey::from_bytes([0xb0; 32]);
        let carol = SecretKey::from_bytes([0xc0; 32]);
        let contract = NetworkContract {
            name: name.into(),
            mode: Mode::Quorum,
            unit: "cash".into(),
            faucet: Amount::from_microcash(10),
            intro_pow_bits: 0,
            validators: keys
                .iter()
                .map(|k| ValidatorInfo {
                    key: k.account(),
                    address: "127.0.0.1:1".into(),
                })
                .collect(),
            tracker: None,
            genesis: [&alice, &bob]
                .iter()
                .take(funded)
                .map(|k| Allocation {
                    account: k.account(),
                    amount: Amount::from_microcash(1000),
                })
                .collect(),
            pow: None,
            max_clock_skew_ms: None,
        };
        let net = contract.id();
        Network {
            contract,
            net,
            keys,
            alice,
            bob,
            carol,
        }
    }

    /// [`Self::new`] on a contract that takes escrows: it declares a clock skew bound.
    pub(crate) fn with_escrows(name: &str, funded: usize) -> Self {
        let mut network = Self::new(name, funded);
        network.contract.max_clock_skew_ms = Some(SKEW_MS);
        network.net = network.contract.id();
        network
    }

    /// The three accounts.
    pub(crate) fn everyone(&self) -> [AccountId; 3] {
        [
            self.alice.account(),
            self.bob.account(),
            self.carol.account(),
        ]
    }

    /// The first validator, loaded from `store`.
    pub(crate) fn load(&self, store: &impl LedgerStore) -> Validator {
        let mut validator = Validator::new(self.keys[0].clone(), &self.contract).unwrap();
        store.load(&mut validator, &self.contract).unwrap();
        validator
    }

    pub(crate) fn pay(
        &self,
        from: &SecretKey,
        to: &SecretKey,
        amount: u64,
        sequence: u64,
    ) -> SignedOrder {
        SignedOrder::sign(
            Order::Transfer(Transfer {
                sender: from.account(),
                recipient: to.account(),
                amount: Amount::from_microcash(amount),
                sequence,
            }),
            from,
            &self.net,
        )
    }

    /// `from` pays each of `to` its amount in one split order.
    pub(crate) fn split(
        &self,
        from: &SecretKey,
        to: &[(&SecretKey, u64)],
        sequence: u64,
    ) -> SignedOrder {
        SignedOrder::sign(
            Order::Split(Split {
                sender: from.account(),
                sequence,
                outputs: to
                    .iter()
                    .map(|(recipient, amount)| Payment {
                        recipient: recipient.account(),
                        amount: Amount::from_microcash(*amount),
                    })
                    .collect(),
            }),
            from,
            &self.net,
        )
    }

    pub(crate) fn intro(&self, key: &SecretKey, proof_of_work: u64) -> SignedOrder {
        SignedOrder::sign(
            Order::IntroKey(IntroKey {
                account: key.account(),
                proof_of_work,
            }),
            key,
            &self.net,
        )
    }

    /// `payer` locks `amount` for `payee` until [`DEADLINE_MS`] under the hash of `secret`.
    pub(crate) fn escrow_lock(
        &self,
        payer: &SecretKey,
        payee: &SecretKey,
        amount: u64,
        sequence: u64,
        secret: &EscrowSecret,
    ) -> SignedOrder {
        SignedOrder::sign(
            Order::from(EscrowLock {
                payer: payer.account(),
                sequence,
                payee: payee.account(),
                amount: Amount::from_microcash(amount),
                hash_lock: secret.hash_lock(),
                deadline: DEADLINE_MS,
                counterpart: None,
            }),
            payer,
            &self.net,
        )
    }

    /// The id of the escrow a lock order opens: the order's digest.
    pub(crate) fn escrow_id(&self, lock: &SignedOrder) -> EscrowId {
        lock.order.digest(&self.net)
    }

    /// The claim of escrow `escrow` with `secret`, which nobody signs.
    pub(crate) fn claim(&self, escrow: EscrowId, secret: EscrowSecret) -> SignedOrder {
        SignedOrder::unsigned(Order::EscrowClaim(EscrowClaim { escrow, secret }))
    }

    /// The refund of escrow `escrow`, which nobody signs.
    pub(crate) fn refund(&self, escrow: EscrowId) -> SignedOrder {
        SignedOrder::unsigned(Order::EscrowRefund(EscrowRefund { escrow }))
    }

    /// `order` with the votes of the first three validators.
    pub(crate) fn certificate(&self, order: SignedOrder) -> Certificate {
        let digest = order.order.digest(&self.net);
        let votes = self.keys[..3]
            .iter()
            .map(|k| Vote::sign(k, &self.net, &digest))
            .collect();
        Certificate::new(order, &self.net, votes)
    }
}

/// Every account of `validator`, in key order.
pub(crate) fn accounts(validator: &Validator) -> Vec<(AccountId, AccountState)> {
    let mut accounts: Vec<(AccountId, AccountState)> =
        validator.accounts().map(|(a, s)| (*a, *s)).collect();
    accounts.sort_unstable_by_key(|(a, _)| *a);
    accounts
}

/// Every escrow of `validator`, in id order.
pub(crate) fn escrows(validator: &Validator) -> Vec<(EscrowId, EscrowState)> {
    let mut escrows: Vec<(EscrowId, EscrowState)> =
        validator.escrows().map(|(id, e)| (*id, *e)).collect();
    escrows.sort_unstable_by_key(|(id, _)| *id);
    escrows
}

/// Asserts that `validator` holds its whole supply: every balance, plus what open escrows
/// hold, which is in no balance.
pub(crate) fn assert_conserved(validator: &Validator, case: &str) {
    let balances: i128 = validator.accounts().map(|(_, s)| s.balance).sum();
    assert_eq!(
        balances + i128::from(validator.escrowed().microcash()),
        i128::from(validator.supply().microcash()),
        "{case}: money was made or lost"
    );
}

/// The secret of escrow tests, numbered.
pub(crate) fn secret(n: u8) -> EscrowSecret {
    EscrowSecret::from([0x50 + n; 32])
}

/// Everything a reader can see of a store about `accounts`, for comparing two stores.
pub(crate) fn view(store: &impl LedgerStore, accounts: &[AccountId]) -> Vec<String> {
    let mut out = Vec::new();
    for account in accounts {
        // Small pages, so that pages straddle the checkpointed rows and the pending ones.
        let mut from = 0;
        loop {
            let (page, next) = store.sent(account, from, 2).unwrap();
            out.extend(
                page.iter()
                    .map(|(i, c)| format!("sent {account} {i} {c:?}")),
            );
            match next {
                Some(next) => from = next,
                None => break,
            }
        }
        let mut since = 0;
        loop {
            let (page, next) = store.touching(account, since, 3).unwrap();
            out.extend(page.iter().map(|(i, _)| format!("touching {account} {i}")));
            match next {
                Some(next) => since = next,
                None => break,
            }
        }
    }
    let mut after = None;
    loop {
        let page = store.accounts_page(after.as_ref(), 1).unwrap();
        let Some((last, _)) = page.last() else { break };
        after = Some(*last);
        out.extend(page.iter().map(|(a, s)| format!("account {a} {s:?}")));
    }
    let mut since = 0;
    loop {
        let (page, next) = store.certificates_since(since, 4).unwrap();
        out.extend(page.iter().map(|(i, c)| format!("log {i} {c:?}")));
        match next {
            Some(next) => since = next,
            None => break,
        }
    }
    out
}
