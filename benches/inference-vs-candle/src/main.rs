//! orrery-ml's deterministic inference against candle (a fast Rust ML library) on the same
//! weights, in one run: GPT-2 decoding tokens/s with a KV cache, and MiniLM embeddings/s.
//!
//! ```text
//! cd benches/inference-vs-candle
//! CARGO_TARGET_DIR=/work/rel-target/candle-bench cargo run --release
//! ```
//!
//! The candle side is written here with candle's own ops (matmul on its gemm backend, its
//! softmax and layer norm); both sides use every core (`--threads N` to change orrery's; set
//! `RAYON_NUM_THREADS` for candle's). Greedy decoding, so both must produce the same tokens
//! (printed as a check). Each figure is the best of 3 timed runs after a warm-up. MiniLM is
//! skipped when `scripts/fetch-models.sh` has not been run. `--kernel` times the linear
//! kernel alone at decode shapes.

use candle_core::{D, DType, Device, Tensor};
use orrery_ml::infer::{Embedder, Generator, ModelFiles, SampleParams};
use orrery_ml::rng::Rng;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let threads = args
        .iter()
        .position(|a| a == "--threads")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    if args.iter().any(|a| a == "--kernel") {
        return kernel_bench(threads);
    }
    println!("orrery-ml vs candle 0.11.1, {threads} threads");
    println!(
        "{:<44} {:>12} {:>12} {:>8}",
        "workload", "orrery", "candle", "ratio"
    );

    let genesis = ModelFiles::load_dir(&root.join("models/genesis-gpt2"))?;
    decode_bench(
        "decode, genesis-gpt2 (d64 L3 v96), tok/s",
        &genesis,
        100,
        threads,
    )?;
    let random = random_gpt2(384, 6, 6, 50257, 512)?;
    decode_bench(
        "decode, GPT-2 shape d384 L6 v50257, tok/s",
        &random,
        128,
        threads,
    )?;

    let models = std::env::var_os("ORRERY_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/models"));
    let minilm = models.join("all-minilm-l6-v2");
    if minilm.join("model.safetensors").exists() {
        embed_bench(&minilm, threads)?;
    } else {
        println!("(MiniLM skipped: run scripts/fetch-models.sh)");
    }
    Ok(())
}

/// Items per second of `run` (which handles `items`), best of [`REPEATS`] after a warm-up:
/// the machine is shared, so the best run is the least disturbed one.
fn best_rate(items: usize, mut run: impl FnMut() -> Res<()>) -> Res<f64> {
    let mut best = 0.0f64;
    for _ in 0..REPEATS {
        let t0 = Instant::now();
        run()?;
        best = best.max(items as f64 / t0.elapsed().as_secs_f64());
    }
    Ok(best)
}

/// Timed runs per measurement.
const REPEATS: usize = 3;

fn report(name: &str, orrery: f64, candle: f64) {
    println!(
        "{name:<44} {orrery:>12.1} {candle:>12.1} {:>7.2}x",
        orrery / candle
    );
}

// ---------------------------------------------------------------------------------------------
// GPT-2 decoding.

fn decode_bench(name: &str, files: &ModelFiles, tokens: u32, threads: usize) -> Res<()> {
    let g = Generator::load(&files.weights, &files.config, &files.tokenizer)?;
    let c = CandleGpt2::load(
        &files.weights,
        g.config().n_head,
        g.config().layer_norm_epsilon,
    )?;
    let prompt = vec![1u32, 2, 3, 4];
    let params = SampleParams {
        max_tokens: tokens,
        ..Default::default()
    };
    let ours = g.generate(&prompt, &params, threads, |_| true)?;
    let orrery = best_rate(tokens as usize, || {
        g.generate(&prompt, &params, threads, |_| true)?;
        Ok(())
    })?;
    let theirs = c.generate(&prompt, tokens as usize)?;
    let candle = best_rate(tokens as usize, || {
        c.generate(&prompt, tokens as usize)?;
        Ok(())
    })?;
    report(name, orrery, candle);
    let same = ours
        .ids
        .iter()
        .zip(&theirs)
        .take_while(|(a, b)| a == b)
        .count();
    println!("    greedy tokens equal for the first {same} of {tokens}");
    Ok(())
}

/// Random GPT-2-layout weights (Normal(0, 0.02), layer norms near identity) in memory, with
/// the character tokenizer (the model's vocabulary is larger than the tokenizer's, which is
/// allowed).
fn random_gpt2(d: usize, layers: usize, heads: usize, vocab: usize, ctx: usize) -> Res<ModelFiles> {
    let mut rng = Rng::new(1);
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    let mut add = |name: String, shape: Vec<usize>, base: f32, std: f32| {
        let n = shape.iter().product();
        let data = (0..n).map(|_| base + rng.normal() * std).collect();
        tensors.push((name, shape, data));
    };
    add("wte.weight".into(), vec![vocab, d], 0.0, 0.02);
    add("wpe.weight".into(), vec![ctx, d], 0.0, 0.01);
    for l in 0..layers {
        let p = |s: &str| format!("h.{l}.{s}");
        add(p("ln_1.weight"), vec![d], 1.0, 0.02);
        add(p("ln_1.bias"), vec![d], 0.0, 0.02);
        add(p("attn.c_attn.weight"), vec![d, 3 * d], 0.0, 0.02);
        add(p("attn.c_attn.bias"), vec![3 * d], 0.0, 0.02);
        add(p("attn.c_proj.weight"), vec![d, d], 0.0, 0.02);
        add(p("attn.c_proj.bias"), vec![d], 0.0, 0.02);
        add(p("ln_2.weight"), vec![d], 1.0, 0.02);
        add(p("ln_2.bias"), vec![d], 0.0, 0.02);
        add(p("mlp.c_fc.weight"), vec![d, 4 * d], 0.0, 0.02);
        add(p("mlp.c_fc.bias"), vec![4 * d], 0.0, 0.02);
        add(p("mlp.c_proj.weight"), vec![4 * d, d], 0.0, 0.02);
        add(p("mlp.c_proj.bias"), vec![d], 0.0, 0.02);
    }
    add("ln_f.weight".into(), vec![d], 1.0, 0.02);
    add("ln_f.bias".into(), vec![d], 0.0, 0.02);
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|t| t.2.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let mut views = Vec::new();
    for (t, b) in tensors.iter().zip(&bytes) {
        views.push((
            t.0.clone(),
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, t.1.clone(), b)?,
        ));
    }
    let weights = safetensors::serialize(views, None)?;
    let config = format!(
        r#"{{"n_embd": {d}, "n_layer": {layers}, "n_head": {heads}, "n_positions": {ctx}, "vocab_size": {vocab}}}"#
    );
    let tokenizer = orrery_ml::infer::export::char_tokenizer()?.to_json()?;
    Ok(ModelFiles {
        weights,
        config: config.into_bytes(),
        tokenizer: tokenizer.into_bytes(),
    })
}

struct CandleBlock {
    ln1: (Tensor, Tensor),
    attn: (Tensor, Tensor),
    proj: (Tensor, Tensor),
    ln2: (Tensor, Tensor),
    fc: (Tensor, Tensor),
    fcp: (Tensor, Tensor),
}

struct CandleGpt2 {
    wte: Tensor,
    wpe: Tensor,
    blocks: Vec<CandleBlock>,
    lnf: (Tensor, Tensor),
    head_t: Tensor,
    heads: usize,
    eps: f32,
}

fn load_map(bytes: &[u8]) -> Res<HashMap<String, Tensor>> {
    Ok(candle_core::safetensors::load_buffer(bytes, &Device::Cpu)?)
}

fn take(m: &HashMap<String, Tensor>, name: &str) -> Res<Tensor> {
    Ok(m.get(name)
        .ok_or_else(|| format!("missing {name}"))?
        .to_dtype(DType::F32)?)
}

impl CandleGpt2 {
    fn load(bytes: &[u8], heads: usize, eps: f32) -> Res<Self> {
        let m = load_map(bytes)?;
        let pair = |p: &str| -> Res<(Tensor, Tensor)> {
            Ok((
                take(&m, &format!("{p}.weight"))?,
                take(&m, &format!("{p}.bias"))?,
            ))
        };
        let mut blocks = Vec::new();
        for l in 0.. {
            if !m.contains_key(&format!("h.{l}.ln_1.weight")) {
                break;
            }
            blocks.push(CandleBlock {
                ln1: pair(&format!("h.{l}.ln_1"))?,
                attn: pair(&format!("h.{l}.attn.c_attn"))?,
                proj: pair(&format!("h.{l}.attn.c_proj"))?,
                ln2: pair(&format!("h.{l}.ln_2"))?,
                fc: pair(&format!("h.{l}.mlp.c_fc"))?,
                fcp: pair(&format!("h.{l}.mlp.c_proj"))?,
            });
        }
        let wte = take(&m, "wte.weight")?;
        let head = match m.get("lm_head.weight") {
            Some(h) => h.clone(),
            None => wte.clone(),
        };
        Ok(CandleGpt2 {
            head_t: head.t()?.contiguous()?,
            wte,
            wpe: take(&m, "wpe.weight")?,
            blocks,
            lnf: pair("ln_f")?,
            heads,
            eps,
        })
    }

    fn linear(x: &Tensor, wb: &(Tensor, Tensor)) -> Res<Tensor> {
        Ok(x.matmul(&wb.0)?.broadcast_add(&wb.1)?)
    }

    fn ln(&self, x: &Tensor, wb: &(Tensor, Tensor)) -> Res<Tensor> {
        Ok(candle_nn::ops::layer_norm(x, &wb.0, &wb.1, self.eps)?)
    }

    /// One token at `pos`: logits, with the cache of each layer's keys and values grown.
    fn step(&self, id: u32, pos: usize, cache: &mut [Option<(Tensor, Tensor)>]) -> Res<Tensor> {
        let d = self.wte.dim(1)?;
        let hd = d / self.heads;
        let scale = 1.0 / (hd as f64).sqrt();
        let mut x = (self.wte.get(id as usize)? + self.wpe.get(pos)?)?.unsqueeze(0)?;
        for (b, kv) in self.blocks.iter().zip(cache.iter_mut()) {
            let h = self.ln(&x, &b.ln1)?;
            let qkv = Self::linear(&h, &b.attn)?;
            let split = |i: usize| -> Res<Tensor> {
                Ok(qkv.narrow(1, i * d, d)?.reshape((self.heads, 1, hd))?)
            };
            let (q, k, v) = (split(0)?, split(1)?, split(2)?);
            let (k, v) = match kv.take() {
                Some((kc, vc)) => (Tensor::cat(&[&kc, &k], 1)?, Tensor::cat(&[&vc, &v], 1)?),
                None => (k, v),
            };
            let att = (q.matmul(&k.t()?)? * scale)?;
            let att = candle_nn::ops::softmax_last_dim(&att)?;
            let out = att.matmul(&v)?.reshape((1, d))?;
            *kv = Some((k, v));
            x = (x + Self::linear(&out, &b.proj)?)?;
            let h2 = self.ln(&x, &b.ln2)?;
            let f = Self::linear(&h2, &b.fc)?.gelu()?;
            x = (x + Self::linear(&f, &b.fcp)?)?;
        }
        let h = self.ln(&x, &self.lnf)?;
        Ok(h.matmul(&self.head_t)?.squeeze(0)?)
    }

    fn generate(&self, prompt: &[u32], tokens: usize) -> Res<Vec<u32>> {
        let mut cache: Vec<Option<(Tensor, Tensor)>> = vec![None; self.blocks.len()];
        let mut logits = None;
        for (pos, &id) in prompt.iter().enumerate() {
            logits = Some(self.step(id, pos, &mut cache)?);
        }
        let mut out = Vec::with_capacity(tokens);
        let mut logits = logits.ok_or("empty prompt")?;
        for i in 0..tokens {
            let next = logits.argmax(D::Minus1)?.to_scalar::<u32>()?;
            out.push(next);
            if i + 1 < tokens {
                logits = self.step(next, prompt.len() + i, &mut cache)?;
            }
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------------
// MiniLM embeddings.

const SENTENCES: [&str; 8] = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The new movie is awesome and everyone should see it this weekend.",
    "In the beginning God created the heaven and the earth.",
    "Orrery checks inference by re-executing it on another machine and comparing hashes.",
    "The quick brown fox jumps over the lazy dog.",
    "How many embeddings per second can a CPU compute with a small sentence model?",
    "Deterministic floating point means a fixed order of operations everywhere.",
];

fn embed_bench(dir: &Path, threads: usize) -> Res<()> {
    let files = ModelFiles::load_dir(dir)?;
    let e = Embedder::load(&files.weights, &files.config, &files.tokenizer)?;
    let c = CandleBert::load(
        &files.weights,
        e.config().num_attention_heads,
        e.config().layer_norm_eps,
    )?;
    let texts: Vec<&str> = SENTENCES.iter().cycle().take(64).copied().collect();
    let ids: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| e.tokenizer().encode(t, true))
        .collect::<Result<_, _>>()?;
    let ours = e.embed(&texts, threads)?;
    let orrery = best_rate(texts.len(), || {
        e.embed(&texts, threads)?;
        Ok(())
    })?;
    let theirs = ids.iter().map(|i| c.embed(i)).collect::<Res<Vec<_>>>()?;
    let candle = best_rate(texts.len(), || {
        for i in &ids {
            c.embed(i)?;
        }
        Ok(())
    })?;
    report("embed, all-MiniLM-L6-v2 (~15 tok), emb/s", orrery, candle);
    let worst = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| a.vector.iter().zip(b).map(|(x, y)| x * y).sum::<f32>())
        .fold(1.0f32, f32::min);
    println!("    worst cosine orrery vs candle: {worst:.6}");
    Ok(())
}

struct CandleLayer {
    q: (Tensor, Tensor),
    k: (Tensor, Tensor),
    v: (Tensor, Tensor),
    ao: (Tensor, Tensor),
    ln1: (Tensor, Tensor),
    inter: (Tensor, Tensor),
    out: (Tensor, Tensor),
    ln2: (Tensor, Tensor),
}

struct CandleBert {
    word: Tensor,
    pos: Tensor,
    type0: Tensor,
    ln: (Tensor, Tensor),
    layers: Vec<CandleLayer>,
    heads: usize,
    eps: f32,
}

impl CandleBert {
    fn load(bytes: &[u8], heads: usize, eps: f32) -> Res<Self> {
        let m = load_map(bytes)?;
        let p = if m.contains_key("bert.embeddings.word_embeddings.weight") {
            "bert."
        } else {
            ""
        };
        let pair = |n: &str| -> Res<(Tensor, Tensor)> {
            Ok((
                take(&m, &format!("{p}{n}.weight"))?,
                take(&m, &format!("{p}{n}.bias"))?,
            ))
        };
        // Linear weights pre-transposed to [in, out] once, as a tuned implementation would.
        let lin = |n: &str| -> Res<(Tensor, Tensor)> {
            let (w, b) = pair(n)?;
            Ok((w.t()?.contiguous()?, b))
        };
        let mut layers = Vec::new();
        for l in 0.. {
            let n = |s: &str| format!("encoder.layer.{l}.{s}");
            if !m.contains_key(&format!("{p}{}", n("attention.self.query.weight"))) {
                break;
            }
            layers.push(CandleLayer {
                q: lin(&n("attention.self.query"))?,
                k: lin(&n("attention.self.key"))?,
                v: lin(&n("attention.self.value"))?,
                ao: lin(&n("attention.output.dense"))?,
                ln1: pair(&n("attention.output.LayerNorm"))?,
                inter: lin(&n("intermediate.dense"))?,
                out: lin(&n("output.dense"))?,
                ln2: pair(&n("output.LayerNorm"))?,
            });
        }
        Ok(CandleBert {
            word: take(&m, &format!("{p}embeddings.word_embeddings.weight"))?,
            pos: take(&m, &format!("{p}embeddings.position_embeddings.weight"))?,
            type0: take(&m, &format!("{p}embeddings.token_type_embeddings.weight"))?.get(0)?,
            ln: pair("embeddings.LayerNorm")?,
            layers,
            heads,
            eps,
        })
    }

    fn embed(&self, ids: &[u32]) -> Res<Vec<f32>> {
        let n = ids.len();
        let d = self.word.dim(1)?;
        let hd = d / self.heads;
        let scale = 1.0 / (hd as f64).sqrt();
        let idx = Tensor::new(ids, &Device::Cpu)?;
        let x = self
            .word
            .index_select(&idx, 0)?
            .broadcast_add(&self.type0)?
            .add(&self.pos.narrow(0, 0, n)?)?;
        let mut x = candle_nn::ops::layer_norm(&x, &self.ln.0, &self.ln.1, self.eps)?;
        let lin = |x: &Tensor, wb: &(Tensor, Tensor)| -> Res<Tensor> {
            Ok(x.matmul(&wb.0)?.broadcast_add(&wb.1)?)
        };
        let heads_of = |t: Tensor| -> Res<Tensor> {
            Ok(t.reshape((n, self.heads, hd))?
                .transpose(0, 1)?
                .contiguous()?)
        };
        for l in &self.layers {
            let q = heads_of(lin(&x, &l.q)?)?;
            let k = heads_of(lin(&x, &l.k)?)?;
            let v = heads_of(lin(&x, &l.v)?)?;
            let att = candle_nn::ops::softmax_last_dim(&(q.matmul(&k.t()?)? * scale)?)?;
            let ctx = att.matmul(&v)?.transpose(0, 1)?.reshape((n, d))?;
            let a = (lin(&ctx, &l.ao)? + &x)?;
            let x1 = candle_nn::ops::layer_norm(&a, &l.ln1.0, &l.ln1.1, self.eps)?;
            let h = lin(&x1, &l.inter)?.gelu_erf()?;
            let o = (lin(&h, &l.out)? + &x1)?;
            x = candle_nn::ops::layer_norm(&o, &l.ln2.0, &l.ln2.1, self.eps)?;
        }
        let mean = (x.sum(0)? / n as f64)?;
        let norm = mean.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?;
        Ok((mean / norm.max(1e-12) as f64)?.to_vec1::<f32>()?)
    }
}

/// The linear kernel alone, for profiling: GFLOP/s at decode shapes.
fn kernel_bench(threads: usize) -> Res<()> {
    use orrery_ml::infer::kernels::{PackedMatrix, linear};
    for (k, n) in [(384, 50257), (384, 1152), (384, 1536), (1536, 384)] {
        let mut rng = Rng::new(3);
        let w: Vec<f32> = (0..k * n).map(|_| rng.normal()).collect();
        let x: Vec<f32> = (0..k).map(|_| rng.normal()).collect();
        let packed = PackedMatrix::from_in_out(&w, k, n);
        let reps = (200_000_000 / (k * n)).max(3);
        for t in [1, threads] {
            let t0 = Instant::now();
            for _ in 0..reps {
                std::hint::black_box(linear(&x, 1, &packed, &[], t));
            }
            let s = t0.elapsed().as_secs_f64() / reps as f64;
            println!(
                "k={k} n={n} threads={t}: {:.3} ms, {:.2} GFLOP/s, {:.1} GB/s",
                s * 1e3,
                2.0 * (k * n) as f64 / s / 1e9,
                4.0 * (k * n) as f64 / s / 1e9
            );
        }
    }
    Ok(())
}
