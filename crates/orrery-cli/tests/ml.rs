//! `orrery ml`: train, run and refuse mismatched weights, from the command line.

use std::path::Path;
use std::process::Command;

const SPIRALS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../workloads/ml/spirals-mlp.toml"
);
const LM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../workloads/ml/genesis-lm.toml"
);

fn orrery(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_orrery"))
        .args(args)
        .output()
        .unwrap()
}

fn train(out: &Path, threads: &str) -> serde_json::Value {
    let o = orrery(&[
        "ml",
        "train",
        SPIRALS,
        "--json",
        "--threads",
        threads,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn train_is_reproducible_across_thread_counts_and_infer_uses_the_weights() {
    let dir = tempfile::tempdir().unwrap();
    let (w1, w2) = (
        dir.path().join("one.safetensors"),
        dir.path().join("two.safetensors"),
    );
    let one = train(&w1, "1");
    let two = train(&w2, "2");
    assert_eq!(one["checkpoint_root"], two["checkpoint_root"]);
    assert_eq!(
        std::fs::read(&w1).unwrap(),
        std::fs::read(&w2).unwrap(),
        "weights differ by thread count"
    );
    assert!(
        one["validation_accuracy"].as_f64().unwrap() >= 0.95,
        "{one}"
    );

    let o = orrery(&["ml", "infer", SPIRALS, "--weights", w1.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("% correct"), "{text}");
}

#[test]
fn weights_for_another_model_are_refused_with_both_configs_named() {
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path().join("mlp.safetensors");
    train(&w, "1");
    let o = Command::new(env!("CARGO_BIN_EXE_orrery"))
        .args(["ml", "infer", LM, "--weights", w.to_str().unwrap()])
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("do not match the model config"), "{err}");
    assert!(err.contains("transformer") && err.contains("mlp"), "{err}");
}
