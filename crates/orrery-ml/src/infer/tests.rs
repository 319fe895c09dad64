//! Inference tests on small random models: the KV cache and the exporter are bitwise exact,
//! results do not depend on the thread count, and bad input gets typed errors.

use super::export::{char_tokenizer, transformer_to_gpt2};
use super::kernels::{PackedMatrix, linear};
use super::sample::{argmax, sample};
use super::tensors::f16_to_f32;
use super::*;
use crate::model::{ModelConfig, TransformerConfig};
use crate::ops::{Trans, matmul_naive};
use crate::rng::Rng;
use crate::tensor::ParamSet;
use safetensors::tensor::{Dtype, TensorView};

fn randn(n: usize, seed: u64, std: f32) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..n).map(|_| r.normal() * std).collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn tiny_transformer() -> (TransformerConfig, ParamSet) {
    let cfg = TransformerConfig {
        vocab_size: 96,
        d_model: 16,
        n_layers: 2,
        n_heads: 2,
        context: 24,
        ff_mult: 4,
    };
    let mut params = ModelConfig::Transformer(cfg.clone()).init_params(7);
    // Initialization leaves layer norms at identity and biases at zero: perturb every tensor
    // so that a wrong mapping of any of them changes the logits.
    for (i, (_, t)) in params.tensors.iter_mut().enumerate() {
        let noise = randn(t.data.len(), 100 + i as u64, 0.1);
        for (v, n) in t.data.iter_mut().zip(noise) {
            *v += n;
        }
    }
    (cfg, params)
}

fn tiny_generator() -> (TransformerConfig, ParamSet, Generator) {
    let (cfg, params) = tiny_transformer();
    let files = transformer_to_gpt2(&cfg, &params).unwrap();
    let g = Generator::load(&files.weights, &files.config, &files.tokenizer).unwrap();
    (cfg, params, g)
}

fn safetensors_of(tensors: &[(String, Vec<usize>, Vec<f32>)], dtype: Dtype) -> Vec<u8> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, d)| match dtype {
            Dtype::F32 => d.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Dtype::BF16 => d
                .iter()
                .flat_map(|v| ((v.to_bits() >> 16) as u16).to_le_bytes())
                .collect(),
            _ => unreachable!(),
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((n, s, _), b)| (n.clone(), TensorView::new(dtype, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize(views, None).unwrap()
}

fn tensors_of(bytes: &[u8]) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let st = safetensors::SafeTensors::deserialize(bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(n, v)| {
            let data = v
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            (n, v.shape().to_vec(), data)
        })
        .collect()
}

#[test]
fn packed_linear_is_bitwise_the_naive_product_on_any_thread_count() {
    // The last two shapes are over PARALLEL_MIN_WORK, so they really run on 2 and 3 threads.
    const { assert!(1000 * 1024 * 6 >= super::kernels::PARALLEL_MIN_WORK) };
    for &(rows, k, n) in &[
        (1, 1, 1),
        (1, 3, 5),
        (2, 16, 127),
        (5, 64, 300),
        (1, 700, 500),
        (7, 300, 400),
        (1, 2048, 2100),
        (6, 1024, 1000),
    ] {
        let x = randn(rows * k, 1, 1.0);
        let w = randn(k * n, 2, 1.0);
        let mut want = vec![0.0f32; rows * n];
        matmul_naive(&x, Trans::No, &w, Trans::No, rows, k, n, &mut want);
        let w_t = crate::infer::gpt2::transpose(&w, k, n);
        for packed in [
            PackedMatrix::from_in_out(&w, k, n),
            PackedMatrix::from_out_in(&w_t, k, n),
        ] {
            for threads in [1, 2, 3] {
                let y = linear(&x, rows, &packed, &[], threads);
                assert_eq!(
                    bits(&y),
                    bits(&want),
                    "rows={rows} k={k} n={n} threads={threads}"
                );
            }
        }
    }
}

#[test]
fn f16_widening_is_exact() {
    for (h, want) in [
        (0x3c00u16, 1.0f32),
        (0xc000, -2.0),
        (0x7bff, 65504.0),
        (0x0001, 2f32.powi(-24)),
        (0x03ff, 1023.0 * 2f32.powi(-24)),
        (0x3555, 0.333_251_95),
        (0x8000, -0.0),
        (0x7c00, f32::INFINITY),
    ] {
        assert_eq!(f16_to_f32(h).to_bits(), want.to_bits(), "{h:#06x}");
    }
    assert!(f16_to_f32(0x7e00).is_nan());
}

#[test]
fn output_digest_covers_the_counts_and_the_bytes() {
    let d = output_digest(7, 9, b"hello");
    assert_ne!(d, output_digest(7, 9, b"hellp"));
    assert_ne!(d, output_digest(7, 10, b"hello"));
    assert_ne!(d, output_digest(8, 9, b"hello"));
    assert_eq!(weights_hash(b"abc"), orrery_types::hash::Hash::of(b"abc"));
}

#[test]
fn char_tokenizer_round_trips_the_corpus_with_the_training_ids() {
    let tk = char_tokenizer().unwrap();
    let json = tk.to_json().unwrap();
    let tk = Tokenizer::from_bytes(json.as_bytes()).unwrap();
    let text = &crate::data::GENESIS_KJV[..20_000];
    let ids = tk.encode(text, true).unwrap();
    assert_eq!(ids, crate::data::encode(text).unwrap());
    assert_eq!(tk.decode(&ids).unwrap(), text);
    assert_eq!(tk.vocab_size(), crate::data::VOCAB_SIZE);
    assert!(matches!(
        tk.encode("caf\u{e9}", false),
        Err(InferError::Tokenizer(_))
    ));
}

fn byte_level_tokenizer() -> Tokenizer {
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    let mut chars: Vec<char> = ByteLevel::alphabet().into_iter().collect();
    chars.sort_unstable();
    let vocab: tokenizers::models::bpe::Vocab = chars
        .iter()
        .enumerate()
        .map(|(i, c)| (c.to_string(), i as u32))
        .collect();
    let bpe = tokenizers::models::bpe::BPE::builder()
        .vocab_and_merges(vocab, vec![])
        .build()
        .unwrap();
    let mut tk = tokenizers::Tokenizer::new(bpe);
    tk.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tk.with_decoder(Some(ByteLevel::default()));
    Tokenizer::from_inner(tk)
}

#[test]
fn incremental_decoding_never_emits_a_broken_character() {
    let tk = byte_level_tokenizer();
    let text = "h\u{e9}llo, \u{65e5}\u{672c} \u{1f389}! ok";
    let ids = tk.encode(text, false).unwrap();
    assert!(
        ids.len() > text.chars().count(),
        "multi-byte characters span tokens"
    );
    let mut dec = tk.incremental();
    let mut out = String::new();
    for n in 1..=ids.len() {
        let piece = dec.push(&ids[..n]).unwrap();
        assert!(!piece.contains('\u{FFFD}'), "piece {piece:?} after {n} ids");
        out.push_str(&piece);
    }
    out.push_str(&dec.flush(&ids).unwrap());
    assert_eq!(out, text);
    assert!(
        dec.push(&ids[..1]).is_err(),
        "fewer ids than already decoded"
    );
}

#[test]
fn exported_model_gives_the_training_models_logits_bitwise() {
    let (cfg, params, g) = tiny_generator();
    let ids = crate::data::encode("And God said, Let there").unwrap();
    let all = g.logits(&ids, 1).unwrap();
    let v = cfg.vocab_size;
    for t in 1..=ids.len() {
        let want = cfg.next_token_logits(&params, &ids[..t], 1);
        assert_eq!(bits(&all[(t - 1) * v..t * v]), bits(&want), "position {t}");
    }
}

#[test]
fn kv_cache_steps_equal_the_full_forward_pass_bitwise() {
    let (_, _, g) = tiny_generator();
    let ids = crate::data::encode("In the beginning God cre").unwrap();
    let v = g.vocab_size();
    for threads in [1, 2] {
        let full = g.logits(&ids, threads).unwrap();
        let mut cache = g.new_cache(ids.len());
        let prompt = 5;
        let first = g
            .forward(&mut cache, &ids[..prompt], threads, false)
            .unwrap();
        assert_eq!(bits(&first), bits(&full[(prompt - 1) * v..prompt * v]));
        for t in prompt..ids.len() {
            let step = g
                .forward(&mut cache, &ids[t..t + 1], threads, false)
                .unwrap();
            assert_eq!(bits(&step), bits(&full[t * v..(t + 1) * v]), "step {t}");
        }
    }
}

#[test]
fn generation_is_deterministic_across_threads_and_follows_the_params() {
    let (_, _, g) = tiny_generator();
    let prompt = crate::data::encode("And God").unwrap();
    let params = SampleParams {
        max_tokens: 12,
        temperature: 0.9,
        top_p: 0.9,
        seed: 42,
        stop: vec![],
    };
    let a = g.generate(&prompt, &params, 1, |_| true).unwrap();
    let b = g.generate(&prompt, &params, 2, |_| true).unwrap();
    assert_eq!(a, b);
    assert_eq!((a.tokens_in, a.tokens_out), (7, 12));
    assert_eq!(a.finish_reason, FinishReason::Length);
    assert_eq!(a.text, crate::data::decode(&a.ids));
    let other_seed = SampleParams {
        seed: 43,
        ..params.clone()
    };
    let seeds_differ = (0..4).any(|s| {
        let p = SampleParams {
            seed: 43 + s,
            ..other_seed.clone()
        };
        g.generate(&prompt, &p, 1, |_| true).unwrap().ids != a.ids
    });
    assert!(seeds_differ, "the seed changes the sample");
    // Greedy decoding picks the argmax of the full pass's logits at every step.
    let greedy = SampleParams {
        temperature: 0.0,
        ..params.clone()
    };
    let greedy_run = g.generate(&prompt, &greedy, 1, |_| true).unwrap();
    let mut seq = prompt.clone();
    for &id in &greedy_run.ids {
        let logits = g.logits(&seq, 1).unwrap();
        assert_eq!(id, argmax(&logits[logits.len() - g.vocab_size()..]));
        seq.push(id);
    }
    // Streaming sees every token; returning false stops.
    let mut seen = Vec::new();
    let stopped = g
        .generate(&prompt, &params, 1, |t| {
            seen.push(t);
            seen.len() < 3
        })
        .unwrap();
    assert_eq!(seen, stopped.ids);
    assert_eq!(
        (stopped.tokens_out, stopped.finish_reason),
        (3, FinishReason::Stop)
    );
}

#[test]
fn a_stop_sequence_ends_generation_and_is_cut_from_the_text() {
    let (_, _, g) = tiny_generator();
    let prompt = crate::data::encode("And God").unwrap();
    let free = g
        .generate(
            &prompt,
            &SampleParams {
                max_tokens: 10,
                ..Default::default()
            },
            1,
            |_| true,
        )
        .unwrap();
    let stop: String = free.text.chars().skip(3).take(2).collect();
    let at = free.text.find(&stop).unwrap();
    let params = SampleParams {
        max_tokens: 10,
        stop: vec![stop.clone()],
        ..Default::default()
    };
    let cut = g.generate(&prompt, &params, 1, |_| true).unwrap();
    assert_eq!(cut.finish_reason, FinishReason::Stop);
    assert_eq!(cut.text, free.text[..at]);
    assert_eq!(cut.ids[..], free.ids[..cut.ids.len()]);
    assert!(cut.ids.len() < free.ids.len() || at + stop.len() == free.text.len());
}

#[test]
fn bad_requests_get_typed_errors() {
    let (_, _, g) = tiny_generator();
    let ok = SampleParams {
        max_tokens: 4,
        ..Default::default()
    };
    let run = |prompt: &[u32], p: &SampleParams| g.generate(prompt, p, 1, |_| true).unwrap_err();
    assert!(matches!(run(&[], &ok), InferError::EmptyPrompt));
    assert!(matches!(
        run(&[1; 24], &ok),
        InferError::PromptTooLong {
            prompt: 24,
            context: 24
        }
    ));
    assert!(matches!(
        run(&[1; 21], &ok),
        InferError::ExceedsContext { .. }
    ));
    assert!(run(&[1; 21], &ok).to_string().contains("at most 3"));
    assert!(matches!(
        run(&[96], &ok),
        InferError::TokenOutOfRange { id: 96, vocab: 96 }
    ));
    let zero = SampleParams {
        max_tokens: 0,
        ..ok.clone()
    };
    assert!(matches!(run(&[1], &zero), InferError::NoTokensRequested));
    for bad in [
        SampleParams {
            temperature: -1.0,
            ..ok.clone()
        },
        SampleParams {
            temperature: f32::NAN,
            ..ok.clone()
        },
        SampleParams {
            top_p: 0.0,
            ..ok.clone()
        },
        SampleParams {
            top_p: 1.5,
            ..ok.clone()
        },
        SampleParams {
            stop: vec![String::new()],
            ..ok.clone()
        },
    ] {
        assert!(
            matches!(run(&[1], &bad), InferError::BadParams(_)),
            "{bad:?}"
        );
    }
    assert!(matches!(
        g.logits(&[1; 25], 1),
        Err(InferError::PromptTooLong { .. })
    ));
}

#[test]
fn sampling_rules() {
    assert_eq!(
        argmax(&[1.0, 3.0, 3.0, 2.0]),
        1,
        "lowest index among equal maxima"
    );
    let logits = [0.0f32, 2.0, 1.0, 2.0];
    let mut rng = Rng::new(1);
    let tiny_p = SampleParams {
        temperature: 1.0,
        top_p: 1e-6,
        ..Default::default()
    };
    for _ in 0..20 {
        assert_eq!(
            sample(&logits, &tiny_p, &mut rng).unwrap(),
            1,
            "nucleus of one: first of the tied top"
        );
    }
    let p = SampleParams {
        temperature: 1.0,
        ..Default::default()
    };
    let mut counts = [0usize; 4];
    for _ in 0..4000 {
        counts[sample(&logits, &p, &mut rng).unwrap() as usize] += 1;
    }
    // Softmax of [0, 2, 1, 2] is about [0.05, 0.39, 0.14, 0.39].
    assert!(counts[0] > 100 && counts[0] < 330, "{counts:?}");
    assert!(counts[1] > 1400 && counts[3] > 1400, "{counts:?}");
    assert!(sample(&[0.0, f32::NAN], &p, &mut rng).is_err());
}

#[test]
fn tied_heads_half_precision_and_prefixes_load() {
    let (cfg, params) = tiny_transformer();
    let files = transformer_to_gpt2(&cfg, &params).unwrap();
    let ids = crate::data::encode("God").unwrap();
    // Tied: drop lm_head, prefix the rest, say so in the config.
    let mut tensors = tensors_of(&files.weights);
    let head = tensors
        .iter()
        .position(|t| t.0 == "lm_head.weight")
        .unwrap();
    tensors.remove(head);
    let wte = tensors
        .iter()
        .find(|t| t.0 == "wte.weight")
        .unwrap()
        .2
        .clone();
    for t in &mut tensors {
        t.0 = format!("transformer.{}", t.0);
    }
    tensors.push((
        "transformer.h.0.attn.bias".into(),
        vec![1, 1, 24, 24],
        vec![1.0; 576],
    ));
    let config = String::from_utf8(files.config.clone()).unwrap().replace(
        "\"tie_word_embeddings\": false",
        "\"tie_word_embeddings\": true",
    );
    let tied = Generator::load(
        &safetensors_of(&tensors, Dtype::F32),
        config.as_bytes(),
        &files.tokenizer,
    )
    .unwrap();
    let logits = tied.logits(&ids, 1).unwrap();
    // The tied head is wte: the last row's logits are hf · wteᵀ; check the argmax direction by
    // recomputing one logit through the untied path with lm_head = wte.
    let mut untied = tensors.clone();
    untied.push(("lm_head.weight".into(), vec![96, 16], wte));
    let g2 = Generator::load(
        &safetensors_of(&untied, Dtype::F32),
        &files.config,
        &files.tokenizer,
    )
    .unwrap();
    assert_eq!(bits(&logits), bits(&g2.logits(&ids, 1).unwrap()));
    // BF16: loads, and its logits are close to F32's.
    let half = Generator::load(
        &safetensors_of(&untied, Dtype::BF16),
        &files.config,
        &files.tokenizer,
    )
    .unwrap();
    let hl = half.logits(&ids, 1).unwrap();
    let f = g2.logits(&ids, 1).unwrap();
    let max_diff = hl
        .iter()
        .zip(&f)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        max_diff > 0.0 && max_diff < 0.5,
        "bf16 vs f32 logits differ by {max_diff}"
    );
    // Untied config without lm_head is an error naming the tensor.
    let err = Generator::load(
        &safetensors_of(&tensors, Dtype::F32),
        &files.config,
        &files.tokenizer,
    )
    .unwrap_err();
    assert!(err.to_string().contains("lm_head.weight"), "{err}");
}

#[test]
fn broken_checkpoints_and_configs_are_rejected() {
    let (cfg, params) = tiny_transformer();
    let files = transformer_to_gpt2(&cfg, &params).unwrap();
    let load = |w: &[u8], c: &[u8]| Generator::load(w, c, &files.tokenizer).unwrap_err();
    assert!(matches!(
        load(b"garbage", &files.config),
        InferError::BadWeights(_)
    ));
    assert!(matches!(
        load(&files.weights, b"{"),
        InferError::BadConfig(_)
    ));
    let cfg_str = String::from_utf8(files.config.clone()).unwrap();
    let wide = cfg_str.replace("\"n_embd\": 16", "\"n_embd\": 32");
    let e = load(&files.weights, wide.as_bytes());
    assert!(e.to_string().contains("shape"), "{e}");
    let heads = cfg_str.replace("\"n_head\": 2", "\"n_head\": 3");
    assert!(matches!(
        load(&files.weights, heads.as_bytes()),
        InferError::BadConfig(_)
    ));
    // Older configs name the context `n_ctx` only.
    let old_name = cfg_str.replace("\"n_positions\": 24,", "");
    assert!(!old_name.contains("n_positions"));
    let g = Generator::load(&files.weights, old_name.as_bytes(), &files.tokenizer).unwrap();
    assert_eq!(g.context(), 24);
    let act = cfg_str.replace("gelu_new", "relu");
    assert!(matches!(
        load(&files.weights, act.as_bytes()),
        InferError::BadConfig(_)
    ));
    let mut tensors = tensors_of(&files.weights);
    tensors.retain(|t| t.0 != "h.1.mlp.c_fc.bias");
    let e = load(&safetensors_of(&tensors, Dtype::F32), &files.config);
    assert!(e.to_string().contains("h.1.mlp.c_fc.bias"), "{e}");
    let mut tensors = tensors_of(&files.weights);
    tensors[0].2[0] = f32::NAN;
    assert!(matches!(
        load(&safetensors_of(&tensors, Dtype::F32), &files.config),
        InferError::BadWeights(_)
    ));
}

// ---------------------------------------------------------------------------------------------
// BERT.

const BERT_WORDS: [&str; 12] = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "cat", "sat", "on", "mat", "##s", ".", "dog",
];

fn bert_tokenizer_json() -> String {
    let vocab: serde_json::Map<String, serde_json::Value> = BERT_WORDS
        .iter()
        .enumerate()
        .map(|(i, w)| (w.to_string(), serde_json::json!(i)))
        .collect();
    let special = |id: usize, content: &str| {
        serde_json::json!({"id": id, "content": content, "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true})
    };
    serde_json::json!({
        "version": "1.0", "truncation": {"max_length": 4, "strategy": "LongestFirst", "stride": 0},
        "padding": null,
        "added_tokens": [special(0, "[PAD]"), special(1, "[UNK]"), special(2, "[CLS]"), special(3, "[SEP]")],
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
            "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
            "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                               "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
            "max_input_chars_per_word": 100, "vocab": vocab}
    })
    .to_string()
}

fn tiny_bert(prefix: &str) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let (d, ff, v, pos, layers) = (8usize, 16usize, BERT_WORDS.len(), 10usize, 2usize);
    let mut t: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    let mut seed = 0;
    let mut add = |name: String, shape: Vec<usize>, base: f32| {
        seed += 1;
        let n = shape.iter().product();
        let data = randn(n, seed, 0.3).into_iter().map(|x| x + base).collect();
        t.push((format!("{prefix}{name}"), shape, data));
    };
    add("embeddings.word_embeddings.weight".into(), vec![v, d], 0.0);
    add(
        "embeddings.position_embeddings.weight".into(),
        vec![pos, d],
        0.0,
    );
    add(
        "embeddings.token_type_embeddings.weight".into(),
        vec![2, d],
        0.0,
    );
    add("embeddings.LayerNorm.weight".into(), vec![d], 1.0);
    add("embeddings.LayerNorm.bias".into(), vec![d], 0.0);
    for i in 0..layers {
        let p = |s: &str| format!("encoder.layer.{i}.{s}");
        for m in [
            "attention.self.query",
            "attention.self.key",
            "attention.self.value",
            "attention.output.dense",
        ] {
            add(p(&format!("{m}.weight")), vec![d, d], 0.0);
            add(p(&format!("{m}.bias")), vec![d], 0.0);
        }
        add(p("intermediate.dense.weight"), vec![ff, d], 0.0);
        add(p("intermediate.dense.bias"), vec![ff], 0.0);
        add(p("output.dense.weight"), vec![d, ff], 0.0);
        add(p("output.dense.bias"), vec![d], 0.0);
        for ln in ["attention.output.LayerNorm", "output.LayerNorm"] {
            add(p(&format!("{ln}.weight")), vec![d], 1.0);
            add(p(&format!("{ln}.bias")), vec![d], 0.0);
        }
    }
    let config = serde_json::json!({
        "hidden_size": d, "num_hidden_layers": layers, "num_attention_heads": 2,
        "intermediate_size": ff, "max_position_embeddings": pos, "layer_norm_eps": 1e-12,
        "vocab_size": v, "type_vocab_size": 2, "hidden_act": "gelu", "model_type": "bert"
    });
    (
        safetensors_of(&t, Dtype::F32),
        config.to_string().into_bytes(),
        bert_tokenizer_json().into_bytes(),
    )
}

#[test]
fn embeddings_are_unit_length_thread_and_batch_independent() {
    let (w, c, tk) = tiny_bert("");
    let e = Embedder::load(&w, &c, &tk).unwrap();
    assert_eq!((e.dim(), e.max_tokens()), (8, 10));
    let texts = ["The cat sat on the mat.", "dogs", "", "cats sat"];
    let one = e.embed(&texts, 1).unwrap();
    assert_eq!(one, e.embed(&texts, 2).unwrap());
    assert_eq!(one, e.embed(&texts, 3).unwrap());
    assert_eq!(
        one[1],
        e.embed(&texts[1..2], 2).unwrap()[0],
        "a vector ignores its neighbours"
    );
    assert_eq!(
        one.iter().map(|x| x.tokens).collect::<Vec<_>>(),
        [9, 4, 2, 5],
        "[CLS] the cat sat on the mat . [SEP]; truncation in tokenizer.json is ignored"
    );
    for x in &one {
        let norm: f32 = x.vector.iter().map(|v| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-5, "norm² {norm}");
    }
    assert_ne!(one[0].vector, one[3].vector);
    let (pw, pc, ptk) = tiny_bert("bert.");
    let prefixed = Embedder::load(&pw, &pc, &ptk).unwrap();
    assert_eq!(prefixed.embed(&texts, 1).unwrap(), one);
    let digest_bytes = embeddings_output_bytes(&one[..1]);
    assert_eq!(digest_bytes.len(), 32);
    assert_eq!(&digest_bytes[..4], &one[0].vector[0].to_le_bytes());
}

#[test]
fn too_long_inputs_are_rejected_not_truncated() {
    let (w, c, tk) = tiny_bert("");
    let e = Embedder::load(&w, &c, &tk).unwrap();
    let fits = e
        .embed(&["cat", "the cat sat on the mat the cat"], 1)
        .unwrap();
    assert_eq!(fits[1].tokens, 10);
    let err = e
        .embed(&["cat", "the cat sat on the mat the cat sat"], 1)
        .unwrap_err();
    assert!(
        matches!(
            err,
            InferError::InputTooLong {
                index: 1,
                tokens: 11,
                max: 10
            }
        ),
        "{err}"
    );
}

#[test]
fn model_files_detect_their_kind() {
    let (cfg, params) = tiny_transformer();
    let gpt = transformer_to_gpt2(&cfg, &params).unwrap();
    let m = gpt.load().unwrap();
    assert!(matches!(m.model, LoadedModel::Generation(_)));
    assert_eq!(m.weights_hash, weights_hash(&gpt.weights));
    let (w, c, tk) = tiny_bert("");
    let bert = ModelFiles {
        weights: w,
        config: c,
        tokenizer: tk,
    };
    assert!(matches!(
        bert.load().unwrap().model,
        LoadedModel::Embedding(_)
    ));
    let other = ModelFiles {
        weights: safetensors_of(&[("x".into(), vec![1], vec![0.0])], Dtype::F32),
        ..bert.clone()
    };
    assert!(matches!(
        other.load().unwrap_err(),
        InferError::UnknownModel(_)
    ));
    let dir = std::env::temp_dir().join(format!("orrery-ml-infer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("model.safetensors"), &gpt.weights).unwrap();
    std::fs::write(dir.join("config.json"), &gpt.config).unwrap();
    let missing = ModelFiles::load_dir(&dir).unwrap_err();
    assert!(missing.to_string().contains("tokenizer.json"), "{missing}");
    std::fs::write(dir.join("tokenizer.json"), &gpt.tokenizer).unwrap();
    let read = ModelFiles::load_dir(&dir).unwrap();
    assert_eq!(read.weights_hash(), weights_hash(&gpt.weights));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn chat_prompt_format() {
    assert_eq!(
        chat_prompt(&[("system", "Be terse."), ("user", "Hi\nthere")]),
        "system: Be terse.\nuser: Hi\nthere\nassistant:"
    );
}
