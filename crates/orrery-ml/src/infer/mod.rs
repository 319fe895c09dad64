//! Deterministic inference on ecosystem checkpoints: a BERT-family sentence embedder and a
//! GPT-2-family text generator with a KV cache, read from the files a model hub ships
//! (`model.safetensors`, `config.json`, `tokenizer.json`).
//!
//! # Specification
//!
//! - **Arithmetic**: every floating-point operation follows [`crate::ops`]' rules (f32, no FMA,
//!   reductions in increasing index order, `libm` transcendentals, threads partition outputs
//!   only). The same (weights, input, parameters) give the same bits on any machine and any
//!   thread count; the tests check 1 against 2 threads.
//! - **Checkpoints**: F32, F16 or BF16 safetensors; F16/BF16 are widened to f32 exactly once at
//!   load (a widening is exact, so it adds no rounding). Tensor layouts are in [`bert`] and
//!   [`gpt2`]; tensors the model does not use (position-id buffers, attention masks stored as
//!   buffers) are ignored, a missing or mis-shaped one is an [`InferError::BadWeights`].
//! - **Tokenizer**: `tokenizer.json` read by the `tokenizers` library ([`Tokenizer`]), with its
//!   own padding and truncation switched off: the engine sees every token of the input, and
//!   an input longer than the model takes is an error, never silently cut.
//! - **Embeddings** ([`Embedder`]): BERT post-norm encoder, erf GELU, mean pooling over the
//!   input's tokens (special tokens included, as sentence-transformers does), L2
//!   normalization. Texts are embedded one by one (no padding), so a text's vector does not
//!   depend on the other texts in the call.
//! - **Generation** ([`Generator`]): GPT-2 pre-norm decoder, tanh GELU, KV cache. A decoding
//!   step with the cache computes exactly the operations the full forward pass computes for
//!   that position, so its logits are bitwise those of the full pass (tested). Sampling
//!   ([`SampleParams`]): temperature 0 is greedy (the lowest index among equal maxima);
//!   otherwise softmax of `logits / temperature`, an optional nucleus (`top_p`) over the
//!   tokens sorted by probability (ties by index), and one draw of the crate's SplitMix64
//!   [`crate::rng::Rng`] seeded with `seed`. No clock, no OS randomness.
//! - **Model identity**: [`weights_hash`], the protocol's SHA-256 of the exact
//!   `model.safetensors` bytes.
//! - **Output digest** ([`output_digest`]): what a checker compares — the protocol's one
//!   definition, `orrery_types::inference::output_digest`: SHA-256 over the tag
//!   `orrery/inference/output/v1` ‖ `u32_le(tokens_in)` ‖ `u32_le(tokens_out)` ‖ `output`,
//!   re-exported here. For embeddings, `output` is every
//!   vector's f32 values in little-endian bytes, the inputs' vectors concatenated in input
//!   order, `tokens_out = 0`; for text it is the generated text's UTF-8 bytes
//!   ([`Generation::text`]), `tokens_out` the tokens generated.
//! - **Failure**: bad files, bad parameters and inputs over a model's limits are typed
//!   [`InferError`]s with a message saying what to change; nothing from outside can panic.

pub mod bert;
pub mod export;
pub mod files;
pub mod gpt2;
pub mod kernels;
pub mod sample;
pub mod tensors;
pub mod tokenizer;

pub use bert::{BertConfig, Embedder, Embedding};
pub use files::{LoadedModel, ModelFiles};
pub use gpt2::{FinishReason, Generation, Generator, Gpt2Config, chat_prompt};
pub use sample::SampleParams;
pub use tokenizer::{IncrementalDecoder, Tokenizer};

use orrery_types::hash::Hash;

/// The digest a checker compares for one inference result (see the module specification):
/// the protocol's definition, re-exported so the engine and the protocol cannot drift apart.
pub use orrery_types::inference::output_digest;

/// Largest `config.json` read: real ones are a few kilobytes.
pub const MAX_CONFIG_BYTES: usize = 1 << 20;

/// Why a model could not be loaded or an input could not be run.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// `tokenizer.json` could not be read, or the tokenizer refused an input.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// `config.json` is not valid JSON, lacks a field, or names impossible dimensions.
    #[error("model config.json: {0}")]
    BadConfig(String),
    /// The safetensors file is unreadable, or a tensor is missing, mis-shaped, of an
    /// unsupported type, or not finite.
    #[error("model weights: {0}")]
    BadWeights(String),
    /// An embedding input with more tokens than the model takes.
    #[error(
        "input {index} is {tokens} tokens long (special tokens included); this model takes at most {max}: split the text into shorter pieces"
    )]
    InputTooLong {
        /// Position of the input in the call.
        index: usize,
        /// Its length in tokens.
        tokens: usize,
        /// The model's limit.
        max: usize,
    },
    /// A prompt with no tokens.
    #[error("the prompt is empty: give at least one token")]
    EmptyPrompt,
    /// A prompt that alone fills the model's context.
    #[error("the prompt is {prompt} tokens; this model's context is {context}: shorten it")]
    PromptTooLong {
        /// Prompt length in tokens.
        prompt: usize,
        /// The model's context length.
        context: usize,
    },
    /// `max_tokens = 0`.
    #[error("max_tokens is 0: ask for at least one token")]
    NoTokensRequested,
    /// Prompt plus requested tokens exceed the context.
    #[error(
        "the prompt ({prompt} tokens) plus max_tokens ({max_tokens}) exceeds this model's context of {context} tokens: lower max_tokens to at most {room} or shorten the prompt",
        room = context.saturating_sub(*prompt)
    )]
    ExceedsContext {
        /// Prompt length in tokens.
        prompt: usize,
        /// Tokens asked for.
        max_tokens: u32,
        /// The model's context length.
        context: usize,
    },
    /// A token id the model has no embedding for.
    #[error("token id {id} is outside the model's vocabulary of {vocab}")]
    TokenOutOfRange {
        /// The id.
        id: u32,
        /// The vocabulary size.
        vocab: usize,
    },
    /// A sampling parameter out of range.
    #[error("sampling parameters: {0}")]
    BadParams(String),
    /// The model's weights could not be placed on the device (out of memory names the
    /// matrix and its size).
    #[error("device: {0}")]
    Device(#[from] crate::error::MlError),
    /// The model produced NaN or infinity (weights that overflow on this input).
    #[error(
        "the model produced a non-finite value in {0}; the weights are unusable for this input"
    )]
    NonFinite(&'static str),
    /// A model directory lacks a file or cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The tensors fit neither a BERT nor a GPT-2 layout.
    #[error("unrecognised model: {0}")]
    UnknownModel(String),
}

/// Result alias for inference.
pub type Result<T> = std::result::Result<T, InferError>;

/// The protocol's identity of a model file: SHA-256 of the exact `model.safetensors` bytes.
pub fn weights_hash(bytes: &[u8]) -> Hash {
    Hash::of(bytes)
}

/// The `output` bytes of [`output_digest`] for embeddings: every vector's f32 values,
/// little-endian, in input order.
pub fn embeddings_output_bytes(embeddings: &[Embedding]) -> Vec<u8> {
    embeddings
        .iter()
        .flat_map(|e| e.vector.iter().flat_map(|v| v.to_le_bytes()))
        .collect()
}

fn parse_config<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    if bytes.len() > MAX_CONFIG_BYTES {
        return Err(InferError::BadConfig(format!(
            "{} bytes; config.json files are at most {MAX_CONFIG_BYTES}",
            bytes.len()
        )));
    }
    serde_json::from_slice(bytes).map_err(|e| InferError::BadConfig(e.to_string()))
}

#[cfg(test)]
mod tests;
