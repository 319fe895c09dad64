//! Training really learns: the shipped example specs reach stated quality in a CI-sized run.

mod common;

use orrery_ml::workload::{GenerateWorkload, TrainWorkload};
use orrery_ml::{model::ModelConfig, weights};
use orrery_types::workload::{Start, run};

#[test]
fn mlp_learns_spirals_to_95_percent_validation_accuracy() {
    let spec = common::spec("spirals-mlp.toml");
    let mut w = TrainWorkload::new(spec, 2).unwrap();
    let init = w
        .evaluate(&w.spec().model.init_params(w.spec().seed))
        .unwrap();
    let rec = run(&mut w, Start::Fresh, |_, _, _| true).unwrap().unwrap();
    let st = w.decode_state(&rec.final_state).unwrap();
    let eval = w.evaluate(&st.params).unwrap();
    let acc = eval.accuracy.unwrap();
    eprintln!(
        "spirals: val loss {:.4} -> {:.4}, accuracy {:.2}% -> {:.2}%",
        init.loss,
        eval.loss,
        init.accuracy.unwrap() * 100.0,
        acc * 100.0
    );
    assert!(acc >= 0.95, "validation accuracy {acc} below 95%");
}

#[test]
fn language_model_beats_the_unigram_baseline_and_generates_text() {
    let spec = common::spec("genesis-lm.toml");
    let mut w = TrainWorkload::new(spec.clone(), 2).unwrap();
    let baseline = w.data().unigram_baseline().unwrap() as f32;
    let t0 = std::time::Instant::now();
    let rec = run(&mut w, Start::Fresh, |_, _, _| true).unwrap().unwrap();
    let secs = t0.elapsed().as_secs_f64();
    let st = w.decode_state(&rec.final_state).unwrap();
    let eval = w.evaluate(&st.params).unwrap();
    eprintln!(
        "genesis LM: unigram baseline {baseline:.4} nats/char, validation loss {:.4} after {} steps ({:.0} tokens/s)",
        eval.loss,
        spec.steps,
        (spec.steps as usize * w.rows_per_step()) as f64 / secs
    );
    assert!(
        eval.loss < baseline - 0.5,
        "validation loss {} is not well below the unigram baseline {baseline}",
        eval.loss
    );
    // The output is the weights as safetensors; they load back and generate text.
    let ModelConfig::Transformer(cfg) = spec.model.clone() else {
        panic!("transformer spec")
    };
    let params = weights::load_for(&spec.model, &rec.output).unwrap();
    let mut g = GenerateWorkload::new(cfg, params, spec.generate.clone().unwrap(), 2).unwrap();
    let out = run(&mut g, Start::Fresh, |_, _, _| true).unwrap().unwrap();
    let text = String::from_utf8(out.output).unwrap();
    eprintln!("sample:\n{text}");
    assert!(text.starts_with("And God said"));
    assert_eq!(text.len(), "And God said".len() + 300);
}
