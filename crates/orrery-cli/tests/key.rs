//! `orrery key`: keys are created once, read back, and bad key files are clear errors.

use std::process::Command;

fn orrery() -> Command {
    Command::new(env!("CARGO_BIN_EXE_orrery"))
}

#[test]
fn a_new_key_reads_back_and_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    let new = orrery()
        .args(["key", "new", "--key"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        new.status.success(),
        "{}",
        String::from_utf8_lossy(&new.stderr)
    );
    let id = String::from_utf8(new.stdout).unwrap();
    assert!(id.starts_with("orr"), "{id}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the key file is readable by others: {mode:o}"
        );
    }
    let show = orrery()
        .args(["key", "show", "--key"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(show.stdout).unwrap(), id);
    let again = orrery()
        .args(["key", "new", "--key"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("must not exist"));
    let show = orrery()
        .args(["key", "show", "--key"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(show.stdout).unwrap(), id, "unchanged");
}

#[test]
fn a_file_that_is_not_a_key_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    std::fs::write(&path, "not hex at all\n").unwrap();
    let out = orrery()
        .args(["key", "show", "--key"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("64 hex characters"));
    let missing = orrery()
        .args(["key", "show", "--key"])
        .arg(dir.path().join("absent"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&missing.stderr).contains("orrery key new"));
}
