//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use orrery_exec::{Bundle, EntryStyle, Limits, Manifest, Runtime};

/// The repository's `workloads/wasm` folder.
pub fn workloads() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../workloads/wasm")
}

/// Limits small enough that hostile modules fail fast.
pub fn small_limits() -> Limits {
    Limits {
        fuel_per_step: 50_000_000,
        memory_bytes: 4 * 1024 * 1024,
        max_state_bytes: 64 * 1024,
        max_output_bytes: 64 * 1024,
        wall_time_ms: 10_000,
    }
}

/// A bundle from WAT text.
pub fn wat_bundle(wat: &str, entry: EntryStyle, steps: u64, limits: Limits) -> Bundle {
    wat_bundle_with_input(wat, entry, steps, limits, None)
}

/// A bundle from WAT text with one input named `input`.
pub fn wat_bundle_with_input(
    wat: &str,
    entry: EntryStyle,
    steps: u64,
    limits: Limits,
    input: Option<&[u8]>,
) -> Bundle {
    let program = wat::parse_str(wat).expect("test WAT parses");
    let mut manifest = Manifest::wasm(entry, steps, input.map(|_| "input"));
    manifest.limits = limits;
    let mut inputs = BTreeMap::new();
    if let Some(data) = input {
        inputs.insert("input".to_string(), data.to_vec());
    }
    Bundle::new(manifest, program, inputs).expect("test bundle is valid")
}

/// A heat-equation bundle (the C stepper example) small enough for tests.
pub fn heat_bundle(side: u32, sweeps: u32, steps: u64) -> Bundle {
    let program =
        std::fs::read(workloads().join("heat/heat.wasm")).expect("heat.wasm is committed");
    let mut manifest = Manifest::wasm(EntryStyle::Stepper, steps, Some("params"));
    manifest.limits.memory_bytes = 64 * 1024 * 1024;
    let mut inputs = BTreeMap::new();
    inputs.insert(
        "params".to_string(),
        format!("{side} {side} {sweeps}").into_bytes(),
    );
    Bundle::new(manifest, program, inputs).expect("heat bundle is valid")
}

/// The Mandelbrot command example with the given parameters.
pub fn mandelbrot_bundle(params: &str) -> Bundle {
    let program = std::fs::read(workloads().join("mandelbrot/mandelbrot.wasm"))
        .expect("mandelbrot.wasm is committed");
    let manifest = Manifest::wasm(EntryStyle::Command, 1, Some("params"));
    let mut inputs = BTreeMap::new();
    inputs.insert("params".to_string(), params.as_bytes().to_vec());
    Bundle::new(manifest, program, inputs).expect("mandelbrot bundle is valid")
}

/// Run a known-good job on `runtime` to show the host is still healthy.
pub fn assert_host_survives(runtime: &Runtime) {
    let bundle = heat_bundle(16, 2, 2);
    let record = orrery_exec::run_bundle(
        runtime,
        &bundle,
        orrery_types::workload::Start::Fresh,
        |_, _, _| true,
    )
    .expect("a good job still runs after a hostile one")
    .expect("not cancelled");
    assert!(record.output.starts_with(b"P6\n16 16\n255\n"));
}
