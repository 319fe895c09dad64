//! A served model: its offer (name, weights hash, prices) and the engine that computes it.
//!
//! The same code computes a response for a client ([`crate::serve::http`]) and re-executes
//! one for a check ([`crate::inference`]), so an honest provider and an honest checker on the
//! same weights get the same output digest, bit for bit (orrery-ml's inference is
//! deterministic across machines and thread counts).
//!
//! A request is computed in two steps: [`ServedModel::prepare`] tokenizes and checks it
//! against the model's limits (cheap; its errors are the client's, answered 4xx before any
//! stream starts), then [`ServedModel::run`] computes it, passing text deltas along while a
//! generation runs.

use crate::config::{Cheat, ServedModelConfig};
use orrery_ml::infer::{
    Embedder, FinishReason, Generator, InferError, LoadedModel, ModelFiles, SampleParams,
    chat_prompt,
};
use orrery_types::amount::Amount;
use orrery_types::codec::Text;
use orrery_types::hash::Hash;
use orrery_types::inference::{
    InferenceOutput, InferenceTask, MAX_EMBEDDING_INPUTS, MAX_STOP_STRINGS, ModelKind, ModelOffer,
    output_digest,
};

/// Why a model could not be loaded for serving.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The files could not be read or are no model the engine runs.
    #[error("model {name} ({dir}): {source}")]
    Load {
        /// The configured name.
        name: String,
        /// The configured folder.
        dir: String,
        /// What the engine said.
        #[source]
        source: InferError,
    },
    /// The model is unusable for the offer (a name too long, a context too large).
    #[error("model {name}: {reason}")]
    Offer {
        /// The configured name.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

/// Why a request cannot be computed. `code` is the gateway-facing error code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ComputeError {
    /// `context_length_exceeded`, `invalid_request_error` or `model_error`.
    pub code: &'static str,
    /// What to change.
    pub message: String,
}

impl ComputeError {
    fn invalid(message: impl Into<String>) -> Self {
        ComputeError {
            code: "invalid_request_error",
            message: message.into(),
        }
    }

    /// Whether the request itself is at fault (4xx), not the model (500).
    pub fn is_client_error(&self) -> bool {
        self.code != "model_error"
    }
}

impl From<InferError> for ComputeError {
    fn from(e: InferError) -> Self {
        let code = match &e {
            InferError::InputTooLong { .. }
            | InferError::PromptTooLong { .. }
            | InferError::ExceedsContext { .. } => "context_length_exceeded",
            InferError::Tokenizer(_)
            | InferError::EmptyPrompt
            | InferError::NoTokensRequested
            | InferError::TokenOutOfRange { .. }
            | InferError::BadParams(_) => "invalid_request_error",
            _ => "model_error",
        };
        ComputeError {
            code,
            message: e.to_string(),
        }
    }
}

/// A computed answer and its token counts.
#[derive(Clone, Debug, PartialEq)]
pub struct Computed {
    /// The answer.
    pub output: InferenceOutput,
    /// Input tokens.
    pub tokens_in: u32,
    /// Output tokens (0 for embeddings).
    pub tokens_out: u32,
}

impl Computed {
    /// The protocol's [`output_digest`] of this answer.
    pub fn digest(&self) -> Hash {
        output_digest(self.tokens_in, self.tokens_out, &self.output.digest_bytes())
    }
}

/// A request checked against the model, ready to run.
#[derive(Clone, Debug)]
pub enum Prepared {
    /// Texts to embed.
    Embeddings(Vec<String>),
    /// A prompt's tokens and how to sample.
    Generate {
        /// The prompt's token ids.
        ids: Vec<u32>,
        /// Sampling.
        params: SampleParams,
    },
}

enum Engine {
    Embedding(Embedder),
    Generation(Generator),
}

/// A model the agent serves.
pub struct ServedModel {
    offer: ModelOffer,
    engine: Engine,
}

impl std::fmt::Debug for ServedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServedModel")
            .field("offer", &self.offer)
            .finish()
    }
}

impl ServedModel {
    /// Load the model of a `[[serve.models]]` entry. With [`Cheat::WrongModel`] the engine runs
    /// perturbed weights while the offer names the real files' hash.
    pub fn load(config: &ServedModelConfig, cheat: Cheat) -> Result<ServedModel, ModelError> {
        let load_err = |source| ModelError::Load {
            name: config.name.clone(),
            dir: config.dir.display().to_string(),
            source,
        };
        let files = ModelFiles::load_dir(&config.dir).map_err(load_err)?;
        Self::from_files(config, &files, cheat).map_err(|e| match e {
            ModelError::Load { source, .. } => load_err(source),
            other => other,
        })
    }

    /// Run the model's linear layers on `device` when it is a GPU (the weights are uploaded
    /// once); answers are bitwise the CPU's, so checkers on any device agree. A GPU that
    /// cannot hold the weights is an error naming the matrix and its size.
    pub fn use_device(
        &mut self,
        device: &orrery_ml::Device,
    ) -> Result<(), orrery_ml::infer::InferError> {
        match &mut self.engine {
            Engine::Embedding(e) => e.use_device(device),
            Engine::Generation(g) => g.use_device(device),
        }
    }

    /// [`ServedModel::load`] from files already in memory.
    pub fn from_files(
        config: &ServedModelConfig,
        files: &ModelFiles,
        cheat: Cheat,
    ) -> Result<ServedModel, ModelError> {
        let weights = files.weights_hash();
        let mut run = files.clone();
        if cheat == Cheat::WrongModel {
            run.weights = perturb_weights(&files.weights);
        }
        let loaded = run.load().map_err(|source| ModelError::Load {
            name: config.name.clone(),
            dir: config.dir.display().to_string(),
            source,
        })?;
        let (engine, kind, context) = match loaded.model {
            LoadedModel::Embedding(e) => {
                let n = e.max_tokens();
                (Engine::Embedding(e), ModelKind::Embedding, n)
            }
            LoadedModel::Generation(g) => {
                let n = g.context();
                (Engine::Generation(g), ModelKind::Generation, n)
            }
        };
        let offer_err = |reason: String| ModelError::Offer {
            name: config.name.clone(),
            reason,
        };
        let offer = ModelOffer {
            name: Text::new(config.name.clone()).map_err(|_| offer_err("name too long".into()))?,
            weights,
            kind,
            context: u32::try_from(context)
                .map_err(|_| offer_err(format!("context {context} is too large")))?,
            price_in: config.price_in,
            price_out: config.price_out,
            sample_bps: config.sample_bps,
        };
        Ok(ServedModel { offer, engine })
    }

    /// What the agent offers for this model.
    pub fn offer(&self) -> &ModelOffer {
        &self.offer
    }

    /// The weights hash the offer names.
    pub fn weights(&self) -> Hash {
        self.offer.weights
    }

    /// The price of a response, or `None` on overflow.
    pub fn cost(&self, tokens_in: u32, tokens_out: u32) -> Option<Amount> {
        self.offer.cost(tokens_in, tokens_out)
    }

    /// Tokenize and check `task` against the model's limits.
    pub fn prepare(&self, task: &InferenceTask) -> Result<Prepared, ComputeError> {
        match (&self.engine, task) {
            (Engine::Embedding(e), InferenceTask::Embeddings { inputs }) => {
                prepare_embeddings(e, inputs)
            }
            (Engine::Generation(g), InferenceTask::Completion { prompt, sampling }) => {
                prepare_generation(g, prompt, sampling)
            }
            (Engine::Generation(g), InferenceTask::Chat { messages, sampling }) => {
                let pairs: Vec<(&str, &str)> = messages
                    .iter()
                    .map(|m| (m.role.as_str(), m.content.as_str()))
                    .collect();
                prepare_generation(g, &chat_prompt(&pairs), sampling)
            }
            (Engine::Embedding(_), _) => Err(ComputeError::invalid(format!(
                "{} is an embedding model: send an embeddings request",
                self.offer.name
            ))),
            (Engine::Generation(_), _) => Err(ComputeError::invalid(format!(
                "{} is a text generation model: send a completion or chat request",
                self.offer.name
            ))),
        }
    }

    /// Compute a prepared request on `threads` threads. `on_delta` sees the generated text as
    /// it grows (never for embeddings) and may return `false` to stop (the caller is gone).
    pub fn run(
        &self,
        prepared: &Prepared,
        threads: usize,
        on_delta: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Computed, ComputeError> {
        match (&self.engine, prepared) {
            (Engine::Embedding(e), Prepared::Embeddings(texts)) => {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                let out = e.embed(&refs, threads)?;
                let tokens_in = out.iter().map(|x| x.tokens).sum();
                Ok(Computed {
                    output: InferenceOutput::Embeddings {
                        vectors: out.into_iter().map(|x| x.vector).collect(),
                    },
                    tokens_in,
                    tokens_out: 0,
                })
            }
            (Engine::Generation(g), Prepared::Generate { ids, params }) => {
                generate(g, ids, params, threads, on_delta)
            }
            _ => Err(ComputeError::invalid(
                "the request does not fit this model's kind",
            )),
        }
    }

    /// [`ServedModel::prepare`] then [`ServedModel::run`], without deltas: what a check runs.
    pub fn compute(&self, task: &InferenceTask, threads: usize) -> Result<Computed, ComputeError> {
        let prepared = self.prepare(task)?;
        self.run(&prepared, threads, &mut |_| true)
    }
}

fn prepare_embeddings(e: &Embedder, inputs: &[String]) -> Result<Prepared, ComputeError> {
    if inputs.is_empty() || inputs.len() > MAX_EMBEDDING_INPUTS {
        return Err(ComputeError::invalid(format!(
            "give 1 to {MAX_EMBEDDING_INPUTS} inputs to embed (got {})",
            inputs.len()
        )));
    }
    for (index, text) in inputs.iter().enumerate() {
        let tokens = e.tokenizer().encode(text, true)?.len();
        if tokens > e.max_tokens() {
            return Err(InferError::InputTooLong {
                index,
                tokens,
                max: e.max_tokens(),
            }
            .into());
        }
    }
    Ok(Prepared::Embeddings(inputs.to_vec()))
}

fn prepare_generation(
    g: &Generator,
    prompt: &str,
    sampling: &orrery_types::inference::Sampling,
) -> Result<Prepared, ComputeError> {
    if sampling.stop.len() > MAX_STOP_STRINGS {
        return Err(ComputeError::invalid(format!(
            "at most {MAX_STOP_STRINGS} stop strings"
        )));
    }
    let params = SampleParams {
        max_tokens: sampling.max_tokens,
        temperature: sampling.temperature,
        top_p: sampling.top_p,
        seed: sampling.seed,
        stop: sampling.stop.clone(),
    };
    if params.max_tokens == 0 {
        return Err(InferError::NoTokensRequested.into());
    }
    params.validate()?;
    let ids = g.tokenizer().encode(prompt, true)?;
    if ids.is_empty() {
        return Err(InferError::EmptyPrompt.into());
    }
    let context = g.context();
    if ids.len() >= context {
        return Err(InferError::PromptTooLong {
            prompt: ids.len(),
            context,
        }
        .into());
    }
    if ids.len() + params.max_tokens as usize > context {
        return Err(InferError::ExceedsContext {
            prompt: ids.len(),
            max_tokens: params.max_tokens,
            context,
        }
        .into());
    }
    Ok(Prepared::Generate { ids, params })
}

fn generate(
    g: &Generator,
    ids: &[u32],
    params: &SampleParams,
    threads: usize,
    on_delta: &mut dyn FnMut(&str) -> bool,
) -> Result<Computed, ComputeError> {
    let mut decoder = g.tokenizer().incremental();
    let mut generated = Vec::new();
    let eos = g.eos_token();
    let mut decode_error = None;
    let generation = g.generate(ids, params, threads, |id| {
        if Some(id) == eos {
            return true;
        }
        generated.push(id);
        match decoder.push(&generated) {
            Ok(piece) if piece.is_empty() => true,
            Ok(piece) => on_delta(&piece),
            Err(e) => {
                decode_error = Some(e);
                false
            }
        }
    })?;
    if let Some(e) = decode_error {
        return Err(e.into());
    }
    let finish_reason = match generation.finish_reason {
        FinishReason::Length => "length",
        FinishReason::Stop | FinishReason::EndOfText => "stop",
    };
    Ok(Computed {
        output: InferenceOutput::Text {
            text: generation.text,
            finish_reason: finish_reason.into(),
        },
        tokens_in: generation.tokens_in,
        tokens_out: generation.tokens_out,
    })
}

/// The weights a [`Cheat::WrongModel`] provider runs: the first matrix (by name) ending in
/// `.weight` scaled by 1.5 (F32) or 2 (F16/BF16, one more in the exponent). Bytes that are no
/// safetensors file are returned as they are (the load then fails as it would anyway).
pub fn perturb_weights(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let Some((name, dtype, start, end)) = first_matrix(bytes) else {
        return out;
    };
    tracing::warn!(tensor = %name, "cheat = wrong_model: serving perturbed weights");
    let data = &mut out[start..end];
    match dtype.as_str() {
        "F32" => {
            for c in data.chunks_exact_mut(4) {
                let v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]) * 1.5;
                c.copy_from_slice(&v.to_le_bytes());
            }
        }
        "F16" | "BF16" => {
            let step: u16 = if dtype == "F16" { 1 << 10 } else { 1 << 7 };
            for c in data.chunks_exact_mut(2) {
                let bits = u16::from_le_bytes([c[0], c[1]]);
                let exp_mask = if dtype == "F16" { 0x7c00 } else { 0x7f80 };
                let exp = bits & exp_mask;
                // Doubling: one more in the exponent, unless zero/subnormal or about to overflow.
                if exp != 0 && exp + step < exp_mask {
                    c.copy_from_slice(&(bits + step).to_le_bytes());
                }
            }
        }
        _ => {}
    }
    out
}

/// Name, dtype and absolute byte range of the first matrix named `*.weight` in a safetensors
/// file.
fn first_matrix(bytes: &[u8]) -> Option<(String, String, usize, usize)> {
    let len = usize::try_from(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?)).ok()?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(bytes.get(8..8usize.checked_add(len)?)?).ok()?;
    let base = 8 + len;
    let mut names: Vec<&String> = header.keys().filter(|n| n.ends_with(".weight")).collect();
    names.sort();
    names.into_iter().find_map(|name| {
        let t = header.get(name)?;
        let dims = t.get("shape")?.as_array()?.len();
        let dtype = t.get("dtype")?.as_str()?.to_string();
        let off = t.get("data_offsets")?.as_array()?;
        let (a, b) = (off.first()?.as_u64()?, off.get(1)?.as_u64()?);
        let (a, b) = (
            base + usize::try_from(a).ok()?,
            base + usize::try_from(b).ok()?,
        );
        (dims >= 2 && a <= b && b <= bytes.len()).then(|| (name.clone(), dtype, a, b))
    })
}
