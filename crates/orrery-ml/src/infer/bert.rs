//! BERT-family sentence embeddings (the sentence-transformers pipeline of all-MiniLM-L6-v2:
//! encoder, mean pooling, L2 normalization).
//!
//! # Checkpoint layout (Hugging Face `BertModel`)
//!
//! Names may carry a `bert.` prefix. Linear weights are PyTorch's `[out, in]`.
//!
//! ```text
//! embeddings.{word_embeddings [vocab, d], position_embeddings [positions, d],
//!             token_type_embeddings [types, d]}.weight     embeddings.LayerNorm.{weight,bias}
//! encoder.layer.{i}.attention.self.{query,key,value}.{weight [d, d], bias [d]}
//! encoder.layer.{i}.attention.output.dense.{weight [d, d], bias}   ….attention.output.LayerNorm
//! encoder.layer.{i}.intermediate.dense.{weight [ff, d], bias [ff]}
//! encoder.layer.{i}.output.dense.{weight [d, ff], bias [d]}         ….output.LayerNorm
//! ```
//!
//! Other tensors (`embeddings.position_ids`, a pooler) are ignored.
//!
//! # Forward pass, per text (no padding, so no mask)
//!
//! ```text
//! x = LN((word[id] + type[0]) + pos[t])
//! per layer:  a = softmax(q·kᵀ · 1/√hd) · v per head     x = LN(x + dense(a))
//!             x = LN(x + out(gelu_erf(intermediate(x))))
//! e = (Σ_t x[t]) / n        (rows added in order)
//! embedding = e / max(√(Σ e²), 1e-12)
//! ```
//!
//! An input longer than [`Embedder::max_tokens`] is rejected ([`InferError::InputTooLong`]),
//! never truncated: a truncated text would get an embedding of a different text.

use super::kernels::{self, PackedMatrix, attend_row, linear};
use super::tensors::TensorFile;
use super::tokenizer::Tokenizer;
use super::{InferError, Result, parse_config};
use crate::Device;
use crate::ops;
use serde::Deserialize;

/// Longest input, in tokens, when `config.json` does not say: sentence-transformers'
/// `max_seq_length` for all-MiniLM-L6-v2 (the model was trained on at most 256 tokens).
pub const DEFAULT_MAX_SEQ_LEN: usize = 256;
/// Most texts per [`Embedder::embed`] call.
pub const MAX_TEXTS: usize = 4096;
/// Largest hidden size accepted (bounds allocation from a hostile config).
pub const MAX_HIDDEN: usize = 1 << 13;

/// The fields of a BERT `config.json` this engine uses (others are ignored).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct BertConfig {
    /// Width of the hidden states.
    pub hidden_size: usize,
    /// Encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads; must divide `hidden_size`.
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Rows of the position embedding table.
    pub max_position_embeddings: usize,
    /// Layer-norm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f32,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Rows of the token-type table.
    #[serde(default = "default_types")]
    pub type_vocab_size: usize,
    /// Activation; only `gelu` (erf) is supported.
    #[serde(default)]
    pub hidden_act: Option<String>,
    /// Longest input accepted (sentence-transformers' `max_seq_length`); absent means
    /// [`DEFAULT_MAX_SEQ_LEN`]. Capped by `max_position_embeddings`.
    #[serde(default)]
    pub max_seq_length: Option<usize>,
}

fn default_eps() -> f32 {
    1e-12
}

fn default_types() -> usize {
    2
}

impl BertConfig {
    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(InferError::BadConfig(m));
        for (name, v, max) in [
            ("hidden_size", self.hidden_size, MAX_HIDDEN),
            ("num_hidden_layers", self.num_hidden_layers, 256),
            ("num_attention_heads", self.num_attention_heads, MAX_HIDDEN),
            ("intermediate_size", self.intermediate_size, 8 * MAX_HIDDEN),
            (
                "max_position_embeddings",
                self.max_position_embeddings,
                1 << 16,
            ),
            ("vocab_size", self.vocab_size, 1 << 20),
            ("type_vocab_size", self.type_vocab_size, 1 << 10),
        ] {
            if v == 0 || v > max {
                return bad(format!("{name} is {v}; it must be between 1 and {max}"));
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return bad(format!(
                "hidden_size ({}) is not divisible by num_attention_heads ({})",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            return bad(format!("layer_norm_eps is {}", self.layer_norm_eps));
        }
        match self.hidden_act.as_deref() {
            None | Some("gelu") => Ok(()),
            Some(other) => bad(format!(
                "hidden_act {other:?} is not supported; this engine runs BERT's erf GELU (`gelu`)"
            )),
        }
    }
}

struct Layer {
    q_w: PackedMatrix,
    q_b: Vec<f32>,
    k_w: PackedMatrix,
    k_b: Vec<f32>,
    v_w: PackedMatrix,
    v_b: Vec<f32>,
    ao_w: PackedMatrix,
    ao_b: Vec<f32>,
    ln1_g: Vec<f32>,
    ln1_b: Vec<f32>,
    i_w: PackedMatrix,
    i_b: Vec<f32>,
    o_w: PackedMatrix,
    o_b: Vec<f32>,
    ln2_g: Vec<f32>,
    ln2_b: Vec<f32>,
}

/// One input's embedding.
#[derive(Clone, Debug, PartialEq)]
pub struct Embedding {
    /// The unit-length embedding vector.
    pub vector: Vec<f32>,
    /// Tokens of the input, special tokens included.
    pub tokens: u32,
}

/// A loaded BERT-family sentence embedder.
pub struct Embedder {
    config: BertConfig,
    word: Vec<f32>,
    pos: Vec<f32>,
    token_type0: Vec<f32>,
    emb_ln_g: Vec<f32>,
    emb_ln_b: Vec<f32>,
    layers: Vec<Layer>,
    tokenizer: Tokenizer,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("config", &self.config)
            .finish()
    }
}

impl Embedder {
    /// Load a BERT-layout checkpoint with its `config.json` and `tokenizer.json`.
    pub fn load(weights: &[u8], config_json: &[u8], tokenizer_json: &[u8]) -> Result<Embedder> {
        let config: BertConfig = parse_config(config_json)?;
        config.validate()?;
        let tokenizer = Tokenizer::from_bytes(tokenizer_json)?;
        let file = TensorFile::parse(weights)?;
        let prefix = file
            .find_prefix("embeddings.word_embeddings.weight", &["", "bert."])
            .ok_or_else(|| {
                InferError::BadWeights(
                    "no `embeddings.word_embeddings.weight` tensor: not a BERT-layout checkpoint"
                        .into(),
                )
            })?;
        let file = file.with_prefix(prefix);
        let (d, v) = (config.hidden_size, config.vocab_size);
        let word = file.get("embeddings.word_embeddings.weight", &[v, d])?;
        let pos = file.get(
            "embeddings.position_embeddings.weight",
            &[config.max_position_embeddings, d],
        )?;
        let types = file.get(
            "embeddings.token_type_embeddings.weight",
            &[config.type_vocab_size, d],
        )?;
        let emb_ln_g = file.get("embeddings.LayerNorm.weight", &[d])?;
        let emb_ln_b = file.get("embeddings.LayerNorm.bias", &[d])?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| load_layer(&file, i, d, config.intermediate_size))
            .collect::<Result<Vec<_>>>()?;
        Ok(Embedder {
            token_type0: types[..d].to_vec(),
            config,
            word,
            pos,
            emb_ln_g,
            emb_ln_b,
            layers,
            tokenizer,
        })
    }

    /// Run the encoder's linear layers on `device` when it is a GPU: each weight matrix is
    /// uploaded once, and every product after runs there, bitwise the CPU's (see
    /// [`kernels::linear`]). Embeddings, layer norms, GELU, attention and pooling stay on the
    /// CPU: O(n·d) beside the products' O(n·d²). `Err(DeviceOutOfMemory)` names the matrix
    /// that does not fit.
    pub fn use_device(&mut self, device: &Device) -> Result<()> {
        for (i, l) in self.layers.iter_mut().enumerate() {
            let name = |m: &str| format!("encoder.layer.{i}.{m}");
            l.q_w.upload(device, &name("attention.self.query"))?;
            l.k_w.upload(device, &name("attention.self.key"))?;
            l.v_w.upload(device, &name("attention.self.value"))?;
            l.ao_w.upload(device, &name("attention.output.dense"))?;
            l.i_w.upload(device, &name("intermediate.dense"))?;
            l.o_w.upload(device, &name("output.dense"))?;
        }
        Ok(())
    }

    /// Length of an embedding vector.
    pub fn dim(&self) -> usize {
        self.config.hidden_size
    }

    /// Longest input in tokens, special tokens included.
    pub fn max_tokens(&self) -> usize {
        self.config
            .max_seq_length
            .unwrap_or(DEFAULT_MAX_SEQ_LEN)
            .min(self.config.max_position_embeddings)
    }

    /// The parsed `config.json`.
    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// The model's tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Embed each text (bitwise the same on any thread count, and whatever other texts share
    /// the call). Every text is tokenized and checked before any is run.
    pub fn embed(&self, texts: &[&str], threads: usize) -> Result<Vec<Embedding>> {
        if texts.len() > MAX_TEXTS {
            return Err(InferError::BadParams(format!(
                "{} texts in one call; at most {MAX_TEXTS}",
                texts.len()
            )));
        }
        let ids = texts
            .iter()
            .enumerate()
            .map(|(index, t)| {
                let ids = self.tokenizer.encode(t, true)?;
                self.check_ids(index, &ids)?;
                Ok(ids)
            })
            .collect::<Result<Vec<_>>>()?;
        let threads = threads.max(1);
        // Texts in parallel when there are enough of them, else threads inside each matmul:
        // either way each vector is computed by the same operations.
        if texts.len() >= threads && threads > 1 {
            ops::par_map(ids.len(), threads, |i| self.embed_ids(&ids[i], 1))
                .into_iter()
                .collect()
        } else {
            ids.iter().map(|ids| self.embed_ids(ids, threads)).collect()
        }
    }

    fn check_ids(&self, index: usize, ids: &[u32]) -> Result<()> {
        if ids.len() > self.max_tokens() {
            return Err(InferError::InputTooLong {
                index,
                tokens: ids.len(),
                max: self.max_tokens(),
            });
        }
        if ids.is_empty() {
            return Err(InferError::Tokenizer(format!(
                "input {index} encodes to no tokens (the tokenizer adds no [CLS]/[SEP])"
            )));
        }
        match ids
            .iter()
            .find(|&&id| id as usize >= self.config.vocab_size)
        {
            Some(&id) => Err(InferError::TokenOutOfRange {
                id,
                vocab: self.config.vocab_size,
            }),
            None => Ok(()),
        }
    }

    /// Embedding of one token sequence (already checked).
    pub(crate) fn embed_ids(&self, ids: &[u32], threads: usize) -> Result<Embedding> {
        let d = self.dim();
        let n = ids.len();
        let eps = self.config.layer_norm_eps;
        let mut x = ops::embedding(ids, &self.word, d);
        for (t, xr) in x.chunks_exact_mut(d).enumerate() {
            kernels::add_into(xr, &self.token_type0);
            kernels::add_into(xr, &self.pos[t * d..(t + 1) * d]);
        }
        let (mut x, _) = ops::layer_norm(&x, &self.emb_ln_g, &self.emb_ln_b, eps);
        for layer in &self.layers {
            x = self.layer_forward(layer, &x, n, threads);
        }
        let mut mean = vec![0.0f32; d];
        for xr in x.chunks_exact(d) {
            kernels::add_into(&mut mean, xr);
        }
        let count = n as f32;
        for m in &mut mean {
            *m /= count;
        }
        let mut sq = 0.0f32;
        for m in &mean {
            sq += m * m;
        }
        let norm = libm::sqrtf(sq).max(1e-12);
        let vector: Vec<f32> = mean.iter().map(|m| m / norm).collect();
        if vector.iter().any(|v| !v.is_finite()) {
            return Err(InferError::NonFinite("the embedding"));
        }
        Ok(Embedding {
            vector,
            tokens: n as u32,
        })
    }

    fn layer_forward(&self, l: &Layer, x: &[f32], n: usize, threads: usize) -> Vec<f32> {
        let d = self.dim();
        let eps = self.config.layer_norm_eps;
        let q = linear(x, n, &l.q_w, &l.q_b, threads);
        let k = linear(x, n, &l.k_w, &l.k_b, threads);
        let v = linear(x, n, &l.v_w, &l.v_b, threads);
        let heads = self.config.num_attention_heads;
        let hd = d / heads;
        let scale = 1.0 / libm::sqrtf(hd as f32);
        let mut att = vec![0.0f32; n * d];
        let mut scores = vec![0.0f32; n];
        let mut probs = vec![0.0f32; n];
        for h in 0..heads {
            for r in 0..n {
                attend_row(
                    &q[r * d + h * hd..r * d + (h + 1) * hd],
                    &k,
                    &v,
                    (n, d, h * hd),
                    scale,
                    &mut scores,
                    &mut probs,
                    &mut att[r * d + h * hd..r * d + (h + 1) * hd],
                );
            }
        }
        let mut a = linear(&att, n, &l.ao_w, &l.ao_b, threads);
        kernels::add_into(&mut a, x);
        let (x1, _) = ops::layer_norm(&a, &l.ln1_g, &l.ln1_b, eps);
        let inter = linear(&x1, n, &l.i_w, &l.i_b, threads);
        let g = ops::gelu_erf(&inter);
        let mut o = linear(&g, n, &l.o_w, &l.o_b, threads);
        kernels::add_into(&mut o, &x1);
        ops::layer_norm(&o, &l.ln2_g, &l.ln2_b, eps).0
    }
}

fn load_layer(file: &TensorFile<'_>, i: usize, d: usize, ff: usize) -> Result<Layer> {
    let get = |name: &str, shape: &[usize]| file.get(&format!("encoder.layer.{i}.{name}"), shape);
    // `nn.Linear` stores `[out, in]`.
    let matrix = |name: &str, k: usize, n: usize| -> Result<PackedMatrix> {
        Ok(PackedMatrix::from_out_in(&get(name, &[n, k])?, k, n))
    };
    Ok(Layer {
        q_w: matrix("attention.self.query.weight", d, d)?,
        q_b: get("attention.self.query.bias", &[d])?,
        k_w: matrix("attention.self.key.weight", d, d)?,
        k_b: get("attention.self.key.bias", &[d])?,
        v_w: matrix("attention.self.value.weight", d, d)?,
        v_b: get("attention.self.value.bias", &[d])?,
        ao_w: matrix("attention.output.dense.weight", d, d)?,
        ao_b: get("attention.output.dense.bias", &[d])?,
        ln1_g: get("attention.output.LayerNorm.weight", &[d])?,
        ln1_b: get("attention.output.LayerNorm.bias", &[d])?,
        i_w: matrix("intermediate.dense.weight", d, ff)?,
        i_b: get("intermediate.dense.bias", &[ff])?,
        o_w: matrix("output.dense.weight", ff, d)?,
        o_b: get("output.dense.bias", &[d])?,
        ln2_g: get("output.LayerNorm.weight", &[d])?,
        ln2_b: get("output.LayerNorm.bias", &[d])?,
    })
}
