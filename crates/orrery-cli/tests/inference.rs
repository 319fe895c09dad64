//! `orrery inference`: argument errors say what to do, and a key created on a local network
//! is printed alone on stdout, saved owner-only, paid for from the wallet, funded, shown and
//! revoked.

mod support;

use orrery_types::amount::Amount;
use orrery_types::inference::ApiKey;
use support::{kill_all, orrery, start_validators};

fn fails_with(args: &[&str], needle: &str) {
    let out = orrery().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} should fail");
    assert!(
        stderr.contains(needle),
        "{args:?}: expected {needle:?} in:\n{stderr}"
    );
    assert!(out.stdout.is_empty(), "nothing on stdout when failing");
}

#[test]
fn help_lists_the_commands() {
    let out = orrery().args(["inference", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["key", "models", "usage", "earnings"] {
        assert!(help.contains(cmd), "{cmd} missing from:\n{help}");
    }
    let out = orrery()
        .args(["inference", "key", "create", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--limit") && help.contains("--deposit") && help.contains("--out"));
}

#[test]
fn bad_arguments_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.key");
    let missing = missing.to_str().unwrap();
    fails_with(&["inference", "key", "create"], "--limit");
    fails_with(
        &[
            "inference",
            "key",
            "create",
            "--limit",
            "0",
            "--key",
            missing,
        ],
        "--limit is 0",
    );
    fails_with(
        &[
            "inference",
            "key",
            "create",
            "--limit",
            "5",
            "--deposit",
            "10",
            "--key",
            missing,
        ],
        "more than --limit",
    );
    fails_with(
        &[
            "inference",
            "key",
            "create",
            "--limit",
            "5",
            "--key",
            missing,
        ],
        "cannot read key file",
    );
    fails_with(&["inference", "key", "create", "--limit", "abc"], "abc");
    fails_with(
        &["inference", "key", "show", "garbage"],
        "neither an API key",
    );
    fails_with(
        &[
            "inference",
            "key",
            "fund",
            "sk-orr-00",
            "1",
            "--key",
            missing,
        ],
        "not an Orrery API key",
    );
    let key = ApiKey::from_secret(&[3; 32]).unwrap().to_text();
    fails_with(
        &["inference", "key", "fund", &key, "0", "--key", missing],
        "amount to add is 0",
    );
}

#[test]
fn a_key_created_on_a_local_network_is_printed_saved_paid_for_funded_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let base = 14_000 + (std::process::id() % 500) as u16 * 20;
    let (mut children, apis, faucet) = start_validators(dir.path(), base, |_| {});
    let saved = dir.path().join("api.key");
    let before = support::client(&apis[0])
        .account(&faucet.account())
        .unwrap()
        .balance;
    let out = orrery()
        .args([
            "inference",
            "key",
            "create",
            "--limit",
            "50",
            "--deposit",
            "20",
        ])
        .arg("--key")
        .arg(dir.path().join("faucet.key"))
        .args(["--node", &apis[0], "--out"])
        .arg(&saved)
        .output()
        .unwrap();
    let after = support::client(&apis[0])
        .account(&faucet.account())
        .unwrap()
        .balance;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let line = stdout.strip_suffix('\n').expect("one line");
    // Fund, show, revoke, show again, through the same node.
    let faucet_key = dir.path().join("faucet.key");
    let wallet = |args: &[&str]| {
        let mut cmd = orrery();
        cmd.args(["inference", "key"]).args(args);
        cmd.arg("--key").arg(&faucet_key).args(["--node", &apis[0]]);
        support::run_ok(&mut cmd)
    };
    wallet(&["fund", line, "5"]);
    let show = |args: &[&str]| {
        support::run_ok(
            orrery()
                .args(["inference", "key", "show"])
                .args(args)
                .args(["--node", &apis[0]]),
        )
    };
    let shown = show(&[line]);
    assert!(shown.contains("limit       50"), "{shown}");
    assert!(shown.contains("deposit     25"), "{shown}");
    assert!(shown.contains("revoked     no"), "{shown}");
    wallet(&["revoke", line]);
    let id = ApiKey::parse(line).unwrap().id().to_string();
    let shown = show(&[&id]);
    assert!(shown.contains("revoked     at height"), "{shown}");
    kill_all(&mut children);
    assert!(!line.contains('\n'), "the key alone on stdout: {stdout:?}");
    let key = ApiKey::parse(line).expect("an sk-orr- key");
    assert!(stderr.contains(&key.id().to_string()), "{stderr}");
    let on_disk = std::fs::read_to_string(&saved).unwrap();
    assert_eq!(on_disk.trim(), line);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&saved).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "readable by others: {mode:o}");
    }
    let spent = before.checked_sub(after).unwrap();
    assert!(
        spent >= Amount::orr(20),
        "the deposit left the wallet: {spent}"
    );
}
