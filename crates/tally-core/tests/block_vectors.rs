//! The test vectors of PROTOCOL.md §8 (proof-of-work chain): the document's values are
//! parsed from the file itself and recomputed here, so the document cannot drift from the
//! code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use tally_core::block::HEADER_VERSION;
use tally_core::{
    Amount, Block, BlockHeader, Coinbase, Decode, Encode, IntroKey, NetworkId, SecretKey,
    Transaction, Transfer, U256, genesis_hash, merkle_root,
};

/// The `name = hex` lines of the document's vector block.
fn documented() -> BTreeMap<String, String> {
    tally_vectors::assignments("vectors")
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
        ("block_json", serde_json::to_string(&block).unwrap()),
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

/// The documented bytes are the documented layouts (§8 "Block header", "Coinbase",
/// "Transaction", "Block", "Merkle root", "Genesis"), written here field by field from the
/// document's other values and hashed with plain SHA-256, independent of the library's
/// encoders: the test fails if the code and the document part ways.
#[test]
fn the_documented_bytes_follow_the_documented_layout() {
    let doc = documented();
    let hex_of = |name: &str| doc.get(name).unwrap_or_else(|| panic!("{name}")).clone();
    let bytes = |name: &str| hex::decode(hex_of(name)).unwrap();
    let sha = |parts: &[&[u8]]| tally_core::sha256(parts).as_bytes().to_vec();
    let network = bytes("network");
    assert_eq!(network, sha(&[b"tally test vector network"]));
    assert_eq!(bytes("genesis_hash"), sha(&[b"TALLY-GENESIS-V1", &network]));

    // Coinbase (48 bytes): miner ‖ amount u64 LE ‖ height u64 LE.
    let mut coinbase = SecretKey::from_bytes([0x33; 32])
        .account()
        .as_bytes()
        .to_vec();
    coinbase.extend_from_slice(&50_000_000u64.to_le_bytes());
    coinbase.extend_from_slice(&1u64.to_le_bytes());
    assert_eq!(coinbase.len(), 48);
    assert_eq!(coinbase, bytes("coinbase"));
    let coinbase_id = sha(&[b"TALLY-COINBASE-V1", &coinbase]);
    assert_eq!(coinbase_id, bytes("coinbase_id"));

    // A transfer (145 bytes): the §3 order encoding and the signature.
    let transaction = bytes("transaction");
    assert_eq!(transaction.len(), 145);
    let alice = SecretKey::from_bytes([0xa1; 32]).account();
    let bob = SecretKey::from_bytes([0xb0; 32]).account();
    let mut order = vec![0x02];
    order.extend_from_slice(alice.as_bytes());
    order.extend_from_slice(bob.as_bytes());
    order.extend_from_slice(&1_504_000u64.to_le_bytes());
    order.extend_from_slice(&0u64.to_le_bytes());
    assert_eq!(transaction[..81], order[..]);
    let signed = [b"TALLY-ORDER-V1".as_slice(), &network, &order].concat();
    let signature: tally_core::Signature = hex::encode(&transaction[81..]).parse().unwrap();
    assert!(alice.verify(&signature, &signed), "alice signed the order");
    let transaction_id = sha(&[b"TALLY-TX-V1", &transaction]);
    assert_eq!(transaction_id, bytes("transaction_id"));

    // Merkle root of two leaves: SHA-256(0x01 ‖ left ‖ right).
    assert_eq!(
        sha(&[&[0x01], &coinbase_id, &transaction_id]),
        bytes("merkle_root")
    );
    let (a, b, c) = (sha(&[b"a"]), sha(&[b"b"]), sha(&[b"c"]));
    // Three leaves: the odd last one moves up unpaired.
    assert_eq!(
        sha(&[&[0x01], &sha(&[&[0x01], &a, &b]), &c]),
        bytes("merkle_root_abc")
    );

    // The target of 8 leading zero bits, big-endian.
    let target = bytes("target");
    assert_eq!(target, [[0x00].as_slice(), &[0xff; 31]].concat());

    // Header (156 bytes).
    let nonce: u64 = hex_of("nonce").parse().unwrap();
    let mut header = 1u32.to_le_bytes().to_vec();
    header.extend_from_slice(&network);
    header.extend_from_slice(&1u64.to_le_bytes());
    header.extend_from_slice(&bytes("genesis_hash"));
    header.extend_from_slice(&bytes("merkle_root"));
    header.extend_from_slice(&1_700_000_000_000u64.to_le_bytes());
    header.extend_from_slice(&target);
    header.extend_from_slice(&nonce.to_le_bytes());
    assert_eq!(header.len(), 156);
    assert_eq!(header, bytes("header"));

    // Block hash: SHA-256d of the header, at most the target read big-endian, and the
    // documented nonce is the first that gets there.
    let hash = sha(&[&sha(&[&header])]);
    assert_eq!(hash, bytes("block_hash"));
    assert!(hash <= target);
    for earlier in 0..nonce {
        header[148..].copy_from_slice(&earlier.to_le_bytes());
        assert!(
            sha(&[&sha(&[&header])]) > target,
            "nonce {earlier} is no proof"
        );
    }
    header[148..].copy_from_slice(&nonce.to_le_bytes());

    // Block: header ‖ coinbase ‖ count u32 LE ‖ transactions.
    let block = [
        header.as_slice(),
        &coinbase,
        &1u32.to_le_bytes(),
        &transaction,
    ]
    .concat();
    assert_eq!(block, bytes("block"));
}

/// The documented JSON form carries the documented values under the documented field
/// names (§8 "JSON form"), and decodes to the documented block bytes.
#[test]
fn the_documented_json_is_the_documented_block() {
    let doc = documented();
    let get = |name: &str| doc.get(name).unwrap_or_else(|| panic!("{name}")).clone();
    let json = get("block_json");
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let header = &value["Header"];
    assert_eq!(header["Version"], 1);
    assert_eq!(header["Network"], get("network").as_str());
    assert_eq!(header["Height"], 1);
    assert_eq!(header["PreviousHash"], get("genesis_hash").as_str());
    assert_eq!(header["MerkleRoot"], get("merkle_root").as_str());
    assert_eq!(header["Timestamp"], 1_700_000_000_000u64);
    assert_eq!(header["Target"], get("target").as_str());
    assert_eq!(header["Nonce"].to_string(), get("nonce"));
    let coinbase = &value["Coinbase"];
    assert_eq!(
        coinbase["Miner"],
        SecretKey::from_bytes([0x33; 32])
            .account()
            .to_hex()
            .as_str()
    );
    assert_eq!(coinbase["Amount"], 50_000_000);
    assert_eq!(coinbase["Height"], 1);
    let [tx] = value["Transactions"].as_array().unwrap().as_slice() else {
        panic!("one transaction")
    };
    let transfer = &tx["Order"]["Transfer"];
    assert_eq!(
        transfer["Fromkey"],
        SecretKey::from_bytes([0xa1; 32])
            .account()
            .to_hex()
            .as_str()
    );
    assert_eq!(
        transfer["Tokey"],
        SecretKey::from_bytes([0xb0; 32])
            .account()
            .to_hex()
            .as_str()
    );
    assert_eq!(transfer["Amount"], 1_504_000);
    assert_eq!(transfer["Sequence"], 0);
    assert_eq!(tx["Sig"], &get("transaction")[81 * 2..]);

    let from_json: Block = serde_json::from_str(&json).unwrap();
    assert_eq!(hex::encode(from_json.to_bytes()), get("block"));
    assert_eq!(from_json.hash().to_string(), get("block_hash"));
}

#[test]
#[ignore = "prints the vectors for the document"]
fn print_vectors() {
    for (name, value) in computed() {
        println!("{name} = {value}");
    }
}
