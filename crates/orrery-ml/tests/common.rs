//! Shared helpers for the integration tests.
#![allow(dead_code)]

use orrery_ml::spec::JobSpec;

pub fn spec(file: &str) -> JobSpec {
    let path = format!("{}/../../workloads/ml/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    JobSpec::from_toml(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}
