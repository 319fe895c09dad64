//! The referee: executes exactly one disputed piece of a job, deterministically, inside block
//! execution.
//!
//! A dispute narrows two claims down to one thing the state machine can check by itself: the
//! step count (read from the bundle's manifest), `init` (leaf 0), one `step k` from the agreed
//! state `k`, or `output(state_n)`. The referee runs it with `orrery-exec` under the fuel bound
//! `min(params.referee_fuel, the job's own per-step fuel)` and returns the hash the honest
//! claim must carry.
//!
//! Outcomes:
//! - [`Ruling::Value`]: the value the honest claim carries; a claim is right iff it carries
//!   exactly it. For a piece that runs, it is the leaf hash of the new state's checkpoint (init,
//!   step) or the run's ending, `output_ending(H(output))` (output). For a piece that fails
//!   deterministically (a trap, the job's own fuel limit, a size limit, a module that does not
//!   load) every machine fails the same way: the value is then the failure's marker (its leaf
//!   hash for init and steps), which is what an honest failure claim carries
//!   (see `crate::verify`, "Failure claims"). A module that does not load fails at init, for
//!   every piece, since an honest run never got past it.
//! - [`Ruling::Unable`]: the referee cannot execute it here (it needs more fuel than the referee
//!   may spend, a runtime the referee does not host, or the host failed). The dispute then goes
//!   to a majority of independent re-executions.
//!
//! Determinism: the runtime is configured for bit-for-bit reproducible execution (see
//! `orrery-exec`); wall-clock limits are not used here — a step either finishes within its fuel
//! or does not. The compiled-module cache inside the runtime only saves time; it never changes a
//! result.

use orrery_exec::{Bundle, ExecError, Runtime, RuntimeKind};
use orrery_types::hash::Hash;
use orrery_types::merkle::leaf_hash;
use orrery_types::workload::{FailedAt, JobFailure, checkpoint, output_ending};
use std::sync::OnceLock;

/// What the referee is asked to execute.
#[derive(Clone, Copy, Debug)]
pub enum Piece<'a> {
    /// `init(input)`: the result is the leaf hash of checkpoint 0.
    Init,
    /// `step(k, state_k)`: the result is the leaf hash of checkpoint `k + 1`.
    Step {
        /// The step.
        k: u64,
        /// The agreed `state_k`.
        state: &'a [u8],
    },
    /// `output(state_n)`: the result is the run's ending.
    Output {
        /// The agreed final state.
        state: &'a [u8],
    },
}

impl Piece<'_> {
    /// Where a run fails when this piece fails.
    fn at(&self) -> FailedAt {
        match self {
            Piece::Init => FailedAt::Init,
            Piece::Step { k, .. } => FailedAt::Step(*k),
            Piece::Output { .. } => FailedAt::Output,
        }
    }
}

/// The referee's verdict on one piece.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ruling {
    /// The value an honest claim carries here, the fuel spent finding it, and the job's
    /// failure when the piece failed.
    Value {
        /// Leaf hash (init, step) or ending (output).
        value: Hash,
        /// Fuel used.
        fuel: u64,
        /// The deterministic failure the piece ended in, if it did.
        failure: Option<JobFailure>,
    },
    /// The referee cannot decide; settle by majority.
    Unable(String),
}

/// The value of `piece` in a run that failed with `failure` there or before: the marker's
/// leaf hash for a checkpoint, the marker itself as the ending.
pub fn failed(piece: &Piece<'_>, failure: JobFailure, fuel: u64) -> Ruling {
    let marker = failure.marker();
    let value = match piece {
        Piece::Init | Piece::Step { .. } => leaf_hash(&marker),
        Piece::Output { .. } => marker,
    };
    Ruling::Value {
        value,
        fuel,
        failure: Some(failure),
    }
}

fn runtime() -> Result<&'static Runtime, String> {
    static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| Runtime::new().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| format!("the referee's wasm runtime is unavailable: {e}"))
}

/// Execute `piece` of `bundle` with at most `referee_fuel` fuel.
pub fn rule(bundle: &Bundle, piece: Piece<'_>, referee_fuel: u64) -> Ruling {
    if bundle.manifest().runtime != RuntimeKind::Wasm {
        return Ruling::Unable(format!(
            "the referee executes wasm jobs; this job runs on the {} runtime",
            bundle.manifest().runtime
        ));
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return Ruling::Unable(e),
    };
    let job = match rt.load(bundle) {
        Ok(j) => j,
        // A module that does not compile or link fails identically everywhere, before init.
        Err(e) => {
            return match e.failure_reason() {
                Some(reason) => failed(
                    &piece,
                    JobFailure {
                        at: FailedAt::Init,
                        reason,
                    },
                    0,
                ),
                None => Ruling::Unable(e.to_string()),
            };
        }
    };
    let job_fuel = job.limits().fuel_per_step;
    let fuel = referee_fuel.min(job_fuel);
    let result = match piece {
        Piece::Init => job
            .init_with_fuel(fuel)
            .map(|r| (leaf_hash(&checkpoint(&r.state)), r.cost)),
        Piece::Step { k, state } => job
            .step_with_fuel(k, state, fuel)
            .map(|r| (leaf_hash(&checkpoint(&r.state)), r.cost)),
        Piece::Output { state } => job
            .output_with_fuel(state, fuel)
            .map(|(out, cost)| (output_ending(&Hash::of(&out)), cost)),
    };
    match result {
        Ok((value, fuel)) => Ruling::Value {
            value,
            fuel,
            failure: None,
        },
        // Out of fuel under the referee's bound, when the job itself allows more: the referee
        // simply could not afford it. Under the job's own bound: the job fails everywhere.
        Err(ExecError::FuelExhausted { .. }) if fuel < job_fuel => Ruling::Unable(format!(
            "the step needs more than the referee's {referee_fuel} fuel"
        )),
        Err(e) => match e.failure_reason() {
            Some(reason) => failed(
                &piece,
                JobFailure {
                    at: piece.at(),
                    reason,
                },
                job.last_failed_fuel(),
            ),
            None => Ruling::Unable(e.to_string()),
        },
    }
}
