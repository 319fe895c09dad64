//! The README's main command, end to end: `orrery devnet --json` runs real wasm and ML jobs on
//! four validator processes and provider agents, trains one model on three of them as a
//! cluster job, catches and slashes the cheater, refunds its requester, mints the epoch's
//! emission and keeps the supply invariant. While it keeps running,
//! a requester submits a job with `orrery job submit --watch` and gets its result, and bad
//! requests are refused naming the problem, and a cluster job survives one worker's agent being
//! SIGKILLed, billing only the rounds completed.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn orrery() -> Command {
    Command::new(env!("CARGO_BIN_EXE_orrery"))
}

/// Run `cmd` to the end and return its stdout; fails the test, with both outputs, unless it
/// succeeded.
fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
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
    // p2p base…+3, API base+5…+8, inference serving base+10…+13, cluster p2p base+15…+18.
    let base = 28_000 + (std::process::id() % 200) as u16 * 20;
    let api = format!("http://127.0.0.1:{}", base + 5);
    let mut child = orrery()
        .args(["devnet", "--json", "--dir"])
        .arg(&net_dir)
        .args(["--p2p-port", &base.to_string()])
        .args(["--api-port", &(base + 5).to_string()])
        .args(["--serve-port", &(base + 10).to_string()])
        .args(["--cluster-port", &(base + 15).to_string()])
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
    // The cluster job: three workers trained one model over p2p, every round committed on
    // chain; the summary reads it back from the chain.
    let c = &s["cluster"];
    assert_eq!(c["phase"], "finished", "{s}");
    assert_eq!(c["workers"].as_array().map(Vec::len), Some(3), "{s}");
    assert_eq!(c["rounds_completed"], c["rounds"], "{s}");
    assert!(c["rounds"].as_u64().unwrap() >= 2, "{s}");
    let rounds = c["rounds"].as_u64().unwrap();
    for paid in c["rounds_paid"].as_array().unwrap() {
        assert_eq!(
            paid.as_u64(),
            Some(rounds),
            "every worker paid every round: {s}"
        );
    }
    assert_eq!(c["dropped"].as_array().map(Vec::len), Some(0), "{s}");
    assert_eq!(c["refunded"], "0 ORR", "{s}");
    let (first, last) = (
        c["first_loss"].as_f64().unwrap(),
        c["final_loss"].as_f64().unwrap(),
    );
    assert!(last.is_finite() && last < first, "it trained: {s}");
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
    let text = stdout_of(
        orrery()
            .args(["job", "submit", request, "--watch", "--key"])
            .arg(&key)
            .args(["--node", &api]),
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
    a_killed_cluster_worker_is_dropped_and_only_completed_rounds_are_billed(
        &api, &key, &net_dir, &s,
    );
    drop(devnet);
}

/// Seconds the killed-worker run may take: 6 rounds, one of them waiting out its deadline.
const CLUSTER_RUN_LIMIT: std::time::Duration = std::time::Duration::from_secs(240);

/// A cluster request through `orrery job submit` (the `workloads/requests/cluster-lm.toml`
/// job: 3 workers, 6 rounds), whose last worker's agent process is SIGKILLed once round 2 is
/// open. The other two complete every round without it; the chain drops and docks the dead
/// member, pays it exactly for the rounds it committed, and returns to the requester, to the
/// unit, the pay of every worker-round nobody completed.
fn a_killed_cluster_worker_is_dropped_and_only_completed_rounds_are_billed(
    api: &str,
    wallet: &std::path::Path,
    net_dir: &std::path::Path,
    summary: &serde_json::Value,
) {
    use orrery_types::amount::Amount;
    let request = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../workloads/requests/cluster-lm.toml"
    );
    let text = stdout_of(
        orrery()
            .args(["job", "submit", request, "--key"])
            .arg(wallet)
            .args(["--node", api]),
    );
    // "cluster lease 12: job … → 3 workers, 0.0008 ORR locked" and "  worker 2: orr…".
    let first = text
        .lines()
        .find(|l| l.starts_with("cluster lease "))
        .unwrap();
    let lease: u64 = first
        .split_whitespace()
        .nth(2)
        .unwrap()
        .trim_end_matches(':')
        .parse()
        .unwrap();
    let locked: Amount = first
        .rsplit_once(", ")
        .and_then(|(_, l)| l.strip_suffix(" locked"))
        .and_then(|l| serde_json::from_value(serde_json::json!(l)).ok())
        .unwrap_or_else(|| panic!("no escrow in: {text}"));
    let victim = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("worker 2: "))
        .unwrap_or_else(|| panic!("no worker 2 in: {text}"))
        .to_string();
    let name = summary["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["account"] == victim.as_str())
        .and_then(|p| p["name"].as_str())
        .unwrap_or_else(|| panic!("worker 2 ({victim}) is no devnet provider: {summary}"))
        .to_string();
    let client = orrery_client::Client::new(api);
    let read = || client.cluster_lease(lease).unwrap().unwrap();
    let wait = |what: &str, ok: &dyn Fn(&serde_json::Value) -> bool| {
        let start = std::time::Instant::now();
        loop {
            let v = read();
            if ok(&v) {
                return v;
            }
            assert!(start.elapsed() < CLUSTER_RUN_LIMIT, "{what}: {v:#}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    wait("round 2 never opened", &|v| {
        v["lease"]["round"].as_u64() >= Some(2)
    });
    let pids: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(net_dir.join("processes.json")).unwrap())
            .unwrap();
    let pid = pids[&name]
        .as_u64()
        .unwrap_or_else(|| panic!("no pid for {name}: {pids}"));
    let killed = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success(), "kill -9 {pid} ({name})");
    let v = wait("the lease never finished", &|v| {
        v["lease"]["phase"] == "finished"
    });
    let l = &v["lease"];
    let rounds = l["rounds"].as_u64().unwrap();
    let members = l["members"].as_array().unwrap();
    let committed = |who: &str| {
        v["rounds"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| {
                r["commits"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|c| c["worker"] == who)
            })
            .count() as u64
    };
    let mut paid_rounds = 0;
    for m in members {
        let who = m["provider"].as_str().unwrap();
        let paid = m["rounds_paid"].as_u64().unwrap();
        assert_eq!(
            paid,
            committed(who),
            "paid exactly for its committed rounds: {v:#}"
        );
        paid_rounds += paid;
        if who == victim {
            assert_eq!(m["status"], "dropped", "{v:#}");
            assert_ne!(
                m["docked"], "0 ORR",
                "docked for the round it missed: {v:#}"
            );
            assert!(
                (2..rounds).contains(&paid),
                "alive through round 1, dead before the end: {v:#}"
            );
        } else {
            assert_eq!(m["status"], "live", "{v:#}");
            assert_eq!(paid, rounds, "the survivors complete every round: {v:#}");
        }
    }
    // Every round completed with the survivors.
    for r in v["rounds"].as_array().unwrap() {
        assert!(r["closed_at"].is_u64(), "{v:#}");
        assert!(r["commits"].as_array().unwrap().len() >= 2, "{v:#}");
    }
    // Billed only for completed worker-rounds, to the unit: the refund is the locked escrow's
    // share of the worker-rounds nobody completed.
    let refunded: Amount = serde_json::from_value(l["refunded"].clone()).unwrap();
    let worker_rounds = rounds * members.len() as u64;
    assert_eq!(
        u128::from(worker_rounds) * refunded.units(),
        u128::from(worker_rounds - paid_rounds) * locked.units(),
        "refunded {refunded} of {locked} with {paid_rounds} of {worker_rounds} worker-rounds paid: {v:#}"
    );
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
    let text = stdout_of(
        orrery()
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
            .args(["--node", api]),
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

    // A cluster worker's config: a port peers can dial, and an endpoint whose host they can.
    let cluster = |endpoint: &str, table: &str, expect: &str| {
        let path = dir.path().join("cluster.toml");
        std::fs::write(
            &path,
            format!(
                "node = \"{nowhere}\"\nkey_seed = 5\ndata_dir = \"{}\"\nregion = \"eu-west\"\n\
                 stake = \"200\"\nendpoint = \"{endpoint}\"\n\
                 [prices]\ngpu_hour = \"0\"\ncpu_core_hour = \"0.05\"\nram_gib_hour = \"0\"\n\
                 mega_unit = \"0.001\"\n[hardware]\ncpu_cores = 2\nram_gib = 4\n[cluster]\n{table}",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let out = orrery()
            .args(["provider", "run", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(err.contains(expect), "expected {expect:?} in: {err}");
    };
    cluster(
        "http://127.0.0.1:7100",
        "port = 0\n",
        "[cluster] port must be 1 to 65535",
    );
    cluster(
        "http://127.0.0.1:7100",
        "port = 7300\nround_timeout_ms = 5\n",
        "round_timeout_ms must be 100 to 600000",
    );
    cluster(
        "127.0.0.1:7100",
        "port = 7300\n",
        "needs an `endpoint` whose host peers can dial",
    );
}
