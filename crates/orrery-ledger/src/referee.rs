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
//! - [`Ruling::Unable`]: the referee cannot execute it, for a reason every validator shares (it
//!   needs more fuel than the referee may spend, a runtime the referee does not host, a step
//!   the job does not have). The dispute then goes to a majority of independent re-executions.
//! - [`HostFailure`] (an error, not a ruling): this validator's own machine failed — the wasm
//!   engine cannot be created, the host ran out of memory, a wall-clock interrupt fired. Another
//!   validator would not fail, so this must never become a state change (a ruling or a
//!   tie-break): the transaction's block fails to apply on this validator
//!   (`BlockError::RefereeHost`), which discards the block's changes and stops or retries
//!   rather than commit a state the others would not. Only the job's deterministic behaviour
//!   (`ExecError::is_deterministic`) may decide.
//!
//! The referee is a [`Referee`]: [`WasmReferee`] in production; tests inject a faulting one
//! through `apply_block_with` to show that a host failure on one validator leaves every
//! validator's state root equal.
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

/// The validator's own machine failed while the referee executed a piece: not an outcome of
/// the job. The block must not apply on this validator (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the referee's host failed ({0}); this validator must retry the block, never rule on it")]
pub struct HostFailure(pub String);

/// Executes one disputed piece. Implementations must rule only on the job's deterministic
/// behaviour and report anything of their own machine as a [`HostFailure`].
pub trait Referee: std::fmt::Debug + Send + Sync {
    /// Execute `piece` of `bundle` with at most `referee_fuel` fuel.
    fn rule(
        &self,
        bundle: &Bundle,
        piece: Piece<'_>,
        referee_fuel: u64,
    ) -> Result<Ruling, HostFailure>;
}

/// The production referee: [`rule`] on the shared wasm runtime.
#[derive(Clone, Copy, Debug, Default)]
pub struct WasmReferee;

impl Referee for WasmReferee {
    fn rule(
        &self,
        bundle: &Bundle,
        piece: Piece<'_>,
        referee_fuel: u64,
    ) -> Result<Ruling, HostFailure> {
        rule(bundle, piece, referee_fuel)
    }
}

/// The shared runtime. A failure to create it is not cached: a later block retries.
fn runtime() -> Result<&'static Runtime, HostFailure> {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let rt = Runtime::new()
        .map_err(|e| HostFailure(format!("the referee's wasm runtime cannot be created: {e}")))?;
    Ok(RUNTIME.get_or_init(|| rt))
}

/// An execution error as the referee sees it: the job's deterministic failure of `piece`, a
/// deterministic inability, or the host's failure.
fn judged(piece: &Piece<'_>, at: FailedAt, e: ExecError, fuel: u64) -> Result<Ruling, HostFailure> {
    if !e.is_deterministic() {
        return Err(HostFailure(e.to_string()));
    }
    Ok(match e.failure_reason() {
        Some(reason) => failed(piece, JobFailure { at, reason }, fuel),
        // Deterministic but not the job's failure (a step the job does not have): every
        // validator is equally unable.
        None => Ruling::Unable(e.to_string()),
    })
}

/// Execute `piece` of `bundle` with at most `referee_fuel` fuel.
pub fn rule(bundle: &Bundle, piece: Piece<'_>, referee_fuel: u64) -> Result<Ruling, HostFailure> {
    if bundle.manifest().runtime != RuntimeKind::Wasm {
        return Ok(Ruling::Unable(format!(
            "the referee executes wasm jobs; this job runs on the {} runtime",
            bundle.manifest().runtime
        )));
    }
    let rt = runtime()?;
    let job = match rt.load(bundle) {
        Ok(j) => j,
        // A module that does not compile or link fails identically everywhere, before init.
        Err(e) => return judged(&piece, FailedAt::Init, e, 0),
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
        Ok((value, fuel)) => Ok(Ruling::Value {
            value,
            fuel,
            failure: None,
        }),
        // Out of fuel under the referee's bound, when the job itself allows more: the referee
        // simply could not afford it. Under the job's own bound: the job fails everywhere.
        Err(ExecError::FuelExhausted { .. }) if fuel < job_fuel => Ok(Ruling::Unable(format!(
            "the step needs more than the referee's {referee_fuel} fuel"
        ))),
        Err(e) => judged(&piece, piece.at(), e, job.last_failed_fuel()),
    }
}
