//! Causal multi-head self-attention over a packed `qkv` projection.
//!
//! Layout: `qkv` is `(batch·seq) × 3d` with row `(b, t)` = `[q | k | v]`, each `d = heads ·
//! head_dim` wide; head `h` uses columns `h·head_dim ..` of each part. For one `(b, h)`:
//!
//! ```text
//! s[i][j] = (Σ_c q[i][c] · k[j][c]) · scale      for j ≤ i   (c increasing; scale = 1/√head_dim)
//! p[i]    = softmax(s[i][0..=i])                  (max, then exp and sum in j order)
//! o[i][c] = Σ_j p[i][j] · v[j][c]                 (j increasing)
//! ```
//!
//! The backward pass accumulates `dk[j]`, `dv[j]` over `i` in increasing order. The `(b, h)`
//! pairs are independent, so they are spread over threads and their results copied into place
//! in a fixed order; each pair is computed exactly as it would be alone.

use super::par_map;

/// Shape of one attention call.
#[derive(Clone, Copy, Debug)]
pub struct AttnShape {
    /// Sequences in the batch.
    pub batch: usize,
    /// Tokens per sequence.
    pub seq: usize,
    /// Attention heads.
    pub heads: usize,
    /// Width of one head.
    pub head_dim: usize,
}

impl AttnShape {
    fn d(&self) -> usize {
        self.heads * self.head_dim
    }
}

/// Forward pass: returns the attention output `(batch·seq) × d` and the probabilities
/// `batch × heads × seq × seq` (zero above the diagonal), which the backward pass needs.
pub fn attention_forward(qkv: &[f32], s: AttnShape, threads: usize) -> (Vec<f32>, Vec<f32>) {
    let (t_len, hd, d) = (s.seq, s.head_dim, s.d());
    assert_eq!(qkv.len(), s.batch * t_len * 3 * d, "attention: qkv shape");
    let scale = 1.0 / libm::sqrtf(hd as f32);
    let results = par_map(s.batch * s.heads, threads, |task| {
        let (b, h) = (task / s.heads, task % s.heads);
        let row = |t: usize| (b * t_len + t) * 3 * d;
        let mut out = vec![0.0f32; t_len * hd];
        let mut probs = vec![0.0f32; t_len * t_len];
        for i in 0..t_len {
            let q = &qkv[row(i) + h * hd..row(i) + (h + 1) * hd];
            let p = &mut probs[i * t_len..i * t_len + i + 1];
            for (j, pj) in p.iter_mut().enumerate() {
                let k = &qkv[row(j) + d + h * hd..row(j) + d + (h + 1) * hd];
                let mut dot = 0.0f32;
                for c in 0..hd {
                    dot += q[c] * k[c];
                }
                *pj = dot * scale;
            }
            let scores = p.to_vec();
            super::softmax_into(&scores, p);
            let o = &mut out[i * hd..(i + 1) * hd];
            for (j, &pj) in p.iter().enumerate() {
                let v = &qkv[row(j) + 2 * d + h * hd..row(j) + 2 * d + (h + 1) * hd];
                for c in 0..hd {
                    o[c] += pj * v[c];
                }
            }
        }
        (out, probs)
    });
    let mut out = vec![0.0f32; s.batch * t_len * d];
    let mut probs = Vec::with_capacity(s.batch * s.heads * t_len * t_len);
    for (task, (o, p)) in results.into_iter().enumerate() {
        let (b, h) = (task / s.heads, task % s.heads);
        for i in 0..t_len {
            let dst = (b * t_len + i) * d + h * hd;
            out[dst..dst + hd].copy_from_slice(&o[i * hd..(i + 1) * hd]);
        }
        probs.extend_from_slice(&p);
    }
    (out, probs)
}

/// Backward pass: the gradient with respect to `qkv`, given the forward's `probs` and the
/// upstream gradient `dout` (`(batch·seq) × d`).
pub fn attention_backward(
    qkv: &[f32],
    probs: &[f32],
    dout: &[f32],
    s: AttnShape,
    threads: usize,
) -> Vec<f32> {
    let (t_len, hd, d) = (s.seq, s.head_dim, s.d());
    let scale = 1.0 / libm::sqrtf(hd as f32);
    let results = par_map(s.batch * s.heads, threads, |task| {
        let (b, h) = (task / s.heads, task % s.heads);
        let row = |t: usize| (b * t_len + t) * 3 * d;
        let p_all = &probs[task * t_len * t_len..(task + 1) * t_len * t_len];
        let mut dq = vec![0.0f32; t_len * hd];
        let mut dk = vec![0.0f32; t_len * hd];
        let mut dv = vec![0.0f32; t_len * hd];
        let mut dp = vec![0.0f32; t_len];
        for i in 0..t_len {
            let p = &p_all[i * t_len..i * t_len + i + 1];
            let go = &dout[(b * t_len + i) * d + h * hd..(b * t_len + i) * d + (h + 1) * hd];
            // dp[j] = go · v[j];  dv[j] += p[j] · go
            let mut dot_pdp = 0.0f32;
            for j in 0..=i {
                let v = &qkv[row(j) + 2 * d + h * hd..row(j) + 2 * d + (h + 1) * hd];
                let mut acc = 0.0f32;
                for c in 0..hd {
                    acc += go[c] * v[c];
                }
                dp[j] = acc;
                dot_pdp += p[j] * acc;
                let dvj = &mut dv[j * hd..(j + 1) * hd];
                for c in 0..hd {
                    dvj[c] += p[j] * go[c];
                }
            }
            // ds[j] = p[j] (dp[j] − Σ p·dp) · scale;  dq[i] += ds[j] k[j];  dk[j] += ds[j] q[i]
            let q = &qkv[row(i) + h * hd..row(i) + (h + 1) * hd];
            for j in 0..=i {
                let ds = p[j] * (dp[j] - dot_pdp) * scale;
                let k = &qkv[row(j) + d + h * hd..row(j) + d + (h + 1) * hd];
                let dqi = &mut dq[i * hd..(i + 1) * hd];
                for c in 0..hd {
                    dqi[c] += ds * k[c];
                }
                let dkj = &mut dk[j * hd..(j + 1) * hd];
                for c in 0..hd {
                    dkj[c] += ds * q[c];
                }
            }
        }
        (dq, dk, dv)
    });
    let mut dqkv = vec![0.0f32; qkv.len()];
    for (task, (dq, dk, dv)) in results.into_iter().enumerate() {
        let (b, h) = (task / s.heads, task % s.heads);
        for i in 0..t_len {
            let r = (b * t_len + i) * 3 * d;
            let src = i * hd..(i + 1) * hd;
            dqkv[r + h * hd..r + (h + 1) * hd].copy_from_slice(&dq[src.clone()]);
            dqkv[r + d + h * hd..r + d + (h + 1) * hd].copy_from_slice(&dk[src.clone()]);
            dqkv[r + 2 * d + h * hd..r + 2 * d + (h + 1) * hd].copy_from_slice(&dv[src]);
        }
    }
    dqkv
}
