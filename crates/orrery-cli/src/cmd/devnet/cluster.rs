//! The devnet's cluster job: one small character-level transformer trained by three provider
//! agents in DiLoCo rounds, their deltas exchanged peer to peer, every round committed on
//! chain (`orrery_provider::cluster`). It runs beside the other jobs; its summary is read back
//! from the chain: the workers, the rounds completed, what each was paid and the last round's
//! mean loss.
//!
//! # The checks
//!
//! - the lease finished with every round completed by every worker (each paid for every round,
//!   none dropped, nothing refunded);
//! - the final loss is a finite number below the first round's (it trained).

use super::Devnet;
use anyhow::Context;
use orrery_client::Client;
use orrery_client::api::{ClusterLeaseView, ClusterRoundView};
use orrery_types::amount::Amount;
use orrery_types::codec::BoundedVec;
use orrery_types::crypto::AccountId;
use orrery_types::resources::{PriceList, ResourceRequest};
use orrery_types::tx::{LeaseTerms, TxBody};
use serde::Serialize;
use std::time::{Duration, Instant};

/// Rounds of the devnet's cluster job: enough to see the loss fall, few enough that it adds
/// seconds, not minutes, on a two-core machine.
pub const ROUNDS: u32 = 4;
/// Inner steps per round (H).
pub const INNER_STEPS: u32 = 2;
/// Blocks each round has before a silent worker is dropped: at ~200 ms blocks, 30 s — room
/// for three agents on a loaded machine to notice the lease, connect and compute round 0.
pub const ROUND_BLOCKS: u64 = 150;
/// How long a worker waits for its peers' deltas each round (`[cluster] round_timeout_ms`).
pub const ROUND_TIMEOUT_MS: u64 = 10_000;

/// The job: a tiny transformer on the built-in corpus (seconds of compute per round).
pub fn spec(workers: u32) -> String {
    format!(
        r#"name = "devnet-cluster-lm"
seed = 9
steps = {steps}
batch_size = 4
seq_len = 16
[model]
kind = "transformer"
vocab_size = 96
d_model = 16
n_layers = 1
n_heads = 2
context = 16
[data]
kind = "corpus"
[optimizer]
kind = "adamw"
lr = 0.003
[cluster]
workers = {workers}
inner_steps = {INNER_STEPS}
rounds = {ROUNDS}
compression = "int8"
"#,
        steps = u64::from(INNER_STEPS) * u64::from(ROUNDS)
    )
}

/// The cluster job as submitted.
#[derive(Clone, Debug)]
pub struct ClusterJob {
    /// Its lease.
    pub lease: u64,
}

/// The cluster job, read back from the chain.
#[derive(Debug, Default, Serialize)]
pub struct ClusterSummary {
    /// The lease.
    pub lease: u64,
    /// `running` or `finished`.
    pub phase: String,
    /// The workers (`provider-<i>`), in worker order.
    pub workers: Vec<String>,
    /// Rounds the lease runs.
    pub rounds: u32,
    /// Rounds that closed with at least one worker's commit.
    pub rounds_completed: u32,
    /// Rounds each worker was paid for, in worker order.
    pub rounds_paid: Vec<u32>,
    /// Workers dropped for missing a round.
    pub dropped: Vec<String>,
    /// The first and the last completed round's mean loss, as committed on chain.
    pub first_loss: Option<f32>,
    /// The last completed round's mean loss.
    pub final_loss: Option<f32>,
    /// What the requester locked: one worker-round's pay × workers × rounds (no check budget).
    pub escrow: Amount,
    /// What it got back.
    pub refunded: Amount,
    /// Seconds from opening the lease to its end.
    pub seconds: f64,
}

impl Devnet {
    /// Open the cluster lease over the first `workers` honest providers, with the job bundle
    /// uploaded first; one worker-round's prices are the members' lowest.
    pub(super) fn open_cluster(&mut self, workers: usize) -> anyhow::Result<ClusterJob> {
        let members: Vec<AccountId> = self.providers[..workers]
            .iter()
            .map(|k| k.account())
            .collect();
        let bundle =
            orrery_provider::cluster::cluster_bundle("devnet-cluster-lm", &spec(workers as u32))?;
        let client = self.client()?;
        client
            .put_blob(bundle.bytes())
            .context("cannot upload the cluster job's bundle")?;
        let mut prices: Option<PriceList> = None;
        for m in &members {
            let offer = client
                .provider(m)?
                .with_context(|| format!("{} is not registered", self.name(m)))?
                .offer
                .prices;
            prices = Some(match prices {
                None => offer,
                Some(p) => PriceList {
                    gpu_hour: p.gpu_hour.min(offer.gpu_hour),
                    cpu_core_hour: p.cpu_core_hour.min(offer.cpu_core_hour),
                    ram_gib_hour: p.ram_gib_hour.min(offer.ram_gib_hour),
                    mega_unit: p.mega_unit.min(offer.mega_unit),
                },
            });
        }
        let terms = LeaseTerms {
            resources: ResourceRequest {
                gpus: 0,
                cpu_cores: 1,
                ram_gib: 1,
            },
            prices: prices.context("no cluster members")?,
            max_seconds: 60,
            max_units: 0,
        };
        let record = self.submit(TxBody::OpenClusterLease {
            members: BoundedVec::new(members.clone())
                .map_err(|e| anyhow::anyhow!("too many cluster members: {e}"))?,
            job: bundle.hash(),
            terms,
            rounds: ROUNDS,
            inner_steps: INNER_STEPS,
            round_blocks: ROUND_BLOCKS,
            // No verifier re-executes cluster rounds yet: a drawn one would miss its deadline
            // and be docked, and an honest party must never lose a unit.
            check_bps: 0,
        })?;
        let lease = crate::cmd::job::opened_lease(&record)?;
        let names: Vec<String> = members.iter().map(|m| self.name(m)).collect();
        self.say.line(format!(
            "cluster lease #{lease}: a transformer trained by {} in {ROUNDS} rounds of H = {INNER_STEPS} (workers {})",
            members.len(),
            names.join(", ")
        ));
        Ok(ClusterJob { lease })
    }

    /// Wait until the cluster lease finished (or `timeout`); returns the seconds waited.
    pub(super) fn wait_cluster(&mut self, job: &ClusterJob, timeout: Duration) -> f64 {
        let started = Instant::now();
        let done = |c: &Client| read(c, job.lease).is_ok_and(|(l, _)| l.phase == "finished");
        if let Err(e) = self.wait_for("the cluster job", timeout, done) {
            self.say.line(format!("! cluster: {e:#}"));
        }
        started.elapsed().as_secs_f64()
    }
}

/// The lease and its rounds.
fn read(c: &Client, lease: u64) -> anyhow::Result<(ClusterLeaseView, Vec<ClusterRoundView>)> {
    let v = c
        .cluster_lease(lease)?
        .with_context(|| format!("no cluster lease {lease}"))?;
    let l = serde_json::from_value(v["lease"].clone()).context("the cluster lease's record")?;
    let rounds =
        serde_json::from_value(v["rounds"].clone()).context("the cluster lease's rounds")?;
    Ok((l, rounds))
}

/// Read the cluster job back from the chain and check it (see the module docs).
pub fn summarize(
    client: &Client,
    job: &ClusterJob,
    seconds: f64,
    name: impl Fn(&AccountId) -> String,
    problems: &mut Vec<String>,
) -> anyhow::Result<ClusterSummary> {
    let (l, rounds) = read(client, job.lease)?;
    let completed: Vec<&ClusterRoundView> = rounds
        .iter()
        .filter(|r| r.closed_at.is_some() && !r.commits.is_empty())
        .collect();
    let s = ClusterSummary {
        lease: l.id,
        phase: l.phase.clone(),
        workers: l.members.iter().map(|m| name(&m.provider)).collect(),
        rounds: l.rounds,
        rounds_completed: completed.len() as u32,
        rounds_paid: l.members.iter().map(|m| m.rounds_paid).collect(),
        dropped: l
            .members
            .iter()
            .filter(|m| m.status != "live")
            .map(|m| name(&m.provider))
            .collect(),
        first_loss: completed.first().and_then(|r| r.mean_loss),
        final_loss: completed.last().and_then(|r| r.mean_loss),
        escrow: l
            .terms
            .max_cost()
            .and_then(|c| c.checked_mul(u128::from(l.rounds) * l.members.len() as u128))
            .unwrap_or(Amount::ZERO),
        refunded: l.refunded,
        seconds,
    };
    let mut problem = |p: String| problems.push(format!("cluster lease #{}: {p}", s.lease));
    if s.phase != "finished" {
        problem(format!("still {} at the end", s.phase));
    }
    if s.rounds_completed != s.rounds {
        problem(format!(
            "{} of {} rounds completed",
            s.rounds_completed, s.rounds
        ));
    }
    for (w, paid) in s.workers.iter().zip(&s.rounds_paid) {
        if *paid != s.rounds {
            problem(format!(
                "{w} (honest) was paid for {paid} of {} rounds",
                s.rounds
            ));
        }
    }
    if !s.dropped.is_empty() {
        problem(format!("honest workers dropped: {}", s.dropped.join(", ")));
    }
    if !s.refunded.is_zero() {
        problem(format!(
            "{} refunded though every worker completed every round",
            s.refunded
        ));
    }
    match (s.first_loss, s.final_loss) {
        (Some(a), Some(b)) if b.is_finite() && b < a => {}
        (a, b) => problem(format!("the loss did not fall: first {a:?}, final {b:?}")),
    }
    Ok(s)
}

/// The summary's lines for a person.
pub fn print(s: &ClusterSummary) -> String {
    format!(
        "  cluster lease #{}: {} — {}/{} rounds by {} (paid rounds {:?}), loss {} → {}, refunded {}, {:.1} s",
        s.lease,
        s.phase,
        s.rounds_completed,
        s.rounds,
        s.workers.join(", "),
        s.rounds_paid,
        s.first_loss.map_or("-".into(), |l| format!("{l:.4}")),
        s.final_loss.map_or("-".into(), |l| format!("{l:.4}")),
        s.refunded,
        s.seconds
    )
}
