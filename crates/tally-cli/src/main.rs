//! `tally`: one binary for every part of Tally.

use clap::{Parser, Subcommand};

mod bench;
mod devnet;
mod duration;
mod maker;
mod network;
mod node;
mod relay;
mod sim;
mod tracker;
mod wallet;
mod wallet_chain;
mod wallet_coins;
mod wallet_escrow;
mod wallet_escrow_chain;
mod wallet_live;
mod wallet_seed;
mod wallet_send_many;
mod wallet_wire;
mod web;

/// Tally: peer-to-peer digital cash.
#[derive(Parser)]
#[command(name = "tally", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a whole local Tally network in this process.
    Devnet(devnet::DevnetArgs),
    /// Create networks.
    #[command(subcommand)]
    Network(network::NetworkCommand),
    /// Run a node: a validator, or on a miner folder a proof-of-work node (mining with
    /// --mine).
    Node(node::NodeArgs),
    /// Use a wallet: keys, proof of work, introduction, balances, payments.
    Wallet(wallet::WalletArgs),
    /// Run the peer-discovery tracker (Minicash peer server, seed 004 tracker).
    Tracker(tracker::TrackerArgs),
    /// Run the LiveConnect chat relay.
    Relay(relay::RelayArgs),
    /// Run a market maker of the cross-server wire between pairs of networks.
    Maker(maker::MakerArgs),
    /// Chat through a relay by hand: stdin lines go to the room, room lines to stdout.
    Chat(relay::ChatArgs),
    /// Measure a part of Tally.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Serve the web wallet and network explorer (pages and a JSON API) on 127.0.0.1.
    Web(web::WebArgs),
    /// Run the deterministic simulator: seeds of a faulty quorum network checked against
    /// Tally's safety invariants after every step.
    Sim(sim::SimArgs),
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGTERM; stopping on Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Logs go to stderr, coloured only when stderr is a terminal: a log piped to a file or
/// `tee` carries no escape codes.
fn init_logging(default: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("TALLY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Daemons log their work; one-shot commands speak only of problems.
    let default_log = match cli.command {
        Command::Wallet(_) | Command::Network(_) | Command::Chat(_) | Command::Bench(_) => "warn",
        // The simulated validators and wallets meet the faults they are injected with all
        // the time and would say so thousands of times a second; the simulator reports
        // what matters itself (a violation with its trace).
        Command::Sim(_) => "off",
        _ => "info",
    };
    init_logging(default_log);
    let result = match cli.command {
        Command::Devnet(args) => devnet::run(args).await,
        Command::Network(command) => network::run(command),
        Command::Node(args) => node::run(args).await,
        Command::Wallet(args) => wallet::run(args).await,
        Command::Tracker(args) => tracker::run(args).await,
        Command::Relay(args) => relay::run(args).await,
        Command::Maker(args) => maker::run(args).await,
        Command::Chat(args) => relay::chat(args).await,
        Command::Bench(command) => bench::run(command).await,
        Command::Sim(args) => sim::run(args),
        Command::Web(args) => web::run(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
