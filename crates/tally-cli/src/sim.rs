//! `tally sim`: the deterministic simulator (`tally-sim`). One seed replayed (a violation
//! prints its trace), or a campaign of many seeds with a progress bar.

use std::io::IsTerminal as _;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use tally_sim::{Config, Outcome};

/// `tally sim`
#[derive(clap::Args)]
pub struct SimArgs {
    /// Replay this one seed (what a failing campaign prints).
    #[arg(long, conflicts_with_all = ["seeds", "first"])]
    pub seed: Option<u64>,
    /// Seeds in the campaign.
    #[arg(long, default_value_t = 1_000)]
    pub seeds: u64,
    /// The campaign's first seed.
    #[arg(long, default_value_t = 0)]
    pub first: u64,
    /// Validators in the committee (up to a third of them, rounded down, may be Byzantine).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub validators: u16,
    /// Miners in each seed's proof-of-work network (one may withhold its blocks, one may
    /// try to mint money).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub miners: u16,
    /// Steps per seed before the network heals and the run settles.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub steps: u32,
}

pub fn run(args: SimArgs) -> anyhow::Result<()> {
    let seeds = match args.seed {
        Some(seed) => seed..seed.saturating_add(1),
        None => args.first..args.first.saturating_add(args.seeds),
    };
    let count = seeds.end - seeds.start;
    let bar = if std::io::stderr().is_terminal() && args.seed.is_none() {
        ProgressBar::new(count).with_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} seeds, {elapsed} ({eta} left)")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        )
    } else {
        ProgressBar::hidden()
    };
    let started = Instant::now();
    let mut total = Outcome::default();
    for seed in seeds {
        let steps = usize::try_from(args.steps).unwrap_or(usize::MAX);
        let mut config = Config::new(seed, usize::from(args.validators), steps);
        config.miners = usize::from(args.miners);
        match tally_sim::run(&config) {
            Ok(outcome) => {
                if args.seed.is_some() {
                    println!("seed {seed}: faults {}", outcome.faults);
                }
                total.add(&outcome);
            }
            Err(violation) => {
                bar.finish_and_clear();
                eprint!("{violation}");
                // A failing seed must replay exactly: run it again at once, in this process,
                // and say whether it did (a campaign failure that does not replay points at
                // something outside the seed reaching the run).
                let again = tally_sim::run(&config).err();
                if again.as_deref() == Some(&*violation) {
                    eprintln!("replayed at once: the same violation at the same step");
                } else {
                    eprintln!(
                        "replayed at once: it did NOT fail the same way ({}): the run is not deterministic",
                        again.map_or("no violation".into(), |v| format!(
                            "step {}: {}",
                            v.step, v.invariant
                        ))
                    );
                }
                anyhow::bail!("seed {seed} broke an invariant");
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    println!(
        "{count} seeds of {} steps on {} validators and {} miners: no invariant broken",
        args.steps, args.validators, args.miners
    );
    println!("  {total}");
    println!(
        "  {:.1} s: {:.0} simulated messages/s, {:.0} steps/s",
        seconds,
        (total.messages + total.chain.messages) as f64 / seconds,
        (total.steps + total.chain.steps) as f64 / seconds
    );
    Ok(())
}
