//! DiLoCo-style cluster training against one machine on the same tokens, on the shipped text.
//!
//! `cargo run --release -p orrery-ml --example cluster_quality -- [workers] [inner_steps] [rounds] [none|int8]`
//!
//! Prints each round's mean training loss and validation loss, the final validation loss of
//! the cluster and of one machine that trained on the same number of tokens (the same steps at
//! N× the batch: synchronous data parallelism's trajectory), and the bytes each worker sent
//! against data-parallel training that all-reduces gradients every step.

use orrery_ml::cluster::{ClusterJob, ClusterSpec, WorkerState};
use orrery_ml::workload::TrainWorkload;
use orrery_types::workload::{Start, run};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: u32| args.get(i).map_or(d, |a| a.parse().expect("a number"));
    let (n, h, r) = (arg(1, 4), arg(2, 20), arg(3, 15));
    let compression = args.get(4).map_or("none", String::as_str);
    let mut spec = ClusterSpec::from_toml(&orrery_ml::cluster::example_spec(n, h, r, compression))
        .expect("spec");
    // Outer optimizer overrides, for sweeps: ORRERY_OUTER_LR, ORRERY_OUTER_MOMENTUM.
    if let Ok(v) = std::env::var("ORRERY_OUTER_LR") {
        spec.cluster.outer_lr = v.parse().expect("ORRERY_OUTER_LR");
    }
    if let Ok(v) = std::env::var("ORRERY_OUTER_MOMENTUM") {
        spec.cluster.outer_momentum = v.parse().expect("ORRERY_OUTER_MOMENTUM");
    }
    let set_lr = |o: &mut orrery_ml::optim::OptimizerConfig, var: &str| {
        if let (Ok(v), orrery_ml::optim::OptimizerConfig::Adamw { lr, .. }) =
            (std::env::var(var), o)
        {
            *lr = v.parse().expect("a learning rate");
        }
    };
    // Inner learning-rate override for the workers, ORRERY_INNER_LR; the one machine's is
    // ORRERY_BASELINE_LR (both default to the spec's).
    set_lr(&mut spec.job.optimizer, "ORRERY_INNER_LR");
    spec.validate().expect("spec");
    let threads = std::thread::available_parallelism().map_or(1, |p| p.get());
    let job = ClusterJob::new(spec.clone(), threads).expect("job");
    let t0 = std::time::Instant::now();
    let mut g = job.initial();
    let mut ws: Vec<WorkerState> = (0..n).map(|_| job.worker_initial()).collect();
    let mut sent_per_worker = 0u64;
    println!("round  train-loss  val-loss");
    for round in 0..r as u64 {
        let mut deltas = Vec::new();
        let mut losses = Vec::new();
        for w in 0..n {
            let out = job
                .worker_round(round, w, &g.weights, &ws[w as usize])
                .expect("round");
            // Worker `w` sends its delta to each of the N − 1 others; summed over the
            // workers here, divided by N below.
            sent_per_worker += out.delta.bytes().len() as u64 * (n as u64 - 1);
            losses.push(out.mean_loss);
            deltas.push(out.delta);
            ws[w as usize] = out.state;
        }
        job.outer_step(&mut g, &deltas, &losses)
            .expect("outer step");
        let val = job.evaluate(&g.weights).expect("eval").loss;
        println!(
            "{:>5}  {:>10.4}  {:>8.4}",
            round + 1,
            g.last_loss.unwrap(),
            val
        );
    }
    let cluster_secs = t0.elapsed().as_secs_f64();
    let cluster_val = job.evaluate(&g.weights).expect("eval").loss;

    // One machine, the same tokens: the same number of steps at N× the batch.
    let mut single = spec.job.clone();
    single.batch_size *= n as usize;
    set_lr(&mut single.optimizer, "ORRERY_BASELINE_LR");
    let mut w = TrainWorkload::new(single.clone(), threads).expect("single");
    let t1 = std::time::Instant::now();
    let rec = run(&mut w, Start::Fresh, |_, _, _| true).unwrap().unwrap();
    let single_secs = t1.elapsed().as_secs_f64();
    let st = w.decode_state(&rec.final_state).unwrap();
    let single_val = w.evaluate(&st.params).unwrap().loss;

    let sent_per_worker = sent_per_worker / n as u64;
    let params = spec.job.model.template().numel() as u64;
    // Ring all-reduce of f32 gradients every step: each worker sends 2(N−1)/N of them.
    let dp_per_worker = (h as u64 * r as u64) * 2 * (n as u64 - 1) * params * 4 / n as u64;
    println!(
        "cluster: N = {n}, H = {h}, R = {r}, {compression}: validation loss {cluster_val:.4} ({cluster_secs:.1} s)"
    );
    println!(
        "one machine, same tokens ({} steps × batch {}): validation loss {single_val:.4} ({single_secs:.1} s)",
        single.steps, single.batch_size
    );
    println!(
        "cluster / one machine: {:.4} ({:+.2}%)",
        cluster_val / single_val,
        (cluster_val / single_val - 1.0) * 100.0
    );
    println!(
        "bytes sent per worker: cluster {sent_per_worker}, data-parallel all-reduce {dp_per_worker}: {:.1}× less (H = {h})",
        dp_per_worker as f64 / sent_per_worker.max(1) as f64
    );
}
