//! The encodings every order and certificate goes through: the signing bytes, the digest
//! votes sign, the canonical binary codec (the validator's certificate log, proof-of-work
//! transactions and blocks) and the certificate's JSON (the wire and the wallet's receipts),
//! side by side in one group, `codec`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tally_core::{
    Amount, Certificate, Decode, Encode, NetworkId, Order, SecretKey, SignedOrder, Transaction,
    Transfer, Vote, sha256,
};

fn transfer_certificate() -> (NetworkId, Order, Certificate) {
    let network = NetworkId(sha256(&[b"tally-bench codec"]));
    let sender = SecretKey::from_bytes([1; 32]);
    let order = Order::Transfer(Transfer {
        sender: sender.account(),
        recipient: SecretKey::from_bytes([2; 32]).account(),
        amount: Amount::from_microcash(1_234_567),
        sequence: 42,
    });
    let signed = SignedOrder::sign(order.clone(), &sender, &network);
    let digest = order.digest(&network);
    // A quorum of a committee of four: three votes.
    let votes: Vec<Vote> = (10..13u8)
        .map(|i| Vote::sign(&SecretKey::from_bytes([i; 32]), &network, &digest))
        .collect();
    (network, order, Certificate::new(signed, &network, votes))
}

fn codec(c: &mut Criterion) {
    let (network, order, certificate) = transfer_certificate();
    let json = serde_json::to_vec(&certificate).unwrap();
    let mut group = c.benchmark_group("codec");
    group.bench_function("order_signing_bytes", |b| {
        b.iter(|| black_box(&order).signing_bytes(black_box(&network)))
    });
    group.bench_function("order_digest", |b| {
        b.iter(|| black_box(&order).digest(black_box(&network)))
    });
    let binary = certificate.to_bytes();
    group.bench_function("certificate_encode", |b| {
        let mut out = Vec::with_capacity(binary.len());
        b.iter(|| {
            out.clear();
            black_box(&certificate).encode_to(&mut out);
            black_box(out.len())
        })
    });
    group.bench_function("certificate_decode", |b| {
        b.iter(|| Certificate::from_bytes(black_box(&binary)).unwrap())
    });
    let transaction = Transaction::from(certificate.signed_order());
    let transaction_bytes = transaction.to_bytes();
    group.bench_function("transaction_decode", |b| {
        b.iter(|| Transaction::from_bytes(black_box(&transaction_bytes)).unwrap())
    });
    group.bench_function("certificate_to_json", |b| {
        b.iter(|| serde_json::to_vec(black_box(&certificate)).unwrap())
    });
    group.bench_function("certificate_from_json", |b| {
        b.iter(|| serde_json::from_slice::<Certificate>(black_box(&json)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
