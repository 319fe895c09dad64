//! `orrery sim`: the CI-sized run (10,000 providers, one day), determinism through the command,
//! and a malformed scenario refused with the key and the reason.

use std::process::Command;

fn sim(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_orrery"))
        .arg("sim")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_ci_run_keeps_the_invariants_and_writes_summary_timings_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let out = sim(&[
        "--providers",
        "10000",
        "--days",
        "1",
        "--seed",
        "1",
        "--json",
        "--out",
    ]
    .iter()
    .copied()
    .chain([dir.path().to_str().unwrap()])
    .collect::<Vec<_>>());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = summary["runs"].as_array().unwrap();
    assert_eq!(
        runs.len(),
        12,
        "four demand shapes under three emission rules"
    );
    for r in runs {
        assert_eq!(r["refused"], serde_json::json!({}), "{}", r["refused"]);
        assert_eq!(r["audits_passed"], 2);
        assert!(
            r["leases"]["opened"].as_u64().unwrap() > 1_000,
            "{}",
            r["leases"]
        );
        assert!(r["supply"]["burned"].as_f64().unwrap() > 0.0);
    }
    let written = std::fs::read_to_string(dir.path().join("summary.json")).unwrap();
    assert_eq!(written.trim(), String::from_utf8_lossy(&out.stdout).trim());
    let timings: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("timings.json")).unwrap()).unwrap();
    assert!(timings["runs"][0]["blocks"].as_array().unwrap().len() > 4);
    for plot in [
        "supply",
        "emission",
        "earnings",
        "prices",
        "utilization",
        "cheaters",
        "performance",
    ] {
        for ext in ["png", "svg"] {
            let f = dir.path().join(format!("{plot}.{ext}"));
            assert!(
                std::fs::metadata(&f).unwrap().len() > 10_000,
                "{}",
                f.display()
            );
        }
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("peak memory"), "{err}");
}

#[test]
fn the_same_seed_prints_the_same_summary() {
    let args = [
        "--providers",
        "500",
        "--days",
        "1",
        "--demand",
        "bursty",
        "--json",
    ];
    let a = sim(&args);
    let b = sim(&args);
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert_eq!(a.stdout, b.stdout);
}

#[test]
fn a_malformed_scenario_is_refused_with_the_key_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let text = orrery_default_scenario().replace("usd_per_kwh = 0.25", "usd_per_kwh = 0.0");
    std::fs::write(&path, text).unwrap();
    let out = sim(&["--providers", "100", "--scenario", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("regions[2].usd_per_kwh") && err.contains("positive"),
        "{err}"
    );

    std::fs::write(&path, "usd_per_orr = 1.0\nstep_hours = 6\nspeed = 3\n").unwrap();
    let out = sim(&["--providers", "100", "--scenario", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown field `speed`"), "{err}");

    let out = sim(&["--providers", "100", "--demand", "sideways"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("unknown demand shape `sideways`"),
        "{err}"
    );
}

fn orrery_default_scenario() -> String {
    let out = sim(&["--print-scenario"]);
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}
