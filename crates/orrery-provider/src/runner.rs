//! Running a lease's job to an [`Outcome`], resumably.
//!
//! A run starts from the lease folder's last snapshot if there is one (`Start::Resume`), else
//! afresh; it saves a snapshot every `save_every` steps and whenever it is asked to stop, so a
//! restart loses at most `save_every` steps. The finished run's output, checkpoints and claim
//! are recorded in the folder: what the agent seals, reveals and argues in a dispute comes from
//! there, across restarts.
//!
//! # Runs that fail
//!
//! A run whose job fails **deterministically** (out of fuel, a trap, a memory or size limit, a
//! module or ML spec that cannot load: [`JobError::failure_reason`]) has finished: its outcome
//! is a failure claim ([`ResultClaim::failed`]) over the checkpoints reached and the failure's
//! marker after them, with the units it burned (the failed call's included) and the runtime's
//! message as its note. It is recorded like any outcome, so it is never run again; the agent
//! commits it, and a verifier that fails the same way seals the identical claim. Anything else
//! (a wall-clock timeout, a host fault, a full disk) is an error: no result, tried again later.
//! A referee replay of a leaf at or after the failure returns the failure's encoding, which is
//! what the referee takes in place of a state there ([`replay_state`]). Bytes that are the
//! lease's job but no bundle fail at init the same way ([`JobBundle`], [`run_undecodable`]).

use crate::config::Cheat;
use crate::job::{AsRun, JobError, load, load_on};
use crate::store::{LeaseDir, MAX_KEPT_STATE_BYTES, MAX_KEPT_STATES, Outcome, Progress};
use orrery_exec::Bundle;
use orrery_types::hash::Hash;
use orrery_types::tx::ResultClaim;
use orrery_types::workload::{
    FailedAt, FailureReason, JobFailure, RunError, Start, checkpoint_root, run,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// How a run is made.
#[derive(Clone, Copy, Debug)]
pub struct RunSettings {
    /// Deliberate misbehaviour (devnet).
    pub cheat: Cheat,
    /// ML threads.
    pub threads: usize,
    /// Save a snapshot every this many steps.
    pub save_every: u64,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunEnd {
    /// Finished and recorded.
    Finished(Outcome),
    /// Asked to stop; the snapshot at step `k` is saved.
    Stopped {
        /// The saved step.
        k: u64,
    },
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunJobError {
    /// The workload failed (deterministically or not).
    #[error(transparent)]
    Run(#[from] RunError<JobError>),
    /// The bundle could not be loaded.
    #[error(transparent)]
    Load(#[from] JobError),
    /// The data directory could not be written.
    #[error("cannot write the run's files: {0}")]
    Io(#[from] std::io::Error),
    /// A failed run's record does not fit its own failure (a runtime bug).
    #[error("the failed run's record is inconsistent: {0}")]
    Inconsistent(String),
}

/// A deterministic failure, as the run met it.
struct Failure {
    failure: JobFailure,
    /// Checkpoints reached before the failed call.
    recorded: Vec<Hash>,
    /// The job's step count.
    steps: u64,
    /// Units spent, the failed call's included.
    units: u64,
    wall_ms: u64,
    /// The runtime's message.
    note: String,
}

/// Record a failure claim as the run's outcome.
fn record_failure(dir: &LeaseDir, f: Failure) -> Result<RunEnd, RunJobError> {
    let (failure, steps) = (f.failure, f.steps);
    let reached = f.recorded.len();
    let leaves = failure.leaves(f.recorded, steps).ok_or_else(|| {
        RunJobError::Inconsistent(format!(
            "{reached} checkpoints before a failure at {} of a {steps}-step job",
            failure.at
        ))
    })?;
    let outcome = Outcome {
        claim: ResultClaim::failed(failure, checkpoint_root(&leaves), steps).with_units(f.units),
        checkpoints: leaves,
        units: f.units,
        wall_ms: f.wall_ms,
        note: f.note,
    };
    dir.save_outcome(&outcome, None)?;
    Ok(RunEnd::Finished(outcome))
}

/// A lease's job as fetched: a bundle, or bytes that are the lease's job (they hash to it) but
/// do not decode as a bundle. The requester leased those bytes, so that they cannot run is the
/// job's own failure — at init, with no steps — not the agent's: it is committed as a failure
/// claim like any other ([`run_undecodable`]), never left to time out.
#[derive(Clone, Debug)]
pub enum JobBundle {
    /// A bundle.
    Bundle(Box<Bundle>),
    /// The job's bytes, and why they do not decode.
    Undecodable {
        /// The bytes.
        bytes: Vec<u8>,
        /// The decoder's error.
        error: String,
    },
}

impl JobBundle {
    /// The job's bytes, as the referee takes them.
    pub fn bytes(&self) -> &[u8] {
        match self {
            JobBundle::Bundle(b) => b.bytes(),
            JobBundle::Undecodable { bytes, .. } => bytes,
        }
    }
}

/// Record the outcome of a job whose bytes do not decode: a failure at init (`InvalidJob`) of
/// a job with no steps, which burned nothing. Returns the recorded outcome if there is one.
pub fn run_undecodable(dir: &LeaseDir, error: &str) -> Result<RunEnd, RunJobError> {
    if let Some(outcome) = dir.outcome() {
        return Ok(RunEnd::Finished(outcome));
    }
    record_failure(
        dir,
        Failure {
            failure: JobFailure {
                at: FailedAt::Init,
                reason: FailureReason::InvalidJob,
            },
            recorded: Vec::new(),
            steps: 0,
            units: 0,
            wall_ms: 0,
            note: format!("the job is not a bundle: {error}"),
        },
    )
}

/// The referee's input for leaf `k` of the finished run in `dir` when that leaf is its
/// failure's marker: the failure's encoding (what the referee takes in place of a state).
pub fn failure_input(dir: &LeaseDir, k: u64) -> Option<Vec<u8>> {
    let f = dir.outcome()?.claim.failure?;
    f.first_marker_leaf()
        .is_some_and(|m| m <= k)
        .then(|| orrery_types::codec::encode(&f))
}

/// Run (or resume) `bundle` in `dir` until it finishes or `stop` is set, ML on the CPU path.
pub fn run_job(
    runtime: &orrery_exec::Runtime,
    bundle: &Bundle,
    dir: &LeaseDir,
    settings: RunSettings,
    stop: &AtomicBool,
) -> Result<RunEnd, RunJobError> {
    run_job_on(
        runtime,
        bundle,
        dir,
        settings,
        &orrery_ml::Device::Cpu,
        stop,
    )
}

/// [`run_job`] with ML operators on `device`. A device fault (out of memory, a lost device)
/// is an error, never a failure claim: the run is tried again later, and the agent carries on.
pub fn run_job_on(
    runtime: &orrery_exec::Runtime,
    bundle: &Bundle,
    dir: &LeaseDir,
    settings: RunSettings,
    device: &orrery_ml::Device,
    stop: &AtomicBool,
) -> Result<RunEnd, RunJobError> {
    if let Some(outcome) = dir.outcome() {
        return Ok(RunEnd::Finished(outcome));
    }
    let loaded = match load_on(runtime, bundle, settings.threads, device) {
        Ok(job) => job,
        // A job that cannot load fails the same way everywhere, before init.
        Err(e) => {
            let Some(reason) = e.failure_reason() else {
                return Err(e.into());
            };
            return record_failure(
                dir,
                Failure {
                    failure: JobFailure {
                        at: FailedAt::Init,
                        reason,
                    },
                    recorded: Vec::new(),
                    steps: bundle.manifest().steps,
                    units: 0,
                    wall_ms: 0,
                    note: e.to_string(),
                },
            );
        }
    };
    let mut job = AsRun::new(loaded, settings.cheat);
    match dir.progress() {
        Some((p, state, cps)) => {
            tracing::info!(k = p.k, "resuming from a saved snapshot");
            let start = Start::Resume {
                k: p.k,
                state: &state,
                checkpoints: &cps,
                cost: p.cost,
            };
            match drive(&mut job, start, dir, settings, stop, p.wall_ms) {
                Err(RunJobError::Run(RunError::BadResume { k, reason })) => {
                    tracing::warn!(k, reason, "saved snapshot unusable: starting afresh");
                    dir.clear_progress()?;
                    drive(&mut job, Start::Fresh, dir, settings, stop, 0)
                }
                other => other,
            }
        }
        None => {
            dir.clear_progress()?;
            drive(&mut job, Start::Fresh, dir, settings, stop, 0)
        }
    }
}

fn drive<W: orrery_types::workload::Workload<Error = JobError>>(
    job: &mut W,
    start: Start<'_>,
    dir: &LeaseDir,
    settings: RunSettings,
    stop: &AtomicBool,
    wall_before_ms: u64,
) -> Result<RunEnd, RunJobError> {
    let began = Instant::now();
    let wall = |b: &Instant| wall_before_ms.saturating_add(b.elapsed().as_millis() as u64);
    let mut checkpoints: Vec<Hash> = match &start {
        Start::Fresh => Vec::new(),
        Start::Resume { checkpoints, .. } => checkpoints[..checkpoints.len() - 1].to_vec(),
    };
    let mut stopped_at = None;
    let mut io_error = None;
    let n = job.step_count();
    // Keep a state every `keep_every` steps (a multiple of the snapshot interval), decided from
    // the first state's size: at most MAX_KEPT_STATES of them within MAX_KEPT_STATE_BYTES.
    let mut keep_every: Option<u64> = None;
    let ran = run(job, start, |k, state, cost| {
        checkpoints.push(orrery_types::workload::checkpoint(state));
        let every = *keep_every.get_or_insert_with(|| {
            let by_bytes = MAX_KEPT_STATE_BYTES / (state.len() as u64).max(1);
            let count = MAX_KEPT_STATES.min(by_bytes).max(1);
            n.div_ceil(count)
                .max(1)
                .div_ceil(settings.save_every)
                .saturating_mul(settings.save_every)
        });
        if k > 0
            && k < n
            && k % every == 0
            && let Err(e) = dir.keep_state(k, state)
        {
            io_error = Some(e);
            return false;
        }
        let stopping = stop.load(Ordering::Relaxed);
        if k % settings.save_every == 0 || stopping {
            let p = Progress {
                k,
                cost,
                wall_ms: wall(&began),
            };
            if let Err(e) = dir.save_progress(p, state, &checkpoints) {
                io_error = Some(e);
                return false;
            }
        }
        if stopping {
            stopped_at = Some(k);
            return false;
        }
        true
    });
    if let Some(e) = io_error {
        return Err(e.into());
    }
    let record = match ran {
        Ok(record) => record,
        Err(RunError::Workload { at, cost, source }) => {
            let Some(reason) = source.failure_reason() else {
                return Err(RunError::Workload { at, cost, source }.into());
            };
            return record_failure(
                dir,
                Failure {
                    failure: JobFailure { at, reason },
                    recorded: checkpoints,
                    steps: n,
                    units: cost,
                    wall_ms: wall(&began),
                    note: source.to_string(),
                },
            );
        }
        Err(e) => return Err(e.into()),
    };
    let Some(record) = record else {
        return Ok(RunEnd::Stopped {
            k: stopped_at.unwrap_or(0),
        });
    };
    let outcome = Outcome {
        claim: ResultClaim::succeeded(
            Hash::of(&record.output),
            record.checkpoint_root(),
            record.checkpoints.len() as u64 - 1,
        )
        .with_units(record.cost),
        checkpoints: record.checkpoints,
        units: record.cost,
        wall_ms: wall(&began),
        note: String::new(),
    };
    dir.save_outcome(&outcome, Some(&record.output))?;
    Ok(RunEnd::Finished(outcome))
}

/// `state_k` of the run as this agent makes it (cheats included), replayed from the start.
/// The referee needs the agreed state before the disputed step; replaying costs at most the
/// run once more and needs no states kept on disk.
pub fn state_at(
    runtime: &orrery_exec::Runtime,
    bundle: &Bundle,
    settings: RunSettings,
    k: u64,
) -> Result<Vec<u8>, RunJobError> {
    let never = AtomicBool::new(false);
    state_until(runtime, bundle, settings, k, &never)?.ok_or(RunJobError::Run(
        RunError::BadResume {
            k,
            reason: "the replay stopped early",
        },
    ))
}

/// `state_k` of this agent's finished run in `dir`, replayed from the nearest state the run
/// kept (checked against the run's checkpoint) or, failing that, from the start. Returns the
/// step the replay started from with the state; checks `stop` between steps: `Ok(None)` when
/// stopped before step `k`. When the run failed at or before leaf `k`, that leaf is the
/// failure's marker: the referee then takes the failure's encoding, returned at once.
pub fn replay_state(
    runtime: &orrery_exec::Runtime,
    bundle: &Bundle,
    dir: &LeaseDir,
    settings: RunSettings,
    k: u64,
    stop: &AtomicBool,
) -> Result<Option<(u64, Vec<u8>)>, RunJobError> {
    if let Some(input) = failure_input(dir, k) {
        return Ok(Some((k, input)));
    }
    let kept = dir.outcome().and_then(|o| {
        let (j, state) = dir.kept_state_at_or_before(k)?;
        let cps = o.checkpoints.get(..=usize::try_from(j).ok()?)?.to_vec();
        Some((j, state, cps))
    });
    if let Some((j, state, cps)) = kept {
        let mut job = AsRun::new(load(runtime, bundle, settings.threads)?, settings.cheat);
        let start = Start::Resume {
            k: j,
            state: &state,
            checkpoints: &cps,
            cost: 0,
        };
        match replay(&mut job, start, k, stop) {
            Err(RunJobError::Run(RunError::BadResume { k: bad, reason })) => {
                tracing::warn!(
                    k = bad,
                    reason,
                    "kept state unusable: replaying from the start"
                );
            }
            other => return other.map(|s| s.map(|s| (j, s))),
        }
    }
    state_until(runtime, bundle, settings, k, stop).map(|s| s.map(|s| (0, s)))
}

/// [`state_at`], checking `stop` between steps: `Ok(None)` when stopped before step `k`.
pub fn state_until(
    runtime: &orrery_exec::Runtime,
    bundle: &Bundle,
    settings: RunSettings,
    k: u64,
    stop: &AtomicBool,
) -> Result<Option<Vec<u8>>, RunJobError> {
    let mut job = AsRun::new(load(runtime, bundle, settings.threads)?, settings.cheat);
    replay(&mut job, Start::Fresh, k, stop)
}

/// Run from `start` to `state_k` and return it (`None` if `stop` was set first).
fn replay<W: orrery_types::workload::Workload<Error = JobError>>(
    job: &mut W,
    start: Start<'_>,
    k: u64,
    stop: &AtomicBool,
) -> Result<Option<Vec<u8>>, RunJobError> {
    let mut found = None;
    let mut stopped = false;
    run(job, start, |i, state, _| {
        if i == k {
            found = Some(state.to_vec());
            return false;
        }
        if stop.load(Ordering::Relaxed) {
            stopped = true;
            return false;
        }
        true
    })?;
    match found {
        Some(state) => Ok(Some(state)),
        None if stopped => Ok(None),
        None => Err(RunJobError::Run(RunError::BadResume {
            k,
            reason: "past the last step",
        })),
    }
}
