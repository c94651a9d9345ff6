//! Block acceptance under abuse: the same `tally node` as the miner's scenarios, and an
//! honest miner peer on 127.0.0.1 that mines a block on the node's tip (an empty block at
//! the bench network's low difficulty, mined before the clock starts), announces it
//! (`HASH_BROADCAST`) and asks for an account on the same connection: packets of one
//! connection are handled in order, so the answer's tip says the block was checked and
//! stored. The latency is announcement to that answer. The stranger does what it does to
//! the miner's wallets (ledger pages pipelined, never read, …): what this measures is
//! whether its requests delay the chain taking blocks.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tally_chain::{Chain, ChainConfig, miner};
use tally_core::{AccountId, SecretKey};
use tally_proto::pow::{
    self, Connect, HashBroadcast, PowPacket, ReqAccount, Tip, WireLimits, WireReader, WireWriter,
};

use super::attack::Attack;
use super::miner::{MinerTarget, PowNetwork};
use super::{Abuse, Service, Target};
use crate::error::{BenchError, Context};

/// The honest miner: its copy of the chain, and its connection once open.
pub(super) struct BlocksTarget<'a> {
    network: &'a PowNetwork,
    /// What the stranger does is what it does to the miner's wallets.
    miner: MinerTarget<'a>,
    reward_to: AccountId,
    mirror: Mutex<Chain>,
    peer: tokio::sync::Mutex<Option<(WireReader, WireWriter)>>,
}

impl<'a> BlocksTarget<'a> {
    pub(super) fn new(network: &'a PowNetwork) -> Result<BlocksTarget<'a>, BenchError> {
        let mirror = Chain::in_memory(&network.contract, ChainConfig::default())
            .context("the honest miner's chain")?;
        Ok(BlocksTarget {
            network,
            miner: MinerTarget::new(network),
            reward_to: SecretKey::generate().account(),
            mirror: Mutex::new(mirror),
            peer: tokio::sync::Mutex::new(None),
        })
    }

    /// The next block on the honest miner's tip, mined, and the tip it extends.
    fn mine(&self) -> Result<(tally_core::Block, Tip), String> {
        let mut mirror = self
            .mirror
            .lock()
            .map_err(|_| "the honest miner's chain lock is poisoned".to_string())?;
        let parent = mirror.tip().into();
        let now = tally_node::pow::node::now_ms();
        let mut block = mirror.block_template(self.reward_to, now);
        block.header = miner::solve(&block.header).ok_or("no nonce meets the target")?;
        mirror
            .accept_block(block.clone(), now)
            .map_err(|e| format!("the honest miner's own block: {e}"))?;
        Ok((block, parent))
    }

    /// A miner connection that has said `CONNECT` and had its answer.
    async fn connect(&self, tip: Tip) -> Result<(WireReader, WireWriter), String> {
        let limits = WireLimits::default();
        let address = self.network.miner.address.to_string();
        let stream = pow::connect(&address, limits)
            .await
            .map_err(|e| e.to_string())?;
        let (mut reader, mut writer) = pow::split(stream, limits);
        writer
            .send(&PowPacket::Connect(Connect {
                network: self.network.contract.id(),
                listen: None,
                tip,
            }))
            .await
            .map_err(|e| e.to_string())?;
        loop {
            match reader.recv().await.map_err(|e| e.to_string())? {
                PowPacket::Connect(_) => return Ok((reader, writer)),
                PowPacket::Error(error) => return Err(error.reason),
                _ => continue,
            }
        }
    }
}

impl Target for BlocksTarget<'_> {
    fn service(&self) -> Service {
        Service::Blocks
    }

    fn honest_does(&self) -> &'static str {
        "announces a block it mined to the `tally node` miner and waits until the miner's tip is that block"
    }

    /// A block every 5 ms or so: far above any real block rate, so that the figure has
    /// thousands of samples.
    fn pace(&self) -> Duration {
        Duration::from_millis(5)
    }

    /// Not the miner scenarios' stranger: the node may still be banning that one for its
    /// malformed flood, and a banned stranger costs the node nothing.
    fn stranger(&self) -> [u8; 4] {
        [127, 0, 0, 3]
    }

    fn pids(&self) -> Vec<u32> {
        self.miner.pids()
    }

    fn logs(&self) -> Vec<std::path::PathBuf> {
        self.miner.logs()
    }

    async fn honest(&self) -> Result<Duration, String> {
        let (block, parent) = self.mine()?;
        let hash = block.hash();
        let mut peer = self.peer.lock().await;
        let (reader, writer) = match peer.as_mut() {
            Some(open) => open,
            // The node's tip is the block's parent: say so, then announce the block.
            None => peer.insert(self.connect(parent).await?),
        };
        let started = Instant::now();
        let announce = PowPacket::HashBroadcast(HashBroadcast { hash, block });
        let ask = PowPacket::ReqAccount(ReqAccount {
            account: self.reward_to,
        });
        let answer = async {
            writer.send(&announce).await?;
            writer.send(&ask).await?;
            loop {
                match reader.recv().await? {
                    PowPacket::RespAccount(account) => return Ok(Ok(account.tip)),
                    PowPacket::RejectBlock(reject) => return Ok(Err(reject.reason)),
                    PowPacket::Error(error) => return Ok(Err(error.reason)),
                    // Keep-alives, gossip and requests of the node's are not the answer.
                    _ => continue,
                }
            }
        };
        let outcome: Result<Result<Tip, String>, tally_proto::ConnectionError> = answer.await;
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(error) => {
                // A broken connection is reopened for the next block.
                *peer = None;
                return Err(error.to_string());
            }
        };
        let their_tip = outcome?;
        if their_tip.hash != hash {
            // Out of step (a block refused or lost): start again from a fresh connection.
            *peer = None;
            return Err(format!(
                "the miner's tip is {} after our block",
                their_tip.hash
            ));
        }
        Ok(started.elapsed())
    }

    fn attacks(&self, abuse: Abuse) -> Option<Vec<Attack>> {
        self.miner.attacks(abuse)
    }
}
