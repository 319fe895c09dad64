//! `orrery run-local` end to end on the shipped examples.

use std::path::PathBuf;

use super::{Args, run};

fn workloads() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../workloads/wasm")
}

fn args(job: PathBuf) -> Args {
    Args {
        job,
        output: None,
        pack: false,
        out: None,
        check_step: None,
        json: false,
    }
}

#[test]
fn runs_a_job_file_and_writes_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("pi.out");
    run(Args {
        output: Some(output.clone()),
        check_step: Some(7),
        ..args(workloads().join("pi/job.toml"))
    })
    .unwrap();
    let bytes = std::fs::read(&output).unwrap();
    let pi = f64::from_le_bytes(bytes.as_slice().try_into().unwrap());
    assert!((pi - std::f64::consts::PI).abs() < 1e-6);
}

#[test]
fn packs_then_runs_the_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("heat.bundle");
    run(Args {
        pack: true,
        out: Some(bundle.clone()),
        ..args(workloads().join("heat/job.toml"))
    })
    .unwrap();
    assert!(std::fs::read(&bundle).unwrap().starts_with(b"ORRERY"));
    let output = dir.path().join("heat.ppm");
    run(Args {
        output: Some(output.clone()),
        json: true,
        ..args(bundle)
    })
    .unwrap();
    assert!(
        std::fs::read(&output)
            .unwrap()
            .starts_with(b"P6\n128 128\n255\n")
    );
}

#[test]
fn errors_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let missing = run(args(dir.path().join("nope.bundle"))).unwrap_err();
    assert!(format!("{missing:#}").contains("pass a .bundle file or a job.toml"));

    let junk = dir.path().join("junk.bundle");
    std::fs::write(&junk, b"definitely not a bundle").unwrap();
    let err = run(args(junk)).unwrap_err();
    assert!(format!("{err:#}").contains("--pack"), "{err:#}");

    let err = run(Args {
        check_step: Some(99),
        output: Some(dir.path().join("x")),
        ..args(workloads().join("pi/job.toml"))
    })
    .unwrap_err();
    assert!(err.to_string().contains("steps 0..20"), "{err}");
}
