//! The shipped examples run, and produce what a user expects.

mod common;

use common::{heat_bundle, mandelbrot_bundle, workloads};
use orrery_exec::{Runtime, pack_job_file, run_bundle};
use orrery_types::workload::Start;

#[test]
fn pi_stepper_converges_to_pi() {
    let bundle = pack_job_file(&workloads().join("pi/job.toml")).expect("pi job packs");
    let runtime = Runtime::new().unwrap();
    let record = run_bundle(&runtime, &bundle, Start::Fresh, |_, _, _| true)
        .unwrap()
        .unwrap();
    let pi = f64::from_le_bytes(record.output.as_slice().try_into().unwrap());
    // 20 steps × 10^6 terms: the Leibniz error is about 1/(2·10^7).
    assert!((pi - std::f64::consts::PI).abs() < 1e-6, "got {pi}");
    assert_eq!(record.checkpoints.len(), 21);
    assert!(
        record.cost > 20_000_000,
        "fuel must be metered, got {}",
        record.cost
    );
}

#[test]
fn heat_stepper_renders_a_ppm() {
    let runtime = Runtime::new().unwrap();
    let record = run_bundle(
        &runtime,
        &heat_bundle(32, 10, 4),
        Start::Fresh,
        |_, _, _| true,
    )
    .unwrap()
    .unwrap();
    let header = b"P6\n32 32\n255\n";
    assert!(record.output.starts_with(header));
    assert_eq!(record.output.len(), header.len() + 32 * 32 * 3);
    // The hot top edge is white-ish red, the cold bottom edge black.
    let top_left_inner = header.len() + 3;
    assert_eq!(record.output[top_left_inner], 255);
    let bottom = record.output.len() - 3 * 16;
    assert_eq!(&record.output[bottom..bottom + 3], &[0, 0, 0]);
}

#[test]
fn mandelbrot_command_renders_a_ppm() {
    let runtime = Runtime::new().unwrap();
    let record = run_bundle(
        &runtime,
        &mandelbrot_bundle("64 48 100"),
        Start::Fresh,
        |_, _, _| true,
    )
    .unwrap()
    .unwrap();
    let header = b"P6\n64 48\n255\n";
    assert!(
        record.output.starts_with(header),
        "{:?}",
        &record.output[..16.min(record.output.len())]
    );
    assert_eq!(record.output.len(), header.len() + 64 * 48 * 3);
    assert_eq!(record.checkpoints.len(), 2);
}

#[test]
fn every_job_file_packs() {
    for job in ["pi", "heat", "mandelbrot"] {
        let bundle = pack_job_file(&workloads().join(job).join("job.toml"))
            .unwrap_or_else(|e| panic!("{job}: {e}"));
        let again = orrery_exec::Bundle::decode(bundle.bytes()).unwrap();
        assert_eq!(again.hash(), bundle.hash());
        Runtime::new()
            .unwrap()
            .load(&bundle)
            .unwrap_or_else(|e| panic!("{job}: {e}"));
    }
}
