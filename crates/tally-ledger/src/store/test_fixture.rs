//! A small network for the store's tests: a committee of four fixed keys and three
//! accounts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use tally_core::{
    AccountId, Allocation, Amount, Certificate, IntroKey, Mode, NetworkContract, NetworkId, Order,
    Payment, SecretKey, SignedOrder, Split, Transfer, ValidatorInfo, Vote,
};

use crate::state::{AccountState, Validator};
use crate::store::ledger_store::LedgerStore;

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
