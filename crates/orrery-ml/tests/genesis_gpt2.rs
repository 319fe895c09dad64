//! The shipped `models/genesis-gpt2` (the project's own Genesis character model, exported to
//! GPT-2 layout) loads through the same `Generator::load` as any user's checkpoint, gives
//! bitwise the training transformer's logits, and writes Genesis-like text.

use orrery_ml::data;
use orrery_ml::infer::{FinishReason, Generator, ModelFiles, SampleParams, weights_hash};
use orrery_ml::model::TransformerConfig;
use orrery_ml::{ParamSet, Tensor};
use std::path::PathBuf;

fn shipped() -> ModelFiles {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/genesis-gpt2");
    ModelFiles::load_dir(&dir).unwrap()
}

/// The training model's parameters from the GPT-2 files: the exporter's renaming, inverted.
fn as_training_params(files: &ModelFiles, cfg: &TransformerConfig) -> ParamSet {
    let st = safetensors::SafeTensors::deserialize(&files.weights).unwrap();
    let read = |name: &str| -> Tensor {
        let v = st.tensor(name).unwrap();
        let data = v
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Tensor {
            shape: v.shape().to_vec(),
            data,
        }
    };
    let mut t = vec![
        ("tok_emb".to_string(), read("wte.weight")),
        ("pos_emb".to_string(), read("wpe.weight")),
    ];
    let names = [
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
    for l in 0..cfg.n_layers {
        for (ours, theirs) in names {
            t.push((
                format!("blocks.{l}.{ours}"),
                read(&format!("h.{l}.{theirs}")),
            ));
        }
    }
    t.push(("ln_f.gamma".into(), read("ln_f.weight")));
    t.push(("ln_f.beta".into(), read("ln_f.bias")));
    let head = read("lm_head.weight");
    let (v, d) = (cfg.vocab_size, cfg.d_model);
    let mut head_t = vec![0.0f32; v * d];
    for r in 0..v {
        for c in 0..d {
            head_t[c * v + r] = head.data[r * d + c];
        }
    }
    t.push((
        "lm_head.weight".into(),
        Tensor {
            shape: vec![d, v],
            data: head_t,
        },
    ));
    ParamSet { tensors: t }
}

#[test]
fn shipped_model_is_small_and_its_hash_is_the_documented_one() {
    let files = shipped();
    assert!(
        files.weights.len() < 1 << 20,
        "{} bytes",
        files.weights.len()
    );
    let readme = include_str!("../../../models/genesis-gpt2/README.md");
    let hash = weights_hash(&files.weights).to_hex();
    assert!(
        readme.contains(&hash),
        "README.md does not name the weights hash {hash}"
    );
}

#[test]
fn shipped_model_gives_the_training_transformers_logits_bitwise() {
    let files = shipped();
    let g = Generator::load(&files.weights, &files.config, &files.tokenizer).unwrap();
    let c = g.config();
    let cfg = TransformerConfig {
        vocab_size: c.vocab_size,
        d_model: c.n_embd,
        n_layers: c.n_layer,
        n_heads: c.n_head,
        context: c.n_positions,
        ff_mult: c.ff() / c.n_embd,
    };
    let params = as_training_params(&files, &cfg);
    let ids = data::encode("And God said, Let there be light: and there was light.").unwrap();
    let logits = g.logits(&ids, 2).unwrap();
    let v = cfg.vocab_size;
    for t in [1, 7, ids.len()] {
        let want = cfg.next_token_logits(&params, &ids[..t], 1);
        let got = &logits[(t - 1) * v..t * v];
        assert!(
            got.iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "position {t}: logits differ from the training model's"
        );
    }
}

#[test]
fn shipped_model_writes_genesis_like_text() {
    let files = shipped();
    let g = Generator::load(&files.weights, &files.config, &files.tokenizer).unwrap();
    let prompt = g.tokenizer().encode("And God said", true).unwrap();
    let params = SampleParams {
        max_tokens: 100,
        temperature: 0.8,
        top_p: 0.95,
        seed: 3,
        stop: vec![],
    };
    let out = g.generate(&prompt, &params, 1, |_| true).unwrap();
    assert_eq!(
        (out.tokens_out, out.finish_reason),
        (100, FinishReason::Length)
    );
    assert_eq!(out, g.generate(&prompt, &params, 2, |_| true).unwrap());
    eprintln!("sample: And God said{}", out.text);
    assert!(
        out.text.chars().all(|c| data::encode_char(c).is_some()),
        "{:?}",
        out.text
    );
    // Mostly lower-case letters and spaces, like the corpus; and some real words.
    let letters = out
        .text
        .chars()
        .filter(|c| c.is_ascii_lowercase() || *c == ' ')
        .count();
    assert!(letters * 10 >= out.text.len() * 7, "{:?}", out.text);
    let words = ["the", "and", "of", "he", "his", "God", "unto"];
    assert!(
        out.text
            .split(|c: char| !c.is_ascii_alphabetic())
            .any(|w| words.contains(&w)),
        "no common Genesis word in {:?}",
        out.text
    );
}
