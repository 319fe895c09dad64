//! Bad input gets a clear error, never a panic or a silent wrong answer.

mod common;

use orrery_ml::MlError;
use orrery_ml::spec::JobSpec;
use orrery_ml::state::TrainState;
use orrery_ml::weights;
use orrery_ml::workload::TrainWorkload;
use orrery_types::workload::{FailedAt, FailureReason, RunError, Start, Workload, run};

fn spec_err(toml: &str) -> String {
    JobSpec::from_toml(toml).unwrap_err().to_string()
}

fn workload_err(toml: &str) -> String {
    TrainWorkload::new(common::parse(toml), 1)
        .unwrap_err()
        .to_string()
}

#[test]
fn inconsistent_model_shapes_are_named() {
    let msg = spec_err(&common::TINY_LM.replace("n_heads = 4", "n_heads = 5"));
    assert!(
        msg.contains("d_model (32) must be divisible by n_heads (5)"),
        "{msg}"
    );
    let msg = spec_err(&common::TINY_LM.replace("seq_len = 24", "seq_len = 64"));
    assert!(
        msg.contains("seq_len must be between 1 and the model's context (32)"),
        "{msg}"
    );
    let msg = spec_err(&common::TINY_MLP.replace("hidden = [70, 33]", "hidden = [70, 0]"));
    assert!(msg.contains("hidden[1]"), "{msg}");
    // A model that does not fit its data set.
    let msg = workload_err(&common::TINY_MLP.replace("inputs = 2", "inputs = 3"));
    assert!(
        msg.contains("2 features but the model has inputs = 3"),
        "{msg}"
    );
    let msg = workload_err(&common::TINY_LM.replace("vocab_size = 96", "vocab_size = 64"));
    assert!(msg.contains("vocab_size = 64"), "{msg}");
    // Typos are not silently ignored.
    let msg = spec_err(&common::TINY_MLP.replace("momentum", "momentun"));
    assert!(msg.contains("momentun"), "{msg}");
}

#[test]
fn weights_that_do_not_match_the_config_are_rejected() {
    let spec = common::parse(common::TINY_MLP);
    let params = spec.model.init_params(1);
    let bytes = weights::to_safetensors(&spec.model, &params).unwrap();
    assert_eq!(weights::load_for(&spec.model, &bytes).unwrap(), params);
    // Saved for another config: the embedded config disagrees.
    let other = common::parse(&common::TINY_MLP.replace("hidden = [70, 33]", "hidden = [70, 34]"));
    let msg = weights::load_for(&other.model, &bytes)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("the file was saved for"), "{msg}");
    // No embedded config: shapes are checked tensor by tensor.
    let mut wrong = params.clone();
    wrong.tensors[2].1 = orrery_ml::Tensor::zeros(&[70, 34]);
    let msg = TrainWorkload::finetune(spec.clone(), wrong, 1)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("`layers.1.weight` has shape [70, 34], the config needs [70, 33]"),
        "{msg}"
    );
    let mut missing = params.clone();
    missing.tensors.pop();
    let msg = TrainWorkload::finetune(spec.clone(), missing, 1)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("missing tensor `layers.2.bias`"), "{msg}");
    // Not a safetensors file at all.
    let msg = weights::load_for(&spec.model, b"hello")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("cannot read safetensors"), "{msg}");
    let msg = weights::load_for(&spec.model, &bytes[..bytes.len() - 3])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("cannot read safetensors"), "{msg}");
}

#[test]
fn divergence_stops_with_the_step_number() {
    let spec = common::parse(
        &common::TINY_MLP
            .replace("lr = 0.05", "lr = 1e30")
            .replace("momentum = 0.9", "momentum = 0.0"),
    );
    let mut w = TrainWorkload::new(spec, 1).unwrap();
    let step_cost = w.step_cost();
    let err = run(&mut w, Start::Fresh, |_, _, _| true).unwrap_err();
    let RunError::Workload {
        at: FailedAt::Step(step),
        cost,
        source: source @ MlError::NonFinite { step: inner, what },
    } = &err
    else {
        panic!("expected a non-finite error, got {err}")
    };
    assert_eq!(step, inner);
    // A divergence is the job's own deterministic failure: a failure claim, billed for the
    // steps before it and the step that diverged.
    assert_eq!(source.failure_reason(), Some(FailureReason::Diverged));
    assert_eq!(*cost, (step + 1) * step_cost);
    assert!(err.to_string().contains(&format!("step {step}")), "{err}");
    let msg = std::error::Error::source(&err)
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        msg.contains(&format!("training diverged at step {step}")),
        "{msg}"
    );
    assert!(msg.contains("not finite"), "{msg} / {what}");
}

#[test]
fn empty_data_sets_are_rejected() {
    let msg =
        workload_err(&common::TINY_MLP.replace("points_per_class = 50", "points_per_class = 0"));
    assert!(msg.contains("the data set is empty"), "{msg}");
    let msg = workload_err(
        &common::TINY_LM.replace("kind = \"corpus\"", "kind = \"corpus\"\ntext = \"\""),
    );
    assert!(msg.contains("the corpus is empty"), "{msg}");
    let msg = workload_err(&common::TINY_LM.replace(
        "kind = \"corpus\"",
        "kind = \"corpus\"\ntext = \"too short\"",
    ));
    assert!(
        msg.contains("a sequence needs at least seq_len + 1 = 25"),
        "{msg}"
    );
    let msg = workload_err(&common::TINY_LM.replace(
        "kind = \"corpus\"",
        "kind = \"corpus\"\ntext = \"caf\u{e9}\"",
    ));
    assert!(msg.contains("outside the vocabulary"), "{msg}");
}

#[test]
fn corrupt_or_foreign_states_are_rejected_without_panicking() {
    let spec = common::parse(common::TINY_MLP);
    let mut w = TrainWorkload::new(spec, 1).unwrap();
    let s0 = w.init().unwrap().state;
    // Every truncation, and a flipped byte in each header position.
    for len in (0..s0.len()).step_by(97).chain(0..64) {
        assert!(
            TrainState::decode(&s0[..len]).is_err(),
            "truncated at {len}"
        );
        assert!(w.step(0, &s0[..len]).is_err());
    }
    let mut long = s0.clone();
    long.push(0);
    assert!(w.step(0, &long).is_err(), "trailing bytes");
    for i in 0..64 {
        let mut bad = s0.clone();
        bad[i] ^= 0xFF;
        let _ = w.step(0, &bad); // must not panic; may be Ok if only a weight changed
    }
    // A state from another model.
    let other = common::parse(common::TINY_LM);
    let lm_state = TrainWorkload::new(other, 1).unwrap().init().unwrap().state;
    let msg = w.step(0, &lm_state).unwrap_err().to_string();
    assert!(msg.contains("bad workload state"), "{msg}");
    // The wrong step index for a state.
    let msg = w.step(3, &s0).unwrap_err().to_string();
    assert!(msg.contains("step 3 applied to a state at step 0"), "{msg}");
}

#[test]
fn only_the_jobs_own_failures_become_failure_claims() {
    assert_eq!(
        MlError::BadSpec("x".into()).failure_reason(),
        Some(FailureReason::InvalidJob)
    );
    assert_eq!(
        MlError::BadData("x".into()).failure_reason(),
        Some(FailureReason::InvalidJob)
    );
    // A state the runtime cannot read was not made by this job's steps: no result.
    assert_eq!(MlError::BadState("x".into()).failure_reason(), None);
    assert_eq!(
        MlError::StepMismatch {
            k: 1,
            state_step: 2
        }
        .failure_reason(),
        None
    );
}
