//! `tally`: one binary for every part of Tally.

use clap::{Parser, Subcommand};

mod relay;
mod tracker;

/// Tally: peer-to-peer digital cash.
#[derive(Parser)]
#[command(name = "tally", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the peer-discovery tracker (Minicash peer server, seed 004 tracker).
    Tracker(tracker::TrackerArgs),
    /// Run the LiveConnect chat relay.
    Relay(relay::RelayArgs),
    /// Chat through a relay by hand: stdin lines go to the room, room lines to stdout.
    Chat(relay::ChatArgs),
    /// Measure a part of Tally.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// The tracker: signed registrations per second, memory per entry.
    Tracker(tracker::BenchArgs),
    /// The relay: lines per second, forwarding latency, memory per idle connection.
    Relay(relay::BenchArgs),
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TALLY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Tracker(args) => tracker::run(args).await,
        Command::Relay(args) => relay::run(args).await,
        Command::Chat(args) => relay::chat(args).await,
        Command::Bench(BenchCommand::Tracker(args)) => tracker::bench(args).await,
        Command::Bench(BenchCommand::Relay(args)) => relay::bench(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
