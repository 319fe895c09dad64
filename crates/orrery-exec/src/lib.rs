//! Deterministic, metered WebAssembly workloads with Merkle-committed checkpoints.
//!
//! # What this crate guarantees
//!
//! A job is a [`Bundle`]: a manifest, a wasm module and named inputs in one content-addressed
//! file. Running it follows the workload shape of [`orrery_types::workload`]:
//!
//! ```text
//! init(input) -> state_0;   step(k, state_k) -> state_(k+1) for k < n;   output(state_n) -> bytes
//! ```
//!
//! - **Determinism.** The same bundle and state give the same next state, the same fuel and
//!   the same failure on every machine: the engine is configured for it ([`deterministic_config`]:
//!   NaN canonicalization, no threads, no relaxed SIMD, fixed memory limits), wasmtime is pinned
//!   to one exact version (fuel costs belong to the version), the only host functions are a
//!   fixed WASI subset with a frozen clock and a fixed random stream ([`wasi`]), and every call
//!   runs in a fresh instance so nothing leaks from one step into the next.
//! - **Metering.** Fuel (≈ one unit per wasm instruction) is the billed unit and the
//!   deterministic stop: each call gets `limits.fuel_per_step`, and a step's cost is the fuel it
//!   used. Running out is a deterministic failure.
//! - **Containment.** Memory (and table) growth past the job's limit traps; the wasm stack is
//!   bounded; states and outputs are size-checked before they are copied out; a wall-clock limit
//!   (epoch interruption) stops a slow call with "timed out, no result" — the only
//!   non-deterministic outcome besides a host failure ([`ExecError::is_deterministic`]).
//! - **Failures are results.** A deterministic failure maps to the code a failure claim
//!   carries ([`ExecError::failure_reason`]), and the fuel a failed call burned is reported
//!   ([`WasmJob::last_failed_fuel`]), so a job that fails is billed for the work it did.
//!   A timeout has no code: it never becomes a claim.
//!   No filesystem, network, clock or randomness reaches the guest.
//!
//! # Entry styles
//!
//! - **stepper**: the module exports `memory`, `alloc(len) -> ptr`, `init(ptr, len) -> packed`,
//!   `step(k: i64, ptr, len) -> packed` and `output(ptr, len) -> packed`, where
//!   `packed = (ptr << 32) | len` of the result in linear memory. Any number of steps; verified
//!   by bisection over the checkpoints. The ABI is specified in `docs/workloads.md`.
//! - **command**: a WASI program (`_start`). `state_0` is the input (its stdin), its one step
//!   runs the program, and `state_1` — its stdout — is the output. Verified by re-execution.
//!
//! # Where to start
//!
//! [`Runtime::load`] turns a bundle into a [`WasmJob`], which implements
//! [`orrery_types::workload::Workload`]; [`run_bundle`] runs or resumes it and records the
//! checkpoints; [`execute_step`] re-executes one step under a fuel bound, as a dispute referee
//! does. Limits are in [`limits`].

pub mod bundle;
pub mod error;
pub mod job;
pub mod limits;
pub mod pack;
pub mod runtime;
pub mod wasi;

pub use bundle::{Bundle, BundleError, EntryStyle, Manifest, RuntimeKind, WasmEntry};
pub use error::{ExecError, Phase};
pub use job::WasmJob;
pub use limits::Limits;
pub use pack::{PackError, pack_job_file};
pub use runtime::{CacheStats, Runtime, deterministic_config};

use orrery_types::workload::{self, FailedAt, RunError, RunRecord, Start, StepResult};

/// Execute exactly one step `k` of `bundle` from `state` (= `state_k`) with at most
/// `fuel_bound` fuel (capped at [`limits::MAX_FUEL_PER_STEP`]). Deterministic: this is the
/// referee's entry point. For `k = 0` of a command bundle, `state` is the input.
pub fn execute_step(
    runtime: &Runtime,
    bundle: &Bundle,
    k: u64,
    state: &[u8],
    fuel_bound: u64,
) -> Result<StepResult, ExecError> {
    runtime.load(bundle)?.step_with_fuel(k, state, fuel_bound)
}

/// Run a bundle to completion (or resume it from a checkpoint), calling
/// `on_step(k, state_k, cost_so_far)` after each checkpoint; returning `false` from it stops the
/// run (`Ok(None)`).
pub fn run_bundle(
    runtime: &Runtime,
    bundle: &Bundle,
    start: Start<'_>,
    on_step: impl FnMut(u64, &[u8], u64) -> bool,
) -> Result<Option<RunRecord>, RunError<ExecError>> {
    let mut job = runtime.load(bundle).map_err(|source| RunError::Workload {
        at: FailedAt::Init,
        cost: 0,
        source,
    })?;
    workload::run(&mut job, start, on_step)
}

#[cfg(test)]
mod tests;
