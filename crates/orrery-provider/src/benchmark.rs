//! A short deterministic benchmark (CPU, and the GPU backend when one is used): a fixed-size matrix product through `orrery-ml`'s
//! deterministic matmul (the kernel ML jobs spend their time in), repeated a fixed number of
//! times on one thread.
//!
//! The *work* is fixed, so the score is comparable between machines: `score` is millions of
//! floating-point operations per second (higher is faster). The result of the product is
//! hashed and returned too: two machines must agree on it bit for bit, which is a cheap
//! self-check that the deterministic kernels behave here.

use orrery_ml::Device;
use orrery_ml::ops::Trans;
use orrery_types::hash::Hash;
use std::time::{Duration, Instant};

/// Matrix side. 192³ × 2 flops × [`REPEATS`] ≈ 0.28 GFLOP: a few hundred ms on a laptop core.
pub const SIZE: usize = 192;
/// Products computed.
pub const REPEATS: usize = 20;

/// What the benchmark measured.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BenchmarkResult {
    /// Millions of floating-point operations per second (higher is faster).
    pub score: f64,
    /// Wall time of the measured work.
    pub wall: Duration,
    /// Hash of the final product: the same on every machine.
    pub digest: Hash,
}

/// Run the benchmark (single-threaded, ≤ 1–2 s on any current CPU).
pub fn run() -> BenchmarkResult {
    match run_on(&Device::Cpu) {
        Ok(r) => r,
        Err(e) => unreachable!("the CPU path has no device errors: {e}"),
    }
}

/// The same work on `device`: on a GPU the score includes the host transfers of every
/// product (the ML path stages tensors through host memory), and the digest must equal the
/// CPU's — the agent stops using a GPU whose digest differs.
pub fn run_on(device: &Device) -> Result<BenchmarkResult, orrery_ml::MlError> {
    let n = SIZE;
    // Fixed inputs from a simple integer recurrence, scaled into [-1, 1).
    let mut x: u32 = 0x9E37_79B9;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        (x >> 8) as f32 / (1u32 << 23) as f32 - 1.0
    };
    let a: Vec<f32> = (0..n * n).map(|_| next()).collect();
    let b: Vec<f32> = (0..n * n).map(|_| next()).collect();
    let mut c = vec![0f32; n * n];
    let started = Instant::now();
    let mut acc = a.clone();
    for _ in 0..REPEATS {
        device.matmul(&acc, Trans::No, &b, Trans::No, (n, n, n), &mut c, 1)?;
        // Keep values bounded so every repeat does real, finite work.
        let scale = 1.0 / n as f32;
        for (dst, v) in acc.iter_mut().zip(&c) {
            *dst = v * scale;
        }
    }
    let wall = started.elapsed();
    let flops = 2.0 * (n * n * n * REPEATS) as f64;
    let bytes: Vec<u8> = acc.iter().flat_map(|v| v.to_le_bytes()).collect();
    Ok(BenchmarkResult {
        score: flops / wall.as_secs_f64().max(1e-9) / 1e6,
        wall,
        digest: Hash::of(&bytes),
    })
}
