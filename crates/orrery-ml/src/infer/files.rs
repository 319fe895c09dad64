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

/// Where `scripts/fetch-models.sh` unpacks the reference models: `$ORRERY_MODELS`, else this
/// source tree's `target/models`.
pub fn models_root() -> std::path::PathBuf {
    std::env::var_os("ORRERY_MODELS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/models"))
}

/// A reference model (`all-minilm-l6-v2`) for a test: its directory under [`models_root`],
/// or `None` — the test then says "skipped" loudly and passes — when it is absent, like the
/// project's other tests that need something from outside (a browser, schemathesis).
///
/// # Panics
/// When it is absent and `ORRERY_E2E=1` (as `.ci/run` sets after fetching it), saying how to
/// get it: there a missing model must fail the run, not pass it.
pub fn reference_model_for_tests(name: &str) -> Option<std::path::PathBuf> {
    let dir = models_root().join(name);
    if dir.join("model.safetensors").exists() {
        return Some(dir);
    }
    assert!(
        std::env::var("ORRERY_E2E").as_deref() != Ok("1"),
        "ORRERY_E2E=1 but {} has no model.safetensors: run scripts/fetch-models.sh (or set \
         ORRERY_MODELS)",
        dir.display()
    );
    eprintln!(
        "\n*** skipped: {} is missing (run scripts/fetch-models.sh) ***\n",
        dir.display()
    );
    None
}
