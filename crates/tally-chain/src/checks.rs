//! The checks a block or a transaction can pass without the chain: header fields against
//! the consensus parameters, sizes, the coinbase, the merkle root, and the signatures
//! (batched, on all cores). They need no `&Chain`, so a node runs them for the next block
//! of a sync, or for a burst of gossip, while the chain is busy with the previous one.

use rayon::prelude::*;
use tally_core::{DecodeError, Digest, Encode, KeyCache};

use crate::block::{Block, BlockHash, HEADER_VERSION, Transaction, merkle_root};
use crate::consensus::ChainParams;
use crate::error::{BlockError, ChainError, invalid};
use crate::spend::Effect;
use crate::u256::U256;

/// Rules that need neither the parent nor the accounts. Cheap ones first: proof of
/// work before anything that costs us more than one hash.
pub(crate) fn check_context_free(
    params: &ChainParams,
    block: &Block,
    hash: &BlockHash,
) -> Result<(), BlockError> {
    let header = &block.header;
    if header.version != HEADER_VERSION {
        return Err(BlockError::Version(header.version));
    }
    if header.network != params.network {
        return Err(BlockError::WrongNetwork {
            got: header.network.0,
        });
    }
    if U256::from_be_bytes(hash.as_bytes()) > header.target || header.target > params.pow_limit {
        return Err(BlockError::InsufficientWork {
            hash: *hash,
            target: header.target,
        });
    }
    let count = block.transactions.len();
    if count > params.max_block_transactions as usize {
        return Err(BlockError::TooManyTransactions {
            count,
            max: params.max_block_transactions,
        });
    }
    let bytes = block.encoded_len();
    if bytes > params.max_block_bytes as usize {
        return Err(BlockError::TooLarge {
            bytes,
            max: params.max_block_bytes,
        });
    }
    if block.coinbase.height != header.height {
        return Err(BlockError::CoinbaseHeight {
            expected: header.height,
            got: block.coinbase.height,
        });
    }
    if block.coinbase.amount != params.block_reward {
        return Err(BlockError::CoinbaseAmount {
            expected: params.block_reward,
            got: block.coinbase.amount,
        });
    }
    for (index, tx) in block.transactions.iter().enumerate() {
        Effect::of(tx, &params.network).map_err(|error| error.in_block(index))?;
    }
    let expected = merkle_root(leaf_ids(block));
    if expected != header.merkle_root {
        return Err(BlockError::BadMerkleRoot {
            expected,
            got: header.merkle_root,
        });
    }
    Ok(())
}

/// A block that passed every rule needing neither its parent nor the accounts: proof of
/// work against its own target, sizes, coinbase, merkle root, and every signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedBlock {
    pub(crate) block: Block,
    pub(crate) hash: BlockHash,
}

impl CheckedBlock {
    /// The block.
    pub fn block(&self) -> &Block {
        &self.block
    }

    /// Its hash.
    pub fn hash(&self) -> BlockHash {
        self.hash
    }

    /// The block back.
    pub fn into_block(self) -> Block {
        self.block
    }
}

/// Checks what can be checked without the chain, signatures included (the expensive part,
/// batched and spread over all cores). It needs no `&Chain`, so a node can run it for the
/// next block while [`Chain::accept_checked`] applies the previous one.
///
/// [`Chain::accept_checked`]: crate::Chain::accept_checked
pub fn check_block(
    params: &ChainParams,
    keys: &KeyCache,
    block: Block,
) -> Result<CheckedBlock, ChainError> {
    let hash = block.hash();
    check_context_free(params, &block, &hash).map_err(|error| invalid(hash, error))?;
    check_signatures(params, keys, &block).map_err(|error| invalid(hash, error))?;
    Ok(CheckedBlock { block, hash })
}

/// Transactions whose signatures were verified for one network, by [`check_transactions`]:
/// what [`Chain::submit_checked`] takes.
///
/// [`Chain::submit_checked`]: crate::Chain::submit_checked
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedTransactions {
    pub(crate) network: tally_core::NetworkId,
    pub(crate) txs: Vec<Transaction>,
    pub(crate) valid: Vec<bool>,
}

impl CheckedTransactions {
    /// The transactions, in the order given.
    pub fn transactions(&self) -> &[Transaction] {
        &self.txs
    }
}

/// Verifies the signatures of `txs` (batched, on all cores) without the chain, so a node
/// can do the expensive part before it locks the chain for [`Chain::submit_checked`].
///
/// [`Chain::submit_checked`]: crate::Chain::submit_checked
pub fn check_transactions(
    params: &ChainParams,
    keys: &KeyCache,
    txs: Vec<Transaction>,
) -> CheckedTransactions {
    let valid = verify_signatures(params, keys, &txs);
    CheckedTransactions {
        network: params.network,
        txs,
        valid,
    }
}

/// Decodes a block's bytes, refusing more bytes or transactions than a block may hold
/// before parsing them.
pub fn decode_block(params: &ChainParams, bytes: &[u8]) -> Result<Block, ChainError> {
    if bytes.len() > params.max_block_bytes as usize {
        return Err(invalid(
            Digest::default(),
            BlockError::TooLarge {
                bytes: bytes.len(),
                max: params.max_block_bytes,
            },
        ));
    }
    let max = params.max_block_transactions;
    Block::decode_limited(bytes, max as usize).map_err(|error| {
        let error = match error {
            DecodeError::TooMany { count, .. } => BlockError::TooManyTransactions {
                count: usize::try_from(count).unwrap_or(usize::MAX),
                max,
            },
            other => other.into(),
        };
        invalid(Digest::default(), error)
    })
}

pub(crate) fn check_signatures(
    params: &ChainParams,
    keys: &KeyCache,
    block: &Block,
) -> Result<(), BlockError> {
    match verify_signatures(params, keys, &block.transactions)
        .iter()
        .position(|ok| !ok)
    {
        Some(index) => Err(BlockError::BadSignature { index }),
        None => Ok(()),
    }
}

/// The merkle leaves of a block, transaction ids hashed in parallel.
pub(crate) fn leaf_ids(block: &Block) -> Vec<Digest> {
    let mut leaves = Vec::with_capacity(block.transactions.len() + 1);
    leaves.push(block.coinbase.id());
    let ids: Vec<Digest> = block.transactions.par_iter().map(Transaction::id).collect();
    leaves.extend(ids);
    leaves
}

/// Checks every transaction's signature: batches spread over all cores. `result[i]`
/// tells whether `txs[i]` is signed by its sender for this network.
pub fn verify_signatures(params: &ChainParams, keys: &KeyCache, txs: &[Transaction]) -> Vec<bool> {
    if txs.is_empty() {
        return Vec::new();
    }
    // A few chunks per thread, so that a thread the OS delays does not hold up the block
    // (work stealing evens them out); chunks stay large enough to batch well.
    let threads = rayon::current_num_threads().max(1);
    let chunk = txs.len().div_ceil(4 * threads).max(256);
    txs.par_chunks(chunk)
        .flat_map_iter(|chunk| crate::sigverify::verify_chunk(&params.network, keys, chunk))
        .collect()
}
