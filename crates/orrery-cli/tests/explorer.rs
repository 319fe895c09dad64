//! The explorer in a real browser: `orrery devnet --cheaters 1` settles its jobs and slashes
//! the cheater, then `e2e/explorer.mjs` drives headless Chromium (Debian's `chromium`, through
//! playwright-core) over the first validator's explorer: the overview, a settled job's
//! evidence, the dispute and the slashed cheater, search messages, a phone-sized screen, and
//! each page's load time. Screenshots go to `target/explorer-screenshots/`.
//!
//! Needs `chromium` and `npm ci --prefix e2e`. Without them the test says "skipped" loudly and
//! passes, unless `ORRERY_E2E=1` (as `.ci/run` sets), where it fails naming what to install.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The devnet and everything it started, in its own process group: stopped with Ctrl-C
/// (which stops its validators), then killed as a group if it lingers — also when the test
/// fails halfway.
struct Devnet(std::process::Child);

impl Drop for Devnet {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-INT", "--", &group]).status();
        for _ in 0..100 {
            if self.0.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.0.wait();
    }
}

/// What is missing to run the browser test, if anything.
fn missing() -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!(
            "{chromium} is missing: install Debian's chromium (`sudo apt-get install -y chromium`)"
        ));
    }
    if !repo().join("e2e/node_modules/playwright-core").exists() {
        return Some(
            "e2e/node_modules is missing: run `npm ci --prefix e2e` (needs Node.js 20+)".into(),
        );
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("node is missing: install Node.js 20 or later".into());
    }
    None
}

#[test]
fn the_explorer_shows_the_devnet_in_a_browser() {
    if let Some(what) = missing() {
        if std::env::var("ORRERY_E2E").as_deref() == Ok("1") {
            panic!("ORRERY_E2E=1 but the explorer's browser test cannot run: {what}");
        }
        eprintln!("\n*** skipped: the explorer's browser test: {what} ***\n");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let net_dir = dir.path().join("net");
    // Away from the devnet test's ports (30000 + …), so both can run on one machine.
    let base = 40_000 + (std::process::id() % 2_000) as u16 * 10;
    let api = format!("http://127.0.0.1:{}", base + 5);
    let log = std::fs::File::create(dir.path().join("devnet.log")).expect("log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_orrery"))
        .args(["devnet", "--json", "--cheaters", "1", "--dir"])
        .arg(&net_dir)
        .args(["--p2p-port", &base.to_string()])
        .args(["--api-port", &(base + 5).to_string()])
        .stdout(Stdio::piped())
        .stderr(log)
        .process_group(0)
        .spawn()
        .expect("orrery devnet starts");
    let stdout = child.stdout.take().expect("stdout");
    let devnet = Devnet(child);

    // The summary is printed once every job is final and the epoch's emission minted.
    let mut json = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("devnet output");
        if line.starts_with("the devnet keeps running") {
            break;
        }
        json.push_str(&line);
        json.push('\n');
    }
    let log = || std::fs::read_to_string(dir.path().join("devnet.log")).unwrap_or_default();
    let s: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| {
        let log = log();
        let tail = &log[log.len().saturating_sub(3_000)..];
        panic!("the devnet printed no summary ({e}): {json}\n{tail}")
    });
    assert!(s["settled"].as_u64().unwrap_or(0) >= 1, "{s}");
    assert_eq!(s["cheaters_slashed"], 1, "{s}");

    let shots = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"))
        .join("explorer-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    let t = std::time::Instant::now();
    let out = Command::new("node")
        .arg(repo().join("e2e/explorer.mjs"))
        .arg(&api)
        .arg(&shots)
        .output()
        .expect("node runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}browser run: {:.1} s", t.elapsed().as_secs_f64());
    assert!(
        out.status.success(),
        "the explorer's browser test failed:\n{text}"
    );
    assert!(shots.join("01-overview.png").exists(), "{text}");
    drop(devnet);
}
