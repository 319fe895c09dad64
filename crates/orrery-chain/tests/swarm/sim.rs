//! Runs one [`Plan`] in the deterministic runtime and checks the committee's invariants.

use super::disk::{Disk, DiskStats};
use super::leases::{LeaseStats, Leases};
use super::plan::{Byzantine, Fault, LEASE_PROVIDERS, LEASE_REQUESTERS, Load, Plan};
use crate::common::proposer::{Lies, Proposer};
use crate::common::{self, CHAIN};
use commonware_consensus::simplex::mocks::{conflicter, nuller, nullify_only};
use commonware_cryptography::sha256::Sha256;
use commonware_cryptography::{Signer as _, ed25519};
use commonware_p2p::simulated::{Link, Oracle};
use commonware_runtime::{Clock, Quota, Runner as _, Spawner, Supervisor as _, deterministic};
use commonware_utils::ordered::Set;
use commonware_utils::{NZU32, Probability};
use futures::channel::oneshot;
use orrery_chain::application::App;
use orrery_chain::config::CONSENSUS_NAMESPACE;
use orrery_chain::engine::ChainApplication;
use orrery_chain::engine::{
    CHANNEL_BACKFILL, CHANNEL_BLOCKS, CHANNEL_CERTIFICATES, CHANNEL_RESOLVER, CHANNEL_TXS,
    CHANNEL_VOTES, Scheme,
};
use orrery_chain::{Channels, Handle, Validator, start_with_application};
use orrery_store::Ledger;
use orrery_types::crypto::Keypair;
use orrery_types::hash::Hash;
use orrery_types::tx::{ChainId, Tx, TxBody};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// How long the chain has, once every fault is healed, to finalize [`PROGRESS_BLOCKS`] more
/// blocks on every honest validator. Generous: a restarted validator first backfills.
const PROGRESS_LIMIT: Duration = Duration::from_secs(120);
/// Blocks every honest validator must finalize after the heal.
const PROGRESS_BLOCKS: u64 = 3;
/// How often the harness looks for dead disks.
const TICK: Duration = Duration::from_millis(100);
/// How often the lease parties look at the chain and move.
const LEASE_TICK: Duration = Duration::from_millis(250);
/// A validator whose disk died is back this long after.
const DISK_REPLACEMENT: Duration = Duration::from_millis(1_000);

/// What one seed did.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Blocks finalized (the honest validators' common height at the end).
    pub blocks: u64,
    /// Transactions in those blocks.
    pub txs: u64,
    /// Faults the plan injected (partitions, crashes, disk deaths, bad links).
    pub faults: u64,
    /// Validator restarts.
    pub restarts: u64,
    /// Starts that failed because the disk died while the validator opened it.
    pub failed_starts: u64,
    /// What the disks did.
    pub disk: DiskStats,
    /// What the lease load did.
    pub leases: LeaseStats,
    /// Blocks Byzantine proposers corrupted (none may be finalized).
    pub lies: u64,
    /// The deterministic runtime's auditor state: equal for equal seeds.
    pub auditor: String,
}

type Net = Oracle<ed25519::PublicKey, deterministic::Context>;

struct Running {
    handle: Handle,
    task: commonware_runtime::Handle<()>,
    recorder: commonware_runtime::Handle<()>,
}

/// Invariant violations found by background tasks (which must not panic inside the runtime).
type Violations = Arc<Mutex<Vec<String>>>;
/// Height → (block hash, state root, first validator to finalize it), across everyone.
type Seen = Arc<Mutex<BTreeMap<u64, (Hash, Hash, usize)>>>;

enum Action {
    Fault(Fault),
    Heal(Fault),
    Restart(usize),
    Send(usize, Load),
    Tick,
    Leases,
    HealAll,
}

struct Sim {
    context: deterministic::Context,
    oracle: Net,
    plan: Plan,
    validators: Vec<Validator>,
    keys: Vec<ed25519::PublicKey>,
    disks: Vec<Disk>,
    running: Vec<Option<Running>>,
    /// Whether each validator ran before (a start is then a restart).
    started: Vec<bool>,
    users: Vec<Keypair>,
    nonces: Vec<u64>,
    leases: Leases,
    partition: Option<Vec<bool>>,
    bad_links: bool,
    healed: bool,
    seen: Seen,
    violations: Violations,
    /// Every block a Byzantine proposer built: none may be finalized.
    lies: Lies,
    outcome: Outcome,
    queue: BTreeMap<(Duration, u64), Action>,
    next_id: u64,
    start: SystemTime,
}

/// Run `plan`; panics with a description of the first broken invariant.
pub fn run(plan: &Plan) -> Outcome {
    let dir = tempfile::tempdir().expect("temporary directory");
    let funded = plan.users + LEASE_PROVIDERS + LEASE_REQUESTERS;
    let net = common::devnet(plan.validators, plan.seed, dir.path(), funded as u64);
    let validators: Vec<Validator> = net.configs.iter().map(|c| c.parse().unwrap()).collect();
    let plan = plan.clone();
    common::runner(plan.seed, Duration::from_secs(900)).start(|context| async move {
        let oracle = common::network(&context, &net.configs).await;
        let keys = validators.iter().map(|v| v.key.public_key()).collect();
        let disks = (0..plan.validators)
            .map(|i| Disk::new(plan.seed ^ ((i as u64 + 1) << 32), plan.tearing))
            .collect();
        let start = context.current();
        let funded_keys = common::users(funded as u64);
        let leases = Leases::new(
            funded_keys[plan.users..plan.users + LEASE_PROVIDERS].to_vec(),
            funded_keys[plan.users + LEASE_PROVIDERS..].to_vec(),
            &plan.leases,
        );
        let mut sim = Sim {
            leases,
            oracle,
            running: (0..plan.validators).map(|_| None).collect(),
            started: vec![false; plan.validators],
            users: common::users(plan.users as u64),
            nonces: vec![0; plan.users],
            validators,
            keys,
            disks,
            partition: None,
            bad_links: false,
            healed: false,
            seen: Arc::default(),
            violations: Arc::default(),
            lies: Lies::default(),
            outcome: Outcome::default(),
            queue: BTreeMap::new(),
            next_id: 0,
            start,
            context,
            plan,
        };
        sim.run().await;
        sim.outcome.auditor = sim.context.auditor().state();
        sim.outcome
    })
}

impl Sim {
    fn at(&mut self, at: Duration, action: Action) {
        self.next_id += 1;
        self.queue.insert((at, self.next_id), action);
    }

    fn now(&self) -> Duration {
        self.context
            .current()
            .duration_since(self.start)
            .unwrap_or_default()
    }

    async fn run(&mut self) {
        self.links().await;
        for node in 0..self.plan.validators {
            match self.plan.byzantine(node) {
                Some(kind) => self.start_byzantine(node, kind).await,
                None => self.start_honest(node).await,
            }
        }
        for (at, fault) in self.plan.faults.clone() {
            self.at(at, Action::Fault(fault));
        }
        for (at, node, load) in self.plan.load.clone() {
            self.at(at, Action::Send(node, load));
        }
        self.at(TICK, Action::Tick);
        self.at(LEASE_TICK, Action::Leases);
        self.at(self.plan.heal_at, Action::HealAll);
        while let Some(((at, _), action)) = self.queue.pop_first() {
            let now = self.now();
            if at > now {
                self.context.sleep(at - now).await;
            }
            self.act(action).await;
            self.check_violations();
        }
        self.progress().await;
    }

    async fn act(&mut self, action: Action) {
        let now = self.now();
        match action {
            Action::Fault(fault) if !self.healed => self.fault(now, fault).await,
            Action::Fault(_) => {}
            Action::Heal(Fault::Partition { .. }) => {
                self.partition = None;
                self.links().await;
            }
            Action::Heal(Fault::BadLinks { .. }) => {
                self.bad_links = false;
                self.links().await;
            }
            Action::Heal(_) => {}
            Action::Restart(node) => {
                if self.running[node].is_none() {
                    self.start_honest(node).await;
                }
            }
            Action::Send(node, load) => self.send(node, load),
            Action::Tick => {
                for node in 0..self.plan.validators {
                    if self.disks[node].tripped() && self.running[node].is_some() {
                        self.crash(node);
                        self.at(now + DISK_REPLACEMENT, Action::Restart(node));
                    }
                }
                if !self.healed {
                    self.at(now + TICK, Action::Tick);
                }
            }
            Action::Leases => {
                self.lease_moves(now);
                if now + LEASE_TICK < self.plan.heal_at {
                    self.at(now + LEASE_TICK, Action::Leases);
                }
            }
            Action::HealAll => self.heal_all().await,
        }
    }

    async fn fault(&mut self, now: Duration, fault: Fault) {
        self.outcome.faults += 1;
        match &fault {
            Fault::Partition { side, heal_after } => {
                self.partition = Some(side.clone());
                self.links().await;
                self.at(now + *heal_after, Action::Heal(fault.clone()));
            }
            Fault::BadLinks { heal_after } => {
                self.bad_links = true;
                self.links().await;
                self.at(now + *heal_after, Action::Heal(fault.clone()));
            }
            Fault::Crash {
                node,
                restart_after,
            } => {
                if self.running[*node].is_some() {
                    self.crash(*node);
                    self.at(now + *restart_after, Action::Restart(*node));
                }
            }
            Fault::DiskDeath { node, ops } => self.disks[*node].trip_after(*ops),
        }
    }

    /// Every fault ends: links normal, disks healthy, every crashed validator back.
    async fn heal_all(&mut self) {
        self.healed = true;
        self.partition = None;
        self.bad_links = false;
        self.links().await;
        for node in 0..self.plan.validators {
            if self.plan.byzantine(node).is_some() {
                continue;
            }
            if self.disks[node].tripped() && self.running[node].is_some() {
                self.crash(node);
            }
            self.disks[node].heal();
            if self.running[node].is_none() {
                self.start_honest(node).await;
            }
        }
    }

    /// After the heal, every honest validator finalizes [`PROGRESS_BLOCKS`] more blocks, and
    /// they all hold the same blocks and state.
    async fn progress(&mut self) {
        let honest: Vec<usize> = (0..self.plan.validators)
            .filter(|n| self.plan.byzantine(*n).is_none())
            .collect();
        let top = honest
            .iter()
            .map(|n| self.handle(*n).status().height)
            .max()
            .unwrap_or(0);
        let target = top + PROGRESS_BLOCKS;
        let deadline = self.context.current() + PROGRESS_LIMIT;
        loop {
            self.check_violations();
            let heights: Vec<u64> = honest
                .iter()
                .map(|n| self.handle(*n).status().height)
                .collect();
            if heights.iter().all(|h| *h >= target) {
                break;
            }
            assert!(
                self.context.current() < deadline,
                "no progress after the faults healed: heights {heights:?} of honest validators \
                 {honest:?} did not all reach {target} within {PROGRESS_LIMIT:?}"
            );
            self.context.sleep(Duration::from_millis(100)).await;
        }
        // Every honest validator holds the same blocks and, at the same height, the same root.
        let reference = self.handle(honest[0]).clone();
        for height in 1..=target {
            let block = reference.block(height).unwrap().expect("block finalized");
            self.outcome.txs += block.txs.len() as u64;
            for n in &honest[1..] {
                let other = self.handle(*n).block(height).unwrap().map(|b| b.hash());
                assert_eq!(
                    other,
                    Some(block.hash()),
                    "validators {} and {n} hold different blocks at height {height}",
                    honest[0]
                );
            }
        }
        let states: Vec<(u64, Hash)> = honest
            .iter()
            .map(|n| self.handle(*n).read(|s| (s.height(), s.root())))
            .collect();
        let seen = self.seen.lock().unwrap();
        for (n, (height, root)) in honest.iter().zip(&states) {
            if let Some((_, expected, first)) = seen.get(height) {
                assert_eq!(
                    root, expected,
                    "validator {n} has state root {root} at height {height}, validator {first} had {expected}"
                );
            }
            let supply = self.handle(*n).read(|s| s.check_supply());
            assert!(supply.is_ok(), "validator {n}: {supply:?}");
        }
        self.outcome.blocks = target;
        self.outcome.leases = reference.read(|s| self.leases.stats(s));
        self.outcome.lies = self.lies.count() as u64;
        for disk in &self.disks {
            let s = disk.stats();
            self.outcome.disk.crashes += s.crashes;
            self.outcome.disk.lost_ops += s.lost_ops;
            self.outcome.disk.torn_writes += s.torn_writes;
            self.outcome.disk.trips += s.trips;
        }
    }

    fn handle(&self, node: usize) -> &Handle {
        &self.running[node]
            .as_ref()
            .expect("honest validator runs")
            .handle
    }

    fn check_violations(&self) {
        let v = self.violations.lock().unwrap();
        assert!(v.is_empty(), "{}", v.join("\n"));
    }

    /// Lay every link as the current partition and link quality say.
    async fn links(&mut self) {
        let n = self.plan.validators;
        let link = if self.bad_links {
            Link {
                latency: self.plan.latency * 4 + Duration::from_millis(200),
                jitter: self.plan.jitter * 4 + Duration::from_millis(50),
                success_rate: Probability::new(70, 100).unwrap(),
            }
        } else {
            Link {
                latency: self.plan.latency,
                jitter: self.plan.jitter,
                success_rate: Probability::new(self.plan.delivery, 100).unwrap(),
            }
        };
        for a in 0..n {
            for b in 0..n {
                if a == b {
                    continue;
                }
                let (ka, kb) = (self.keys[a].clone(), self.keys[b].clone());
                let _ = self.oracle.remove_link(ka.clone(), kb.clone()).await;
                let split = self
                    .partition
                    .as_ref()
                    .is_some_and(|side| side[a] != side[b]);
                if !split && !self.plan.vote_mocks(a, b) {
                    let _ = self.oracle.add_link(ka, kb, link.clone()).await;
                }
            }
        }
    }

    async fn channels(
        &self,
        node: usize,
    ) -> Channels<
        impl commonware_p2p::Sender<PublicKey = ed25519::PublicKey>,
        impl commonware_p2p::Receiver<PublicKey = ed25519::PublicKey>,
    > {
        let control = self.oracle.control(self.keys[node].clone());
        let quota = Quota::per_second(NZU32!(100_000));
        Channels {
            votes: control.register(CHANNEL_VOTES, quota).await.unwrap(),
            certificates: control.register(CHANNEL_CERTIFICATES, quota).await.unwrap(),
            resolver: control.register(CHANNEL_RESOLVER, quota).await.unwrap(),
            backfill: control.register(CHANNEL_BACKFILL, quota).await.unwrap(),
            blocks: control.register(CHANNEL_BLOCKS, quota).await.unwrap(),
            txs: control.register(CHANNEL_TXS, quota).await.unwrap(),
        }
    }

    /// Start (or restart) honest validator `node` on what its disk holds.
    async fn start_honest(&mut self, node: usize) {
        self.start_validator(node, |app| app).await;
    }

    /// Start validator `node` on what its disk holds, consensus driving `wrap(app)`.
    async fn start_validator<A>(
        &mut self,
        node: usize,
        wrap: impl FnOnce(App) -> A + Send + 'static,
    ) where
        A: ChainApplication<deterministic::Context>,
    {
        let validator = self.validators[node].clone();
        let label = std::path::PathBuf::from(format!("swarm-disk-{node}"));
        let ledger =
            match Ledger::open_with_backend(self.disks[node].backend(), &label, &validator.genesis)
            {
                Ok(ledger) => ledger,
                // The disk died while the ledger opened (a death planned while the validator
                // was down): the start fails as a real node's would, and the operator replaces
                // the disk. On a healthy disk, a ledger that cannot reopen is a bug.
                Err(_) if self.disks[node].tripped() => {
                    self.failed_start(node);
                    return;
                }
                Err(e) => panic!("validator {node} cannot reopen its ledger after a crash: {e}"),
            };
        let channels = self.channels(node).await;
        let control = self.oracle.control(self.keys[node].clone());
        let manager = self.oracle.manager();
        let (tx, rx) = oneshot::channel();
        let task = self
            .context
            .child("validator")
            .with_attribute("index", node)
            .spawn(move |ctx| async move {
                let started = start_with_application(
                    ctx, validator, ledger, channels, control, manager, wrap,
                )
                .await;
                let failed = started.is_err();
                let _ = tx.send(started);
                if !failed {
                    futures::future::pending::<()>().await;
                }
            });
        let handle = match rx.await.unwrap() {
            Ok(handle) => handle,
            Err(_) if self.disks[node].tripped() => {
                task.abort();
                self.failed_start(node);
                return;
            }
            Err(e) => panic!("validator {node} cannot start: {e}"),
        };
        let recorder = self.record(node, &handle);
        if self.started[node] {
            self.outcome.restarts += 1;
        }
        self.started[node] = true;
        self.running[node] = Some(Running {
            handle,
            task,
            recorder,
        });
    }

    /// `node`'s disk died while it started: cut the power, and start it again once the disk
    /// is replaced.
    fn failed_start(&mut self, node: usize) {
        self.outcome.failed_starts += 1;
        self.disks[node].crash();
        let now = self.now();
        self.at(now + DISK_REPLACEMENT, Action::Restart(node));
    }

    /// Kill `node` and cut its disk's power.
    fn crash(&mut self, node: usize) {
        if let Some(r) = self.running[node].take() {
            r.recorder.abort();
            r.task.abort();
        }
        self.disks[node].crash();
    }

    /// Check each block `node` finalizes against what any validator finalized at that height.
    fn record(&self, node: usize, handle: &Handle) -> commonware_runtime::Handle<()> {
        let mut rx = handle.subscribe();
        let (h, seen, violations) = (handle.clone(), self.seen.clone(), self.violations.clone());
        let lies = self.lies.clone();
        self.context
            .child("recorder")
            .spawn(move |_| async move {
                loop {
                    let f = match rx.recv().await {
                        Ok(f) => f,
                        // Missed blocks are still compared at the end, by height.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    };
                    let mut problems = Vec::new();
                    if let Err(e) = h.read(|s| s.check_supply()) {
                        problems.push(format!(
                            "validator {node}: supply invariant broken at height {}: {e}",
                            f.block.height
                        ));
                    }
                    if lies.told(&f.block_hash) {
                        problems.push(format!(
                            "validator {node} finalized block {} at height {}, which a \
                             Byzantine proposer corrupted",
                            f.block_hash, f.block.height
                        ));
                    }
                    let mine = (f.block_hash, f.state_root);
                    let mut seen = seen.lock().unwrap();
                    match seen.get(&f.block.height) {
                        Some((hash, root, first)) if (*hash, *root) != mine => {
                            problems.push(format!(
                                "validator {node} finalized block {} with state root {} at \
                                 height {}; validator {first} finalized block {hash} with root {root}",
                                mine.0, mine.1, f.block.height
                            ))
                        }
                        Some(_) => {}
                        None => {
                            seen.insert(f.block.height, (mine.0, mine.1, node));
                        }
                    }
                    violations.lock().unwrap().extend(problems);
                }
            })
    }

    async fn start_byzantine(&mut self, node: usize, kind: Byzantine) {
        match kind {
            Byzantine::Silent => return,
            Byzantine::Proposer(corruption) => {
                let lies = self.lies.clone();
                return self
                    .start_validator(node, move |honest| Proposer {
                        honest,
                        corruption,
                        lies,
                    })
                    .await;
            }
            _ => {}
        }
        let v = &self.validators[node];
        let participants =
            Set::try_from(v.peers.iter().map(|(pk, _)| pk.clone()).collect::<Vec<_>>()).unwrap();
        let scheme = Scheme::signer(
            CONSENSUS_NAMESPACE,
            participants,
            v.polynomial.clone(),
            v.share.clone(),
        )
        .expect("dealt share");
        let control = self.oracle.control(self.keys[node].clone());
        let quota = Quota::per_second(NZU32!(100_000));
        let votes = control.register(CHANNEL_VOTES, quota).await.unwrap();
        let context = self
            .context
            .child("byzantine")
            .with_attribute("index", node);
        match kind {
            Byzantine::Silent | Byzantine::Proposer(_) => {}
            Byzantine::NullifyOnly => {
                nullify_only::NullifyOnly::<_, _, Sha256>::new(
                    context,
                    nullify_only::Config { scheme },
                )
                .start(votes);
            }
            Byzantine::Conflicter => {
                conflicter::Conflicter::<_, _, Sha256>::new(context, conflicter::Config { scheme })
                    .start(votes);
            }
            Byzantine::Nuller => {
                nuller::Nuller::<_, _, Sha256>::new(context, nuller::Config { scheme })
                    .start(votes);
            }
        }
    }

    /// The lease parties' moves, read from the most advanced honest validator running and
    /// submitted to it.
    fn lease_moves(&mut self, now: Duration) {
        let Some(node) = (0..self.plan.validators)
            .filter(|n| self.plan.byzantine(*n).is_none() && self.running[*n].is_some())
            .max_by_key(|n| (self.handle(*n).status().height, std::cmp::Reverse(*n)))
        else {
            return;
        };
        let handle = self.handle(node).clone();
        let leases = &mut self.leases;
        let moves = handle.read(|state| leases.moves(state, now));
        let chain_id = ChainId::new(CHAIN).unwrap();
        for (party, nonce, body) in moves {
            let tx = Tx {
                chain_id: chain_id.clone(),
                nonce,
                body,
            }
            .sign(&self.leases.parties[party].key);
            // A refusal (a duplicate, a full mempool) is resent from the chain's state later.
            let _ = handle.submit(tx);
        }
    }

    /// Submit one transaction to `node` (or, if it is down, to the first honest one running).
    fn send(&mut self, node: usize, load: Load) {
        let target = if self.running[node].is_some() {
            node
        } else {
            match (0..self.plan.validators).find(|n| self.running[*n].is_some()) {
                Some(n) => n,
                None => return,
            }
        };
        let chain_id = ChainId::new(CHAIN).unwrap();
        let tx = match load {
            Load::Transfer { from, to, amount } => {
                let nonce = self.nonces[from];
                self.nonces[from] += 1;
                transfer(&chain_id, &self.users[from], nonce, &self.users[to], amount)
            }
            Load::Forged { from } => {
                let mut tx = transfer(
                    &chain_id,
                    &self.users[from],
                    self.nonces[from],
                    &self.users[0],
                    1,
                );
                tx.tx.body = TxBody::Transfer {
                    to: self.users[0].account(),
                    amount: orrery_types::amount::Amount::orr(999_999),
                };
                tx
            }
            Load::FutureNonce { from } => transfer(
                &chain_id,
                &self.users[from],
                self.nonces[from] + 1_000,
                &self.users[0],
                1,
            ),
        };
        // A refusal (full mempool, a forged or far-future transaction) is an answer, not a
        // failure; what matters is that nothing invalid is ever finalized.
        let _ = self.handle(target).submit(tx);
    }
}

fn transfer(
    chain_id: &ChainId,
    from: &Keypair,
    nonce: u64,
    to: &Keypair,
    amount: u64,
) -> orrery_types::tx::SignedTx {
    Tx {
        chain_id: chain_id.clone(),
        nonce,
        body: TxBody::Transfer {
            to: to.account(),
            amount: orrery_types::amount::Amount::orr(amount),
        },
    }
    .sign(from)
}
