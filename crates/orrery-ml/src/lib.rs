//! Deterministic machine learning for Orrery: tensor operators with a fixed order of
//! floating-point operations, an MLP classifier and a small decoder-only transformer, trained,
//! fine-tuned and run as [`orrery_types::workload::Workload`]s whose every state is bitwise
//! reproducible on any machine and any thread count.
//!
//! # Specification
//!
//! - **Arithmetic**: see [`ops`] for the rules every operator follows (f32, no FMA, sequential
//!   reductions in index order, `libm` transcendentals, parallelism over outputs only).
//! - **State** of a training step: the step counter, the last training loss, the parameters and
//!   the optimizer's slots, in the canonical little-endian encoding of [`state`]. Its checkpoint
//!   is `orrery_types::workload::checkpoint(state)`.
//! - **Step `k`** ([`workload::TrainWorkload`]): decode `state_k`, draw batch `k` from the data
//!   set with a generator seeded by `(data seed, k)`, forward, backward, one optimizer update,
//!   encode `state_(k+1)`. It is a pure function of (job spec, data, `k`, `state_k`), which is
//!   what lets a referee re-execute one step of a disputed run.
//! - **Cost** of a step: 3 × the forward pass's floating-point operations in matrix products
//!   and attention (2 per multiply-add; the backward pass counted as twice the forward), plus 10
//!   per parameter for the optimizer update, computed from shapes alone
//!   ([`model::ModelConfig::step_cost`]).
//! - **Failure**: a NaN or infinity in the loss, a gradient or an updated parameter stops the run
//!   with [`MlError::NonFinite`] naming the step. It is deterministic like everything else, so
//!   it is a result: a provider commits it as a failure claim ([`MlError::failure_reason`]),
//!   billed for the steps done and the diverged step's cost.
//!
//! Start reading at [`workload`], then [`model`] and [`ops`].

pub mod cluster;
pub mod data;
pub mod device;
pub mod error;
pub mod infer;
pub mod model;
pub mod ops;
pub mod optim;
pub mod rng;
pub mod spec;
pub mod state;
pub mod tensor;
pub mod weights;
pub mod workload;

pub use device::Device;
pub use error::{MlError, Result};
pub use tensor::{ParamSet, Tensor};
