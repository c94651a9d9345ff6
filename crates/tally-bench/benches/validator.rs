//! The quorum validator's decide-and-apply path (`tally_ledger::Validator`): a batch of
//! 1024 transfer orders decided, their certificates applied, in memory; and the whole
//! batch made durable in a redb store, as the node's engine does per batch.
//!
//! Signatures are taken as checked (the engine checks them in batches first, measured by
//! the `batch_verify` benchmark); votes are not signed (the engine signs them in parallel).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tally_core::{
    Allocation, Amount, Certificate, Mode, NetworkContract, SecretKey, SignedOrder, Transfer,
    ValidatorInfo, Vote, sha256,
};
use tally_ledger::{LedgerStore, RedbLedgerStore, Validator};

const BATCH: usize = 1024;

struct Setup {
    contract: NetworkContract,
    validator_key: SecretKey,
    orders: Vec<SignedOrder>,
    certificates: Vec<Certificate>,
}

/// A committee of four, `BATCH` funded senders each paying its neighbour once, the
/// orders signed and their certificates assembled from three votes.
fn setup() -> Setup {
    let validators: Vec<SecretKey> = (0..4u8)
        .map(|i| SecretKey::from_bytes([100 + i; 32]))
        .collect();
    let accounts: Vec<SecretKey> = (0..BATCH as u64)
        .map(|i| {
            let seed = sha256(&[b"tally-bench validator", &i.to_le_bytes()]);
            SecretKey::from_bytes(*seed.as_bytes())
        })
        .collect();
    let contract = NetworkContract {
        name: "bench-validator".into(),
        mode: Mode::Quorum,
        unit: "cash".into(),
        faucet: Amount::from_microcash(10_000_000),
        intro_pow_bits: 8,
        validators: validators
            .iter()
            .map(|k| ValidatorInfo {
                key: k.account(),
                address: "127.0.0.1:1".into(),
            })
            .collect(),
        tracker: None,
        genesis: accounts
            .iter()
            .map(|k| Allocation {
                account: k.account(),
                amount: Amount::from_microcash(1_000_000),
            })
            .collect(),
        pow: None,
        max_clock_skew_ms: None,
    };
    let network = contract.id();
    let orders: Vec<SignedOrder> = accounts
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let order = tally_core::Order::Transfer(Transfer {
                sender: key.account(),
                recipient: accounts[(i + 1) % BATCH].account(),
                amount: Amount::from_microcash(1),
                sequence: 0,
            });
            SignedOrder::sign(order, key, &network)
        })
        .collect();
    let certificates = orders
        .iter()
        .map(|order| {
            let digest = order.order.digest(&network);
            let votes: Vec<Vote> = validators[..3]
                .iter()
                .map(|k| Vote::sign(k, &network, &digest))
                .collect();
            Certificate::new(order.clone(), &network, votes)
        })
        .collect();
    Setup {
        contract,
        validator_key: validators[0].clone(),
        orders,
        certificates,
    }
}

/// A validator holding the genesis, its changes taken (as after loading a store).
fn fresh_validator(setup: &Setup) -> Validator {
    let mut validator = Validator::new(setup.validator_key.clone(), &setup.contract).unwrap();
    validator.apply_genesis(&setup.contract).unwrap();
    validator.take_changes();
    validator
}

fn decide_and_apply(validator: &mut Validator, setup: &Setup) {
    for order in &setup.orders {
        black_box(validator.decide_order(order, true).unwrap());
    }
    for certificate in &setup.certificates {
        assert!(validator.handle_certificate(certificate, true).unwrap().new);
    }
}

fn validator(c: &mut Criterion) {
    let setup = setup();
    let mut group = c.benchmark_group("validator");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("decide_1024_orders", |b| {
        b.iter_batched(
            || fresh_validator(&setup),
            |mut validator| {
                for order in &setup.orders {
                    black_box(validator.decide_order(order, true).unwrap());
                }
                validator
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("apply_1024_certificates", |b| {
        b.iter_batched(
            || fresh_validator(&setup),
            |mut validator| {
                for certificate in &setup.certificates {
                    assert!(validator.handle_certificate(certificate, true).unwrap().new);
                }
                validator
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("decide_apply_1024_transfers", |b| {
        b.iter_batched(
            || fresh_validator(&setup),
            |mut validator| {
                decide_and_apply(&mut validator, &setup);
                black_box(validator.take_snapshot())
            },
            BatchSize::SmallInput,
        )
    });
    // The batch made durable: one redb commit, as the engine makes one per batch.
    group.sample_size(10);
    group.bench_function("decide_apply_commit_1024_transfers_redb", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().unwrap();
                let store =
                    RedbLedgerStore::open(&dir.path().join("ledger.redb"), 64 << 20).unwrap();
                let mut validator =
                    Validator::new(setup.validator_key.clone(), &setup.contract).unwrap();
                store.load(&mut validator, &setup.contract).unwrap();
                validator.take_changes();
                (dir, store, validator)
            },
            |(dir, store, mut validator)| {
                decide_and_apply(&mut validator, &setup);
                let snapshot = validator.take_snapshot();
                store.commit_snapshot(&snapshot, &[]).unwrap();
                store.checkpoint_if_due().unwrap();
                (dir, store)
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, validator);
criterion_main!(benches);
