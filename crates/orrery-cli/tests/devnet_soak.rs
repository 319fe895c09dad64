//! The promise, guarded: `orrery devnet --exit-when-done --json`, run after run, never slashes
//! or docks an honest provider and settles every honest job — also when a validator and an
//! agent are killed with SIGKILL in the middle of the run.
//!
//! Every check is the devnet's own (`summary.json`'s `problems`, see `cmd/devnet/report.rs`):
//! each honest provider's stake is exactly what it bonded and its balance, to the unit, what
//! it started with less that stake plus what it earned, was minted and was rewarded. This test
//! reads the summary back and asserts the same facts independently of the report's verdict.
//!
//! `ORRERY_SOAK_RUNS` sets the number of consecutive runs (default 3; README records a 50-run
//! soak done by hand with a release build).

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The devnet and everything it started, in its own process group, stopped when dropped.
struct Devnet(Child);

impl Drop for Devnet {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-INT", "--", &group]).status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if self.0.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.0.wait();
    }
}

fn start_devnet(dir: &Path, slot: u16, extra: &[&str]) -> Devnet {
    // p2p base…+3, API base+5…+8, inference serving base+10…+13, cluster p2p base+15…+18.
    let base = 20_000 + (std::process::id() % 300) as u16 * 40 + slot * 20;
    let child = Command::new(env!("CARGO_BIN_EXE_orrery"))
        .args(["devnet", "--exit-when-done", "--json", "--dir"])
        .arg(dir)
        .args(["--p2p-port", &base.to_string()])
        .args(["--api-port", &(base + 5).to_string()])
        .args(["--serve-port", &(base + 10).to_string()])
        .args(["--cluster-port", &(base + 15).to_string()])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.with_extension("stderr")).expect("a log file"))
        .process_group(0)
        .spawn()
        .expect("orrery devnet starts");
    Devnet(child)
}

/// Wait for the devnet to exit; returns its exit status and `summary.json`.
fn finish(mut devnet: Devnet, dir: &Path) -> (std::process::ExitStatus, serde_json::Value) {
    let start = Instant::now();
    let status = loop {
        if let Some(s) = devnet.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(400),
            "the devnet never finished"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let text = std::fs::read_to_string(dir.join("summary.json")).unwrap_or_else(|e| {
        let log = std::fs::read_to_string(dir.join("logs/devnet.log")).unwrap_or_default();
        panic!("no summary.json ({e}); devnet.log:\n{log}")
    });
    (
        status,
        serde_json::from_str(&text).expect("summary.json is JSON"),
    )
}

/// The promise, asserted from the summary itself.
fn assert_promise_kept(s: &serde_json::Value, run: usize) {
    let problems = s["problems"].as_array().expect("problems");
    assert!(problems.is_empty(), "run {run}: {problems:#?}\n{s:#}");
    assert_eq!(s["honest_slashed"], 0, "run {run}: {s:#}");
    assert_eq!(s["honest_docked"], 0, "run {run}: {s:#}");
    assert_eq!(s["timed_out"], 0, "run {run}: {s:#}");
    assert_eq!(s["cheaters_slashed"], s["cheaters"], "run {run}: {s:#}");
    assert_eq!(s["supply_invariant_held"], true, "run {run}");
    let providers = s["providers"].as_array().expect("providers");
    let honest: Vec<&str> = providers
        .iter()
        .filter(|p| p["honest"] == true)
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(!honest.is_empty());
    for p in providers.iter().filter(|p| p["honest"] == true) {
        assert_eq!(p["stake"], "500 ORR", "run {run}: {p:#}");
        assert_eq!(
            p["penalties"].as_array().unwrap().len(),
            0,
            "run {run}: {p:#}"
        );
    }
    for l in s["leases"].as_array().unwrap() {
        if honest.contains(&l["provider"].as_str().unwrap()) {
            assert_eq!(l["state"], "settled", "run {run}: an honest job: {l:#}");
        }
    }
}

#[test]
fn the_devnet_keeps_its_promise_run_after_run() {
    let runs: usize = std::env::var("ORRERY_SOAK_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    for run in 0..runs {
        let dir = tempfile::tempdir().unwrap();
        let net = dir.path().join("net");
        let devnet = start_devnet(&net, 0, &[]);
        let (status, s) = finish(devnet, &net);
        if !status.success() {
            eprintln!("{}", logs(&net));
        }
        assert_promise_kept(&s, run);
        assert!(status.success(), "run {run}: {status}\n{s:#}");
        // Diagnosable: every process logged to its own file.
        for name in [
            "devnet",
            "validator-0",
            "validator-3",
            "provider-0",
            "provider-3",
        ] {
            let log = net.join("logs").join(format!("{name}.log"));
            assert!(log.exists(), "run {run}: no {}", log.display());
        }
        eprintln!("run {run}: height {}, {} s", s["height"], s["seconds"]);
    }
}

/// The devnet's own log and the end of every other process's log, for a failure message.
fn logs(net: &Path) -> String {
    let mut out = format!(
        "==> the devnet's stderr <==\n{}\n",
        std::fs::read_to_string(net.with_extension("stderr")).unwrap_or_default()
    );
    let Ok(entries) = std::fs::read_dir(net.join("logs")) else {
        return "no logs".into();
    };
    for e in entries.flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let keep = if e.file_name() == "devnet.log" {
            200
        } else {
            15
        };
        out.push_str(&format!("==> {} <==\n", e.path().display()));
        for l in &lines[lines.len().saturating_sub(keep)..] {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

fn pid_of(dir: &Path, name: &str) -> Option<u32> {
    let text = std::fs::read_to_string(dir.join("processes.json")).ok()?;
    let pids: std::collections::BTreeMap<String, u32> = serde_json::from_str(&text).ok()?;
    pids.get(name).copied()
}

/// `kill -9` of validator 0 (the requester's first node and provider 0's) once leases are
/// open, then of provider 1's agent: both are restarted and reported, the three other
/// validators keep finalizing, and every honest party ends whole.
#[test]
fn a_killed_validator_and_agent_are_restarted_and_nobody_honest_loses() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net");
    // No cluster job here: provider 1 would be one of its workers, and a cluster worker that
    // dies mid-lease is dropped and docked by design (issue 15: "the dropped worker is
    // docked"; an agent that restarts cannot rejoin yet). That case has its own test, with
    // its docking and billing checked to the unit: the devnet test's killed cluster worker.
    // This test's promise is about everything else.
    let devnet = start_devnet(&net, 1, &["--cluster-workers", "0"]);
    let log = net.join("logs/devnet.log");
    let start = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("lease #3")
    {
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "no lease opened"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for victim in ["validator-0", "provider-1"] {
        let pid = pid_of(&net, victim).expect("the devnet lists its processes");
        let ok = Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap();
        assert!(
            ok.success(),
            "{victim} ({pid}) was not running:\n{}",
            logs(&net)
        );
        std::thread::sleep(Duration::from_millis(1_500));
    }
    let (status, s) = finish(devnet, &net);
    if !status.success() {
        eprintln!("{}", logs(&net));
    }
    assert_promise_kept(&s, 0);
    assert!(status.success(), "{status}\n{s:#}");
    let incidents = s["incidents"].as_array().unwrap();
    for victim in ["validator-0", "provider-1"] {
        assert!(
            incidents.iter().any(|i| i["process"] == victim
                && i["action"] == "restarted"
                && i["what"].as_str().unwrap().contains("9")),
            "{victim} not reported restarted: {incidents:#?}"
        );
    }
}
