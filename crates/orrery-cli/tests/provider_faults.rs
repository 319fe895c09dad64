//! A provider killed in the middle of a job, with real processes: four validators
//! (`orrery node run`), one `orrery provider run` agent (a config file and a data folder) and a
//! requester using `orrery job submit`.
//!
//! - Killed (SIGKILL) after `StartLease` and a saved snapshot, and never restarted: the lease
//!   times out at its deadline, the requester gets its whole escrow back, and the provider's
//!   reputation counts the timeout.
//! - Killed and restarted on the same data folder: the agent resumes from its last snapshot
//!   (not from step 0) and the lease settles with the output a local run gives.
//! - A bundle over the node's blob limit is refused by `orrery job submit` naming the limit.
//! - A job that loops forever (the requester's doing) is run once, committed as a failure
//!   claim and settled: the provider is paid for the fuel it burned and not docked, the
//!   requester gets the rest of its escrow back.

mod support;

use orrery_client::Client;
use orrery_types::amount::Amount;
use orrery_types::crypto::{AccountId, Keypair};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;
use support::{
    client, kill_all, orrery, run_ok, start_provider, start_validators, transfer, wait_until,
};

/// The provider's devnet key.
const PROVIDER_SEED: u64 = 4_242;
/// Steps between two snapshots of the provider's run (each π step is about 5 ms).
const SAVE_EVERY: u64 = 50;
/// Fuel per call of the looping job: the devnet report's 2·10^8.
const LOOP_FUEL: u64 = 200_000_000;
/// The node 0's blob limit in these tests: small, so that an oversized bundle is cheap to make.
const BLOB_LIMIT: u64 = 256 * 1024;

/// Four validators on loopback, a provider process, and their folders. Every process is
/// killed when it is dropped.
struct Net {
    dir: tempfile::TempDir,
    api: String,
    validators: Vec<Child>,
    provider: Option<Child>,
    faucet: Keypair,
}

impl Drop for Net {
    fn drop(&mut self) {
        kill_all(self.validators.iter_mut().chain(self.provider.as_mut()));
    }
}

impl Net {
    /// Start four validators (ports from `slot`) with node 0's blob limit lowered, and fund
    /// the provider's account from the faucet.
    fn start(slot: u16) -> Net {
        let dir = tempfile::tempdir().unwrap();
        // Ports unlikely to collide with the other network tests (which run alone anyway).
        let base = 10_000 + (std::process::id() % 900) as u16 * 20 + slot * 10;
        let (validators, apis, faucet) = start_validators(dir.path(), base, |dir| {
            let node0 = dir.join("validator-0/node.toml");
            let mut config: toml::Table = std::fs::read_to_string(&node0).unwrap().parse().unwrap();
            config
                .entry("blobs")
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .unwrap()
                .insert(
                    "max_blob_bytes".into(),
                    toml::Value::Integer(BLOB_LIMIT as i64),
                );
            std::fs::write(&node0, toml::to_string(&config).unwrap()).unwrap();
        });
        let net = Net {
            api: apis[0].clone(),
            dir,
            validators,
            provider: None,
            faucet,
        };
        net.transfer(provider_account(), Amount::orr(1_000));
        net
    }

    fn client(&self) -> Client {
        client(&self.api)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn transfer(&self, to: AccountId, amount: Amount) {
        transfer(&self.client(), &self.faucet, to, amount);
    }

    fn balance(&self, who: &AccountId) -> Amount {
        self.client().account(who).unwrap().balance
    }

    /// Start `orrery provider run` (its log appended to `provider.log`) and wait until it is
    /// registered and bonded.
    fn start_provider(&mut self) {
        let extra = format!("save_every_steps = {SAVE_EVERY}");
        self.provider = Some(start_provider(
            self.dir.path(),
            &self.api,
            PROVIDER_SEED,
            &extra,
        ));
    }

    /// SIGKILL the provider process: no snapshot on the way out, no goodbye to the chain.
    fn kill_provider(&mut self) {
        let mut p = self.provider.take().expect("a provider is running");
        p.kill().unwrap();
        p.wait().unwrap();
    }

    /// The provider's log, without the terminal colour codes `tracing` writes.
    fn provider_log(&self) -> String {
        let text = std::fs::read_to_string(self.path("provider.log")).unwrap_or_default();
        let mut plain = String::with_capacity(text.len());
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                // ESC [ … m
                for d in chars.by_ref() {
                    if d == 'm' {
                        break;
                    }
                }
            } else {
                plain.push(c);
            }
        }
        plain
    }

    /// A π job of `steps` steps (about 5 ms each), and a request for it due `deadline_blocks`
    /// after it is opened, unchecked (the only provider cannot be checked by another).
    fn write_job(&self, steps: u64, deadline_blocks: u64) -> PathBuf {
        let job = self.path("job");
        std::fs::create_dir_all(&job).unwrap();
        let pi = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../workloads/wasm/pi/pi.wat"
        );
        std::fs::copy(pi, job.join("pi.wat")).unwrap();
        std::fs::write(
            job.join("job.toml"),
            format!(
                "module = \"pi.wat\"\nruntime = \"wasm\"\nname = \"pi, long\"\nsteps = {steps}\n\
                 [wasm]\nentry = \"stepper\"\n[limits]\nfuel_per_step = 200000000\n\
                 memory_bytes = 1048576\nmax_state_bytes = 1024\nmax_output_bytes = 1024\n"
            ),
        )
        .unwrap();
        let request = job.join("request.toml");
        std::fs::write(
            &request,
            format!(
                "bundle = \"job.toml\"\nverification = \"none\"\nmax_seconds = 600\n\
                 deadline_blocks = {deadline_blocks}\n[requirements]\ncpu_cores = 1\nram_gib = 1\n"
            ),
        )
        .unwrap();
        request
    }

    /// A WASI command that loops forever, with the devnet's limits (2·10^8 fuel, 10 s of wall
    /// time), unchecked and due `deadline_blocks` after it is opened.
    fn write_looping_job(&self, deadline_blocks: u64) -> PathBuf {
        let job = self.path("loop");
        std::fs::create_dir_all(&job).unwrap();
        std::fs::write(
            job.join("loop.wat"),
            r#"(module (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))"#,
        )
        .unwrap();
        std::fs::write(
            job.join("job.toml"),
            format!(
                "module = \"loop.wat\"\nruntime = \"wasm\"\nname = \"loops forever\"\nsteps = 1\n\
                 [wasm]\nentry = \"command\"\n[limits]\nfuel_per_step = {LOOP_FUEL}\n\
                 wall_time_ms = 10000\n"
            ),
        )
        .unwrap();
        let request = job.join("request.toml");
        std::fs::write(
            &request,
            format!(
                "bundle = \"job.toml\"\nverification = \"none\"\nmax_seconds = 600\n\
                 deadline_blocks = {deadline_blocks}\n[requirements]\ncpu_cores = 1\nram_gib = 1\n"
            ),
        )
        .unwrap();
        request
    }

    /// `orrery job submit` as the faucet; returns the lease id.
    fn submit(&self, request: &Path) -> u64 {
        let out = run_ok(
            orrery()
                .args(["job", "submit"])
                .arg(request)
                .arg("--key")
                .arg(self.path("faucet.key"))
                .args(["--node", &self.api]),
        );
        // "lease 3: job … → …"
        out.split_whitespace()
            .nth(1)
            .and_then(|w| w.trim_end_matches(':').parse().ok())
            .unwrap_or_else(|| panic!("no lease id in: {out}"))
    }

    fn lease_state(&self, lease: u64) -> String {
        self.client()
            .lease(lease)
            .ok()
            .flatten()
            .map(|l| l.state)
            .unwrap_or_default()
    }

    /// The provider's saved snapshot of `lease` (the step it reached), if any.
    fn saved_step(&self, lease: u64) -> Option<u64> {
        let path = self
            .path("provider-data")
            .join(format!("leases/{lease}/progress.json"));
        let p: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
        p["k"].as_u64()
    }
}

fn provider_account() -> AccountId {
    Keypair::from_seed(PROVIDER_SEED).account()
}

/// Wait until the provider has started `lease` and saved a snapshot at step `at_least` or
/// later; returns that step.
fn wait_for_snapshot(net: &Net, lease: u64, at_least: u64) -> u64 {
    let mut step = 0;
    wait_until(
        "the provider running the job with a saved snapshot",
        Duration::from_secs(60),
        || {
            step = net.saved_step(lease).unwrap_or(0);
            net.lease_state(lease) == "running" && step >= at_least
        },
    );
    step
}

/// A request whose bundle is twice the node's blob limit: `orrery job submit` refuses it,
/// saying it is too large and what the limit is.
fn oversized_bundle_is_refused_naming_the_limit(net: &Net) {
    let big = net.path("big");
    std::fs::create_dir_all(&big).unwrap();
    let pi = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../workloads/wasm/pi/pi.wat"
    );
    std::fs::copy(pi, big.join("pi.wat")).unwrap();
    let noise: Vec<u8> = (0..2 * BLOB_LIMIT)
        .map(|i| (i * 7919 % 251) as u8)
        .collect();
    std::fs::write(big.join("noise.bin"), noise).unwrap();
    std::fs::write(
        big.join("job.toml"),
        "module = \"pi.wat\"\nruntime = \"wasm\"\nsteps = 2\n[wasm]\nentry = \"stepper\"\n\
         input = \"noise\"\n[input_files]\nnoise = \"noise.bin\"\n",
    )
    .unwrap();
    std::fs::write(big.join("request.toml"), "bundle = \"job.toml\"\n").unwrap();
    let out = orrery()
        .args(["job", "submit"])
        .arg(big.join("request.toml"))
        .arg("--key")
        .arg(net.path("faucet.key"))
        .args(["--node", &net.api])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("too large"), "{err}");
    assert!(
        err.contains(&BLOB_LIMIT.to_string()),
        "names the limit: {err}"
    );
}

#[test]
fn a_provider_killed_mid_job_times_out_and_the_requester_is_refunded_in_full() {
    let mut net = Net::start(0);
    net.start_provider();
    oversized_bundle_is_refused_naming_the_limit(&net);
    // 4,000 steps (about 20 s) due 75 blocks (about 15 s) after the lease opens.
    let request = net.write_job(4_000, 75);
    let requester = net.faucet.account();
    let before = net.balance(&requester);
    let lease = net.submit(&request);
    let escrowed = net.client().lease(lease).unwrap().unwrap().escrow;
    assert!(!escrowed.is_zero());
    assert_eq!(
        net.balance(&requester).checked_add(escrowed),
        Some(before),
        "the escrow is locked"
    );
    let saved = wait_for_snapshot(&net, lease, SAVE_EVERY);
    net.kill_provider();
    assert!(saved < 4_000, "killed mid-job");

    wait_until("the lease timing out", Duration::from_secs(90), || {
        net.lease_state(lease) == "timed_out"
    });
    let detail = net.client().lease(lease).unwrap().unwrap().state_detail;
    assert_eq!(
        detail["refunded"]
            .as_str()
            .map(|s| s.parse::<Amount>().unwrap()),
        Some(escrowed),
        "{detail}"
    );
    assert_eq!(net.balance(&requester), before, "refunded in full");
    // The provider's record, as `orrery provider status` shows it.
    let status = run_ok(
        orrery()
            .args(["provider", "status", &provider_account().to_string()])
            .args(["--node", &net.api, "--json"]),
    );
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["reputation"]["timed_out"], 1, "{status}");
    assert_eq!(status["leases_by_state"]["timed_out"], 1, "{status}");
    // The dock is burned from its stake (10% of the lease's maximum cost, at most the stake).
    let stake: Amount = status["stake"].as_str().unwrap().parse().unwrap();
    assert!(stake < Amount::orr(200), "{status}");
}

#[test]
fn a_provider_killed_mid_job_and_restarted_resumes_from_its_snapshot_and_settles() {
    let mut net = Net::start(1);
    net.start_provider();
    let steps = 1_500;
    let request = net.write_job(steps, 400);
    let lease = net.submit(&request);
    // Killed once a few snapshots are saved (step 200 or later, about a second in).
    wait_for_snapshot(&net, lease, 4 * SAVE_EVERY);
    net.kill_provider();
    // What it had saved when it died (it may have saved once more since we looked).
    let saved = net.saved_step(lease).expect("a snapshot on disk");
    assert!(
        saved >= 4 * SAVE_EVERY && saved < steps,
        "killed mid-job at {saved}"
    );

    net.start_provider();
    wait_until("the lease settling", Duration::from_secs(90), || {
        net.lease_state(lease) == "settled"
    });
    // The restarted agent resumed at the step it had saved, not from scratch.
    let log = net.provider_log();
    let resumed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("resuming from a saved snapshot"))
        .collect();
    assert_eq!(resumed.len(), 1, "{log}");
    assert!(resumed[0].contains(&format!("k={saved}")), "{log}");
    assert!(saved > 0);

    // The settled output is what a local run of the same job gives.
    let job = net.path("job/job.toml");
    let local = net.path("local.out");
    let summary = run_ok(
        orrery()
            .arg("run-local")
            .arg(&job)
            .arg("--output")
            .arg(&local)
            .arg("--json"),
    );
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
    let remote = net.path("remote.out");
    run_ok(
        orrery()
            .args([
                "job",
                "result",
                &lease.to_string(),
                "--node",
                &net.api,
                "--out",
            ])
            .arg(&remote),
    );
    assert_eq!(
        std::fs::read(&remote).unwrap(),
        std::fs::read(&local).unwrap()
    );
    let detail = net.client().lease(lease).unwrap().unwrap().state_detail;
    assert_eq!(
        detail["checkpoint_root"], summary["checkpoint_root"],
        "{detail}\n{summary}"
    );
    net.kill_provider();
}

#[test]
fn a_job_that_loops_forever_is_paid_for_its_fuel_and_the_provider_is_not_docked() {
    let mut net = Net::start(2);
    net.start_provider();
    let provider = provider_account();
    let requester = net.faucet.account();
    let (requester_before, provider_before) = (net.balance(&requester), net.balance(&provider));
    let request = net.write_looping_job(150);
    let lease = net.submit(&request);
    wait_until("the lease settling", Duration::from_secs(120), || {
        net.lease_state(lease) == "settled"
    });
    let l = net.client().lease(lease).unwrap().unwrap();
    let detail = &l.state_detail;
    assert_eq!(detail["failure"]["at"]["step"], 0, "{detail}");
    assert_eq!(detail["failure"]["reason"], "out_of_fuel", "{detail}");
    let usage: orrery_types::resources::Usage =
        serde_json::from_value(detail["usage"].clone()).unwrap();
    assert_eq!(
        usage.units, LOOP_FUEL,
        "billed the fuel the one step burned"
    );
    let amount = |v: &serde_json::Value| v.as_str().unwrap().parse::<Amount>().unwrap();
    let paid = amount(&detail["paid"]);
    assert_eq!(
        Some(paid),
        l.terms.prices.cost(&l.terms.resources, &usage),
        "at the agreed price"
    );
    // The requester paid that and nothing more; the provider got it less the fee.
    assert_eq!(
        net.balance(&requester).checked_add(paid),
        Some(requester_before)
    );
    let fee = amount(&detail["fee"]);
    assert_eq!(
        provider_before.checked_add(paid.checked_sub(fee).unwrap()),
        Some(net.balance(&provider))
    );
    let status = run_ok(
        orrery()
            .args(["provider", "status", &provider.to_string()])
            .args(["--node", &net.api, "--json"]),
    );
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(
        amount(&status["stake"]),
        Amount::orr(200),
        "not docked: {status}"
    );
    for bad in ["failed", "slashed", "timed_out"] {
        assert_eq!(status["reputation"][bad], 0, "{status}");
    }
    assert_eq!(status["reputation"]["settled"], 1, "{status}");
    // Run once, with the real cause in the log; never retried as an error.
    let log = net.provider_log();
    let said = format!(
        "lease {lease}: the job ran out of fuel at step 0 after {LOOP_FUEL} fuel: committing a \
         failure claim"
    );
    assert_eq!(log.matches(&said).count(), 1, "{log}");
    assert!(!log.contains("starts again"), "{log}");
    // `orrery job result` tells the requester what happened instead of offering an output.
    let out = orrery()
        .args([
            "job",
            "result",
            &lease.to_string(),
            "--node",
            &net.api,
            "--out",
        ])
        .arg(net.path("none.out"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("the job ran out of fuel at step 0"), "{said}");
    net.kill_provider();
}
