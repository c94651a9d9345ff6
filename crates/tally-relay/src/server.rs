//! The relay server: accepts connections, runs one task per connection, and moves lines
//! between the members of a room.
//!
//! Design for speed and bounded memory:
//! - A connection's task reads up to one chunk per wake-up, turns every complete line of it
//!   into one outgoing chunk (`#` substituted with the sender's precomputed address text),
//!   and hands that chunk to each other member with one call: no per-line allocation, and
//!   one write system call per chunk and receiver when the receiver keeps up.
//! - A sender writes straight into a receiver's socket when the receiver has nothing queued;
//!   what does not fit is appended to the receiver's bounded outbox, which the receiver's
//!   own task flushes when its socket becomes writable. Nobody ever waits for a receiver: a
//!   receiver whose outbox would pass the limit, or makes no progress for the write
//!   timeout, is disconnected as a slow reader.
//! - An idle connection holds no read buffer and no outgoing buffer.

use std::collections::HashMap;
use std::future::Future;
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::busy_poll::{Activity, BusyPoller};
use crate::config::RelayConfig;
use crate::error::RelayError;
use crate::protocol::{ErrorCode, error_line};
use crate::rooms::Rooms;

pub use crate::connection::RelayStats;
use crate::connection::{Conn, Counters, Shared, Slot, run_connection};

/// Pause after a failed `accept` (for example when out of file descriptors), so the loop
/// does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

/// A bound relay, ready to serve. Create it with [`Relay::bind`], then call [`Relay::run`],
/// [`Relay::serve`] or [`Relay::spawn`].
pub struct Relay {
    listener: TcpListener,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// Checks `config`, binds its listen address, and returns a relay ready to serve.
    /// Binding here (not in `run`) lets callers learn the real port of `...:0` first.
    pub async fn bind(config: RelayConfig) -> Result<Relay, RelayError> {
        config.validate()?;
        let addr = config.listen;
        let bind_error = |source| RelayError::Bind { addr, source };
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .map_err(bind_error)?;
        socket.set_reuseaddr(true).map_err(bind_error)?;
        socket.bind(addr).map_err(bind_error)?;
        let listener = socket.listen(config.backlog).map_err(bind_error)?;
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            rooms: Mutex::new(Rooms::new(config.topic_cap)),
            config,
            per_ip: Mutex::new(HashMap::new()),
            open: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            counters: Counters::default(),
            activity: Activity::new(),
            shutdown: CancellationToken::new(),
            log: tally_proto::admission::LogGate::default(),
            host_bytes: Mutex::new(HashMap::new()),
        });
        Ok(Relay {
            listener,
            local_addr,
            shared,
        })
    }

    /// The address the relay listens on (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The relay's counters now.
    pub fn stats(&self) -> RelayStats {
        self.shared.stats()
    }

    /// Serves until the task is dropped or the runtime stops.
    pub async fn run(self) -> Result<(), RelayError> {
        self.serve(std::future::pending()).await
    }

    /// Serves until `shutdown` completes, then stops accepting, tells every connection
    /// `@error shutdown`, closes them (each within the close linger) and returns.
    pub async fn serve<F>(self, shutdown: F) -> Result<(), RelayError>
    where
        F: Future<Output = ()>,
    {
        let tracker = TaskTracker::new();
        let token = self.shared.shutdown.clone();
        if !self.shared.config.busy_poll.is_zero() {
            let shared = Arc::clone(&self.shared);
            let poller = BusyPoller {
                window: shared.config.busy_poll,
            };
            tracker.spawn(async move { poller.run(&shared.activity, &shared.shutdown).await });
        }
        tokio::pin!(shutdown);
        info!(addr = %self.local_addr, "relay listening");
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = token.cancelled() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => self.admit(stream, peer, &tracker),
                    Err(error) => {
                        warn!(%error, "accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
            }
        }
        token.cancel();
        drop(self.listener);
        tracker.close();
        tracker.wait().await;
        info!(addr = %self.local_addr, "relay stopped");
        Ok(())
    }

    /// Runs the relay on a new task and returns a handle to stop it: the in-process form
    /// for tests and `tally devnet`.
    pub fn spawn(self) -> RelayHandle {
        let local_addr = self.local_addr;
        let shared = Arc::clone(&self.shared);
        let task = tokio::spawn(self.run());
        RelayHandle {
            local_addr,
            shared,
            task: Some(task),
        }
    }

    /// Accepts or refuses one new connection.
    fn admit(&self, stream: TcpStream, peer: SocketAddr, tracker: &TaskTracker) {
        let shared = &self.shared;
        let config = &shared.config;
        let ip = peer.ip().to_canonical();
        let refusal = {
            let mut per_ip = shared.per_ip.lock();
            let open = shared.open.load(Ordering::Relaxed);
            let count = per_ip.entry(ip).or_insert(0);
            if open >= config.max_connections {
                Some((ErrorCode::ServerFull, "the relay has too many connections"))
            } else if *count >= config.max_connections_per_ip {
                Some((
                    ErrorCode::TooManyConnections,
                    "too many connections from your address",
                ))
            } else {
                *count += 1;
                shared.open.store(open + 1, Ordering::Relaxed);
                None
            }
        };
        if let Some((code, text)) = refusal {
            shared.counters.refused.fetch_add(1, Ordering::Relaxed);
            // Forget a zero entry left by `or_insert`.
            let mut per_ip = shared.per_ip.lock();
            if per_ip.get(&ip) == Some(&0) {
                per_ip.remove(&ip);
            }
            drop(per_ip);
            debug!(%peer, code = code.as_str(), "connection refused");
            // Best effort: never wait for a refused client.
            let _ = stream.try_write(&error_line(code, text));
            let _ = socket2::SockRef::from(&stream).shutdown(Shutdown::Write);
            return;
        }
        let slot = Slot::new(Arc::clone(shared), ip);
        shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
        // Lines are small and latency matters: no Nagle delay.
        if let Err(error) = stream.set_nodelay(true) {
            debug!(%peer, %error, "cannot set TCP_NODELAY");
        }
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn::new(id, ip, stream));
        debug!(id, %peer, "connection accepted");
        tracker.spawn(run_connection(Arc::clone(shared), conn, slot));
    }
}

/// A running relay started with [`Relay::spawn`]. Dropping it stops the relay too.
#[derive(Debug)]
pub struct RelayHandle {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    task: Option<JoinHandle<Result<(), RelayError>>>,
}

impl RelayHandle {
    /// The address the relay listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The relay's counters now.
    pub fn stats(&self) -> RelayStats {
        self.shared.stats()
    }

    /// Stops the relay as [`Relay::serve`] does on shutdown and waits until it has stopped.
    pub async fn shutdown(mut self) -> Result<(), RelayError> {
        self.shared.shutdown.cancel();
        match self.task.take() {
            Some(task) => task
                .await
                .map_err(|error| RelayError::Task(error.to_string()))?,
            None => Ok(()),
        }
    }
}

impl Drop for RelayHandle {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}
