//! `orrery ml`: the deterministic ML runtime on its own — train, fine-tune and run models on
//! this machine, with the same checkpoints and roots a provider would commit to.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use orrery_ml::model::ModelConfig;
use orrery_ml::spec::JobSpec;
use orrery_ml::state::TrainState;
use orrery_ml::workload::{ClassifyWorkload, GenerateWorkload, TrainWorkload};
use orrery_ml::{data::Dataset, weights};
use orrery_types::workload::{self, RunRecord, Start, Workload};

/// Arguments of `orrery ml`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: MlCommand,
}

#[derive(clap::Subcommand)]
enum MlCommand {
    /// Train a model from scratch as a job spec says (weights initialised from its seed).
    #[command(after_help = "Examples:\n  \
        orrery ml train workloads/ml/spirals-mlp.toml --out spirals.safetensors\n  \
        orrery ml train workloads/ml/genesis-lm.toml --out genesis.safetensors --threads 2")]
    Train {
        /// The job spec (TOML): model, data, optimizer, steps.
        spec: PathBuf,
        #[command(flatten)]
        common: TrainArgs,
    },
    /// Continue training given weights (safetensors) on the job spec's data.
    #[command(after_help = "Example:\n  \
        orrery ml finetune workloads/ml/genesis-lm.toml --weights genesis.safetensors --out genesis-ft.safetensors")]
    Finetune {
        /// The job spec (TOML); its model section must match the weights.
        spec: PathBuf,
        /// The starting weights (safetensors, as written by `orrery ml train`).
        #[arg(long, value_name = "FILE")]
        weights: PathBuf,
        #[command(flatten)]
        common: TrainArgs,
    },
    /// Run a trained model: sample text from a language model, or classify the validation
    /// split of a classifier's data set.
    #[command(after_help = "Examples:\n  \
        orrery ml infer workloads/ml/genesis-lm.toml --weights genesis.safetensors --prompt 'And Noah'\n  \
        orrery ml infer workloads/ml/spirals-mlp.toml --weights spirals.safetensors")]
    Infer {
        /// The job spec (TOML) the weights were trained with.
        spec: PathBuf,
        /// The weights (safetensors).
        #[arg(long, value_name = "FILE")]
        weights: PathBuf,
        /// Text to continue (overrides `[generate] prompt`).
        #[arg(long)]
        prompt: Option<String>,
        /// Tokens to generate (overrides `[generate] tokens`).
        #[arg(long)]
        tokens: Option<u64>,
        /// Sampling temperature, 0 for greedy (overrides `[generate] temperature`).
        #[arg(long)]
        temperature: Option<f32>,
        /// Sampling seed (overrides `[generate] seed`).
        #[arg(long)]
        seed: Option<u64>,
        /// Threads; results are identical for every count.
        #[arg(long, default_value_t = default_threads())]
        threads: usize,
    },
}

#[derive(clap::Args)]
struct TrainArgs {
    /// Where to write the trained weights (safetensors). Default: `<spec name>.safetensors`.
    #[arg(short, long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Threads; results are bit-for-bit identical for every count.
    #[arg(long, default_value_t = default_threads())]
    threads: usize,
    /// Override the spec's number of steps.
    #[arg(long)]
    steps: Option<u64>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn read_spec(path: &Path) -> anyhow::Result<JobSpec> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read job spec {}", path.display()))?;
    JobSpec::from_toml(&text).with_context(|| format!("in {}", path.display()))
}

fn spec_name(spec: &JobSpec, path: &Path) -> String {
    spec.name.clone().unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into())
    })
}

/// Run the subcommand.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        MlCommand::Train { spec, common } => train(&spec, None, common),
        MlCommand::Finetune {
            spec,
            weights,
            common,
        } => train(&spec, Some(&weights), common),
        MlCommand::Infer {
            spec,
            weights,
            prompt,
            tokens,
            temperature,
            seed,
            threads,
        } => infer(&spec, &weights, prompt, tokens, temperature, seed, threads),
    }
}

fn progress_bar(len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{spinner} step {pos}/{len} [{bar:30}] {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Progress callback for inference runs: position and items per second.
fn rate_message(bar: &ProgressBar, started: Instant, k: u64, unit: &str) {
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    bar.set_position(k);
    bar.set_message(format!("{:.0} {unit}/s", k as f64 / secs));
}

fn train(spec_path: &Path, weights_path: Option<&Path>, args: TrainArgs) -> anyhow::Result<()> {
    let mut spec = read_spec(spec_path)?;
    if let Some(steps) = args.steps {
        spec.steps = steps;
        spec.validate()?;
    }
    let name = spec_name(&spec, spec_path);
    let mut job = match weights_path {
        None => TrainWorkload::new(spec.clone(), args.threads)?,
        Some(p) => {
            let bytes =
                std::fs::read(p).with_context(|| format!("cannot read weights {}", p.display()))?;
            let params = weights::load_for(&spec.model, &bytes)
                .with_context(|| format!("in {}", p.display()))?;
            TrainWorkload::finetune(spec.clone(), params, args.threads)?
        }
    };
    let is_lm = matches!(job.data(), Dataset::Text { .. });
    let rows = job.rows_per_step() as f64;
    let bar = progress_bar(spec.steps);
    let started = Instant::now();
    let mut last_loss = None;
    let record: RunRecord = workload::run(&mut job, Start::Fresh, |k, state, _cost| {
        if let Some((_, loss)) = TrainState::peek(state) {
            last_loss = loss.or(last_loss);
        }
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        let rate = rows * k as f64 / secs;
        let unit = if is_lm { "tokens/s" } else { "examples/s" };
        bar.set_position(k);
        bar.set_message(match last_loss {
            Some(l) => format!("loss {l:.4}  {rate:.0} {unit}"),
            None => "starting".into(),
        });
        true
    })
    .map_err(anyhow::Error::from)?
    .context("the run was stopped")?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();

    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from(format!("{name}.safetensors")));
    std::fs::write(&out, &record.output)
        .with_context(|| format!("cannot write weights to {}", out.display()))?;
    let final_state = job.decode_state(&record.final_state)?;
    let eval = job.evaluate(&final_state.params).ok();
    let baseline = job.data().unigram_baseline();
    let root = record.checkpoint_root();
    if args.json {
        let summary = serde_json::json!({
            "name": name,
            "steps": spec.steps,
            "final_train_loss": last_loss,
            "validation_loss": eval.map(|e| e.loss),
            "validation_accuracy": eval.and_then(|e| e.accuracy),
            "unigram_baseline": baseline,
            "checkpoint_root": root.to_hex(),
            "cost_flops": record.cost,
            "seconds": secs,
            "weights": out.display().to_string(),
        });
        println!("{summary:#}");
        return Ok(());
    }
    println!("trained {name}: {} steps in {secs:.1} s", spec.steps);
    if let Some(l) = last_loss {
        println!("  final training loss   {l:.4}");
    }
    if let Some(e) = eval {
        println!("  validation loss       {:.4}", e.loss);
        if let Some(a) = e.accuracy {
            println!("  validation accuracy   {:.2}%", a * 100.0);
        }
    }
    if let Some(b) = baseline {
        println!("  unigram baseline      {b:.4} nats/char");
    }
    println!(
        "  throughput            {:.0} {}/s",
        rows * spec.steps as f64 / secs,
        if is_lm { "tokens" } else { "examples" }
    );
    println!("  metered cost          {} FLOP", record.cost);
    println!("  weights               {}", out.display());
    println!("  checkpoint root       {root}");
    Ok(())
}

fn infer(
    spec_path: &Path,
    weights_path: &Path,
    prompt: Option<String>,
    tokens: Option<u64>,
    temperature: Option<f32>,
    seed: Option<u64>,
    threads: usize,
) -> anyhow::Result<()> {
    let spec = read_spec(spec_path)?;
    let bytes = std::fs::read(weights_path)
        .with_context(|| format!("cannot read weights {}", weights_path.display()))?;
    let params = weights::load_for(&spec.model, &bytes)
        .with_context(|| format!("in {}", weights_path.display()))?;
    match &spec.model {
        ModelConfig::Transformer(cfg) => {
            let mut g = spec
                .generate
                .clone()
                .unwrap_or(orrery_ml::spec::GenerateConfig {
                    prompt: String::new(),
                    tokens: 200,
                    temperature: 1.0,
                    seed: 0,
                });
            if let Some(p) = prompt {
                g.prompt = p;
            }
            if let Some(t) = tokens {
                g.tokens = t;
            }
            if let Some(t) = temperature {
                g.temperature = t;
            }
            if let Some(s) = seed {
                g.seed = s;
            }
            let mut spec_check = spec.clone();
            spec_check.generate = Some(g.clone());
            spec_check.validate()?;
            let mut w = GenerateWorkload::new(cfg.clone(), params, g.clone(), threads)?;
            let bar = progress_bar(g.tokens);
            let started = Instant::now();
            let rec = workload::run(&mut w, Start::Fresh, |k, _, _| {
                rate_message(&bar, started, k, "tokens");
                true
            })
            .map_err(anyhow::Error::from)?
            .context("the run was stopped")?;
            bar.finish_and_clear();
            println!("{}", String::from_utf8_lossy(&rec.output));
            println!("\ncheckpoint root {}", rec.checkpoint_root());
        }
        ModelConfig::Mlp(cfg) => {
            let data = spec.data.load()?;
            let Dataset::Classification { val_x, val_y, .. } = data else {
                bail!("an MLP classifies feature rows; the spec's data set is a text corpus");
            };
            let mut w =
                ClassifyWorkload::new(cfg.clone(), params, val_x, spec.batch_size, threads)?;
            let steps = w.step_count();
            let bar = progress_bar(steps);
            let started = Instant::now();
            let rec = workload::run(&mut w, Start::Fresh, |k, _, _| {
                rate_message(&bar, started, k, "batches");
                true
            })
            .map_err(anyhow::Error::from)?
            .context("the run was stopped")?;
            bar.finish_and_clear();
            let labels = ClassifyWorkload::parse_output(&rec.output);
            let correct = labels.iter().zip(&val_y).filter(|(a, b)| a == b).count();
            println!(
                "classified {} validation rows: {:.2}% correct",
                labels.len(),
                100.0 * correct as f64 / labels.len().max(1) as f64
            );
            println!("checkpoint root {}", rec.checkpoint_root());
        }
    }
    Ok(())
}
