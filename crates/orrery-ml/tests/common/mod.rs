//! Shared helpers for the integration tests.
#![allow(dead_code)]

use orrery_ml::spec::JobSpec;

pub fn spec(file: &str) -> JobSpec {
    let path = format!("{}/../../workloads/ml/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    JobSpec::from_toml(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A tiny transformer job: a few seconds for many runs.
pub const TINY_LM: &str = r#"
seed = 5
steps = 6
batch_size = 4
seq_len = 24
grad_clip = 1.0
[model]
kind = "transformer"
vocab_size = 96
d_model = 32
n_layers = 2
n_heads = 4
context = 32
[data]
kind = "corpus"
[optimizer]
kind = "adamw"
lr = 0.003
weight_decay = 0.01
[generate]
prompt = "In the beginning"
tokens = 20
temperature = 0.9
seed = 11
"#;

/// A tiny MLP job with SGD momentum.
pub const TINY_MLP: &str = r#"
seed = 2
steps = 8
batch_size = 37
[model]
kind = "mlp"
inputs = 2
hidden = [70, 33]
classes = 4
activation = "gelu"
[data]
kind = "spirals"
classes = 4
points_per_class = 50
seed = 3
[optimizer]
kind = "sgd"
lr = 0.05
momentum = 0.9
weight_decay = 0.001
"#;

pub fn parse(toml: &str) -> JobSpec {
    JobSpec::from_toml(toml).unwrap()
}

/// A GPU device for the `gpu_*` tests, or `None` after printing why the test is skipped.
/// With `ORRERY_GPU_TESTS=1` (CI, after installing lavapipe) no adapter is a failure.
pub fn gpu_or_skip(test: &str) -> Option<orrery_ml::Device> {
    match orrery_ml::Device::gpu() {
        Ok(d) => Some(d),
        Err(e) if std::env::var("ORRERY_GPU_TESTS").as_deref() == Ok("1") => {
            panic!("{test}: ORRERY_GPU_TESTS=1 but {e} (install mesa-vulkan-drivers)")
        }
        Err(e) => {
            eprintln!("{test}: skipped, {e} (set ORRERY_GPU_TESTS=1 to make this a failure)");
            None
        }
    }
}
