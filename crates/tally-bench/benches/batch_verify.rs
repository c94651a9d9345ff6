//! `tally_core::BatchVerifier`: the cost of checking 1, 64 and 1024 order signatures as one
//! batch (queueing included), per batch and per signature.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tally_core::{
    Amount, BatchVerifier, NetworkId, Order, SecretKey, SignedOrder, Transfer, sha256,
};

/// `count` transfer orders, each signed by its own sender.
fn signed_orders(network: &NetworkId, count: usize) -> Vec<SignedOrder> {
    (0..count as u64)
        .map(|i| {
            let seed = sha256(&[b"tally-bench batch_verify", &i.to_le_bytes()]);
            let key = SecretKey::from_bytes(*seed.as_bytes());
            let order = Order::Transfer(Transfer {
                sender: key.account(),
                recipient: SecretKey::from_bytes([7; 32]).account(),
                amount: Amount::from_microcash(1),
                sequence: i,
            });
            SignedOrder::sign(order, &key, network)
        })
        .collect()
}

fn batch_verify(c: &mut Criterion) {
    let network = NetworkId(sha256(&[b"tally-bench batch_verify"]));
    let orders = signed_orders(&network, 1024);
    let messages: Vec<Vec<u8>> = orders
        .iter()
        .map(|o| o.order.signing_bytes(&network))
        .collect();
    // Transfers: every one has a signer.
    let signers: Vec<tally_core::AccountId> =
        orders.iter().filter_map(|o| o.order.signer()).collect();
    let mut group = c.benchmark_group("batch_verify");
    for size in [1usize, 64, 1024] {
        group.throughput(Throughput::Elements(size as u64));
        group.bench_function(format!("signatures_{size}"), |b| {
            b.iter(|| {
                let mut batch = BatchVerifier::with_capacity(size);
                for ((order, signer), message) in orders[..size].iter().zip(&signers).zip(&messages)
                {
                    batch.push(signer, &order.signature, message);
                }
                let verdicts = batch.verify();
                assert!(verdicts.iter().all(|ok| *ok));
                black_box(verdicts)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, batch_verify);
criterion_main!(benches);
