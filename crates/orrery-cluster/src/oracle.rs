//! Who decides a round's set of deltas.
//!
//! On the network the chain does: each worker's round commitment is a transaction, and the
//! round's set is what the chain recorded by the round's deadline, less what the round's
//! checks excluded. [`LocalOracle`] is the same rule in memory, shared by workers of one
//! process — what the tests and a single-host run use.

use commonware_runtime::Clock;
use orrery_types::Hash;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a worker commits for a round: on the chain, the fields of its `CommitClusterRound`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RoundCommit {
    /// Its delta's hash (`Delta::hash`).
    pub delta: Hash,
    /// The hash of the cluster state it started the round from (`GlobalState::hash`).
    pub start: Hash,
    /// Its mean inner loss over the round.
    pub loss: f32,
}

/// Decides each round's final set of deltas; every worker must get the same answer.
pub trait RoundOracle: Clone + Send + Sync + 'static {
    /// Worker `worker` commits its work for `round`. Refused after the round's commit
    /// deadline. An oracle that talks to a node must not block the executor: it hands the
    /// commitment on and returns (the chain's receipt says later whether it counted).
    fn commit(
        &self,
        round: u64,
        worker: u32,
        commit: RoundCommit,
    ) -> impl Future<Output = Result<(), String>> + Send;

    /// Worker `worker` says which deltas of `round` it holds (worker → hash); the answer is
    /// the round's final set (worker → what the oracle names its delta by, see
    /// [`RoundOracle::names`]), the same for every caller. An error means the oracle cannot
    /// answer (the node stayed unreachable past its timeout, the lease ended, this worker was
    /// dropped): the worker stops.
    fn settle<C: Clock>(
        &self,
        clock: &C,
        round: u64,
        worker: u32,
        held: BTreeMap<u32, Hash>,
    ) -> impl Future<Output = Result<BTreeMap<u32, Hash>, String>> + Send;

    /// Whether a delta of `worker` for `round` with hash `delta` is the one the final set
    /// names `named`. The set names deltas by their hash unless the oracle says otherwise (the
    /// chain names them by the worker's bound commitment).
    fn names(&self, round: u64, worker: u32, delta: &Hash, named: &Hash) -> bool {
        let _ = (round, worker);
        delta == named
    }
}

#[derive(Default)]
struct Round {
    opened: Option<Instant>,
    committed: BTreeMap<u32, Hash>,
    reports: BTreeMap<u32, BTreeMap<u32, Hash>>,
    closed: bool,
    settled: Option<BTreeMap<u32, Hash>>,
}

/// The chain's rule, in memory: commits count until `commit_timeout` after the round's first
/// commit (or once all `workers` committed); the set settles once every committed worker has
/// reported or `report_timeout` after the commits closed. A worker is in the final set when
/// it committed in time and every report holds its committed hash.
#[derive(Clone)]
pub struct LocalOracle {
    workers: u32,
    commit_timeout: Duration,
    report_timeout: Duration,
    rounds: Arc<Mutex<BTreeMap<u64, Round>>>,
}

impl LocalOracle {
    /// An oracle for `workers` workers.
    pub fn new(workers: u32, commit_timeout: Duration, report_timeout: Duration) -> LocalOracle {
        LocalOracle {
            workers,
            commit_timeout,
            report_timeout,
            rounds: Arc::default(),
        }
    }

    /// The final set of `round`, once settled.
    pub fn settled(&self, round: u64) -> Option<BTreeMap<u32, Hash>> {
        self.rounds.lock().unwrap().get(&round)?.settled.clone()
    }

    /// Close commits and settle when the rule says so; returns the final set once settled.
    fn poll(&self, round: u64) -> Option<BTreeMap<u32, Hash>> {
        let mut rounds = self.rounds.lock().unwrap();
        let r = rounds.entry(round).or_default();
        if let Some(s) = &r.settled {
            return Some(s.clone());
        }
        let opened = r.opened?;
        if !r.closed
            && (r.committed.len() as u32 == self.workers || opened.elapsed() >= self.commit_timeout)
        {
            r.closed = true;
        }
        if !r.closed {
            return None;
        }
        let all_reported = r.committed.keys().all(|w| r.reports.contains_key(w));
        if !all_reported && opened.elapsed() < self.commit_timeout + self.report_timeout {
            return None;
        }
        let set: BTreeMap<u32, Hash> = r
            .committed
            .iter()
            .filter(|(w, h)| {
                r.reports
                    .values()
                    .all(|held| held.get(w).is_some_and(|got| got == *h))
            })
            .map(|(w, h)| (*w, *h))
            .collect();
        r.settled = Some(set.clone());
        Some(set)
    }
}

impl RoundOracle for LocalOracle {
    async fn commit(&self, round: u64, worker: u32, commit: RoundCommit) -> Result<(), String> {
        let mut rounds = self.rounds.lock().unwrap();
        let r = rounds.entry(round).or_default();
        let opened = *r.opened.get_or_insert_with(Instant::now);
        if r.closed || opened.elapsed() >= self.commit_timeout {
            return Err(format!("round {round}'s commitments are closed"));
        }
        if r.committed.contains_key(&worker) {
            return Err(format!("worker {worker} already committed round {round}"));
        }
        r.committed.insert(worker, commit.delta);
        Ok(())
    }

    async fn settle<C: Clock>(
        &self,
        clock: &C,
        round: u64,
        worker: u32,
        held: BTreeMap<u32, Hash>,
    ) -> Result<BTreeMap<u32, Hash>, String> {
        {
            let mut rounds = self.rounds.lock().unwrap();
            let r = rounds.entry(round).or_default();
            r.opened.get_or_insert_with(Instant::now);
            // Only a worker that committed has a say: a late or dead one cannot veto others.
            if r.committed.contains_key(&worker) && r.settled.is_none() {
                r.reports.insert(worker, held);
            }
        }
        loop {
            // `poll` settles at the latest `commit_timeout + report_timeout` after the round
            // opened: this loop ends.
            if let Some(set) = self.poll(round) {
                return Ok(set);
            }
            clock.sleep(Duration::from_millis(5)).await;
        }
    }
}

/// The workers of a final set, for logs.
pub(crate) fn members(set: &BTreeMap<u32, Hash>) -> BTreeSet<u32> {
    set.keys().copied().collect()
}
