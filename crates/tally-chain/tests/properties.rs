//! Property tests: apply/undo against a model of the accounts (valid spends drawn from the
//! running state, interleaved with deliberate faults), supply, encodings (round trips and
//! mutated valid encodings), the miner's hash, and fork choice (two branches fed in random
//! order, and random block trees with retargets, invalid blocks and restarts, against a
//! reference model).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::OnceLock;

use common::*;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestCaseResult, TestRunner};
use tally_chain::block::{BlockHeader, HEADER_LEN, HEADER_VERSION};
use tally_chain::consensus::{retarget, work};
use tally_chain::miner::HeaderHasher;
use tally_chain::state::{Accounts, Overlay, Undo, merge, total_balance};
use tally_chain::{
    AccountState, Block, BlockHash, BlockOutcome, Chain, ChainConfig, ChainError, ChainParams,
    ChainStore, Coinbase, MemoryDisk, MemoryStore, Transaction, U256, check_block, decode_block,
    verify_signatures,
};
use tally_core::{
    AccountId, Amount, Digest, Encode, KeyCache, NetworkId, Order, Payment, SecretKey, Signature,
    Split, Transfer,
};

// ---------------------------------------------------------------------------------------
// A model of the accounts, written apart from `state.rs`: what a block must do to them.
// ---------------------------------------------------------------------------------------

/// The keys the generators spend from: alice and bob (funded at genesis), carol, and the
/// miner, whom every coinbase pays.
fn spenders() -> [SecretKey; 4] {
    [alice(), bob(), carol(), key(0x33)]
}

fn state_of(ledger: &Accounts, account: &AccountId) -> AccountState {
    ledger.get(account).copied().unwrap_or_default()
}

/// Writes an account's state; empty accounts are absent, as in the chain's map.
fn put(ledger: &mut Accounts, account: AccountId, state: AccountState) {
    if state.is_empty() {
        ledger.remove(&account);
    } else {
        ledger.insert(account, state);
    }
}

fn credit(ledger: &mut Accounts, account: AccountId, micro: u64) {
    let mut state = state_of(ledger, &account);
    state.balance = Amount::from_microcash(state.balance.microcash() + micro);
    put(ledger, account, state);
}

/// The model's spend: the sender pays the total and moves to its next sequence, then each
/// recipient is credited (a transfer may pay its own sender).
fn model_pay(ledger: &mut Accounts, from: AccountId, outputs: &[(AccountId, u64)]) {
    let total: u64 = outputs.iter().map(|(_, micro)| micro).sum();
    let mut sender = state_of(ledger, &from);
    sender.balance = Amount::from_microcash(sender.balance.microcash() - total);
    sender.next_sequence += 1;
    put(ledger, from, sender);
    for (to, micro) in outputs {
        credit(ledger, *to, *micro);
    }
}

/// The accounts at genesis of `contract_with(..)`: alice 100 cash, bob 50.
fn genesis_ledger() -> Accounts {
    let mut ledger = Accounts::new();
    credit(&mut ledger, alice().account(), 100 * CASH);
    credit(&mut ledger, bob().account(), 50 * CASH);
    ledger
}

fn sign_transfer(
    network: &NetworkId,
    from: &SecretKey,
    to: AccountId,
    micro: u64,
    sequence: u64,
) -> Transaction {
    Transaction::sign(
        Transfer {
            sender: from.account(),
            recipient: to,
            amount: Amount::from_microcash(micro),
            sequence,
        },
        from,
        network,
    )
}

fn sign_split(
    network: &NetworkId,
    from: &SecretKey,
    outputs: &[(AccountId, u64)],
    sequence: u64,
) -> Transaction {
    Transaction::sign(
        Order::Split(Split {
            sender: from.account(),
            sequence,
            outputs: outputs
                .iter()
                .map(|&(recipient, micro)| Payment {
                    recipient,
                    amount: Amount::from_microcash(micro),
                })
                .collect(),
        }),
        from,
        network,
    )
}

/// Signed, valid spends against `ledger`, which they update as they apply: each pick
/// `(from, to, fraction)` spends a fraction of a funded sender's balance at its next
/// sequence, as a transfer to `spenders()[to]` (the sender itself included) or, for
/// `to == 4`, as a split to the two next keys. Unfunded senders are skipped.
fn valid_spends(
    network: &NetworkId,
    ledger: &mut Accounts,
    picks: &[(u8, u8, u16)],
) -> Vec<Transaction> {
    let keys = spenders();
    let mut txs = Vec::new();
    for &(from, to, fraction) in picks {
        let from = from as usize % 4;
        let key = &keys[from];
        let state = state_of(ledger, &key.account());
        let balance = state.balance.microcash();
        if balance < 2 {
            continue;
        }
        let amount = 1 + ((balance - 1) as u128 * fraction as u128 / u16::MAX as u128) as u64;
        let tx = if to % 5 == 4 {
            let half = (amount / 2).max(1);
            let outputs = [
                (keys[(from + 1) % 4].account(), half),
                (keys[(from + 2) % 4].account(), half),
            ];
            model_pay(ledger, key.account(), &outputs);
            sign_split(network, key, &outputs, state.next_sequence)
        } else {
            let to = keys[to as usize % 5].account();
            model_pay(ledger, key.account(), &[(to, amount)]);
            sign_transfer(network, key, to, amount, state.next_sequence)
        };
        txs.push(tx);
    }
    txs
}

/// A key among `spenders()` with some balance in `ledger`, preferring `pick` (the miner is
/// always funded once its block's coinbase is counted).
fn funded(ledger: &Accounts, pick: u8) -> (SecretKey, AccountState) {
    let keys = spenders();
    (0..4)
        .map(|k| keys[(pick as usize + k) % 4].clone())
        .map(|key| {
            let state = state_of(ledger, &key.account());
            (key, state)
        })
        .find(|(_, state)| state.balance.microcash() > 0)
        .expect("the miner is funded")
}

fn flip_signature(tx: &mut Transaction) {
    let mut bytes = *tx.signature.as_bytes();
    bytes[7] ^= 0x10;
    tx.signature = Signature::from(bytes);
}

/// Everything of a chain that a refused block must leave alone.
#[derive(Debug, PartialEq)]
struct Snapshot {
    tip: tally_chain::TipInfo,
    main: Vec<BlockHash>,
    accounts: Accounts,
    supply: Option<Amount>,
    orphans: usize,
}

fn snapshot<S: ChainStore>(chain: &Chain<S>) -> Snapshot {
    Snapshot {
        tip: chain.tip(),
        main: (0..=chain.height())
            .map(|h| chain.hash_at(h).unwrap())
            .collect(),
        accounts: chain.accounts().clone(),
        supply: chain.supply(),
        orphans: chain.orphan_count(),
    }
}

// ---------------------------------------------------------------------------------------
// 1. Apply and undo.
// ---------------------------------------------------------------------------------------

/// A deliberate fault in a block built on the tip: each breaks one rule (rule numbers of
/// PROTOCOL.md's "Validity").
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Rule 8: a would-be-valid transfer with one signature bit flipped.
    BadSignature,
    /// Rule 9: a transfer of one more than the sender's balance at that point.
    Overspend,
    /// Rule 9: a transfer one sequence ahead of the sender's next.
    SequenceGap,
    /// Rule 9: a transaction of an earlier main-chain block, again (`StaleSequence`).
    Replay,
    /// Rule 9: a transaction of this block twice (`DoubleSpend`).
    Duplicate,
    /// Rule 5: a transfer of nothing.
    ZeroAmount,
    /// Rule 5: a split paying its own sender.
    SplitPaysSender,
    /// Rule 4: a coinbase one microcash over the reward.
    WrongReward,
    /// Rule 7: a (harder) target other than the expected one.
    WrongTarget,
}

const FAULTS: [Fault; 9] = [
    Fault::BadSignature,
    Fault::Overspend,
    Fault::SequenceGap,
    Fault::Replay,
    Fault::Duplicate,
    Fault::ZeroAmount,
    Fault::SplitPaysSender,
    Fault::WrongReward,
    Fault::WrongTarget,
];

#[derive(Clone, Debug)]
struct Step {
    /// Valid spends drawn from the running state (see [`valid_spends`]).
    picks: Vec<(u8, u8, u16)>,
    /// About one block in four carries a fault besides its valid spends.
    fault: Option<Fault>,
    /// Whose key the fault uses.
    fault_sender: u8,
    /// After a valid block, undo it on the chain too, by a heavier sibling branch.
    undo_by_reorg: bool,
}

fn arb_step() -> impl Strategy<Value = Step> {
    (
        prop::collection::vec((0u8..4, 0u8..5, any::<u16>()), 1..4),
        0..FAULTS.len() * 4,
        0u8..4,
        prop::bool::weighted(0.2),
    )
        .prop_map(|(picks, fault, fault_sender, undo_by_reorg)| Step {
            picks,
            fault: FAULTS.get(fault).copied(),
            fault_sender,
            undo_by_reorg,
        })
}

#[derive(Debug, Default)]
struct ApplyStats {
    cases: usize,
    cases_with_transfers: usize,
    blocks: usize,
    blocks_with_transfers: usize,
    transactions: usize,
    faulty: usize,
    undone_by_reorg: usize,
}

/// Runs `steps` on a chain and on the model: valid blocks must apply exactly as the model
/// says and undo (through the undo record's bytes) to exactly the state before; faulty ones
/// must be refused and change nothing.
fn apply_undo_case(steps: &[Step], stats: &mut ApplyStats) -> TestCaseResult {
    let p = params();
    let mut chain = chain();
    let mut ledger = genesis_ledger();
    prop_assert_eq!(chain.accounts(), &ledger);
    // The transactions of the main chain's blocks, for replays.
    let mut history: Vec<Transaction> = Vec::new();
    let mut tip = genesis(&p);
    let mut carried_any = false;
    for (n, step) in steps.iter().enumerate() {
        let salt = n as u64 % 500;
        let mut after = ledger.clone();
        credit(&mut after, miner_account(), REWARD);
        let mut txs = valid_spends(&p.network, &mut after, &step.picks);
        let carried = txs.len();
        let Some(fault) = step.fault else {
            let block = child(&p, tip, txs, salt);
            let before = snapshot(&chain);
            prop_assert_eq!(&before.accounts, &ledger);

            // The state machine alone: apply, then undo through the record's bytes.
            let mut overlay = Overlay::new(&before.accounts);
            let undo = overlay
                .apply_block(&block)
                .map_err(|e| TestCaseError::fail(format!("valid block refused: {e}")))?;
            let mut applied = before.accounts.clone();
            merge(&mut applied, overlay.into_changes());
            prop_assert_eq!(&applied, &after, "apply differs from the model");
            prop_assert_eq!(
                total_balance(&applied).unwrap().microcash(),
                total_balance(&before.accounts).unwrap().microcash() + REWARD
            );
            let undo = Undo::decode(&undo.encode()).unwrap();
            let mut back = Overlay::new(&applied);
            back.undo_block(&undo);
            let mut restored = applied.clone();
            merge(&mut restored, back.into_changes());
            prop_assert_eq!(
                &restored,
                &before.accounts,
                "undo did not restore the state"
            );

            // The chain: the block extends the tip with exactly the model's state.
            match chain.accept_block(block.clone(), NOW) {
                Ok(BlockOutcome::Stored {
                    tip_change: Some(change),
                    ..
                }) => {
                    prop_assert_eq!(change.new_tip, block.hash());
                    prop_assert!(!change.is_reorg());
                }
                other => return Err(TestCaseError::fail(format!("valid block: {other:?}"))),
            }
            prop_assert_eq!(chain.tip().hash, block.hash());
            prop_assert_eq!(chain.height(), before.tip.height + 1);
            prop_assert_eq!(chain.accounts(), &after);
            prop_assert_eq!(chain.supply(), p.supply_at(chain.height()));
            stats.blocks += 1;
            if carried > 0 {
                stats.blocks_with_transfers += 1;
                stats.transactions += carried;
                carried_any = true;
            }

            if step.undo_by_reorg {
                // The chain undoes it too: a sibling of equal work changes nothing (the
                // block seen first stays), and a second block on the sibling makes that
                // branch heavier, so the block is disconnected.
                let at_block = snapshot(&chain);
                let s1 = child(&p, tip, vec![], 500 + salt);
                let s2 = child(&p, parent_of(&s1), vec![], 500 + salt);
                let outcome = chain.accept_block(s1.clone(), NOW).unwrap();
                prop_assert!(
                    matches!(
                        outcome,
                        BlockOutcome::Stored {
                            tip_change: None,
                            ..
                        }
                    ),
                    "{:?}",
                    outcome
                );
                prop_assert_eq!(&snapshot(&chain), &at_block);
                match chain.accept_block(s2.clone(), NOW) {
                    Ok(BlockOutcome::Stored {
                        tip_change: Some(change),
                        ..
                    }) => {
                        prop_assert_eq!(change.disconnected, vec![block.hash()]);
                        prop_assert_eq!(change.connected, vec![s1.hash(), s2.hash()]);
                    }
                    other => return Err(TestCaseError::fail(format!("reorg: {other:?}"))),
                }
                let mut expected = ledger.clone();
                credit(&mut expected, miner_account(), 2 * REWARD);
                prop_assert_eq!(chain.tip().hash, s2.hash());
                prop_assert_eq!(chain.accounts(), &expected, "reorg did not undo the block");
                prop_assert_eq!(chain.supply(), p.supply_at(chain.height()));
                ledger = expected;
                tip = parent_of(&s2);
                stats.undone_by_reorg += 1;
                continue;
            }
            ledger = after;
            tip = parent_of(&block);
            history.extend(block.transactions);
            continue;
        };

        // A faulty block: the valid spends, and the fault.
        let (key, state) = funded(&after, step.fault_sender);
        let balance = state.balance.microcash();
        let next = state.next_sequence;
        let to = bob().account();
        let mut block = draft(&p, tip, vec![], salt);
        match fault {
            Fault::BadSignature => {
                let mut tx = sign_transfer(&p.network, &key, to, 1, next);
                flip_signature(&mut tx);
                txs.push(tx);
            }
            Fault::Overspend => txs.push(sign_transfer(&p.network, &key, to, balance + 1, next)),
            Fault::SequenceGap => txs.push(sign_transfer(&p.network, &key, to, 1, next + 1)),
            Fault::Replay | Fault::Duplicate => {
                let old = match (fault, history.last()) {
                    (Fault::Replay, Some(old)) => old.clone(),
                    _ => {
                        if txs.is_empty() {
                            txs.push(sign_transfer(&p.network, &key, to, 1, next));
                        }
                        txs[0].clone()
                    }
                };
                txs.push(old);
            }
            Fault::ZeroAmount => txs.push(sign_transfer(&p.network, &key, to, 0, next)),
            Fault::SplitPaysSender => {
                let outputs = [(key.account(), 1), (alice().account(), 1)];
                txs.push(sign_split(&p.network, &key, &outputs, next));
            }
            Fault::WrongReward => {
                block.coinbase.amount = Amount::from_microcash(REWARD + 1);
            }
            Fault::WrongTarget => block.header.target = p.initial_target.shr(1),
        }
        block.transactions = txs;
        let block = seal(block);
        let before = snapshot(&chain);
        let result = chain.accept_block(block.clone(), NOW);
        prop_assert!(
            matches!(result, Err(ChainError::Invalid { .. })),
            "{:?} not refused: {:?}",
            fault,
            result
        );
        prop_assert_eq!(
            &snapshot(&chain),
            &before,
            "a refused block changed the chain"
        );
        prop_assert!(!chain.is_on_main_chain(&block.hash()));
        // Offered again, it is refused again, still changing nothing.
        prop_assert!(chain.accept_block(block, NOW).is_err());
        prop_assert_eq!(snapshot(&chain), before);
        stats.faulty += 1;
    }
    stats.cases += 1;
    if carried_any {
        stats.cases_with_transfers += 1;
    }
    Ok(())
}

/// Protects rule 9 and the undo records: a valid block (transfers and splits drawn from
/// the running state: funded keys, right sequences, amounts within balance) applies exactly
/// as an independent model of the accounts says, grows supply by one reward, and undoing it
/// (from the undo record's bytes, as storage keeps it, and on the chain by a reorganisation)
/// restores exactly the state before; a block with a fault (bad signature, overspend,
/// sequence gap, replay, duplicate, zero amount, malformed split, wrong reward or target) is
/// refused and leaves tip, main chain, accounts, sequences and supply exactly as they were.
#[test]
fn apply_then_undo_restores_the_exact_state() {
    let stats = RefCell::new(ApplyStats::default());
    let mut runner = TestRunner::new(RunnerConfig {
        cases: 64,
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    runner
        .run(&prop::collection::vec(arb_step(), 1..12), |steps| {
            apply_undo_case(&steps, &mut stats.borrow_mut())
        })
        .unwrap();
    let stats = stats.into_inner();
    eprintln!("apply/undo: {stats:?}");
    // The generator must make the property bite: most blocks carry real spends.
    let all_blocks = stats.blocks + stats.faulty;
    assert!(
        2 * stats.blocks_with_transfers > all_blocks,
        "too few blocks carried spends: {stats:?}"
    );
    assert!(
        4 * stats.cases_with_transfers > 3 * stats.cases,
        "{stats:?}"
    );
    assert!(stats.faulty > 0 && stats.undone_by_reorg > 0, "{stats:?}");
}

// ---------------------------------------------------------------------------------------
// 2. Encodings.
// ---------------------------------------------------------------------------------------

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

/// Valid encodings to mutate: a mined block with transfers and a split, its transactions,
/// and its undo record.
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
        let block = child(&p, genesis(&p), txs.clone(), 0);
        let keys = KeyCache::new(1_000);
        check_block(&p, &keys, block.clone()).expect("the sample is valid");
        let accounts = genesis_ledger();
        let undo = Overlay::new(&accounts).apply_block(&block).unwrap();
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

// ---------------------------------------------------------------------------------------
// 3. Fork choice between two branches.
// ---------------------------------------------------------------------------------------

/// Two branches from genesis of `len_a` and `len_b` blocks, paying among three keys as
/// `pays` says (each branch funds its payments from genesis on its own). A payment whose
/// `from` is 3 or more is a split from `from % 3` paying `amount` to each of the two other
/// keys, so reorganisations undo and redo splits as well as transfers.
fn two_branches(len_a: usize, len_b: usize, pays: &[(u8, u8, u64)]) -> (Vec<Block>, Vec<Block>) {
    let p = params();
    let keys = [alice(), bob(), carol()];
    let branch = |len: usize, salt: u64| {
        let mut blocks: Vec<Block> = Vec::new();
        let mut balances: HashMap<AccountId, u64> = HashMap::from([
            (alice().account(), 100 * CASH),
            (bob().account(), 50 * CASH),
        ]);
        let mut sequences: HashMap<AccountId, u64> = HashMap::new();
        for i in 0..len {
            let parent = blocks.last().map(parent_of).unwrap_or(genesis(&p));
            let mut txs = Vec::new();
            for (j, (from, to, amount)) in pays.iter().enumerate() {
                if (j + i) % 3 != 0 {
                    continue;
                }
                let is_split = *from >= 3;
                let sender = *from as usize % 3;
                let recipients: Vec<usize> = if is_split {
                    (0..3).filter(|k| *k != sender).collect()
                } else {
                    vec![*to as usize % 3]
                };
                let from = &keys[sender];
                let total = amount * recipients.len() as u64;
                let balance = balances.entry(from.account()).or_default();
                if *balance < total {
                    continue;
                }
                *balance -= total;
                for k in &recipients {
                    *balances.entry(keys[*k].account()).or_default() += amount;
                }
                let seq = sequences.entry(from.account()).or_default();
                txs.push(if is_split {
                    let outputs: Vec<(AccountId, u64)> = recipients
                        .iter()
                        .map(|k| (keys[*k].account(), *amount))
                        .collect();
                    split_micro(from, &outputs, *seq)
                } else {
                    transfer_micro(from, keys[*to as usize % 3].account(), *amount, *seq)
                });
                *seq += 1;
            }
            blocks.push(child(&p, parent, txs, salt));
        }
        blocks
    };
    (branch(len_a, 1), branch(len_b, 2))
}

/// The blocks of both branches in a deterministic shuffle.
fn shuffled<'a>(a: &'a [Block], b: &'a [Block], order_seed: u64) -> Vec<&'a Block> {
    let mut all: Vec<&Block> = a.iter().chain(b).collect();
    let mut state = order_seed | 1;
    for i in (1..all.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        all.swap(i, (state % (i as u64 + 1)) as usize);
    }
    all
}

/// Two branches from genesis with random transactions; every block is fed in a random
/// order. The chain must end on the heavier branch (every block has the same work, so the
/// longer one) with exactly the state of replaying it. On equal length the documented tie
/// rule decides: "on equal work the block seen first stays", and a branch's full-length
/// tip is seen (connected: orphans wait for their parent) when the last of its blocks
/// arrives, so the branch whose blocks have all arrived first wins.
fn fork_case(len_a: usize, len_b: usize, order_seed: u64, pays: &[(u8, u8, u64)]) {
    let (a, b) = two_branches(len_a, len_b, pays);
    let all = shuffled(&a, &b, order_seed);
    let mut chain = Chain::in_memory(&contract(), ChainConfig::default()).unwrap();
    for block in &all {
        let outcome = chain.accept_block((*block).clone(), NOW).unwrap();
        assert_ne!(outcome, BlockOutcome::Duplicate);
        assert_eq!(chain.supply(), chain.params().supply_at(chain.height()));
    }
    // When each branch's last missing block arrived.
    let complete_at = |branch: &[Block]| {
        branch
            .iter()
            .map(|block| all.iter().position(|b| b.hash() == block.hash()).unwrap())
            .max()
            .unwrap()
    };
    let expected_tip = match len_a.cmp(&len_b) {
        std::cmp::Ordering::Greater => a.last(),
        std::cmp::Ordering::Less => b.last(),
        std::cmp::Ordering::Equal if complete_at(&a) < complete_at(&b) => a.last(),
        std::cmp::Ordering::Equal => b.last(),
    };
    assert_eq!(
        chain.tip().hash,
        expected_tip.unwrap().hash(),
        "the heavier branch, or on equal work the one complete first"
    );
    let winner = if chain.tip().hash == a.last().map(Block::hash).unwrap_or_default() {
        &a
    } else {
        &b
    };
    let mut replay = Chain::in_memory(&contract(), ChainConfig::default()).unwrap();
    for block in winner {
        replay.accept_block(block.clone(), NOW).unwrap();
    }
    assert_eq!(replay.tip(), chain.tip());
    assert_eq!(replay.accounts(), chain.accounts());
    assert_eq!(chain.orphan_count(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Protects fork choice between two branches fed in any order: the heavier wins, on
    /// equal work the one complete first, with exactly its state.
    #[test]
    fn fork_choice_ends_on_the_heavier_branch_with_its_exact_state(
        len_a in 1usize..6, len_b in 1usize..6, seed in any::<u64>(),
        pays in prop::collection::vec((0u8..6, 0u8..3, 1u64..30_000_000), 0..6)
    ) {
        fork_case(len_a, len_b, seed, &pays);
    }
}

/// The same two honest branches, fed in a random order to an on-disk chain whose side
/// branches are held in memory almost at once (`store_margin`) in a tiny pool: no block is
/// ever refused as the sender's fault, supply stays exact, and the chain on disk always
/// reopens to the tip and accounts in memory. Then, after a restart with room for a whole
/// branch in the pool, each branch is sent again in order, as a sync would: the chain ends
/// on the heavier branch with exactly its state, on disk too.
fn held_case(
    len_a: usize,
    len_b: usize,
    order_seed: u64,
    pays: &[(u8, u8, u64)],
    store_margin: u64,
    max_held_blocks: usize,
) {
    let (a, b) = two_branches(len_a, len_b, pays);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain.redb");
    let config = ChainConfig {
        store_margin,
        max_held_blocks,
        ..ChainConfig::default()
    };
    let (tip, accounts) = {
        let mut chain = Chain::open(&path, &contract(), config).unwrap();
        for block in shuffled(&a, &b, order_seed) {
            if let Err(error) = chain.accept_block(block.clone(), NOW) {
                match error {
                    tally_chain::ChainError::Invalid { error, .. } => {
                        assert!(!error.is_peer_fault(), "an honest block refused: {error}")
                    }
                    other => panic!("{other}"),
                }
            }
            assert_eq!(chain.supply(), chain.params().supply_at(chain.height()));
        }
        (chain.tip(), chain.accounts().clone())
    };
    let reopened = Chain::open(&path, &contract(), config).unwrap();
    assert_eq!(reopened.tip(), tip, "disk and memory agree on the tip");
    assert_eq!(reopened.accounts(), &accounts);
    drop(reopened);
    // A restart (held blocks are memory only) with room for a whole branch in the pool.
    let config = ChainConfig {
        max_held_blocks: 8,
        ..config
    };
    let mut chain = Chain::open(&path, &contract(), config).unwrap();
    for block in a.iter().chain(&b) {
        let _ = chain.accept_block(block.clone(), NOW);
        assert_eq!(chain.supply(), chain.params().supply_at(chain.height()));
    }
    let heavier = if len_a > len_b { &a } else { &b };
    if len_a != len_b {
        assert_eq!(chain.tip().hash, heavier.last().map(Block::hash).unwrap());
    } else {
        // Equal work: a full-length tip stored before the restart stays (seen first);
        // otherwise `a`, sent first, completes first.
        let last = |branch: &[Block]| branch.last().map(Block::hash).unwrap();
        let expected = if tip.hash == last(&b) {
            last(&b)
        } else {
            last(&a)
        };
        assert_eq!(
            chain.tip().hash,
            expected,
            "equal work: the tip seen first stays"
        );
    }
    let winner = if chain.tip().hash == a.last().map(Block::hash).unwrap_or_default() {
        &a
    } else {
        &b
    };
    let mut replay = Chain::in_memory(&contract(), ChainConfig::default()).unwrap();
    for block in winner {
        replay.accept_block(block.clone(), NOW).unwrap();
    }
    assert_eq!(replay.accounts(), chain.accounts());
    drop(chain);
    let chain = Chain::open(&path, &contract(), config).unwrap();
    assert_eq!(replay.tip(), chain.tip());
    assert_eq!(replay.accounts(), chain.accounts());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Protects held side branches: no honest block refused as the sender's fault, disk and
    /// memory agree, and after a restart and a sync the heavier branch (on equal work, the
    /// tip seen first) wins with its exact state.
    #[test]
    fn held_side_branches_never_lose_an_honest_block_or_the_disk(
        len_a in 1usize..7, len_b in 1usize..7, seed in any::<u64>(),
        pays in prop::collection::vec((0u8..6, 0u8..3, 1u64..30_000_000), 0..6),
        store_margin in 0u64..3, max_held_blocks in 1usize..4,
    ) {
        held_case(len_a, len_b, seed, &pays, store_margin, max_held_blocks);
    }
}

// ---------------------------------------------------------------------------------------
// 4. Fork choice on random block trees, against a reference model.
// ---------------------------------------------------------------------------------------

/// Retarget every 2 blocks: on paths of at most [`MAX_DEPTH`] blocks that is at heights 4
/// and 6, so branches of one length carry different work, and a shorter branch may be the
/// heavier.
const WINDOW: u64 = 2;
const MAX_DEPTH: u64 = 7;

/// One block of a random tree.
#[derive(Clone, Debug)]
struct NodeSpec {
    /// 0: on genesis; 1 to 4: on the block before it; 5, 6: two before; 7: three before
    /// (or on genesis when there is none; a path that would pass [`MAX_DEPTH`] forks from
    /// its block at height 2 to 4 instead).
    parent: u8,
    /// 14: overspends; 15: sequence gap; 16: bad signature; 17: wrong (harder) target;
    /// anything else: valid (one block in twelve is invalid, and so are its descendants).
    kind: u8,
    /// Its time after its parent: 0.55 s to 1.8 s (plus its index, so that siblings
    /// differ), so that each retarget moves the target by 0.55 to 1.82 times, and two by
    /// 0.30 to 3.3 times: never clamped, and never 16 times easier than the tip's next
    /// target (so no honest orphan is refused as too easy).
    delay: u8,
    picks: Vec<(u8, u8, u16)>,
}

fn arb_node() -> impl Strategy<Value = NodeSpec> {
    (
        0u8..8,
        0u8..48,
        // Fast or slow, so that retargets move the target well away from 1.
        prop_oneof![0u8..4, 22u8..26],
        prop::collection::vec((0u8..4, 0u8..5, any::<u16>()), 0..3),
    )
        .prop_map(|(parent, kind, delay, picks)| NodeSpec {
            parent,
            kind,
            delay,
            picks,
        })
}

/// A block of the tree, with what the model knows of it.
struct Node {
    block: Block,
    parent: Option<usize>,
    /// Valid itself and all its ancestors.
    valid: bool,
    /// Cumulative work (meaningful for valid blocks).
    work: U256,
    /// The accounts after it (valid blocks), per the model.
    ledger: Accounts,
}

fn build_tree(p: &ChainParams, specs: &[NodeSpec]) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::with_capacity(specs.len());
    let genesis_ledger = genesis_ledger();
    for (i, spec) in specs.iter().enumerate() {
        let mut parent = match spec.parent {
            0 => None,
            1..=4 => i.checked_sub(1),
            5 | 6 => i.checked_sub(2),
            _ => i.checked_sub(3),
        };
        // A path at its full depth forks instead, from its block at height 2, 3 or 4: deep
        // branches that compete across the retargets.
        if parent.is_some_and(|j| nodes[j].block.header.height >= MAX_DEPTH) {
            let fork_height = 2 + u64::from(spec.delay % 3);
            while let Some(j) = parent.filter(|j| nodes[*j].block.header.height > fork_height) {
                parent = nodes[j].parent;
            }
        }
        let (previous, height, parent_ts, parent_target, parent_work, parent_ledger, parent_valid) =
            match parent {
                None => (
                    p.genesis_hash,
                    0,
                    T0,
                    p.initial_target,
                    U256::ZERO,
                    &genesis_ledger,
                    true,
                ),
                Some(j) => {
                    let n = &nodes[j];
                    let h = &n.block.header;
                    (
                        n.block.hash(),
                        h.height,
                        h.timestamp_ms,
                        h.target,
                        n.work,
                        &n.ledger,
                        n.valid,
                    )
                }
            };
        let height = height + 1;
        let mut target = if p.is_retarget_height(height) {
            // The ancestor at height - 1 - WINDOW starts the window.
            let first_height = height - 1 - p.retarget_window;
            let mut at = parent;
            while let Some(j) = at {
                if nodes[j].block.header.height == first_height {
                    break;
                }
                at = nodes[j].parent;
            }
            let first_ms = nodes[at.expect("a full window behind")]
                .block
                .header
                .timestamp_ms;
            retarget(p, parent_target, first_ms, parent_ts)
        } else {
            parent_target
        };
        let timestamp_ms = parent_ts + 550 + 50 * spec.delay as u64 + i as u64;
        let mut ledger = parent_ledger.clone();
        credit(&mut ledger, miner_account(), REWARD);
        let mut txs = valid_spends(&p.network, &mut ledger, &spec.picks);
        let (key, state) = funded(&ledger, spec.kind);
        let own_valid = match spec.kind {
            14 => {
                let over = state.balance.microcash() + 1;
                txs.push(sign_transfer(
                    &p.network,
                    &key,
                    carol().account(),
                    over,
                    state.next_sequence,
                ));
                false
            }
            15 => {
                txs.push(sign_transfer(
                    &p.network,
                    &key,
                    carol().account(),
                    1,
                    state.next_sequence + 1,
                ));
                false
            }
            16 => {
                let mut tx =
                    sign_transfer(&p.network, &key, carol().account(), 1, state.next_sequence);
                flip_signature(&mut tx);
                txs.push(tx);
                false
            }
            17 => {
                target = target.shr(1);
                false
            }
            _ => true,
        };
        let block = seal(Block {
            header: BlockHeader {
                version: HEADER_VERSION,
                network: p.network,
                height,
                previous,
                merkle_root: Digest::default(),
                timestamp_ms,
                target,
                nonce: 0,
            },
            coinbase: Coinbase {
                miner: miner_account(),
                amount: p.block_reward,
                height,
            },
            transactions: txs,
        });
        nodes.push(Node {
            block,
            parent,
            valid: parent_valid && own_valid,
            work: parent_work.saturating_add(&work(&target)),
            ledger,
        });
    }
    nodes
}

/// The reference: it sees only the valid blocks. A block is seen when it and its parent
/// are both known (a block whose parent is missing waits, and waiting blocks are forgotten
/// on a restart; seen blocks are durable); a block that lets waiting children in lets
/// them in breadth first, each parent's children in arrival order. The tip is the valid
/// block with the most cumulative work, on equal work the one seen first.
struct Reference {
    seen: HashSet<usize>,
    waiting: Vec<usize>,
    tip: Option<usize>,
    tip_work: U256,
    /// Blocks seen with exactly the tip's work, not taken (the tie rule at work).
    ties: usize,
    tip_changes: usize,
    /// Tip changes to a block no higher than the old tip (work, not height, decided).
    work_not_height: usize,
    /// The greatest height seen, and whether a tip was ever below it (more work on a
    /// shorter branch).
    max_height: u64,
    shorter_tip: bool,
}

impl Reference {
    fn new() -> Self {
        Reference {
            seen: HashSet::new(),
            waiting: Vec::new(),
            tip: None,
            tip_work: U256::ZERO,
            ties: 0,
            tip_changes: 0,
            work_not_height: 0,
            max_height: 0,
            shorter_tip: false,
        }
    }

    fn deliver(&mut self, i: usize, nodes: &[Node]) {
        if !nodes[i].valid || self.seen.contains(&i) {
            return;
        }
        let parent_seen = nodes[i].parent.is_none_or(|j| self.seen.contains(&j));
        if !parent_seen {
            if !self.waiting.contains(&i) {
                self.waiting.push(i);
            }
            return;
        }
        self.see(i, nodes);
        let mut queue = VecDeque::from([i]);
        while let Some(parent) = queue.pop_front() {
            let kids: Vec<usize> = self
                .waiting
                .iter()
                .copied()
                .filter(|k| nodes[*k].parent == Some(parent))
                .collect();
            for kid in kids {
                self.waiting.retain(|k| *k != kid);
                self.see(kid, nodes);
                queue.push_back(kid);
            }
        }
    }

    fn see(&mut self, i: usize, nodes: &[Node]) {
        self.seen.insert(i);
        if nodes[i].work > self.tip_work {
            let old_height = self.tip.map_or(0, |t| nodes[t].block.header.height);
            if nodes[i].block.header.height <= old_height {
                self.work_not_height += 1;
            }
            self.tip = Some(i);
            self.tip_work = nodes[i].work;
            self.tip_changes += 1;
        } else if nodes[i].work == self.tip_work {
            self.ties += 1;
        }
        self.max_height = self.max_height.max(nodes[i].block.header.height);
        let tip_height = self.tip.map_or(0, |t| nodes[t].block.header.height);
        self.shorter_tip |= tip_height < self.max_height;
    }

    fn restart(&mut self) {
        self.waiting.clear();
    }
}

#[derive(Debug, Default)]
struct ForkStats {
    cases: usize,
    blocks: usize,
    invalid_blocks: usize,
    retargeted: usize,
    deliveries: usize,
    restarts: usize,
    ties: usize,
    tip_changes: usize,
    work_not_height: usize,
    /// Cases where a tip was shorter than a valid branch seen (work beat length).
    work_beats_length: usize,
}

fn check_against_reference<S: ChainStore>(
    chain: &Chain<S>,
    reference: &Reference,
    nodes: &[Node],
    genesis: &Accounts,
    context: &str,
) -> TestCaseResult {
    let (hash, ledger) = match reference.tip {
        None => (chain.params().genesis_hash, genesis),
        Some(i) => (nodes[i].block.hash(), &nodes[i].ledger),
    };
    prop_assert_eq!(
        chain.tip().hash,
        hash,
        "tip differs from the reference {}",
        context
    );
    prop_assert_eq!(chain.tip().work, reference.tip_work);
    prop_assert_eq!(
        chain.accounts(),
        ledger,
        "accounts differ from the model {}",
        context
    );
    prop_assert_eq!(chain.supply(), chain.params().supply_at(chain.height()));
    Ok(())
}

fn fork_tree_case(
    specs: &[NodeSpec],
    order: &[usize],
    extra: &[(Index, Index)],
    restarts: &[Index],
    stats: &mut ForkStats,
) -> TestCaseResult {
    let contract = contract_with(4, WINDOW, 100);
    let p = ChainParams::from_contract(&contract).unwrap();
    let nodes = build_tree(&p, specs);
    let n = nodes.len();
    // Every block in a random order, some twice, then everything again parents first (a
    // sync), so each case ends with every block known.
    let mut schedule = order.to_vec();
    for (at, node) in extra {
        schedule.insert(at.index(schedule.len() + 1), node.index(n));
    }
    let restart_after: HashSet<usize> = restarts.iter().map(|i| i.index(schedule.len())).collect();
    schedule.extend(0..n);

    let disk = MemoryDisk::new();
    let open = || {
        let store = MemoryStore::open(&disk, &p.network).unwrap();
        Chain::with_store(store, p.clone(), ChainConfig::default()).unwrap()
    };
    let genesis = genesis_ledger();
    let mut chain = open();
    let mut reference = Reference::new();
    for (step, &i) in schedule.iter().enumerate() {
        let result = chain.accept_block(nodes[i].block.clone(), NOW);
        if nodes[i].valid {
            prop_assert!(result.is_ok(), "valid block {} refused: {:?}", i, result);
        }
        reference.deliver(i, &nodes);
        let context = format!("after delivering block {i} (step {step})");
        check_against_reference(&chain, &reference, &nodes, &genesis, &context)?;
        if restart_after.contains(&step) {
            drop(chain);
            chain = open();
            reference.restart();
            stats.restarts += 1;
            check_against_reference(&chain, &reference, &nodes, &genesis, "after a restart")?;
        }
    }
    // Every valid block was seen by the end.
    prop_assert_eq!(
        reference.seen.len(),
        nodes.iter().filter(|n| n.valid).count()
    );
    if reference.shorter_tip {
        stats.work_beats_length += 1;
    }
    stats.cases += 1;
    stats.blocks += n;
    stats.invalid_blocks += nodes.iter().filter(|n| !n.valid).count();
    stats.retargeted += nodes
        .iter()
        .filter(|n| {
            n.block.header.target != p.initial_target
                && n.block.header.target != p.initial_target.shr(1)
        })
        .count();
    stats.deliveries += schedule.len();
    stats.ties += reference.ties;
    stats.tip_changes += reference.tip_changes;
    stats.work_not_height += reference.work_not_height;
    Ok(())
}

/// Protects fork choice as PROTOCOL.md states it ("the main chain ends at the valid block
/// with the most cumulative work; on equal work the block seen first stays"): random block
/// trees (several branches, a retarget that makes branches of one length differ in work,
/// blocks that overspend, skip a sequence, carry a bad signature or a wrong target, and
/// their descendants), delivered in random order with duplicates and restarts of the chain
/// over its store (orphans are lost, stored blocks kept), then synced in full. After every
/// delivery and restart the chain's tip, work and accounts equal a reference model's (most
/// work among the valid blocks seen, first seen on ties; accounts replayed by the model),
/// and no valid block is ever refused.
#[test]
fn fork_choice_follows_the_reference_on_random_trees() {
    let stats = RefCell::new(ForkStats::default());
    let mut runner = TestRunner::new(RunnerConfig {
        cases: 320,
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let strategy = prop::collection::vec(arb_node(), 4..24).prop_flat_map(|specs| {
        let n = specs.len();
        (
            Just(specs),
            Just((0..n).collect::<Vec<usize>>()).prop_shuffle(),
            prop::collection::vec((any::<Index>(), any::<Index>()), 0..4),
            prop::collection::vec(any::<Index>(), 0..3),
        )
    });
    runner
        .run(&strategy, |(specs, order, extra, restarts)| {
            fork_tree_case(&specs, &order, &extra, &restarts, &mut stats.borrow_mut())
        })
        .unwrap();
    let stats = stats.into_inner();
    eprintln!("fork choice: {stats:?}");
    assert!(
        stats.ties > 0 && stats.restarts > 0 && stats.work_not_height > 0,
        "{stats:?}"
    );
}
