//! Where the operators run: the CPU reference ([`crate::ops`]) or a GPU through wgpu.
//!
//! # Specification
//!
//! A [`Device`] is chosen once per job and passed to the models, the optimizer and the
//! workloads. Every operator the models use has a GPU kernel (`shaders/*.wgsl`) written to give
//! **the CPU reference's bits**, not merely close values:
//!
//! - one invocation per output element (or per row, for row-wise operators), reducing in the
//!   CPU loop's index order; no tree reductions, no atomics, no shared-memory partial sums;
//! - no multiply fused into an add: every product that feeds an add goes through an opaque
//!   bit-XOR with a zero the compiler cannot see (`pm` in `shaders/prelude.wgsl`);
//! - `exp`, `expm1`, `tanh` and `log` are the `libm` crate's f32 algorithms, ported line by line;
//!   `sqrt` and division are the device's own, which IEEE-754 requires to be correctly rounded
//!   but WGSL allows not to be — which is why equality is *measured* per device class
//!   ([`Device::class`]) and not assumed (see `docs/ml.md`, "GPU backend").
//!
//! Operators on the GPU: matrix products (all transposes), GELU and its gradient, row softmax,
//! cross-entropy (row losses summed on the host in row order), layer norm and its gradients,
//! embedding lookup and gradient, causal attention and its gradient, and the AdamW update.
//! Element-wise additions (bias, residual), ReLU, gradient clipping and SGD stay on the host:
//! they are one rounding per element (or a host-side sequential reduction) and equal
//! everywhere.
//!
//! A GPU fault (a buffer over the device's limits, a lost device) is an
//! [`MlError::DeviceOutOfMemory`] or [`MlError::Device`]: a host failure, never a job result.

mod check;
mod gpu;

pub use gpu::GpuContext;

use crate::error::{MlError, Result};
use crate::ops::{self, AttnShape, LayerNormCache, Trans};
use gpu::{In, Out, Resident};
use std::sync::Arc;

/// The device class of the CPU reference path.
pub const CPU_CLASS: &str = "cpu-reference";

/// Where a job's operators run.
#[derive(Clone, Debug, Default)]
pub enum Device {
    /// The CPU reference path ([`crate::ops`]).
    #[default]
    Cpu,
    /// A GPU through wgpu (Vulkan, Metal or DX12).
    Gpu(Arc<GpuContext>),
}

/// How [`Device::detect`] went: the device, and a line for the log saying which and why.
#[derive(Debug)]
pub struct Detected {
    /// The device chosen.
    pub device: Device,
    /// "GPU backend: <adapter>" or "no GPU adapter found; ML jobs run on the CPU path (...)".
    pub message: String,
}

impl Device {
    /// Open a GPU if one is usable, else the CPU path, with a message saying which.
    pub fn detect() -> Detected {
        match GpuContext::open() {
            Ok(ctx) => Detected {
                message: format!(
                    "GPU backend: {} ({:?}, driver {} {})",
                    ctx.adapter_name(),
                    ctx.info().backend,
                    ctx.info().driver,
                    ctx.info().driver_info
                ),
                device: Device::Gpu(Arc::new(ctx)),
            },
            Err(e) => Detected {
                device: Device::Cpu,
                message: format!("no GPU adapter found; ML jobs run on the CPU path ({e})"),
            },
        }
    }

    /// Open a GPU (see [`GpuContext::open`]), or say why none could be opened.
    pub fn gpu() -> Result<Device> {
        GpuContext::open().map(|g| Device::Gpu(Arc::new(g)))
    }

    /// Whether this is a GPU.
    pub fn is_gpu(&self) -> bool {
        matches!(self, Device::Gpu(_))
    }

    /// The device class whose results this device reproduces bit for bit: `cpu-reference` for
    /// the CPU path, and for a GPU `gpu:<backend>:<vendor id>:<driver>` — results are
    /// promised equal only within a class until a class is measured equal to the reference.
    pub fn class(&self) -> String {
        match self {
            Device::Cpu => CPU_CLASS.to_string(),
            Device::Gpu(ctx) => gpu_class(ctx.info()),
        }
    }

    /// A short human name: "cpu" or the adapter's name.
    pub fn name(&self) -> String {
        match self {
            Device::Cpu => "cpu".into(),
            Device::Gpu(ctx) => ctx.adapter_name().to_string(),
        }
    }

    /// [`ops::matmul`] on this device: `C = op(A)·op(B)`, overwriting `C`.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul(
        &self,
        a: &[f32],
        ta: Trans,
        b: &[f32],
        tb: Trans,
        (m, k, n): (usize, usize, usize),
        c: &mut [f32],
        threads: usize,
    ) -> Result<()> {
        let Device::Gpu(g) = self else {
            ops::matmul(a, ta, b, tb, m, k, n, c, threads);
            return Ok(());
        };
        assert_eq!(a.len(), m * k, "matmul: A has the wrong length");
        assert_eq!(b.len(), k * n, "matmul: B has the wrong length");
        assert_eq!(c.len(), m * n, "matmul: C has the wrong length");
        let params = [
            u(m)?,
            u(k)?,
            u(n)?,
            (ta == Trans::Yes) as u32,
            (tb == Trans::Yes) as u32,
        ];
        let out = g.run(
            "matmul",
            m * n,
            &params,
            &[bytes(a), bytes(b)],
            &[Out::Zeroed(m * n)],
        )?;
        c.copy_from_slice(&out[0]);
        Ok(())
    }

    /// [`ops::gelu`] on this device.
    pub fn gelu(&self, x: &[f32]) -> Result<Vec<f32>> {
        match self {
            Device::Cpu => Ok(ops::gelu(x)),
            Device::Gpu(g) => one(g.run(
                "gelu",
                x.len(),
                &[0],
                &[bytes(x), bytes(&[])],
                &[Out::Zeroed(x.len())],
            )?),
        }
    }

    /// [`ops::gelu_backward`] on this device.
    pub fn gelu_backward(&self, x: &[f32], dy: &[f32]) -> Result<Vec<f32>> {
        match self {
            Device::Cpu => Ok(ops::gelu_backward(x, dy)),
            Device::Gpu(g) => one(g.run(
                "gelu",
                x.len(),
                &[1],
                &[bytes(x), bytes(dy)],
                &[Out::Zeroed(x.len())],
            )?),
        }
    }

    /// [`ops::softmax_rows`] on this device.
    pub fn softmax_rows(&self, x: &[f32], cols: usize) -> Result<Vec<f32>> {
        match self {
            Device::Cpu => Ok(ops::softmax_rows(x, cols)),
            Device::Gpu(g) => one(g.run(
                "softmax",
                x.len() / cols.max(1),
                &[u(cols)?],
                &[bytes(x)],
                &[Out::Zeroed(x.len())],
            )?),
        }
    }

    /// [`ops::cross_entropy`] on this device: the row losses are computed per row on the
    /// GPU and summed here in row order, as the CPU loop does.
    pub fn cross_entropy(
        &self,
        logits: &[f32],
        targets: &[u32],
        classes: usize,
    ) -> Result<(f32, Vec<f32>)> {
        let Device::Gpu(g) = self else {
            return Ok(ops::cross_entropy(logits, targets, classes));
        };
        let rows = targets.len();
        assert_eq!(logits.len(), rows * classes, "cross_entropy: shape");
        let inv_rows = 1.0 / rows as f32;
        let mut out = g.run(
            "cross_entropy",
            rows,
            &[u(classes)?, inv_rows.to_bits()],
            &[bytes(logits), bytemuck::cast_slice(targets)],
            &[Out::Zeroed(logits.len()), Out::Zeroed(rows)],
        )?;
        let mut total = 0.0f32;
        for l in &out[1] {
            total += l;
        }
        Ok((total * inv_rows, out.swap_remove(0)))
    }

    /// [`ops::layer_norm`] on this device.
    pub fn layer_norm(
        &self,
        x: &[f32],
        gamma: &[f32],
        beta: &[f32],
        eps: f32,
    ) -> Result<(Vec<f32>, LayerNormCache)> {
        let Device::Gpu(g) = self else {
            return Ok(ops::layer_norm(x, gamma, beta, eps));
        };
        let dim = gamma.len();
        let rows = x.len() / dim;
        let inv_dim = 1.0 / dim as f32;
        let mut out = g.run(
            "layer_norm",
            rows,
            &[u(dim)?, inv_dim.to_bits(), eps.to_bits()],
            &[bytes(x), bytes(gamma), bytes(beta)],
            &[
                Out::Zeroed(x.len()),
                Out::Zeroed(x.len()),
                Out::Zeroed(rows),
            ],
        )?;
        let rstd = out.pop().unwrap_or_default();
        let xhat = out.pop().unwrap_or_default();
        let y = out.pop().unwrap_or_default();
        Ok((y, LayerNormCache { xhat, rstd }))
    }

    /// [`ops::layer_norm_backward`] on this device: returns `dx`, adds into `dgamma`, `dbeta`.
    pub fn layer_norm_backward(
        &self,
        cache: &LayerNormCache,
        gamma: &[f32],
        dy: &[f32],
        dgamma: &mut [f32],
        dbeta: &mut [f32],
    ) -> Result<Vec<f32>> {
        let Device::Gpu(g) = self else {
            return Ok(ops::layer_norm_backward(cache, gamma, dy, dgamma, dbeta));
        };
        let dim = gamma.len();
        let rows = dy.len() / dim;
        let inv_dim = 1.0 / dim as f32;
        let dx = g.run(
            "layer_norm_dx",
            rows,
            &[u(dim)?, inv_dim.to_bits()],
            &[
                bytes(&cache.xhat),
                bytes(&cache.rstd),
                bytes(gamma),
                bytes(dy),
            ],
            &[Out::Zeroed(dy.len())],
        )?;
        let dp = g.run(
            "layer_norm_dparams",
            dim,
            &[u(dim)?, u(rows)?],
            &[bytes(&cache.xhat), bytes(dy), bytes(dgamma), bytes(dbeta)],
            &[Out::Zeroed(dim), Out::Zeroed(dim)],
        )?;
        dgamma.copy_from_slice(&dp[0]);
        dbeta.copy_from_slice(&dp[1]);
        one(dx)
    }

    /// [`ops::embedding`] on this device.
    pub fn embedding(&self, ids: &[u32], table: &[f32], dim: usize) -> Result<Vec<f32>> {
        match self {
            Device::Cpu => Ok(ops::embedding(ids, table, dim)),
            Device::Gpu(g) => one(g.run(
                "embedding",
                ids.len() * dim,
                &[u(dim)?],
                &[bytemuck::cast_slice(ids), bytes(table)],
                &[Out::Zeroed(ids.len() * dim)],
            )?),
        }
    }

    /// [`ops::embedding_backward`] on this device: adds into `dtable`.
    pub fn embedding_backward(
        &self,
        ids: &[u32],
        dy: &[f32],
        dim: usize,
        dtable: &mut [f32],
    ) -> Result<()> {
        let Device::Gpu(g) = self else {
            ops::embedding_backward(ids, dy, dim, dtable);
            return Ok(());
        };
        let out = g.run(
            "embedding_backward",
            dtable.len(),
            &[u(dim)?, u(ids.len())?],
            &[bytemuck::cast_slice(ids), bytes(dy), bytes(dtable)],
            &[Out::Zeroed(dtable.len())],
        )?;
        dtable.copy_from_slice(&out[0]);
        Ok(())
    }

    /// [`ops::attention_forward`] on this device: the output and the probabilities.
    pub fn attention_forward(
        &self,
        qkv: &[f32],
        s: AttnShape,
        threads: usize,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let Device::Gpu(g) = self else {
            return Ok(ops::attention_forward(qkv, s, threads));
        };
        let d = s.heads * s.head_dim;
        assert_eq!(qkv.len(), s.batch * s.seq * 3 * d, "attention: qkv shape");
        let mut out = g.run(
            "attention",
            s.batch * s.heads * s.seq,
            &attn_params(s)?,
            &[bytes(qkv)],
            &[
                Out::Zeroed(s.batch * s.seq * d),
                Out::Zeroed(s.batch * s.heads * s.seq * s.seq),
            ],
        )?;
        let probs = out.pop().unwrap_or_default();
        Ok((out.pop().unwrap_or_default(), probs))
    }

    /// [`ops::attention_backward`] on this device: the gradient with respect to `qkv`.
    pub fn attention_backward(
        &self,
        qkv: &[f32],
        probs: &[f32],
        dout: &[f32],
        s: AttnShape,
        threads: usize,
    ) -> Result<Vec<f32>> {
        let Device::Gpu(g) = self else {
            return Ok(ops::attention_backward(qkv, probs, dout, s, threads));
        };
        let params = attn_params(s)?;
        let ds = g.run(
            "attention_ds",
            s.batch * s.heads * s.seq,
            &params,
            &[bytes(qkv), bytes(probs), bytes(dout)],
            &[Out::Zeroed(probs.len())],
        )?;
        one(g.run(
            "attention_dqkv",
            qkv.len(),
            &params,
            &[bytes(qkv), bytes(probs), bytes(dout), bytes(&ds[0])],
            &[Out::Zeroed(qkv.len())],
        )?)
    }

    /// One AdamW update of `p`, `m`, `v` (in place) on this device, with the scalars the CPU
    /// path computes: `hyper = [lr, beta1, beta2, eps, 1 − beta1, 1 − beta2, bc1, bc2, decay]`.
    pub(crate) fn adamw(
        &self,
        p: &mut [f32],
        m: &mut [f32],
        v: &mut [f32],
        g: &[f32],
        hyper: [f32; 9],
    ) -> Result<()> {
        let Device::Gpu(ctx) = self else {
            return Err(MlError::Device(
                "adamw kernel called on the CPU path".into(),
            ));
        };
        let params: Vec<u32> = hyper.iter().map(|h| h.to_bits()).collect();
        let mut out = ctx.run(
            "adamw",
            p.len(),
            &params,
            &[bytes(g)],
            &[Out::Init(p), Out::Init(m), Out::Init(v)],
        )?;
        v.copy_from_slice(&out.pop().unwrap_or_default());
        m.copy_from_slice(&out.pop().unwrap_or_default());
        p.copy_from_slice(&out.pop().unwrap_or_default());
        Ok(())
    }

    /// Keep the `k × n` matrix `w` (row-major, `y = x · W`) on this device for
    /// [`GpuMatrix::matmul`]: uploaded once, used by every product after. `None` on the CPU
    /// path (nothing to upload); `Err(DeviceOutOfMemory)` naming the size when the GPU cannot
    /// hold it.
    pub fn upload_matrix(
        &self,
        what: &str,
        w: &[f32],
        k: usize,
        n: usize,
    ) -> Result<Option<GpuMatrix>> {
        let Device::Gpu(g) = self else {
            return Ok(None);
        };
        assert_eq!(w.len(), k * n, "upload_matrix: W has the wrong length");
        Ok(Some(GpuMatrix {
            ctx: g.clone(),
            data: Arc::new(g.resident(what, w)?),
            k,
            n,
        }))
    }

    /// Allocate a buffer of `bytes` on the device (for the out-of-memory test and the agent's
    /// self-check): `Err(DeviceOutOfMemory)` naming the size when the device cannot hold it.
    pub fn probe_allocation(&self, bytes: u64) -> Result<()> {
        match self {
            Device::Cpu => Ok(()),
            Device::Gpu(g) => g.probe(bytes),
        }
    }
}

/// A `k × n` weight matrix kept on a GPU (see [`Device::upload_matrix`]): products with it
/// upload only the activations.
#[derive(Clone, Debug)]
pub struct GpuMatrix {
    ctx: Arc<GpuContext>,
    data: Arc<Resident>,
    k: usize,
    n: usize,
}

impl GpuMatrix {
    /// `x · W` for `rows` rows of width `k`: the GPU's `matmul` kernel, bitwise
    /// [`ops::matmul`] (one multiply and one add per term, `p` increasing from `0.0`).
    pub fn matmul(&self, x: &[f32], rows: usize) -> Result<Vec<f32>> {
        let (k, n) = (self.k, self.n);
        assert_eq!(x.len(), rows * k, "matmul: x has the wrong length");
        debug_assert_eq!(self.data.len(), k * n);
        let params = [u(rows)?, u(k)?, u(n)?, 0, 0];
        one(self.ctx.run_with(
            "matmul",
            rows * n,
            &params,
            &[In::Bytes(bytes(x)), In::Resident(&self.data)],
            &[Out::Zeroed(rows * n)],
        )?)
    }

    /// The GPU it lives on.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }
}

fn gpu_class(info: &wgpu::AdapterInfo) -> String {
    let backend = format!("{:?}", info.backend).to_lowercase();
    let driver: String = info
        .driver
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("gpu:{backend}:{:04x}:{driver}", info.vendor)
}

fn attn_params(s: AttnShape) -> Result<[u32; 5]> {
    let scale = 1.0 / libm::sqrtf(s.head_dim as f32);
    Ok([
        u(s.batch)?,
        u(s.seq)?,
        u(s.heads)?,
        u(s.head_dim)?,
        scale.to_bits(),
    ])
}

fn u(v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| MlError::Device(format!("dimension {v} does not fit a GPU index")))
}

fn bytes(x: &[f32]) -> &[u8] {
    bytemuck::cast_slice(x)
}

fn one(mut v: Vec<Vec<f32>>) -> Result<Vec<f32>> {
    v.pop()
        .ok_or_else(|| MlError::Device("kernel returned no output".into()))
}

#[cfg(test)]
mod tests;
