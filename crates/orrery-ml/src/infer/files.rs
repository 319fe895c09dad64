//! A model directory as a hub ships it, and the kind of model its tensors make.

use super::bert::Embedder;
use super::gpt2::Generator;
use super::tensors::TensorFile;
use super::{InferError, Result, weights_hash};
use orrery_types::hash::Hash;
use std::path::Path;

/// File names inside a model directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// See [`WEIGHTS_FILE`].
pub const CONFIG_FILE: &str = "config.json";
/// See [`WEIGHTS_FILE`].
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// The three files of a model, in memory.
#[derive(Clone, Debug)]
pub struct ModelFiles {
    /// `model.safetensors`.
    pub weights: Vec<u8>,
    /// `config.json`.
    pub config: Vec<u8>,
    /// `tokenizer.json`.
    pub tokenizer: Vec<u8>,
}

/// A loaded model of either kind.
#[derive(Debug)]
pub enum LoadedModel {
    /// A BERT-layout sentence embedder.
    Embedding(Embedder),
    /// A GPT-2-layout text generator.
    Generation(Generator),
}

/// A loaded model and the hash of the weights it was loaded from.
#[derive(Debug)]
pub struct Model {
    /// The model.
    pub model: LoadedModel,
    /// [`weights_hash`] of `model.safetensors`.
    pub weights_hash: Hash,
}

impl ModelFiles {
    /// Read `model.safetensors`, `config.json` and `tokenizer.json` from `dir`.
    pub fn load_dir(dir: &Path) -> Result<ModelFiles> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|source| InferError::Io { path, source })
        };
        Ok(ModelFiles {
            weights: read(WEIGHTS_FILE)?,
            config: read(CONFIG_FILE)?,
            tokenizer: read(TOKENIZER_FILE)?,
        })
    }

    /// [`weights_hash`] of the weights.
    pub fn weights_hash(&self) -> Hash {
        weights_hash(&self.weights)
    }

    /// Load the model the tensors describe: `wte.weight` makes a GPT-2 generator,
    /// `embeddings.word_embeddings.weight` a BERT embedder (each with its optional prefix).
    pub fn load(&self) -> Result<Model> {
        let file = TensorFile::parse(&self.weights)?;
        let model = if file
            .find_prefix("wte.weight", &["", "transformer."])
            .is_some()
        {
            LoadedModel::Generation(Generator::load(
                &self.weights,
                &self.config,
                &self.tokenizer,
            )?)
        } else if file
            .find_prefix("embeddings.word_embeddings.weight", &["", "bert."])
            .is_some()
        {
            LoadedModel::Embedding(Embedder::load(
                &self.weights,
                &self.config,
                &self.tokenizer,
            )?)
        } else {
            return Err(InferError::UnknownModel(
                "the weights have neither `wte.weight` (GPT-2 layout) nor \
                 `embeddings.word_embeddings.weight` (BERT layout)"
                    .into(),
            ));
        };
        Ok(Model {
            model,
            weights_hash: self.weights_hash(),
        })
    }
}
