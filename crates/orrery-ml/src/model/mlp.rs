//! A multi-layer perceptron classifier: `Linear → act → … → Linear → logits`, trained with
//! cross-entropy.
//!
//! Parameters, in order: `layers.{i}.weight` (`in × out`, so `y = x·W + b`) and
//! `layers.{i}.bias` (`out`) for each layer `i`.

use super::check_dim;
use crate::device::Device;
use crate::error::{MlError, Result};
use crate::ops::{self, Trans};
use crate::rng::Rng;
use crate::tensor::{ParamSet, Tensor};
use serde::{Deserialize, Serialize};

/// Hidden-layer non-linearity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// `max(x, 0)`.
    #[default]
    Relu,
    /// GELU (tanh approximation).
    Gelu,
}

/// MLP dimensions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpConfig {
    /// Features per input row.
    pub inputs: usize,
    /// Width of each hidden layer.
    pub hidden: Vec<usize>,
    /// Number of classes (width of the output layer).
    pub classes: usize,
    /// Hidden activation.
    #[serde(default)]
    pub activation: Activation,
}

impl MlpConfig {
    fn widths(&self) -> Vec<usize> {
        let mut w = vec![self.inputs];
        w.extend(&self.hidden);
        w.push(self.classes);
        w
    }

    pub(crate) fn validate(&self) -> Result<()> {
        check_dim("mlp inputs", self.inputs)?;
        for (i, &h) in self.hidden.iter().enumerate() {
            check_dim(&format!("mlp hidden[{i}]"), h)?;
        }
        check_dim("mlp classes", self.classes)?;
        if self.classes < 2 {
            return Err(MlError::BadConfig(
                "mlp classes must be at least 2 for a classifier".into(),
            ));
        }
        Ok(())
    }

    pub(crate) fn template(&self) -> ParamSet {
        let w = self.widths();
        let mut tensors = Vec::new();
        for i in 0..w.len() - 1 {
            tensors.push((
                format!("layers.{i}.weight"),
                Tensor::zeros(&[w[i], w[i + 1]]),
            ));
            tensors.push((format!("layers.{i}.bias"), Tensor::zeros(&[w[i + 1]])));
        }
        ParamSet { tensors }
    }

    /// He-uniform weights (`±√(6/fan_in)`), zero biases.
    pub(crate) fn init_params(&self, seed: u64) -> ParamSet {
        let mut p = self.template();
        for (idx, (_, t)) in p.tensors.iter_mut().enumerate() {
            if t.shape.len() == 2 {
                let bound = libm::sqrtf(6.0 / t.shape[0] as f32);
                let mut rng = Rng::derive(seed, idx as u64);
                for v in &mut t.data {
                    *v = rng.uniform_sym(bound);
                }
            }
        }
        p
    }

    pub(crate) fn forward_macs(&self, rows: usize) -> u64 {
        let w = self.widths();
        let per_row: usize = w.windows(2).map(|p| p[0] * p[1]).sum();
        (rows * per_row) as u64
    }

    /// Class logits (`rows × classes`) for `x`.
    pub fn logits(&self, params: &ParamSet, x: &[f32], threads: usize) -> Vec<f32> {
        match self.logits_on(&Device::Cpu, params, x, threads) {
            Ok(l) => l,
            Err(e) => unreachable!("the CPU path has no device errors: {e}"),
        }
    }

    /// [`Self::logits`] on `dev`.
    pub fn logits_on(
        &self,
        dev: &Device,
        params: &ParamSet,
        x: &[f32],
        threads: usize,
    ) -> Result<Vec<f32>> {
        Ok(self.forward(dev, params, x, threads)?.0)
    }

    /// Returns the logits and the per-layer pre-activations and inputs.
    #[allow(clippy::type_complexity)]
    fn forward(
        &self,
        dev: &Device,
        params: &ParamSet,
        x: &[f32],
        threads: usize,
    ) -> Result<(Vec<f32>, Vec<Vec<f32>>, Vec<Vec<f32>>)> {
        let w = self.widths();
        let rows = x.len() / self.inputs;
        let layers = w.len() - 1;
        let mut inputs = Vec::with_capacity(layers);
        let mut pre = Vec::with_capacity(layers);
        let mut h = x.to_vec();
        for l in 0..layers {
            let (fi, fo) = (w[l], w[l + 1]);
            let mut z = vec![0.0f32; rows * fo];
            dev.matmul(
                &h,
                Trans::No,
                &params.get(2 * l).data,
                Trans::No,
                (rows, fi, fo),
                &mut z,
                threads,
            )?;
            ops::add_row_broadcast(&mut z, &params.get(2 * l + 1).data);
            inputs.push(h);
            h = if l + 1 < layers {
                match self.activation {
                    Activation::Relu => ops::relu(&z),
                    Activation::Gelu => dev.gelu(&z)?,
                }
            } else {
                z.clone()
            };
            pre.push(z);
        }
        Ok((h, inputs, pre))
    }

    pub(crate) fn loss_and_grads(
        &self,
        dev: &Device,
        params: &ParamSet,
        x: &[f32],
        y: &[u32],
        threads: usize,
    ) -> Result<(f32, ParamSet)> {
        let w = self.widths();
        let rows = y.len();
        let layers = w.len() - 1;
        let (logits, inputs, pre) = self.forward(dev, params, x, threads)?;
        let (loss, mut dz) = dev.cross_entropy(&logits, y, self.classes)?;
        let mut grads = params.zeros_like();
        for l in (0..layers).rev() {
            let (fi, fo) = (w[l], w[l + 1]);
            if l + 1 < layers {
                dz = match self.activation {
                    Activation::Relu => ops::relu_backward(&pre[l], &dz),
                    Activation::Gelu => dev.gelu_backward(&pre[l], &dz)?,
                };
            }
            // dW = hᵀ·dz, db = Σ_rows dz, dh = dz·Wᵀ.
            dev.matmul(
                &inputs[l],
                Trans::Yes,
                &dz,
                Trans::No,
                (fi, rows, fo),
                &mut grads.get_mut(2 * l).data,
                threads,
            )?;
            ops::sum_rows_into(&dz, fo, &mut grads.get_mut(2 * l + 1).data);
            if l > 0 {
                let mut dh = vec![0.0f32; rows * fi];
                dev.matmul(
                    &dz,
                    Trans::No,
                    &params.get(2 * l).data,
                    Trans::Yes,
                    (rows, fo, fi),
                    &mut dh,
                    threads,
                )?;
                dz = dh;
            }
        }
        Ok((loss, grads))
    }
}
