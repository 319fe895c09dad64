use super::*;

/// A tiny transformer cluster job: seconds for a whole run.
fn spec(workers: u32, inner_steps: u32, rounds: u32, compression: &str) -> ClusterSpec {
    let text = format!(
        r#"
seed = 5
steps = {steps}
batch_size = 4
seq_len = 24
grad_clip = 1.0
[model]
kind = "transformer"
vocab_size = 96
d_model = 32
n_layers = 1
n_heads = 4
context = 32
[data]
kind = "corpus"
[optimizer]
kind = "adamw"
lr = 0.003
[cluster]
workers = {workers}
inner_steps = {inner_steps}
rounds = {rounds}
compression = "{compression}"
"#,
        steps = inner_steps * rounds
    );
    ClusterSpec::from_toml(&text).unwrap()
}

/// Run every round with every worker; returns the final state and each worker's state.
fn run(job: &ClusterJob) -> (GlobalState, Vec<WorkerState>) {
    let mut g = job.initial();
    let n = job.spec().cluster.workers;
    let mut ws: Vec<WorkerState> = (0..n).map(|_| job.worker_initial()).collect();
    for r in 0..job.spec().cluster.rounds as u64 {
        let mut deltas = Vec::new();
        let mut losses = Vec::new();
        for w in 0..n {
            let out = job.worker_round(r, w, &g.weights, &ws[w as usize]).unwrap();
            // What travels is bytes: decode them as a peer would.
            deltas.push(job.decode_delta(out.delta.bytes(), r, w).unwrap());
            losses.push(out.mean_loss);
            ws[w as usize] = out.state;
        }
        job.outer_step(&mut g, &deltas, &losses).unwrap();
    }
    (g, ws)
}

#[test]
fn a_round_is_bitwise_the_same_on_any_thread_count_and_after_decoding() {
    let s = spec(3, 2, 2, "none");
    let one = ClusterJob::new(s.clone(), 1).unwrap();
    let two = ClusterJob::new(s, 2).unwrap();
    let (a, wa) = run(&one);
    let (b, wb) = run(&two);
    assert_eq!(a.hash(), b.hash());
    assert_eq!(wa, wb);
    assert_eq!(a.round, 2);
    // The state round-trips through its canonical encoding.
    assert_eq!(GlobalState::decode(&a.encode()).unwrap(), a);
    assert_eq!(WorkerState::decode(&wa[1].encode()).unwrap(), wa[1]);
}

#[test]
fn deltas_are_applied_in_worker_order_whatever_order_they_arrive_in() {
    let job = ClusterJob::new(spec(3, 1, 1, "none"), 1).unwrap();
    let g0 = job.initial();
    let w0 = job.worker_initial();
    let deltas: Vec<Delta> = (0..3)
        .map(|w| job.worker_round(0, w, &g0.weights, &w0).unwrap().delta)
        .collect();
    let mut a = g0.clone();
    job.outer_step(&mut a, &deltas, &[]).unwrap();
    let mut b = g0.clone();
    let reversed: Vec<Delta> = deltas.iter().rev().cloned().collect();
    job.outer_step(&mut b, &reversed, &[]).unwrap();
    assert_eq!(a.hash(), b.hash());
    // Different sets of accepted workers give different weights.
    let mut c = g0;
    job.outer_step(&mut c, &deltas[..2], &[]).unwrap();
    assert_ne!(a.hash(), c.hash());
}

#[test]
fn workers_train_on_disjoint_shards() {
    let job = ClusterJob::new(spec(4, 1, 1, "none"), 1).unwrap();
    let seq = job.spec().job.seq();
    let total = job.data().shard_len(seq, Shard::WHOLE);
    // Every position belongs to exactly one shard.
    let mut owner = vec![u32::MAX; total as usize];
    for w in 0..4 {
        let s = shard(w, 4);
        for x in 0..s.len(total) {
            let p = s.nth(x) as usize;
            assert_eq!(owner[p], u32::MAX, "position {p} in two shards");
            owner[p] = w;
        }
    }
    assert!(owner.iter().all(|&w| w < 4), "every position in a shard");
    assert_eq!(Shard::WHOLE.len(total), total);
    assert_eq!(Shard::WHOLE.nth(total - 1), total - 1);
    // Two workers' first rounds differ (different data), from the same weights.
    let g = job.initial();
    let a = job
        .worker_round(0, 0, &g.weights, &job.worker_initial())
        .unwrap();
    let b = job
        .worker_round(0, 1, &g.weights, &job.worker_initial())
        .unwrap();
    assert_ne!(a.delta.hash(), b.delta.hash());
}

#[test]
fn int8_deltas_are_four_times_smaller_and_carry_their_error_forward() {
    let plain = ClusterJob::new(spec(2, 2, 1, "none"), 1).unwrap();
    let q = ClusterJob::new(spec(2, 2, 1, "int8"), 1).unwrap();
    let g = plain.initial();
    let a = plain
        .worker_round(0, 0, &g.weights, &plain.worker_initial())
        .unwrap();
    let b = q
        .worker_round(0, 0, &g.weights, &q.worker_initial())
        .unwrap();
    let ratio = a.delta.bytes().len() as f64 / b.delta.bytes().len() as f64;
    assert!(ratio > 3.9, "ratio {ratio}");
    // The residual is what quantization lost: delta + residual = the exact pseudo-gradient.
    for i in 0..g.weights.tensors.len() {
        for ((exact, deq), res) in a
            .delta
            .values(i)
            .iter()
            .zip(b.delta.values(i))
            .zip(&b.state.residual.get(i).data)
        {
            assert!((exact - (deq + res)).abs() <= exact.abs() * 1e-6 + 1e-12);
        }
    }
    assert!(
        b.state
            .residual
            .tensors
            .iter()
            .any(|(_, t)| t.data.iter().any(|&v| v != 0.0))
    );
    // Decoding gives back exactly the values the sender applies.
    let d = q.decode_delta(b.delta.bytes(), 0, 0).unwrap();
    assert_eq!(d, b.delta);
}

#[test]
fn a_peer_delta_of_the_wrong_shape_round_or_worker_is_refused() {
    let job = ClusterJob::new(spec(2, 1, 2, "none"), 1).unwrap();
    let g = job.initial();
    let out = job
        .worker_round(0, 1, &g.weights, &job.worker_initial())
        .unwrap();
    let bytes = out.delta.bytes().to_vec();
    let err = |b: &[u8], r, w| job.decode_delta(b, r, w).unwrap_err().to_string();
    assert!(err(&bytes, 1, 1).contains("expected worker 1's for round 1"));
    assert!(err(&bytes, 0, 0).contains("worker 1's for round 0"));
    assert!(err(&bytes[..bytes.len() - 4], 0, 1).contains("truncated"));
    let mut extra = bytes.clone();
    extra.push(0);
    assert!(err(&extra, 0, 1).contains("trailing"));
    // The first tensor's value count, wrong.
    let mut shape = bytes.clone();
    shape[25] ^= 1;
    assert!(err(&shape, 0, 1).contains("values, the model has"));
    // A NaN among the values.
    let mut nan = bytes.clone();
    let at = nan.len() - 4;
    nan[at..].copy_from_slice(&f32::NAN.to_le_bytes());
    assert!(err(&nan, 0, 1).contains("out of range"));
    // A delta of another model (another d_model) does not decode.
    let other = ClusterJob::new(
        ClusterSpec::from_toml(
            &spec(2, 1, 2, "none")
                .to_toml()
                .unwrap()
                .replace("d_model = 32", "d_model = 16"),
        )
        .unwrap(),
        1,
    )
    .unwrap();
    assert!(other.decode_delta(&bytes, 0, 1).is_err());
    // The outer step refuses duplicates, another round's delta, and an empty round.
    let mut g2 = g.clone();
    let two = [out.delta.clone(), out.delta.clone()];
    assert!(
        job.outer_step(&mut g2, &two, &[])
            .unwrap_err()
            .to_string()
            .contains("two deltas")
    );
    assert!(
        job.outer_step(&mut g2, &[], &[])
            .unwrap_err()
            .to_string()
            .contains("no accepted")
    );
    job.outer_step(&mut g2, std::slice::from_ref(&out.delta), &[])
        .unwrap();
    assert!(
        job.outer_step(&mut g2, std::slice::from_ref(&out.delta), &[])
            .unwrap_err()
            .to_string()
            .contains("for round 0, the cluster is at round 1")
    );
    assert_eq!(g2.round, 1, "a refused step changes nothing");
}

#[test]
fn bad_cluster_specs_are_refused_with_the_reason() {
    let base = spec(2, 2, 2, "none").to_toml().unwrap();
    let err = |text: &str| ClusterSpec::from_toml(text).unwrap_err().to_string();
    assert!(
        err(&base.replace("inner_steps = 2", "inner_steps = 0"))
            .contains("inner_steps (H) must be between 1")
    );
    assert!(err(&base.replace("workers = 2", "workers = 0")).contains("cluster.workers"));
    assert!(err(&base.replace("steps = 4", "steps = 5")).contains("rounds × inner_steps"));
    assert!(err(&base.replace("[cluster]", "[clusters]")).contains("needs a [cluster] table"));
    assert!(
        err(&base.replace("rounds = 2", "rounds = 2\nspeed = 3")).contains("unknown field `speed`")
    );
    // More workers than the data can be split for.
    let tiny = base
        .replace("kind = \"corpus\"", "kind = \"corpus\"\ntext = \"In the beginning God created the heaven and the earth. And the earth was without form.\"")
        .replace("workers = 2", "workers = 64");
    let e = ClusterJob::new(ClusterSpec::from_toml(&tiny).unwrap(), 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("split the training data too finely"), "{e}");
    // A worker with too little memory is refused, naming both sizes.
    let job = ClusterJob::new(spec(2, 2, 2, "none"), 1).unwrap();
    let need = job.worker_memory_bytes();
    assert!(need > 0);
    job.check_worker_memory(need).unwrap();
    let e = job.check_worker_memory(need - 1).unwrap_err().to_string();
    assert!(
        e.contains(&need.to_string()) && e.contains(&(need - 1).to_string()),
        "{e}"
    );
}

#[test]
fn a_round_without_a_worker_still_completes_and_a_replacement_can_join() {
    let job = ClusterJob::new(spec(3, 1, 2, "int8"), 1).unwrap();
    let mut g = job.initial();
    let ws: Vec<WorkerState> = (0..3).map(|_| job.worker_initial()).collect();
    // Worker 2 dies in round 0: the round completes with workers 0 and 1.
    let outs: Vec<RoundOutput> = (0..2)
        .map(|w| job.worker_round(0, w, &g.weights, &ws[w as usize]).unwrap())
        .collect();
    let deltas: Vec<Delta> = outs.iter().map(|o| o.delta.clone()).collect();
    job.outer_step(&mut g, &deltas, &[outs[0].mean_loss, outs[1].mean_loss])
        .unwrap();
    assert_eq!(g.round, 1);
    // A replacement for worker 2 joins from the round's weights with a fresh state.
    let r = job
        .worker_round(1, 2, &g.weights, &job.worker_initial())
        .unwrap();
    assert_eq!(r.delta.round(), 1);
    assert_eq!(r.delta.worker(), 2);
}
