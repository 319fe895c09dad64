//! The one shape every verifiable workload has, whatever runs it.
//!
//! ```text
//! init(input)   -> state_0
//! step(state_k) -> state_(k+1)     for k < n
//! output(state_n) -> bytes
//! ```
//!
//! - A **checkpoint** is [`checkpoint`]`(state_k)`, a tagged hash of the serialized state.
//! - The **commitment** of a run is the Merkle root over the `n + 1` checkpoints
//!   `[checkpoint(state_0), …, checkpoint(state_n)]` ([`checkpoint_root`]).
//! - A step is a pure function of its input state: executing step `k` alone from `state_k` must
//!   give the same `state_(k+1)` as a full run. That is what lets a run be resumed from any
//!   checkpoint, metered per step, and disputed by bisection down to one step that a referee
//!   re-executes.
//! - **Cost** is counted per step in deterministic units chosen by the runtime (wasm fuel, or
//!   the ML runtime's operation count), so that two honest machines meter the same usage.
//!
//! Runtimes (`orrery-exec` for WebAssembly, `orrery-ml` for machine learning) implement
//! [`Workload`]; [`run`] drives any of them and records the checkpoints.

use crate::hash::Hash;
use crate::merkle::{MerkleTree, merkle_root};

/// The hash that stands for a workload state in commitments and disputes.
pub fn checkpoint(state: &[u8]) -> Hash {
    Hash::tagged(b"orrery/checkpoint/v1", state)
}

/// The commitment over a run's checkpoints.
pub fn checkpoint_root(checkpoints: &[Hash]) -> Hash {
    merkle_root(checkpoints)
}

/// What one step produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepResult {
    /// The serialized state after the step.
    pub state: Vec<u8>,
    /// Deterministic cost of the step in the runtime's billing unit.
    pub cost: u64,
}

/// What `output` produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputResult {
    /// The job's output bytes.
    pub output: Vec<u8>,
    /// Deterministic cost of extracting it, billed like a step (a job cannot hide work in its
    /// output function).
    pub cost: u64,
}

/// A workload that can be run step by step. Implementations must be deterministic: the same
/// state in gives the same state and cost out, on any machine.
pub trait Workload {
    /// Why a call failed (a trap, a limit hit, bad input).
    type Error: std::error::Error + Send + Sync + 'static;

    /// The number of steps `n` in a full run.
    fn step_count(&self) -> u64;

    /// Build `state_0` from the job's input.
    fn init(&mut self) -> Result<StepResult, Self::Error>;

    /// Compute `state_(k+1)` from `state_k`. `k` is passed so runtimes can draw per-step data
    /// (batch `k` of a data set); it is also recoverable from the state itself.
    fn step(&mut self, k: u64, state: &[u8]) -> Result<StepResult, Self::Error>;

    /// Extract the job's output from the final state.
    fn output(&mut self, state: &[u8]) -> Result<OutputResult, Self::Error>;
}

/// A finished run: output, final state, every checkpoint and the metered cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunRecord {
    /// The job's output bytes.
    pub output: Vec<u8>,
    /// The final state `state_n`.
    pub final_state: Vec<u8>,
    /// `checkpoints[k] = checkpoint(state_k)` for `k = 0..=n`.
    pub checkpoints: Vec<Hash>,
    /// Total cost of init, every step and the output.
    pub cost: u64,
}

impl RunRecord {
    /// The commitment over the checkpoints.
    pub fn checkpoint_root(&self) -> Hash {
        checkpoint_root(&self.checkpoints)
    }

    /// The checkpoints as a tree, to open any one of them with a proof.
    pub fn checkpoint_tree(&self) -> MerkleTree {
        MerkleTree::new(&self.checkpoints)
    }
}

/// Where a run starts: from the job's input, or resumed from a saved state.
#[derive(Clone, Debug)]
pub enum Start<'a> {
    /// `init` then every step.
    Fresh,
    /// Resume at step `k` from `state_k`, with the checkpoints `0..=k` already recorded.
    Resume {
        /// The step index of `state`.
        k: u64,
        /// `state_k`.
        state: &'a [u8],
        /// `checkpoints[0..=k]` from the interrupted run.
        checkpoints: &'a [Hash],
        /// Cost already spent up to `state_k`.
        cost: u64,
    },
}

/// Why [`run`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError<E: std::error::Error + 'static> {
    /// The runtime failed at a given step (`None` for init or output).
    // The source is exposed through `#[source]` only, so error chains print it once.
    #[error("workload failed at {}", step.map(|k| format!("step {k}")).unwrap_or_else(|| "init/output".into()))]
    Workload {
        /// The step that failed.
        step: Option<u64>,
        /// The runtime's error.
        #[source]
        source: E,
    },
    /// A resume point that does not fit the workload.
    #[error("cannot resume at step {k}: {reason}")]
    BadResume {
        /// Requested step.
        k: u64,
        /// Why not.
        reason: &'static str,
    },
}

/// Run a workload to completion, calling `on_step(k, &state_k, cost_so_far)` after each
/// checkpoint is recorded (for progress, persistence of resumable state, or cancellation by
/// returning `false`, which stops the run and returns `Ok(None)`).
pub fn run<W: Workload>(
    workload: &mut W,
    start: Start<'_>,
    mut on_step: impl FnMut(u64, &[u8], u64) -> bool,
) -> Result<Option<RunRecord>, RunError<W::Error>> {
    let n = workload.step_count();
    let (mut k, mut state, mut checkpoints, mut cost) = match start {
        Start::Fresh => {
            let s0 = workload
                .init()
                .map_err(|source| RunError::Workload { step: None, source })?;
            let cps = vec![checkpoint(&s0.state)];
            (0, s0.state, cps, s0.cost)
        }
        Start::Resume {
            k,
            state,
            checkpoints,
            cost,
        } => {
            if k > n {
                return Err(RunError::BadResume {
                    k,
                    reason: "past the last step",
                });
            }
            if checkpoints.len() as u64 != k + 1 {
                return Err(RunError::BadResume {
                    k,
                    reason: "checkpoint list must hold exactly steps 0..=k",
                });
            }
            if checkpoints[k as usize] != checkpoint(state) {
                return Err(RunError::BadResume {
                    k,
                    reason: "state does not match its checkpoint",
                });
            }
            (k, state.to_vec(), checkpoints.to_vec(), cost)
        }
    };
    if !on_step(k, &state, cost) {
        return Ok(None);
    }
    while k < n {
        let next = workload
            .step(k, &state)
            .map_err(|source| RunError::Workload {
                step: Some(k),
                source,
            })?;
        k += 1;
        cost = cost.saturating_add(next.cost);
        state = next.state;
        checkpoints.push(checkpoint(&state));
        if !on_step(k, &state, cost) {
            return Ok(None);
        }
    }
    let out = workload
        .output(&state)
        .map_err(|source| RunError::Workload { step: None, source })?;
    Ok(Some(RunRecord {
        output: out.output,
        cost: cost.saturating_add(out.cost),
        final_state: state,
        checkpoints,
    }))
}

#[cfg(test)]
mod tests;
