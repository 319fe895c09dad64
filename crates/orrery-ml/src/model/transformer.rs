//! A decoder-only (GPT-style, pre-norm) transformer language model.
//!
//! ```text
//! x   = tok_emb[ids] + pos_emb[t]
//! for each block:  x = x + proj(attn(ln1(x)));   x = x + fc2(gelu(fc1(ln2(x))))
//! logits = ln_f(x) · lm_head
//! ```
//!
//! Parameters, in order: `tok_emb` (`vocab × d`), `pos_emb` (`context × d`), then for each
//! block `l`: `blocks.{l}.ln1.gamma`, `.ln1.beta`, `.attn.qkv.weight` (`d × 3d`),
//! `.attn.qkv.bias`, `.attn.proj.weight` (`d × d`), `.attn.proj.bias`, `.ln2.gamma`,
//! `.ln2.beta`, `.mlp.fc.weight` (`d × ff`), `.mlp.fc.bias`, `.mlp.proj.weight` (`ff × d`),
//! `.mlp.proj.bias`; then `ln_f.gamma`, `ln_f.beta`, `lm_head.weight` (`d × vocab`).

use super::check_dim;
use crate::device::Device;
use crate::error::{MlError, Result};
use crate::ops::{self, AttnShape, LayerNormCache, Trans};
use crate::rng::Rng;
use crate::tensor::{ParamSet, Tensor};
use serde::{Deserialize, Serialize};

const LN_EPS: f32 = 1e-5;
const PER_BLOCK: usize = 12;
const LN1_G: usize = 0;
const LN1_B: usize = 1;
const QKV_W: usize = 2;
const QKV_B: usize = 3;
const PROJ_W: usize = 4;
const PROJ_B: usize = 5;
const LN2_G: usize = 6;
const LN2_B: usize = 7;
const FC_W: usize = 8;
const FC_B: usize = 9;
const FCP_W: usize = 10;
const FCP_B: usize = 11;

fn default_ff_mult() -> usize {
    4
}

/// Transformer dimensions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformerConfig {
    /// Token vocabulary size.
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub d_model: usize,
    /// Number of blocks.
    pub n_layers: usize,
    /// Attention heads per block; must divide `d_model`.
    pub n_heads: usize,
    /// Longest sequence the model sees (positions in `pos_emb`).
    pub context: usize,
    /// Width of the MLP hidden layer as a multiple of `d_model`.
    #[serde(default = "default_ff_mult")]
    pub ff_mult: usize,
}

struct BlockCache {
    ln1: LayerNormCache,
    h1: Vec<f32>,
    qkv: Vec<f32>,
    probs: Vec<f32>,
    att: Vec<f32>,
    ln2: LayerNormCache,
    h2: Vec<f32>,
    f: Vec<f32>,
    g: Vec<f32>,
}

#[allow(clippy::too_many_arguments)]
fn linear(
    dev: &Device,
    x: &[f32],
    rows: usize,
    w: &[f32],
    b: Option<&[f32]>,
    fi: usize,
    fo: usize,
    threads: usize,
) -> Result<Vec<f32>> {
    let mut y = vec![0.0f32; rows * fo];
    dev.matmul(x, Trans::No, w, Trans::No, (rows, fi, fo), &mut y, threads)?;
    if let Some(b) = b {
        ops::add_row_broadcast(&mut y, b);
    }
    Ok(y)
}

/// Backward of [`linear`]: writes `dW = xᵀ·dy` (and `db = Σ dy`), returns `dx = dy·Wᵀ`.
#[allow(clippy::too_many_arguments)]
fn linear_backward(
    dev: &Device,
    x: &[f32],
    dy: &[f32],
    rows: usize,
    w: &[f32],
    fi: usize,
    fo: usize,
    grads: &mut ParamSet,
    w_idx: usize,
    b_idx: Option<usize>,
    threads: usize,
) -> Result<Vec<f32>> {
    dev.matmul(
        x,
        Trans::Yes,
        dy,
        Trans::No,
        (fi, rows, fo),
        &mut grads.get_mut(w_idx).data,
        threads,
    )?;
    if let Some(b) = b_idx {
        ops::sum_rows_into(dy, fo, &mut grads.get_mut(b).data);
    }
    let mut dx = vec![0.0f32; rows * fi];
    dev.matmul(
        dy,
        Trans::No,
        w,
        Trans::Yes,
        (rows, fo, fi),
        &mut dx,
        threads,
    )?;
    Ok(dx)
}

impl TransformerConfig {
    fn ff(&self) -> usize {
        self.d_model * self.ff_mult
    }

    fn block(&self, l: usize) -> usize {
        2 + PER_BLOCK * l
    }

    fn final_idx(&self) -> usize {
        2 + PER_BLOCK * self.n_layers
    }

    pub(crate) fn validate(&self) -> Result<()> {
        check_dim("transformer vocab_size", self.vocab_size)?;
        check_dim("transformer d_model", self.d_model)?;
        check_dim("transformer n_layers", self.n_layers)?;
        check_dim("transformer n_heads", self.n_heads)?;
        check_dim("transformer context", self.context)?;
        check_dim("transformer ff_mult", self.ff_mult)?;
        if !self.d_model.is_multiple_of(self.n_heads) {
            return Err(MlError::BadConfig(format!(
                "transformer d_model ({}) must be divisible by n_heads ({}); try n_heads = {}",
                self.d_model,
                self.n_heads,
                (1..=self.n_heads)
                    .rev()
                    .find(|h| self.d_model.is_multiple_of(*h))
                    .unwrap_or(1)
            )));
        }
        Ok(())
    }

    pub(crate) fn template(&self) -> ParamSet {
        let (v, d, ff) = (self.vocab_size, self.d_model, self.ff());
        let mut t = vec![
            ("tok_emb".to_string(), Tensor::zeros(&[v, d])),
            ("pos_emb".to_string(), Tensor::zeros(&[self.context, d])),
        ];
        for l in 0..self.n_layers {
            let p = |s: &str| format!("blocks.{l}.{s}");
            t.push((p("ln1.gamma"), Tensor::full(&[d], 1.0)));
            t.push((p("ln1.beta"), Tensor::zeros(&[d])));
            t.push((p("attn.qkv.weight"), Tensor::zeros(&[d, 3 * d])));
            t.push((p("attn.qkv.bias"), Tensor::zeros(&[3 * d])));
            t.push((p("attn.proj.weight"), Tensor::zeros(&[d, d])));
            t.push((p("attn.proj.bias"), Tensor::zeros(&[d])));
            t.push((p("ln2.gamma"), Tensor::full(&[d], 1.0)));
            t.push((p("ln2.beta"), Tensor::zeros(&[d])));
            t.push((p("mlp.fc.weight"), Tensor::zeros(&[d, ff])));
            t.push((p("mlp.fc.bias"), Tensor::zeros(&[ff])));
            t.push((p("mlp.proj.weight"), Tensor::zeros(&[ff, d])));
            t.push((p("mlp.proj.bias"), Tensor::zeros(&[d])));
        }
        t.push(("ln_f.gamma".into(), Tensor::full(&[d], 1.0)));
        t.push(("ln_f.beta".into(), Tensor::zeros(&[d])));
        t.push(("lm_head.weight".into(), Tensor::zeros(&[d, v])));
        ParamSet { tensors: t }
    }

    /// Normal(0, 0.02) for embeddings and matrices, scaled by `1/√(2·n_layers)` for the two
    /// projections that write into the residual stream (GPT-2); layer norms at identity.
    pub(crate) fn init_params(&self, seed: u64) -> ParamSet {
        let mut p = self.template();
        let resid_scale = 1.0 / libm::sqrtf(2.0 * self.n_layers as f32);
        for (idx, (name, t)) in p.tensors.iter_mut().enumerate() {
            let is_matrix = t.shape.len() == 2;
            if !is_matrix {
                continue;
            }
            let std = if name.ends_with("attn.proj.weight") || name.ends_with("mlp.proj.weight") {
                0.02 * resid_scale
            } else {
                0.02
            };
            let mut rng = Rng::derive(seed, idx as u64);
            for v in &mut t.data {
                *v = rng.normal() * std;
            }
        }
        p
    }

    pub(crate) fn forward_macs(&self, batch: usize, seq: usize) -> u64 {
        let (d, ff, v) = (
            self.d_model as u64,
            self.ff() as u64,
            self.vocab_size as u64,
        );
        let rows = (batch * seq) as u64;
        let per_block = rows * (d * 3 * d + d * d + 2 * d * ff);
        // Scores and weighted values over the causal triangle, all heads together.
        let attn = (batch as u64) * (seq as u64) * (seq as u64 + 1) / 2 * d * 2;
        self.n_layers as u64 * (per_block + attn) + rows * d * v
    }

    #[allow(clippy::type_complexity)]
    fn forward(
        &self,
        dev: &Device,
        params: &ParamSet,
        ids: &[u32],
        batch: usize,
        seq: usize,
        threads: usize,
    ) -> Result<(Vec<f32>, Vec<BlockCache>, LayerNormCache, Vec<f32>)> {
        let (d, ff, v) = (self.d_model, self.ff(), self.vocab_size);
        let rows = batch * seq;
        let mut x = dev.embedding(ids, &params.get(0).data, d)?;
        let pos = &params.get(1).data;
        for b in 0..batch {
            for t in 0..seq {
                let r = (b * seq + t) * d;
                for c in 0..d {
                    x[r + c] += pos[t * d + c];
                }
            }
        }
        let shape = AttnShape {
            batch,
            seq,
            heads: self.n_heads,
            head_dim: d / self.n_heads,
        };
        let mut caches = Vec::with_capacity(self.n_layers);
        for l in 0..self.n_layers {
            let o = self.block(l);
            let w = |i: usize| params.get(o + i).data.as_slice();
            let (h1, ln1) = dev.layer_norm(&x, w(LN1_G), w(LN1_B), LN_EPS)?;
            let qkv = linear(dev, &h1, rows, w(QKV_W), Some(w(QKV_B)), d, 3 * d, threads)?;
            let (att, probs) = dev.attention_forward(&qkv, shape, threads)?;
            let proj = linear(dev, &att, rows, w(PROJ_W), Some(w(PROJ_B)), d, d, threads)?;
            for (xv, pv) in x.iter_mut().zip(&proj) {
                *xv += pv;
            }
            let (h2, ln2) = dev.layer_norm(&x, w(LN2_G), w(LN2_B), LN_EPS)?;
            let f = linear(dev, &h2, rows, w(FC_W), Some(w(FC_B)), d, ff, threads)?;
            let g = dev.gelu(&f)?;
            let m = linear(dev, &g, rows, w(FCP_W), Some(w(FCP_B)), ff, d, threads)?;
            for (xv, mv) in x.iter_mut().zip(&m) {
                *xv += mv;
            }
            caches.push(BlockCache {
                ln1,
                h1,
                qkv,
                probs,
                att,
                ln2,
                h2,
                f,
                g,
            });
        }
        let fi = self.final_idx();
        let (hf, lnf) =
            dev.layer_norm(&x, &params.get(fi).data, &params.get(fi + 1).data, LN_EPS)?;
        let logits = linear(
            dev,
            &hf,
            rows,
            &params.get(fi + 2).data,
            None,
            d,
            v,
            threads,
        )?;
        Ok((logits, caches, lnf, hf))
    }

    /// Logits for the token after `context_ids` (the last `context` of them are used).
    pub fn next_token_logits(&self, params: &ParamSet, ids: &[u32], threads: usize) -> Vec<f32> {
        match self.next_token_logits_on(&Device::Cpu, params, ids, threads) {
            Ok(l) => l,
            Err(e) => unreachable!("the CPU path has no device errors: {e}"),
        }
    }

    /// [`Self::next_token_logits`] on `dev`.
    pub fn next_token_logits_on(
        &self,
        dev: &Device,
        params: &ParamSet,
        ids: &[u32],
        threads: usize,
    ) -> Result<Vec<f32>> {
        let window = &ids[ids.len().saturating_sub(self.context)..];
        let seq = window.len();
        let (logits, ..) = self.forward(dev, params, window, 1, seq, threads)?;
        Ok(logits[(seq - 1) * self.vocab_size..].to_vec())
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn loss_and_grads(
        &self,
        dev: &Device,
        params: &ParamSet,
        ids: &[u32],
        targets: &[u32],
        batch: usize,
        seq: usize,
        threads: usize,
    ) -> Result<(f32, ParamSet)> {
        let (d, ff, v) = (self.d_model, self.ff(), self.vocab_size);
        let rows = batch * seq;
        let (logits, caches, lnf, hf) = self.forward(dev, params, ids, batch, seq, threads)?;
        let (loss, dlogits) = dev.cross_entropy(&logits, targets, v)?;
        let mut grads = params.zeros_like();
        let fi = self.final_idx();
        let dhf = linear_backward(
            dev,
            &hf,
            &dlogits,
            rows,
            &params.get(fi + 2).data,
            d,
            v,
            &mut grads,
            fi + 2,
            None,
            threads,
        )?;
        let mut dx = {
            let (gs, rest) = grads.tensors.split_at_mut(fi + 1);
            dev.layer_norm_backward(
                &lnf,
                &params.get(fi).data,
                &dhf,
                &mut gs[fi].1.data,
                &mut rest[0].1.data,
            )?
        };
        let shape = AttnShape {
            batch,
            seq,
            heads: self.n_heads,
            head_dim: d / self.n_heads,
        };
        for l in (0..self.n_layers).rev() {
            let o = self.block(l);
            let c = &caches[l];
            let w = |i: usize| params.get(o + i).data.as_slice();
            // MLP branch: x2 = x1 + fc2(gelu(fc1(ln2(x1)))).
            let dg = linear_backward(
                dev,
                &c.g,
                &dx,
                rows,
                w(FCP_W),
                ff,
                d,
                &mut grads,
                o + FCP_W,
                Some(o + FCP_B),
                threads,
            )?;
            let df = dev.gelu_backward(&c.f, &dg)?;
            let dh2 = linear_backward(
                dev,
                &c.h2,
                &df,
                rows,
                w(FC_W),
                d,
                ff,
                &mut grads,
                o + FC_W,
                Some(o + FC_B),
                threads,
            )?;
            let dln2 = {
                let (gs, rest) = grads.tensors.split_at_mut(o + LN2_B);
                dev.layer_norm_backward(
                    &c.ln2,
                    w(LN2_G),
                    &dh2,
                    &mut gs[o + LN2_G].1.data,
                    &mut rest[0].1.data,
                )?
            };
            for (a, b) in dx.iter_mut().zip(&dln2) {
                *a += b;
            }
            // Attention branch: x1 = x + proj(attn(qkv(ln1(x)))).
            let datt = linear_backward(
                dev,
                &c.att,
                &dx,
                rows,
                w(PROJ_W),
                d,
                d,
                &mut grads,
                o + PROJ_W,
                Some(o + PROJ_B),
                threads,
            )?;
            let dqkv = dev.attention_backward(&c.qkv, &c.probs, &datt, shape, threads)?;
            let dh1 = linear_backward(
                dev,
                &c.h1,
                &dqkv,
                rows,
                w(QKV_W),
                d,
                3 * d,
                &mut grads,
                o + QKV_W,
                Some(o + QKV_B),
                threads,
            )?;
            let dln1 = {
                let (gs, rest) = grads.tensors.split_at_mut(o + LN1_B);
                dev.layer_norm_backward(
                    &c.ln1,
                    w(LN1_G),
                    &dh1,
                    &mut gs[o + LN1_G].1.data,
                    &mut rest[0].1.data,
                )?
            };
            for (a, b) in dx.iter_mut().zip(&dln1) {
                *a += b;
            }
        }
        dev.embedding_backward(ids, &dx, d, &mut grads.get_mut(0).data)?;
        let dpos = &mut grads.get_mut(1).data;
        for b in 0..batch {
            for t in 0..seq {
                let r = (b * seq + t) * d;
                for c in 0..d {
                    dpos[t * d + c] += dx[r + c];
                }
            }
        }
        Ok((loss, grads))
    }
}
