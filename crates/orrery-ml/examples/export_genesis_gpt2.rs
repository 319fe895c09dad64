//! Train the small Genesis character model with the deterministic trainer and export it as a
//! GPT-2-layout model directory (`model.safetensors`, `config.json`, `tokenizer.json`).
//!
//! `cargo run --release -p orrery-ml --example export_genesis_gpt2 -- models/genesis-gpt2`
//!
//! Reads `train.toml` from that directory and writes the three files next to it. Training is
//! deterministic, so the weights hash printed is the one in the directory's README.

use orrery_ml::infer::{self, export};
use orrery_ml::model::ModelConfig;
use orrery_ml::spec::JobSpec;
use orrery_ml::weights;
use orrery_ml::workload::TrainWorkload;
use orrery_types::workload::{Start, run};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: export_genesis_gpt2 <model directory holding train.toml>")?,
    );
    let spec = JobSpec::from_toml(&std::fs::read_to_string(dir.join("train.toml"))?)?;
    let ModelConfig::Transformer(config) = spec.model.clone() else {
        return Err("train.toml must describe a transformer".into());
    };
    let mut workload = TrainWorkload::new(spec.clone(), 1)?;
    let t0 = std::time::Instant::now();
    let record = run(&mut workload, Start::Fresh, |k, _, _| {
        if k % 100 == 0 {
            eprintln!(
                "step {k}/{} ({:.0} s)",
                spec.steps,
                t0.elapsed().as_secs_f64()
            );
        }
        true
    })
    .map_err(|e| format!("training failed: {e:?}"))?
    .ok_or("training stopped early")?;
    let state = workload.decode_state(&record.final_state)?;
    let eval = workload.evaluate(&state.params)?;
    let params = weights::load_for(&spec.model, &record.output)?;
    let files = export::transformer_to_gpt2(&config, &params)?;
    std::fs::write(dir.join("model.safetensors"), &files.weights)?;
    std::fs::write(dir.join("config.json"), &files.config)?;
    std::fs::write(dir.join("tokenizer.json"), &files.tokenizer)?;
    println!(
        "trained {} steps in {:.0} s; validation loss {:.4} nats/char (unigram baseline {:.4})",
        spec.steps,
        t0.elapsed().as_secs_f64(),
        eval.loss,
        workload.data().unigram_baseline().unwrap_or(f64::NAN)
    );
    println!(
        "model.safetensors: {} bytes, weights hash {}",
        files.weights.len(),
        infer::weights_hash(&files.weights).to_hex()
    );
    Ok(())
}
