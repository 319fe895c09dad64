//! Training one model across many machines with little communication, DiLoCo-style, and every
//! round checkable.
//!
//! # Specification
//!
//! A cluster job is an ordinary training [`JobSpec`] (model, data, inner AdamW optimizer, batch
//! size, seed) plus a [`ClusterConfig`]: `workers` (N), `inner_steps` (H), `rounds` (R) and the
//! outer optimizer (learning rate η, Nesterov momentum μ), with optional int8 compression of
//! what workers exchange. The spec's `steps` must equal R × H: the inner steps each worker takes.
//!
//! **Shards.** Worker `w` trains only on [`Shard`] `w` of N: a contiguous slice of the training
//! split. Its batch for inner step `k = r·H + j` (round `r`, `j < H`) is
//! `train_batch_in(seed_w, k, …, shard_w)` with `seed_w` derived from the job's seed and `w`.
//!
//! **Round `r`, worker `w`** ([`ClusterJob::worker_round`]), a pure function of
//! (job, `r`, `w`, the global weights `θ_r`, the worker's own state):
//! 1. from `θ_r`, H AdamW steps on its shard, with the worker's optimizer moments carried over
//!    from its previous round (step counter `k + 1` for bias correction);
//! 2. its pseudo-gradient `Δ_w = θ_r − θ_end`, element by element;
//! 3. with compression, `x = Δ_w + e_w` (its error-feedback residual) is quantized per tensor
//!    to int8 with scale `max|x| / 127` and rounded to nearest-even; what it sends is the
//!    dequantized `q · scale` and it keeps `e_w ← x − q · scale` for the next round.
//!
//! What it sends is a [`Delta`]: canonical bytes naming the round and the worker, whose hash is
//! what the worker commits on chain. A verifier that re-executes the round from `θ_r` and the
//! worker's committed state gets the same bytes, bit for bit.
//!
//! **Outer step** ([`ClusterJob::outer_step`]), the same on every worker: the accepted deltas,
//! in increasing worker order, are summed element by element in that order and divided by
//! their count (`Δ̄`); then `m ← μ·m + Δ̄` and `θ_(r+1) = θ_r − η·(Δ̄ + μ·m)` (Nesterov). The
//! set of accepted deltas is whatever the round kept — a worker that missed the round's
//! deadline, or whose delta was caught wrong, is left out and the rest still make a round. All
//! workers then hold bitwise-identical weights, checked by [`GlobalState::hash`].
//!
//! **What must hold:** every function here is deterministic in its inputs and independent of
//! the thread count; a delta from a peer is decoded against the model's shapes, round and
//! worker before it is used, and refused with [`MlError::BadDelta`] otherwise.

use crate::data::{Dataset, Shard};
use crate::error::{MlError, Result};
use crate::spec::JobSpec;
use crate::state::TrainState;
use crate::tensor::ParamSet;
use crate::workload::{Evaluation, TrainWorkload};
use orrery_types::Hash;
use serde::{Deserialize, Serialize};

mod delta;
#[cfg(test)]
mod tests;

pub use delta::{Compression, Delta};

/// Most workers in one cluster job: every worker receives every other's delta each round, so
/// the per-worker traffic grows with N (see `docs/ml.md`, "Training across machines").
pub const MAX_WORKERS: u32 = 64;
/// Most inner steps per round: a round is one checkable unit of work, and a verifier
/// re-executes a whole round, so it must stay affordable to re-run.
pub const MAX_INNER_STEPS: u32 = 10_000;
/// Most rounds in one job.
pub const MAX_ROUNDS: u32 = 100_000;

/// The cluster part of a cluster training job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Number of workers (N).
    pub workers: u32,
    /// Inner optimizer steps per round (H).
    pub inner_steps: u32,
    /// Rounds (R).
    pub rounds: u32,
    /// Outer learning rate η (DiLoCo's default 0.7).
    #[serde(default = "default_outer_lr")]
    pub outer_lr: f32,
    /// Outer Nesterov momentum μ (DiLoCo's default 0.9).
    #[serde(default = "default_outer_momentum")]
    pub outer_momentum: f32,
    /// How deltas travel: `none` (f32) or `int8` (with error feedback).
    #[serde(default)]
    pub compression: Compression,
}

fn default_outer_lr() -> f32 {
    0.7
}
fn default_outer_momentum() -> f32 {
    0.9
}

impl ClusterConfig {
    /// The first problem with this config, if any.
    pub fn problem(&self) -> Option<String> {
        if self.workers == 0 || self.workers > MAX_WORKERS {
            return Some(format!(
                "cluster.workers must be between 1 and {MAX_WORKERS}, got {}",
                self.workers
            ));
        }
        if self.inner_steps == 0 || self.inner_steps > MAX_INNER_STEPS {
            return Some(format!(
                "cluster.inner_steps (H) must be between 1 and {MAX_INNER_STEPS}, got {}",
                self.inner_steps
            ));
        }
        if self.rounds == 0 || self.rounds > MAX_ROUNDS {
            return Some(format!(
                "cluster.rounds must be between 1 and {MAX_ROUNDS}, got {}",
                self.rounds
            ));
        }
        if !(self.outer_lr > 0.0 && self.outer_lr.is_finite()) {
            return Some(format!(
                "cluster.outer_lr must be positive and finite, got {}",
                self.outer_lr
            ));
        }
        if !(0.0..1.0).contains(&self.outer_momentum) {
            return Some(format!(
                "cluster.outer_momentum must be in [0, 1), got {}",
                self.outer_momentum
            ));
        }
        None
    }
}

/// A cluster training job as written by a requester: a training spec with a `[cluster]` table.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterSpec {
    /// The training job each worker runs (its `steps` is R × H).
    pub job: JobSpec,
    /// Workers, rounds and the outer optimizer.
    pub cluster: ClusterConfig,
}

impl ClusterSpec {
    /// Parse and check a TOML spec: a training spec plus a `[cluster]` table.
    pub fn from_toml(text: &str) -> Result<ClusterSpec> {
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| MlError::BadSpec(e.to_string()))?;
        let cluster = table.remove("cluster").ok_or_else(|| {
            MlError::BadSpec(
                "a cluster job needs a [cluster] table (workers, inner_steps, rounds)".into(),
            )
        })?;
        let cluster: ClusterConfig = cluster
            .try_into()
            .map_err(|e: toml::de::Error| MlError::BadSpec(format!("[cluster]: {e}")))?;
        let job = JobSpec::from_toml(
            &toml::to_string(&table).map_err(|e| MlError::BadSpec(e.to_string()))?,
        )?;
        let spec = ClusterSpec { job, cluster };
        spec.validate()?;
        Ok(spec)
    }

    /// The spec as TOML.
    pub fn to_toml(&self) -> Result<String> {
        let mut table: toml::Table =
            toml::Table::try_from(&self.job).map_err(|e| MlError::BadSpec(e.to_string()))?;
        table.insert(
            "cluster".into(),
            toml::Value::try_from(&self.cluster).map_err(|e| MlError::BadSpec(e.to_string()))?,
        );
        toml::to_string(&table).map_err(|e| MlError::BadSpec(e.to_string()))
    }

    /// Check the job, the cluster config, and that they agree.
    pub fn validate(&self) -> Result<()> {
        self.job.validate()?;
        if let Some(p) = self.cluster.problem() {
            return Err(MlError::BadSpec(p));
        }
        let want = self.cluster.rounds as u64 * self.cluster.inner_steps as u64;
        if self.job.steps != want {
            return Err(MlError::BadSpec(format!(
                "steps must be rounds × inner_steps = {} × {} = {want} (the inner steps each worker takes), got {}",
                self.cluster.rounds, self.cluster.inner_steps, self.job.steps
            )));
        }
        Ok(())
    }
}

/// What every worker holds between rounds: the round, the global weights and the outer
/// momentum. Encoded as a [`TrainState`] (`step` = rounds done, `params` = weights, one slot =
/// momentum), so its hash is a checkpoint like any training state's.
#[derive(Clone, Debug, PartialEq)]
pub struct GlobalState {
    /// Rounds completed.
    pub round: u64,
    /// Mean training loss of the last round's accepted workers (none before round 0).
    pub last_loss: Option<f32>,
    /// The model's weights θ_r.
    pub weights: ParamSet,
    /// The outer momentum m.
    pub momentum: ParamSet,
}

impl GlobalState {
    /// The canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        TrainState {
            step: self.round,
            last_loss: self.last_loss,
            params: self.weights.clone(),
            slots: vec![self.momentum.clone()],
        }
        .encode()
    }

    /// Parse canonical bytes.
    pub fn decode(bytes: &[u8]) -> Result<GlobalState> {
        let st = TrainState::decode(bytes)?;
        let [momentum]: [ParamSet; 1] = st
            .slots
            .try_into()
            .map_err(|_| MlError::BadState("a cluster state holds exactly one slot".into()))?;
        Ok(GlobalState {
            round: st.step,
            last_loss: st.last_loss,
            weights: st.params,
            momentum,
        })
    }

    /// The checkpoint hash of [`GlobalState::encode`]: equal on every worker after every round.
    pub fn hash(&self) -> Hash {
        orrery_types::workload::checkpoint(&self.encode())
    }
}

/// What one worker carries from round to round: its inner optimizer's moments and its
/// compression residual (zeros without compression). Encoded as a [`TrainState`] (`step` =
/// inner steps taken, `params` = residual, slots = optimizer moments).
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerState {
    /// Inner steps taken so far.
    pub inner_steps: u64,
    /// Mean training loss of its last round.
    pub last_loss: Option<f32>,
    /// Error-feedback residual e_w.
    pub residual: ParamSet,
    /// The inner optimizer's slots.
    pub slots: Vec<ParamSet>,
}

impl WorkerState {
    /// The canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        TrainState {
            step: self.inner_steps,
            last_loss: self.last_loss,
            params: self.residual.clone(),
            slots: self.slots.clone(),
        }
        .encode()
    }

    /// Parse canonical bytes.
    pub fn decode(bytes: &[u8]) -> Result<WorkerState> {
        let st = TrainState::decode(bytes)?;
        Ok(WorkerState {
            inner_steps: st.step,
            last_loss: st.last_loss,
            residual: st.params,
            slots: st.slots,
        })
    }

    /// The checkpoint hash of [`WorkerState::encode`].
    pub fn hash(&self) -> Hash {
        orrery_types::workload::checkpoint(&self.encode())
    }
}

/// What a worker's round produced.
#[derive(Clone, Debug)]
pub struct RoundOutput {
    /// What it sends to its peers (and whose hash it commits).
    pub delta: Delta,
    /// Its state for the next round.
    pub state: WorkerState,
    /// Mean training loss over its H inner steps.
    pub mean_loss: f32,
    /// Compute units, as the single-machine workload counts them (H steps).
    pub cost: u64,
}

/// A loaded cluster job: the spec, its data, and the functions every worker and verifier runs.
#[derive(Clone, Debug)]
pub struct ClusterJob {
    spec: ClusterSpec,
    inner: TrainWorkload,
}

impl ClusterJob {
    /// Load the data and check that every worker's shard holds at least one training example.
    pub fn new(spec: ClusterSpec, threads: usize) -> Result<ClusterJob> {
        spec.validate()?;
        let inner = TrainWorkload::new(spec.job.clone(), threads)?;
        let n = spec.cluster.workers;
        for w in 0..n {
            if inner.data().shard_len(spec.job.seq(), shard(w, n)) == 0 {
                return Err(MlError::BadSpec(format!(
                    "{n} workers split the training data too finely: worker {w}'s shard holds no training example"
                )));
            }
        }
        Ok(ClusterJob { spec, inner })
    }

    /// The spec.
    pub fn spec(&self) -> &ClusterSpec {
        &self.spec
    }

    /// The data set.
    pub fn data(&self) -> &Dataset {
        self.inner.data()
    }

    /// Round 0's state: weights from the job's seed, zero momentum.
    pub fn initial(&self) -> GlobalState {
        let weights = self.spec.job.model.init_params(self.spec.job.seed);
        GlobalState {
            round: 0,
            last_loss: None,
            momentum: weights.zeros_like(),
            weights,
        }
    }

    /// A worker's state before its first round (also that of a replacement that joins late:
    /// fresh moments, no residual).
    pub fn worker_initial(&self) -> WorkerState {
        let template = self.spec.job.model.template();
        WorkerState {
            inner_steps: 0,
            last_loss: None,
            residual: template.zeros_like(),
            slots: self.spec.job.optimizer.init_slots(&template),
        }
    }

    /// Bytes of memory a worker needs, from shapes alone: weights, gradients, the inner
    /// optimizer's slots, the residual, the outer momentum and the delta (each one copy of the
    /// parameters), plus the activations of one batch and the data set. A worker whose machine
    /// has less is refused the job (see [`ClusterJob::check_worker_memory`]).
    pub fn worker_memory_bytes(&self) -> u64 {
        let params = self.spec.job.model.template().numel() as u64 * 4;
        let slots = self
            .spec
            .job
            .optimizer
            .init_slots(&self.spec.job.model.template())
            .len() as u64;
        let batch = self
            .data()
            .train_batch(0, 0, self.spec.job.batch_size, self.spec.job.seq());
        // Activations kept for the backward pass: every stored value is the output of at least
        // 16 multiply-adds in these models (no layer is narrower than 16), so a quarter of
        // the forward pass's FLOPs in bytes is an upper bound.
        let activations = self.spec.job.model.forward_flops(&batch) / 2 / 16 * 4;
        let data = match self.data() {
            Dataset::Text { train, val } => (train.len() + val.len()) as u64 * 4,
            Dataset::Classification { train_x, val_x, .. } => {
                (train_x.len() + val_x.len()) as u64 * 8
            }
        };
        params * (6 + slots) + activations + data
    }

    /// Refuse a worker whose machine has `ram_bytes` when the job needs more.
    pub fn check_worker_memory(&self, ram_bytes: u64) -> Result<()> {
        let need = self.worker_memory_bytes();
        if need > ram_bytes {
            return Err(MlError::BadSpec(format!(
                "a worker needs {need} bytes of memory for this model and shard, the machine has {ram_bytes}"
            )));
        }
        Ok(())
    }

    /// The data seed of worker `w`.
    fn worker_seed(&self, w: u32) -> u64 {
        self.spec
            .job
            .seed
            .wrapping_add((w as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// Worker `w`'s round `round` from the global weights and its own state (see the module
    /// docs). Deterministic and thread-count independent.
    pub fn worker_round(
        &self,
        round: u64,
        w: u32,
        weights: &ParamSet,
        state: &WorkerState,
    ) -> Result<RoundOutput> {
        let cfg = &self.spec.cluster;
        let job = &self.spec.job;
        if w >= cfg.workers || round >= cfg.rounds as u64 {
            return Err(MlError::BadSpec(format!(
                "worker {w} round {round} is outside the job's {} workers × {} rounds",
                cfg.workers, cfg.rounds
            )));
        }
        let h = cfg.inner_steps as u64;
        let mut params = weights.clone().conform_to(&job.model.template())?;
        let mut slots = state.slots.clone();
        let mut loss_sum = 0.0f64;
        let mut cost = 0u64;
        for j in 0..h {
            let k = round * h + j;
            let batch = self.data().train_batch_in(
                self.worker_seed(w),
                k,
                job.batch_size,
                job.seq(),
                shard(w, cfg.workers),
            );
            let loss = self
                .inner
                .optimizer_step(k, &batch, &mut params, &mut slots)?;
            loss_sum += loss as f64;
            cost += job.model.step_cost(&batch);
        }
        let mut pseudo = weights.clone();
        for (i, (_, t)) in pseudo.tensors.iter_mut().enumerate() {
            for (d, p) in t.data.iter_mut().zip(&params.get(i).data) {
                *d -= p;
            }
        }
        let (delta, residual) = Delta::compress(round, w, cfg.compression, pseudo, &state.residual);
        let mean_loss = (loss_sum / h as f64) as f32;
        Ok(RoundOutput {
            delta,
            state: WorkerState {
                inner_steps: state.inner_steps + h,
                last_loss: Some(mean_loss),
                residual,
                slots,
            },
            mean_loss,
            cost,
        })
    }

    /// The outer step: apply the accepted deltas (any order given; they are applied in
    /// increasing worker order) to `g`, which moves to the next round. `losses` are the
    /// accepted workers' mean losses, for the record. An empty round is refused: with nobody's
    /// delta there is nothing to apply, and the caller keeps the round open or ends the job.
    pub fn outer_step(&self, g: &mut GlobalState, deltas: &[Delta], losses: &[f32]) -> Result<()> {
        if deltas.is_empty() {
            return Err(MlError::BadDelta(format!(
                "round {} has no accepted delta",
                g.round
            )));
        }
        let mut order: Vec<&Delta> = deltas.iter().collect();
        order.sort_by_key(|d| d.worker());
        for pair in order.windows(2) {
            if pair[0].worker() == pair[1].worker() {
                return Err(MlError::BadDelta(format!(
                    "two deltas from worker {} in round {}",
                    pair[0].worker(),
                    g.round
                )));
            }
        }
        for d in &order {
            if d.round() != g.round {
                return Err(MlError::BadDelta(format!(
                    "worker {}'s delta is for round {}, the cluster is at round {}",
                    d.worker(),
                    d.round(),
                    g.round
                )));
            }
        }
        let count = order.len() as f32;
        let (lr, mu) = (self.spec.cluster.outer_lr, self.spec.cluster.outer_momentum);
        for i in 0..g.weights.tensors.len() {
            let n = g.weights.get(i).data.len();
            let mut avg = vec![0.0f32; n];
            for d in &order {
                let v = d.values(i);
                if v.len() != n {
                    return Err(MlError::BadDelta(format!(
                        "worker {}'s delta has {} values for tensor {i}, the model has {n}",
                        d.worker(),
                        v.len()
                    )));
                }
                for (a, x) in avg.iter_mut().zip(v) {
                    *a += x;
                }
            }
            let m = &mut g.momentum.get_mut(i).data;
            let wts = &mut g.weights.get_mut(i).data;
            for ((wt, m), a) in wts.iter_mut().zip(m.iter_mut()).zip(&avg) {
                let a = a / count;
                *m = mu * *m + a;
                let step = a + mu * *m;
                *wt -= lr * step;
            }
        }
        if let Some(name) = g.weights.first_non_finite() {
            return Err(MlError::NonFinite {
                step: g.round,
                what: format!("weight `{name}` after the outer step"),
            });
        }
        g.round += 1;
        g.last_loss = (!losses.is_empty())
            .then(|| (losses.iter().map(|&l| l as f64).sum::<f64>() / losses.len() as f64) as f32);
        Ok(())
    }

    /// Validation loss of `weights`, as the single-machine workload measures it.
    pub fn evaluate(&self, weights: &ParamSet) -> Result<Evaluation> {
        self.inner.evaluate(weights)
    }

    /// Decode a peer's delta for round `round` from worker `w` against this job's model.
    pub fn decode_delta(&self, bytes: &[u8], round: u64, w: u32) -> Result<Delta> {
        Delta::decode(bytes, &self.spec.job.model.template(), round, w)
    }
}

/// Worker `w`'s shard of `n`.
pub fn shard(w: u32, n: u32) -> Shard {
    Shard { index: w, count: n }
}

/// The cluster job the docs, the example and the quality test measure: the shipped
/// character-level transformer on the built-in text, N workers × H inner steps × R rounds,
/// batch 8 per worker.
pub fn example_spec(workers: u32, inner_steps: u32, rounds: u32, compression: &str) -> String {
    format!(
        r#"name = "genesis-lm-cluster"
seed = 1
steps = {steps}
batch_size = 8
seq_len = 64
grad_clip = 1.0

[model]
kind = "transformer"
vocab_size = 96
d_model = 64
n_layers = 2
n_heads = 4
context = 64
ff_mult = 4

[data]
kind = "corpus"
validation_fraction = 0.1

[optimizer]
kind = "adamw"
lr = 0.003
weight_decay = 0.01

[cluster]
workers = {workers}
inner_steps = {inner_steps}
rounds = {rounds}
compression = "{compression}"
"#,
        steps = inner_steps as u64 * rounds as u64
    )
}
