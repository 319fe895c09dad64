//! The self-check a provider runs before it lets a GPU do checked work: every kernel on small
//! fixed inputs (a sweep through the transcendentals' branches included), compared bit for bit
//! with the CPU reference. A device that passes reproduces the `cpu-reference` class on these
//! inputs; one that fails must not commit ML results a CPU verifier would re-execute.

use super::Device;
use crate::error::{MlError, Result};
use crate::ops::{self, AttnShape, Trans};
use crate::rng::Rng;

fn randn(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..n).map(|_| r.normal() * scale).collect()
}

fn same(op: &str, gpu: &[f32], cpu: &[f32]) -> Result<()> {
    let differ = gpu
        .iter()
        .zip(cpu)
        .filter(|(g, c)| g.to_bits() != c.to_bits())
        .count();
    if differ > 0 || gpu.len() != cpu.len() {
        return Err(MlError::Device(format!(
            "{op}: {differ} of {} values differ from the CPU reference",
            cpu.len()
        )));
    }
    Ok(())
}

impl Device {
    /// Run every GPU kernel against the CPU reference on fixed inputs; `Err` names the first
    /// operator whose bits differ. Always `Ok` on the CPU path. Takes well under a second.
    pub fn self_check(&self) -> Result<()> {
        if !self.is_gpu() {
            return Ok(());
        }
        let (m, k, n) = (9, 70, 11);
        let (a, b) = (randn(m * k, 1, 1.0), randn(k * n, 2, 1.0));
        for (ta, tb) in [(Trans::No, Trans::No), (Trans::Yes, Trans::Yes)] {
            let (mut g, mut c) = (vec![0.0; m * n], vec![0.0; m * n]);
            self.matmul(&a, ta, &b, tb, (m, k, n), &mut g, 1)?;
            ops::matmul(&a, ta, &b, tb, m, k, n, &mut c, 1);
            same("matmul", &g, &c)?;
        }
        let mut x = randn(2000, 3, 4.0);
        x.extend((-1200..1200).map(|i| i as f32 * 0.01));
        let dy = randn(x.len(), 4, 1.0);
        same("gelu", &self.gelu(&x)?, &ops::gelu(&x))?;
        same(
            "gelu backward",
            &self.gelu_backward(&x, &dy)?,
            &ops::gelu_backward(&x, &dy),
        )?;
        let cols = 40;
        let logits = &x[..cols * 100];
        same(
            "softmax",
            &self.softmax_rows(logits, cols)?,
            &ops::softmax_rows(logits, cols),
        )?;
        let t: Vec<u32> = (0..100).map(|i| (i * 7 % cols) as u32).collect();
        let (gl, gd) = self.cross_entropy(logits, &t, cols)?;
        let (cl, cd) = ops::cross_entropy(logits, &t, cols);
        same("cross-entropy", &gd, &cd)?;
        same("cross-entropy loss", &[gl], &[cl])?;
        let (gamma, beta) = (randn(cols, 5, 1.0), randn(cols, 6, 1.0));
        let (gy, gc) = self.layer_norm(logits, &gamma, &beta, 1e-5)?;
        let (cy, cc) = ops::layer_norm(logits, &gamma, &beta, 1e-5);
        same("layer norm", &gy, &cy)?;
        let (mut gg, mut gb) = (vec![0.0; cols], vec![0.0; cols]);
        let (mut cg, mut cb) = (vec![0.0; cols], vec![0.0; cols]);
        let d = &dy[..cols * 100];
        let gdx = self.layer_norm_backward(&gc, &gamma, d, &mut gg, &mut gb)?;
        let cdx = ops::layer_norm_backward(&cc, &gamma, d, &mut cg, &mut cb);
        same("layer norm backward", &gdx, &cdx)?;
        same("layer norm dgamma", &gg, &cg)?;
        let ids: Vec<u32> = (0..50).map(|i| (i * 3 % 17) as u32).collect();
        same(
            "embedding",
            &self.embedding(&ids, logits, cols)?,
            &ops::embedding(&ids, logits, cols),
        )?;
        let (mut ge, mut ce) = (vec![0.0; 17 * cols], vec![0.0; 17 * cols]);
        self.embedding_backward(&ids, &dy[..50 * cols], cols, &mut ge)?;
        ops::embedding_backward(&ids, &dy[..50 * cols], cols, &mut ce);
        same("embedding backward", &ge, &ce)?;
        let s = AttnShape {
            batch: 2,
            seq: 9,
            heads: 2,
            head_dim: 4,
        };
        let qkv = randn(2 * 9 * 3 * 8, 7, 1.5);
        let (go, gp) = self.attention_forward(&qkv, s, 1)?;
        let (co, cp) = ops::attention_forward(&qkv, s, 1);
        same("attention", &go, &co)?;
        same("attention probs", &gp, &cp)?;
        let dout = randn(2 * 9 * 8, 8, 1.0);
        same(
            "attention backward",
            &self.attention_backward(&qkv, &cp, &dout, s, 1)?,
            &ops::attention_backward(&qkv, &cp, &dout, s, 1),
        )?;
        let (mut p, mut mm, mut v) = (randn(300, 9, 1.0), randn(300, 10, 0.1), vec![0.01; 300]);
        let (mut cp, mut cm, mut cv) = (p.clone(), mm.clone(), v.clone());
        let g = randn(300, 11, 0.1);
        let hyper = crate::optim::adamw_scalars(3e-3, 0.9, 0.999, 1e-8, 0.01, 2);
        self.adamw(&mut p, &mut mm, &mut v, &g, hyper)?;
        crate::optim::adamw_update(&mut cp, &mut cm, &mut cv, &g, hyper);
        same("adamw", &p, &cp)?;
        same("adamw moments", &v, &cv)?;
        Ok(())
    }
}
