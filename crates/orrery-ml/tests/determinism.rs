//! Bitwise reproducibility: across runs, thread counts, resumption from every checkpoint, and
//! single-step re-execution (what a dispute referee does).

mod common;

use orrery_ml::data::DataConfig;
use orrery_ml::model::ModelConfig;
use orrery_ml::spec::JobSpec;
use orrery_ml::weights;
use orrery_ml::workload::{GenerateWorkload, TrainWorkload};
use orrery_types::Hash;
use orrery_types::workload::{RunRecord, Start, Workload, run};

fn full_run(spec: &JobSpec, threads: usize) -> (RunRecord, Vec<Vec<u8>>) {
    let mut w = TrainWorkload::new(spec.clone(), threads).unwrap();
    let mut states = Vec::new();
    let rec = run(&mut w, Start::Fresh, |_, s, _| {
        states.push(s.to_vec());
        true
    })
    .unwrap()
    .unwrap();
    (rec, states)
}

fn assert_same_everywhere(spec: &JobSpec) -> RunRecord {
    let (reference, states) = full_run(spec, 1);
    assert_eq!(states.len() as u64, spec.steps + 1);
    // Across runs and thread counts: identical checkpoints, states and outputs.
    for threads in [1, 2, 4] {
        let (rec, _) = full_run(spec, threads);
        assert_eq!(
            rec.checkpoint_root(),
            reference.checkpoint_root(),
            "checkpoint root differs on {threads} threads"
        );
        assert_eq!(rec, reference, "run record differs on {threads} threads");
    }
    // Resume from every checkpoint, on a different thread count: same record.
    for k in 0..=spec.steps {
        let mut w = TrainWorkload::new(spec.clone(), 2).unwrap();
        let cost_so_far = (0..k).map(|_| w.step_cost()).sum();
        let rec = run(
            &mut w,
            Start::Resume {
                k,
                state: &states[k as usize],
                checkpoints: &reference.checkpoints[..=k as usize],
                cost: cost_so_far,
            },
            |_, _, _| true,
        )
        .unwrap()
        .unwrap();
        assert_eq!(rec, reference, "resuming from step {k} changed the run");
    }
    // A referee re-executes one step from its state alone, with a fresh workload.
    for k in 0..spec.steps {
        let mut referee = TrainWorkload::new(spec.clone(), 4).unwrap();
        let next = referee.step(k, &states[k as usize]).unwrap();
        assert_eq!(
            next.state,
            states[k as usize + 1],
            "re-executed step {k} differs"
        );
    }
    reference
}

#[test]
fn transformer_training_is_bitwise_reproducible() {
    let rec = assert_same_everywhere(&common::parse(common::TINY_LM));
    assert!(rec.cost > 0);
}

#[test]
fn mlp_training_is_bitwise_reproducible() {
    assert_same_everywhere(&common::parse(common::TINY_MLP));
}

#[test]
fn finetuning_is_bitwise_reproducible_and_starts_from_the_given_weights() {
    let spec = common::parse(common::TINY_MLP);
    let (trained, _) = full_run(&spec, 1);
    let params = weights::load_for(&spec.model, &trained.output).unwrap();
    // Fine-tune on a different data set of the same shape.
    let mut ft_spec = spec.clone();
    ft_spec.data = DataConfig::Spirals {
        classes: 4,
        points_per_class: 60,
        noise: 0.2,
        seed: 99,
    };
    let roots: Vec<Hash> = [1, 2, 4]
        .iter()
        .map(|&t| {
            let mut w = TrainWorkload::finetune(ft_spec.clone(), params.clone(), t).unwrap();
            let rec = run(&mut w, Start::Fresh, |_, _, _| true).unwrap().unwrap();
            let s0 = w.init().unwrap().state;
            let st0 = w.decode_state(&s0).unwrap();
            assert_eq!(st0.params, params, "state_0 holds the given weights");
            rec.checkpoint_root()
        })
        .collect();
    assert!(roots.windows(2).all(|p| p[0] == p[1]));
    assert_ne!(roots[0], trained.checkpoint_root());
}

#[test]
fn generation_is_reproducible_and_seeded() {
    let spec = common::parse(common::TINY_LM);
    let (trained, _) = full_run(&spec, 2);
    let ModelConfig::Transformer(cfg) = spec.model.clone() else {
        unreachable!()
    };
    let params = weights::load_for(&spec.model, &trained.output).unwrap();
    let gen_cfg = spec.generate.clone().unwrap();
    let generate = |seed: u64, threads: usize| {
        let mut g = gen_cfg.clone();
        g.seed = seed;
        let mut w = GenerateWorkload::new(cfg.clone(), params.clone(), g, threads).unwrap();
        run(&mut w, Start::Fresh, |_, _, _| true).unwrap().unwrap()
    };
    let a = generate(11, 1);
    assert_eq!(a, generate(11, 4));
    assert_ne!(
        a.output,
        generate(12, 1).output,
        "another seed, another sample"
    );
}

/// Pinned checkpoint roots: these bytes are the specification of the runtime. If this test
/// fails on some machine or after some change, two honest providers would disagree.
#[test]
fn checkpoint_roots_are_pinned() {
    let lm = full_run(&common::parse(common::TINY_LM), 2)
        .0
        .checkpoint_root();
    let mlp = full_run(&common::parse(common::TINY_MLP), 2)
        .0
        .checkpoint_root();
    eprintln!("lm root {lm}\nmlp root {mlp}");
    assert_eq!(lm.to_hex(), PINNED_LM_ROOT, "transformer run root changed");
    assert_eq!(mlp.to_hex(), PINNED_MLP_ROOT, "MLP run root changed");
}

const PINNED_LM_ROOT: &str = "586b3d1aff1d2b15f8aa2ef5c0b907975ea2bc12ec7afeaafafda1e75e11addc";
const PINNED_MLP_ROOT: &str = "72ed573454e9b5df816a7bf2578b07d46bc8f9407e36a11400607987de00d62d";
