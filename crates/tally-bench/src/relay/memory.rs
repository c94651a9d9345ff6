//! The memory run: the relay's resident set with many idle joined connections.

use std::path::Path;
use std::time::Duration;

use super::child::{ChildRelay, join};
use super::settings::Settings;
use crate::error::{BenchError, Context};
use crate::procfs;

/// The relay's resident set, in bytes, before and with the idle connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdleMemory {
    pub before: u64,
    pub after: u64,
}

/// Relay memory for `idle` joined, idle connections (pairs in private rooms).
pub(super) async fn run(settings: &Settings, tally: &Path) -> Result<IdleMemory, BenchError> {
    let need = settings.idle as u64 + 256;
    if let Some(limit) = procfs::open_files_limit()
        && limit < need
    {
        return Err(BenchError::Settings(format!(
            "the open-files limit is {limit}, the memory run needs {need} in this process and in the \
             relay: raise it (ulimit -n {need}) or lower --idle"
        )));
    }
    let relay = ChildRelay::start(settings, tally).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = relay.rss()?;
    let addr = relay.addr;
    let mut streams = Vec::with_capacity(settings.idle);
    let pairs = settings.idle.div_ceil(2);
    let mut next_room = 0;
    while next_room < pairs {
        let batch = (pairs - next_room).min(64);
        let mut joins = tokio::task::JoinSet::new();
        for room in next_room..next_room + batch {
            joins.spawn(async move {
                let name = format!("idle-{room}");
                let a = join(addr, &name).await?;
                let b = join(addr, &name).await?;
                Ok::<_, BenchError>((a, b))
            });
        }
        while let Some(joined) = joins.join_next().await {
            let (a, b) = joined.context("a joining task failed")??;
            streams.push(a);
            streams.push(b);
        }
        next_room += batch;
    }
    streams.truncate(settings.idle);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = relay.rss()?;
    drop(streams);
    relay.stop();
    Ok(IdleMemory { before, after })
}
