//! Every way the ML runtime can refuse or fail, with a message that says what to change.

use orrery_types::workload::FailureReason;

/// Why a model, data set, job spec, weight file or training step was rejected.
#[derive(Debug, thiserror::Error)]
pub enum MlError {
    /// A model configuration whose dimensions cannot work together.
    #[error("invalid model config: {0}")]
    BadConfig(String),
    /// A job spec (TOML) that is malformed or names impossible hyper-parameters.
    #[error("invalid job spec: {0}")]
    BadSpec(String),
    /// Weights that do not fit the model configuration (missing, extra or mis-shaped tensors).
    #[error("weights do not match the model config: {0}")]
    WeightsMismatch(String),
    /// A safetensors file that could not be parsed.
    #[error("cannot read safetensors weights: {0}")]
    BadWeightsFile(String),
    /// A data set with nothing to learn from, or that does not fit the model.
    #[error("bad data set: {0}")]
    BadData(String),
    /// Training produced NaN or infinity; the step and the first offending quantity are named.
    #[error(
        "training diverged at step {step}: {what} is not finite (lower the learning rate or enable gradient clipping)"
    )]
    NonFinite {
        /// The step whose computation produced the non-finite value.
        step: u64,
        /// What went non-finite (the loss, or a parameter's gradient or value).
        what: String,
    },
    /// A serialized workload state that is truncated, corrupt, or belongs to another job.
    #[error("bad workload state: {0}")]
    BadState(String),
    /// A cluster delta that cannot be used: from a peer with the wrong shape, round or
    /// worker, or a round with nothing to apply.
    #[error("bad cluster delta: {0}")]
    BadDelta(String),

    /// A step index that does not match the state it is applied to.
    #[error("step {k} applied to a state at step {state_step}")]
    StepMismatch {
        /// The step index asked for.
        k: u64,
        /// The step counter stored in the state.
        state_step: u64,
    },
    /// The GPU backend failed (no adapter, a kernel that does not compile, a lost device):
    /// a fault of the host, not a result of the job.
    #[error("GPU backend: {0}")]
    Device(String),
    /// A tensor does not fit in the GPU's memory or buffer limits.
    #[error(
        "GPU out of memory: {what} needs {bytes} bytes, the device allows {limit} bytes per buffer (use a smaller batch or model, or the CPU path)"
    )]
    DeviceOutOfMemory {
        /// Which buffer.
        what: String,
        /// Its size in bytes.
        bytes: u64,
        /// The device's limit per buffer, in bytes.
        limit: u64,
    },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, MlError>;

impl MlError {
    /// The code a failure claim carries for this error, when it is the job's own deterministic
    /// failure (see `orrery_types::workload`, "Runs that fail"): a spec, model, weights or data
    /// set that cannot work is an invalid job; training that produced NaN or infinity diverged.
    /// `None` for a state that does not decode or belongs to another step: the runtime made
    /// that state itself, so it means a corrupt snapshot or a host fault, not a result.
    pub fn failure_reason(&self) -> Option<FailureReason> {
        match self {
            MlError::BadConfig(_)
            | MlError::BadSpec(_)
            | MlError::WeightsMismatch(_)
            | MlError::BadWeightsFile(_)
            | MlError::BadData(_) => Some(FailureReason::InvalidJob),
            MlError::NonFinite { .. } => Some(FailureReason::Diverged),
            // A GPU fault says nothing about the job: another device may run it. A bad cluster
            // delta is a peer's or the round's, not this job's own failure.
            MlError::BadState(_)
            | MlError::StepMismatch { .. }
            | MlError::BadDelta(_)
            | MlError::Device(_)
            | MlError::DeviceOutOfMemory { .. } => None,
        }
    }
}
