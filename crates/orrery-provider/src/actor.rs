//! The agent's duty loop: poll the chain, decide ([`crate::decide`]) and act, until stopped.
//!
//! # Threads
//!
//! ```text
//!  mailbox (Stop, Snapshot, Wake) ──▶ duty loop ──── start / cancel ────▶ worker threads
//!                                     (this file)                         (crate::runs)
//!                                          ▲                                    │
//!                                          └──── Report + Wake when one ends ───┘
//! ```
//!
//! The **duty loop** (one thread, [`Worker::run`]) does everything that has a chain deadline:
//! registration, bonding and heartbeats, `StartLease`, `CommitResult`, `CommitCheck`,
//! `RevealResult`, dispute moves and `Adjudicate`. It never runs a job, so a long job cannot
//! make it miss a 25-block round. Its slowest steps are HTTP calls to the node, each bounded
//! by the client's timeout (30 s): the bundle's download before `StartLease` and the output's
//! upload before `CommitResult` still happen on this loop, and a large one over a slow link
//! delays the other leases' duties by as long.
//!
//! **Worker threads** ([`crate::runs`]) do everything that may take as long as a job: the
//! provider's runs ([`Lane::Job`]), verifiers' re-executions ([`Lane::Verify`]) and the referee
//! input's replay ([`Lane::Referee`]), each lane bounded. A task writes its run to the lease's
//! folder and reports back through a channel; the loop reads the folder on its next tick (and
//! is woken for it at once). At most one task works for a lease at a time; a lease whose lane is
//! full waits, already started, for a free place.
//!
//! # One tick
//!
//! 1. Collect the reports of tasks that ended (count finished runs, keep replayed states,
//!    record failures: a run that failed for a host reason or a wall-clock timeout is started
//!    again on a later tick; a job's deterministic failure is a finished run, committed as a
//!    failure claim).
//! 2. Read the head (chain id, height, time) and this account's nonce.
//! 3. Make sure the provider is registered with the configured offer and bonded to the
//!    configured stake (`RegisterProvider`, `UpdateProvider`, `Bond`); this is also the
//!    heartbeat: a changed offer (hardware, prices, region, endpoint) is re-announced.
//! 4. For every active lease where this agent is the provider or a drawn verifier, act on
//!    [`decide`]: fetch the bundle and start, hand the run to a worker (resuming a saved
//!    snapshot), publish the output, commit, check, reveal, move in a dispute, give the
//!    referee its input (its state replayed by a worker first).
//! 5. Forget the folders of leases that became final (cancelling any task still working for
//!    one first).
//!
//! # Nonces and resending
//!
//! The agent numbers its transactions itself so it can send several per block, and keeps
//! every one it signed in its [`Outbox`] until the chain has ruled on it (see
//! [`crate::outbox`] for the rules): a step is never signed twice while its transaction
//! waits, a waiting transaction is resubmitted byte for byte, and an included one's receipt is
//! read, so a refusal is logged with the ledger's reason the block it happens — not noticed
//! when a deadline has passed.
//!
//! # Stopping
//!
//! The loop checks the stop flag every tick and is woken by the `Stop` message. It then
//! cancels every task (a run saves a snapshot at the step it reached and returns), joins the
//! worker threads and exits. A restart resumes each job from its snapshot.

use crate::chain::{Chain, ChainError, TxOutcome};
use crate::config::ProviderConfig;
use crate::decide::{Action, Head, LeaseInfo, Role, decide, role};
use crate::ingress::Message;
use crate::outbox::{Outbox, SendKey, Subject};
use crate::runner::{JobBundle, RunEnd, RunJobError, RunSettings};
use crate::runs::{Done, Lane, LaneLimits, REFEREE_REPLAYS, Report, Runs};
use crate::store::{LeaseDir, Store};
use orrery_exec::Bundle;
use orrery_ledger::entries::LeaseState;
use orrery_types::amount::Amount;
use orrery_types::codec::Blob;
use orrery_types::crypto::{AccountId, Keypair};
use orrery_types::hash::Hash;
use orrery_types::merkle::MerkleTree;
use orrery_types::tx::{ChainId, LeaseId, ProviderOffer, Tx, TxBody};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

mod challenge;
mod cluster;
mod infer;

pub use challenge::ChallengeSnapshot;
pub use infer::InferenceSnapshot;

/// Why the agent could not act.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The chain could not be read or refused a transaction.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The data directory failed.
    #[error("data directory: {0}")]
    Io(#[from] std::io::Error),
    /// The wasm engine could not be built.
    #[error(transparent)]
    Exec(#[from] orrery_exec::ExecError),
    /// A job failed.
    #[error(transparent)]
    Job(#[from] RunJobError),
    /// A worker thread's run or replay failed (it is started again on a later tick).
    #[error("lease {lease}: {lane} run failed: {reason}")]
    Run {
        /// The lease.
        lease: LeaseId,
        /// The lane it ran in.
        lane: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// Inference serving could not start.
    #[error(transparent)]
    Serve(#[from] crate::serve::ServeError),
    /// An inference duty could not be done.
    #[error("inference: {0}")]
    Inference(String),
    /// A challenge could not be solved or opened.
    #[error("challenge: {0}")]
    Challenge(String),
    /// The bundle for a lease is missing or is not the lease's job.
    #[error("lease {lease}: {reason}")]
    Bundle {
        /// The lease.
        lease: LeaseId,
        /// What is wrong.
        reason: String,
    },
}

/// What a running agent reports about itself.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct AgentSnapshot {
    /// The provider account.
    pub account: String,
    /// Ticks completed.
    pub ticks: u64,
    /// Transactions submitted.
    pub txs_sent: u64,
    /// Transactions the chain included but refused.
    pub txs_refused: u64,
    /// The last refusal: lease, kind, nonce and the ledger's reason.
    pub last_refusal: Option<String>,
    /// Transactions sent and not yet in a block.
    pub txs_pending: usize,
    /// Runs finished (as provider or verifier).
    pub runs_finished: u64,
    /// Leases this agent is acting on, with the state each was last seen in.
    pub leases: BTreeMap<LeaseId, String>,
    /// Leases a worker thread is working for, with its lane (`job`, `verify`, `referee`).
    pub running: BTreeMap<LeaseId, String>,
    /// The benchmark score measured at start (MFLOP/s), if run.
    pub benchmark_score: Option<f64>,
    /// The GPU backend ML leases that reserve GPUs run on (adapter name), if any.
    pub gpu_backend: Option<String>,
    /// The same benchmark on the GPU backend (MFLOP/s, host transfers included), if any.
    pub gpu_benchmark_score: Option<f64>,
    /// Leases refused before they started because they reserve GPUs this machine lacks now.
    pub leases_refused: u64,
    /// The last error, if the last tick failed.
    pub last_error: Option<String>,
    /// Inference serving, settlements and checks (`None` when not serving).
    pub inference: Option<InferenceSnapshot>,
    /// Challenges solved, answered, opened and requested.
    pub challenges: ChallengeSnapshot,
    /// Cluster leases whose worker ended here, with how (see [`crate::cluster`]).
    pub cluster: BTreeMap<LeaseId, crate::cluster::ClusterOutcome>,
}

/// The duty loop's state between ticks, and its worker threads. Public so tests and
/// simulations can drive it tick by tick against any [`Chain`] (waiting for its runs with
/// [`Worker::wait_for_runs`] where they want a deterministic order).
pub struct Worker<C: Chain> {
    chain: C,
    key: Keypair,
    me: AccountId,
    offer: ProviderOffer,
    stake: Amount,
    act_as_verifier: bool,
    store: Store,
    runs: Runs,
    /// States replayed for the referee, by lease and step (dropped when the lease is final).
    referee_states: BTreeMap<(LeaseId, u64), Vec<u8>>,
    stop: Arc<AtomicBool>,
    chain_id: Option<ChainId>,
    /// Every transaction signed, until the chain has ruled on it.
    outbox: Outbox,
    /// Leases whose output this agent has published.
    uploaded: BTreeSet<LeaseId>,
    snapshot: AgentSnapshot,
    /// The serving lane's shared state, when serving inference.
    serving: Option<Arc<crate::serve::Serving>>,
    /// The serving lane's HTTP server (stops when the worker is dropped).
    server: Option<crate::serve::ServerHandle>,
    infer: infer::InferDuties,
    /// The self-checked GPU backend, when one was found (see [`crate::gpu`]).
    ml_gpu: Option<crate::gpu::MlGpu>,
    /// Leases already refused (logged once each).
    refused: BTreeSet<LeaseId>,
    challenge: challenge::ChallengeDuty,
    /// Cluster training: the `[cluster]` table (none: never a worker) and the workers.
    cluster_config: Option<crate::config::ClusterConfig>,
    cluster: crate::cluster::ClusterDuties,
    /// ML threads, for cluster workers too.
    threads: usize,
}

impl<C: Chain> Worker<C> {
    /// A worker for `config` offering `offer` (hardware already decided), over `chain`.
    pub fn new(
        config: &ProviderConfig,
        offer: ProviderOffer,
        chain: C,
        stop: Arc<AtomicBool>,
    ) -> Result<Self, AgentError> {
        let key = config.keypair()?;
        let me = key.account();
        let stake = config.stake.ok_or(crate::config::ConfigError::NoStake {
            minimum: Amount::ZERO,
        })?;
        // The solver uses every core the provider claims, and no more than the machine has.
        let solver_threads = usize::from(offer.hardware.cpu_cores)
            .min(std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get));
        Ok(Worker {
            chain,
            me,
            key,
            offer,
            stake,
            act_as_verifier: config.verifier,
            store: Store::open(&config.data_dir)?,
            runs: Runs::new(
                orrery_exec::Runtime::new()?,
                RunSettings {
                    cheat: config.cheat,
                    threads: config.threads,
                    save_every: config.save_every_steps.max(1),
                },
                LaneLimits {
                    job: config.max_job_runs.max(1),
                    verify: config.max_verify_runs.max(1),
                    referee: REFEREE_REPLAYS,
                },
            ),
            referee_states: BTreeMap::new(),
            stop,
            chain_id: None,
            outbox: Outbox::new(),
            uploaded: BTreeSet::new(),
            serving: None,
            server: None,
            infer: infer::InferDuties::new(config.max_verify_runs.max(1), config.threads.max(1)),
            challenge: challenge::ChallengeDuty::new(solver_threads),
            snapshot: AgentSnapshot {
                account: me.to_string(),
                ..AgentSnapshot::default()
            },
            ml_gpu: None,
            refused: BTreeSet::new(),
            cluster_config: config.cluster.clone(),
            cluster: crate::cluster::ClusterDuties::default(),
            threads: config.threads.max(1),
        })
    }

    /// Run ML leases that reserve GPUs on `gpu` (opened and self-checked by [`crate::gpu::open`]).
    pub fn use_gpu(&mut self, gpu: crate::gpu::MlGpu) {
        self.snapshot.gpu_backend = Some(gpu.device.name());
        // Challenges are sized for the GPUs the offer claims, so those GPUs help answer them.
        // A software adapter (lavapipe) computes on the same cores as the solver's threads, far
        // slower: it would only hold back blocks of rows.
        let hardware_gpu = matches!(&gpu.device, orrery_ml::Device::Gpu(ctx) if !ctx.is_software());
        if self.offer.hardware.gpu.is_some() && hardware_gpu {
            self.challenge.gpu = Some(gpu.device.clone());
        }
        self.ml_gpu = Some(gpu);
    }

    /// The device a lease's ML job runs on, or why the lease is refused: a lease that reserves
    /// GPUs runs on the GPU backend, one that reserves none on the CPU path.
    fn device_for(&self, lease: &LeaseInfo) -> Result<orrery_ml::Device, String> {
        let requested = lease.terms.resources.gpus;
        let present = self.ml_gpu.as_ref().map_or(0, |g| g.present());
        crate::gpu::admit(requested, present, self.ml_gpu.is_some())?;
        Ok(match (&self.ml_gpu, requested) {
            (Some(g), 1..) => g.device.clone(),
            _ => orrery_ml::Device::Cpu,
        })
    }

    /// Log a refusal once per lease and count it.
    fn refuse(&mut self, lease: LeaseId, reason: &str) {
        if self.refused.insert(lease) {
            tracing::warn!(lease, reason, "lease refused");
            self.snapshot.leases_refused += 1;
        }
    }

    /// The provider account.
    pub fn account(&self) -> AccountId {
        self.me
    }

    /// The chain this worker talks to.
    pub fn chain(&self) -> &C {
        &self.chain
    }

    /// What the worker has done so far.
    pub fn snapshot(&self) -> AgentSnapshot {
        let mut s = self.snapshot.clone();
        s.inference = self.inference_snapshot();
        s.challenges = self.challenge.stats.clone();
        s
    }

    /// Record the benchmark score for the snapshot.
    pub fn set_benchmark(&mut self, score: f64) {
        self.snapshot.benchmark_score = Some(score);
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Call `wake` whenever a worker thread ends a task (the agent's loop uses it to tick at
    /// once instead of at its next poll).
    pub fn set_waker(&mut self, wake: impl Fn() + Send + Sync + 'static) {
        let wake: crate::runs::Waker = Arc::new(wake);
        self.runs.set_waker(wake.clone());
        self.challenge.set_waker(wake.clone());
        self.cluster.set_waker(wake.clone());
        self.infer.set_waker(wake);
    }

    /// Leases a worker thread is working for, with the lane.
    pub fn running(&self) -> BTreeMap<LeaseId, String> {
        self.runs.in_flight()
    }

    /// Wait until no worker thread is working (or `timeout` passed), taking in what they
    /// report as a tick would. Returns whether they are all idle. For tests and simulations
    /// that want each block to see every run finished.
    pub fn wait_for_runs(&mut self, timeout: Duration) -> bool {
        for r in self.runs.wait_idle(timeout) {
            if let Err(e) = self.take_report(r) {
                tracing::warn!(error = %e, "run failed");
                self.snapshot.last_error = Some(e.to_string());
            }
        }
        self.snapshot.running = self.runs.in_flight();
        self.runs.is_idle()
    }

    /// Cancel every worker thread's task and join the threads: a run saves a snapshot at the
    /// step it reached. What the loop does when it stops.
    pub fn shutdown(&mut self) {
        for r in self.runs.shutdown() {
            if let Err(e) = self.take_report(r) {
                tracing::warn!(error = %e, "run failed while stopping");
            }
        }
        self.snapshot.running.clear();
        self.cluster.shutdown();
        self.challenge.call_off();
        self.infer.join();
        // The serving lane stops with the agent.
        self.server = None;
    }

    /// Take in one worker report; a failure is returned (the run is started again later).
    fn take_report(&mut self, report: Report) -> Result<(), AgentError> {
        let lease = report.lease;
        match report.result {
            Ok(Done::Run(RunEnd::Finished(o))) => {
                self.snapshot.runs_finished += 1;
                tracing::info!(lease, lane = report.lane.name(), root = %o.claim.checkpoint_root, units = o.units, "run finished");
            }
            Ok(Done::Run(RunEnd::Stopped { k })) => {
                tracing::info!(lease, k, "run stopped; progress saved");
            }
            Ok(Done::State { k, state }) => {
                self.referee_states.insert((lease, k), state);
            }
            Ok(Done::Cancelled) => {}
            Err(reason) => {
                return Err(AgentError::Run {
                    lease,
                    lane: report.lane.name(),
                    reason,
                });
            }
        }
        Ok(())
    }

    /// One pass: take in what the worker threads finished, read the chain, act on every lease
    /// of ours. Never waits for a run. Per-lease failures are logged and do not stop the
    /// others; the first is returned.
    pub fn tick(&mut self) -> Result<(), AgentError> {
        let mut first_error = None;
        for r in self.runs.collect(Duration::ZERO) {
            if let Err(e) = self.take_report(r) {
                tracing::warn!(error = %e, "run failed; it starts again on a later tick");
                first_error.get_or_insert(e);
            }
        }
        if self.stopping() {
            self.runs.cancel_all();
        }
        let head = self.chain.head()?;
        self.chain_id = Some(head.chain_id.clone());
        let head = head.head;
        self.sync_outbox(head)?;
        let registered = self.ensure_provider(head)?;
        if let Err(e) = self.challenge_duties(head, registered) {
            tracing::warn!(error = %e, "challenge duty failed");
            first_error.get_or_insert(e);
        }
        if let Err(e) = self.inference_duties(head, registered) {
            first_error.get_or_insert(e);
        }
        if let Err(e) = self.cluster_duties(head, registered) {
            tracing::warn!(error = %e, "cluster duty failed");
            first_error.get_or_insert(e);
        }
        let leases = self.chain.active_leases(&self.me)?;
        let mut seen = BTreeSet::new();
        let mut mine = BTreeMap::new();
        for lease in leases {
            let Some(r) = role(&self.me, &lease) else {
                continue;
            };
            seen.insert(lease.id);
            mine.insert(lease.id, lease.state.name().to_string());
            if matches!(r, Role::Verifier(_)) && !self.act_as_verifier {
                continue;
            }
            if self.stopping() {
                break;
            }
            if let Err(e) = self.handle(&lease, r, head) {
                tracing::warn!(lease = lease.id, error = %e, "could not act on lease");
                first_error.get_or_insert(e);
            }
        }
        self.snapshot.leases = mine;
        self.forget_final(&seen);
        self.snapshot.running = self.runs.in_flight();
        self.snapshot.running.extend(self.cluster.in_flight());
        self.snapshot.ticks += 1;
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn forget_final(&mut self, active: &BTreeSet<LeaseId>) {
        for id in self.store.leases() {
            if active.contains(&id) {
                continue;
            }
            if self.runs.busy(id) {
                // Not ours any more (final, or we were dropped): stop working for it; the
                // folder goes once the task has ended.
                self.runs.cancel(id);
                continue;
            }
            let is_final = match self.chain.lease(id) {
                Ok(Some(l)) => !l.state.is_active(),
                Ok(None) => true,
                Err(_) => false,
            };
            if is_final {
                if let Err(e) = self.store.lease(id).remove() {
                    tracing::warn!(lease = id, error = %e, "cannot remove a final lease's folder");
                }
                self.outbox.forget_lease(id);
                self.uploaded.remove(&id);
                self.referee_states.retain(|(l, _), _| *l != id);
            }
        }
    }

    /// Read the account's nonce, take in what the chain included (reading each receipt, so a
    /// refusal is reported at once), resubmit what still waits, and report what is stuck.
    fn sync_outbox(&mut self, head: Head) -> Result<(), AgentError> {
        let (_, chain_nonce) = self.chain.account(&self.me)?;
        self.outbox.observe(chain_nonce, head.height);
        for included in self.outbox.awaiting_receipts().to_vec() {
            let (subject, kind, _) = included.key;
            match self.chain.tx_outcome(&included.hash) {
                Ok(TxOutcome::Applied) => self.outbox.receipt_read(&included.hash),
                Ok(TxOutcome::Refused(reason)) => {
                    self.outbox.receipt_read(&included.hash);
                    tracing::warn!(
                        lease = subject.lease(),
                        %subject,
                        kind,
                        nonce = included.nonce,
                        %reason,
                        "the chain refused our transaction"
                    );
                    self.snapshot.txs_refused += 1;
                    self.snapshot.last_refusal = Some(match subject {
                        Subject::Lease(l) => {
                            format!("{kind} (lease {l}, nonce {}): {reason}", included.nonce)
                        }
                        Subject::Account => {
                            format!("{kind} (lease -, nonce {}): {reason}", included.nonce)
                        }
                        other => format!("{kind} ({other}, nonce {}): {reason}", included.nonce),
                    });
                }
                // Not indexed yet: asked again next tick, for a bounded time.
                Ok(TxOutcome::Unknown) | Err(_) => {}
            }
        }
        for gone in self.outbox.expire_receipts(head.height) {
            tracing::debug!(
                nonce = gone.nonce,
                kind = gone.key.1,
                "no receipt for an included transaction"
            );
        }
        for tx in self.outbox.due_for_resubmission(head.height) {
            match self.chain.submit(&tx) {
                Ok(_) | Err(ChainError::StaleNonce(_)) => {}
                Err(e) => tracing::warn!(
                    nonce = tx.tx.nonce,
                    kind = tx.tx.body.kind(),
                    error = %e,
                    "cannot resubmit a waiting transaction; trying again in a few blocks"
                ),
            }
        }
        for stuck in self.outbox.newly_stuck(head.height) {
            tracing::warn!(
                nonce = stuck.tx.tx.nonce,
                kind = stuck.key.1,
                subject = %stuck.key.0,
                since = stuck.first_sent,
                chain_nonce,
                "a transaction is still out of every block; resubmitting it, and every later one waits for it"
            );
        }
        self.snapshot.txs_pending = self.outbox.pending_len();
        Ok(())
    }

    fn recently_sent(&self, key: SendKey, head: Head) -> bool {
        !self.outbox.may_send(key, head.height)
    }

    fn send(&mut self, body: TxBody, key: (LeaseId, u64), head: Head) -> Result<(), AgentError> {
        self.send_for(body, (Subject::Lease(key.0), key.1), head)
            .map(|_| ())
    }

    /// Sign and submit `body` for `subject` at `stage` unless the outbox holds it back
    /// ([`crate::outbox`]'s rules). `true` when a new transaction was sent.
    pub(crate) fn send_for(
        &mut self,
        body: TxBody,
        (subject, stage): (Subject, u64),
        head: Head,
    ) -> Result<bool, AgentError> {
        let key = (subject, body.kind(), stage);
        if self.recently_sent(key, head) {
            return Ok(false);
        }
        let chain_id = self
            .chain_id
            .clone()
            .ok_or_else(|| ChainError::Unavailable("chain id not read yet".into()))?;
        for attempt in 0..2 {
            let nonce = self.outbox.next_nonce();
            let tx = Tx {
                chain_id: chain_id.clone(),
                nonce,
                body: body.clone(),
            }
            .sign(&self.key);
            match self.chain.submit(&tx) {
                Ok(_) => {
                    tracing::info!(kind = body.kind(), subject = %subject, nonce, "sent");
                    self.outbox.sent(key, tx, head.height);
                    self.snapshot.txs_sent += 1;
                    self.snapshot.txs_pending = self.outbox.pending_len();
                    return Ok(true);
                }
                Err(ChainError::StaleNonce(_)) if attempt == 0 => {
                    // Our view of the nonce is behind the node's: catch up and sign again.
                    let (_, chain_nonce) = self.chain.account(&self.me)?;
                    self.outbox.observe(chain_nonce, head.height);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ChainError::StaleNonce("nonce still stale after re-reading it".into()).into())
    }

    /// Register, update and bond as configured; `true` when the chain has the provider
    /// registered.
    fn ensure_provider(&mut self, head: Head) -> Result<bool, AgentError> {
        let record = self.chain.provider(&self.me)?;
        let bonded = match &record {
            None => {
                self.send_for(
                    TxBody::RegisterProvider(self.offer.clone()),
                    (Subject::Account, 0),
                    head,
                )?;
                Amount::ZERO
            }
            Some(p) => {
                if p.offer != self.offer {
                    self.send_for(
                        TxBody::UpdateProvider(self.offer.clone()),
                        (Subject::Account, 0),
                        head,
                    )?;
                }
                p.stake
            }
        };
        if bonded < self.stake {
            let amount = self.stake.checked_sub(bonded).unwrap_or(Amount::ZERO);
            let (balance, _) = self.chain.account(&self.me)?;
            if balance < amount {
                tracing::warn!(%balance, needed = %amount, "balance too low to bond the configured stake: fund the account");
            } else {
                self.send_for(TxBody::Bond { amount }, (Subject::Account, 0), head)?;
            }
        }
        Ok(record.is_some())
    }

    fn bundle(&self, lease: &LeaseInfo, dir: &LeaseDir) -> Result<JobBundle, AgentError> {
        let bad = |reason: String| AgentError::Bundle {
            lease: lease.id,
            reason,
        };
        let (bytes, fetched) = match dir.bundle() {
            Some(b) => (b, false),
            None => (
                self.chain
                    .bundle(&lease.job)?
                    .ok_or_else(|| bad(format!("the node has no bundle {}", lease.job)))?,
                true,
            ),
        };
        let bundle = match Bundle::decode(&bytes) {
            Ok(bundle) => bundle,
            // The lease's own bytes, but no bundle: the job fails at init (a failure claim).
            Err(e) if Hash::of(&bytes) == lease.job => {
                if fetched {
                    dir.save_bundle(&bytes)?;
                }
                let error = e.to_string();
                return Ok(JobBundle::Undecodable { bytes, error });
            }
            Err(e) => return Err(bad(e.to_string())),
        };
        if bundle.hash() != lease.job {
            return Err(bad(format!(
                "bundle hashes to {}, the lease names {}",
                bundle.hash(),
                lease.job
            )));
        }
        if fetched {
            dir.save_bundle(&bytes)?;
        }
        Ok(JobBundle::Bundle(Box::new(bundle)))
    }

    fn publish_output(&mut self, lease: LeaseId, dir: &LeaseDir) {
        if self.uploaded.contains(&lease) {
            return;
        }
        let Some(output) = dir.output() else {
            return;
        };
        match self.chain.put_output(&output) {
            Ok(()) => {
                self.uploaded.insert(lease);
            }
            Err(e) => {
                tracing::warn!(lease, error = %e, "could not upload the output; retrying next tick")
            }
        }
    }

    /// Act on one lease: one decision per tick (a run's end wakes the loop for the next one).
    /// Never waits for a run: runs and replays go to the worker threads.
    fn handle(&mut self, lease: &LeaseInfo, role: Role, head: Head) -> Result<(), AgentError> {
        let dir = self.store.lease(lease.id);
        let stage = match &lease.state {
            LeaseState::Disputed(d) => (u64::from(d.round) << 1) | u64::from(d.awaiting_referee),
            _ => 0,
        };
        let outcome = dir.outcome();
        match decide(&self.me, lease, head, outcome.as_ref()) {
            Action::Wait => Ok(()),
            Action::Forget => {
                if self.runs.busy(lease.id) {
                    self.runs.cancel(lease.id);
                    return Ok(());
                }
                self.referee_states.retain(|(l, _), _| *l != lease.id);
                self.refused.remove(&lease.id);
                Ok(dir.remove()?)
            }
            Action::Start => {
                if let Err(reason) = self.device_for(lease) {
                    self.refuse(lease.id, &reason);
                    return Ok(());
                }
                self.bundle(lease, &dir)?;
                self.send(TxBody::StartLease { lease: lease.id }, (lease.id, 0), head)
            }
            Action::Run => {
                let lane = match role {
                    Role::Provider => Lane::Job,
                    Role::Verifier(_) => Lane::Verify,
                };
                if self.stopping() || self.runs.busy(lease.id) || !self.runs.has_room(lane) {
                    return Ok(());
                }
                // A verifier re-executes on whatever it has: every admitted device gives the
                // CPU reference's bits. The provider runs a GPU lease only on a GPU.
                let device = match (self.device_for(lease), role) {
                    (Ok(d), _) => d,
                    (Err(_), Role::Verifier(_)) => orrery_ml::Device::Cpu,
                    (Err(reason), Role::Provider) => {
                        self.refuse(lease.id, &reason);
                        return Ok(());
                    }
                };
                let bundle = self.bundle(lease, &dir)?;
                let on = device.name();
                if self.runs.start_run(lease.id, lane, bundle, dir, device)? {
                    tracing::info!(lease = lease.id, lane = lane.name(), device = %on, "running the job");
                }
                Ok(())
            }
            Action::Send(body) => {
                // The output is the requester's product: publish it (the provider's, once)
                // before committing or revealing; a failed upload is retried next tick.
                if lease.provider == self.me
                    && matches!(
                        body,
                        TxBody::CommitResult { .. } | TxBody::RevealResult { .. }
                    )
                {
                    self.publish_output(lease.id, &dir);
                }
                self.send(body, (lease.id, stage), head)
            }
            Action::Adjudicate(input) => {
                let key = (Subject::Lease(lease.id), "adjudicate", stage);
                if self.recently_sent(key, head) {
                    return Ok(());
                }
                let Some(outcome) = outcome else {
                    return Ok(());
                };
                let bundle = self.bundle(lease, &dir)?;
                let state = match input.state {
                    None => Vec::new(),
                    Some(k) => match self.referee_states.get(&(lease.id, k)) {
                        Some(state) => state.clone(),
                        None => {
                            // Replayed on the referee lane; sent on the tick after.
                            if !self.stopping()
                                && self.runs.start_replay(lease.id, bundle, dir, k)?
                            {
                                tracing::info!(
                                    lease = lease.id,
                                    k,
                                    "replaying the state for the referee"
                                );
                            }
                            return Ok(());
                        }
                    },
                };
                let proof = MerkleTree::new(&outcome.checkpoints)
                    .proof(input.proof_leaf)
                    .ok_or_else(|| AgentError::Bundle {
                        lease: lease.id,
                        reason: format!("no checkpoint {} to prove", input.proof_leaf),
                    })?;
                let too_big = |what: &str| AgentError::Bundle {
                    lease: lease.id,
                    reason: format!("the {what} is too large for the referee"),
                };
                let body = TxBody::Adjudicate {
                    lease: lease.id,
                    bundle: Blob::new(bundle.bytes().to_vec()).map_err(|_| too_big("bundle"))?,
                    state: Blob::new(state).map_err(|_| too_big("state"))?,
                    proof,
                };
                self.send(body, (lease.id, stage), head)
            }
        }
    }

    /// The duty loop: tick, then wait for the poll interval or a message (a worker's `Wake`
    /// cuts the wait short); on stop, cancel and join the worker threads and exit.
    pub fn run(mut self, mailbox: Receiver<Message>, poll: Duration) {
        if self.snapshot.benchmark_score.is_none() {
            let b = crate::benchmark::run();
            tracing::info!(
                score = b.score,
                wall_ms = b.wall.as_millis() as u64,
                "benchmark"
            );
            self.snapshot.benchmark_score = Some(b.score);
            if let Some(gpu) = &self.ml_gpu {
                match crate::benchmark::run_on(&gpu.device) {
                    Ok(g) if g.digest == b.digest => {
                        tracing::info!(
                            score = g.score,
                            ratio = g.score / b.score,
                            wall_ms = g.wall.as_millis() as u64,
                            "GPU benchmark (same product bits as the CPU)"
                        );
                        self.snapshot.gpu_benchmark_score = Some(g.score);
                    }
                    Ok(_) => {
                        tracing::warn!(
                            "the GPU benchmark's product differs from the CPU's; ML jobs run on the CPU path"
                        );
                        self.ml_gpu = None;
                        self.challenge.gpu = None;
                        self.snapshot.gpu_backend = None;
                    }
                    Err(e) => tracing::warn!(error = %e, "GPU benchmark failed"),
                }
            }
        }
        loop {
            if self.stopping() {
                break;
            }
            match self.tick() {
                Ok(()) => self.snapshot.last_error = None,
                Err(e) => {
                    tracing::warn!(error = %e, "tick failed");
                    self.snapshot.last_error = Some(e.to_string());
                }
            }
            match mailbox.recv_timeout(poll) {
                Ok(Message::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(Message::Snapshot(reply)) => {
                    self.snapshot.running = self.runs.in_flight();
                    self.snapshot.running.extend(self.cluster.in_flight());
                    let _ = reply.try_send(self.snapshot());
                }
                Ok(Message::Wake) | Err(RecvTimeoutError::Timeout) => {}
            }
        }
        self.shutdown();
        tracing::info!(account = %self.me, "provider agent stopped");
    }
}
