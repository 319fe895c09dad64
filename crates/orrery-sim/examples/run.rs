//! The simulation without the CLI around it: `cargo run --release -p orrery-sim --example run
//! -- PROVIDERS DAYS SEED DEMANDS EMISSIONS [SCENARIO] OUT`, the same `simulate` and outputs as
//! `orrery sim` (no progress bar: one line per simulated day of the first run on stderr). It
//! builds in a fraction of the time of the whole `orrery` binary, which is how the
//! million-provider measurement in `docs/sim/README.md` was made on the shared build machine.

use orrery_sim::{DemandShape, EmissionMode, Scenario, SimConfig};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() < 6 {
        return Err("usage: run PROVIDERS DAYS SEED DEMANDS EMISSIONS [SCENARIO] OUT".into());
    }
    let list = |s: &str| -> Vec<String> { s.split(',').map(str::to_string).collect() };
    let demands = list(&a[3])
        .iter()
        .map(|d| DemandShape::parse(d).ok_or(format!("unknown demand {d}")))
        .collect::<Result<Vec<_>, _>>()?;
    let emissions = list(&a[4])
        .iter()
        .map(|e| EmissionMode::parse(e).ok_or(format!("unknown emission {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let (scenario, out) = if a.len() >= 7 {
        (
            Scenario::from_toml(&std::fs::read_to_string(&a[5])?)?,
            PathBuf::from(&a[6]),
        )
    } else {
        (Scenario::default(), PathBuf::from(&a[5]))
    };
    let cfg = SimConfig {
        providers: a[0].parse()?,
        days: a[1].parse()?,
        seed: a[2].parse()?,
        demands,
        emissions,
    };
    let start = std::time::Instant::now();
    let steps_per_day = 24 / scenario.step_hours;
    let (summary, timings) = orrery_sim::simulate(&scenario, &cfg, &mut |label, p| {
        if p.registering || p.step % steps_per_day == 0 {
            eprintln!(
                "{label}: step {}/{} block {} providers {} ({:.0} s, peak {:.0} MiB)",
                p.step,
                p.steps,
                p.blocks,
                p.providers,
                start.elapsed().as_secs_f64(),
                orrery_sim::peak_memory_mib().unwrap_or(0.0)
            );
        }
    })?;
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("summary.json"), orrery_sim::summary_json(&summary))?;
    std::fs::write(
        out.join("timings.json"),
        serde_json::to_string_pretty(&timings)?,
    )?;
    orrery_sim::plots::write_all(&out, &summary, &timings)?;
    eprintln!(
        "wall time {:.1} s, peak memory {}",
        timings.wall_s,
        timings
            .peak_memory_mib
            .map_or("unknown".to_string(), |m| format!("{m:.0} MiB"))
    );
    Ok(())
}
