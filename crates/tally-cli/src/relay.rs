//! `tally relay` and `tally chat`: the LiveConnect chat relay and a by-hand client.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use tally_relay::client::{self, ClientConfig};
use tally_relay::{ClientError, Incoming, Notice, Relay, RelayConfig, RoomKind};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tracing::info;

use crate::duration::parse_duration;

/// Options of `tally relay`. Every limit defaults to the value documented in
/// PROTOCOL.md §7 (RelayConfig::default()).
#[derive(clap::Args, Debug)]
pub struct RelayArgs {
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, default_value = "0.0.0.0:7777")]
    pub listen: SocketAddr,
    /// Longest line accepted, in bytes [default: 65536].
    #[arg(long)]
    pub max_line_bytes: Option<usize>,
    /// Most bytes queued for one member before it is dropped as a slow reader [default: 1048576].
    #[arg(long)]
    pub max_queue_bytes: Option<usize>,
    /// Close members silent for this long (500ms, 60s, 2m) [default: 60s].
    #[arg(long, value_parser = parse_duration)]
    pub idle_timeout: Option<Duration>,
    /// Close connections that have not joined after this long [default: 10s].
    #[arg(long, value_parser = parse_duration)]
    pub join_timeout: Option<Duration>,
    /// Drop members whose queued lines make no progress for this long [default: 10s].
    #[arg(long, value_parser = parse_duration)]
    pub write_timeout: Option<Duration>,
    /// Time spent flushing and draining a connection being closed [default: 1s].
    #[arg(long, value_parser = parse_duration)]
    pub close_linger: Option<Duration>,
    /// Member cap of topic rooms [default: 64].
    #[arg(long)]
    pub topic_cap: Option<usize>,
    /// Most open connections in all [default: 10000].
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Most open connections from one IP address [default: 32].
    #[arg(long)]
    pub max_connections_per_ip: Option<usize>,
    /// Sustained lines per second per connection, 0 for no limit [default: 200].
    #[arg(long)]
    pub lines_per_sec: Option<u32>,
    /// Line burst per connection [default: 1000].
    #[arg(long)]
    pub line_burst: Option<u32>,
    /// Sustained bytes per second per connection, 0 for no limit [default: 1048576].
    #[arg(long)]
    pub bytes_per_sec: Option<u64>,
    /// Byte burst per connection [default: 4194304].
    #[arg(long)]
    pub byte_burst: Option<u64>,
    /// Refused lines a connection may send before it is closed [default: 10].
    #[arg(long)]
    pub max_bad_lines: Option<u32>,
    /// Listen backlog [default: 1024].
    #[arg(long)]
    pub backlog: Option<u32>,
    /// After each read keep polling for this long instead of sleeping (50us, 1ms; 0 is off):
    /// lower latency on virtual machines for up to one core while lines flow. Use with
    /// `--threads 1` [default: 0].
    #[arg(long, value_parser = parse_duration)]
    pub busy_poll: Option<Duration>,
    /// Worker threads of a runtime of the relay's own (1 = a single-threaded runtime, the
    /// least CPU per line at moderate load); 0 runs the relay on the command's runtime, one
    /// worker per core.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

impl RelayArgs {
    fn config(&self) -> RelayConfig {
        let d = RelayConfig::default();
        RelayConfig {
            listen: self.listen,
            max_line_bytes: self.max_line_bytes.unwrap_or(d.max_line_bytes),
            max_queue_bytes: self.max_queue_bytes.unwrap_or(d.max_queue_bytes),
            idle_timeout: self.idle_timeout.unwrap_or(d.idle_timeout),
            join_timeout: self.join_timeout.unwrap_or(d.join_timeout),
            write_timeout: self.write_timeout.unwrap_or(d.write_timeout),
            close_linger: self.close_linger.unwrap_or(d.close_linger),
            topic_cap: self.topic_cap.unwrap_or(d.topic_cap),
            max_connections: self.max_connections.unwrap_or(d.max_connections),
            max_connections_per_ip: self
                .max_connections_per_ip
                .unwrap_or(d.max_connections_per_ip),
            lines_per_sec: self.lines_per_sec.unwrap_or(d.lines_per_sec),
            line_burst: self.line_burst.unwrap_or(d.line_burst),
            bytes_per_sec: self.bytes_per_sec.unwrap_or(d.bytes_per_sec),
            byte_burst: self.byte_burst.unwrap_or(d.byte_burst),
            max_bad_lines: self.max_bad_lines.unwrap_or(d.max_bad_lines),
            backlog: self.backlog.unwrap_or(d.backlog),
            busy_poll: self.busy_poll.unwrap_or(d.busy_poll),
        }
    }
}

/// `tally relay`: runs the relay until Ctrl-C or SIGTERM, then stops cleanly. Prints
/// `relay listening on ADDR` on stdout once bound, for scripts and tests.
pub async fn run(args: RelayArgs) -> anyhow::Result<()> {
    let config = args.config();
    if !config.busy_poll.is_zero() && args.threads != 1 {
        tracing::warn!(
            "--busy-poll works best with --threads 1: on a multi-threaded runtime another \
             worker may hold the sockets' poller while one spins"
        );
    }
    if args.threads == 0 {
        let relay = bind_and_announce(config).await?;
        relay.serve(crate::shutdown_signal()).await?;
        return Ok(());
    }
    // A runtime of the relay's own, on its own thread; this one only waits for the signal.
    let threads = args.threads;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel::<anyhow::Result<()>>();
    std::thread::Builder::new()
        .name("relay".into())
        .spawn(move || {
            let result = (|| {
                let runtime = if threads == 1 {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?
                } else {
                    tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(threads)
                        .enable_all()
                        .build()?
                };
                runtime.block_on(async move {
                    let relay = bind_and_announce(config).await?;
                    relay
                        .serve(async move {
                            let _ = stop_rx.await;
                        })
                        .await?;
                    anyhow::Ok(())
                })
            })();
            let _ = done_tx.send(result);
        })?;
    tokio::select! {
        () = crate::shutdown_signal() => {
            let _ = stop_tx.send(());
            done_rx.await?
        }
        done = &mut done_rx => done?,
    }
}

/// Binds the relay and prints `relay listening on ADDR` on stdout.
async fn bind_and_announce(config: RelayConfig) -> anyhow::Result<Relay> {
    let relay = Relay::bind(config.clone()).await?;
    let addr = relay.local_addr();
    {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "relay listening on {addr}")?;
        stdout.flush()?;
    }
    info!(%addr, ?config, "relay started");
    Ok(relay)
}

/// Options of `tally chat`.
#[derive(clap::Args, Debug)]
pub struct ChatArgs {
    /// The relay, as HOST:PORT.
    pub relay: String,
    /// The room to join.
    pub room: String,
    /// The room's join token (the first member sets it).
    pub token: String,
    /// Join a topic room (TOPIC) instead of a private two-member room (JOIN).
    #[arg(long)]
    pub topic: bool,
}

/// Reads stdin lines on a plain thread and hands them over; lines longer than `max` are
/// reported and skipped. A thread, not a tokio blocking task: a stdin read cannot be
/// cancelled, and the runtime would wait for it forever at exit.
fn spawn_stdin_lines(max: usize) -> mpsc::Receiver<String> {
    use std::io::{BufRead, Read};
    let (tx, rx) = mpsc::channel(64);
    let reader = move || {
        let stdin = std::io::stdin();
        let mut stdin = stdin.lock();
        let mut buf = Vec::new();
        let limit = (max + 2) as u64;
        loop {
            buf.clear();
            match (&mut stdin).take(limit).read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if buf.last() != Some(&b'\n') && buf.len() as u64 >= limit {
                eprintln!("chat: line longer than {max} bytes, not sent");
                // Skip the rest of the over-long line.
                loop {
                    buf.clear();
                    match (&mut stdin).take(64 * 1024).read_until(b'\n', &mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(_) if buf.last() == Some(&b'\n') => break,
                        Ok(_) => {}
                    }
                }
                continue;
            }
            while matches!(buf.last(), Some(b'\n' | b'\r')) {
                buf.pop();
            }
            let Ok(line) = String::from_utf8(buf.clone()) else {
                eprintln!("chat: line is not UTF-8, not sent");
                continue;
            };
            if tx.blocking_send(line).is_err() {
                return;
            }
        }
    };
    if let Err(error) = std::thread::Builder::new()
        .name("chat-stdin".into())
        .spawn(reader)
    {
        eprintln!("chat: cannot read stdin: {error}");
    }
    rx
}

/// `tally chat HOST:PORT ROOM TOKEN`: stdin lines go to the room, everything the relay
/// sends (member lines and `@` notices, the join's `@ok` and `@here` included) goes to
/// stdout, one line each. Sends an empty keepalive line when stdin is quiet. Ends when
/// stdin ends (leaving the room) or the relay closes the connection (an error then).
pub async fn chat(args: ChatArgs) -> anyhow::Result<()> {
    let kind = if args.topic {
        RoomKind::Topic
    } else {
        RoomKind::Private
    };
    let config = ClientConfig::default();
    let joined =
        match client::join(args.relay.as_str(), kind, &args.room, &args.token, &config).await {
            Ok(joined) => joined,
            Err(ClientError::Refused { code, text }) => bail!("the relay refused: {code} {text}"),
            Err(error) => {
                return Err(error).context(format!("joining {} at {}", args.room, args.relay));
            }
        };
    let welcome = joined.welcome;
    let mut out = tokio::io::stdout();
    let mut hello = Notice::Ok {
        kind: welcome.kind,
        room: welcome.room.clone(),
        id: welcome.id,
        ip: welcome.ip,
        members: welcome.members,
        cap: welcome.cap,
        idle_ms: u64::try_from(welcome.idle_timeout.as_millis()).unwrap_or(u64::MAX),
        max_line: welcome.max_line,
    }
    .to_line();
    for peer in &welcome.present {
        hello.extend_from_slice(
            &Notice::Here {
                id: peer.id,
                ip: peer.ip,
            }
            .to_line(),
        );
    }
    out.write_all(&hello).await?;
    out.flush().await?;

    let (mut reader, writer) = (joined.reader, joined.writer);
    let mut writer = Some(writer);
    let keepalive_every = (welcome.idle_timeout / 3).max(Duration::from_millis(50));
    let mut keepalive = tokio::time::interval(keepalive_every);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stdin = spawn_stdin_lines(welcome.max_line);
    let mut sent_since_tick = false;
    let mut last_error: Option<String> = None;
    loop {
        tokio::select! {
            line = stdin.recv(), if writer.is_some() => match line {
                Some(line) => {
                    if let Some(w) = writer.as_mut() {
                        match w.send(&line).await {
                            Ok(()) => sent_since_tick = true,
                            Err(ClientError::InvalidLine(why)) => eprintln!("chat: not sent: {why}"),
                            Err(error) => return Err(error.into()),
                        }
                    }
                }
                None => {
                    // Stdin ended: leave the room, then print what is still arriving.
                    if let Some(w) = writer.take() {
                        w.close().await?;
                    }
                }
            },
            _ = keepalive.tick(), if writer.is_some() => {
                if !sent_since_tick && let Some(w) = writer.as_mut() {
                    w.keepalive().await?;
                }
                sent_since_tick = false;
            }
            incoming = reader.recv_line() => match incoming {
                Ok(Some(line)) => {
                    if let Incoming::Error { code, text } = Incoming::from_line(line.clone()) {
                        last_error = Some(format!("{code} {text}"));
                    }
                    out.write_all(line.as_bytes()).await?;
                    out.write_all(b"\n").await?;
                    out.flush().await?;
                }
                Ok(None) => break,
                Err(ClientError::Timeout(_)) => {}
                Err(error) => {
                    if writer.is_none() {
                        break;
                    }
                    return Err(error.into());
                }
            },
        }
    }
    if writer.is_some() {
        match last_error {
            Some(error) => bail!("the relay closed the connection: {error}"),
            None => bail!("the relay closed the connection"),
        }
    }
    Ok(())
}
