//! Export the project's own transformer ([`crate::model::transformer`]) as a GPT-2-layout
//! model directory, so it runs through exactly the loader a user's checkpoint goes through.
//!
//! The two architectures are the same computation (pre-norm blocks, combined `d × 3d` query /
//! key / value projection stored `[in, out]`, tanh GELU, layer-norm epsilon 1e-5, learned
//! positions); only names differ, plus the output head: orrery's `lm_head.weight` is a
//! separate `d × vocab` matrix where GPT-2 ties the head to `wte`. It is exported as
//! Hugging Face's untied `lm_head.weight` (`vocab × d`, the transpose) with
//! `tie_word_embeddings: false`, which [`super::Generator`] reads; the logits are then bitwise
//! the training code's (tested).
//!
//! The tokenizer is a `tokenizers` word-level model over the 96 characters of
//! [`crate::data`] (`'\n'` → 0, `' '..='~'` → 1..=95), a pre-tokenizer that isolates every
//! character, and a decoder that concatenates; a character outside the vocabulary is an
//! encoding error.

use super::files::ModelFiles;
use super::tokenizer::Tokenizer;
use super::{InferError, Result};
use crate::data;
use crate::model::ModelConfig;
use crate::model::transformer::TransformerConfig;
use crate::tensor::ParamSet;
use safetensors::tensor::{Dtype, TensorView};
use std::collections::HashMap;

/// Orrery's parameter names and their GPT-2 names, per block (the tensors keep their shape).
const BLOCK_NAMES: [(&str, &str); 12] = [
    ("ln1.gamma", "ln_1.weight"),
    ("ln1.beta", "ln_1.bias"),
    ("attn.qkv.weight", "attn.c_attn.weight"),
    ("attn.qkv.bias", "attn.c_attn.bias"),
    ("attn.proj.weight", "attn.c_proj.weight"),
    ("attn.proj.bias", "attn.c_proj.bias"),
    ("ln2.gamma", "ln_2.weight"),
    ("ln2.beta", "ln_2.bias"),
    ("mlp.fc.weight", "mlp.c_fc.weight"),
    ("mlp.fc.bias", "mlp.c_fc.bias"),
    ("mlp.proj.weight", "mlp.c_proj.weight"),
    ("mlp.proj.bias", "mlp.c_proj.bias"),
];

/// `model.safetensors`, `config.json` and `tokenizer.json` of `params` (weights of `config`)
/// in GPT-2 layout.
pub fn transformer_to_gpt2(config: &TransformerConfig, params: &ParamSet) -> Result<ModelFiles> {
    let model = ModelConfig::Transformer(config.clone());
    model
        .validate()
        .map_err(|e| InferError::BadConfig(e.to_string()))?;
    if config.vocab_size != data::VOCAB_SIZE {
        return Err(InferError::BadConfig(format!(
            "vocab_size is {}; the exported tokenizer is the {}-character vocabulary of orrery_ml::data",
            config.vocab_size,
            data::VOCAB_SIZE
        )));
    }
    let params = params
        .clone()
        .conform_to(&model.template())
        .map_err(|e| InferError::BadWeights(e.to_string()))?;
    let get = |name: &str| -> &crate::tensor::Tensor {
        // conform_to guaranteed every template name is present.
        let (_, t) = params
            .tensors
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| unreachable!("conformed parameters lack `{name}`"));
        t
    };
    let mut out: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    let mut push = |name: String, t: &crate::tensor::Tensor| {
        out.push((name, t.shape.clone(), t.data.clone()));
    };
    push("wte.weight".into(), get("tok_emb"));
    push("wpe.weight".into(), get("pos_emb"));
    for l in 0..config.n_layers {
        for (ours, theirs) in BLOCK_NAMES {
            push(
                format!("h.{l}.{theirs}"),
                get(&format!("blocks.{l}.{ours}")),
            );
        }
    }
    push("ln_f.weight".into(), get("ln_f.gamma"));
    push("ln_f.bias".into(), get("ln_f.beta"));
    let head = get("lm_head.weight");
    let (d, v) = (config.d_model, config.vocab_size);
    out.push((
        "lm_head.weight".into(),
        vec![v, d],
        super::gpt2::transpose(&head.data, d, v),
    ));
    Ok(ModelFiles {
        weights: serialize(&out)?,
        config: gpt2_config_json(config).into_bytes(),
        tokenizer: char_tokenizer()?.to_json()?.into_bytes(),
    })
}

fn serialize(tensors: &[(String, Vec<usize>, Vec<f32>)]) -> Result<Vec<u8>> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, data)| data.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let mut views = Vec::with_capacity(tensors.len());
    for ((name, shape, _), b) in tensors.iter().zip(&bytes) {
        let view = TensorView::new(Dtype::F32, shape.clone(), b)
            .map_err(|e| InferError::BadWeights(format!("tensor `{name}`: {e}")))?;
        views.push((name.clone(), view));
    }
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize(views, Some(meta)).map_err(|e| InferError::BadWeights(e.to_string()))
}

fn gpt2_config_json(c: &TransformerConfig) -> String {
    let json = serde_json::json!({
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "activation_function": "gelu_new",
        "n_embd": c.d_model,
        "n_layer": c.n_layers,
        "n_head": c.n_heads,
        "n_positions": c.context,
        "n_ctx": c.context,
        "n_inner": c.d_model * c.ff_mult,
        "vocab_size": c.vocab_size,
        "layer_norm_epsilon": 1e-5,
        "tie_word_embeddings": false,
    });
    let mut s = serde_json::to_string_pretty(&json).unwrap_or_else(|_| json.to_string());
    s.push('\n');
    s
}

/// The word-level tokenizer over [`crate::data`]'s 96 characters.
pub fn char_tokenizer() -> Result<Tokenizer> {
    use tokenizers::decoders::fuse::Fuse;
    use tokenizers::models::wordlevel::WordLevel;
    use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
    let vocab = (0..data::VOCAB_SIZE as u32)
        .filter_map(|id| data::decode_token(id).map(|c| (c.to_string(), id)));
    let model = WordLevel::builder()
        .vocab(vocab.collect())
        .build()
        .map_err(|e| InferError::Tokenizer(format!("building the character vocabulary: {e}")))?;
    let split = Split::new(
        SplitPattern::Regex("(?s).".into()),
        tokenizers::SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(|e| InferError::Tokenizer(format!("building the character splitter: {e}")))?;
    let mut tk = tokenizers::Tokenizer::new(model);
    tk.with_pre_tokenizer(Some(split));
    tk.with_decoder(Some(Fuse::new()));
    Ok(Tokenizer::from_inner(tk))
}
