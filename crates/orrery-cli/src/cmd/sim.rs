//! `orrery sim`: the economy simulated on the real ledger and router (`orrery-sim`).

use anyhow::{Context, bail};
use clap::Args as ClapArgs;
use indicatif::{ProgressBar, ProgressStyle};
use orrery_sim::{DemandShape, EmissionMode, Scenario, SimConfig, Summary, Timings};
use std::path::PathBuf;

/// Simulate Orrery's economy — providers, requesters, cheaters, emissions and burns — on the
/// real ledger and router, deterministically from a seed, and write a summary and plots.
#[derive(ClapArgs)]
pub struct Args {
    /// Providers at the start (more join during the run).
    #[arg(long, default_value_t = 10_000)]
    pub providers: u32,
    /// Simulated days.
    #[arg(long, default_value_t = 1)]
    pub days: u32,
    /// Seed: the same seed gives the same summary, byte for byte.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Demand shapes to run, comma-separated: flat, growing, bursty, collapsing, or all.
    #[arg(long, default_value = "all")]
    pub demand: String,
    /// Emission rules to run, comma-separated: fixed (the ledger's schedule), taper (less the
    /// burned fees), checked (the schedule shared over checked work only), or all.
    #[arg(long, default_value = "all")]
    pub emission: String,
    /// Scenario file (TOML) replacing the built-in one; `--print-scenario` shows the built-in
    /// one with every key explained.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Print the built-in scenario and exit.
    #[arg(long)]
    pub print_scenario: bool,
    /// Print the summary as JSON on stdout (otherwise a short report).
    #[arg(long)]
    pub json: bool,
    /// Write summary.json, timings.json and the plots (PNG and SVG) here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Skip the plots (with --out).
    #[arg(long)]
    pub no_plots: bool,
}

fn list<T: Copy>(
    arg: &str,
    all: &[T],
    parse: fn(&str) -> Option<T>,
    what: &str,
    expected: &str,
) -> anyhow::Result<Vec<T>> {
    if arg == "all" {
        return Ok(all.to_vec());
    }
    arg.split(',')
        .map(|s| {
            parse(s.trim()).with_context(|| format!("unknown {what} `{s}` (expected {expected})"))
        })
        .collect()
}

/// Run the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.print_scenario {
        print!("{}", orrery_sim::DEFAULT_SCENARIO);
        return Ok(());
    }
    let scenario = match &args.scenario {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read scenario {}", path.display()))?;
            Scenario::from_toml(&text)
                .with_context(|| format!("scenario {} refused", path.display()))?
        }
        None => Scenario::default(),
    };
    if args.providers == 0 || args.days == 0 {
        bail!("--providers and --days must be at least 1");
    }
    let cfg = SimConfig {
        providers: args.providers,
        days: args.days,
        seed: args.seed,
        demands: list(
            &args.demand,
            &DemandShape::ALL,
            DemandShape::parse,
            "demand shape",
            "flat, growing, bursty, collapsing or all",
        )?,
        emissions: list(
            &args.emission,
            &EmissionMode::ALL,
            EmissionMode::parse,
            "emission rule",
            "fixed, taper, checked or all",
        )?,
    };
    let runs = (cfg.demands.len() * cfg.emissions.len()) as u64;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut done_runs = 0u64;
    let mut last = String::new();
    let (summary, timings) = orrery_sim::simulate(&scenario, &cfg, &mut |label, p| {
        if label != last {
            if !last.is_empty() {
                done_runs += 1;
            }
            last = label.to_string();
            bar.set_length(u64::from(p.steps));
        }
        bar.set_prefix(format!("run {}/{runs} {label}", done_runs + 1));
        if p.registering {
            bar.set_position(0);
            bar.set_message(format!("registering providers: {}", p.providers));
        } else {
            bar.set_position(u64::from(p.step));
            bar.set_message(format!(
                "steps, block {}, {} providers",
                p.blocks, p.providers
            ));
        }
    })?;
    bar.finish_and_clear();
    let json = orrery_sim::summary_json(&summary);
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::write(dir.join("summary.json"), &json)?;
        let t = serde_json::to_string_pretty(&timings)?;
        std::fs::write(dir.join("timings.json"), t)?;
        if !args.no_plots {
            orrery_sim::plots::write_all(dir, &summary, &timings)?;
        }
    }
    if args.json {
        println!("{json}");
    } else {
        print!("{}", report(&summary, &timings));
    }
    eprintln!(
        "wall time {:.1} s, peak memory {}",
        timings.wall_s,
        timings
            .peak_memory_mib
            .map_or("unknown".to_string(), |m| format!("{m:.0} MiB"))
    );
    Ok(())
}

fn report(s: &Summary, t: &Timings) -> String {
    let mut out = format!(
        "{} providers, {} days, seed {} — {} runs\n",
        s.providers,
        s.days,
        s.seed,
        s.runs.len()
    );
    for (r, rt) in s.runs.iter().zip(&t.runs) {
        let refused: u64 = r.refused.values().sum();
        out += &format!(
            "{:>10}/{:<5}  minted {:>14.1} ORR  burned {:>14.1} ORR  net {:>+14.1}  leases {:>9}  checked {:>7}  slashed {:>5}  refused {}  audits {}  {:.1} s\n",
            r.demand.name(),
            r.emission.name(),
            r.supply.minted,
            r.supply.burned,
            r.supply.net,
            r.leases.opened,
            r.leases.checked,
            r.leases.slashes,
            refused,
            r.audits_passed,
            rt.wall_s,
        );
    }
    out
}
