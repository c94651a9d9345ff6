//! Consensus parameters and the pure rules every node must compute identically: the
//! retarget, the work a target represents, the median time past.

use tally_core::{Allocation, Amount, Mode, NetworkContract, NetworkId, PowParams};

use crate::block::{BLOCK_PREFIX_LEN, BlockHash, genesis_hash};
use crate::u256::U256;

/// How many previous timestamps the median-time-past rule looks at.
pub const MEDIAN_TIME_SPAN: usize = 11;
/// How far ahead of the local clock a block's timestamp may be, in milliseconds. A block
/// beyond it is refused for now (not marked invalid: it may be fine a little later).
pub const MAX_FUTURE_DRIFT_MS: u64 = 10 * 60 * 1000;
/// The most one retarget may change the target by, either way.
pub const RETARGET_CLAMP: u64 = 4;

/// Proof-of-work parameters for a new network (`tally network new pow`): the given block
/// time, reward and initial difficulty; a retarget every 20 blocks; blocks of up to 5,000
/// transfers (about 0.7 MB). Why these: 20 blocks lets a devnet of a few seconds per block
/// find its difficulty within a minute or two, and 5,000 transfers is what the sync
/// benchmark validates.
pub fn default_pow_params(
    block_time_ms: u64,
    block_reward: Amount,
    initial_bits: u32,
) -> PowParams {
    PowParams {
        initial_bits,
        block_time_ms,
        retarget_window: 20,
        block_reward,
        max_block_transactions: 5_000,
        max_block_bytes: 1_000_000,
    }
}

/// Why a contract cannot drive a chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    #[error("the contract is not a proof-of-work network")]
    NotPow,
    #[error("the contract has no `pow` parameters")]
    NoPowParams,
    #[error("initial_bits {0} is above 255")]
    InitialBits(u32),
    #[error("block_time_ms must be positive")]
    BlockTime,
    #[error("max_block_bytes {0} cannot hold even an empty block ({BLOCK_PREFIX_LEN} bytes)")]
    BlockBytes(u32),
    #[error("genesis supply overflows")]
    SupplyOverflow,
    #[error("genesis allocates twice to {0}")]
    DuplicateAllocation(tally_core::AccountId),
}

/// Everything the chain needs from the contract, checked once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainParams {
    /// The network id every header must carry.
    pub network: NetworkId,
    /// The target of the first blocks.
    pub initial_target: U256,
    /// The easiest target retargeting may reach (any hash: retargeting is clamped per
    /// window, so it can ease a network whose hash rate left, but never jump).
    pub pow_limit: U256,
    /// The interval retargeting aims for.
    pub block_time_ms: u64,
    /// Blocks per retarget window (0: never retarget).
    pub retarget_window: u64,
    /// The coinbase amount of every block.
    pub block_reward: Amount,
    /// Most transactions per block, coinbase not counted.
    pub max_block_transactions: u32,
    /// Most bytes of a block's encoding.
    pub max_block_bytes: u32,
    /// Cash that exists at height 0.
    pub genesis: Vec<Allocation>,
    /// The virtual genesis block's hash, parent of block 1.
    pub genesis_hash: BlockHash,
}

impl ChainParams {
    /// The parameters of a proof-of-work contract.
    pub fn from_contract(contract: &NetworkContract) -> Result<Self, ParamsError> {
        if contract.mode != Mode::Pow {
            return Err(ParamsError::NotPow);
        }
        let pow: &PowParams = contract.pow.as_ref().ok_or(ParamsError::NoPowParams)?;
        if pow.initial_bits > 255 {
            return Err(ParamsError::InitialBits(pow.initial_bits));
        }
        if pow.block_time_ms == 0 {
            return Err(ParamsError::BlockTime);
        }
        if (pow.max_block_bytes as usize) < BLOCK_PREFIX_LEN {
            return Err(ParamsError::BlockBytes(pow.max_block_bytes));
        }
        contract
            .genesis_supply()
            .ok_or(ParamsError::SupplyOverflow)?;
        let mut seen = std::collections::HashSet::new();
        for allocation in &contract.genesis {
            if !seen.insert(allocation.account) {
                return Err(ParamsError::DuplicateAllocation(allocation.account));
            }
        }
        let network = contract.id();
        Ok(ChainParams {
            network,
            initial_target: U256::from_leading_zero_bits(pow.initial_bits),
            pow_limit: U256::MAX,
            block_time_ms: pow.block_time_ms,
            retarget_window: pow.retarget_window,
            block_reward: pow.block_reward,
            max_block_transactions: pow.max_block_transactions,
            max_block_bytes: pow.max_block_bytes,
            genesis: contract.genesis.clone(),
            genesis_hash: genesis_hash(&network),
        })
    }

    /// Total genesis allocations.
    pub fn genesis_supply(&self) -> Amount {
        self.genesis
            .iter()
            .try_fold(Amount::ZERO, |sum, a| sum.checked_add(a.amount))
            .unwrap_or(Amount::ZERO)
    }

    /// The supply at `height`: genesis plus one reward per block, or `None` past `u64`.
    pub fn supply_at(&self, height: u64) -> Option<Amount> {
        let rewards = self.block_reward.microcash().checked_mul(height)?;
        self.genesis_supply()
            .checked_add(Amount::from_microcash(rewards))
    }

    /// Whether the block at `height` gets a new target (computed by [`retarget`]) rather
    /// than its parent's: every `retarget_window` blocks, once a full window of real
    /// (non-genesis) timestamps lies behind it.
    pub fn is_retarget_height(&self, height: u64) -> bool {
        self.retarget_window > 0
            && height.is_multiple_of(self.retarget_window)
            && height > self.retarget_window + 1
    }
}

/// The retarget: `old × actual ÷ expected`, where `expected = window × block_time` and
/// `actual`, the time the last `window` blocks took, is clamped to
/// `[expected ÷ 4, expected × 4]`; the result is capped at `pow_limit` and is at least 1.
/// Exact integer arithmetic with a 320-bit intermediate, so every node agrees.
pub fn retarget(params: &ChainParams, old: U256, first_ms: u64, last_ms: u64) -> U256 {
    let expected = params
        .retarget_window
        .saturating_mul(params.block_time_ms)
        .max(1);
    let min = (expected / RETARGET_CLAMP).max(1);
    let max = expected.saturating_mul(RETARGET_CLAMP);
    let actual = last_ms.saturating_sub(first_ms).clamp(min, max);
    let new = old.mul_div(actual, expected).unwrap_or(params.pow_limit);
    new.min(params.pow_limit).max(U256::ONE)
}

/// The expected number of hashes to meet `target`: `2^256 ÷ (target + 1)`, computed as
/// `(!target ÷ (target + 1)) + 1` so it fits in 256 bits. Fork choice sums this.
pub fn work(target: &U256) -> U256 {
    match target.checked_add(&U256::ONE) {
        None => U256::ONE,
        Some(divisor) => target
            .not()
            .checked_div(&divisor)
            .unwrap_or(U256::ZERO)
            .saturating_add(&U256::ONE),
    }
}

/// The median of up to [`MEDIAN_TIME_SPAN`] timestamps (the lower middle for an even
/// count; 0 for none). A new block's timestamp must exceed it.
pub fn median_time(timestamps: &mut [u64]) -> u64 {
    if timestamps.is_empty() {
        return 0;
    }
    timestamps.sort_unstable();
    timestamps[(timestamps.len() - 1) / 2]
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn params(bits: u32, window: u64) -> ChainParams {
        let network = NetworkId(tally_core::sha256(&[b"consensus tests"]));
        ChainParams {
            network,
            initial_target: U256::from_leading_zero_bits(bits),
            pow_limit: U256::MAX,
            block_time_ms: 1000,
            retarget_window: window,
            block_reward: Amount::from_microcash(50_000_000),
            max_block_transactions: 100,
            max_block_bytes: 100_000,
            genesis: vec![],
            genesis_hash: genesis_hash(&network),
        }
    }

    #[test]
    fn work_of_known_targets() {
        assert_eq!(work(&U256::MAX), U256::ONE);
        assert_eq!(work(&U256::from_leading_zero_bits(1)), U256::from_u64(2));
        assert_eq!(
            work(&U256::from_leading_zero_bits(20)),
            U256::from_u64(1 << 20)
        );
        assert_eq!(work(&U256::ZERO), U256::MAX);
    }

    #[test]
    fn on_schedule_keeps_the_target() {
        let p = params(10, 10);
        let old = p.initial_target;
        assert_eq!(retarget(&p, old, 0, 10_000), old);
        // Twice as fast: the target halves (rounding down).
        assert_eq!(retarget(&p, old, 0, 5_000), old.shr(1));
    }

    #[test]
    fn retarget_heights() {
        let p = params(10, 10);
        assert!(!p.is_retarget_height(10));
        assert!(p.is_retarget_height(20));
        assert!(!p.is_retarget_height(21));
        assert!(!params(10, 0).is_retarget_height(20));
        assert!(params(10, 1).is_retarget_height(3));
        assert!(!params(10, 1).is_retarget_height(2));
    }

    #[test]
    fn median_of_timestamps() {
        assert_eq!(median_time(&mut []), 0);
        assert_eq!(median_time(&mut [5]), 5);
        assert_eq!(median_time(&mut [9, 1, 5]), 5);
        assert_eq!(median_time(&mut [4, 1, 3, 2]), 2);
    }

    proptest! {
        #[test]
        fn retarget_stays_within_the_clamp(
            bits in 2u32..250, first in any::<u64>(), last in any::<u64>(), window in 1u64..5000
        ) {
            let p = params(bits, window);
            let old = p.initial_target;
            let new = retarget(&p, old, first, last);
            prop_assert!(new >= U256::ONE);
            prop_assert!(new <= p.pow_limit);
            // At most 4 times easier...
            prop_assert!(new <= old.mul_div(RETARGET_CLAMP, 1).unwrap_or(U256::MAX));
            // ...and at most 4 times harder (plus rounding).
            prop_assert!(new.mul_div(RETARGET_CLAMP + 1, 1).unwrap_or(U256::MAX) >= old);
        }

        #[test]
        fn harder_targets_are_more_work(a in 1u32..255, b in 1u32..255) {
            let (ta, tb) = (U256::from_leading_zero_bits(a), U256::from_leading_zero_bits(b));
            prop_assert_eq!(a.cmp(&b), work(&ta).cmp(&work(&tb)));
        }
    }
}
