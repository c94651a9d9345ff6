//! Property tests of the encodings: round trips, arbitrary bytes, mutated valid encodings,
//! and the miner's hash.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/ledger.rs"]
mod ledger;

use std::cell::RefCell;
use std::sync::OnceLock;

use common::*;
use ledger::genesis_ledger;
use proptest::prelude::*;
use proptest::sample::Index;
use tally_chain::block::{BlockHeader, HEADER_LEN, HEADER_VERSION};
use tally_chain::miner::HeaderHasher;
use tally_chain::state::{Overlay, Undo};
use tally_chain::{
    Block, Chain, ChainParams, Coinbase, Transaction, U256, check_block, decode_block,
    verify_signatures,
};
use tally_core::{
    AccountId, Amount, Digest, Encode, KeyCache, NetworkId, Order, Payment, Signature, Split,
    Transfer,
};

fn account(i: u8) -> AccountId {
    AccountId::from([i; 32])
}

prop_compose! {
    /// Transfers and splits among 6 accounts (unsigned: for encodings only). A split pays
    /// `outputs` accounts from `to` on.
    fn arb_transfers()(raw in prop::collection::vec(
        (0u8..6, 0u8..6, 1u64..400, 0u64..6, 0usize..8), 0..12
    )) -> Vec<Transaction> {
        raw.into_iter()
            .map(|(from, to, amount, sequence, outputs)| {
                let order = if outputs < 2 {
                    Order::Transfer(Transfer {
                        sender: account(from),
                        recipient: account(to),
                        amount: Amount::from_microcash(amount),
                        sequence,
                    })
                } else {
                    Order::Split(Split {
                        sender: account(from),
                        sequence,
                        outputs: (0..outputs - 1)
                            .map(|i| Payment {
                                recipient: account((to + i as u8) % 7),
                                amount: Amount::from_microcash(amount + i as u64),
                            })
                            .collect(),
                    })
                };
                Transaction { order, signature: Signature::from([0; 64]) }
            })
            .collect()
    }
}

fn block_of(transactions: Vec<Transaction>, reward: u64) -> Block {
    Block {
        header: BlockHeader {
            version: HEADER_VERSION,
            network: NetworkId(Digest::default()),
            height: 1,
            previous: Digest::default(),
            merkle_root: Digest::default(),
            timestamp_ms: 1,
            target: U256::MAX,
            nonce: 0,
        },
        coinbase: Coinbase {
            miner: account(2),
            amount: Amount::from_microcash(reward),
            height: 1,
        },
        transactions,
    }
}

/// Valid encodings to mutate: a mined block with transfers, a split, an escrow lock and its
/// claim, its signed transactions, and its undo record (with its escrow section).
struct Samples {
    params: ChainParams,
    keys: KeyCache,
    block: Vec<u8>,
    txs: Vec<Vec<u8>>,
    undo: Vec<u8>,
}

fn samples() -> &'static Samples {
    static SAMPLES: OnceLock<Samples> = OnceLock::new();
    SAMPLES.get_or_init(|| {
        let p = params();
        let txs = vec![
            transfer(&alice(), &bob(), 3, 0),
            split_micro(&bob(), &[(alice().account(), 5), (carol().account(), 7)], 0),
            transfer(&alice(), &carol(), 1, 1),
        ];
        let secret = tally_core::EscrowSecret::from([0x5e; 32]);
        let lock = tally_core::Order::from(tally_core::EscrowLock {
            payer: alice().account(),
            sequence: 2,
            payee: bob().account(),
            amount: tally_core::Amount::from_microcash(2 * CASH),
            hash_lock: secret.hash_lock(),
            deadline: T0 + 1_000_000,
            counterpart: None,
        });
        let escrow = lock.digest(&p.network);
        let lock = Transaction::sign(lock, &alice(), &p.network);
        let claim = Transaction::from(tally_core::SignedOrder::unsigned(
            tally_core::Order::EscrowClaim(tally_core::EscrowClaim { escrow, secret }),
        ));
        let mut txs = txs;
        txs.push(lock);
        let mut in_block = txs.clone();
        in_block.push(claim);
        let block = child(&p, genesis(&p), in_block, 0);
        let keys = KeyCache::new(1_000);
        check_block(&p, &keys, block.clone()).expect("the sample is valid");
        let accounts = genesis_ledger();
        let undo = Overlay::new(&accounts, &tally_chain::Escrows::default())
            .apply_block(&block, 0)
            .unwrap();
        assert_eq!(undo.prior_escrows.len(), 2, "the lock and its claim");
        Samples {
            params: p,
            keys,
            block: block.encode(),
            txs: txs.iter().map(Transaction::encode).collect(),
            undo: undo.encode(),
        }
    })
}

/// One edit of an encoding; positions are taken modulo its length.
#[derive(Clone, Debug)]
enum Mutation {
    FlipBit(Index, u8),
    SetByte(Index, u8),
    Insert(Index, u8),
    Delete(Index),
    Truncate(Index),
    /// Copies 1 to 16 bytes from one place over another (a shifted field).
    CopyRange(Index, Index, u8),
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, v)| Mutation::SetByte(i, v)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, v)| Mutation::Insert(i, v)),
        any::<Index>().prop_map(Mutation::Delete),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), any::<Index>(), 1u8..17)
            .prop_map(|(a, b, n)| Mutation::CopyRange(a, b, n)),
    ]
}

fn mutate(bytes: &mut Vec<u8>, mutation: &Mutation) {
    if bytes.is_empty() {
        if let Mutation::Insert(_, v) = mutation {
            bytes.push(*v);
        }
        return;
    }
    let len = bytes.len();
    match mutation {
        Mutation::FlipBit(i, bit) => bytes[i.index(len)] ^= 1 << bit,
        Mutation::SetByte(i, v) => bytes[i.index(len)] = *v,
        Mutation::Insert(i, v) => bytes.insert(i.index(len + 1), *v),
        Mutation::Delete(i) => {
            bytes.remove(i.index(len));
        }
        Mutation::Truncate(i) => bytes.truncate(i.index(len)),
        Mutation::CopyRange(from, to, n) => {
            let from = from.index(len);
            let to = to.index(len);
            let n = (*n as usize).min(len - from).min(len - to);
            let chunk = bytes[from..from + n].to_vec();
            bytes[to..to + n].copy_from_slice(&chunk);
        }
    }
}

thread_local! {
    static FUZZ_CHAIN: RefCell<Chain> = RefCell::new(chain());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Protects the decoders against hostile bytes: no input makes them panic.
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..800)) {
        let _ = Block::decode(&bytes);
        let _ = BlockHeader::decode(&bytes);
        let _ = Transaction::decode(&bytes);
        let _ = Undo::decode(&bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1_000, ..ProptestConfig::default() })]

    /// Protects the canonical encodings near valid inputs, where random bytes never reach:
    /// a valid block, transaction, header or undo record with bits flipped, bytes set,
    /// inserted, deleted, copied or cut never makes a decoder (or the chain's entry point
    /// for peers' bytes) panic; whatever still decodes re-encodes to exactly those bytes
    /// (one encoding per value, so the hash pins the bytes); and a changed block that
    /// decodes passes the context-free checks only if the change lies in the header (a new
    /// nonce, time or parent may still meet the target), a changed transaction never
    /// verifies.
    #[test]
    fn mutated_valid_encodings_decode_canonically_or_not_at_all(
        mutations in prop::collection::vec(arb_mutation(), 1..4), which in any::<Index>()
    ) {
        let s = samples();

        let mut bytes = s.block.clone();
        for m in &mutations {
            mutate(&mut bytes, m);
        }
        let decoded = Block::decode(&bytes);
        if let Ok(block) = &decoded {
            prop_assert_eq!(&block.encode(), &bytes, "a block decoded from other bytes");
            if bytes != s.block
                && check_block(&s.params, &s.keys, block.clone()).is_ok()
            {
                prop_assert!(
                    bytes.len() == s.block.len() && bytes[HEADER_LEN..] == s.block[HEADER_LEN..],
                    "a block changed beyond its header passed the checks"
                );
            }
        }
        let limited = decode_block(&s.params, &bytes);
        prop_assert_eq!(limited.ok(), decoded.ok());
        FUZZ_CHAIN.with(|chain| {
            let _ = chain.borrow_mut().accept_block_bytes(&bytes, NOW);
        });

        let mut header = s.block[..HEADER_LEN].to_vec();
        for m in &mutations {
            mutate(&mut header, m);
        }
        if let Ok(decoded) = BlockHeader::decode(&header) {
            prop_assert_eq!(decoded.encode().to_vec(), header);
        }

        let original = &s.txs[which.index(s.txs.len())];
        let mut bytes = original.clone();
        for m in &mutations {
            mutate(&mut bytes, m);
        }
        if let Ok(tx) = Transaction::decode(&bytes) {
            prop_assert_eq!(&tx.encode(), &bytes, "a transaction decoded from other bytes");
            if &bytes != original {
                prop_assert_eq!(
                    verify_signatures(&s.params, &s.keys, std::slice::from_ref(&tx)),
                    vec![false],
                    "a changed transaction still verifies: {:?}",
                    tx
                );
            }
        }

        let mut bytes = s.undo.clone();
        for m in &mutations {
            mutate(&mut bytes, m);
        }
        if let Some(undo) = Undo::decode(&bytes) {
            prop_assert_eq!(undo.encode(), bytes);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Protects the block layout: encode/decode round-trips, the declared length is the
    /// real one, and a block one byte short or long is refused, not misread.
    #[test]
    fn blocks_round_trip_through_their_bytes(
        txs in arb_transfers(), nonce in any::<u64>(), ts in any::<u64>(), target in any::<[u8; 32]>()
    ) {
        let mut block = block_of(txs, 7);
        block.header.nonce = nonce;
        block.header.timestamp_ms = ts;
        block.header.target = U256::from_be_bytes(&target);
        let bytes = block.encode();
        prop_assert_eq!(bytes.len(), block.encoded_len());
        prop_assert_eq!(Block::decode(&bytes).unwrap(), block.clone());
        prop_assert!(Block::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        prop_assert!(Block::decode(&longer).is_err());
    }

    /// Protects the miner: the midstate hasher gives exactly the block hash and target test.
    #[test]
    fn the_miners_hash_is_the_block_hash(
        height in any::<u64>(), ts in any::<u64>(), nonce in any::<u64>(), prev in any::<[u8; 32]>()
    ) {
        let header = BlockHeader {
            version: HEADER_VERSION,
            network: NetworkId(tally_core::sha256(&[b"p"])),
            height,
            previous: Digest::from(prev),
            merkle_root: tally_core::sha256(&[b"m"]),
            timestamp_ms: ts,
            target: U256::from_leading_zero_bits(8),
            nonce: 0,
        };
        let mut hasher = HeaderHasher::new(&header);
        let with_nonce = BlockHeader { nonce, ..header };
        prop_assert_eq!(hasher.hash(nonce), with_nonce.hash());
        prop_assert_eq!(hasher.meets_target(nonce), with_nonce.meets_own_target());
    }
}
