//! GPT-2-family text generation with a KV cache.
//!
//! # Checkpoint layout (Hugging Face `GPT2LMHeadModel`)
//!
//! Names may carry a `transformer.` prefix. Matrices are `Conv1D`, stored `[in, out]`.
//!
//! ```text
//! wte.weight [vocab, d]   wpe.weight [n_positions, d]
//! h.{i}.ln_1.{weight,bias} [d]        h.{i}.attn.c_attn.{weight [d, 3d], bias [3d]}
//! h.{i}.attn.c_proj.{weight [d, d], bias [d]}
//! h.{i}.ln_2.{weight,bias} [d]        h.{i}.mlp.c_fc.{weight [d, ff], bias [ff]}
//! h.{i}.mlp.c_proj.{weight [ff, d], bias [d]}
//! ln_f.{weight,bias} [d]
//! lm_head.weight [vocab, d]   optional, never prefixed; without it the head is wte (tied)
//! ```
//!
//! `attn.bias` / `attn.masked_bias` (stored causal masks) and any other tensor are ignored.
//! `config.json`: `n_embd`, `n_layer`, `n_head`, `n_positions` (or `n_ctx`), `vocab_size`,
//! `layer_norm_epsilon` (default 1e-5), `n_inner` (default 4·d), `activation_function`
//! (`gelu_new` or equivalent tanh GELU), `tie_word_embeddings` (default true), `eos_token_id`.
//!
//! # Forward pass
//!
//! ```text
//! x = wte[id] + wpe[position]
//! per block:  x += c_proj(attn(c_attn(ln_1(x))));   x += mlp.c_proj(gelu_tanh(c_fc(ln_2(x))))
//! logits = ln_f(x) · headᵀ
//! ```
//!
//! Every operation is the one [`crate::model`]'s transformer performs, in the same order, so
//! a model exported by [`super::export`] gives bitwise the training code's logits. A step with
//! the KV cache appends its keys and values and runs the same per-row operations as the full
//! pass ([`super::kernels`]), so its logits equal the full pass's bit for bit.

use super::kernels::{self, PackedMatrix, attend_row, linear};
use super::sample::{self, SampleParams};
use super::tensors::TensorFile;
use super::tokenizer::Tokenizer;
use super::{InferError, Result, parse_config};
use crate::Device;
use crate::ops;
use crate::rng::Rng;
use serde::Deserialize;

/// Largest `n_embd` accepted (GPT-2 XL has 1600; this bounds allocation from a hostile
/// config before any tensor is read).
pub const MAX_EMBD: usize = 1 << 14;
/// Most layers accepted.
pub const MAX_LAYERS: usize = 512;
/// Longest context accepted.
pub const MAX_POSITIONS: usize = 1 << 17;
/// Largest vocabulary accepted.
pub const MAX_VOCAB: usize = 1 << 20;

/// The fields of a GPT-2 `config.json` this engine uses (others are ignored).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Gpt2Config {
    /// Width of the residual stream.
    pub n_embd: usize,
    /// Number of blocks.
    pub n_layer: usize,
    /// Attention heads; must divide `n_embd`.
    pub n_head: usize,
    /// Context length (rows of `wpe`); older configs name it `n_ctx` (many carry both).
    #[serde(default)]
    pub n_positions: usize,
    /// The older name of `n_positions`, used when that is absent.
    #[serde(default)]
    pub n_ctx: Option<usize>,
    /// Vocabulary size (rows of `wte`).
    pub vocab_size: usize,
    /// Layer-norm epsilon.
    #[serde(default = "default_ln_eps")]
    pub layer_norm_epsilon: f32,
    /// MLP width; `null` or absent means `4 · n_embd`.
    #[serde(default)]
    pub n_inner: Option<usize>,
    /// Activation; only the tanh GELU GPT-2 uses is supported.
    #[serde(default)]
    pub activation_function: Option<String>,
    /// Whether the output head is `wte` (GPT-2) or a separate `lm_head.weight`.
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
    /// The end-of-text token, if the model has one.
    #[serde(default)]
    pub eos_token_id: Option<serde_json::Value>,
}

fn default_ln_eps() -> f32 {
    1e-5
}

fn default_true() -> bool {
    true
}

impl Gpt2Config {
    /// MLP width.
    pub fn ff(&self) -> usize {
        self.n_inner.unwrap_or(4 * self.n_embd)
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(InferError::BadConfig(m));
        for (name, v, max) in [
            ("n_embd", self.n_embd, MAX_EMBD),
            ("n_layer", self.n_layer, MAX_LAYERS),
            ("n_head", self.n_head, MAX_EMBD),
            ("n_positions", self.n_positions, MAX_POSITIONS),
            ("vocab_size", self.vocab_size, MAX_VOCAB),
            ("n_inner", self.ff(), 8 * MAX_EMBD),
        ] {
            if v == 0 || v > max {
                return bad(format!("{name} is {v}; it must be between 1 and {max}"));
            }
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            return bad(format!(
                "n_embd ({}) is not divisible by n_head ({})",
                self.n_embd, self.n_head
            ));
        }
        if !(self.layer_norm_epsilon.is_finite() && self.layer_norm_epsilon > 0.0) {
            return bad(format!(
                "layer_norm_epsilon is {}; it must be a small positive number",
                self.layer_norm_epsilon
            ));
        }
        match self.activation_function.as_deref() {
            None | Some("gelu_new" | "gelu_pytorch_tanh" | "gelu_fast") => Ok(()),
            Some(other) => bad(format!(
                "activation_function {other:?} is not supported; this engine runs GPT-2's tanh GELU (`gelu_new`)"
            )),
        }
    }
}

/// One block's weights.
struct Block {
    ln1_g: Vec<f32>,
    ln1_b: Vec<f32>,
    qkv_w: PackedMatrix,
    qkv_b: Vec<f32>,
    proj_w: PackedMatrix,
    proj_b: Vec<f32>,
    ln2_g: Vec<f32>,
    ln2_b: Vec<f32>,
    fc_w: PackedMatrix,
    fc_b: Vec<f32>,
    fcp_w: PackedMatrix,
    fcp_b: Vec<f32>,
}

/// A loaded GPT-2-family model and its tokenizer.
pub struct Generator {
    config: Gpt2Config,
    wte: Vec<f32>,
    wpe: Vec<f32>,
    blocks: Vec<Block>,
    lnf_g: Vec<f32>,
    lnf_b: Vec<f32>,
    /// The output head (`lm_head.weight`, or `wte` when tied) packed for [`kernels::linear`]
    /// (a tied head is one extra copy of `wte` in memory, bought for speed).
    head: PackedMatrix,
    eos: Option<u32>,
    tokenizer: Tokenizer,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator")
            .field("config", &self.config)
            .finish()
    }
}

/// Why a generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// `max_tokens` were generated.
    Length,
    /// A stop sequence appeared, or the `on_token` callback returned `false`.
    Stop,
    /// The model generated its end-of-text token.
    EndOfText,
}

/// The result of [`Generator::generate`].
#[derive(Clone, Debug, PartialEq)]
pub struct Generation {
    /// Every generated token, the end-of-text token included if one ended the generation.
    pub ids: Vec<u32>,
    /// The generated text, ending before a stop sequence, without the end-of-text token.
    pub text: String,
    /// Prompt tokens.
    pub tokens_in: u32,
    /// Generated tokens (`ids.len()`).
    pub tokens_out: u32,
    /// Why generation ended.
    pub finish_reason: FinishReason,
}

/// Keys and values of every position run so far, per layer, `position × d`.
pub(crate) struct KvCache {
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
    len: usize,
    capacity: usize,
}

impl KvCache {
    fn new(layers: usize, capacity: usize, d: usize) -> KvCache {
        KvCache {
            keys: (0..layers).map(|_| vec![0.0; capacity * d]).collect(),
            values: (0..layers).map(|_| vec![0.0; capacity * d]).collect(),
            len: 0,
            capacity,
        }
    }
}

impl Generator {
    /// Load a GPT-2-layout checkpoint (see the module documentation) with its `config.json`
    /// and `tokenizer.json`.
    pub fn load(weights: &[u8], config_json: &[u8], tokenizer_json: &[u8]) -> Result<Generator> {
        let mut config: Gpt2Config = parse_config(config_json)?;
        if config.n_positions == 0 {
            config.n_positions = config.n_ctx.unwrap_or(0);
        }
        config.validate()?;
        let tokenizer = Tokenizer::from_bytes(tokenizer_json)?;
        if tokenizer.vocab_size() > config.vocab_size {
            return Err(InferError::BadConfig(format!(
                "the tokenizer has {} tokens but the model only {} (vocab_size): they do not belong together",
                tokenizer.vocab_size(),
                config.vocab_size
            )));
        }
        let file = TensorFile::parse(weights)?;
        let prefix = file
            .find_prefix("wte.weight", &["", "transformer."])
            .ok_or_else(|| {
                InferError::BadWeights(
                    "no `wte.weight` tensor: not a GPT-2-layout checkpoint".into(),
                )
            })?;
        let file = file.with_prefix(prefix);
        let (d, v, ff) = (config.n_embd, config.vocab_size, config.ff());
        let wte = file.get("wte.weight", &[v, d])?;
        let wpe = file.get("wpe.weight", &[config.n_positions, d])?;
        let blocks = (0..config.n_layer)
            .map(|i| load_block(&file, i, d, ff))
            .collect::<Result<Vec<_>>>()?;
        let lnf_g = file.get("ln_f.weight", &[d])?;
        let lnf_b = file.get("ln_f.bias", &[d])?;
        let head = if file.has_unprefixed("lm_head.weight") {
            Some(file.get_exact("lm_head.weight", &[v, d])?)
        } else if !config.tie_word_embeddings {
            return Err(InferError::BadWeights(
                "config.json says tie_word_embeddings = false but there is no `lm_head.weight`"
                    .into(),
            ));
        } else {
            None
        };
        let head = PackedMatrix::from_out_in(head.as_deref().unwrap_or(&wte), d, v);
        let eos = match config.eos_token_id.as_ref().and_then(|e| e.as_u64()) {
            Some(id) => u32::try_from(id).ok(),
            None => tokenizer.token_to_id("<|endoftext|>"),
        }
        .filter(|&id| (id as usize) < v);
        Ok(Generator {
            config,
            wte,
            wpe,
            blocks,
            lnf_g,
            lnf_b,
            head,
            eos,
            tokenizer,
        })
    }

    /// Run the model's linear layers (and its output head) on `device` when it is a GPU:
    /// each weight matrix is uploaded once, and every product after runs there, bitwise the
    /// CPU's (see [`kernels::linear`]). Layer norms, GELU, attention over the KV cache and
    /// sampling stay on the CPU: they are O(d) per token beside the products' O(d²).
    /// `Err(DeviceOutOfMemory)` names the matrix that does not fit.
    pub fn use_device(&mut self, device: &Device) -> Result<()> {
        for (i, b) in self.blocks.iter_mut().enumerate() {
            b.qkv_w.upload(device, &format!("h.{i}.attn.c_attn"))?;
            b.proj_w.upload(device, &format!("h.{i}.attn.c_proj"))?;
            b.fc_w.upload(device, &format!("h.{i}.mlp.c_fc"))?;
            b.fcp_w.upload(device, &format!("h.{i}.mlp.c_proj"))?;
        }
        self.head.upload(device, "lm_head")?;
        Ok(())
    }

    /// The model's context length in tokens (prompt plus generated).
    pub fn context(&self) -> usize {
        self.config.n_positions
    }

    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.config.vocab_size
    }

    /// The parsed `config.json`.
    pub fn config(&self) -> &Gpt2Config {
        &self.config
    }

    /// The model's tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The end-of-text token, if the model has one.
    pub fn eos_token(&self) -> Option<u32> {
        self.eos
    }

    /// Logits of every position of `ids` (`ids.len() × vocab`), one full forward pass.
    pub fn logits(&self, ids: &[u32], threads: usize) -> Result<Vec<f32>> {
        self.check_ids(ids)?;
        if ids.len() > self.context() {
            return Err(InferError::PromptTooLong {
                prompt: ids.len(),
                context: self.context(),
            });
        }
        let mut cache = self.new_cache(ids.len());
        self.forward(&mut cache, ids, threads, true)
    }

    /// Generate up to `params.max_tokens` tokens after `prompt_ids`. `on_token` sees each
    /// generated token (not the end-of-text token) as it is chosen and may return `false` to
    /// stop. Streamed tokens may spell (part of) a stop sequence; [`Generation::text`] is cut
    /// before it.
    pub fn generate(
        &self,
        prompt_ids: &[u32],
        params: &SampleParams,
        threads: usize,
        mut on_token: impl FnMut(u32) -> bool,
    ) -> Result<Generation> {
        self.check_request(prompt_ids, params)?;
        let max = params.max_tokens as usize;
        let mut cache = self.new_cache(prompt_ids.len() + max);
        let mut logits = self.forward(&mut cache, prompt_ids, threads, false)?;
        let mut rng = Rng::new(params.seed);
        let mut ids = Vec::with_capacity(max);
        let mut decoder = self.tokenizer.incremental();
        let mut text = String::new();
        let mut cut = false;
        let mut finish_reason = loop {
            let next = sample::sample(&logits, params, &mut rng)?;
            ids.push(next);
            if Some(next) == self.eos {
                break FinishReason::EndOfText;
            }
            text.push_str(&decoder.push(&ids)?);
            let go_on = on_token(next);
            if let Some(at) = find_stop(&text, &params.stop) {
                text.truncate(at);
                cut = true;
                break FinishReason::Stop;
            }
            if !go_on {
                break FinishReason::Stop;
            }
            if ids.len() == max {
                break FinishReason::Length;
            }
            logits = self.forward(&mut cache, &[next], threads, false)?;
        };
        if !cut {
            // Emit what the decoder held back (an incomplete character at the very end).
            let content = match finish_reason {
                FinishReason::EndOfText => &ids[..ids.len() - 1],
                _ => &ids[..],
            };
            text.push_str(&decoder.flush(content)?);
            if let Some(at) = find_stop(&text, &params.stop) {
                text.truncate(at);
                finish_reason = FinishReason::Stop;
            }
        }
        Ok(Generation {
            tokens_in: prompt_ids.len() as u32,
            tokens_out: ids.len() as u32,
            ids,
            text,
            finish_reason,
        })
    }

    /// [`Self::generate`] from text: the prompt is encoded with the model's tokenizer.
    pub fn generate_text(
        &self,
        prompt: &str,
        params: &SampleParams,
        threads: usize,
        on_token: impl FnMut(u32) -> bool,
    ) -> Result<Generation> {
        let ids = self.tokenizer.encode(prompt, true)?;
        self.generate(&ids, params, threads, on_token)
    }

    fn check_ids(&self, ids: &[u32]) -> Result<()> {
        if ids.is_empty() {
            return Err(InferError::EmptyPrompt);
        }
        match ids.iter().find(|&&id| id as usize >= self.vocab_size()) {
            Some(&id) => Err(InferError::TokenOutOfRange {
                id,
                vocab: self.vocab_size(),
            }),
            None => Ok(()),
        }
    }

    fn check_request(&self, prompt: &[u32], params: &SampleParams) -> Result<()> {
        params.validate()?;
        self.check_ids(prompt)?;
        let context = self.context();
        if prompt.len() >= context {
            return Err(InferError::PromptTooLong {
                prompt: prompt.len(),
                context,
            });
        }
        if prompt.len() + params.max_tokens as usize > context {
            return Err(InferError::ExceedsContext {
                prompt: prompt.len(),
                max_tokens: params.max_tokens,
                context,
            });
        }
        Ok(())
    }

    pub(crate) fn new_cache(&self, capacity: usize) -> KvCache {
        KvCache::new(self.config.n_layer, capacity, self.config.n_embd)
    }

    /// Run `ids` at the positions after the cache's, appending their keys and values; the
    /// logits of every new row if `all_rows`, else of the last one.
    pub(crate) fn forward(
        &self,
        cache: &mut KvCache,
        ids: &[u32],
        threads: usize,
        all_rows: bool,
    ) -> Result<Vec<f32>> {
        let d = self.config.n_embd;
        let (start, rows) = (cache.len, ids.len());
        assert!(start + rows <= cache.capacity, "KV cache overflow");
        let eps = self.config.layer_norm_epsilon;
        let mut x = ops::embedding(ids, &self.wte, d);
        for (r, xr) in x.chunks_exact_mut(d).enumerate() {
            kernels::add_into(xr, &self.wpe[(start + r) * d..(start + r + 1) * d]);
        }
        for (l, b) in self.blocks.iter().enumerate() {
            let (h, _) = ops::layer_norm(&x, &b.ln1_g, &b.ln1_b, eps);
            let qkv = linear(&h, rows, &b.qkv_w, &b.qkv_b, threads);
            for r in 0..rows {
                let dst = (start + r) * d;
                cache.keys[l][dst..dst + d].copy_from_slice(&qkv[r * 3 * d + d..r * 3 * d + 2 * d]);
                cache.values[l][dst..dst + d]
                    .copy_from_slice(&qkv[r * 3 * d + 2 * d..(r + 1) * 3 * d]);
            }
            let att =
                self.causal_attention(&qkv, &cache.keys[l], &cache.values[l], start, rows, threads);
            let proj = linear(&att, rows, &b.proj_w, &b.proj_b, threads);
            kernels::add_into(&mut x, &proj);
            let (h2, _) = ops::layer_norm(&x, &b.ln2_g, &b.ln2_b, eps);
            let f = linear(&h2, rows, &b.fc_w, &b.fc_b, threads);
            let g = ops::gelu(&f);
            let m = linear(&g, rows, &b.fcp_w, &b.fcp_b, threads);
            kernels::add_into(&mut x, &m);
        }
        cache.len = start + rows;
        let first = if all_rows { 0 } else { rows - 1 };
        let (hf, _) = ops::layer_norm(&x[first * d..], &self.lnf_g, &self.lnf_b, eps);
        let logits = linear(&hf, rows - first, &self.head, &[], threads);
        if logits.iter().any(|x| !x.is_finite()) {
            return Err(InferError::NonFinite("the logits"));
        }
        Ok(logits)
    }

    /// Attention of rows `start..start + rows` (queries in `qkv`) over the cached positions
    /// `0..=row`, heads spread over threads when the work is worth it.
    fn causal_attention(
        &self,
        qkv: &[f32],
        keys: &[f32],
        values: &[f32],
        start: usize,
        rows: usize,
        threads: usize,
    ) -> Vec<f32> {
        let d = self.config.n_embd;
        let heads = self.config.n_head;
        let hd = d / heads;
        let scale = 1.0 / libm::sqrtf(hd as f32);
        let work = rows * (start + rows) * d;
        let threads = if work < kernels::PARALLEL_MIN_WORK {
            1
        } else {
            threads
        };
        let per_head = ops::par_map(heads, threads, |h| {
            let mut out = vec![0.0f32; rows * hd];
            let mut scores = vec![0.0f32; start + rows];
            let mut probs = vec![0.0f32; start + rows];
            for r in 0..rows {
                let q = &qkv[r * 3 * d + h * hd..r * 3 * d + (h + 1) * hd];
                attend_row(
                    q,
                    keys,
                    values,
                    (start + r + 1, d, h * hd),
                    scale,
                    &mut scores,
                    &mut probs,
                    &mut out[r * hd..(r + 1) * hd],
                );
            }
            out
        });
        let mut att = vec![0.0f32; rows * d];
        for (h, out) in per_head.iter().enumerate() {
            for r in 0..rows {
                att[r * d + h * hd..r * d + (h + 1) * hd]
                    .copy_from_slice(&out[r * hd..(r + 1) * hd]);
            }
        }
        att
    }
}

/// Byte offset of the earliest stop sequence in `text`.
fn find_stop(text: &str, stop: &[String]) -> Option<usize> {
    stop.iter().filter_map(|s| text.find(s.as_str())).min()
}

fn load_block(file: &TensorFile<'_>, i: usize, d: usize, ff: usize) -> Result<Block> {
    let get = |name: &str, shape: &[usize]| file.get(&format!("h.{i}.{name}"), shape);
    let matrix = |name: &str, k: usize, n: usize| -> Result<PackedMatrix> {
        Ok(PackedMatrix::from_in_out(&get(name, &[k, n])?, k, n))
    };
    Ok(Block {
        ln1_g: get("ln_1.weight", &[d])?,
        ln1_b: get("ln_1.bias", &[d])?,
        qkv_w: matrix("attn.c_attn.weight", d, 3 * d)?,
        qkv_b: get("attn.c_attn.bias", &[3 * d])?,
        proj_w: matrix("attn.c_proj.weight", d, d)?,
        proj_b: get("attn.c_proj.bias", &[d])?,
        ln2_g: get("ln_2.weight", &[d])?,
        ln2_b: get("ln_2.bias", &[d])?,
        fc_w: matrix("mlp.c_fc.weight", d, ff)?,
        fc_b: get("mlp.c_fc.bias", &[ff])?,
        fcp_w: matrix("mlp.c_proj.weight", ff, d)?,
        fcp_b: get("mlp.c_proj.bias", &[d])?,
    })
}

/// `rows × cols` row-major → `cols × rows`.
pub(crate) fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0f32; m.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = m[r * cols + c];
        }
    }
    t
}

/// A plain chat template for models that ship none: one `role: content` line per message
/// (newlines inside a message kept), then `assistant:` for the model to continue.
///
/// ```text
/// system: You are terse.
/// user: Hello
/// assistant:
/// ```
pub fn chat_prompt(messages: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (role, content) in messages {
        s.push_str(role);
        s.push_str(": ");
        s.push_str(content);
        s.push('\n');
    }
    s.push_str("assistant:");
    s
}
