//! The README's main command runs end to end and reports a consistent economy.

use std::process::Command;

#[test]
fn demo_settles_real_jobs_refunds_the_flaky_provider_and_keeps_supply() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_orrery"))
        .args(["demo", "--json", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "demo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["leases_settled"], 11, "{summary}");
    assert_eq!(summary["leases_timed_out"], 1, "{summary}");
    assert_eq!(summary["supply_invariant_held"], true);
    assert_eq!(summary["recovered_from_disk"], true);
    assert_eq!(summary["same_checkpoint_root_for_same_job"], true);
    assert_ne!(summary["minted"], "0 ORR");
    assert_ne!(summary["burned"], "0 ORR");
    assert!(dir.path().join("ledger.redb").exists());
}

#[test]
fn demo_refuses_to_overwrite_an_existing_ledger() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ledger.redb"), b"not a ledger").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_orrery"))
        .args(["demo", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already holds a demo ledger"), "{err}");
}
