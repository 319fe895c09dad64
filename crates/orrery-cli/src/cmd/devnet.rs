//! `orrery devnet`: the whole network on one machine, doing real work.
//!
//! 1. Writes a local network (4 validators) into one folder and starts each validator as its
//!    own process with its HTTP API (`orrery localnet`'s machinery).
//! 2. Starts `--providers` provider agents, each its own `orrery provider run` process
//!    attached to one validator (and failing over to the others), funded at genesis; the last
//!    `--cheaters` of them return wrong results. Prices are the market the product promises:
//!    a CPU core-hour at 33–46% of the explorer's cloud reference.
//! 3. A requester (the faucet account) packs real jobs — the example wasm jobs and an ML
//!    training job — uploads each bundle once (nodes fetch what they lack from their peers),
//!    ranks the offers with the router (`orrery-market`),
//!    and opens leases: every provider gets one `redundant {2}` job (so every cheater meets a
//!    verifier), the rest are `sampled`.
//!    Beside them, one cluster training job: a small transformer trained by `--cluster-workers`
//!    honest providers in DiLoCo rounds, deltas exchanged peer to peer ([`cluster`]).
//! 4. Waits until every lease is final, then writes a summary read back from the chain (see
//!    [`report`] for what it checks) to `summary.json` in the folder, and prints it.
//!
//! # Diagnosable
//!
//! Every process logs to its own file in `<dir>/logs/` (`validator-<i>.log`,
//! `provider-<i>.log`, and `devnet.log` for what this command said); `processes.json` lists
//! their process ids. A failed check names the lease, the party and the reason.
//!
//! # Supervised
//!
//! A validator or agent that dies (a crash, `kill -9`) is restarted, reported on the console
//! and in the summary's `incidents` ([`crate::cmd::supervise`]). The requester talks to the
//! first validator that answers, so the network and its jobs carry on while one is down.
//!
//! Without `--exit-when-done` the network keeps running for the explorer and the CLI.

mod cluster;
mod inference;
mod report;

use crate::cmd::job::opened_lease;
use crate::cmd::node::{InitArgs, Localnet, faucet_key, init};
use anyhow::{Context, bail};
use clap::Args as ClapArgs;
use orrery_client::Client;
use orrery_ledger::GenesisAccount;
use orrery_market::{Requirements, RouterWeights};
use orrery_provider::ProviderConfig;
use orrery_types::amount::Amount;
use orrery_types::crypto::{AccountId, Keypair};
use orrery_types::hash::Hash;
use orrery_types::inference::ApiKey;
use orrery_types::resources::{ResourceRequest, Usage};
use orrery_types::tx::{ChainId, LeaseTerms, SignedTx, Tx, TxBody, Verification};
use report::{Cast, Job, Summary};
use std::collections::BTreeMap;
use std::io::Write;
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
    /// First provider's inference serving port (provider i listens on this + i).
    #[arg(long, default_value_t = 7480)]
    serve_port: u16,
    /// Rounds of inference traffic (an embeddings request, a completion and a streamed chat
    /// each).
    #[arg(long, default_value_t = 6)]
    inference_rounds: usize,
    /// Whether one honest-for-jobs provider serves inference with another model than it
    /// claims (it is caught by the checks and slashed).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    inference_cheater: bool,
    /// Workers of the cluster training job (honest providers, from provider-0); 0: no
    /// cluster job.
    #[arg(long, default_value_t = 3)]
    cluster_workers: usize,
    /// First provider's cluster p2p port (provider i listens on this + i).
    #[arg(long, default_value_t = 7560)]
    cluster_port: u16,
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

/// The devnet requester's API key (a devnet secret, like the faucet's: never real funds).
const API_KEY_SECRET: [u8; 32] = [0x42; 32];

/// What each provider is funded with at genesis.
const PROVIDER_FUNDS: Amount = Amount::orr(10_000);
/// What each provider bonds (well above the minimum for its one core, so a docked challenge
/// would show as a stake change, never as an unbonded provider).
const PROVIDER_STAKE: Amount = Amount::orr(500);
/// Inference rounds the devnet adds, one at a time, while its inference cheater is not caught.
const EXTRA_INFERENCE_ROUNDS: usize = 12;

/// Cores each devnet provider claims. The chain sizes its challenges from the claim, so a
/// provider must claim what it has: four providers and four validators share a machine of a
/// few cores, and one core each is their honest share (eight each, as before challenges,
/// would be spoofing and be docked).
const DEVNET_PROVIDER_CORES: u16 = 1;
/// Memory each devnet provider claims (GiB): its share of a small machine.
const DEVNET_PROVIDER_RAM_GIB: u32 = 2;
/// Blocks a devnet lease may run (five minutes at 200 ms blocks).
const LEASE_DEADLINE_BLOCKS: u64 = 1_500;
/// How long the requester waits for one of its transactions to be finalized.
const TX_WAIT: Duration = Duration::from_secs(60);
/// Timeout for one request to a validator; a validator that does not answer in this time is
/// passed over for the next.
const API_TIMEOUT: Duration = Duration::from_secs(5);

/// What the devnet says: to the console (unless `--json`) and always to `logs/devnet.log`.
struct Say {
    console: bool,
    log: std::fs::File,
}

impl Say {
    fn line(&mut self, line: impl AsRef<str>) {
        let line = line.as_ref();
        if self.console {
            println!("{line}");
        }
        let _ = writeln!(self.log, "{line}");
    }
}

/// A running devnet: its processes, its providers and its requester.
struct Devnet {
    dir: PathBuf,
    net: Localnet,
    providers: Vec<Keypair>,
    first_cheater: usize,
    /// The provider that serves inference with another model than it claims, if any.
    inference_cheater: Option<usize>,
    models: inference::Models,
    models_note: Option<String>,
    serve_port: u16,
    cluster_port: u16,
    /// The requester's inference traffic, once sent.
    inference: Option<inference::Traffic>,
    requester: Keypair,
    say: Say,
}

impl Devnet {
    /// Write the network, start the validators and the agents, wait until every provider is
    /// registered and bonded.
    fn start(args: &Args) -> anyhow::Result<Devnet> {
        let init_args = InitArgs {
            dir: args.dir.clone(),
            validators: 4,
            seed: 1,
            p2p_port: args.p2p_port,
            api_port: args.api_port,
            chain_id: "orrery-devnet".into(),
            faucet: Amount::orr(10_000_000),
            hosts: Vec::new(),
        };
        let providers: Vec<Keypair> = (0..args.providers)
            .map(|i| Keypair::from_seed(provider_key_seed(i)))
            .collect();
        let funded: Vec<GenesisAccount> = providers
            .iter()
            .map(|k| GenesisAccount {
                account: k.account(),
                balance: PROVIDER_FUNDS,
            })
            .collect();
        init(&init_args, &funded)?;
        let (models, models_note) = inference::prepare_models(&args.dir)?;
        let net = Localnet::start(&args.dir, 4)?;
        let log = std::fs::File::create(net.procs.log_path("devnet"))?;
        let first_cheater = args.providers - args.cheaters;
        let mut devnet = Devnet {
            dir: args.dir.clone(),
            net,
            providers,
            first_cheater,
            // The last provider that is honest with jobs, when enough others can check it.
            inference_cheater: (args.inference_cheater && first_cheater >= 2)
                .then(|| first_cheater - 1),
            models,
            models_note,
            serve_port: args.serve_port,
            cluster_port: args.cluster_port,
            inference: None,
            requester: faucet_key(init_args.seed),
            say: Say {
                console: !args.json,
                log,
            },
        };
        devnet.net.wait_for_height(1, Duration::from_secs(120))?;
        let apis = &devnet.net.apis;
        let line = format!(
            "4 validators finalizing; APIs {} … {} (data and logs in {})",
            apis[0],
            apis[3],
            args.dir.display()
        );
        devnet.say.line(line);
        devnet.start_agents()?;
        devnet.wait_for(
            "every provider registered and bonded",
            Duration::from_secs(120),
            |c| {
                c.providers(Some(1000), None).is_ok_and(|p| {
                    p.items.iter().filter(|v| !v.stake.is_zero()).count() >= args.providers
                })
            },
        )?;
        Ok(devnet)
    }

    /// One `orrery provider run` process per provider, attached to validator `i mod 4` and
    /// failing over to the others.
    fn start_agents(&mut self) -> anyhow::Result<()> {
        for i in 0..self.providers.len() {
            let cheater = i >= self.first_cheater;
            let inference_cheater = self.inference_cheater == Some(i);
            let region = ["eu-west", "us-east"][i % 2];
            let apis = &self.net.apis;
            let node = &apis[i % apis.len()];
            let fallbacks: Vec<String> = (1..apis.len())
                .map(|k| format!("{:?}", apis[(i + k) % apis.len()]))
                .collect();
            let config = format!(
                "node = \"{node}\"\nfallback_nodes = [{fallbacks}]\nkey_seed = {seed}\n\
                 data_dir = {data:?}\nregion = \"{region}\"\nstake = \"{stake}\"\n\
                 endpoint = \"http://127.0.0.1:{port}\"\n\
                 cheat = \"{cheat}\"\npoll_interval_ms = 200\n{prices}\
                 [cluster]\nport = {cluster_port}\nround_timeout_ms = {round_timeout}\n\
                 [hardware]\ncpu_cores = {DEVNET_PROVIDER_CORES}\nram_gib = {DEVNET_PROVIDER_RAM_GIB}\n{serve}",
                fallbacks = fallbacks.join(", "),
                seed = provider_key_seed(i),
                data = self.dir.join(format!("provider-{i}")).display().to_string(),
                stake = PROVIDER_STAKE,
                port = self.serve_port + i as u16,
                cheat = match (cheater, inference_cheater) {
                    (true, _) => "wrong_output",
                    (_, true) => "wrong_model",
                    _ => "none",
                },
                prices = devnet_prices(i),
                cluster_port = self.cluster_port + i as u16,
                round_timeout = cluster::ROUND_TIMEOUT_MS,
                serve = inference::serve_config(
                    &self.models,
                    self.serve_port + i as u16,
                    i,
                    inference_cheater
                ),
            );
            // Checked here, so a bad config fails the devnet now rather than in a log.
            ProviderConfig::from_toml(&config).context("a provider config")?;
            let path = self.dir.join(format!("provider-{i}.toml"));
            std::fs::write(&path, &config)?;
            self.net.procs.start(
                &format!("provider-{i}"),
                vec![
                    "provider".into(),
                    "run".into(),
                    "--config".into(),
                    path.into(),
                ],
            )?;
            let line = format!(
                "provider-{i} {} ({region}, via {node}){}",
                self.providers[i].account(),
                match (cheater, inference_cheater) {
                    (true, _) => " — a cheater: returns wrong outputs",
                    (_, true) => " — a cheater: serves inference with another model than it claims",
                    _ => "",
                }
            );
            self.say.line(line);
        }
        Ok(())
    }

    /// A client for the most advanced validator that answers.
    fn client(&self) -> anyhow::Result<Client> {
        // The most advanced validator that answers: one that just restarted answers before it
        // has caught up, and its stale state (an old nonce) must not be acted on.
        self.net
            .apis
            .iter()
            .map(|a| Client::with_timeout(a, API_TIMEOUT))
            .filter_map(|c| Some((c.status().ok()?.chain.height, c)))
            .max_by_key(|(height, _)| *height)
            .map(|(_, c)| c)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "no validator answers; logs in {}",
                    self.dir.join("logs").display()
                )
            })
    }

    /// Clients for every validator, the most advanced that answers first.
    fn clients(&self) -> anyhow::Result<Vec<Client>> {
        let first = self.client()?;
        let mut all = vec![first.clone()];
        all.extend(
            self.net
                .apis
                .iter()
                .filter(|a| a.as_str() != first.base_url())
                .map(|a| Client::with_timeout(a, API_TIMEOUT)),
        );
        Ok(all)
    }

    /// Sign `body` once as the requester and see it into a block through whichever
    /// validators answer: the same bytes go to every node until one includes them, so a
    /// validator dying between the submission and the block costs a retry, never a second
    /// transaction. Fails with the ledger's reason if it was refused.
    fn submit(&mut self, body: TxBody) -> anyhow::Result<orrery_client::api::TxRecord> {
        let client = self.client()?;
        let chain_id = ChainId::new(&client.status()?.chain.chain_id)
            .map_err(|e| anyhow::anyhow!("the node reports a bad chain id: {e}"))?;
        let nonce = client.account(&self.requester.account())?.nonce;
        let mut tx = Tx {
            chain_id,
            nonce,
            body,
        }
        .sign(&self.requester);
        let mut hash = tx.hash();
        let start = Instant::now();
        let mut last_submit: Option<Instant> = None;
        loop {
            self.supervise();
            if last_submit.is_none_or(|t| t.elapsed() > Duration::from_secs(1)) {
                self.submit_anywhere(&tx)?;
                last_submit = Some(Instant::now());
            }
            let clients = self.clients()?;
            if let Some(record) = clients.iter().find_map(|c| c.tx(&hash).ok().flatten()) {
                return crate::cmd::wallet::applied(record);
            }
            if start.elapsed() > TX_WAIT {
                bail!("transaction {hash} was not finalized within {TX_WAIT:?}");
            }
            // The account's nonce moved past ours without our transaction: the nonce was read
            // from a node that was behind. Sign again with the right one — but only once that
            // node's index has caught up with the state the nonce was read from: a node indexes
            // a block after applying it, so a transaction just included is in its state (the
            // nonce) before its index, and signing again then would send it twice.
            let c = self.client()?;
            let now = c.account(&self.requester.account())?.nonce;
            let status = c.status()?;
            let indexed = status.indexed_height >= status.chain.height;
            if now > tx.tx.nonce
                && indexed
                && c.tx(&hash).ok().flatten().is_none()
                && clients.iter().all(|c| c.tx(&hash).ok().flatten().is_none())
            {
                tracing::warn!(%hash, nonce = tx.tx.nonce, now, "nonce already spent; signing again");
                tx = Tx {
                    chain_id: tx.tx.chain_id.clone(),
                    nonce: now,
                    body: tx.tx.body.clone(),
                }
                .sign(&self.requester);
                hash = tx.hash();
                last_submit = None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Hand `tx` to the first validator that takes it (or already holds it).
    fn submit_anywhere(&self, tx: &SignedTx) -> anyhow::Result<()> {
        let mut unreachable = Vec::new();
        for c in self.clients()? {
            match c.submit(tx) {
                Ok(_) => return Ok(()),
                // Already waiting, or already in a block: nothing to do.
                Err(e) if matches!(e.code(), Some("duplicate_tx" | "stale_nonce")) => {
                    return Ok(());
                }
                // Busy or starting: another node, or this one again later.
                Err(e) if matches!(e.status(), Some(429 | 503)) => {
                    unreachable.push(format!("{}: {e}", c.base_url()))
                }
                Err(e) if e.code().is_some() => {
                    bail!("transaction {} was refused: {e}", tx.hash())
                }
                Err(e) => unreachable.push(format!("{}: {e}", c.base_url())),
            }
        }
        tracing::warn!(hash = %tx.hash(), ?unreachable, "no validator took the transaction; trying again");
        Ok(())
    }

    /// Open a lease through [`Devnet::submit`]; returns its id.
    fn open_lease(
        &mut self,
        provider: AccountId,
        job: Hash,
        terms: LeaseTerms,
        verification: Verification,
    ) -> anyhow::Result<u64> {
        let height = self.client()?.status()?.chain.height;
        let record = self.submit(TxBody::OpenLease {
            provider,
            job,
            terms,
            deadline: height + LEASE_DEADLINE_BLOCKS,
            verification,
        })?;
        opened_lease(&record)
    }

    /// Restart what died and say so.
    fn supervise(&mut self) {
        for i in self.net.supervise() {
            let log = self.net.procs.log_path(&i.process);
            self.say.line(format!("! {i} (log: {})", log.display()));
        }
    }

    /// Supervise and poll `ok` against a live validator until it holds.
    fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        mut ok: impl FnMut(&Client) -> bool,
    ) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            self.supervise();
            if self.client().is_ok_and(|c| ok(&c)) {
                return Ok(());
            }
            if start.elapsed() > timeout {
                bail!(
                    "timed out waiting for {what}; logs in {}",
                    self.dir.join("logs").display()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Pack, upload and route the jobs, and open their leases (see the module docs).
    fn submit_jobs(
        &mut self,
        extra_jobs: usize,
    ) -> anyhow::Result<(Vec<Job>, Vec<orrery_exec::Bundle>)> {
        let work = self.dir.join("requester");
        let mut bundles: Vec<(String, orrery_exec::Bundle)> = crate::cmd::demo::pack_jobs(&work)?
            .into_iter()
            .map(|(n, b)| (n.to_string(), b))
            .collect();
        bundles.push(("spirals-mlp".into(), ml_bundle()?));
        let wasm_count = bundles.len() - 1;
        let n = self.providers.len();
        let mut plan: Vec<(usize, Verification)> = (0..n)
            .map(|i| (i % wasm_count, Verification::Redundant { k: 2 }))
            .collect();
        plan.push((wasm_count, Verification::Sampled));
        plan.extend((0..extra_jobs).map(|i| (i % wasm_count, Verification::Sampled)));
        // Uploaded once: the node pushes each bundle to its home peers, and a provider's node
        // that lacks it fetches it from them (`orrery-node`'s peers module).
        let client = self.client()?;
        for (_, b) in &bundles {
            client
                .put_blob(b.bytes())
                .context("cannot upload a job bundle")?;
        }
        let mut jobs = Vec::new();
        for (j, (b, verification)) in plan.iter().enumerate() {
            let (name, bundle) = &bundles[*b];
            let job = self.open_job(j, name, bundle, *verification)?;
            jobs.push(job);
        }
        Ok((jobs, bundles.into_iter().map(|(_, b)| b).collect()))
    }

    /// Route job number `j` and open its lease: a redundant job goes to provider `j` (so each
    /// provider meets a verifier once), the rest to the router's `j`-th best honest provider.
    fn open_job(
        &mut self,
        j: usize,
        name: &str,
        bundle: &orrery_exec::Bundle,
        verification: Verification,
    ) -> anyhow::Result<Job> {
        let client = self.client()?;
        let params = crate::cmd::market::chain_params(&client)?;
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
            verification,
            limit: self.providers.len(),
            ..Requirements::default()
        };
        let routing = index
            .rank(&req, &RouterWeights::default(), &params)
            .map_err(|e| anyhow::anyhow!("no provider can run {name}: {e}"))?;
        let chosen = if j < self.providers.len() {
            let target = self.providers[j].account();
            routing
                .ranked
                .iter()
                .find(|r| r.offer.provider == target)
                .unwrap_or(&routing.ranked[0])
        } else {
            // Past one job per provider: the router's choice among the providers that run jobs
            // honestly. Each cheater already meets a verifier with its own redundant job; the
            // later jobs (the ML job among them) are the ones the devnet shows settling, and
            // otherwise the provider the chain happened to prove first (so ranked first) could
            // be the lying one and take the ML job (2 devnet runs in about 12 did).
            let honest: Vec<_> = routing
                .ranked
                .iter()
                .filter(|r| {
                    self.provider_index(&r.offer.provider)
                        .is_some_and(|i| i < self.first_cheater)
                })
                .collect();
            if honest.is_empty() {
                &routing.ranked[j % routing.ranked.len()]
            } else {
                honest[j % honest.len()]
            }
        };
        let terms = LeaseTerms {
            resources: req.resources,
            prices: chosen.offer.prices,
            max_seconds: 600,
            max_units: 100_000_000_000,
        };
        let provider = chosen.offer.provider;
        let lease = self
            .open_lease(provider, bundle.hash(), terms, verification)
            .with_context(|| format!("opening the lease for {name}"))?;
        let line = format!(
            "lease #{lease}: {name} → {} ({}); {}",
            self.name(&provider),
            verification_name(verification),
            chosen.explanation
        );
        self.say.line(line);
        Ok(Job {
            lease,
            name: name.to_string(),
        })
    }

    fn provider_index(&self, a: &AccountId) -> Option<usize> {
        self.providers.iter().position(|k| k.account() == *a)
    }

    fn name(&self, a: &AccountId) -> String {
        self.provider_index(a)
            .map_or_else(|| a.to_string(), |i| format!("provider-{i}"))
    }

    /// Wait until every job's lease is final, or `timeout`; returns the seconds waited and
    /// whether every lease is final.
    fn wait_final(&mut self, jobs: &[Job], timeout: Duration) -> (f64, bool) {
        let started = Instant::now();
        let mut last_report = Instant::now();
        loop {
            self.supervise();
            let open = match self.client() {
                Ok(c) => jobs
                    .iter()
                    .filter(|j| c.lease(j.lease).ok().flatten().is_none_or(|l| l.active))
                    .count(),
                Err(_) => jobs.len(),
            };
            if open == 0 {
                return (started.elapsed().as_secs_f64(), true);
            }
            if started.elapsed() > timeout {
                let line = format!("{open} job(s) did not finish within {timeout:?}");
                self.say.line(line);
                return (started.elapsed().as_secs_f64(), false);
            }
            if last_report.elapsed() > Duration::from_secs(10) {
                self.say.line(format!("… {open} job(s) still running"));
                last_report = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// One small job timed from submission to a settled result: the π stepper on an honest
    /// provider, unchecked, accepted by the requester as soon as its result is revealed.
    fn timed_job(&mut self, pi: &orrery_exec::Bundle) -> anyhow::Result<(Job, f64)> {
        let t0 = Instant::now();
        let client = self.client()?;
        let provider = self.providers[0].account();
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
        let lease = self.open_lease(provider, pi.hash(), terms, Verification::None)?;
        self.wait_for("the timed job's result", Duration::from_secs(120), |c| {
            c.lease(lease)
                .ok()
                .flatten()
                .is_some_and(|l| l.state == "committed")
        })?;
        self.submit(TxBody::SettleLease { lease })?;
        let secs = t0.elapsed().as_secs_f64();
        self.say.line(format!(
            "timed job: lease #{lease} (pi, unchecked) from submission to settled result in {secs:.2} s"
        ));
        let job = Job {
            lease,
            name: "pi (timed)".into(),
        };
        Ok((job, secs))
    }

    /// Make the requester an API key, wait until every provider serves its models, and send
    /// the inference traffic through a node's `/v1` (see [`inference`]) in two halves: the
    /// first goes mostly to the cheapest offer (the cheater's), the second after the first
    /// half's checks ended, when the router has learnt who was caught.
    fn serve_inference(
        &mut self,
        rounds: usize,
        timeout: Duration,
    ) -> anyhow::Result<inference::Traffic> {
        let key = ApiKey::from_secret(&API_KEY_SECRET)?;
        self.submit(TxBody::CreateInferenceKey {
            key: key.id(),
            limit: Amount::orr(100),
            deposit: Amount::orr(100),
        })?;
        let models = 1 + usize::from(self.models.minilm.is_some());
        let n = self.providers.len() as u32;
        self.wait_for(
            "every provider serving its models",
            Duration::from_secs(120),
            |c| {
                c.inference_models()
                    .is_ok_and(|m| m.len() >= models && m.iter().all(|v| v.providers >= n))
            },
        )?;
        let api = self.client()?.base_url().to_string();
        self.say.line(format!(
            "inference: {rounds} rounds of embeddings, completions and streamed chats through {api}/v1"
        ));
        let gateway = inference::Gateway::new(&api, &key.to_text());
        let mut traffic = inference::Traffic::default();
        let half = rounds.div_ceil(2);
        let embeddings = self.models.minilm.is_some();
        inference::run(&gateway, embeddings, 0, half, &mut traffic);
        self.wait_inference_final(&traffic, timeout);
        inference::run(&gateway, embeddings, half, rounds, &mut traffic);
        // The cheater is caught by sampled checks (half of each batch's responses): over the
        // few responses the router sends it, every sample can miss (the soak test once saw 4
        // responses, none drawn). Traffic goes on, a round at a time, until it is caught, as
        // it would on a real network, up to `EXTRA_INFERENCE_ROUNDS` more rounds.
        if let Some(i) = self.inference_cheater {
            let cheater = self.providers[i].account();
            let client = self.client()?;
            let caught = |c: &Client| {
                inference::summarize(c, inference::Traffic::default(), None, |a| a.to_string())
                    .is_ok_and(|s| s.caught.contains(&cheater.to_string()))
            };
            for extra in 0..EXTRA_INFERENCE_ROUNDS {
                self.wait_inference_final(&traffic, timeout);
                if caught(&client) {
                    break;
                }
                self.say.line(format!(
                    "inference: {} not caught yet; one more round",
                    self.name(&cheater)
                ));
                let round = rounds + extra;
                inference::run(&gateway, embeddings, round, round + 1, &mut traffic);
            }
        }
        self.say.line(format!(
            "inference: {}/{} answered, {} tokens in, {} out, by provider {:?}; time to first token p50 {:.0} ms",
            traffic.answered,
            traffic.requests,
            traffic.tokens_in,
            traffic.tokens_out,
            traffic
                .by_provider
                .iter()
                .map(|(p, n)| (p.parse().map_or_else(|_| p.clone(), |a| self.name(&a)), *n))
                .collect::<Vec<_>>(),
            traffic.ttft_p50_ms().unwrap_or(f64::NAN)
        ));
        for e in &traffic.errors {
            self.say.line(format!("! inference: {e}"));
        }
        Ok(traffic)
    }

    /// Wait until the providers have settled every answered response and every batch's checks
    /// are over (or `timeout`).
    fn wait_inference_final(&mut self, traffic: &inference::Traffic, timeout: Duration) {
        let answered = traffic.answered;
        let done = |c: &Client| {
            inference::summarize(c, inference::Traffic::default(), None, |a| a.to_string())
                .is_ok_and(|s| s.responses_settled >= answered && s.open_batches == 0)
        };
        if let Err(e) = self.wait_for("the inference batches' checks", timeout, done) {
            self.say.line(format!("! inference: {e:#}"));
        }
    }

    /// Run to the end of the epoch, so this epoch's emission is minted to the providers.
    fn wait_for_epoch(&mut self) -> anyhow::Result<()> {
        let client = self.client()?;
        let epoch = crate::cmd::market::chain_params(&client)?.epoch_blocks;
        let boundary = client.status()?.chain.height.div_ceil(epoch) * epoch;
        self.say.line(format!(
            "waiting for the epoch to end at height {boundary} (emission)…"
        ));
        self.wait_for("the end of the epoch", Duration::from_secs(120), |c| {
            c.status().is_ok_and(|s| s.chain.height >= boundary)
        })
    }

    /// Read the run back, write `summary.json`, print it.
    fn report(
        &mut self,
        jobs: &[Job],
        cluster_job: Option<(&cluster::ClusterJob, f64)>,
        json: bool,
        (seconds, timed): (f64, f64),
    ) -> anyhow::Result<Summary> {
        let accounts: Vec<AccountId> = self.providers.iter().map(|k| k.account()).collect();
        let cast = Cast {
            providers: &accounts,
            first_cheater: self.first_cheater,
            inference_cheater: self.inference_cheater,
            genesis_balance: PROVIDER_FUNDS,
            stake: PROVIDER_STAKE,
        };
        let mut summary =
            report::summarize(&self.clients()?, jobs, &cast, self.net.procs.incidents())?;
        if let Some(traffic) = self.inference.take() {
            let names = |a: &AccountId| self.name(a);
            let inf =
                inference::summarize(&self.client()?, traffic, self.models_note.clone(), names)?;
            summary.inference = Some(inf);
            report::check_inference(&mut summary, &cast);
        }
        if let Some((job, secs)) = cluster_job {
            let names = |a: &AccountId| self.name(a);
            let c = cluster::summarize(&self.client()?, job, secs, names, &mut summary.problems)?;
            summary.cluster = Some(c);
        }
        summary.seconds = seconds;
        summary.submit_to_settled_seconds = timed;
        let text = serde_json::to_string_pretty(&summary)?;
        std::fs::write(self.dir.join("summary.json"), &text)?;
        if json {
            println!("{text}");
        }
        for line in report::print(&summary) {
            self.say.line(line);
        }
        Ok(summary)
    }

    /// Keep the network running (and supervised) until Ctrl-C.
    fn keep_running(&mut self) -> anyhow::Result<()> {
        let api = self.net.apis[0].clone();
        println!(
            "the devnet keeps running (Ctrl-C to stop): open the explorer at {api}/ or try \
             `orrery chain status --node {api}`"
        );
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        crate::cmd::node::on_ctrl_c(stop.clone())?;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            self.supervise();
            std::thread::sleep(Duration::from_millis(300));
        }
        Ok(())
    }
}

fn verification_name(v: Verification) -> String {
    match v {
        Verification::None => "none".to_string(),
        Verification::Sampled => "sampled".to_string(),
        Verification::Redundant { k } => format!("redundant k={k}"),
    }
}

/// Provider `i`'s price list: a CPU core-hour at 0.016–0.022 ORR, 33–46% of the explorer's
/// cloud reference for a vCPU-hour (0.048), the share of cloud prices the market promises.
fn devnet_prices(i: usize) -> String {
    let milli = 16 + 2 * (i % 4);
    format!(
        "[prices]\ngpu_hour = \"0\"\ncpu_core_hour = \"0.0{milli}\"\nram_gib_hour = \"0\"\nmega_unit = \"0.001\"\n"
    )
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
    if args.cluster_workers > args.providers - args.cheaters {
        bail!(
            "--cluster-workers {} is more than the {} honest providers (--providers {} less --cheaters {}): lower it, or 0 for no cluster job",
            args.cluster_workers,
            args.providers - args.cheaters,
            args.providers,
            args.cheaters
        );
    }
    if args.cluster_workers > orrery_types::cluster::MAX_CLUSTER_MEMBERS {
        bail!(
            "--cluster-workers {}: a cluster lease has at most {} workers",
            args.cluster_workers,
            orrery_types::cluster::MAX_CLUSTER_MEMBERS
        );
    }
    fresh_dir(&args.dir)?;
    let mut devnet = Devnet::start(&args)?;
    let summary = match devnet.play(&args) {
        Ok(s) => s,
        Err(e) => {
            // Into the folder too: the console may be gone (a test, a closed terminal).
            devnet.say.line(format!("error: {e:#}"));
            return Err(e);
        }
    };
    if !args.exit_when_done {
        devnet.keep_running()?;
    }
    drop(devnet);
    if !summary.problems.is_empty() {
        bail!(
            "the devnet finished but {} check(s) failed:\n  {}\n(summary and logs in {})",
            summary.problems.len(),
            summary.problems.join("\n  "),
            args.dir.display()
        );
    }
    Ok(())
}

impl Devnet {
    /// Submit the jobs and wait for them, serve inference, time one more job, run to the
    /// epoch's end, and report.
    fn play(&mut self, args: &Args) -> anyhow::Result<Summary> {
        let (mut jobs, bundles) = self.submit_jobs(args.extra_jobs)?;
        let cluster_started = Instant::now();
        let cluster_job = match args.cluster_workers {
            0 => None,
            n => Some(self.open_cluster(n)?),
        };
        let (seconds, all_final) = self.wait_final(&jobs, Duration::from_secs(args.timeout));
        let cluster_job = cluster_job.map(|job| {
            let left = Duration::from_secs(args.timeout).saturating_sub(cluster_started.elapsed());
            self.wait_cluster(&job, left);
            (job, cluster_started.elapsed().as_secs_f64())
        });
        let traffic =
            self.serve_inference(args.inference_rounds, Duration::from_secs(args.timeout))?;
        self.wait_inference_final(&traffic, Duration::from_secs(args.timeout));
        self.inference = Some(traffic);
        let mut timed = 0.0;
        if all_final {
            let (job, secs) = self.timed_job(&bundles[0])?;
            jobs.push(job);
            timed = secs;
            self.wait_for_epoch()?;
        }
        let cluster_job = cluster_job.as_ref().map(|(j, secs)| (j, *secs));
        self.report(&jobs, cluster_job, args.json, (seconds, timed))
    }
}
