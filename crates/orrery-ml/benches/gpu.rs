//! `cargo bench -p orrery-ml --bench gpu`: the GPU backend against the CPU path on the same
//! sizes in one run — matrix products (256, 512, 1024) and a training step of the example
//! language model — with the ratio, and a check that both give the same bits.
//!
//! Without a GPU adapter it says so and exits. On lavapipe (a CPU rasterizer) the figures show
//! correctness only. `ORRERY_BENCH_QUICK=1` runs fewer sizes and steps.

use orrery_ml::Device;
use orrery_ml::ops::Trans;
use orrery_ml::rng::Rng;
use orrery_ml::spec::JobSpec;
use orrery_ml::workload::TrainWorkload;
use orrery_types::workload::Workload;
use std::time::Instant;

fn best_secs(reps: usize, mut f: impl FnMut()) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    best
}

fn main() {
    let quick = std::env::var_os("ORRERY_BENCH_QUICK").is_some();
    let gpu = match Device::gpu() {
        Ok(d) => d,
        Err(e) => {
            println!("no GPU adapter ({e}); nothing to compare");
            return;
        }
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cores.min(8);
    println!(
        "GPU backend: {} (class {}); CPU path on {threads} thread(s)\n",
        gpu.name(),
        gpu.class()
    );
    println!(
        "{:>6} {:>12} {:>12} {:>10} {:>8}",
        "n", "CPU GFLOP/s", "GPU GFLOP/s", "GPU/CPU", "bitwise"
    );
    let sizes: &[usize] = if quick {
        &[256, 512]
    } else {
        &[256, 512, 1024]
    };
    for &n in sizes {
        let mut rng = Rng::new(n as u64);
        let a: Vec<f32> = (0..n * n).map(|_| rng.normal()).collect();
        let b: Vec<f32> = (0..n * n).map(|_| rng.normal()).collect();
        let (mut c_cpu, mut c_gpu) = (vec![0.0f32; n * n], vec![0.0f32; n * n]);
        let flops = 2.0 * (n * n * n) as f64;
        let reps = if n >= 1024 { 2 } else { 3 };
        let cpu = best_secs(reps, || {
            let r =
                Device::Cpu.matmul(&a, Trans::No, &b, Trans::No, (n, n, n), &mut c_cpu, threads);
            r.unwrap_or_else(|e| panic!("{e}"));
        });
        let gpu_s = best_secs(reps, || {
            let r = gpu.matmul(&a, Trans::No, &b, Trans::No, (n, n, n), &mut c_gpu, 1);
            r.unwrap_or_else(|e| panic!("{e}"));
        });
        let same = c_cpu
            .iter()
            .zip(&c_gpu)
            .all(|(x, y)| x.to_bits() == y.to_bits());
        println!(
            "{n:>6} {:>12.2} {:>12.2} {:>9.2}x {:>8}",
            flops / cpu / 1e9,
            flops / gpu_s / 1e9,
            cpu / gpu_s,
            if same { "yes" } else { "NO" }
        );
    }
    println!("(matmul n×n×n, best of several runs, GPU time includes host transfers)\n");

    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../workloads/ml/genesis-lm.toml"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let spec = JobSpec::from_toml(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let steps = if quick { 2 } else { 5 };
    let mut per_step = Vec::new();
    let mut finals = Vec::new();
    for (label, dev) in [("CPU", Device::Cpu), ("GPU", gpu.clone())] {
        let mut w = TrainWorkload::new(spec.clone(), threads)
            .unwrap_or_else(|e| panic!("{e}"))
            .on_device(dev);
        let mut state = w.init().unwrap_or_else(|e| panic!("{e}")).state;
        let t = Instant::now();
        for k in 0..steps {
            state = w.step(k, &state).unwrap_or_else(|e| panic!("{e}")).state;
        }
        let s = t.elapsed().as_secs_f64() / steps as f64;
        let tokens = (w.rows_per_step()) as f64;
        println!(
            "training step, genesis-lm ({label}): {:>8.1} ms/step, {:>9.0} tokens/s",
            s * 1e3,
            tokens / s
        );
        per_step.push(s);
        finals.push(orrery_types::workload::checkpoint(&state));
    }
    println!(
        "training step GPU/CPU speed: {:.2}x; states after {steps} steps bitwise equal: {}",
        per_step[0] / per_step[1],
        if finals[0] == finals[1] { "yes" } else { "NO" }
    );
}
