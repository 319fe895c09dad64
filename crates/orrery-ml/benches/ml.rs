//! `cargo bench -p orrery-ml`: matmul GFLOP/s of the deterministic kernel against a naive
//! triple loop and the `matrixmultiply` crate (fast, runtime-dispatched SIMD with FMA, not
//! bitwise reproducible across CPUs), and training throughput of the example language model.
//!
//! Set `ORRERY_BENCH_QUICK=1` for a shorter run.

// The one unsafe call is `matrixmultiply::sgemm`, the baseline we compare against: its API is
// raw pointers and strides. Benchmark-only; the library itself has no unsafe code.
#![allow(unsafe_code)]

use orrery_ml::ops::{Isa, Tile, Trans, matmul, matmul_naive, matmul_with};
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

fn sgemm_baseline(a: &[f32], b: &[f32], c: &mut [f32], n: usize) {
    // SAFETY: a, b, c are n×n row-major buffers of exactly n*n elements, so every pointer
    // offset sgemm computes from these dimensions and strides is in bounds; c is not aliased.
    unsafe {
        matrixmultiply::sgemm(
            n,
            n,
            n,
            1.0,
            a.as_ptr(),
            n as isize,
            1,
            b.as_ptr(),
            n as isize,
            1,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

fn main() {
    let quick = std::env::var_os("ORRERY_BENCH_QUICK").is_some();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("orrery-ml benchmark ({cores} cores available)\n");
    println!(
        "{:>6} {:>12} {:>12} {:>12} {:>12} {:>16}",
        "n", "naive", "ours 1T", "ours 2T", "matrixmul 1T", "ours/matrixmul"
    );
    let sizes: &[usize] = if quick {
        &[256, 512]
    } else {
        &[128, 256, 512, 1024]
    };
    for &n in sizes {
        let mut rng = Rng::new(n as u64);
        let a: Vec<f32> = (0..n * n).map(|_| rng.normal()).collect();
        let b: Vec<f32> = (0..n * n).map(|_| rng.normal()).collect();
        let mut c = vec![0.0f32; n * n];
        let flops = 2.0 * (n * n * n) as f64;
        let reps = if n >= 1024 { 3 } else { 5 };
        let gf = |s: f64| flops / s / 1e9;
        let naive = if n <= 512 {
            format!(
                "{:.2}",
                gf(best_secs(1, || {
                    matmul_naive(&a, Trans::No, &b, Trans::No, n, n, n, &mut c)
                }))
            )
        } else {
            "-".into()
        };
        let ours1 = gf(best_secs(reps, || {
            matmul(&a, Trans::No, &b, Trans::No, n, n, n, &mut c, 1)
        }));
        let ours2 = gf(best_secs(reps, || {
            matmul(&a, Trans::No, &b, Trans::No, n, n, n, &mut c, 2)
        }));
        let fast = gf(best_secs(reps, || sgemm_baseline(&a, &b, &mut c, n)));
        println!(
            "{n:>6} {naive:>12} {ours1:>12.2} {ours2:>12.2} {fast:>12.2} {:>15.2}x",
            ours1 / fast
        );
    }
    println!("(GFLOP/s, best of several runs; 1T/2T = threads)\n");

    // Every code path of the kernel (all bitwise equal; the tests check it), one thread.
    let n = 512;
    let mut rng = Rng::new(7);
    let a: Vec<f32> = (0..n * n).map(|_| rng.normal()).collect();
    let b: Vec<f32> = (0..n * n).map(|_| rng.normal()).collect();
    let mut c = vec![0.0f32; n * n];
    println!("kernel paths at n = {n}, 1 thread (GFLOP/s):");
    for (tile, label) in [
        (Tile::Small, "4x8 tile"),
        (Tile::Medium, "6x16 tile (AVX2 vectors)"),
        (Tile::Large, "8x32 tile (AVX-512 vectors)"),
    ] {
        for isa in [Isa::Best, Isa::Portable] {
            let s = best_secs(3, || {
                matmul_with(
                    &a,
                    Trans::No,
                    &b,
                    Trans::No,
                    (n, n, n),
                    &mut c,
                    1,
                    tile,
                    isa,
                )
            });
            println!(
                "  {label:<28} {:<9} {:>8.2}",
                format!("{isa:?}"),
                2.0 * (n * n * n) as f64 / s / 1e9
            );
        }
    }
    println!();

    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../workloads/ml/genesis-lm.toml"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let spec = JobSpec::from_toml(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let steps = if quick { 5 } else { 20 };
    for threads in [1, 2] {
        let mut w = TrainWorkload::new(spec.clone(), threads).unwrap_or_else(|e| panic!("{e}"));
        let mut state = w.init().unwrap_or_else(|e| panic!("{e}")).state;
        let t = Instant::now();
        for k in 0..steps {
            state = w.step(k, &state).unwrap_or_else(|e| panic!("{e}")).state;
        }
        let secs = t.elapsed().as_secs_f64();
        let tokens = steps as usize * w.rows_per_step();
        println!(
            "LM training (genesis-lm.toml: d_model 64, 2 layers, 16×64 tokens/step), {threads} thread(s): {:.0} tokens/s, {:.1} ms/step, {:.2} GFLOP/s effective",
            tokens as f64 / secs,
            secs * 1e3 / steps as f64,
            (w.step_cost() * steps) as f64 / secs / 1e9
        );
    }
}
