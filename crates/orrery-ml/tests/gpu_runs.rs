//! Whole runs on the GPU backend: training, fine-tuning and inference give the CPU
//! reference's checkpoint roots, states and outputs, bit for bit — so a GPU provider and a CPU
//! verifier (or two GPU providers in two processes) agree, and the pinned roots of
//! `tests/determinism.rs` hold on the GPU too. Skipped without an adapter unless
//! `ORRERY_GPU_TESTS=1`.

mod common;

use orrery_ml::Device;
use orrery_ml::infer::{Generator, ModelFiles, SampleParams};
use orrery_ml::model::ModelConfig;
use orrery_ml::spec::JobSpec;
use orrery_ml::weights;
use orrery_ml::workload::{ClassifyWorkload, GenerateWorkload, TrainWorkload};
use orrery_types::workload::{RunRecord, Start, Workload, run};

fn train(spec: &JobSpec, dev: &Device) -> (RunRecord, Vec<Vec<u8>>) {
    let mut w = TrainWorkload::new(spec.clone(), 2)
        .unwrap()
        .on_device(dev.clone());
    let mut states = Vec::new();
    let rec = run(&mut w, Start::Fresh, |_, s, _| {
        states.push(s.to_vec());
        true
    })
    .unwrap()
    .unwrap();
    (rec, states)
}

/// The same as `tests/determinism.rs`: the CPU path's roots, recorded on the portable kernel.
const PINNED_LM_ROOT: &str = "586b3d1aff1d2b15f8aa2ef5c0b907975ea2bc12ec7afeaafafda1e75e11addc";
const PINNED_MLP_ROOT: &str = "72ed573454e9b5df816a7bf2578b07d46bc8f9407e36a11400607987de00d62d";

#[test]
fn gpu_transformer_training_gives_the_cpu_roots() {
    let Some(gpu) = common::gpu_or_skip("gpu_transformer_training_gives_the_cpu_roots") else {
        return;
    };
    let spec = common::parse(common::TINY_LM);
    let (on_gpu, states) = train(&spec, &gpu);
    let Device::Gpu(ctx) = &gpu else {
        unreachable!()
    };
    assert!(
        ctx.dispatches() > 100,
        "the GPU ran {} kernels",
        ctx.dispatches()
    );
    let (on_cpu, _) = train(&spec, &Device::Cpu);
    assert_eq!(on_gpu.checkpoint_root().to_hex(), PINNED_LM_ROOT);
    assert_eq!(on_gpu, on_cpu, "GPU and CPU run records differ");
    // A CPU referee re-executes any step of the GPU run and gets the GPU's next state.
    let mut referee = TrainWorkload::new(spec.clone(), 1).unwrap();
    for k in [0, spec.steps - 1] {
        let next = referee.step(k, &states[k as usize]).unwrap();
        assert_eq!(next.state, states[k as usize + 1], "step {k} differs");
    }
}

#[test]
fn gpu_mlp_training_gives_the_cpu_roots() {
    let Some(gpu) = common::gpu_or_skip("gpu_mlp_training_gives_the_cpu_roots") else {
        return;
    };
    // SGD (host update), pinned root.
    let spec = common::parse(common::TINY_MLP);
    assert_eq!(
        train(&spec, &gpu).0.checkpoint_root().to_hex(),
        PINNED_MLP_ROOT
    );
    // AdamW (GPU update), GELU, as a fine-tune from trained weights.
    let adamw = common::TINY_MLP.replace(
        "kind = \"sgd\"\nlr = 0.05\nmomentum = 0.9",
        "kind = \"adamw\"\nlr = 0.01",
    );
    let spec = common::parse(&adamw);
    let (trained, _) = train(&spec, &Device::Cpu);
    assert_eq!(train(&spec, &gpu).0, trained);
    let params = weights::load_for(&spec.model, &trained.output).unwrap();
    let finetune = |dev: &Device| {
        let mut w = TrainWorkload::finetune(spec.clone(), params.clone(), 1)
            .unwrap()
            .on_device(dev.clone());
        run(&mut w, Start::Fresh, |_, _, _| true).unwrap().unwrap()
    };
    assert_eq!(finetune(&gpu), finetune(&Device::Cpu));
}

#[test]
fn gpu_inference_gives_the_cpu_outputs() {
    let Some(gpu) = common::gpu_or_skip("gpu_inference_gives_the_cpu_outputs") else {
        return;
    };
    let spec = common::parse(common::TINY_LM);
    let (trained, _) = train(&spec, &Device::Cpu);
    let ModelConfig::Transformer(cfg) = spec.model.clone() else {
        unreachable!()
    };
    let params = weights::load_for(&spec.model, &trained.output).unwrap();
    let generate = |dev: &Device| {
        let g = spec.generate.clone().unwrap();
        let mut w = GenerateWorkload::new(cfg.clone(), params.clone(), g, 1)
            .unwrap()
            .on_device(dev.clone());
        run(&mut w, Start::Fresh, |_, _, _| true).unwrap().unwrap()
    };
    let (g, c) = (generate(&gpu), generate(&Device::Cpu));
    assert_eq!(g.checkpoint_root(), c.checkpoint_root());
    assert_eq!(g.output, c.output);

    let mlp = common::parse(common::TINY_MLP);
    let ModelConfig::Mlp(mcfg) = mlp.model.clone() else {
        unreachable!()
    };
    let (mtrained, _) = train(&mlp, &Device::Cpu);
    let mparams = weights::load_for(&mlp.model, &mtrained.output).unwrap();
    let x: Vec<f32> = (0..200).map(|i| (i as f32 * 0.37).sin() * 2.0).collect();
    let classify = |dev: &Device| {
        let mut w = ClassifyWorkload::new(mcfg.clone(), mparams.clone(), x.clone(), 16, 1)
            .unwrap()
            .on_device(dev.clone());
        run(&mut w, Start::Fresh, |_, _, _| true).unwrap().unwrap()
    };
    assert_eq!(classify(&gpu), classify(&Device::Cpu));
}

/// The hub-model path (`infer::Generator`, as the inference gateway's providers serve it) on
/// the GPU: the shipped GPT-2-layout model gives the CPU's logits and its sampled tokens, bit
/// for bit, with its linear layers running on the GPU.
#[test]
fn gpu_hub_generator_gives_the_cpu_logits_and_tokens() {
    let Some(gpu) = common::gpu_or_skip("gpu_hub_generator_gives_the_cpu_logits_and_tokens") else {
        return;
    };
    let dir =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/genesis-gpt2");
    let files = ModelFiles::load_dir(&dir).unwrap();
    let cpu = Generator::load(&files.weights, &files.config, &files.tokenizer).unwrap();
    let mut on_gpu = Generator::load(&files.weights, &files.config, &files.tokenizer).unwrap();
    on_gpu.use_device(&gpu).unwrap();
    let Device::Gpu(ctx) = &gpu else {
        unreachable!()
    };
    let before = ctx.dispatches();
    let prompt = orrery_ml::data::encode("In the beginning God").unwrap();
    let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
    assert_eq!(
        bits(on_gpu.logits(&prompt, 1).unwrap()),
        bits(cpu.logits(&prompt, 1).unwrap())
    );
    let params = SampleParams {
        max_tokens: 16,
        temperature: 0.8,
        top_p: 0.95,
        seed: 7,
        stop: vec![],
    };
    let g = on_gpu.generate(&prompt, &params, 1, |_| true).unwrap();
    assert_eq!(g, cpu.generate(&prompt, &params, 2, |_| true).unwrap());
    assert_eq!(g.tokens_out, 16);
    // One product per linear layer and token at least: the GPU did the work.
    assert!(
        ctx.dispatches() - before >= 16 * 4 * 3,
        "{}",
        ctx.dispatches() - before
    );
}
