//! Cluster leases: the agent as one worker of a cluster training lease (`orrery-cluster`).
//!
//! # What happens
//!
//! 1. The duty loop lists the running cluster leases that name this provider
//!    (`GET /cluster-leases?member=`). A lease it is a live member of, still in round 0, that
//!    it is not yet working for, is started when no other worker runs: the bundle is fetched and checked against the
//!    lease's job hash, its spec ([`cluster_spec`]) must agree with the lease (workers,
//!    rounds, inner steps), and every member's offer must publish a cluster contact bound to
//!    its account (`orrery_types::cluster::cluster_contact`). A bundle or spec that is wrong is
//!    refused, logged once, and not retried; a node that cannot answer (or lacks the bundle
//!    yet) or a peer's host that does not resolve is tried again next tick.
//! 2. The worker runs on a thread of its own, in a runtime of its own
//!    ([`orrery_cluster::run_worker`]): compute off the executor, deltas over the
//!    authenticated p2p interconnect, listening on `[cluster] port`.
//! 3. Its round oracle is [`NodeOracle`]: the worker hands its commitment to the duty loop,
//!    which signs `CommitClusterRound` through the outbox (the agent numbers its own
//!    transactions, so no other thread may sign); the loop reads the round the worker waits
//!    on (`GET /cluster-leases/{id}/rounds/{round}`) each tick, and once the chain closed it,
//!    the worker applies the round's set. All node traffic stays on the duty loop.
//! 4. A lease that dropped this member stops its worker; once a lease is no longer running, a
//!    worker still waiting for a round fails, and one past its last round ends by itself after
//!    lingering for its peers.
//!
//! # Bundle
//!
//! A cluster job's bundle is `runtime = "ml"` with `[ml] task = "cluster"` and `[ml.spec]` an
//! `orrery_ml::cluster::ClusterSpec` (a training spec plus its `[cluster]` table);
//! [`cluster_bundle`] packs one.
//!
//! # Limits
//!
//! A worker waits at most [`SETTLE_LIMIT`] for the chain to close one round, and gives up when
//! the loop has not read its round from the node for [`NODE_SILENCE`]; at most
//! [`MAX_PENDING_COMMITS`] commitments wait for the loop.
//!
//! # Not yet here
//!
//! A worker joins only at round 0: an agent that restarts mid-lease cannot rejoin (it has not
//! saved the cluster's state) and is dropped at the next round's deadline. A job whose bundle
//! is refused leaves its members to be dropped as well: the ledger has no failure claim for
//! cluster leases yet. An agent runs one worker at a time (one cluster port): a lease that
//! names it while another runs waits, and is missed if the other does not end before the
//! waiting lease's round-0 deadline.

use crate::runs::Waker;
use orrery_client::api::{ClusterLeaseView, ClusterRoundView};
use orrery_cluster::{RoundCommit, RoundOracle, WorkerConfig, WorkerReport};
use orrery_exec::{Bundle, Manifest, RuntimeKind};
use orrery_ml::cluster::{ClusterJob, ClusterSpec};
use orrery_types::cluster::{LossBits, cluster_contact, cluster_delta_commitment};
use orrery_types::crypto::{AccountId, Keypair};
use orrery_types::hash::Hash;
use orrery_types::tx::{LeaseId, TxBody};
use std::collections::{BTreeMap, VecDeque};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest a worker waits for the chain to close one round. A round closes at its deadline
/// (`round_blocks` blocks) at the latest; ten minutes is far beyond any round a devnet or a
/// request file asks for, and bounds a worker whose chain stopped.
pub const SETTLE_LIMIT: Duration = Duration::from_secs(600);
/// Longest a worker waits while the loop cannot read its round from any node.
pub const NODE_SILENCE: Duration = Duration::from_secs(60);
/// Commitments waiting for the loop: one per round, so two would do; eight bound a stalled loop.
pub const MAX_PENDING_COMMITS: usize = 8;
/// How long a worker answers its peers after its last round (see `WorkerConfig::linger`).
pub const LINGER: Duration = Duration::from_secs(3);
/// How often the worker's runtime looks at the stop flag and the shared state.
const POLL: Duration = Duration::from_millis(50);

/// Why a cluster job cannot run here.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The bundle is not a cluster job.
    #[error("not a cluster job bundle: {0}")]
    Bundle(String),
    /// The bundle's spec disagrees with the lease.
    #[error("the bundle's spec does not match the lease: {0}")]
    Mismatch(String),
    /// A member cannot be reached.
    #[error("member {member} cannot be reached: {why}")]
    Peer {
        /// The member.
        member: AccountId,
        /// Why.
        why: String,
    },
}

/// Pack a cluster job: `spec` is a `ClusterSpec` in TOML.
pub fn cluster_bundle(name: &str, spec: &str) -> Result<Bundle, ClusterError> {
    let parsed =
        ClusterSpec::from_toml(spec).map_err(|e| ClusterError::Bundle(format!("spec: {e}")))?;
    let table: toml::Table =
        toml::from_str(spec).map_err(|e| ClusterError::Bundle(format!("spec: {e}")))?;
    let mut ml = toml::Table::new();
    ml.insert("task".into(), toml::Value::String("cluster".into()));
    ml.insert("spec".into(), toml::Value::Table(table));
    let manifest = Manifest {
        runtime: RuntimeKind::Ml,
        name: Some(name.into()),
        steps: parsed.job.steps,
        inputs: vec![],
        wasm: None,
        ml: Some(ml),
        limits: orrery_exec::Limits::default(),
    };
    Bundle::new(manifest, Vec::new(), BTreeMap::new())
        .map_err(|e| ClusterError::Bundle(e.to_string()))
}

/// The cluster spec a bundle carries (see the module docs).
pub fn cluster_spec(bundle: &Bundle) -> Result<ClusterSpec, ClusterError> {
    let bad = |m: &str| ClusterError::Bundle(m.into());
    let m = bundle.manifest();
    if m.runtime != RuntimeKind::Ml {
        return Err(bad("its runtime is not \"ml\""));
    }
    let ml = m.ml.as_ref().ok_or_else(|| bad("no [ml] table"))?;
    if ml.get("task").and_then(toml::Value::as_str) != Some("cluster") {
        return Err(bad("[ml] task is not \"cluster\""));
    }
    let spec = ml
        .get("spec")
        .and_then(toml::Value::as_table)
        .ok_or_else(|| bad("no [ml.spec] table"))?;
    let text = toml::to_string(spec).map_err(|e| ClusterError::Bundle(e.to_string()))?;
    ClusterSpec::from_toml(&text).map_err(|e| ClusterError::Bundle(format!("[ml.spec]: {e}")))
}

/// Check that `spec` is the job `lease` pays for.
pub fn check_spec(spec: &ClusterSpec, lease: &ClusterLeaseView) -> Result<(), ClusterError> {
    let c = &spec.cluster;
    let mismatch = |what: &str, spec: u64, lease: u64| {
        Err(ClusterError::Mismatch(format!(
            "{what}: the spec says {spec}, the lease {lease}"
        )))
    };
    if c.workers as usize != lease.members.len() {
        return mismatch("workers", c.workers.into(), lease.members.len() as u64);
    }
    if c.rounds != lease.rounds {
        return mismatch("rounds", c.rounds.into(), lease.rounds.into());
    }
    if c.inner_steps != lease.inner_steps {
        return mismatch(
            "inner steps",
            c.inner_steps.into(),
            lease.inner_steps.into(),
        );
    }
    Ok(())
}

/// Where `member` is reached, from the endpoint its offer publishes: the address its host
/// resolves to (a name is resolved here, on the loop: bounded by the system resolver) and the
/// key it must authenticate with.
pub fn peer_address(
    member: &AccountId,
    endpoint: &str,
) -> Result<(orrery_types::crypto::PublicKey, SocketAddr), ClusterError> {
    let peer = |why: String| ClusterError::Peer {
        member: *member,
        why,
    };
    let contact = cluster_contact(endpoint, member).map_err(|e| peer(e.to_string()))?;
    let addr = (contact.host.as_str(), contact.port)
        .to_socket_addrs()
        .map_err(|e| peer(format!("cannot resolve {}: {e}", contact.host)))?
        .next()
        .ok_or_else(|| peer(format!("{} resolves to no address", contact.host)))?;
    Ok((contact.key, addr))
}

/// What a worker and the duty loop share.
#[derive(Default)]
struct Exchange {
    /// Commitments for the loop to sign and send: (round, commitment).
    commits: VecDeque<(u32, RoundCommit)>,
    /// The round the worker waits to see closed.
    wanted: Option<u32>,
    /// Closed rounds: worker index → its bound commitment.
    closed: BTreeMap<u32, BTreeMap<u32, Hash>>,
    /// When the loop last read the waited round from a node.
    heard: Option<Instant>,
    /// Set when the lease ended or dropped this member: settling fails with this.
    gone: Option<String>,
    /// The worker's end.
    done: Option<Result<WorkerReport, String>>,
}

/// The chain, through the duty loop, as a cluster worker's round oracle.
#[derive(Clone)]
pub struct NodeOracle {
    lease: LeaseId,
    members: Arc<Vec<AccountId>>,
    shared: Arc<Mutex<Exchange>>,
    wake: Option<Waker>,
}

impl NodeOracle {
    fn wake(&self) {
        if let Some(w) = &self.wake {
            w();
        }
    }
}

impl RoundOracle for NodeOracle {
    async fn commit(&self, round: u64, worker: u32, commit: RoundCommit) -> Result<(), String> {
        let round = u32::try_from(round).map_err(|_| format!("round {round} is past u32"))?;
        {
            let mut ex = self.shared.lock().unwrap_or_else(|p| p.into_inner());
            if ex.commits.len() >= MAX_PENDING_COMMITS {
                return Err(format!(
                    "worker {worker}: {MAX_PENDING_COMMITS} commitments already wait for the agent"
                ));
            }
            ex.commits.push_back((round, commit));
        }
        self.wake();
        Ok(())
    }

    async fn settle<C: commonware_runtime::Clock>(
        &self,
        clock: &C,
        round: u64,
        _worker: u32,
        _held: BTreeMap<u32, Hash>,
    ) -> Result<BTreeMap<u32, Hash>, String> {
        let round = u32::try_from(round).map_err(|_| format!("round {round} is past u32"))?;
        let started = Instant::now();
        {
            let mut ex = self.shared.lock().unwrap_or_else(|p| p.into_inner());
            ex.wanted = Some(round);
            ex.heard.get_or_insert(started);
        }
        self.wake();
        loop {
            {
                let ex = self.shared.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(set) = ex.closed.get(&round) {
                    return Ok(set.clone());
                }
                if let Some(why) = &ex.gone {
                    return Err(why.clone());
                }
                if ex.heard.is_some_and(|h| h.elapsed() > NODE_SILENCE) {
                    return Err(format!("no node answered for {} s", NODE_SILENCE.as_secs()));
                }
            }
            if started.elapsed() > SETTLE_LIMIT {
                return Err(format!(
                    "the chain did not close the round within {} s",
                    SETTLE_LIMIT.as_secs()
                ));
            }
            clock.sleep(POLL).await;
        }
    }

    fn names(&self, round: u64, worker: u32, delta: &Hash, named: &Hash) -> bool {
        let (Ok(round), Some(member)) = (u32::try_from(round), self.members.get(worker as usize))
        else {
            return false;
        };
        cluster_delta_commitment(self.lease, round, member, delta) == *named
    }
}

/// The set a closed round names: each kept commit's worker index and bound commitment (the
/// ledger's rule: what committed by the deadline; an excluded commit is not in it).
pub fn closed_set(round: &ClusterRoundView, members: &[AccountId]) -> BTreeMap<u32, Hash> {
    round
        .commits
        .iter()
        .filter(|c| c.status != "excluded")
        .filter_map(|c| {
            let w = members.iter().position(|m| *m == c.worker)?;
            Some((w as u32, c.delta))
        })
        .collect()
}

/// A worker this agent runs.
struct Running {
    /// This agent's worker index.
    index: u32,
    members: Vec<AccountId>,
    shared: Arc<Mutex<Exchange>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// How a cluster worker of this agent ended, for the snapshot and the logs.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ClusterOutcome {
    /// Rounds it went through.
    pub rounds: usize,
    /// Its last round's mean loss over the applied workers, as it saw it.
    pub last_loss: Option<f32>,
    /// The final weights' hash.
    pub state: Option<String>,
    /// Why it stopped early, if it did.
    pub error: Option<String>,
}

/// The cluster workers of the agent, as the duty loop sees them.
#[derive(Default)]
pub(crate) struct ClusterDuties {
    running: BTreeMap<LeaseId, Running>,
    /// Leases whose worker ended, with how; never started again.
    pub(crate) ended: BTreeMap<LeaseId, ClusterOutcome>,
    /// Leases refused, never retried.
    pub(crate) refused: BTreeMap<LeaseId, String>,
    wake: Option<Waker>,
}

/// What the loop must send for a lease: `(lease, round, the commitment, its
/// CommitClusterRound)`.
pub(crate) type Outgoing = (LeaseId, u32, RoundCommit, TxBody);

impl ClusterDuties {
    pub(crate) fn set_waker(&mut self, wake: Waker) {
        self.wake = Some(wake);
    }

    /// Put back a commitment the loop could not send (the node was unreachable): it goes
    /// first next tick.
    pub(crate) fn requeue(&mut self, lease: LeaseId, round: u32, commit: RoundCommit) {
        if let Some(r) = self.running.get(&lease) {
            let mut ex = r.shared.lock().unwrap_or_else(|p| p.into_inner());
            ex.commits.push_front((round, commit));
        }
    }

    pub(crate) fn knows(&self, lease: LeaseId) -> bool {
        self.running.contains_key(&lease)
            || self.ended.contains_key(&lease)
            || self.refused.contains_key(&lease)
    }

    /// Leases being worked for, with the round the worker waits on.
    pub(crate) fn in_flight(&self) -> BTreeMap<LeaseId, String> {
        self.running
            .iter()
            .map(|(id, r)| {
                let ex = r.shared.lock().unwrap_or_else(|p| p.into_inner());
                let at = ex
                    .wanted
                    .map_or_else(|| "starting".to_string(), |w| format!("round {w}"));
                (*id, format!("cluster worker, {at}"))
            })
            .collect()
    }

    /// Start worker `index` of `lease` on its own thread.
    pub(crate) fn start(
        &mut self,
        lease: &ClusterLeaseView,
        spec: ClusterSpec,
        cfg: WorkerConfig,
        threads: usize,
    ) -> std::io::Result<()> {
        let members: Vec<AccountId> = lease.members.iter().map(|m| m.provider).collect();
        let shared = Arc::new(Mutex::new(Exchange::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let oracle = NodeOracle {
            lease: lease.id,
            members: Arc::new(members.clone()),
            shared: shared.clone(),
            wake: self.wake.clone(),
        };
        assert!(
            (cfg.index as usize) < members.len(),
            "worker index within the members"
        );
        let (id, flag, index) = (lease.id, stop.clone(), cfg.index);
        let thread = std::thread::Builder::new()
            .name(format!("orrery-cluster-{id}"))
            .spawn(move || work(id, spec, cfg, threads, oracle, flag))?;
        self.running.insert(
            lease.id,
            Running {
                index,
                members,
                shared,
                stop,
                thread: Some(thread),
            },
        );
        Ok(())
    }

    /// Take the commitments workers handed over, as transactions to send.
    pub(crate) fn outgoing(&mut self) -> Vec<Outgoing> {
        let mut out = Vec::new();
        for (id, r) in &self.running {
            let me = r.members[r.index as usize];
            let mut ex = r.shared.lock().unwrap_or_else(|p| p.into_inner());
            while let Some((round, c)) = ex.commits.pop_front() {
                out.push((*id, round, c, commit_body(*id, round, &me, &c)));
            }
        }
        out
    }

    /// Rounds workers wait on and have not seen closed: `(lease, round)`.
    pub(crate) fn waited(&self) -> Vec<(LeaseId, u32)> {
        self.running
            .iter()
            .filter_map(|(id, r)| {
                let ex = r.shared.lock().unwrap_or_else(|p| p.into_inner());
                let w = ex.wanted?;
                (!ex.closed.contains_key(&w)).then_some((*id, w))
            })
            .collect()
    }

    /// The loop read `round` of `lease` from a node (`None`: not opened yet).
    pub(crate) fn heard(&mut self, lease: LeaseId, round: u32, view: Option<&ClusterRoundView>) {
        let Some(r) = self.running.get(&lease) else {
            return;
        };
        let mut ex = r.shared.lock().unwrap_or_else(|p| p.into_inner());
        ex.heard = Some(Instant::now());
        if let Some(v) = view.filter(|v| v.closed_at.is_some()) {
            ex.closed.insert(round, closed_set(v, &r.members));
        }
    }

    /// The lease is no longer running (it finished): a worker that still waits for a round
    /// the chain will never close fails; one past its last round ends by itself, after
    /// lingering for its peers.
    pub(crate) fn lease_over(&mut self, lease: LeaseId) {
        if let Some(r) = self.running.get(&lease) {
            r.shared
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .gone
                .get_or_insert_with(|| "the lease is no longer running".to_string());
        }
    }

    /// Stop the worker of a lease that dropped this member, or because the agent stops.
    pub(crate) fn stop(&mut self, lease: LeaseId, why: &str) {
        if let Some(r) = self.running.get(&lease) {
            r.shared.lock().unwrap_or_else(|p| p.into_inner()).gone = Some(why.to_string());
            r.stop.store(true, Ordering::Relaxed);
        }
    }

    /// Leases being worked for.
    pub(crate) fn leases(&self) -> Vec<LeaseId> {
        self.running.keys().copied().collect()
    }

    /// Join the workers that ended; returns how each ended.
    pub(crate) fn reap(&mut self) -> Vec<(LeaseId, ClusterOutcome)> {
        let finished: Vec<LeaseId> = self
            .running
            .iter()
            .filter(|(_, r)| r.thread.as_ref().is_none_or(JoinHandle::is_finished))
            .map(|(id, _)| *id)
            .collect();
        let mut out = Vec::new();
        for id in finished {
            let Some(mut r) = self.running.remove(&id) else {
                continue;
            };
            let panicked = r.thread.take().is_some_and(|t| t.join().is_err());
            let done = r
                .shared
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .done
                .take();
            let outcome = match (done, panicked) {
                (Some(Ok(report)), _) => ClusterOutcome {
                    rounds: report.rounds.len(),
                    last_loss: report.rounds.last().and_then(|r| r.loss),
                    state: Some(report.final_state.hash().to_string()),
                    error: None,
                },
                (Some(Err(e)), _) => failed(e),
                (None, true) => failed("the worker thread panicked".into()),
                (None, false) => failed("the worker thread ended without a report".into()),
            };
            self.ended.insert(id, outcome.clone());
            out.push((id, outcome));
        }
        out
    }

    /// Stop every worker and join its thread (the agent is stopping).
    pub(crate) fn shutdown(&mut self) {
        for id in self.leases() {
            self.stop(id, "the agent is stopping");
        }
        for r in self.running.values_mut() {
            if let Some(t) = r.thread.take() {
                let _ = t.join();
            }
        }
        self.running.clear();
    }
}

fn failed(error: String) -> ClusterOutcome {
    ClusterOutcome {
        rounds: 0,
        last_loss: None,
        state: None,
        error: Some(error),
    }
}

/// The `CommitClusterRound` of `worker`'s commitment.
pub fn commit_body(lease: LeaseId, round: u32, worker: &AccountId, c: &RoundCommit) -> TxBody {
    TxBody::CommitClusterRound {
        lease,
        round,
        start: c.start,
        delta: cluster_delta_commitment(lease, round, worker, &c.delta),
        loss: LossBits::of(c.loss),
    }
}

/// A worker's config: this agent's key and listening port, every member's contact.
pub fn worker_config(
    key: &Keypair,
    index: u32,
    port: u16,
    peers: Vec<(orrery_types::crypto::PublicKey, SocketAddr)>,
    round_timeout: Duration,
) -> WorkerConfig {
    WorkerConfig {
        index,
        key: key.private_key().clone(),
        listen: SocketAddr::from(([0, 0, 0, 0], port)),
        members: peers,
        round_timeout,
        start: None,
        linger: LINGER,
    }
}

/// The worker thread: load the job, run the worker in a runtime of its own until it ends or
/// `stop` is set, leave its end in the shared state and wake the loop.
fn work(
    lease: LeaseId,
    spec: ClusterSpec,
    cfg: WorkerConfig,
    threads: usize,
    oracle: NodeOracle,
    stop: Arc<AtomicBool>,
) {
    use commonware_runtime::{Clock as _, Runner as _, Supervisor as _};
    let shared = oracle.shared.clone();
    let wake = oracle.wake.clone();
    let index = cfg.index;
    let result = match ClusterJob::new(spec, threads.max(1)) {
        Err(e) => Err(format!("the cluster job does not load: {e}")),
        Ok(job) => {
            let job = Arc::new(job);
            commonware_runtime::tokio::Runner::default().start(|context| async move {
                let watch = context.child("stop");
                let stopped = async move {
                    while !stop.load(Ordering::Relaxed) {
                        watch.sleep(POLL).await;
                    }
                };
                let worker = orrery_cluster::run_worker(context.child("worker"), cfg, job, oracle);
                match futures::future::select(Box::pin(worker), Box::pin(stopped)).await {
                    futures::future::Either::Left((r, _)) => r.map_err(|e| e.to_string()),
                    futures::future::Either::Right(_) => Err("stopped".to_string()),
                }
            })
        }
    };
    match &result {
        Ok(r) => tracing::info!(
            lease,
            worker = index,
            rounds = r.rounds.len(),
            state = %r.final_state.hash().short(),
            "cluster worker finished"
        ),
        Err(e) => tracing::warn!(lease, worker = index, error = %e, "cluster worker stopped"),
    }
    shared.lock().unwrap_or_else(|p| p.into_inner()).done = Some(result);
    if let Some(w) = wake {
        w();
    }
}

#[cfg(test)]
mod tests;
