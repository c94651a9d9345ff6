//! The latency run: paced lines through the relay, each timed from its write to its
//! arrival, and the same measurer over direct loopback connections for its floor.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use super::child::{ChildRelay, pairs};
use super::cpu::{CpuSample, CpuUse, cpu_use};
use super::settings::Settings;
use crate::error::{BenchError, Context, fail};
use crate::percentile::Distribution;

/// What one latency run measured.
#[derive(Clone, Debug)]
pub struct Latency {
    /// Each measured line's time from its write to its arrival.
    pub samples: Distribution,
    /// Lines per second sent inside the measured window.
    pub achieved_rate: f64,
    /// `None` for the floor (no relay) or without `/proc`.
    pub cpu: Option<CpuUse>,
}

/// Forwarding latency (send to receive, both in this process) at a fixed aggregate rate.
pub(super) async fn through_relay(
    settings: &Settings,
    tally: &Path,
) -> Result<Latency, BenchError> {
    let relay = ChildRelay::start(settings, tally).await?;
    let pairs = pairs(relay.addr, settings.rooms, "lat").await?;
    let mut senders = Vec::with_capacity(pairs.len());
    let mut receivers = Vec::with_capacity(pairs.len());
    for (sender, receiver) in pairs {
        senders.push(
            sender
                .into_std()
                .context("handing a sender to the measurer")?,
        );
        receivers.push(
            receiver
                .into_std()
                .context("handing a receiver to the measurer")?,
        );
    }
    let latency = paced(settings, senders, receivers, Some(relay.pid)).await;
    relay.stop();
    latency
}

/// The same paced clients over direct loopback connections, with no relay between sender
/// and receiver: what the measuring clients and the machine's scheduling cost by
/// themselves. The relay's figure can be no better than this floor.
pub(super) async fn floor(settings: &Settings) -> Result<Latency, BenchError> {
    let opening = "opening the floor's loopback connections";
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context(opening)?;
    let addr = listener.local_addr().context(opening)?;
    let mut senders = Vec::with_capacity(settings.rooms);
    let mut receivers = Vec::with_capacity(settings.rooms);
    for _ in 0..settings.rooms {
        let sender = TcpStream::connect(addr).await.context(opening)?;
        sender.set_nodelay(true).context(opening)?;
        let (receiver, _) = listener.accept().await.context(opening)?;
        receiver.set_nodelay(true).context(opening)?;
        senders.push(sender.into_std().context(opening)?);
        receivers.push(receiver.into_std().context(opening)?);
    }
    paced(settings, senders, receivers, None).await
}

/// Sends paced `<# t=NANOS>` lines round robin over `senders` and measures, on
/// `receivers[i]`, when each line sent on `senders[i]` arrives.
async fn paced(
    settings: &Settings,
    senders: Vec<std::net::TcpStream>,
    receivers: Vec<std::net::TcpStream>,
    relay_pid: Option<u32>,
) -> Result<Latency, BenchError> {
    let rooms = senders.len();
    if settings.latency_rate == 0 || rooms == 0 {
        return Err(BenchError::Settings(
            "the latency run needs a rate and rooms".into(),
        ));
    }
    let base = Instant::now();
    let warmup = settings.warmup;
    let measure = settings.latency_seconds;
    let plan = Pacing {
        base,
        rate: settings.latency_rate as f64,
        window: (warmup, warmup + measure),
    };
    let measurer = std::thread::Builder::new()
        .name("bench-measure".to_owned())
        .spawn(move || plan.run(senders, receivers))
        .context("starting the measuring thread")?;
    let cpu = tokio::spawn(async move {
        tokio::time::sleep(warmup.saturating_sub(base.elapsed())).await;
        let a = relay_pid.and_then(CpuSample::take);
        tokio::time::sleep((warmup + measure).saturating_sub(base.elapsed())).await;
        cpu_use(a, relay_pid.and_then(CpuSample::take))
    });
    let (sent, samples) = tokio::task::spawn_blocking(move || measurer.join())
        .await
        .context("waiting for the measuring thread")?
        .map_err(|_| BenchError::Check("the measuring thread panicked".into()))??;
    let lost = sent.saturating_sub(samples.len() as u64);
    if lost > 0 {
        fail!("{lost} of {sent} measured lines never arrived");
    }
    Ok(Latency {
        achieved_rate: sent as f64 / measure.as_secs_f64(),
        cpu: cpu.await.context("the CPU sampling task failed")?,
        samples: Distribution::new(samples.into_iter().map(Duration::from_nanos).collect()),
    })
}

/// The latency run's schedule: line `k` is due `k / rate` seconds after `base`, and lines
/// sent inside `window` are the ones measured.
struct Pacing {
    base: Instant,
    rate: f64,
    window: (Duration, Duration),
}

impl Pacing {
    /// How long after the window the senders keep the load on while the last measured
    /// lines are in flight.
    const TAIL: Duration = Duration::from_millis(100);
    /// How long after the window a measured line may still arrive.
    const GRACE: Duration = Duration::from_secs(2);

    /// Paces the senders and reads the receivers on this one thread, which never sleeps:
    /// between sends it asks epoll (through mio) for readable receivers with a zero
    /// timeout. A measurer that sleeps adds its own wake-up delay to every sample, and on
    /// a small VM that delay alone reaches milliseconds at the tail; a spinning one reads a
    /// line as soon as the kernel has it, so what is left is the path being measured. The
    /// price is one core for the length of the run. Returns the lines sent inside the
    /// window and their latencies in nanoseconds.
    fn run(
        self,
        mut senders: Vec<std::net::TcpStream>,
        receivers: Vec<std::net::TcpStream>,
    ) -> Result<(u64, Vec<u64>), BenchError> {
        use std::io::{Read, Write};
        let (start, end) = self.window;
        let polling = "polling the receivers";
        let mut poll = mio::Poll::new().context(polling)?;
        let mut events = mio::Events::with_capacity(receivers.len());
        let mut streams = Vec::with_capacity(receivers.len());
        for (i, receiver) in receivers.into_iter().enumerate() {
            receiver.set_nonblocking(true).context(polling)?;
            let mut stream = mio::net::TcpStream::from_std(receiver);
            poll.registry()
                .register(&mut stream, mio::Token(i), mio::Interest::READABLE)
                .context(polling)?;
            streams.push((stream, Vec::<u8>::with_capacity(256)));
        }
        for sender in &senders {
            let preparing = "preparing a sender";
            sender.set_nonblocking(false).context(preparing)?;
            // A relay that stops reading fails the run instead of hanging it.
            sender
                .set_write_timeout(Some(Self::GRACE))
                .context(preparing)?;
        }
        let rooms = senders.len() as u64;
        let mut line = Vec::with_capacity(64);
        let mut chunk = vec![0u8; 64 * 1024];
        let mut samples = Vec::with_capacity((self.rate * (end - start).as_secs_f64()) as usize);
        let (mut k, mut sent) = (0u64, 0u64);
        loop {
            let now = self.base.elapsed();
            let sending = now < end + Self::TAIL;
            while sending && Duration::from_secs_f64(k as f64 / self.rate) <= now {
                // The time just before the write goes into the line.
                let at = self.base.elapsed();
                line.clear();
                writeln!(line, "<# t={}>", at.as_nanos()).context("sending a measured line")?;
                senders[(k % rooms) as usize]
                    .write_all(&line)
                    .context("sending a measured line")?;
                if at >= start && at < end {
                    sent += 1;
                }
                k += 1;
            }
            if !sending && (samples.len() as u64 >= sent || now > end + Self::GRACE) {
                return Ok((sent, samples));
            }
            poll.poll(&mut events, Some(Duration::ZERO))
                .context(polling)?;
            for event in &events {
                let (stream, pending) = &mut streams[event.token().0];
                // mio is edge-triggered: read until the socket is empty.
                loop {
                    match stream.read(&mut chunk) {
                        Ok(0) => fail!("the relay closed a receiver"),
                        Ok(n) => {
                            let arrived = self.base.elapsed();
                            pending.extend_from_slice(&chunk[..n]);
                            let whole = pending
                                .iter()
                                .rposition(|&b| b == b'\n')
                                .map_or(0, |i| i + 1);
                            for text in pending[..whole].split(|&b| b == b'\n') {
                                if let Some(at) = sent_at(text)
                                    && at >= start
                                    && at < end
                                {
                                    samples.push(arrived.saturating_sub(at).as_nanos() as u64);
                                }
                            }
                            pending.drain(..whole);
                        }
                        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(error) => {
                            return Err(error).context("reading a measured line");
                        }
                    }
                }
            }
        }
    }
}

/// The send time carried by a measured line (`<IP t=NANOS>`), since the run's base.
fn sent_at(line: &[u8]) -> Option<Duration> {
    let at = line.windows(2).position(|w| w == b"t=")? + 2;
    let digits = line[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    let nanos: u64 = std::str::from_utf8(&line[at..at + digits])
        .ok()?
        .parse()
        .ok()?;
    Some(Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sent_at_reads_the_time_a_relay_forwards() {
        assert_eq!(
            sent_at(b"<127.0.0.1 t=1500>"),
            Some(Duration::from_nanos(1500))
        );
        assert_eq!(sent_at(b"<127.0.0.1 hello>"), None);
    }
}
