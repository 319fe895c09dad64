//! all-MiniLM-L6-v2 through orrery-ml's embedder agrees with an independent float64 NumPy
//! implementation (`scripts/reference/minilm_reference.py`, fixture in `tests/fixtures/`),
//! and is bitwise the same on 1 and 2 threads.
//!
//! The weights are not in the repository: `scripts/fetch-models.sh` puts them in
//! `$ORRERY_MODELS` (default `<repo>/target/models`). Without them this test says "skipped" and
//! passes, unless `ORRERY_E2E=1` (as `.ci/run` sets), where it fails.

mod common;

use orrery_ml::infer::{Embedder, ModelFiles};
use std::path::PathBuf;

fn model_dir() -> Option<PathBuf> {
    orrery_ml::infer::files::reference_model_for_tests("all-minilm-l6-v2")
}

#[derive(serde::Deserialize)]
struct Reference {
    weights_sha256: String,
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
    vector: Vec<f64>,
}

fn cosine(a: &[f32], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * y).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn minilm_matches_the_float64_reference_and_is_thread_count_independent() {
    let Some(dir) = model_dir() else { return };
    let files = ModelFiles::load_dir(&dir).unwrap();
    let reference: Reference =
        serde_json::from_str(include_str!("fixtures/minilm-reference.json")).unwrap();
    assert_eq!(
        files.weights_hash().to_hex(),
        reference.weights_sha256,
        "fixture made from other weights"
    );
    let embedder = Embedder::load(&files.weights, &files.config, &files.tokenizer).unwrap();
    assert_eq!((embedder.dim(), embedder.max_tokens()), (384, 256));
    let texts: Vec<&str> = reference.cases.iter().map(|c| c.text.as_str()).collect();
    let one = embedder.embed(&texts, 1).unwrap();
    let two = embedder.embed(&texts, 2).unwrap();
    assert_eq!(one, two, "1 and 2 threads differ");
    let mut worst = 1.0f64;
    for (case, e) in reference.cases.iter().zip(&one) {
        assert_eq!(
            embedder.tokenizer().encode(&case.text, true).unwrap(),
            case.ids,
            "{:?}",
            case.text
        );
        assert_eq!(e.tokens as usize, case.ids.len());
        let cos = cosine(&e.vector, &case.vector);
        worst = worst.min(cos);
        assert!(
            cos >= 0.9999,
            "{:?}: cosine {cos} to the reference",
            case.text
        );
    }
    eprintln!("worst cosine to the float64 reference: {worst:.9}");
    // Sentences about the same thing are closer than unrelated ones.
    let e = embedder
        .embed(
            &[
                "A man is eating food.",
                "A man is eating a piece of bread.",
                "The stock market fell today.",
            ],
            1,
        )
        .unwrap();
    let sim = |a: usize, b: usize| -> f32 {
        e[a].vector
            .iter()
            .zip(&e[b].vector)
            .map(|(x, y)| x * y)
            .sum()
    };
    assert!(
        sim(0, 1) > sim(0, 2) + 0.2,
        "{} vs {}",
        sim(0, 1),
        sim(0, 2)
    );
    let long = "word ".repeat(300);
    let err = embedder.embed(&[long.as_str()], 1).unwrap_err();
    assert!(err.to_string().contains("at most 256"), "{err}");
}

/// all-MiniLM-L6-v2 with its linear layers on the GPU backend gives the CPU's embeddings bit
/// for bit. Skips without the model or without an adapter (unless `ORRERY_E2E=1` or
/// `ORRERY_GPU_TESTS=1`).
#[test]
fn gpu_minilm_embeddings_equal_the_cpu_bitwise() {
    let Some(dir) = model_dir() else { return };
    let Some(gpu) = common::gpu_or_skip("gpu_minilm_embeddings_equal_the_cpu_bitwise") else {
        return;
    };
    let files = ModelFiles::load_dir(&dir).unwrap();
    let cpu = Embedder::load(&files.weights, &files.config, &files.tokenizer).unwrap();
    let mut on_gpu = Embedder::load(&files.weights, &files.config, &files.tokenizer).unwrap();
    on_gpu.use_device(&gpu).unwrap();
    let texts = [
        "A man is eating food.",
        "The stock market fell today.",
        "Orrery pools idle GPUs into one market.",
    ];
    let bits = |e: Vec<orrery_ml::infer::Embedding>| {
        e.into_iter()
            .map(|x| (x.tokens, x.vector.into_iter().map(f32::to_bits).collect()))
            .collect::<Vec<(u32, Vec<u32>)>>()
    };
    assert_eq!(
        bits(on_gpu.embed(&texts, 1).unwrap()),
        bits(cpu.embed(&texts, 1).unwrap())
    );
}
