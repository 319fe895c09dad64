//! Models: an MLP classifier and a small decoder-only transformer language model.
//!
//! A model is its configuration; its parameters live in a [`ParamSet`] whose names, shapes and
//! order the configuration fixes ([`ModelConfig::template`]). Forward and backward passes are
//! written out by hand from the operators in [`crate::ops`], so the order of every floating-point
//! operation is visible in the source.

pub mod mlp;
pub mod transformer;

pub use mlp::MlpConfig;
pub use transformer::TransformerConfig;

use crate::device::Device;
use crate::error::{MlError, Result};
use crate::tensor::ParamSet;
use serde::{Deserialize, Serialize};

/// Upper bound on any one model dimension; larger configs are surely a typo and would exhaust
/// memory before doing anything useful on a CPU.
pub const MAX_DIM: usize = 1 << 16;
/// Upper bound on a model's parameter count (256 Mi parameters = 1 GiB of f32).
pub const MAX_PARAMS: usize = 1 << 28;

/// Which model, with its dimensions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ModelConfig {
    /// A multi-layer perceptron classifier.
    Mlp(MlpConfig),
    /// A decoder-only transformer language model.
    Transformer(TransformerConfig),
}

/// One batch of training or evaluation data.
#[derive(Clone, Debug, PartialEq)]
pub enum Batch {
    /// Feature rows and their class labels.
    Classify {
        /// `rows × features`, row-major.
        x: Vec<f32>,
        /// One label per row.
        y: Vec<u32>,
    },
    /// Token sequences and their next-token targets.
    Tokens {
        /// `batch × seq` token ids.
        ids: Vec<u32>,
        /// `batch × seq` targets (`ids` shifted by one).
        targets: Vec<u32>,
        /// Sequences in the batch.
        batch: usize,
        /// Tokens per sequence.
        seq: usize,
    },
}

impl Batch {
    /// Rows the loss averages over (examples or tokens).
    pub fn rows(&self) -> usize {
        match self {
            Batch::Classify { y, .. } => y.len(),
            Batch::Tokens { targets, .. } => targets.len(),
        }
    }
}

pub(crate) fn check_dim(what: &str, v: usize) -> Result<()> {
    if v == 0 || v > MAX_DIM {
        return Err(MlError::BadConfig(format!(
            "{what} must be between 1 and {MAX_DIM}, got {v}"
        )));
    }
    Ok(())
}

impl ModelConfig {
    /// Check that the dimensions are consistent, with a message that names the fix.
    pub fn validate(&self) -> Result<()> {
        match self {
            ModelConfig::Mlp(c) => c.validate()?,
            ModelConfig::Transformer(c) => c.validate()?,
        }
        let n = self.template().numel();
        if n > MAX_PARAMS {
            return Err(MlError::BadConfig(format!(
                "{n} parameters is more than the limit of {MAX_PARAMS}"
            )));
        }
        Ok(())
    }

    /// Zero parameters with the right names and shapes, in canonical order.
    pub fn template(&self) -> ParamSet {
        match self {
            ModelConfig::Mlp(c) => c.template(),
            ModelConfig::Transformer(c) => c.template(),
        }
    }

    /// Freshly initialised parameters, a pure function of `seed`.
    pub fn init_params(&self, seed: u64) -> ParamSet {
        match self {
            ModelConfig::Mlp(c) => c.init_params(seed),
            ModelConfig::Transformer(c) => c.init_params(seed),
        }
    }

    /// Mean loss over `batch` and the gradient of every parameter.
    pub fn loss_and_grads(
        &self,
        params: &ParamSet,
        batch: &Batch,
        threads: usize,
    ) -> Result<(f32, ParamSet)> {
        self.loss_and_grads_on(&Device::Cpu, params, batch, threads)
    }

    /// [`Self::loss_and_grads`] on `dev`.
    pub fn loss_and_grads_on(
        &self,
        dev: &Device,
        params: &ParamSet,
        batch: &Batch,
        threads: usize,
    ) -> Result<(f32, ParamSet)> {
        match (self, batch) {
            (ModelConfig::Mlp(c), Batch::Classify { x, y }) => {
                c.loss_and_grads(dev, params, x, y, threads)
            }
            (
                ModelConfig::Transformer(c),
                Batch::Tokens {
                    ids,
                    targets,
                    batch,
                    seq,
                },
            ) => c.loss_and_grads(dev, params, ids, targets, *batch, *seq, threads),
            _ => Err(MlError::BadData(
                "the data set does not fit the model (an MLP needs a classification data set, a transformer a text corpus)".into(),
            )),
        }
    }

    /// Mean loss over `batch` without gradients.
    pub fn loss(&self, params: &ParamSet, batch: &Batch, threads: usize) -> Result<f32> {
        Ok(self.loss_and_grads(params, batch, threads)?.0)
    }

    /// [`Self::loss`] on `dev`.
    pub fn loss_on(
        &self,
        dev: &Device,
        params: &ParamSet,
        batch: &Batch,
        threads: usize,
    ) -> Result<f32> {
        Ok(self.loss_and_grads_on(dev, params, batch, threads)?.0)
    }

    /// Floating-point operations (2 per multiply-add) of the forward pass's matrix products
    /// and attention on `batch`: the metered cost of an inference step.
    pub fn forward_flops(&self, batch: &Batch) -> u64 {
        match (self, batch) {
            (ModelConfig::Mlp(c), _) => c.forward_macs(batch.rows()) * 2,
            (ModelConfig::Transformer(c), Batch::Tokens { batch, seq, .. }) => {
                c.forward_macs(*batch, *seq) * 2
            }
            _ => 0,
        }
    }

    /// Deterministic cost of one training step on `batch` (see the crate docs): 3 × the forward
    /// FLOPs of the matrix products and attention, plus 10 per parameter.
    pub fn step_cost(&self, batch: &Batch) -> u64 {
        let matmul_flops = self.forward_flops(batch) * 3;
        matmul_flops.saturating_add(10 * self.template().numel() as u64)
    }
}

#[cfg(test)]
mod tests;
