//! The agent's loop: poll the chain, decide ([`crate::decide`]) and act, until stopped.
//!
//! # One tick
//!
//! 1. Read the head (chain id, height, time) and this account's nonce.
//! 2. Make sure the provider is registered with the configured offer and bonded to the
//!    configured stake (`RegisterProvider`, `UpdateProvider`, `Bond`); this is also the
//!    heartbeat: a changed offer (hardware, prices, region, endpoint) is re-announced.
//! 3. For every active lease where this agent is the provider or a drawn verifier, act on
//!    [`decide`]: fetch the bundle and start, run (resuming a saved snapshot), publish the
//!    output, commit, check, reveal, move in a dispute, give the referee its input.
//! 4. Forget the folders of leases that became final.
//!
//! # Nonces
//!
//! The agent keeps the next nonce itself so it can send several transactions per block. It
//! adopts the chain's nonce when that is higher, re-reads it and retries once on a stale-nonce
//! refusal, and falls back to the chain's nonce (forgetting what it believed sent) when the
//! chain has not caught up for [`NONCE_STALL_BLOCKS`] blocks — a refused transaction does not
//! use its nonce, so later ones would otherwise wait forever.
//!
//! # Resending
//!
//! A transaction for a given lease and stage is sent once and re-sent only if the lease is
//! still waiting for it [`RESEND_AFTER_BLOCKS`] blocks later (it was dropped or refused).
//!
//! # Stopping
//!
//! The stop flag is checked between job steps: a running job saves a snapshot and returns; the
//! loop exits. A restart resumes the job from that snapshot.

use crate::chain::{Chain, ChainError};
use crate::config::ProviderConfig;
use crate::decide::{Action, Head, LeaseInfo, decide, role};
use crate::ingress::Message;
use crate::runner::{RunEnd, RunJobError, RunSettings, run_job, state_at};
use crate::store::{LeaseDir, Store};
use orrery_exec::Bundle;
use orrery_ledger::entries::LeaseState;
use orrery_types::amount::Amount;
use orrery_types::codec::Blob;
use orrery_types::crypto::{AccountId, Keypair};
use orrery_types::merkle::MerkleTree;
use orrery_types::tx::{ChainId, LeaseId, ProviderOffer, Tx, TxBody};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};

/// Blocks after which a transaction the chain still waits for is sent again.
pub const RESEND_AFTER_BLOCKS: u64 = 3;
/// Blocks the chain's nonce may lag ours (counted from our last send and the chain nonce's last
/// move) before we assume our pending transactions are lost. Equal to [`RESEND_AFTER_BLOCKS`],
/// so the nonce is reset before anything is re-sent, never after.
pub const NONCE_STALL_BLOCKS: u64 = RESEND_AFTER_BLOCKS;
/// Decisions acted on per lease per tick (start → run → commit can chain in one tick).
pub const MAX_ACTIONS_PER_LEASE: usize = 3;
/// Key of account-level transactions in the sent table.
const ACCOUNT_KEY: LeaseId = LeaseId::MAX;

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
    /// Runs finished (as provider or verifier).
    pub runs_finished: u64,
    /// Leases this agent is acting on, with the state each was last seen in.
    pub leases: BTreeMap<LeaseId, String>,
    /// The benchmark score measured at start (MFLOP/s), if run.
    pub benchmark_score: Option<f64>,
    /// The last error, if the last tick failed.
    pub last_error: Option<String>,
}

/// The agent's state between ticks. Public so tests and simulations can drive it tick by tick
/// against any [`Chain`].
pub struct Worker<C: Chain> {
    chain: C,
    key: Keypair,
    me: AccountId,
    offer: ProviderOffer,
    stake: Amount,
    settings: RunSettings,
    act_as_verifier: bool,
    store: Store,
    runtime: orrery_exec::Runtime,
    stop: Arc<AtomicBool>,
    chain_id: Option<ChainId>,
    next_nonce: Option<u64>,
    /// (chain nonce, height first seen at) to detect a stalled nonce.
    chain_nonce_seen: (u64, u64),
    /// Height at which we last sent a transaction.
    last_sent_height: u64,
    sent: BTreeMap<(LeaseId, &'static str, u64), u64>,
    /// Leases whose output this agent has published.
    uploaded: BTreeSet<LeaseId>,
    snapshot: AgentSnapshot,
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
        Ok(Worker {
            chain,
            me,
            key,
            offer,
            stake,
            settings: RunSettings {
                cheat: config.cheat,
                threads: config.threads,
                save_every: config.save_every_steps.max(1),
            },
            act_as_verifier: config.verifier,
            store: Store::open(&config.data_dir)?,
            runtime: orrery_exec::Runtime::new()?,
            stop,
            chain_id: None,
            next_nonce: None,
            chain_nonce_seen: (0, 0),
            last_sent_height: 0,
            sent: BTreeMap::new(),
            uploaded: BTreeSet::new(),
            snapshot: AgentSnapshot {
                account: me.to_string(),
                ..AgentSnapshot::default()
            },
        })
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
    pub fn snapshot(&self) -> &AgentSnapshot {
        &self.snapshot
    }

    /// Record the benchmark score for the snapshot.
    pub fn set_benchmark(&mut self, score: f64) {
        self.snapshot.benchmark_score = Some(score);
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// One pass: read the chain, act on every lease of ours. Per-lease failures are logged
    /// and do not stop the others; the first is returned.
    pub fn tick(&mut self) -> Result<(), AgentError> {
        let head = self.chain.head()?;
        self.chain_id = Some(head.chain_id.clone());
        let head = head.head;
        self.sync_nonce(head)?;
        self.ensure_provider(head)?;
        let leases = self.chain.active_leases()?;
        let mut first_error = None;
        let mut seen = BTreeSet::new();
        let mut mine = BTreeMap::new();
        for lease in leases {
            let Some(r) = role(&self.me, &lease) else {
                continue;
            };
            seen.insert(lease.id);
            mine.insert(lease.id, lease.state.name().to_string());
            if matches!(r, crate::decide::Role::Verifier(_)) && !self.act_as_verifier {
                continue;
            }
            if self.stopping() {
                break;
            }
            if let Err(e) = self.handle(&lease, head) {
                tracing::warn!(lease = lease.id, error = %e, "could not act on lease");
                first_error.get_or_insert(e);
            }
        }
        self.snapshot.leases = mine;
        self.forget_final(&seen);
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
            let is_final = match self.chain.lease(id) {
                Ok(Some(l)) => !l.state.is_active(),
                Ok(None) => true,
                Err(_) => false,
            };
            if is_final {
                if let Err(e) = self.store.lease(id).remove() {
                    tracing::warn!(lease = id, error = %e, "cannot remove a final lease's folder");
                }
                self.sent.retain(|(l, _, _), _| *l != id);
                self.uploaded.remove(&id);
            }
        }
    }

    fn sync_nonce(&mut self, head: Head) -> Result<(), AgentError> {
        let (_, chain_nonce) = self.chain.account(&self.me)?;
        if chain_nonce != self.chain_nonce_seen.0 {
            self.chain_nonce_seen = (chain_nonce, head.height);
        }
        match self.next_nonce {
            Some(n) if n > chain_nonce => {
                let since = self.chain_nonce_seen.1.max(self.last_sent_height);
                if head.height >= since + NONCE_STALL_BLOCKS {
                    tracing::warn!(
                        ours = n,
                        chain = chain_nonce,
                        "pending transactions were not applied: resending from the chain's nonce"
                    );
                    self.next_nonce = Some(chain_nonce);
                    self.sent.clear();
                    self.chain_nonce_seen.1 = head.height;
                }
            }
            _ => self.next_nonce = Some(chain_nonce),
        }
        Ok(())
    }

    fn recently_sent(&self, key: (LeaseId, &'static str, u64), head: Head) -> bool {
        self.sent
            .get(&key)
            .is_some_and(|&h| head.height < h + RESEND_AFTER_BLOCKS)
    }

    fn send(&mut self, body: TxBody, key: (LeaseId, u64), head: Head) -> Result<(), AgentError> {
        let key = (key.0, body.kind(), key.1);
        if self.recently_sent(key, head) {
            return Ok(());
        }
        let chain_id = self
            .chain_id
            .clone()
            .ok_or_else(|| ChainError::Unavailable("chain id not read yet".into()))?;
        for attempt in 0..2 {
            let nonce = match self.next_nonce {
                Some(n) => n,
                None => self.chain.account(&self.me)?.1,
            };
            let tx = Tx {
                chain_id: chain_id.clone(),
                nonce,
                body: body.clone(),
            }
            .sign(&self.key);
            match self.chain.submit(&tx) {
                Ok(_) => {
                    tracing::info!(kind = body.kind(), lease = key.0, nonce, "sent");
                    self.next_nonce = Some(nonce + 1);
                    self.sent.insert(key, head.height);
                    self.last_sent_height = head.height;
                    self.snapshot.txs_sent += 1;
                    return Ok(());
                }
                Err(ChainError::StaleNonce(_)) if attempt == 0 => {
                    self.next_nonce = Some(self.chain.account(&self.me)?.1);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ChainError::StaleNonce("nonce still stale after re-reading it".into()).into())
    }

    fn ensure_provider(&mut self, head: Head) -> Result<(), AgentError> {
        let record = self.chain.provider(&self.me)?;
        let bonded = match &record {
            None => {
                self.send(
                    TxBody::RegisterProvider(self.offer.clone()),
                    (ACCOUNT_KEY, 0),
                    head,
                )?;
                Amount::ZERO
            }
            Some(p) => {
                if p.offer != self.offer {
                    self.send(
                        TxBody::UpdateProvider(self.offer.clone()),
                        (ACCOUNT_KEY, 0),
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
                self.send(TxBody::Bond { amount }, (ACCOUNT_KEY, 0), head)?;
            }
        }
        Ok(())
    }

    fn bundle(&self, lease: &LeaseInfo, dir: &LeaseDir) -> Result<Bundle, AgentError> {
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
        let bundle = Bundle::decode(&bytes).map_err(|e| bad(e.to_string()))?;
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
        Ok(bundle)
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

    /// Act on one lease (up to [`MAX_ACTIONS_PER_LEASE`] decisions).
    fn handle(&mut self, lease: &LeaseInfo, head: Head) -> Result<(), AgentError> {
        let dir = self.store.lease(lease.id);
        let stage = match &lease.state {
            LeaseState::Disputed(d) => (u64::from(d.round) << 1) | u64::from(d.awaiting_referee),
            _ => 0,
        };
        for _ in 0..MAX_ACTIONS_PER_LEASE {
            let outcome = dir.outcome();
            match decide(&self.me, lease, head, outcome.as_ref()) {
                Action::Wait => return Ok(()),
                Action::Forget => return Ok(dir.remove()?),
                Action::Start => {
                    self.bundle(lease, &dir)?;
                    return self.send(TxBody::StartLease { lease: lease.id }, (lease.id, 0), head);
                }
                Action::Run => {
                    if self.stopping() {
                        return Ok(());
                    }
                    let bundle = self.bundle(lease, &dir)?;
                    tracing::info!(lease = lease.id, "running the job");
                    match run_job(&self.runtime, &bundle, &dir, self.settings, &self.stop)? {
                        RunEnd::Finished(o) => {
                            self.snapshot.runs_finished += 1;
                            tracing::info!(lease = lease.id, root = %o.claim.checkpoint_root, units = o.units, "run finished");
                        }
                        RunEnd::Stopped { k } => {
                            tracing::info!(lease = lease.id, k, "stopped; progress saved");
                            return Ok(());
                        }
                    }
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
                    return self.send(body, (lease.id, stage), head);
                }
                Action::Adjudicate(input) => {
                    let key = (lease.id, "adjudicate", stage);
                    if self.recently_sent(key, head) {
                        return Ok(());
                    }
                    let Some(outcome) = outcome else {
                        return Ok(());
                    };
                    let bundle = self.bundle(lease, &dir)?;
                    let state = match input.state {
                        None => Vec::new(),
                        Some(k) => state_at(&self.runtime, &bundle, self.settings, k)?,
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
                        bundle: Blob::new(bundle.bytes().to_vec())
                            .map_err(|_| too_big("bundle"))?,
                        state: Blob::new(state).map_err(|_| too_big("state"))?,
                        proof,
                    };
                    return self.send(body, (lease.id, stage), head);
                }
            }
        }
        Ok(())
    }

    /// The loop: tick, then wait for the poll interval or a message; exit on stop.
    pub fn run(mut self, mailbox: Receiver<Message>, poll: std::time::Duration) {
        if self.snapshot.benchmark_score.is_none() {
            let b = crate::benchmark::run();
            tracing::info!(
                score = b.score,
                wall_ms = b.wall.as_millis() as u64,
                "benchmark"
            );
            self.snapshot.benchmark_score = Some(b.score);
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
                    let _ = reply.try_send(self.snapshot.clone());
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
        tracing::info!(account = %self.me, "provider agent stopped");
    }
}
