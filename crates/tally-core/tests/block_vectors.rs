//! The test vectors of PROTOCOL.md §8 (proof-of-work chain): the document's values are
//! parsed from the file itself and recomputed here, so the document cannot drift from the
//! code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use tally_core::block::HEADER_VERSION;
use tally_core::{
    Amount, Block, BlockHeader, Coinbase, Decode, Encode, IntroKey, NetworkId, SecretKey,
    Transaction, Transfer, U256, genesis_hash, merkle_root,
};

const DOC: &str = include_str!("../../../PROTOCOL.md");

/// The `name = hex` lines of the document's vector block.
fn documented() -> HashMap<String, String> {
    let start = DOC.find("```vectors").expect("a ```vectors block");
    let body = &DOC[start + "```vectors".len()..];
    let end = body.find("```").expect("the block ends");
    body[..end]
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

pub fn computed() -> Vec<(&'static str, String)> {
    let network = NetworkId(tally_core::sha256(&[b"tally test vector network"]));
    let alice = SecretKey::from_bytes([0xa1; 32]);
    let bob = SecretKey::from_bytes([0xb0; 32]);
    let miner_key = SecretKey::from_bytes([0x33; 32]);
    let tx = Transaction::sign(
        Transfer {
            sender: alice.account(),
            recipient: bob.account(),
            amount: Amount::from_microcash(1_504_000),
            sequence: 0,
        },
        &alice,
        &network,
    );
    let coinbase = Coinbase {
        miner: miner_key.account(),
        amount: Amount::from_microcash(50_000_000),
        height: 1,
    };
    let mut block = Block {
        header: BlockHeader {
            version: HEADER_VERSION,
            network,
            height: 1,
            previous: genesis_hash(&network),
            merkle_root: Default::default(),
            timestamp_ms: 1_700_000_000_000,
            target: U256::from_leading_zero_bits(8),
            nonce: 0,
        },
        coinbase,
        transactions: vec![tx.clone()],
    };
    block.header.merkle_root = merkle_root(block.leaves());
    // The first nonce that meets the target.
    while !block.header.meets_own_target() {
        block.header.nonce += 1;
    }
    // Alice's intro with the proof of work the §6 vectors use (valid at 8 bits); its
    // signature covers the key but not the nonce (PROTOCOL.md §3).
    let intro = Transaction::sign(
        IntroKey {
            account: alice.account(),
            proof_of_work: 131,
        },
        &alice,
        &network,
    );
    let three = merkle_root(vec![
        tally_core::sha256(&[b"a"]),
        tally_core::sha256(&[b"b"]),
        tally_core::sha256(&[b"c"]),
    ]);
    vec![
        ("network", network.to_string()),
        ("genesis_hash", genesis_hash(&network).to_string()),
        ("transaction", hex::encode(tx.encode())),
        ("transaction_id", tx.id().to_string()),
        ("coinbase", hex::encode(coinbase.encode())),
        ("coinbase_id", coinbase.id().to_string()),
        ("merkle_root", block.header.merkle_root.to_string()),
        ("merkle_root_abc", three.to_string()),
        ("target", block.header.target.to_hex()),
        ("nonce", block.header.nonce.to_string()),
        ("header", hex::encode(block.header.encode())),
        ("block_hash", block.hash().to_string()),
        ("block", hex::encode(block.to_bytes())),
        ("intro_transaction", hex::encode(intro.to_bytes())),
    ]
}

#[test]
fn the_documented_vectors_hold() {
    let doc = documented();
    for (name, value) in computed() {
        assert_eq!(
            doc.get(name),
            Some(&value),
            "vector {name}: the document says {:?}, the code computes {value}",
            doc.get(name)
        );
    }
}

/// The documented bytes decode back to the values they were made from.
#[test]
fn the_documented_bytes_decode() {
    let doc = documented();
    let bytes = |name: &str| hex::decode(doc.get(name).expect(name)).unwrap();
    let block = Block::from_bytes(&bytes("block")).unwrap();
    assert_eq!(
        block.header,
        BlockHeader::from_bytes(&bytes("header")).unwrap()
    );
    assert_eq!(
        block.coinbase,
        Coinbase::from_bytes(&bytes("coinbase")).unwrap()
    );
    assert_eq!(
        block.transactions,
        vec![Transaction::from_bytes(&bytes("transaction")).unwrap()]
    );
    assert_eq!(block.compute_merkle_root(), block.header.merkle_root);
    let intro = Transaction::from_bytes(&bytes("intro_transaction")).unwrap();
    assert_eq!(intro.order.kind_name(), "IntroKey");
    assert_eq!(intro.signer(), block.transactions[0].signer());
}

#[test]
#[ignore = "prints the vectors for the document"]
fn print_vectors() {
    for (name, value) in computed() {
        println!("{name} = {value}");
    }
}
