//! Job specs: a readable TOML file naming the model, the data, the optimizer and the
//! hyper-parameters. See `workloads/ml/*.toml` for examples.
//!
//! ```toml
//! seed = 1            # weight initialisation and batch sampling
//! steps = 300         # optimizer steps = workload steps
//! batch_size = 64
//! grad_clip = 1.0     # optional global-norm clipping
//! [model]
//! kind = "mlp"        # or "transformer"
//! inputs = 2
//! hidden = [64, 64]
//! classes = 3
//! [data]
//! kind = "spirals"    # or "blobs", "corpus"
//! classes = 3
//! points_per_class = 300
//! seed = 7
//! [optimizer]
//! kind = "adamw"      # or "sgd"
//! lr = 0.01
//! [generate]          # optional: how `infer` samples text from a language model
//! prompt = "And God said"
//! tokens = 200
//! temperature = 0.8
//! seed = 3
//! ```
//!
//! The thread count is deliberately not part of a spec: it changes speed, never results.

use crate::data::DataConfig;
use crate::error::{MlError, Result};
use crate::model::ModelConfig;
use crate::optim::OptimizerConfig;
use serde::{Deserialize, Serialize};

/// Most steps one job may ask for (a run is hashed checkpoint by checkpoint).
pub const MAX_STEPS: u64 = 10_000_000;
/// Largest batch: bounds the memory one step can take.
pub const MAX_BATCH: usize = 4096;
/// Most tokens one generation job may produce.
pub const MAX_GENERATE: u64 = 100_000;

/// A training, fine-tuning or inference job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// Optional human-readable name.
    #[serde(default)]
    pub name: Option<String>,
    /// Seed for weight initialisation and batch sampling.
    pub seed: u64,
    /// Optimizer steps (the workload's step count).
    pub steps: u64,
    /// Examples (or sequences) per batch.
    pub batch_size: usize,
    /// Tokens per training sequence for a language model (defaults to the model's context).
    #[serde(default)]
    pub seq_len: Option<usize>,
    /// Clip the global gradient norm to this value.
    #[serde(default)]
    pub grad_clip: Option<f32>,
    /// The model.
    pub model: ModelConfig,
    /// The data set.
    pub data: DataConfig,
    /// The optimizer.
    pub optimizer: OptimizerConfig,
    /// Text generation settings for `infer` on a language model.
    #[serde(default)]
    pub generate: Option<GenerateConfig>,
}

/// How to sample text from a language model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateConfig {
    /// Text the model continues.
    #[serde(default)]
    pub prompt: String,
    /// Tokens to generate (one per workload step).
    pub tokens: u64,
    /// Softmax temperature; 0 means always the most likely token.
    #[serde(default = "default_temperature")]
    pub temperature: f32,
    /// Sampling seed.
    #[serde(default)]
    pub seed: u64,
}

fn default_temperature() -> f32 {
    1.0
}

impl JobSpec {
    /// Parse and validate a TOML spec.
    pub fn from_toml(text: &str) -> Result<JobSpec> {
        let spec: JobSpec = toml::from_str(text).map_err(|e| MlError::BadSpec(e.to_string()))?;
        spec.validate()?;
        Ok(spec)
    }

    /// The spec as TOML.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| MlError::BadSpec(e.to_string()))
    }

    /// Tokens per training sequence (transformers), or 1.
    pub fn seq(&self) -> usize {
        match &self.model {
            ModelConfig::Transformer(c) => self.seq_len.unwrap_or(c.context),
            ModelConfig::Mlp(_) => 1,
        }
    }

    /// Check every field on its own; the data set is checked against the model when loaded.
    pub fn validate(&self) -> Result<()> {
        self.model.validate()?;
        if self.steps == 0 || self.steps > MAX_STEPS {
            return Err(MlError::BadSpec(format!(
                "steps must be between 1 and {MAX_STEPS}, got {}",
                self.steps
            )));
        }
        if self.batch_size == 0 || self.batch_size > MAX_BATCH {
            return Err(MlError::BadSpec(format!(
                "batch_size must be between 1 and {MAX_BATCH}, got {}",
                self.batch_size
            )));
        }
        if let ModelConfig::Transformer(c) = &self.model {
            let seq = self.seq();
            if seq == 0 || seq > c.context {
                return Err(MlError::BadSpec(format!(
                    "seq_len must be between 1 and the model's context ({}), got {seq}",
                    c.context
                )));
            }
        }
        if let Some(clip) = self.grad_clip
            && !(clip > 0.0 && clip.is_finite())
        {
            return Err(MlError::BadSpec(format!(
                "grad_clip must be positive, got {clip}"
            )));
        }
        if let Some(p) = self.optimizer.problem() {
            return Err(MlError::BadSpec(p));
        }
        if let Some(g) = &self.generate {
            if g.tokens == 0 || g.tokens > MAX_GENERATE {
                return Err(MlError::BadSpec(format!(
                    "generate.tokens must be between 1 and {MAX_GENERATE}, got {}",
                    g.tokens
                )));
            }
            if !(g.temperature >= 0.0 && g.temperature.is_finite()) {
                return Err(MlError::BadSpec(format!(
                    "generate.temperature must be >= 0, got {}",
                    g.temperature
                )));
            }
        }
        Ok(())
    }
}
