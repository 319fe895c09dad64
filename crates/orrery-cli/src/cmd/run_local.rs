//! `orrery run-local`: run a job bundle on this machine exactly as a provider would, so a
//! requester can test a job (and see its fuel bill and checkpoint root) before paying for it.
//! With `--pack`, turn a job file (manifest + file names) into a bundle instead.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use orrery_exec::{Bundle, Runtime, pack_job_file};
use orrery_types::Hash;
use orrery_types::workload::{self, RunError, Start, checkpoint};

/// Arguments of `orrery run-local`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    orrery run-local workloads/wasm/heat/job.toml --output heat.ppm\n  \
    orrery run-local --pack workloads/wasm/mandelbrot/job.toml --out mandelbrot.bundle\n  \
    orrery run-local mandelbrot.bundle --check-step 0")]
pub struct Args {
    /// A job bundle (`.bundle`), or a job file (`job.toml`: a manifest plus `module = ...` and
    /// `[input_files]`), which is packed in memory first.
    pub job: PathBuf,

    /// Where to write the job's output. Default: `<job name>.out` in the current directory.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Only pack the job file into a bundle (written to --out) and print its hash; do not run.
    #[arg(long)]
    pub pack: bool,

    /// With --pack: the bundle file to write. Default: `<job name>.bundle`.
    #[arg(long, value_name = "FILE", requires = "pack")]
    pub out: Option<PathBuf>,

    /// After the run, re-execute step K alone from its saved state, as a dispute referee would,
    /// and check that it lands on the same checkpoint.
    #[arg(long, value_name = "K")]
    pub check_step: Option<u64>,

    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// A short name for a job: the bundle's file stem, or a job file's folder name.
fn job_name(path: &Path) -> String {
    let is_job_file = path.extension().is_some_and(|e| e == "toml");
    let name = if is_job_file {
        path.canonicalize()
            .ok()
            .and_then(|p| p.parent().and_then(|d| d.file_name()).map(|n| n.to_owned()))
    } else {
        path.file_stem().map(|n| n.to_owned())
    };
    name.map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "job".into())
}

fn load_bundle(path: &Path) -> anyhow::Result<Bundle> {
    if path.extension().is_some_and(|e| e == "toml") {
        return pack_job_file(path).with_context(|| format!("cannot pack {}", path.display()));
    }
    let bytes = std::fs::read(path).with_context(|| {
        format!(
            "cannot read the bundle {}; pass a .bundle file or a job.toml",
            path.display()
        )
    })?;
    Bundle::decode(&bytes).with_context(|| format!("{} is not a valid bundle", path.display()))
}

/// Run the subcommand.
pub fn run(args: Args) -> anyhow::Result<()> {
    let name = job_name(&args.job);
    if args.pack {
        if args.job.extension().is_none_or(|e| e != "toml") {
            bail!(
                "--pack takes a job file (job.toml), not {}",
                args.job.display()
            );
        }
        let bundle = load_bundle(&args.job)?;
        let out = args
            .out
            .unwrap_or_else(|| PathBuf::from(format!("{name}.bundle")));
        std::fs::write(&out, bundle.bytes())
            .with_context(|| format!("cannot write {}", out.display()))?;
        if args.json {
            let summary = serde_json::json!({
                "bundle": out.display().to_string(),
                "hash": bundle.hash().to_string(),
                "bytes": bundle.bytes().len(),
            });
            println!("{}", serde_json::to_string_pretty(&summary)?);
        } else {
            println!("bundle   {}", out.display());
            println!("hash     {}", bundle.hash());
            println!("size     {} bytes", bundle.bytes().len());
        }
        return Ok(());
    }

    let bundle = load_bundle(&args.job)?;
    let manifest = bundle.manifest().clone();
    let entry = manifest
        .wasm
        .as_ref()
        .map(|w| w.entry.to_string())
        .unwrap_or_default();
    if let Some(k) = args.check_step
        && k >= manifest.steps
    {
        bail!(
            "--check-step {k}: this job has steps 0..{} (steps = {})",
            manifest.steps,
            manifest.steps
        );
    }
    let runtime = Runtime::new().context("cannot start the wasm runtime")?;
    let mut job = runtime
        .load(&bundle)
        .with_context(|| format!("cannot load {}", args.job.display()))?;

    let progress = ProgressBar::new(manifest.steps);
    progress.set_style(
        ProgressStyle::with_template("{spinner} step {pos}/{len} [{bar:30}] {elapsed} fuel {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let started = Instant::now();
    let mut kept_state: Option<Vec<u8>> = None;
    let record = workload::run(&mut job, Start::Fresh, |k, state, cost| {
        if Some(k) == args.check_step {
            kept_state = Some(state.to_vec());
        }
        progress.set_position(k);
        progress.set_message(cost.to_string());
        true
    })
    .map_err(|e| match e {
        // The runtime's error already names the step and says what to change.
        RunError::Workload { source, .. } => anyhow::Error::new(source),
        other => anyhow::Error::new(other),
    })
    .with_context(|| format!("the job {} failed", args.job.display()))?
    .context("the run was cancelled")?;
    let wall = started.elapsed();
    progress.finish_and_clear();

    let output_path = args
        .output
        .unwrap_or_else(|| PathBuf::from(format!("{name}.out")));
    std::fs::write(&output_path, &record.output)
        .with_context(|| format!("cannot write the output to {}", output_path.display()))?;

    let check = match (args.check_step, kept_state) {
        (Some(k), Some(state)) => {
            let step = job
                .step_with_fuel(k, &state, manifest.limits.fuel_per_step)
                .with_context(|| format!("re-executing step {k} failed"))?;
            let again = checkpoint(&step.state);
            let expected = record.checkpoints[k as usize + 1];
            if again != expected {
                bail!(
                    "re-executing step {k} alone gave checkpoint {again}, but the run recorded \
                     {expected}: the job is not deterministic"
                );
            }
            Some((k, again))
        }
        _ => None,
    };

    let root = record.checkpoint_root();
    if args.json {
        let summary = serde_json::json!({
            "job": manifest.name.clone().unwrap_or(name),
            "bundle": bundle.hash().to_string(),
            "runtime": manifest.runtime.to_string(),
            "entry": entry,
            "output": output_path.display().to_string(),
            "output_bytes": record.output.len(),
            "output_hash": Hash::of(&record.output).to_string(),
            "steps": manifest.steps,
            "fuel": record.cost,
            "output_fuel": job.last_output_fuel(),
            "wall_time_s": wall.as_secs_f64(),
            "checkpoint_root": root.to_string(),
            "checked_step": check.map(|(k, _)| k),
        });
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!("job              {}", manifest.name.unwrap_or(name));
        println!(
            "bundle           {} ({} bytes, {} {})",
            bundle.hash(),
            bundle.bytes().len(),
            manifest.runtime,
            entry
        );
        println!(
            "output           {} ({} bytes, sha256 {})",
            output_path.display(),
            record.output.len(),
            Hash::of(&record.output)
        );
        println!("steps            {}", manifest.steps);
        println!(
            "fuel             {} (of which {} for the output)",
            record.cost,
            job.last_output_fuel()
        );
        println!("wall time        {:.3} s", wall.as_secs_f64());
        println!("checkpoint root  {root}");
        if let Some((k, cp)) = check {
            println!("step {k} re-run    matches checkpoint {cp}");
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "run_local_tests.rs"]
mod tests;
