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
//!
//! # Runs that fail
//!
//! A call can fail **deterministically**: it runs out of its fuel, traps, hits a size or memory
//! limit, or the job cannot even be loaded. Every honest machine then fails the same way at
//! the same call, so the failure is itself a result that can be committed and checked. It is
//! described by a [`JobFailure`]: where ([`FailedAt`]: init, step `k`, or output) and why (a
//! [`FailureReason`] code). The message a runtime prints is not part of it (its wording is not
//! a protocol matter).
//!
//! A failed run still commits to `n + 1` leaves, so that bisection works unchanged against a
//! claim of success:
//!
//! ```text
//! failed at init:     [M, M, …, M]
//! failed at step k:   [checkpoint(state_0), …, checkpoint(state_k), M, …, M]   (leaf k+1 on)
//! failed at output:   [checkpoint(state_0), …, checkpoint(state_n)]            (all real)
//! ```
//!
//! where `M = `[`JobFailure::marker`]` = H("orrery/failure/v1" framing, encoding of the failure)`.
//! A marker is hashed under its own tag, so it can never equal `checkpoint(state)` of any
//! state: a leaf is either a state's checkpoint or a failure, never both. A failure is
//! absorbing: every leaf after a marker is the same marker.
//!
//! The **ending** of a run ([`output_ending`], [`JobFailure::marker`]) is what an output
//! dispute compares: `H("orrery/output/v1" framing, output hash)` for a run that produced an
//! output, the marker for one that failed. The two are hashed under different tags, so a claim
//! of success can never carry the ending of a failure, whatever output hash it names.
//!
//! Only deterministic failures are results. A wall-clock timeout or a host fault means "no
//! result" and never becomes a [`JobFailure`].

use crate::codec;
use crate::hash::Hash;
use crate::merkle::{MerkleTree, merkle_root};
use bytes::BufMut;
use commonware_codec::{EncodeSize, Error as CodecError, Read, ReadExt as _, Write};

/// The hash that stands for a workload state in commitments and disputes.
pub fn checkpoint(state: &[u8]) -> Hash {
    Hash::tagged(b"orrery/checkpoint/v1", state)
}

/// The commitment over a run's checkpoints.
pub fn checkpoint_root(checkpoints: &[Hash]) -> Hash {
    merkle_root(checkpoints)
}

/// The ending of a run that produced an output whose content hash is `output`: what an output
/// dispute compares (see the module docs).
pub fn output_ending(output: &Hash) -> Hash {
    Hash::tagged(b"orrery/output/v1", output.as_bytes())
}

/// The call of the workload shape that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailedAt {
    /// `init(input)`, or loading the job before it (a bundle or module that cannot run).
    Init,
    /// `step(k, state_k)`.
    Step(u64),
    /// `output(state_n)`.
    Output,
}

impl std::fmt::Display for FailedAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FailedAt::Init => write!(f, "init"),
            FailedAt::Step(k) => write!(f, "step {k}"),
            FailedAt::Output => write!(f, "output"),
        }
    }
}

impl Write for FailedAt {
    fn write(&self, buf: &mut impl BufMut) {
        match self {
            FailedAt::Init => 0u8.write(buf),
            FailedAt::Step(k) => {
                1u8.write(buf);
                k.write(buf);
            }
            FailedAt::Output => 2u8.write(buf),
        }
    }
}
impl EncodeSize for FailedAt {
    fn encode_size(&self) -> usize {
        match self {
            FailedAt::Step(_) => 9,
            _ => 1,
        }
    }
}
impl Read for FailedAt {
    type Cfg = ();
    fn read_cfg(buf: &mut impl commonware_codec::Buf, _: &()) -> Result<Self, CodecError> {
        match u8::read(buf)? {
            0 => Ok(FailedAt::Init),
            1 => Ok(FailedAt::Step(u64::read(buf)?)),
            2 => Ok(FailedAt::Output),
            t => Err(CodecError::InvalidEnum(t)),
        }
    }
}

/// Why a call failed deterministically. The code is what claims compare, so each runtime maps
/// its errors onto these by kind alone (never by message text).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// The job cannot run in the sandbox: its bundle does not decode, its manifest is invalid,
    /// its module does not compile, imports something not granted, or breaks its entry style's
    /// ABI.
    InvalidJob,
    /// The call used all the fuel (compute units) the job allows per call.
    OutOfFuel,
    /// Linear memory or a table would have grown past the job's limit.
    MemoryLimit,
    /// The program recursed past the sandbox's stack.
    StackOverflow,
    /// The program trapped (`unreachable`, an out-of-bounds access, a division by zero…).
    Trap,
    /// A WASI program exited with a nonzero status.
    Exit,
    /// A call returned a state larger than the job's limit.
    StateTooLarge,
    /// The output exceeded the job's limit.
    OutputTooLarge,
    /// The computation itself broke down (ML training produced NaN or infinity).
    Diverged,
}

impl FailureReason {
    const ALL: [FailureReason; 9] = [
        FailureReason::InvalidJob,
        FailureReason::OutOfFuel,
        FailureReason::MemoryLimit,
        FailureReason::StackOverflow,
        FailureReason::Trap,
        FailureReason::Exit,
        FailureReason::StateTooLarge,
        FailureReason::OutputTooLarge,
        FailureReason::Diverged,
    ];

    /// Its one-byte code in the canonical encoding.
    pub fn code(self) -> u8 {
        match self {
            FailureReason::InvalidJob => 0,
            FailureReason::OutOfFuel => 1,
            FailureReason::MemoryLimit => 2,
            FailureReason::StackOverflow => 3,
            FailureReason::Trap => 4,
            FailureReason::Exit => 5,
            FailureReason::StateTooLarge => 6,
            FailureReason::OutputTooLarge => 7,
            FailureReason::Diverged => 8,
        }
    }

    /// The reason with this code, if any.
    pub fn from_code(code: u8) -> Option<FailureReason> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }
}

impl std::fmt::Display for FailureReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FailureReason::InvalidJob => "cannot run in the sandbox (invalid bundle or module)",
            FailureReason::OutOfFuel => "ran out of fuel",
            FailureReason::MemoryLimit => "hit its memory limit",
            FailureReason::StackOverflow => "overflowed the stack",
            FailureReason::Trap => "trapped",
            FailureReason::Exit => "exited with a nonzero status",
            FailureReason::StateTooLarge => "produced a state over its size limit",
            FailureReason::OutputTooLarge => "produced an output over its size limit",
            FailureReason::Diverged => "diverged (a value became NaN or infinite)",
        })
    }
}

impl Write for FailureReason {
    fn write(&self, buf: &mut impl BufMut) {
        self.code().write(buf);
    }
}
impl EncodeSize for FailureReason {
    fn encode_size(&self) -> usize {
        1
    }
}
impl Read for FailureReason {
    type Cfg = ();
    fn read_cfg(buf: &mut impl commonware_codec::Buf, _: &()) -> Result<Self, CodecError> {
        let code = u8::read(buf)?;
        FailureReason::from_code(code).ok_or(CodecError::InvalidEnum(code))
    }
}

/// A deterministic failure of a run: where and why. See the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct JobFailure {
    /// The call that failed.
    pub at: FailedAt,
    /// Why.
    pub reason: FailureReason,
}
crate::codec_struct!(JobFailure {
    at: FailedAt,
    reason: FailureReason,
});

impl std::fmt::Display for JobFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at {}", self.reason, self.at)
    }
}

impl JobFailure {
    /// The leaf that stands for this failure in a failed run's checkpoint list, and the
    /// ending of the run: hashed under its own tag, so it is never a state's checkpoint.
    pub fn marker(&self) -> Hash {
        Hash::tagged(b"orrery/failure/v1", &codec::encode(self))
    }

    /// The first leaf that is the marker: 0 for init, `k + 1` for step `k`, none for the
    /// output (every checkpoint of a run that failed in `output` is real).
    pub fn first_marker_leaf(&self) -> Option<u64> {
        match self.at {
            FailedAt::Init => Some(0),
            FailedAt::Step(k) => k.checked_add(1),
            FailedAt::Output => None,
        }
    }

    /// The `steps + 1` leaves of a run with `steps` steps that failed here, from the
    /// checkpoints it recorded before failing: `0..=k` for step `k`, none for init, all
    /// `steps + 1` for the output. `None` when `recorded` does not have that length or the
    /// failure is not within `steps`.
    pub fn leaves(&self, mut recorded: Vec<Hash>, steps: u64) -> Option<Vec<Hash>> {
        let total = steps.checked_add(1)?;
        let before = self.first_marker_leaf().unwrap_or(total);
        if before > total || (self.at != FailedAt::Output && before == total) {
            return None;
        }
        if recorded.len() as u64 != before {
            return None;
        }
        let marker = self.marker();
        recorded.resize(usize::try_from(total).ok()?, marker);
        Some(recorded)
    }
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

    /// The deterministic cost the last call that failed spent before it failed (wasm: the fuel
    /// it burned), so that a failed run is billed for the work done. A runtime that does not
    /// meter a failed call returns 0.
    fn failed_call_cost(&self) -> u64 {
        0
    }
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
    /// The runtime failed in one call.
    // The source is exposed through `#[source]` only, so error chains print it once.
    #[error("workload failed at {at}")]
    Workload {
        /// The call that failed.
        at: FailedAt,
        /// Cost of the run up to and including the failed call (what it spent before failing,
        /// [`Workload::failed_call_cost`]).
        cost: u64,
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
            let s0 = workload.init().map_err(|source| RunError::Workload {
                at: FailedAt::Init,
                cost: workload.failed_call_cost(),
                source,
            })?;
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
        let next = match workload.step(k, &state) {
            Ok(next) => next,
            Err(source) => {
                return Err(RunError::Workload {
                    at: FailedAt::Step(k),
                    cost: cost.saturating_add(workload.failed_call_cost()),
                    source,
                });
            }
        };
        k += 1;
        cost = cost.saturating_add(next.cost);
        state = next.state;
        checkpoints.push(checkpoint(&state));
        if !on_step(k, &state, cost) {
            return Ok(None);
        }
    }
    let out = match workload.output(&state) {
        Ok(out) => out,
        Err(source) => {
            return Err(RunError::Workload {
                at: FailedAt::Output,
                cost: cost.saturating_add(workload.failed_call_cost()),
                source,
            });
        }
    };
    Ok(Some(RunRecord {
        output: out.output,
        cost: cost.saturating_add(out.cost),
        final_state: state,
        checkpoints,
    }))
}

#[cfg(test)]
mod tests;
