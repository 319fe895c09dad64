//! The README's main command, end to end: `orrery devnet --json` runs real wasm and ML jobs on
//! four validator processes and provider agents, catches and slashes the cheater, refunds its
//! requester, mints the epoch's emission and keeps the supply invariant. While it keeps running,
//! a requester submits a job with `orrery job submit --watch` and gets its result, and bad
//! requests are refused naming the problem.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn orrery() -> Command {
    Command::new(env!("CARGO_BIN_EXE_orrery"))
}

struct Devnet(std::process::Child);

impl Drop for Devnet {
    fn drop(&mut self) {
        // Ctrl-C lets the devnet stop its validator processes; kill it only if it does not.
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        for _ in 0..100 {
            if self.0.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_devnet_settles_real_jobs_slashes_the_cheater_and_serves_requesters() {
    let dir = tempfile::tempdir().unwrap();
    let net_dir = dir.path().join("net");
    // Below the kernel's ephemeral range (32768 and up), where outgoing connections take ports.
    // p2p base…+3, API base+5…+8, inference serving base+10…+13.
    let base = 28_000 + (std::process::id() % 200) as u16 * 20;
    let api = format!("http://127.0.0.1:{}", base + 5);
    let mut child = orrery()
        .args(["devnet", "--json", "--dir"])
        .arg(&net_dir)
        .args(["--p2p-port", &base.to_string()])
        .args(["--api-port", &(base + 5).to_string()])
        .args(["--serve-port", &(base + 10).to_string()])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.path().join("devnet.stderr")).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let devnet = Devnet(child);
    // What the devnet said, for a failure message: its stderr and its own log.
    let said = || {
        let read = |p: std::path::PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        format!(
            "stderr:\n{}\nlogs/devnet.log:\n{}",
            read(dir.path().join("devnet.stderr")),
            read(net_dir.join("logs/devnet.log"))
        )
    };
    let mut json = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if line.starts_with("the devnet keeps running") {
            break;
        }
        json.push_str(&line);
        json.push('\n');
    }
    let s: serde_json::Value = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("summary is not JSON ({e}): {json}\n{}", said()));
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
    let timed = s["submit_to_settled_seconds"].as_f64().unwrap();
    assert!(timed > 0.0 && timed < 60.0, "{s}");
    let leases = s["leases"].as_array().unwrap();
    assert!(
        leases
            .iter()
            .any(|l| l["job"] == "spirals-mlp" && l["state"] == "settled"),
        "the ML job settled: {s}"
    );

    // A requester's job through the CLI, on the running network.
    let key = net_dir.join("faucet.key");
    let request = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../workloads/requests/pi.toml"
    );
    let out = orrery()
        .args(["job", "submit", request, "--watch", "--key"])
        .arg(&key)
        .args(["--node", &api])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("is settled"), "{text}");
    // Piped, not a terminal: each state change is still a plain line (`  1.2 s  running`),
    // from the first state seen to `settled`.
    let states: Vec<&str> = text
        .lines()
        .filter_map(|l| {
            let (seconds, state) = l.trim_start().split_once(" s  ")?;
            seconds.parse::<f64>().ok().map(|_| state)
        })
        .collect();
    assert!(states.len() >= 2, "no state lines while watching: {text}");
    assert_eq!(states.last(), Some(&"settled"), "{text}");
    let lease = text
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_end_matches(':')
        .to_string();
    let result = orrery()
        .args(["job", "result", &lease, "--node", &api, "--out"])
        .arg(dir.path().join("pi.out"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&result.stdout);
    assert!(result.status.success(), "{text}");
    assert!(
        text.contains("open_lease") && text.contains("commit_result"),
        "{text}"
    );
    // The π stepper's output: an f64 close to π.
    let bytes = std::fs::read(dir.path().join("pi.out")).unwrap();
    let pi = f64::from_le_bytes(bytes[..8].try_into().unwrap());
    assert!((pi - std::f64::consts::PI).abs() < 1e-3, "{pi}");

    // Bad requests: each refused with the reason.
    let bad = |body: &str, expect: &str| {
        let path = dir.path().join("bad.toml");
        std::fs::write(
            &path,
            format!(
                "bundle = \"{}\"\n{body}",
                request.replace("requests/pi.toml", "wasm/pi/job.toml")
            ),
        )
        .unwrap();
        let out = orrery()
            .args(["job", "submit"])
            .arg(&path)
            .arg("--key")
            .arg(&key)
            .args(["--node", &api])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(err.contains(expect), "expected {expect:?} in: {err}");
    };
    bad("colour = \"red\"\n", "unknown field");
    bad("[requirements]\ngpus = 8\n", "8 GPUs");
    bad("[requirements]\nmax_cost = \"0.000001\"\n", "cheapest");

    the_official_openai_client_is_served(&api, &key, dir.path());
    drop(devnet);
}

/// The `openai` Python client to run (`$ORRERY_OPENAI_PYTHON`, else `.ci/run`'s venv), or
/// `None` when it is missing and `ORRERY_E2E` is not set (then the check says "skipped").
fn openai_python() -> Option<std::path::PathBuf> {
    let venv = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../target/openai-venv/bin/python"
    );
    let python = std::env::var_os("ORRERY_OPENAI_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| venv.into());
    let has_openai = Command::new(&python)
        .args(["-c", "import openai"])
        .status()
        .is_ok_and(|s| s.success());
    if has_openai {
        return Some(python);
    }
    assert!(
        std::env::var("ORRERY_E2E").as_deref() != Ok("1"),
        "ORRERY_E2E=1 but {} cannot import openai: install it (.ci/run makes the venv from \
         crates/orrery-cli/tests/openai/requirements.txt) or name it with ORRERY_OPENAI_PYTHON",
        python.display()
    );
    eprintln!("skipped: the openai Python client check (no openai package; see .ci/run)");
    None
}

/// A key made with `orrery inference key create`, then the official `openai` client, pointed
/// at the node's `/v1`, gets a chat completion, a streamed completion and embeddings, and
/// OpenAI-shaped errors (tests/openai/client_test.py).
fn the_official_openai_client_is_served(
    api: &str,
    wallet: &std::path::Path,
    dir: &std::path::Path,
) {
    let Some(python) = openai_python() else {
        return;
    };
    let out = orrery()
        .args([
            "inference",
            "key",
            "create",
            "--limit",
            "50",
            "--deposit",
            "50",
            "--key",
        ])
        .arg(wallet)
        .args(["--node", api])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = text
        .lines()
        .find(|l| l.starts_with("sk-"))
        .unwrap_or_else(|| panic!("no key on a line of its own: {text}"))
        .trim()
        .to_string();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openai/client_test.py");
    let out = Command::new(python)
        .arg(script)
        .env("ORRERY_BASE_URL", format!("{api}/v1"))
        .env("ORRERY_API_KEY", &key)
        .env(
            "ORRERY_EMBED_MODEL",
            // The devnet serves embeddings only where the model is on the machine.
            orrery_ml::infer::files::reference_model_for_tests("all-minilm-l6-v2")
                .map_or("", |_| "all-minilm-l6-v2"),
        )
        .current_dir(dir)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "the openai client failed:\n{said}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for check in [
        "chat",
        "stream",
        "embeddings",
        "unknown_model",
        "unknown_key",
        "done",
    ] {
        assert!(
            said.contains(&format!("\"check\": \"{check}\"")),
            "{check} missing from: {said}"
        );
    }
}

/// Bad input that needs no network is refused before any is used (the node address is
/// unreachable on purpose), each error naming the problem: an unknown key in the job file
/// itself (not only in the request), and a provider config without a stake (naming the
/// minimum for the offered hardware).
#[test]
fn bad_job_files_and_provider_configs_are_refused_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = "http://127.0.0.1:9";
    let pi = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../workloads/wasm/pi/pi.wat"
    );
    std::fs::copy(pi, dir.path().join("pi.wat")).unwrap();
    std::fs::write(
        dir.path().join("job.toml"),
        "module = \"pi.wat\"\nruntime = \"wasm\"\nsteps = 4\nstesp = 5\n[wasm]\nentry = \"stepper\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("request.toml"), "bundle = \"job.toml\"\n").unwrap();
    let key = dir.path().join("requester.key");
    std::fs::write(&key, format!("{}\n", "11".repeat(32))).unwrap();
    let out = orrery()
        .args(["job", "submit"])
        .arg(dir.path().join("request.toml"))
        .arg("--key")
        .arg(&key)
        .args(["--node", nowhere])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("unknown field") && err.contains("stesp"),
        "{err}"
    );

    let config = dir.path().join("provider.toml");
    std::fs::write(
        &config,
        format!(
            "node = \"{nowhere}\"\nkey_seed = 5\ndata_dir = \"{}\"\nregion = \"eu-west\"\n\
             [prices]\ngpu_hour = \"0\"\ncpu_core_hour = \"0.05\"\nram_gib_hour = \"0\"\n\
             mega_unit = \"0.001\"\n[hardware]\ncpu_cores = 2\nram_gib = 4\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let out = orrery()
        .args(["provider", "run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    // 100 ORR base + 10 per core offered.
    assert!(
        err.contains("no stake configured") && err.contains("at least 120 ORR"),
        "{err}"
    );
}
