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
//! - [`Ruling::Value`]: the referee's result; a claim is right iff it carries exactly it.
//! - [`Ruling::JobFails`]: the piece fails deterministically (a trap, the job's own fuel limit,
//!   a size limit). Every machine fails the same way, so no claim of a result is right.
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
use orrery_types::workload::checkpoint;
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
    /// `output(state_n)`: the result is the hash of the output bytes.
    Output {
        /// The agreed final state.
        state: &'a [u8],
    },
}

/// The referee's verdict on one piece.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ruling {
    /// The correct value, and the fuel spent computing it.
    Value {
        /// Leaf hash (init, step) or output hash.
        value: Hash,
        /// Fuel used.
        fuel: u64,
    },
    /// The piece fails the same way on every machine: no claimed result is right.
    JobFails(String),
    /// The referee cannot decide; settle by majority.
    Unable(String),
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
        // A module that does not compile or link fails identically everywhere.
        Err(e) if e.is_deterministic() => return Ruling::JobFails(e.to_string()),
        Err(e) => return Ruling::Unable(e.to_string()),
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
            .map(|(out, cost)| (Hash::of(&out), cost)),
    };
    match result {
        Ok((value, fuel)) => Ruling::Value { value, fuel },
        // Out of fuel under the referee's bound, when the job itself allows more: the referee
        // simply could not afford it. Under the job's own bound: the job fails everywhere.
        Err(ExecError::FuelExhausted { .. }) if fuel < job_fuel => Ruling::Unable(format!(
            "the step needs more than the referee's {referee_fuel} fuel"
        )),
        Err(e) if e.is_deterministic() => Ruling::JobFails(e.to_string()),
        Err(e) => Ruling::Unable(e.to_string()),
    }
}
