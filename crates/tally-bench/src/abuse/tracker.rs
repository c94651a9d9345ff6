//! The tracker under abuse, the one the miner of [`super::miner`] registers with. The
//! honest wallet asks for the network's live peers (`LIST`, on a fresh connection, as a
//! wallet finding nodes does). The stranger's expensive request is a registration of 16
//! keys (the most one request carries): 16 proofs of work and 16 signatures to check and a
//! write to the tracker's database, here 64 different ones pipelined over and over.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tally_core::SecretKey;
use tally_core::pow::IntroPowHasher;
use tally_proto::encode_frame;
use tally_proto::tracker::{ListRequest, Request};
use tally_tracker::client::{ClientConfig, TrackerClient, sign_registration};

use super::attack::{Attack, STRANGER};
use super::miner::PowNetwork;
use super::{Abuse, Service, Target};
use crate::error::{BenchError, fail};

/// Keys in each of the stranger's registrations.
const KEYS_PER_REGISTRATION: usize = 16;
/// Different registrations the stranger pipelines.
const REGISTRATIONS: u64 = 64;

pub(super) struct TrackerTarget<'a> {
    network: &'a PowNetwork,
    client: TrackerClient,
    /// The stranger's keys with their proofs of work.
    stranger_keys: Vec<(SecretKey, u64)>,
}

impl<'a> TrackerTarget<'a> {
    pub(super) fn new(network: &'a PowNetwork) -> Result<TrackerTarget<'a>, BenchError> {
        let client = TrackerClient::new(
            network.tracker.to_string(),
            ClientConfig {
                answer_timeout: Duration::from_secs(10),
                max_attempts: 1,
                ..ClientConfig::default()
            },
        );
        let mut stranger_keys = Vec::with_capacity(KEYS_PER_REGISTRATION);
        for _ in 0..KEYS_PER_REGISTRATION {
            let key = SecretKey::generate();
            let Some(proof) = IntroPowHasher::new(&key.account())
                .search(0..u64::MAX, network.contract.intro_pow_bits)
            else {
                fail!("no proof of work found for a stranger's key");
            };
            stranger_keys.push((key, proof));
        }
        Ok(TrackerTarget {
            network,
            client,
            stranger_keys,
        })
    }
}

fn frame(request: &Request) -> Vec<u8> {
    encode_frame(&request.to_json())
}

impl Target for TrackerTarget<'_> {
    fn service(&self) -> Service {
        Service::Tracker
    }

    fn honest_does(&self) -> &'static str {
        "asks a `tally tracker` for the network's live peers (LIST on a fresh connection)"
    }

    fn pids(&self) -> Vec<u32> {
        vec![self.network.tracker_pid]
    }

    /// 50 lists a second: the tracker serves one host 200 requests a second; the miner on 127.0.0.1 registers too.
    fn pace(&self) -> Duration {
        Duration::from_millis(20)
    }

    fn logs(&self) -> Vec<PathBuf> {
        vec![self.network.tracker_log.clone()]
    }

    async fn honest(&self) -> Result<Duration, String> {
        let started = Instant::now();
        let peers = self
            .client
            .peers(self.network.contract.id(), Some(64))
            .await
            .map_err(|e| e.to_string())?;
        if peers.is_empty() {
            return Err("the tracker lists no peer (the miner registered)".into());
        }
        Ok(started.elapsed())
    }

    fn attacks(&self, abuse: Abuse) -> Option<Vec<Attack>> {
        let to = self.network.tracker;
        let network = self.network.contract.id();
        let list = frame(&Request::List(ListRequest { network, max: None }));
        let attack = match abuse {
            Abuse::None => return Some(Vec::new()),
            Abuse::HalfSentHttp => return None,
            Abuse::NeverReads => Attack::pipeline(to, 8, list.repeat(1000), false),
            Abuse::ExpensivePipelined => {
                let now = tally_tracker::now_ms();
                let at = SocketAddr::from((STRANGER, 9));
                let registrations: Vec<u8> = (0..REGISTRATIONS)
                    .flat_map(|i| {
                        frame(&Request::Reg(sign_registration(
                            network,
                            at,
                            now + i,
                            &self.stranger_keys,
                        )))
                    })
                    .collect();
                Attack::pipeline(to, 4, registrations, true)
            }
            Abuse::MalformedFlood => Attack::pipeline(to, 4, vec![0u8; 80_000], false),
            Abuse::HoldsConnections => Attack::Hold {
                to,
                prelude: Vec::new(),
                cheap: list,
            },
        };
        Some(vec![attack])
    }
}
