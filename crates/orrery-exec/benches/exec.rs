//! `cargo bench -p orrery-exec`: prints, in one run,
//!
//! 1. the same kernels natively in Rust vs in wasm under the production configuration
//!    ([`orrery_exec::deterministic_config`]: fuel, epoch interruption, NaN canonicalization) —
//!    target ≤ 1.5×; with a breakdown of what NaN canonicalization costs float code;
//! 2. fuel metering on vs off, everything else equal — target ≤ 20 % overhead;
//! 3. the Mandelbrot example end to end as a metered job through [`orrery_exec::Runtime`];
//! 4. instantiating a cached module and making one small call — target < 1 ms.
//!
//! The wasm kernels are `workloads/wasm/kernels/kernels.c` compiled by clang; the native ones
//! are line-for-line Rust ports, and the bench checks that both produce identical results, so
//! both sides do the same work. Times are the minimum over interleaved rounds, which filters
//! out noise from other processes on a shared machine.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use orrery_exec::{Bundle, EntryStyle, Manifest, Runtime, deterministic_config, run_bundle};
use orrery_types::workload::{Start, Workload};
use wasmtime::{Engine, Instance, Module, Store};

const WIDTH: u32 = 640;
const HEIGHT: u32 = 480;
const MAX_ITER: u32 = 500;
const COLLATZ_LIMIT: u32 = 1_000_000;
const ROUNDS: usize = 5;
const INSTANTIATIONS: u32 = 2000;

fn workloads() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../workloads/wasm")
}

/// Port of `mandelbrot` in kernels.c (and `render` in mandelbrot/mandelbrot.c).
fn mandelbrot_native(w: u32, h: u32, max_iter: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity((w * h * 3) as usize);
    let (x0, x1) = (-2.5f64, 1.0f64);
    let half_h = (x1 - x0) * f64::from(h) / f64::from(w) / 2.0;
    let dx = (x1 - x0) / f64::from(w);
    let dy = 2.0 * half_h / f64::from(h);
    for y in 0..h {
        let ci = -half_h + f64::from(y) * dy;
        for x in 0..w {
            let cr = x0 + f64::from(x) * dx;
            let (mut zr, mut zi) = (0.0f64, 0.0f64);
            let mut i = 0u32;
            while i < max_iter && zr * zr + zi * zi <= 4.0 {
                let t = zr * zr - zi * zi + cr;
                zi = 2.0 * zr * zi + ci;
                zr = t;
                i += 1;
            }
            let t = f64::from(i) / f64::from(max_iter);
            let u = 1.0 - t;
            out.push((9.0 * u * t * t * t * 255.0) as u8);
            out.push((15.0 * u * u * t * t * 255.0) as u8);
            out.push((8.5 * u * u * u * t * 255.0) as u8);
        }
    }
    out
}

/// Port of `collatz` in kernels.c.
fn collatz_native(limit: u32) -> u64 {
    let (mut best, mut best_n) = (0u64, 0u64);
    for n in 1..limit {
        let (mut x, mut steps) = (u64::from(n), 0u64);
        while x != 1 {
            x = if x & 1 == 1 { 3 * x + 1 } else { x >> 1 };
            steps += 1;
        }
        if steps > best {
            best = steps;
            best_n = u64::from(n);
        }
    }
    (best_n << 32) | best
}

/// The kernels module compiled under one configuration.
struct Kernels {
    engine: Engine,
    module: Module,
    fuel: bool,
}

impl Kernels {
    fn new(nan_canonicalization: bool, fuel: bool) -> Self {
        let mut config = deterministic_config();
        config.cranelift_nan_canonicalization(nan_canonicalization);
        config.consume_fuel(fuel);
        let engine = Engine::new(&config).expect("engine");
        let wasm = std::fs::read(workloads().join("kernels/kernels.wasm"))
            .expect("workloads/wasm/kernels/kernels.wasm is committed");
        let module = Module::new(&engine, wasm).expect("kernels compile");
        Self {
            engine,
            module,
            fuel,
        }
    }

    fn instance(&self) -> (Store<()>, Instance) {
        let mut store = Store::new(&self.engine, ());
        if self.fuel {
            store.set_fuel(u64::MAX / 2).expect("fuel");
        }
        store.set_epoch_deadline(u64::MAX / 2);
        let instance = Instance::new(&mut store, &self.module, &[]).expect("instantiate");
        (store, instance)
    }

    fn mandelbrot(&self) -> Vec<u8> {
        let (mut store, instance) = self.instance();
        let f = instance
            .get_typed_func::<(u32, u32, u32), u32>(&mut store, "mandelbrot")
            .expect("export");
        let ptr = f.call(&mut store, (WIDTH, HEIGHT, MAX_ITER)).expect("runs") as usize;
        let memory = instance.get_memory(&mut store, "memory").expect("memory");
        memory.data(&store)[ptr..ptr + (WIDTH * HEIGHT * 3) as usize].to_vec()
    }

    fn collatz(&self) -> u64 {
        let (mut store, instance) = self.instance();
        let f = instance
            .get_typed_func::<u32, u64>(&mut store, "collatz")
            .expect("export");
        f.call(&mut store, COLLATZ_LIMIT).expect("runs")
    }
}

fn time<T>(f: impl FnOnce() -> T) -> Duration {
    let start = Instant::now();
    std::hint::black_box(f());
    start.elapsed()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
}

/// Minimum times of (native, production wasm, wasm without fuel, wasm without NaN
/// canonicalization) for one kernel.
fn measure<T: PartialEq + std::fmt::Debug>(
    native: impl Fn() -> T,
    wasm: impl Fn(&Kernels) -> T,
    configs: &[Kernels; 3],
) -> [Duration; 4] {
    let expected = native();
    for k in configs {
        assert!(wasm(k) == expected, "wasm and native kernels must agree");
    }
    let mut best = [Duration::MAX; 4];
    for _ in 0..ROUNDS {
        best[0] = best[0].min(time(&native));
        for (i, k) in configs.iter().enumerate() {
            best[i + 1] = best[i + 1].min(time(|| wasm(k)));
        }
    }
    best
}

fn main() {
    println!("orrery-exec benchmark (min of {ROUNDS} interleaved rounds)");
    println!();
    let configs = [
        Kernels::new(true, true),  // production
        Kernels::new(true, false), // fuel off
        Kernels::new(false, true), // NaN canonicalization off (reference only)
    ];
    let collatz = measure(|| collatz_native(COLLATZ_LIMIT), Kernels::collatz, &configs);
    let mandel = measure(
        || mandelbrot_native(WIDTH, HEIGHT, MAX_ITER),
        Kernels::mandelbrot,
        &configs,
    );

    println!(
        "1. Same kernel, native Rust vs wasm (production config: fuel + epoch + NaN canonicalization)"
    );
    println!(
        "   {:<34} {:>10} {:>10} {:>8}   {:>22}",
        "kernel", "native ms", "wasm ms", "ratio", "no-NaN-canon ms (ratio)"
    );
    for (name, t) in [
        (format!("collatz < {COLLATZ_LIMIT} (integer)"), collatz),
        (
            format!("mandelbrot {WIDTH}x{HEIGHT}x{MAX_ITER} (float)"),
            mandel,
        ),
    ] {
        let ratio = t[1].as_secs_f64() / t[0].as_secs_f64();
        let no_canon = t[3].as_secs_f64() / t[0].as_secs_f64();
        println!(
            "   {:<34} {:>10.1} {:>10.1} {:>7.2}x   {:>14.1} ({:.2}x)   target <= 1.5x: {}",
            name,
            ms(t[0]),
            ms(t[1]),
            ratio,
            ms(t[3]),
            no_canon,
            verdict(ratio <= 1.5)
        );
    }
    println!();
    println!("2. Fuel metering overhead (production config vs the same with fuel off)");
    for (name, t) in [("collatz", collatz), ("mandelbrot", mandel)] {
        let overhead = (t[1].as_secs_f64() / t[2].as_secs_f64() - 1.0) * 100.0;
        println!(
            "   {:<12} fuel on {:>8.1} ms, off {:>8.1} ms: {:>6.1} %   target <= 20%: {}",
            name,
            ms(t[1]),
            ms(t[2]),
            overhead,
            verdict(overhead <= 20.0)
        );
    }
    println!();

    // 3. End to end: the Mandelbrot example as a metered WASI command job.
    let program = std::fs::read(workloads().join("mandelbrot/mandelbrot.wasm"))
        .expect("workloads/wasm/mandelbrot/mandelbrot.wasm is committed");
    let mut manifest = Manifest::wasm(EntryStyle::Command, 1, Some("params"));
    manifest.limits.fuel_per_step = orrery_exec::limits::MAX_FUEL_PER_STEP;
    let mut inputs = BTreeMap::new();
    inputs.insert(
        "params".to_string(),
        format!("{WIDTH} {HEIGHT} {MAX_ITER}").into_bytes(),
    );
    let bundle = Bundle::new(manifest, program, inputs).expect("valid bundle");
    let runtime = Runtime::new().expect("runtime");
    let run = || {
        run_bundle(&runtime, &bundle, Start::Fresh, |_, _, _| true)
            .expect("mandelbrot runs")
            .expect("not cancelled")
    };
    let record = run();
    assert!(
        record
            .output
            .ends_with(&mandelbrot_native(WIDTH, HEIGHT, MAX_ITER))
    );
    let job_time = (0..ROUNDS).map(|_| time(run)).min().unwrap_or_default();
    println!("3. Mandelbrot example as a job (WASI command, stdin -> PPM on stdout, metered)");
    println!(
        "   {:.1} ms, {} fuel, output {} bytes, {:.2}x native kernel",
        ms(job_time),
        record.cost,
        record.output.len(),
        job_time.as_secs_f64() / mandel[0].as_secs_f64()
    );
    println!();

    // 4. A cached module: load (cache hit + export checks), and one init call (fresh store and
    // instance, alloc, a few instructions).
    let pi = orrery_exec::pack_job_file(&workloads().join("pi/job.toml")).expect("pi job");
    let mut job = runtime.load(&pi).expect("pi loads");
    let heat_program = std::fs::read(workloads().join("heat/heat.wasm")).expect("heat.wasm");
    let mut manifest = Manifest::wasm(EntryStyle::Stepper, 1, Some("params"));
    manifest.limits.memory_bytes = 64 * 1024 * 1024;
    let mut inputs = BTreeMap::new();
    inputs.insert("params".to_string(), b"8 8 1".to_vec());
    let heat = Bundle::new(manifest, heat_program, inputs).expect("heat bundle");
    let mut heat_job = runtime.load(&heat).expect("heat loads");
    let compiled_before = runtime.cache_stats().compiled;
    let per_call = |f: &mut dyn FnMut()| {
        (0..ROUNDS)
            .map(|_| time(|| (0..INSTANTIATIONS).for_each(|_| f())) / INSTANTIATIONS)
            .min()
            .unwrap_or_default()
    };
    let load = per_call(&mut || {
        std::hint::black_box(runtime.load(&pi).expect("cached load"));
    });
    let pi_call = per_call(&mut || {
        std::hint::black_box(job.init().expect("init"));
    });
    let heat_call = per_call(&mut || {
        std::hint::black_box(heat_job.init().expect("init"));
    });
    assert_eq!(
        runtime.cache_stats().compiled,
        compiled_before,
        "no recompilation"
    );
    println!("4. Cached module, per call (mean of {INSTANTIATIONS})");
    println!(
        "   load a bundle whose module is cached         {:>8.1} us",
        load.as_secs_f64() * 1e6
    );
    println!(
        "   instantiate + init, pi.wat                   {:>8.1} us   target < 1000 us: {}",
        pi_call.as_secs_f64() * 1e6,
        verdict(pi_call < Duration::from_millis(1))
    );
    println!(
        "   instantiate + init, heat.wasm (C, wasi-libc) {:>8.1} us   target < 1000 us: {}",
        heat_call.as_secs_f64() * 1e6,
        verdict(heat_call < Duration::from_millis(1))
    );
}
