//! Fixtures shared by the cluster's integration tests: a small cluster job, member keys and
//! loopback addresses, worker configs, and the in-process reference run.
#![allow(dead_code)]

use commonware_cryptography::Signer as _;
use commonware_cryptography::ed25519::PrivateKey;
use orrery_cluster::WorkerConfig;
use orrery_ml::cluster::{ClusterJob, ClusterSpec, GlobalState};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub fn job(workers: u32, rounds: u32) -> Arc<ClusterJob> {
    let text = format!(
        r#"
seed = 9
steps = {steps}
batch_size = 4
seq_len = 16
[model]
kind = "transformer"
vocab_size = 96
d_model = 16
n_layers = 1
n_heads = 2
context = 16
[data]
kind = "corpus"
[optimizer]
kind = "adamw"
lr = 0.003
[cluster]
workers = {workers}
inner_steps = 2
rounds = {rounds}
compression = "int8"
"#,
        steps = 2 * rounds
    );
    Arc::new(ClusterJob::new(ClusterSpec::from_toml(&text).unwrap(), 1).unwrap())
}

/// Keys and loopback addresses for `n ≤ 5` members, on ports unlikely to collide with other
/// tests: each test process (nextest runs one per test) owns 20 ports from its pid, 5 per
/// `slot` (0..4), so adjacent pids never share a port.
pub fn members(n: u32, slot: u16) -> Vec<(PrivateKey, SocketAddr)> {
    assert!(n <= 5 && slot < 4);
    let base = 30_000 + (std::process::id() % 1_500) as u16 * 20 + slot * 5;
    (0..n)
        .map(|i| {
            (
                PrivateKey::from_seed(1000 + i as u64),
                SocketAddr::from(([127, 0, 0, 1], base + i as u16)),
            )
        })
        .collect()
}

pub fn config(all: &[(PrivateKey, SocketAddr)], i: usize, timeout: Duration) -> WorkerConfig {
    WorkerConfig {
        index: i as u32,
        key: all[i].0.clone(),
        listen: all[i].1,
        members: all.iter().map(|(k, a)| (k.public_key(), *a)).collect(),
        round_timeout: timeout,
        start: None,
        linger: Duration::ZERO,
    }
}

/// The reference: every worker's round in one process, every delta applied.
pub fn reference(job: &ClusterJob, skip_from: Option<(u32, u64)>) -> GlobalState {
    let n = job.spec().cluster.workers;
    let mut g = job.initial();
    let mut ws: Vec<_> = (0..n).map(|_| job.worker_initial()).collect();
    for r in 0..job.spec().cluster.rounds as u64 {
        let mut deltas = Vec::new();
        for w in 0..n {
            if skip_from.is_some_and(|(sw, sr)| sw == w && r >= sr) {
                continue;
            }
            let out = job.worker_round(r, w, &g.weights, &ws[w as usize]).unwrap();
            deltas.push(out.delta);
            ws[w as usize] = out.state;
        }
        job.outer_step(&mut g, &deltas, &[]).unwrap();
    }
    g
}
