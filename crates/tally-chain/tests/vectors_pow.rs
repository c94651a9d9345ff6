//! PROTOCOL.md §8's retarget vectors ("Target, work and retargeting"): the document's
//! values are parsed from its ```retarget-vectors block and recomputed three ways — by the
//! rule written out here from the document in plain integer arithmetic, by
//! [`tally_chain::consensus::retarget`], and by a real chain that mined the documented
//! window of timestamps and must ask the documented target of the block at the retarget
//! height (and refuse its parent's) — so neither the code nor the document can drift.
//!
//! `TALLY_PRINT_VECTORS=1 cargo test -p tally-chain --test vectors_pow -- --nocapture`
//! prints the computed values.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use tally_chain::consensus::retarget;
use tally_chain::{BlockError, Chain, ChainConfig, ChainError, ChainParams, U256, miner};
use tally_core::{Amount, Mode, NetworkContract, PowParams, SecretKey};

/// The `name = value` lines of the document's ```retarget-vectors block.
fn documented() -> BTreeMap<String, String> {
    tally_vectors::assignments("retarget-vectors")
}

fn number(doc: &BTreeMap<String, String>, name: &str) -> u64 {
    doc.get(name)
        .unwrap_or_else(|| panic!("{name} is documented"))
        .parse()
        .unwrap_or_else(|e| panic!("{name} is a number: {e}"))
}

fn target(doc: &BTreeMap<String, String>, name: &str) -> [u8; 32] {
    let bytes = hex::decode(
        doc.get(name)
            .unwrap_or_else(|| panic!("{name} is documented")),
    )
    .unwrap();
    bytes.try_into().expect("a target is 32 bytes")
}

const WINDOW: u64 = 20;
const BLOCK_TIME_MS: u64 = 10_000;
const INITIAL_BITS: u32 = 8;
/// Block h of the vector chain is stamped `T0 + h × STEP_MS`: 20 blocks take 150 s where
/// 200 s are expected.
const T0: u64 = 1_700_000_000_000;
const STEP_MS: u64 = 7_500;
/// The last timestamps of the clamped examples: a window 5 × too slow (1,000 s) and one
/// 20 × too fast (10 s).
const SLOW_MS: u64 = 1_000_000;
const FAST_MS: u64 = 10_000;

fn contract() -> NetworkContract {
    NetworkContract {
        name: "retarget-vectors".into(),
        mode: Mode::Pow,
        unit: "cash".into(),
        faucet: Amount::ZERO,
        intro_pow_bits: 0,
        validators: vec![],
        tracker: None,
        genesis: vec![],
        pow: Some(PowParams {
            initial_bits: INITIAL_BITS,
            block_time_ms: BLOCK_TIME_MS,
            retarget_window: WINDOW,
            block_reward: Amount::from_microcash(50_000_000),
            max_block_transactions: 100,
            max_block_bytes: 100_000,
        }),
        max_clock_skew_ms: None,
    }
}

fn computed() -> Vec<(&'static str, String)> {
    let params = ChainParams::from_contract(&contract()).unwrap();
    let height = (1..)
        .find(|h| params.is_retarget_height(*h))
        .expect("a retarget height");
    let first_height = height - 1 - WINDOW;
    let last_height = height - 1;
    let first = T0 + first_height * STEP_MS;
    let last = T0 + last_height * STEP_MS;
    let old = params.initial_target;
    vec![
        ("retarget_window", WINDOW.to_string()),
        ("block_time_ms", BLOCK_TIME_MS.to_string()),
        ("parent_target", old.to_hex()),
        ("retarget_height", height.to_string()),
        ("first_height", first_height.to_string()),
        ("first_timestamp", first.to_string()),
        ("last_height", last_height.to_string()),
        ("last_timestamp", last.to_string()),
        ("target", retarget(&params, old, first, last).to_hex()),
        ("slow_last_timestamp", (first + SLOW_MS).to_string()),
        (
            "slow_target",
            retarget(&params, old, first, first + SLOW_MS).to_hex(),
        ),
        ("fast_last_timestamp", (first + FAST_MS).to_string()),
        (
            "fast_target",
            retarget(&params, old, first, first + FAST_MS).to_hex(),
        ),
    ]
}

#[test]
fn the_documented_retarget_vectors_hold() {
    let computed = computed();
    if std::env::var_os("TALLY_PRINT_VECTORS").is_some() {
        for (name, value) in &computed {
            println!("{name} = {value}");
        }
    }
    let doc = documented();
    for (name, value) in &computed {
        assert_eq!(
            doc.get(*name),
            Some(value),
            "retarget vector {name}: the document says {:?}, the code computes {value}",
            doc.get(*name)
        );
    }
    assert_eq!(
        doc.len(),
        computed.len(),
        "every documented value is checked"
    );
}

/// `x × num ÷ den` for a 256-bit big-endian `x`, rounding down, `None` past 256 bits:
/// schoolbook arithmetic on 64-bit limbs, independent of the library's `U256`.
fn mul_div(x: [u8; 32], num: u64, den: u64) -> Option<[u8; 32]> {
    let limbs: Vec<u64> = x
        .chunks(8)
        .map(|c| u64::from_be_bytes(c.try_into().unwrap()))
        .collect();
    // Multiply (most significant limb first), five limbs for the carry.
    let mut product = [0u64; 5];
    let mut carry = 0u128;
    for i in (0..4).rev() {
        let p = u128::from(limbs[i]) * u128::from(num) + carry;
        product[i + 1] = p as u64;
        carry = p >> 64;
    }
    product[0] = carry as u64;
    // Divide.
    let mut quotient = [0u64; 5];
    let mut rem = 0u128;
    for i in 0..5 {
        let cur = (rem << 64) | u128::from(product[i]);
        quotient[i] = (cur / u128::from(den)) as u64;
        rem = cur % u128::from(den);
    }
    if quotient[0] != 0 {
        return None;
    }
    let mut out = [0u8; 32];
    for i in 0..4 {
        out[i * 8..i * 8 + 8].copy_from_slice(&quotient[i + 1].to_be_bytes());
    }
    Some(out)
}

/// The rule as PROTOCOL.md §8 writes it, in plain integers.
fn documented_rule(parent_target: [u8; 32], first_ms: u64, last_ms: u64) -> [u8; 32] {
    let expected = WINDOW * BLOCK_TIME_MS;
    let actual = last_ms
        .saturating_sub(first_ms)
        .clamp((expected / 4).max(1), expected * 4);
    let pow_limit = [0xff; 32];
    let one = {
        let mut one = [0u8; 32];
        one[31] = 1;
        one
    };
    // Big-endian byte arrays compare as the numbers they hold.
    mul_div(parent_target, actual, expected)
        .unwrap_or(pow_limit)
        .min(pow_limit)
        .max(one)
}

#[test]
fn the_documented_rule_gives_the_documented_targets() {
    let doc = documented();
    assert_eq!(number(&doc, "retarget_window"), WINDOW);
    assert_eq!(number(&doc, "block_time_ms"), BLOCK_TIME_MS);
    let height = number(&doc, "retarget_height");
    // The first height that is a multiple of the window and above window + 1.
    assert_eq!(height, 2 * WINDOW);
    assert_eq!(number(&doc, "last_height"), height - 1);
    assert_eq!(number(&doc, "first_height"), height - 1 - WINDOW);
    // 2^(256 − 8) − 1: the 8-bit initial target.
    let mut initial = [0xff; 32];
    initial[0] = 0;
    let parent = target(&doc, "parent_target");
    assert_eq!(parent, initial);
    let first = number(&doc, "first_timestamp");
    for (last, name) in [
        ("last_timestamp", "target"),
        ("slow_last_timestamp", "slow_target"),
        ("fast_last_timestamp", "fast_target"),
    ] {
        let last = number(&doc, last);
        assert_eq!(
            hex::encode(documented_rule(parent, first, last)),
            hex::encode(target(&doc, name)),
            "{name}"
        );
    }
}

/// A chain that mined blocks 1–39 at the documented timestamps asks the documented target
/// of block 40, takes a block 40 that carries it, and refuses one that keeps its parent's.
#[test]
fn a_chain_with_the_documented_window_retargets_as_documented() {
    let doc = documented();
    let expected = U256::from_be_bytes(&target(&doc, "target"));
    let height = number(&doc, "retarget_height");
    let miner_account = SecretKey::from_bytes([0x33; 32]).account();
    let mut chain = Chain::in_memory(&contract(), ChainConfig::default()).unwrap();
    let now = T0 + 1_000 * STEP_MS;
    let stamp = |h: u64| T0 + h * STEP_MS;
    for h in 1..height {
        let mut block = chain.block_template(miner_account, stamp(h));
        assert_eq!(block.header.height, h);
        assert_eq!(block.header.timestamp_ms, stamp(h));
        assert_eq!(block.header.target, chain_params().initial_target);
        block.header = miner::solve(&block.header).unwrap();
        chain.accept_block(block, now).unwrap();
    }
    assert_eq!(
        stamp(number(&doc, "first_height")),
        number(&doc, "first_timestamp")
    );
    assert_eq!(
        stamp(number(&doc, "last_height")),
        number(&doc, "last_timestamp")
    );

    let template = chain.block_template(miner_account, stamp(height));
    assert_eq!(template.header.height, height);
    assert_eq!(template.header.target, expected);

    let mut stale = template.clone();
    stale.header.target = chain_params().initial_target;
    stale.header = miner::solve(&stale.header).unwrap();
    assert!(
        matches!(
            chain.accept_block(stale, now),
            Err(ChainError::Invalid {
                error: BlockError::WrongTarget { .. },
                ..
            })
        ),
        "a block keeping its parent's target at the retarget height is refused"
    );
    let mut block = template;
    block.header = miner::solve(&block.header).unwrap();
    chain.accept_block(block, now).unwrap();
    assert_eq!(chain.height(), height);
}

fn chain_params() -> ChainParams {
    ChainParams::from_contract(&contract()).unwrap()
}
