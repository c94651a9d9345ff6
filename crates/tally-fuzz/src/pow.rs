//! The proof-of-work network: its JSON packets and its binary blocks.

use std::sync::OnceLock;

use tally_chain::spend::Effect;
use tally_chain::store::{MemoryDisk, MemoryStore};
use tally_chain::{BlockOutcome, Chain, ChainConfig, ChainParams};
use tally_core::{
    Allocation, Amount, Block, Encode, Mode, NetworkContract, PowParams, SecretKey, Transaction,
};
use tally_proto::pow::PowPacket;

/// The proof-of-work contract the block target runs a chain of: any hash meets its
/// target (0 leading zero bits), so the fuzzer reaches the rules behind the proof of work;
/// alice (32 × `0xa1`) holds 1,000 cash at genesis, so transactions can be valid.
pub fn fuzz_pow_contract() -> NetworkContract {
    NetworkContract {
        name: "fuzz-pow".into(),
        mode: Mode::Pow,
        unit: "cash".into(),
        faucet: Amount::ZERO,
        intro_pow_bits: 0,
        validators: Vec::new(),
        tracker: None,
        genesis: vec![Allocation {
            account: SecretKey::from_bytes([0xa1; 32]).account(),
            amount: Amount::from_microcash(1_000_000_000),
        }],
        pow: Some(PowParams {
            initial_bits: 0,
            block_time_ms: 10_000,
            retarget_window: 4,
            block_reward: Amount::from_microcash(50_000_000),
            max_block_transactions: 64,
            max_block_bytes: 64 * 1024,
        }),
        max_clock_skew_ms: Some(5_000),
    }
}

/// The chain parameters of [`fuzz_pow_contract`].
pub fn fuzz_pow_params() -> &'static ChainParams {
    static PARAMS: OnceLock<Option<ChainParams>> = OnceLock::new();
    // The contract above is valid: `from_contract` cannot refuse it. Should it ever, the
    // target has nothing to run and says so on every input.
    match PARAMS.get_or_init(|| ChainParams::from_contract(&fuzz_pow_contract()).ok()) {
        Some(params) => params,
        None => panic!("the fuzz contract's chain parameters are refused"),
    }
}

/// A small chain configuration: a fresh chain per input must be cheap.
fn fuzz_chain_config() -> ChainConfig {
    ChainConfig {
        max_orphans: 8,
        max_orphan_bytes: 1 << 20,
        max_held_blocks: 8,
        max_held_bytes: 1 << 20,
        max_cached_keys: 64,
        ..ChainConfig::default()
    }
}

/// `pow_packet`: one frame body as a miner's or wallet's connection reader parses it
/// (`PacketReader<PowPacket>::recv`: `serde_json::from_slice::<PowPacket>`).
///
/// Properties of an accepted packet: it serializes ([`PowPacket::encode`]) and parses back
/// equal; every block and transaction it carries survives the binary codec the store and
/// the block hash use, unless its transactions break a shape rule every miner checks
/// ([`Effect::of`]) before storing it; and a block's hash and merkle root compute.
pub fn pow_packet(data: &[u8]) {
    let Ok(packet) = serde_json::from_slice::<PowPacket>(data) else {
        return;
    };
    let _ = packet.name();
    let encoded = packet.encode();
    let again = serde_json::from_slice::<PowPacket>(&encoded);
    assert!(
        again.as_ref().is_ok_and(|again| *again == packet),
        "a pow packet does not survive serializing and parsing: {packet:?} -> {again:?}"
    );
    match &packet {
        PowPacket::PushTransaction(tx) => check_transaction(tx),
        PowPacket::Transaction(gossip) => gossip.transactions.iter().for_each(check_transaction),
        PowPacket::HashBroadcast(broadcast) => {
            check_block_codec(&broadcast.block);
            let _ = broadcast.hash == broadcast.block.hash();
        }
        PowPacket::ReceiveBlock(receive) => receive.blocks.iter().for_each(check_block_codec),
        _ => {}
    }
}

/// A transaction from JSON: its id, signer and binary form.
fn check_transaction(tx: &Transaction) {
    let network = fuzz_pow_params().network;
    let _ = tx.id();
    let _ = tx.signer();
    let _ = tx.signing_bytes(&network);
    let shaped = Effect::of(tx, &network).is_ok();
    let bytes = tx.encode();
    let back = Transaction::decode(&bytes);
    assert!(
        back.as_ref().is_ok_and(|back| back == tx) || !shaped,
        "a well-shaped transaction does not survive the binary codec: {tx:?} -> {back:?}"
    );
}

/// A block from JSON: its hash, merkle root and binary form.
fn check_block_codec(block: &Block) {
    let network = fuzz_pow_params().network;
    let _ = block.hash();
    let _ = block.compute_merkle_root();
    let shaped = block
        .transactions
        .iter()
        .all(|tx| Effect::of(tx, &network).is_ok());
    let bytes = block.encode();
    assert_eq!(
        bytes.len(),
        block.encoded_len(),
        "encoded_len is not the length"
    );
    let back = Block::decode(&bytes);
    assert!(
        back.as_ref().is_ok_and(|back| back == block) || !shaped,
        "a well-shaped block does not survive the binary codec: {back:?}"
    );
}

/// `pow_block`: blocks' canonical bytes as a miner receives them from peers
/// (`Chain::accept_block_bytes`: `decode_block`, then every rule), several in a row so
/// that chains, forks, orphans and reorganisations are reached. The input is a sequence
/// of `length u16 LE ‖ block bytes` records, each accepted into one fresh in-memory chain
/// of [`fuzz_pow_contract`] (any hash meets its target) at the block's own timestamp.
///
/// Properties: a block that decodes re-encodes to exactly its bytes (one encoding per
/// block, so its hash names it); after every block the chain's money is genesis plus one
/// reward per main-chain block (no rule lets a block create or destroy cash); a stored
/// block reads back equal; and a chain reopened from its store after the last block
/// (a restart) has the same tip and accounts.
pub fn pow_block(data: &[u8]) {
    let _ = run_chain(data);
}

/// [`pow_block`]'s work; returns the height the chain reached.
fn run_chain(data: &[u8]) -> u64 {
    let params = fuzz_pow_params().clone();
    let disk = MemoryDisk::new();
    let Ok(store) = MemoryStore::open(&disk, &params.network) else {
        panic!("a fresh memory store does not open");
    };
    let Ok(mut chain) = Chain::with_store(store, params.clone(), fuzz_chain_config()) else {
        panic!("a fresh in-memory chain does not open");
    };
    let mut rest = data;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
        let body = &rest[2..];
        let bytes = &body[..len.min(body.len())];
        rest = &body[bytes.len()..];
        let decoded = Block::decode(bytes);
        if let Ok(block) = &decoded {
            assert_eq!(block.encode(), bytes, "a block's bytes are not canonical");
            assert_eq!(block.encoded_len(), bytes.len());
        }
        let now = decoded
            .as_ref()
            .map_or(0, |block| block.header.timestamp_ms.saturating_add(1));
        let outcome = chain.accept_block_bytes(bytes, now);
        if let (Ok(BlockOutcome::Stored { .. }), Ok(block)) = (&outcome, &decoded) {
            let stored = chain.block(&block.hash());
            assert!(
                stored.as_ref().is_ok_and(|s| s.as_ref() == Some(block)),
                "a stored block does not read back: {stored:?}"
            );
        }
        let height = chain.height();
        assert_eq!(
            chain.supply(),
            params.supply_at(height),
            "money is not genesis plus one reward per block at height {height}"
        );
    }
    let tip = chain.tip();
    let accounts = chain.accounts().clone();
    drop(chain);
    let Ok(store) = MemoryStore::open(&disk, &params.network) else {
        panic!("the chain's own store does not reopen");
    };
    let reopened = Chain::with_store(store, params, fuzz_chain_config());
    assert!(
        reopened
            .as_ref()
            .is_ok_and(|chain| chain.tip() == tip && *chain.accounts() == accounts),
        "a reopened chain is not the chain that was closed"
    );
    tip.height
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use tally_core::{Order, SignedOrder, Transfer};

    /// Blocks a miner of the fuzz contract makes are accepted by the target (so the seeds
    /// built the same way reach the chain's rules, not just the decoder).
    #[test]
    fn mined_blocks_reach_the_chain() {
        let params = fuzz_pow_params().clone();
        let disk = MemoryDisk::new();
        let store = MemoryStore::open(&disk, &params.network).unwrap();
        let mut chain = Chain::with_store(store, params.clone(), fuzz_chain_config()).unwrap();
        let alice = SecretKey::from_bytes([0xa1; 32]);
        let mut input = Vec::new();
        for height in 0..2u64 {
            let order = Order::Transfer(Transfer {
                sender: alice.account(),
                recipient: SecretKey::from_bytes([0xb0; 32]).account(),
                amount: Amount::from_microcash(1_000_000),
                sequence: height,
            });
            chain
                .submit_order(SignedOrder::sign(order, &alice, &params.network))
                .unwrap();
            let now = 1_700_000_000_000 + 10_000 * height;
            let block = chain.block_template(alice.account(), now);
            chain.accept_block(block.clone(), now + 1).unwrap();
            let bytes = block.encode();
            input.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
            input.extend_from_slice(&bytes);
        }
        assert_eq!(run_chain(&input), 2);
    }
}
