//! `orrery devnet`: the whole network on one machine, doing real work.
//!
//! 1. Writes a local network (4 validators by default) into one folder and starts each
//!    validator as its own process with its HTTP API (`orrery localnet`'s machinery).
//! 2. Starts `--providers` provider agents (`orrery-provider`), funded at genesis; the last
//!    `--cheaters` of them return wrong results.
//! 3. A requester (the faucet account) packs real jobs — the example wasm jobs and an ML
//!    training job — uploads each bundle to a node, ranks the offers with the router
//!    (`orrery-market`), and opens leases: every provider gets one `redundant {2}` job (so every
//!    cheater meets a verifier), the rest are `sampled`.
//! 4. Waits until every lease is final, then prints a summary read back from the chain: jobs
//!    settled and failed, checks, disputes, slashes, minted, burned, and whether the supply
//!    invariant holds on every validator.
//!
//! Without `--exit-when-done` the network keeps running for the explorer and the CLI.

use crate::cmd::job::open_lease;
use crate::cmd::node::{InitArgs, Localnet, faucet_key, init};
use crate::cmd::wallet::submit_and_wait;
use anyhow::{Context, bail};
use clap::Args as ClapArgs;
use orrery_client::Client;
use orrery_ledger::GenesisAccount;
use orrery_market::{Requirements, RouterWeights};
use orrery_provider::{Agent, AgentHandle, ProviderConfig};
use orrery_types::amount::Amount;
use orrery_types::crypto::Keypair;
use orrery_types::resources::{ResourceRequest, Usage};
use orrery_types::tx::{LeaseTerms, TxBody, Verification};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Start a local network with providers and a requester, and run real jobs through it.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Provider agents to start.
    #[arg(long, default_value_t = 4)]
    providers: usize,
    /// How many of them return wrong results (they are caught and slashed).
    #[arg(long, default_value_t = 1)]
    cheaters: usize,
    /// Extra `sampled` wasm jobs beyond one per provider and the ML job.
    #[arg(long, default_value_t = 2)]
    extra_jobs: usize,
    /// Folder for the whole network's data and logs (replaced if it holds an earlier devnet).
    #[arg(long, default_value = "orrery-devnet")]
    dir: PathBuf,
    /// First validator's API port (validator i listens on this + i).
    #[arg(long, default_value_t = 7420)]
    api_port: u16,
    /// First validator's p2p port.
    #[arg(long, default_value_t = 7600)]
    p2p_port: u16,
    /// Stop after printing the summary.
    #[arg(long)]
    exit_when_done: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// Seconds to wait for every job to settle.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

/// What happened, read back from the chain.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    /// Jobs submitted.
    pub jobs: usize,
    /// Leases paid out.
    pub settled: usize,
    /// Leases whose provider was shown wrong (requester refunded).
    pub failed: usize,
    /// Leases that timed out.
    pub timed_out: usize,
    /// Results re-executed by a drawn verifier.
    pub checks: usize,
    /// Disputes opened.
    pub disputes: usize,
    /// Referee rulings (one executed step each).
    pub referee_rulings: usize,
    /// Parties slashed.
    pub slashes: usize,
    /// Cheating providers slashed at least once.
    pub cheaters_slashed: usize,
    /// Cheating providers started.
    pub cheaters: usize,
    /// Honest providers slashed (must be zero).
    pub honest_slashed: usize,
    /// Tokens minted by emissions.
    pub minted: Amount,
    /// Tokens burned.
    pub burned: Amount,
    /// Whether every validator reports the supply invariant holding.
    pub supply_invariant_held: bool,
    /// Final height.
    pub height: u64,
    /// Seconds from the first job submitted to the last settled.
    pub seconds: f64,
    /// Seconds from submitting one small unchecked job to its settled result (the requester
    /// accepting it as soon as it is revealed).
    pub submit_to_settled_seconds: f64,
    /// Each job: name, provider, verification and final state.
    pub leases: Vec<JobLine>,
}

/// One job's outcome.
#[derive(Debug, Serialize)]
pub struct JobLine {
    /// Lease id.
    pub lease: u64,
    /// Which example.
    pub job: String,
    /// Who ran it.
    pub provider: String,
    /// Verification level.
    pub verification: String,
    /// Final state.
    pub state: String,
}

fn provider_key_seed(i: usize) -> u64 {
    5_000 + i as u64
}

/// The ML job: the spirals classifier, trained for a few steps.
fn ml_bundle() -> anyhow::Result<orrery_exec::Bundle> {
    let mut spec: toml::Table =
        toml::from_str(include_str!("../../../../workloads/ml/spirals-mlp.toml"))
            .context("the built-in ML spec")?;
    let steps = 30u64;
    spec.insert("steps".into(), toml::Value::Integer(steps as i64));
    let mut ml = toml::Table::new();
    ml.insert("task".into(), toml::Value::String("train".into()));
    ml.insert("spec".into(), toml::Value::Table(spec));
    let manifest = orrery_exec::Manifest {
        runtime: orrery_exec::RuntimeKind::Ml,
        name: Some("spirals-mlp (train)".into()),
        steps,
        inputs: vec![],
        wasm: None,
        ml: Some(ml),
        limits: orrery_exec::Limits::default(),
    };
    orrery_exec::Bundle::new(manifest, Vec::new(), BTreeMap::new())
        .context("cannot pack the ML job")
}

fn fresh_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        if !dir.join("genesis.toml").exists() && std::fs::read_dir(dir)?.next().is_some() {
            bail!(
                "{} exists and is not an earlier devnet; choose another --dir",
                dir.display()
            );
        }
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("cannot clear the earlier devnet in {}", dir.display()))?;
    }
    Ok(())
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) -> anyhow::Result<()> {
    let start = Instant::now();
    while !ok() {
        if start.elapsed() > timeout {
            bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.providers < 2 {
        bail!("a devnet needs at least 2 providers (one runs a job, another checks it)");
    }
    if args.cheaters >= args.providers {
        bail!(
            "--cheaters must be fewer than --providers: honest verifiers are needed to catch them"
        );
    }
    fresh_dir(&args.dir)?;
    let say = |line: String| {
        if !args.json {
            println!("{line}");
        }
    };

    // 1. The validators.
    let init_args = InitArgs {
        dir: args.dir.clone(),
        validators: 4,
        seed: 1,
        p2p_port: args.p2p_port,
        api_port: args.api_port,
        chain_id: "orrery-devnet".into(),
        faucet: Amount::orr(10_000_000),
    };
    let provider_keys: Vec<Keypair> = (0..args.providers)
        .map(|i| Keypair::from_seed(provider_key_seed(i)))
        .collect();
    let funded: Vec<GenesisAccount> = provider_keys
        .iter()
        .map(|k| GenesisAccount {
            account: k.account(),
            balance: Amount::orr(10_000),
        })
        .collect();
    init(&init_args, &funded)?;
    let mut net = Localnet::start(&args.dir, 4)?;
    net.wait_for_height(1, Duration::from_secs(120))?;
    say(format!(
        "4 validators finalizing; APIs {} … {} (data and logs in {})",
        net.apis[0],
        net.apis[3],
        args.dir.display()
    ));

    // 2. The providers.
    let first_cheater = args.providers - args.cheaters;
    let mut agents: Vec<AgentHandle> = Vec::new();
    for i in 0..args.providers {
        let cheat = if i >= first_cheater {
            "wrong_output"
        } else {
            "none"
        };
        let region = ["eu-west", "us-east"][i % 2];
        let config = format!(
            r#"node = "{node}"
key_seed = {seed}
data_dir = "{data}"
region = "{region}"
stake = "500"
cheat = "{cheat}"
poll_interval_ms = 200
[prices]
gpu_hour = "0"
cpu_core_hour = "0.05"
ram_gib_hour = "0"
mega_unit = "0.001"
[hardware]
cpu_cores = 8
ram_gib = 16
"#,
            node = net.apis[i % net.apis.len()],
            seed = provider_key_seed(i),
            data = args.dir.join(format!("provider-{i}")).display(),
        );
        let config = ProviderConfig::from_toml(&config).context("a provider config")?;
        agents.push(Agent::start(config).context("cannot start a provider agent")?);
        say(format!(
            "provider-{i} {} ({region}){}",
            provider_keys[i].account(),
            if i >= first_cheater {
                " — a cheater: returns wrong outputs"
            } else {
                ""
            }
        ));
    }
    let client = Client::new(&net.apis[0]);
    wait_for(
        "every provider registered and bonded",
        Duration::from_secs(120),
        || {
            client.providers(Some(1000), None).is_ok_and(|p| {
                p.items.iter().filter(|v| !v.stake.is_zero()).count() >= args.providers
            })
        },
    )?;

    // 3. The requester's jobs.
    let requester = faucet_key(init_args.seed);
    let work = args.dir.join("requester");
    let mut bundles: Vec<(String, orrery_exec::Bundle)> = crate::cmd::demo::pack_jobs(&work)?
        .into_iter()
        .map(|(n, b)| (n.to_string(), b))
        .collect();
    bundles.push(("spirals-mlp".into(), ml_bundle()?));
    let wasm_count = bundles.len() - 1;
    let mut plan: Vec<(usize, Verification)> = Vec::new(); // (bundle index, verification)
    for i in 0..args.providers {
        plan.push((i % wasm_count, Verification::Redundant { k: 2 }));
    }
    plan.push((wasm_count, Verification::Sampled));
    for i in 0..args.extra_jobs {
        plan.push((i % wasm_count, Verification::Sampled));
    }
    // Blob stores are per node and providers talk to different nodes: upload to each.
    for api in &net.apis {
        for (_, b) in &bundles {
            Client::new(api)
                .put_blob(b.bytes())
                .context("cannot upload a job bundle")?;
        }
    }

    let names: BTreeMap<_, _> = provider_keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.account(), format!("provider-{i}")))
        .collect();
    let params = crate::cmd::market::chain_params(&client)?;
    let started = Instant::now();
    let mut leases: Vec<(u64, String, String)> = Vec::new();
    for (j, (b, verification)) in plan.iter().enumerate() {
        let (name, bundle) = &bundles[*b];
        // Rank every offer for this job; take the j-th best so work spreads over providers.
        let index = crate::cmd::market::offer_index(&client)?;
        let req = Requirements {
            resources: ResourceRequest {
                gpus: 0,
                cpu_cores: 1,
                ram_gib: 1,
            },
            usage: Usage {
                seconds: 60,
                units: 1_000_000_000,
            },
            verification: *verification,
            limit: args.providers,
            ..Requirements::default()
        };
        let routing = index
            .rank(&req, &RouterWeights::default(), &params)
            .map_err(|e| anyhow::anyhow!("no provider can run {name}: {e}"))?;
        // Redundant jobs go to provider j (so each provider meets a verifier once); the rest
        // to the router's best.
        let chosen = if j < args.providers {
            routing
                .ranked
                .iter()
                .find(|r| r.offer.provider == provider_keys[j].account())
                .unwrap_or(&routing.ranked[0])
        } else {
            &routing.ranked[j % routing.ranked.len()]
        };
        let terms = LeaseTerms {
            resources: req.resources,
            prices: chosen.offer.prices,
            max_seconds: 600,
            max_units: 100_000_000_000,
        };
        let lease = open_lease(
            &client,
            &requester,
            chosen.offer.provider,
            bundle.hash(),
            terms,
            1_500,
            *verification,
        )
        .with_context(|| format!("opening the lease for {name}"))?;
        let who = names
            .get(&chosen.offer.provider)
            .cloned()
            .unwrap_or_else(|| chosen.offer.provider.to_string());
        say(format!(
            "lease #{lease}: {name} → {who} ({}); {}",
            match verification {
                Verification::None => "none".to_string(),
                Verification::Sampled => "sampled".to_string(),
                Verification::Redundant { k } => format!("redundant k={k}"),
            },
            chosen.explanation
        ));
        leases.push((lease, name.clone(), who));
    }

    // 4. Wait for every lease to be final.
    let timeout = Duration::from_secs(args.timeout);
    let mut last_report = Instant::now();
    loop {
        for a in &agents {
            if a.is_finished() {
                bail!("a provider agent stopped; see its errors above");
            }
        }
        net.check_alive()?;
        let open = leases
            .iter()
            .filter(|(id, _, _)| client.lease(*id).ok().flatten().is_none_or(|l| l.active))
            .count();
        if open == 0 {
            break;
        }
        if started.elapsed() > timeout {
            bail!(
                "{open} job(s) did not finish within {timeout:?}; logs in {}",
                args.dir.display()
            );
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            say(format!("… {open} job(s) still running"));
            last_report = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let seconds = started.elapsed().as_secs_f64();

    // One small job timed from submission to a settled result: the π stepper on an honest
    // provider, unchecked, accepted by the requester as soon as its result is revealed.
    let submit_to_settled = {
        let t0 = Instant::now();
        let provider = provider_keys[0].account();
        let offer = client
            .provider(&provider)?
            .context("provider-0 is not registered")?
            .offer;
        let terms = LeaseTerms {
            resources: ResourceRequest {
                gpus: 0,
                cpu_cores: 1,
                ram_gib: 1,
            },
            prices: offer.prices,
            max_seconds: 600,
            max_units: 100_000_000_000,
        };
        let lease = open_lease(
            &client,
            &requester,
            provider,
            bundles[0].1.hash(),
            terms,
            1_500,
            Verification::None,
        )?;
        wait_for("the timed job's result", Duration::from_secs(120), || {
            client
                .lease(lease)
                .ok()
                .flatten()
                .is_some_and(|l| l.state == "committed")
        })?;
        submit_and_wait(
            &client,
            &requester,
            TxBody::SettleLease { lease },
            Duration::from_secs(60),
        )?;
        let secs = t0.elapsed().as_secs_f64();
        say(format!(
            "timed job: lease #{lease} (pi, unchecked) from submission to settled result in {secs:.2} s"
        ));
        secs
    };

    // Run to the end of the epoch, so this epoch's emission is minted to the providers.
    let epoch = params.epoch_blocks;
    let h = client.status()?.chain.height;
    let boundary = h.div_ceil(epoch) * epoch;
    say(format!(
        "waiting for the epoch to end at height {boundary} (emission)…"
    ));
    wait_for("the end of the epoch", Duration::from_secs(120), || {
        client.status().is_ok_and(|s| s.chain.height >= boundary)
    })?;

    // 5. The summary, from the chain.
    let mut summary = summarize(&net.apis, &leases, &provider_keys, first_cheater, seconds)?;
    summary.submit_to_settled_seconds = submit_to_settled;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary);
    }
    let ok = summary.supply_invariant_held && summary.honest_slashed == 0;

    if !args.exit_when_done {
        println!(
            "the devnet keeps running (Ctrl-C to stop): open the explorer at http://{}/ or try \
             `orrery chain status --node {}`",
            net.apis[0], net.apis[0]
        );
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        crate::cmd::node::on_ctrl_c(stop.clone())?;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            net.check_alive()?;
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    for a in agents {
        a.stop();
    }
    drop(net);
    if !ok {
        bail!("the devnet finished but its checks failed (see the summary)");
    }
    Ok(())
}

fn summarize(
    apis: &[String],
    leases: &[(u64, String, String)],
    provider_keys: &[Keypair],
    first_cheater: usize,
    seconds: f64,
) -> anyhow::Result<Summary> {
    let client = Client::new(&apis[0]);
    let status = client.status()?;
    let mut s = Summary {
        jobs: leases.len(),
        cheaters: provider_keys.len() - first_cheater,
        minted: status.supply.minted,
        burned: status.supply.burned,
        height: status.chain.height,
        seconds,
        ..Summary::default()
    };
    s.supply_invariant_held = apis.iter().all(|a| {
        Client::new(a)
            .status()
            .is_ok_and(|st| st.supply.invariant_holds)
    });
    for (id, job, who) in leases {
        let lease = client.lease(*id)?.context("a lease vanished")?;
        match lease.state.as_str() {
            "settled" => s.settled += 1,
            "failed" => s.failed += 1,
            "timed_out" => s.timed_out += 1,
            _ => {}
        }
        s.leases.push(JobLine {
            lease: *id,
            job: job.clone(),
            provider: who.clone(),
            verification: serde_json::to_string(&lease.verification)?.replace('"', ""),
            state: lease.state.clone(),
        });
    }
    // Checks, disputes and slashes from every block's events.
    let mut slashed = std::collections::BTreeSet::new();
    for h in 1..=status.chain.height {
        let Some(receipts) = client.block_receipts(h)? else {
            continue;
        };
        let events = receipts
            .receipts
            .iter()
            .flat_map(|r| r.events.iter())
            .chain(receipts.events.iter());
        for e in events {
            match e.get("event").and_then(|v| v.as_str()) {
                Some("check_drawn")
                    if e.get("verifiers")
                        .and_then(|v| v.as_array())
                        .is_some_and(|v| !v.is_empty()) =>
                {
                    s.checks += 1;
                }
                Some("dispute_opened") => s.disputes += 1,
                Some("referee_ruled") => s.referee_rulings += 1,
                Some("slashed") => {
                    s.slashes += 1;
                    if let Some(p) = e.get("party").and_then(|v| v.as_str()) {
                        slashed.insert(p.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    for (i, k) in provider_keys.iter().enumerate() {
        let hit = slashed.contains(&k.account().to_string());
        if i >= first_cheater && hit {
            s.cheaters_slashed += 1;
        }
        if i < first_cheater && hit {
            s.honest_slashed += 1;
        }
    }
    Ok(s)
}

fn print_summary(s: &Summary) {
    println!();
    println!(
        "devnet summary (height {}, {:.1} s from first job to last result)",
        s.height, s.seconds
    );
    for l in &s.leases {
        println!(
            "  lease #{:<3} {:<12} {:<12} {:<22} {}",
            l.lease, l.job, l.provider, l.verification, l.state
        );
    }
    println!(
        "  jobs {}: {} settled, {} failed (requester refunded), {} timed out",
        s.jobs, s.settled, s.failed, s.timed_out
    );
    println!(
        "  checks {}, disputes {}, referee rulings {}, slashes {}",
        s.checks, s.disputes, s.referee_rulings, s.slashes
    );
    println!(
        "  cheaters slashed {}/{}, honest providers slashed {}",
        s.cheaters_slashed, s.cheaters, s.honest_slashed
    );
    println!("  minted {}, burned {}", s.minted, s.burned);
    println!(
        "  a small job from submission to settled result: {:.2} s",
        s.submit_to_settled_seconds
    );
    println!(
        "  supply invariant on every validator: {}",
        if s.supply_invariant_held {
            "holds"
        } else {
            "BROKEN"
        }
    );
}
