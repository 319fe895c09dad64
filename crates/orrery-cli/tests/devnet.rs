//! The README's main command, end to end: `orrery devnet --exit-when-done --json` runs real
//! wasm and ML jobs on four validator processes and provider agents, catches and slashes the
//! cheater, refunds its requester, mints the epoch's emission and keeps the supply invariant.

use std::process::Command;

#[test]
fn the_devnet_settles_real_jobs_and_slashes_the_cheater() {
    let dir = tempfile::tempdir().unwrap();
    let base = 30_000 + (std::process::id() % 3_000) as u16 * 10;
    let out = Command::new(env!("CARGO_BIN_EXE_orrery"))
        .args(["devnet", "--exit-when-done", "--json", "--dir"])
        .arg(dir.path().join("net"))
        .args(["--p2p-port", &base.to_string()])
        .args(["--api-port", &(base + 5).to_string()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "devnet failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_str(&stdout).expect("the summary is JSON");
    let n = |k: &str| {
        s[k].as_u64()
            .unwrap_or_else(|| panic!("{k} missing in {s}"))
    };
    assert_eq!(n("timed_out"), 0, "{s}");
    assert_eq!(n("settled") + n("failed"), n("jobs"), "{s}");
    assert!(n("failed") >= 1, "the cheater's redundant job fails: {s}");
    assert_eq!(n("cheaters_slashed"), n("cheaters"), "{s}");
    assert_eq!(n("honest_slashed"), 0, "{s}");
    assert!(n("disputes") >= 1 && n("referee_rulings") >= 1, "{s}");
    assert_eq!(s["supply_invariant_held"], true, "{s}");
    assert_ne!(s["minted"], "0", "the epoch's emission was minted: {s}");
    // The ML job ran and settled.
    let leases = s["leases"].as_array().unwrap();
    assert!(
        leases
            .iter()
            .any(|l| l["job"] == "spirals-mlp" && l["state"] == "settled"),
        "{s}"
    );
}
