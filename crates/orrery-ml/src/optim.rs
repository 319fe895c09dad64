//! Optimizers: SGD (with optional momentum) and AdamW, plus global-norm gradient clipping.
//!
//! Updates are element-wise in parameter order, with the same operation sequence on every
//! machine. AdamW's bias corrections use `libm::powf`; weight decay is decoupled and applies to
//! matrices (rank ≥ 2) only, not to biases or layer-norm parameters.

use crate::device::Device;
use crate::error::Result;
use crate::tensor::ParamSet;
use serde::{Deserialize, Serialize};

/// Which optimizer, with its hyper-parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// `v = momentum·v + g; p -= lr·(v + weight_decay·p)`.
    Sgd {
        /// Learning rate.
        lr: f32,
        /// Momentum (0 disables it and the velocity slot).
        #[serde(default)]
        momentum: f32,
        /// Decoupled weight decay for matrices.
        #[serde(default)]
        weight_decay: f32,
    },
    /// Adam with decoupled weight decay (Loshchilov & Hutter).
    Adamw {
        /// Learning rate.
        lr: f32,
        /// First-moment decay.
        #[serde(default = "default_beta1")]
        beta1: f32,
        /// Second-moment decay.
        #[serde(default = "default_beta2")]
        beta2: f32,
        /// Denominator guard.
        #[serde(default = "default_eps")]
        eps: f32,
        /// Decoupled weight decay for matrices.
        #[serde(default)]
        weight_decay: f32,
    },
}

fn default_beta1() -> f32 {
    0.9
}
fn default_beta2() -> f32 {
    0.999
}
fn default_eps() -> f32 {
    1e-8
}

impl OptimizerConfig {
    /// A description of the first impossible hyper-parameter, if any.
    pub fn problem(&self) -> Option<String> {
        let (lr, wd) = match *self {
            OptimizerConfig::Sgd {
                lr,
                momentum,
                weight_decay,
            } => {
                if !(0.0..1.0).contains(&momentum) {
                    return Some(format!("sgd momentum must be in [0, 1), got {momentum}"));
                }
                (lr, weight_decay)
            }
            OptimizerConfig::Adamw {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                if !(0.0..1.0).contains(&beta1) || !(0.0..1.0).contains(&beta2) {
                    return Some(format!(
                        "adamw betas must be in [0, 1), got beta1 = {beta1}, beta2 = {beta2}"
                    ));
                }
                if !(eps > 0.0 && eps.is_finite()) {
                    return Some(format!("adamw eps must be positive, got {eps}"));
                }
                (lr, weight_decay)
            }
        };
        if !(lr > 0.0 && lr.is_finite()) {
            return Some(format!(
                "learning rate must be positive and finite, got {lr}"
            ));
        }
        if !(wd >= 0.0 && wd.is_finite()) {
            return Some(format!("weight_decay must be >= 0, got {wd}"));
        }
        None
    }

    /// The optimizer's state slots for `params`, zeroed: none or one velocity for SGD, the two
    /// moments for AdamW.
    pub fn init_slots(&self, params: &ParamSet) -> Vec<ParamSet> {
        match *self {
            OptimizerConfig::Sgd { momentum: 0.0, .. } => vec![],
            OptimizerConfig::Sgd { .. } => vec![params.zeros_like()],
            OptimizerConfig::Adamw { .. } => vec![params.zeros_like(), params.zeros_like()],
        }
    }

    /// Apply one update for optimizer step `t` (1-based) in place.
    pub fn apply(&self, t: u64, params: &mut ParamSet, grads: &ParamSet, slots: &mut [ParamSet]) {
        match *self {
            OptimizerConfig::Sgd {
                lr,
                momentum,
                weight_decay,
            } => {
                for i in 0..params.tensors.len() {
                    let decay = if params.get(i).shape.len() >= 2 {
                        weight_decay
                    } else {
                        0.0
                    };
                    let g = &grads.get(i).data;
                    if let Some(vel) = slots.first_mut() {
                        let v = &mut vel.get_mut(i).data;
                        let p = &mut params.get_mut(i).data;
                        for ((p, v), g) in p.iter_mut().zip(v.iter_mut()).zip(g) {
                            *v = momentum * *v + g;
                            *p -= lr * (*v + decay * *p);
                        }
                    } else {
                        let p = &mut params.get_mut(i).data;
                        for (p, g) in p.iter_mut().zip(g) {
                            *p -= lr * (g + decay * *p);
                        }
                    }
                }
            }
            OptimizerConfig::Adamw {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                let (ms, vs) = slots.split_at_mut(1);
                for i in 0..params.tensors.len() {
                    let decay = if params.get(i).shape.len() >= 2 {
                        weight_decay
                    } else {
                        0.0
                    };
                    let hyper = adamw_scalars(lr, beta1, beta2, eps, decay, t);
                    adamw_update(
                        &mut params.get_mut(i).data,
                        &mut ms[0].get_mut(i).data,
                        &mut vs[0].get_mut(i).data,
                        &grads.get(i).data,
                        hyper,
                    );
                }
            }
        }
    }
}

/// AdamW's scalars for step `t`, as every device uses them:
/// `[lr, beta1, beta2, eps, 1 − beta1, 1 − beta2, 1 − beta1^t, 1 − beta2^t, decay]`.
pub(crate) fn adamw_scalars(
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    decay: f32,
    t: u64,
) -> [f32; 9] {
    let tf = t as f32;
    let bc1 = 1.0 - libm::powf(beta1, tf);
    let bc2 = 1.0 - libm::powf(beta2, tf);
    [
        lr,
        beta1,
        beta2,
        eps,
        1.0 - beta1,
        1.0 - beta2,
        bc1,
        bc2,
        decay,
    ]
}

/// The AdamW update of one tensor on the CPU, element by element (the GPU kernel
/// `shaders/adamw.wgsl` follows the same operation order):
/// `m = beta1 m + (1 − beta1) g;  v = beta2 v + (1 − beta2) g²;
/// p −= lr (m/bc1 / (sqrt(v/bc2) + eps) + decay p)`.
pub(crate) fn adamw_update(p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], h: [f32; 9]) {
    let [lr, beta1, beta2, eps, omb1, omb2, bc1, bc2, decay] = h;
    for (((p, m), v), &g) in p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
        *m = beta1 * *m + omb1 * g;
        *v = beta2 * *v + omb2 * (g * g);
        let m_hat = *m / bc1;
        let v_hat = *v / bc2;
        *p -= lr * (m_hat / (libm::sqrtf(v_hat) + eps) + decay * *p);
    }
}

impl OptimizerConfig {
    /// [`Self::apply`] on `device`: AdamW runs as one GPU kernel per weight-decay group
    /// (matrices, then vectors; each element's update is independent, so grouping changes
    /// nothing), with the scalars (`1 − beta`, bias corrections) computed here exactly as
    /// the CPU path computes them. SGD runs on the host on every device.
    pub fn apply_on(
        &self,
        device: &Device,
        t: u64,
        params: &mut ParamSet,
        grads: &ParamSet,
        slots: &mut [ParamSet],
    ) -> Result<()> {
        let (
            Device::Gpu(_),
            OptimizerConfig::Adamw {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
            },
        ) = (device, self)
        else {
            self.apply(t, params, grads, slots);
            return Ok(());
        };
        for matrices in [true, false] {
            let idx: Vec<usize> = (0..params.tensors.len())
                .filter(|&i| (params.get(i).shape.len() >= 2) == matrices)
                .collect();
            if idx.is_empty() {
                continue;
            }
            let gather = |set: &ParamSet| -> Vec<f32> {
                idx.iter()
                    .flat_map(|&i| set.get(i).data.iter().copied())
                    .collect()
            };
            let (mut p, mut m, mut v) = (gather(params), gather(&slots[0]), gather(&slots[1]));
            let decay = if matrices { *weight_decay } else { 0.0 };
            let hyper = adamw_scalars(*lr, *beta1, *beta2, *eps, decay, t);
            device.adamw(&mut p, &mut m, &mut v, &gather(grads), hyper)?;
            let mut at = 0;
            for &i in &idx {
                let n = params.get(i).len();
                params.get_mut(i).data.copy_from_slice(&p[at..at + n]);
                slots[0].get_mut(i).data.copy_from_slice(&m[at..at + n]);
                slots[1].get_mut(i).data.copy_from_slice(&v[at..at + n]);
                at += n;
            }
        }
        Ok(())
    }
}

/// Scale `grads` so their global L2 norm is at most `max_norm`; returns the norm before
/// clipping. The sum of squares runs over tensors in order, elements in order.
pub fn clip_grad_norm(grads: &mut ParamSet, max_norm: f32) -> f32 {
    let mut sq = 0.0f32;
    for (_, t) in &grads.tensors {
        for &g in &t.data {
            sq += g * g;
        }
    }
    let norm = libm::sqrtf(sq);
    if norm > max_norm {
        let scale = max_norm / norm;
        for (_, t) in &mut grads.tensors {
            for g in &mut t.data {
                *g *= scale;
            }
        }
    }
    norm
}
