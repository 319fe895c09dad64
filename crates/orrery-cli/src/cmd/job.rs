//! `orrery job submit|status|watch|result`: a requester's jobs through a node.
//!
//! A *request file* (TOML) names the job and what it needs:
//!
//! ```toml
//! bundle = "../wasm/pi/job.toml"   # a job file to pack (relative to this file) or a packed bundle
//! verification = "sampled"         # "none" | "sampled" | "redundant"
//! redundancy = 2                   # providers for "redundant" (2..=5)
//! max_seconds = 600                # most seconds paid for
//! max_units = 100000000000         # most compute units (wasm fuel) paid for
//! deadline_blocks = 1500           # blocks until the result is due
//! [requirements]
//! cpu_cores = 1
//! ram_gib = 1
//! gpus = 0
//! # gpu_model = "4090"; min_vram_gib = 24; region = "eu-west"; only_region = true
//! # max_gpu_hour = "2"; max_cost = "10"
//! ```
//!
//! A **cluster training request** adds a `[cluster]` table; the job then runs as one cluster
//! lease over `workers` providers (chosen by the router's cluster selection: one region if one
//! can host them all, else the nearest regions), and `max_seconds`/`max_units` are one
//! worker-round's:
//!
//! ```toml
//! bundle = "../ml/cluster-lm.toml"  # a cluster spec: a training spec and its [cluster] table
//! [cluster]
//! workers = 3          # N distinct providers (1..=16)
//! rounds = 20          # DiLoCo rounds
//! inner_steps = 50     # H, must match the bundle's [cluster] spec; 0 is refused
//! round_blocks = 50    # blocks each round has before a silent worker is dropped
//! check_bps = 1000     # probability a worker's round is re-executed by a verifier
//! ```
//!
//! `submit` packs and uploads the bundle, ranks the offers (an impossible requirement or a price
//! below every offer is refused, naming which; so is a bundle over the node's blob limit, naming
//! the limit), opens the lease with the best offer's prices, and prints the lease id. `watch` follows it to the end; `result` downloads the output and shows
//! the evidence (every transaction of the lease with its receipt).

use crate::cmd::wallet::{KeyArg, NodeArg, load_key, submit_and_wait};
use anyhow::{Context, bail};
use clap::{Args as ClapArgs, Subcommand};
use orrery_client::Client;
use orrery_market::{RegionPreference, Requirements, RouterWeights};
use orrery_types::amount::Amount;
use orrery_types::crypto::{AccountId, Keypair};
use orrery_types::hash::Hash;
use orrery_types::resources::{ResourceRequest, Usage};
use orrery_types::tx::{LeaseTerms, TxBody, Verification};
use orrery_types::workload::JobFailure;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Submit and follow jobs.
#[derive(ClapArgs, Debug)]
pub struct JobArgs {
    #[command(subcommand)]
    cmd: JobCmd,
}

#[derive(Subcommand, Debug)]
enum JobCmd {
    /// Pack, upload, route and open a lease for the job described by a request file.
    Submit {
        /// The request file (see `orrery job --help` and `workloads/requests/`).
        file: PathBuf,
        #[command(flatten)]
        key: KeyArg,
        #[command(flatten)]
        node: NodeArg,
        /// Follow the job until it is final.
        #[arg(long)]
        watch: bool,
    },
    /// A lease's state.
    Status {
        /// The lease id.
        lease: u64,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Follow a lease until it is settled, failed or timed out.
    Watch {
        /// The lease id.
        lease: u64,
        #[command(flatten)]
        node: NodeArg,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
    /// The output of a finished lease and its evidence.
    Result {
        /// The lease id.
        lease: u64,
        #[command(flatten)]
        node: NodeArg,
        /// Write the output bytes here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// A request file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    bundle: PathBuf,
    #[serde(default = "sampled")]
    verification: String,
    #[serde(default)]
    redundancy: Option<u8>,
    #[serde(default = "default_seconds")]
    max_seconds: u64,
    #[serde(default = "default_units")]
    max_units: u64,
    #[serde(default = "default_deadline")]
    deadline_blocks: u64,
    #[serde(default)]
    requirements: Needs,
    #[serde(default)]
    cluster: Option<ClusterNeeds>,
}

/// A request's `[cluster]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterNeeds {
    workers: usize,
    rounds: u32,
    inner_steps: u32,
    #[serde(default = "default_round_blocks")]
    round_blocks: u64,
    #[serde(default = "default_check_bps")]
    check_bps: u16,
}

fn default_round_blocks() -> u64 {
    50
}
fn default_check_bps() -> u16 {
    1_000
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Needs {
    #[serde(default)]
    gpus: u16,
    #[serde(default)]
    gpu_model: Option<String>,
    #[serde(default)]
    min_vram_gib: u32,
    #[serde(default)]
    cpu_cores: Option<u16>,
    #[serde(default)]
    ram_gib: Option<u32>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    only_region: bool,
    #[serde(default)]
    max_gpu_hour: Option<Amount>,
    #[serde(default)]
    max_cost: Option<Amount>,
}

fn sampled() -> String {
    "sampled".into()
}
fn default_seconds() -> u64 {
    600
}
fn default_units() -> u64 {
    100_000_000_000
}
fn default_deadline() -> u64 {
    1_500
}

fn load_request(path: &Path) -> anyhow::Result<(Request, orrery_exec::Bundle)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read request file {}", path.display()))?;
    let req: Request = toml::from_str(&text)
        .with_context(|| format!("{} is not a valid request", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let bundle_path = base.join(&req.bundle);
    let bundle = if req.cluster.is_some() && bundle_path.extension().is_some_and(|e| e == "toml") {
        // A cluster request's job file is its `ClusterSpec` (a training spec and its
        // `[cluster]` table), packed as the provider agents read it.
        let spec = std::fs::read_to_string(&bundle_path)
            .with_context(|| format!("cannot read cluster spec {}", bundle_path.display()))?;
        let name = bundle_path
            .file_stem()
            .map_or_else(|| "cluster".into(), |n| n.to_string_lossy().into_owned());
        orrery_provider::cluster::cluster_bundle(&name, &spec)
            .with_context(|| format!("cannot pack {}", bundle_path.display()))?
    } else if bundle_path.extension().is_some_and(|e| e == "toml") {
        orrery_exec::pack_job_file(&bundle_path)
            .with_context(|| format!("cannot pack {}", bundle_path.display()))?
    } else {
        let bytes = std::fs::read(&bundle_path)
            .with_context(|| format!("cannot read bundle {}", bundle_path.display()))?;
        orrery_exec::Bundle::decode(&bytes)
            .with_context(|| format!("{} is not a job bundle", bundle_path.display()))?
    };
    Ok((req, bundle))
}

fn verification(req: &Request) -> anyhow::Result<Verification> {
    Ok(match req.verification.as_str() {
        "none" => Verification::None,
        "sampled" => Verification::Sampled,
        "redundant" => Verification::Redundant {
            k: req.redundancy.unwrap_or(2),
        },
        other => bail!("verification = {other:?}: use \"none\", \"sampled\" or \"redundant\""),
    })
}

fn submit(file: &Path, key: &Path, node: &str, watch_after: bool) -> anyhow::Result<()> {
    let (req, bundle) = load_request(file)?;
    let verification = verification(&req)?;
    let key = load_key(key)?;
    let client = Client::new(node);
    let n = &req.requirements;
    let needs = Requirements {
        gpu_model: n.gpu_model.clone(),
        min_vram_mib: n.min_vram_gib.saturating_mul(1024),
        resources: ResourceRequest {
            gpus: n.gpus,
            cpu_cores: n.cpu_cores.unwrap_or(1),
            ram_gib: n.ram_gib.unwrap_or(1),
        },
        usage: Usage {
            seconds: req.max_seconds,
            units: req.max_units,
        },
        region: match (&n.region, n.only_region) {
            (Some(r), true) => RegionPreference::Require(r.clone()),
            (Some(r), false) => RegionPreference::Prefer(r.clone()),
            (None, _) => RegionPreference::Any,
        },
        max_gpu_hour: n.max_gpu_hour,
        max_cost: n.max_cost,
        verification,
        limit: 5,
        ..Requirements::default()
    };
    let params = crate::cmd::market::chain_params(&client)?;
    if let Some(cluster) = &req.cluster {
        // Only providers that run cluster workers may be named (the ledger refuses others).
        let index = crate::cmd::market::cluster_offer_index(&client)?;
        let plan = plan_cluster(cluster, &req, &needs, &index, &params)?;
        return submit_cluster(&client, &key, &bundle, plan);
    }
    let index = crate::cmd::market::offer_index(&client)?;
    let routing = index
        .rank(&needs, &RouterWeights::default(), &params)
        .map_err(|e| anyhow::anyhow!("no provider can run this job: {e}"))?;
    let best = &routing.ranked[0];
    let stored = client
        .put_blob(bundle.bytes())
        .map_err(|e| upload_error(bundle.bytes().len(), &e))?;
    let lease = open_lease(
        &client,
        &key,
        best.offer.provider,
        stored.hash,
        LeaseTerms {
            resources: needs.resources,
            prices: best.offer.prices,
            max_seconds: req.max_seconds,
            max_units: req.max_units,
        },
        req.deadline_blocks,
        verification,
    )?;
    println!(
        "lease {lease}: job {} → {}",
        stored.hash, best.offer.provider
    );
    println!("  why: {}", best.explanation);
    if watch_after {
        watch(&client, lease, Duration::from_secs(600))?;
    }
    Ok(())
}

/// A cluster lease ready to open: its members (worker order) and the transaction.
#[derive(Debug)]
struct ClusterPlan {
    members: Vec<AccountId>,
    body: TxBody,
    why: String,
}

/// Choose the members of a cluster request with the router's cluster selection and write its
/// `OpenClusterLease` (for a job whose hash is filled in at upload). One worker-round's prices
/// are the cheapest of the members' listed prices, component by component, so they are within
/// every member's offer (what the ledger requires).
fn plan_cluster(
    cluster: &ClusterNeeds,
    req: &Request,
    needs: &Requirements,
    index: &orrery_market::OfferIndex,
    params: &orrery_ledger::Params,
) -> anyhow::Result<ClusterPlan> {
    use orrery_types::cluster::{MAX_CLUSTER_MEMBERS, MAX_CLUSTER_ROUNDS};
    if cluster.inner_steps == 0 {
        bail!("[cluster] inner_steps = 0: each round must train at least one inner step (H ≥ 1)");
    }
    if cluster.rounds == 0 || cluster.rounds > MAX_CLUSTER_ROUNDS {
        bail!(
            "[cluster] rounds = {}: use 1 to {MAX_CLUSTER_ROUNDS}",
            cluster.rounds
        );
    }
    if cluster.workers == 0 || cluster.workers > MAX_CLUSTER_MEMBERS {
        bail!(
            "[cluster] workers = {}: a cluster lease has 1 to {MAX_CLUSTER_MEMBERS} workers",
            cluster.workers
        );
    }
    let chosen = orrery_market::select_cluster(
        index,
        needs,
        cluster.workers,
        &RouterWeights::default(),
        params,
        &orrery_market::RegionLatency::new(),
    )
    .map_err(|e| anyhow::anyhow!("no cluster of {} can run this job: {e}", cluster.workers))?;
    let members: Vec<AccountId> = chosen.members.iter().map(|m| m.offer.provider).collect();
    let min = |f: fn(&orrery_types::resources::PriceList) -> Amount| {
        chosen
            .members
            .iter()
            .map(|m| f(&m.offer.prices))
            .min()
            .unwrap_or(Amount::ZERO)
    };
    let prices = orrery_types::resources::PriceList {
        gpu_hour: min(|p| p.gpu_hour),
        cpu_core_hour: min(|p| p.cpu_core_hour),
        ram_gib_hour: min(|p| p.ram_gib_hour),
        mega_unit: min(|p| p.mega_unit),
    };
    let body = TxBody::OpenClusterLease {
        members: orrery_types::codec::BoundedVec::new(members.clone())
            .map_err(|e| anyhow::anyhow!("too many members: {e}"))?,
        job: Hash::ZERO,
        terms: LeaseTerms {
            resources: needs.resources,
            prices,
            max_seconds: req.max_seconds,
            max_units: req.max_units,
        },
        rounds: cluster.rounds,
        inner_steps: cluster.inner_steps,
        round_blocks: cluster.round_blocks,
        check_bps: cluster.check_bps,
    };
    Ok(ClusterPlan {
        members,
        body,
        why: chosen.explanation,
    })
}

/// Upload the bundle and open the planned cluster lease.
fn submit_cluster(
    client: &Client,
    key: &Keypair,
    bundle: &orrery_exec::Bundle,
    mut plan: ClusterPlan,
) -> anyhow::Result<()> {
    let stored = client
        .put_blob(bundle.bytes())
        .map_err(|e| upload_error(bundle.bytes().len(), &e))?;
    if let TxBody::OpenClusterLease { job, .. } = &mut plan.body {
        *job = stored.hash;
    }
    let record = submit_and_wait(client, key, plan.body, Duration::from_secs(60))?;
    let lease = opened_lease(&record)?;
    let escrow = record
        .receipt
        .as_ref()
        .and_then(|r| r.events.iter().find_map(|e| e.get("escrow")?.as_str()))
        .unwrap_or("?");
    println!(
        "cluster lease {lease}: job {} → {} workers, {escrow} locked",
        stored.hash,
        plan.members.len()
    );
    for (i, m) in plan.members.iter().enumerate() {
        println!("  worker {i}: {m}");
    }
    println!("  why: {}", plan.why);
    Ok(())
}

/// A cluster lease as `job status` prints it: its phase and round, each member's pay, and
/// each round's mean loss with who missed it and which workers were checked.
fn cluster_status(id: u64, c: &serde_json::Value) -> Vec<String> {
    let l = &c["lease"];
    let text = |v: &serde_json::Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    let rounds = l["rounds"].as_u64().unwrap_or(0);
    let mut out = vec![format!(
        "cluster lease {id}: {} — round {} of {rounds}, H = {}, escrow {}, refunded {}",
        text(&l["phase"]),
        l["round"].as_u64().unwrap_or(0).min(rounds),
        l["inner_steps"],
        text(&l["escrow"]),
        text(&l["refunded"]),
    )];
    for (i, m) in l["members"].as_array().into_iter().flatten().enumerate() {
        out.push(format!(
            "  worker {i}: {} {} — {} rounds paid, {} paid, {} docked",
            text(&m["provider"]),
            text(&m["status"]),
            m["rounds_paid"],
            text(&m["paid"]),
            text(&m["docked"]),
        ));
    }
    for r in c["rounds"].as_array().into_iter().flatten() {
        let names = |k: &str| -> String {
            let v: Vec<String> = r[k].as_array().into_iter().flatten().map(text).collect();
            if v.is_empty() {
                "none".into()
            } else {
                v.join(", ")
            }
        };
        let loss = r["mean_loss"]
            .as_f64()
            .map_or_else(|| "—".to_string(), |x| format!("{x:.4}"));
        out.push(format!(
            "  round {}: mean loss {loss}, missed {}, checked {}{}",
            r["round"],
            names("missed"),
            names("checked"),
            if r["recompute"] == true {
                ", recompute"
            } else {
                ""
            },
        ));
    }
    out
}

/// What to tell the user when the node refuses the bundle: for a bundle over the node's blob
/// limit (413 `blob_too_large`), its size and the limit, and what to do about it.
fn upload_error(size: usize, e: &orrery_client::Error) -> anyhow::Error {
    match e {
        orrery_client::Error::Api {
            status,
            code,
            message,
            ..
        } if *status == 413 || code == "blob_too_large" => {
            // The node's message names its limit ("a blob is at most N bytes on this node").
            let limit = message
                .split_whitespace()
                .find_map(|w| w.parse::<u64>().ok())
                .map_or_else(
                    || format!("over its limit ({message})"),
                    |n| format!("over its limit of {n} bytes"),
                );
            anyhow::anyhow!(
                "the job bundle is too large for this node: {size} bytes, {limit}. Make the \
                 bundle's inputs smaller, or use a node whose [blobs] max_blob_bytes is higher."
            )
        }
        _ => anyhow::anyhow!("the node refused the bundle ({size} bytes): {e}"),
    }
}

/// Open a lease (deadline `deadline_blocks` after the current height), wait until it is final
/// and return its id.
pub(crate) fn open_lease(
    client: &Client,
    key: &Keypair,
    provider: AccountId,
    job: Hash,
    terms: LeaseTerms,
    deadline_blocks: u64,
    verification: Verification,
) -> anyhow::Result<u64> {
    let height = client.status()?.chain.height;
    let record = submit_and_wait(
        client,
        key,
        TxBody::OpenLease {
            provider,
            job,
            terms,
            deadline: height + deadline_blocks,
            verification,
        },
        Duration::from_secs(60),
    )?;
    opened_lease(&record)
}

/// The lease an applied `OpenLease` opened, from its receipt.
pub(crate) fn opened_lease(record: &orrery_client::api::TxRecord) -> anyhow::Result<u64> {
    record
        .receipt
        .as_ref()
        .and_then(|r| {
            r.events
                .iter()
                .find_map(|e| e.get("lease").and_then(|l| l.as_u64()))
        })
        .context("the node's receipt names no lease")
}

/// How `watch` shows a lease's progress: on a terminal, a spinner with a line per state
/// change; otherwise (a pipe, a file, CI) the same lines, plainly — a hidden spinner would
/// print none of them.
enum Progress {
    Spinner(indicatif::ProgressBar),
    Plain,
}

impl Progress {
    fn new() -> Progress {
        use std::io::IsTerminal as _;
        if std::io::stdout().is_terminal() {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(120));
            Progress::Spinner(bar)
        } else {
            Progress::Plain
        }
    }

    fn line(&self, text: String) {
        match self {
            Progress::Spinner(bar) => bar.println(text),
            Progress::Plain => println!("{text}"),
        }
    }

    fn status(&self, text: String) {
        if let Progress::Spinner(bar) = self {
            bar.set_message(text);
        }
    }

    fn finish(&self) {
        if let Progress::Spinner(bar) = self {
            bar.finish_and_clear();
        }
    }
}

/// The line `watch` prints when a lease enters `state`, `elapsed` after it began watching.
fn state_line(elapsed: Duration, state: &str) -> String {
    format!("{:>6.1} s  {state}", elapsed.as_secs_f64())
}

fn watch(client: &Client, lease: u64, timeout: Duration) -> anyhow::Result<()> {
    let progress = Progress::new();
    let start = Instant::now();
    let mut last = String::new();
    loop {
        let l = client
            .lease(lease)?
            .with_context(|| format!("no lease {lease} on this chain"))?;
        if l.state != last {
            progress.line(state_line(start.elapsed(), &l.state));
            last = l.state.clone();
        }
        progress.status(format!("lease {lease}: {}", l.state));
        if !l.active {
            progress.finish();
            println!("lease {lease} is {}", l.state);
            if let Some(failure) = job_failure(&l.state_detail) {
                println!("{}", failure_line(&failure));
            }
            return Ok(());
        }
        if start.elapsed() > timeout {
            progress.finish();
            bail!("lease {lease} is still {} after {timeout:?}", l.state);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The job's deterministic failure, when the lease's result is a failure claim.
fn job_failure(state_detail: &serde_json::Value) -> Option<JobFailure> {
    serde_json::from_value(state_detail.get("failure")?.clone()).ok()
}

fn failure_line(failure: &JobFailure) -> String {
    format!(
        "the job {failure}: it fails the same way on every machine, so you paid for the work \
         done up to the failure and the rest of the escrow came back (reproduce it with \
         `orrery run-local`)"
    )
}

fn result(client: &Client, lease: u64, out: Option<&Path>) -> anyhow::Result<()> {
    let l = client
        .lease(lease)?
        .with_context(|| format!("no lease {lease} on this chain"))?;
    println!("lease {lease}: {} (provider {})", l.state, l.provider);
    println!("{}", serde_json::to_string_pretty(&l.state_detail)?);
    if let Some(failure) = job_failure(&l.state_detail) {
        println!("{}", failure_line(&failure));
        if out.is_some() {
            bail!("lease {lease} has no output: the job {failure}");
        }
    }
    let output = l
        .state_detail
        .get("output")
        .and_then(|o| o.as_str())
        .and_then(|h| h.parse::<Hash>().ok());
    match (output, out) {
        (Some(hash), Some(path)) => {
            let bytes = client
                .get_blob(&hash)?
                .with_context(|| format!("the node does not have output {hash}"))?;
            std::fs::write(path, &bytes)?;
            println!(
                "output {hash} ({} bytes) written to {}",
                bytes.len(),
                path.display()
            );
        }
        (None, Some(_)) => bail!("lease {lease} has no output ({})", l.state),
        _ => {}
    }
    println!("evidence (every transaction of the lease, with its receipt):");
    let txs = client.lease_txs(lease, Some(100), None)?;
    for t in txs.items {
        let ok = t
            .receipt
            .as_ref()
            .map_or("?", |r| if r.ok { "ok" } else { "refused" });
        let kind =
            t.tx.body
                .get("type")
                .and_then(|v| v.as_str())
                .unwrap_or("?");
        println!(
            "  block {:>5}  {:<14} {:<8} {}",
            t.height, kind, ok, t.tx.sender
        );
    }
    Ok(())
}

pub fn run(args: JobArgs) -> anyhow::Result<()> {
    match args.cmd {
        JobCmd::Submit {
            file,
            key,
            node,
            watch,
        } => submit(&file, &key.key, &node.node, watch),
        JobCmd::Status { lease, node } => {
            let client = Client::new(&node.node);
            let Some(l) = client.lease(lease)? else {
                // Cluster leases share the lease numbers.
                let c = client
                    .cluster_lease(lease)?
                    .with_context(|| format!("no lease {lease} on this chain"))?;
                for line in cluster_status(lease, &c) {
                    println!("{line}");
                }
                return Ok(());
            };
            println!(
                "lease {lease}: {} — provider {}, escrow {}, deadline height {}",
                l.state, l.provider, l.escrow, l.deadline
            );
            Ok(())
        }
        JobCmd::Watch {
            lease,
            node,
            timeout,
        } => watch(
            &Client::new(&node.node),
            lease,
            Duration::from_secs(timeout),
        ),
        JobCmd::Result { lease, node, out } => {
            result(&Client::new(&node.node), lease, out.as_deref())
        }
    }
}

#[cfg(test)]
mod tests;
