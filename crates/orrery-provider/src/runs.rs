//! The agent's worker threads: everything that can take as long as a job runs off the duty
//! loop, so that the loop never misses a deadline while a job runs.
//!
//! # Lanes
//!
//! Work is one of three kinds, each with its own bounded lane (at most that many threads of
//! the kind at once; a lease waits for a free place):
//!
//! | lane | what | bound |
//! |---|---|---|
//! | [`Lane::Job`] | the provider's own run of a lease ([`run_job_on`]) | `max_job_runs` (config) |
//! | [`Lane::Verify`] | a drawn verifier's re-execution ([`run_job_on`]) | `max_verify_runs` (config) |
//! | [`Lane::Referee`] | replaying `state_k` for a dispute's referee ([`replay_state`], from the nearest kept state) | [`REFEREE_REPLAYS`] |
//!
//! Separate lanes, because their deadlines differ: a long job of its own must not keep the
//! agent from re-executing a check within `verify_blocks`, and neither may keep it from giving
//! the referee its input within a dispute round (missing that loses the dispute).
//!
//! # Reports
//!
//! A task sends one [`Report`] when it ends (finished, stopped, failed, or panicked) and then
//! calls the waker so the duty loop ticks at once instead of at its next poll. A run's result
//! lives in the lease's folder ([`crate::store`]); the report only says that it is there (or
//! why not). A replayed state travels in the report. A job that fails deterministically has
//! *finished* (its outcome is a failure claim, logged with its cause); only a failure that is
//! not the job's own (a timeout, a host fault) is reported as an error and run again.
//!
//! # Stopping
//!
//! Each task has its own cancel flag, checked between job steps: a cancelled run saves a
//! snapshot at the step it reached and reports [`RunEnd::Stopped`]. [`Runs::shutdown`] cancels
//! every task and joins its thread; so does dropping [`Runs`].

use crate::runner::{
    JobBundle, RunEnd, RunSettings, failure_input, replay_state, run_job_on, run_undecodable,
};
use crate::store::LeaseDir;
use orrery_exec::RuntimeKind;
use orrery_types::tx::LeaseId;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Referee replays at once. Disputes are rare and each replay costs at most one run; one lane
/// kept free of jobs and checks is what makes the dispute deadline safe.
pub const REFEREE_REPLAYS: usize = 1;
/// Most threads a configured lane may have (`max_job_runs`, `max_verify_runs`): a bound on
/// threads, memory for states and checkpoints, and open files.
pub const MAX_RUNS_PER_LANE: usize = 64;

/// The kind of work a worker thread does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Lane {
    /// The provider's own run of a lease.
    Job,
    /// A drawn verifier's re-execution.
    Verify,
    /// Replaying a state for the referee.
    Referee,
}

impl Lane {
    /// Its name in logs and snapshots.
    pub fn name(self) -> &'static str {
        match self {
            Lane::Job => "job",
            Lane::Verify => "verify",
            Lane::Referee => "referee",
        }
    }
}

/// How many threads each lane may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaneLimits {
    /// [`Lane::Job`].
    pub job: usize,
    /// [`Lane::Verify`].
    pub verify: usize,
    /// [`Lane::Referee`].
    pub referee: usize,
}

impl LaneLimits {
    fn of(&self, lane: Lane) -> usize {
        match lane {
            Lane::Job => self.job,
            Lane::Verify => self.verify,
            Lane::Referee => self.referee,
        }
    }
}

/// What a task produced.
#[derive(Debug)]
pub enum Done {
    /// A run ended (its outcome, if finished, is in the lease's folder).
    Run(RunEnd),
    /// `state_k`, replayed for the referee.
    State {
        /// The step.
        k: u64,
        /// The state.
        state: Vec<u8>,
    },
    /// A replay was cancelled before it reached the step.
    Cancelled,
}

/// One task's end.
#[derive(Debug)]
pub struct Report {
    /// The lease it worked for.
    pub lease: LeaseId,
    /// Its lane.
    pub lane: Lane,
    /// What it produced, or why it failed (a panic included).
    pub result: Result<Done, String>,
}

struct Task {
    lane: Lane,
    cancel: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Wakes the duty loop when a task ends.
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// The worker threads of one agent: at most one task per lease, lanes bounded.
pub struct Runs {
    runtime: orrery_exec::Runtime,
    settings: RunSettings,
    limits: LaneLimits,
    tasks: BTreeMap<LeaseId, Task>,
    sender: Sender<Report>,
    reports: Receiver<Report>,
    waker: Option<Waker>,
}

impl Runs {
    /// No tasks yet.
    pub fn new(runtime: orrery_exec::Runtime, settings: RunSettings, limits: LaneLimits) -> Self {
        let (sender, reports) = channel();
        Runs {
            runtime,
            settings,
            limits,
            tasks: BTreeMap::new(),
            sender,
            reports,
            waker: None,
        }
    }

    /// Call `waker` whenever a task ends.
    pub fn set_waker(&mut self, waker: Waker) {
        self.waker = Some(waker);
    }

    /// Whether a task is working for `lease`.
    pub fn busy(&self, lease: LeaseId) -> bool {
        self.tasks.contains_key(&lease)
    }

    /// Whether `lane` has a free place.
    pub fn has_room(&self, lane: Lane) -> bool {
        self.tasks.values().filter(|t| t.lane == lane).count() < self.limits.of(lane)
    }

    /// The leases being worked on, by lane name.
    pub fn in_flight(&self) -> BTreeMap<LeaseId, String> {
        self.tasks
            .iter()
            .map(|(id, t)| (*id, t.lane.name().to_string()))
            .collect()
    }

    /// Whether any task is working.
    pub fn is_idle(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Run (or resume) `bundle` for `lease` in `dir` on a `lane` thread. `false` (and nothing
    /// started) when the lease already has a task or the lane is full.
    /// ML operators run on `device`.
    pub fn start_run(
        &mut self,
        lease: LeaseId,
        lane: Lane,
        bundle: JobBundle,
        dir: LeaseDir,
        device: orrery_ml::Device,
    ) -> std::io::Result<bool> {
        let (runtime, settings) = (self.runtime.clone(), self.settings);
        self.spawn(lease, lane, move |cancel| {
            let end = match &bundle {
                JobBundle::Bundle(b) => run_job_on(&runtime, b, &dir, settings, &device, cancel),
                JobBundle::Undecodable { error, .. } => run_undecodable(&dir, error),
            }
            .map_err(|e| e.to_string())?;
            log_failure(lease, lane, &bundle, &end);
            Ok(Done::Run(end))
        })
    }

    /// Replay `state_k` of `bundle` for the referee of `lease` (from the nearest state the run
    /// in `dir` kept). `false` when the lease already has a task or the referee lane is full.
    pub fn start_replay(
        &mut self,
        lease: LeaseId,
        bundle: JobBundle,
        dir: LeaseDir,
        k: u64,
    ) -> std::io::Result<bool> {
        let (runtime, settings) = (self.runtime.clone(), self.settings);
        self.spawn(lease, Lane::Referee, move |cancel| {
            let replayed = match &bundle {
                JobBundle::Bundle(b) => replay_state(&runtime, b, &dir, settings, k, cancel),
                // Its run failed at init: every leaf is the failure's marker.
                JobBundle::Undecodable { .. } => Ok(failure_input(&dir, k).map(|s| (k, s))),
            };
            match replayed {
                Ok(Some((from, state))) => {
                    tracing::info!(lease, k, from, "state replayed for the referee");
                    Ok(Done::State { k, state })
                }
                Ok(None) => Ok(Done::Cancelled),
                Err(e) => Err(e.to_string()),
            }
        })
    }

    fn spawn(
        &mut self,
        lease: LeaseId,
        lane: Lane,
        work: impl FnOnce(&AtomicBool) -> Result<Done, String> + Send + 'static,
    ) -> std::io::Result<bool> {
        if self.busy(lease) || !self.has_room(lane) {
            return Ok(false);
        }
        let cancel = Arc::new(AtomicBool::new(false));
        let (flag, sender, waker) = (cancel.clone(), self.sender.clone(), self.waker.clone());
        let thread = std::thread::Builder::new()
            .name(format!("orrery-{}-{lease}", lane.name()))
            .spawn(move || {
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&flag)))
                    .unwrap_or_else(|panic| {
                        let what = panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "unknown panic".into());
                        Err(format!("the {} thread panicked: {what}", lane.name()))
                    });
                // The receiver outlives every task (`Runs` joins them before it is dropped).
                let _ = sender.send(Report {
                    lease,
                    lane,
                    result,
                });
                if let Some(wake) = waker {
                    wake();
                }
            })?;
        tracing::debug!(lease, lane = lane.name(), "task started");
        self.tasks.insert(
            lease,
            Task {
                lane,
                cancel,
                thread: Some(thread),
            },
        );
        Ok(true)
    }

    /// Ask the task working for `lease` (if any) to stop at its next step.
    pub fn cancel(&self, lease: LeaseId) {
        if let Some(t) = self.tasks.get(&lease) {
            t.cancel.store(true, Ordering::SeqCst);
        }
    }

    /// Ask every task to stop at its next step.
    pub fn cancel_all(&self) {
        for t in self.tasks.values() {
            t.cancel.store(true, Ordering::SeqCst);
        }
    }

    /// The reports of tasks that ended, their threads joined. Waits up to `wait` for the first
    /// one when there is none yet (and some task is working).
    pub fn collect(&mut self, wait: Duration) -> Vec<Report> {
        let mut out = Vec::new();
        if !self.tasks.is_empty() && !wait.is_zero() {
            match self.reports.recv_timeout(wait) {
                Ok(r) => out.push(r),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
            }
        }
        out.extend(self.reports.try_iter());
        for r in &out {
            if let Some(mut t) = self.tasks.remove(&r.lease)
                && let Some(thread) = t.thread.take()
            {
                // The task has sent its report: the thread is returning.
                let _ = thread.join();
            }
        }
        out
    }

    /// Wait until every task has ended (or `timeout` passed); returns their reports.
    pub fn wait_idle(&mut self, timeout: Duration) -> Vec<Report> {
        let until = Instant::now() + timeout;
        let mut out = Vec::new();
        while !self.tasks.is_empty() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            out.extend(self.collect(left));
        }
        out
    }

    /// Cancel every task and join its thread (cancelled runs save a snapshot first); returns
    /// the reports.
    pub fn shutdown(&mut self) -> Vec<Report> {
        self.cancel_all();
        let mut out = Vec::new();
        while !self.tasks.is_empty() {
            // A cancelled task ends within one job step; wait as long as it takes.
            out.extend(self.collect(Duration::from_secs(1)));
        }
        out
    }
}

/// Say what a run that ended in a deterministic failure will do: it is a result, not an error,
/// and it is not run again.
fn log_failure(lease: LeaseId, lane: Lane, bundle: &JobBundle, end: &RunEnd) {
    let RunEnd::Finished(o) = end else {
        return;
    };
    let Some(f) = o.claim.failure else {
        return;
    };
    let wasm = match bundle {
        JobBundle::Bundle(b) => b.manifest().runtime == RuntimeKind::Wasm,
        JobBundle::Undecodable { .. } => true,
    };
    let unit = if wasm { "fuel" } else { "compute units" };
    let then = match lane {
        Lane::Job => "committing a failure claim",
        Lane::Verify | Lane::Referee => "sealing the same failure as its check",
    };
    tracing::warn!(
        lease,
        lane = lane.name(),
        at = %f.at,
        reason = ?f.reason,
        units = o.units,
        note = %o.note,
        "lease {lease}: the job {} at {} after {} {unit}: {then}",
        f.reason,
        f.at,
        o.units
    );
}

impl Drop for Runs {
    fn drop(&mut self) {
        self.shutdown();
    }
}
