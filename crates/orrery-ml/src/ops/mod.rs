//! Tensor operators with a fixed order of floating-point operations, and their gradients.
//!
//! # Determinism rules (the specification every operator follows)
//!
//! - All arithmetic is IEEE-754 `f32` with round-to-nearest-even. A product and a sum are two
//!   roundings: no fused multiply-add anywhere (Rust never contracts `a * b + c` on its own, and
//!   this crate never calls `mul_add`).
//! - Every reduction (a sum, a max, a mean, a dot product) runs sequentially in increasing index
//!   order from `0.0` (or from the first element, for a max). Reductions over a batch (bias
//!   gradients, layer-norm parameter gradients, embedding gradients) add rows in increasing row
//!   order. Nothing is reassociated into tree or lane-wise partial sums.
//! - Transcendentals (`exp`, `log`, `tanh`, `sqrt`, `pow`, `cos`) come from the pure-Rust `libm`
//!   crate, never from the platform's maths library, whose results differ between systems.
//! - Parallelism only ever partitions *outputs*: each thread computes whole output elements
//!   by the same sequence of operations a single thread would. The thread count changes speed,
//!   never bits.
//!
//! Forward functions return what their backward needs; backward functions take the upstream
//! gradient `dy` and return (or accumulate into) the gradients of their inputs.

pub mod attention;
pub mod matmul;

pub use attention::{AttnShape, attention_backward, attention_forward};
pub use matmul::{Isa, Tile, Trans, matmul, matmul_naive, matmul_with};

/// Split `data` into chunks of `chunk_len` and run `f(chunk_index, chunk)` on up to `threads`
/// threads, each thread taking a contiguous run of chunks. Each chunk is written by exactly one
/// thread, so the result is independent of `threads`.
pub(crate) fn par_chunks_mut<F>(data: &mut [f32], chunk_len: usize, threads: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Sync,
{
    let chunk_len = chunk_len.max(1);
    let chunks = data.len().div_ceil(chunk_len);
    if threads <= 1 || chunks <= 1 {
        for (i, c) in data.chunks_mut(chunk_len).enumerate() {
            f(i, c);
        }
        return;
    }
    std::thread::scope(|s| {
        for (i, c) in data.chunks_mut(chunk_len).enumerate() {
            let f = &f;
            s.spawn(move || f(i, c));
        }
    });
}

/// Run `f(task)` for `task in 0..tasks` on up to `threads` threads and return the results in
/// task order. Tasks must be independent; each is computed exactly as it would be alone.
pub(crate) fn par_map<R: Send, F>(tasks: usize, threads: usize, f: F) -> Vec<R>
where
    F: Fn(usize) -> R + Sync,
{
    let threads = threads.max(1).min(tasks.max(1));
    if threads == 1 {
        return (0..tasks).map(f).collect();
    }
    let per = tasks.div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let f = &f;
                s.spawn(move || {
                    (t * per..((t + 1) * per).min(tasks))
                        .map(f)
                        .collect::<Vec<R>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(tasks);
        for h in handles {
            match h.join() {
                Ok(v) => out.extend(v),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

// ---------------------------------------------------------------------------------------------
// Element-wise and broadcast arithmetic.

/// `y = a + b`, element-wise. Gradient: `da = dy`, `db = dy`.
pub fn add(a: &[f32], b: &[f32]) -> Vec<f32> {
    assert_eq!(a.len(), b.len(), "add: length mismatch");
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

/// `y = a * b`, element-wise.
pub fn mul(a: &[f32], b: &[f32]) -> Vec<f32> {
    assert_eq!(a.len(), b.len(), "mul: length mismatch");
    a.iter().zip(b).map(|(x, y)| x * y).collect()
}

/// Gradient of [`mul`]: `(da, db) = (dy * b, dy * a)`.
pub fn mul_backward(a: &[f32], b: &[f32], dy: &[f32]) -> (Vec<f32>, Vec<f32>) {
    (mul(dy, b), mul(dy, a))
}

/// `x[r, c] += row[c]` for every row of a `rows × row.len()` matrix (bias broadcast).
pub fn add_row_broadcast(x: &mut [f32], row: &[f32]) {
    assert_eq!(x.len() % row.len().max(1), 0, "add_row_broadcast: shape");
    for xr in x.chunks_exact_mut(row.len()) {
        for (v, b) in xr.iter_mut().zip(row) {
            *v += b;
        }
    }
}

/// `y[r, c] = x[r, c] * row[c]` (per-feature scale broadcast over rows).
pub fn mul_row_broadcast(x: &[f32], row: &[f32]) -> Vec<f32> {
    assert_eq!(x.len() % row.len().max(1), 0, "mul_row_broadcast: shape");
    let mut y = x.to_vec();
    for yr in y.chunks_exact_mut(row.len()) {
        for (v, s) in yr.iter_mut().zip(row) {
            *v *= s;
        }
    }
    y
}

/// Gradient of [`mul_row_broadcast`]: `dx = dy * row`, `drow[c] = Σ_r dy[r,c] * x[r,c]`
/// (rows summed in increasing order).
pub fn mul_row_broadcast_backward(x: &[f32], row: &[f32], dy: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let dx = mul_row_broadcast(dy, row);
    let mut drow = vec![0.0f32; row.len()];
    for (xr, dr) in x.chunks_exact(row.len()).zip(dy.chunks_exact(row.len())) {
        for ((g, xv), dv) in drow.iter_mut().zip(xr).zip(dr) {
            *g += dv * xv;
        }
    }
    (dx, drow)
}

/// Column sums of a `rows × cols` matrix, rows added in increasing order: the gradient of a
/// broadcast bias, accumulated into `out`.
pub fn sum_rows_into(dy: &[f32], cols: usize, out: &mut [f32]) {
    assert_eq!(out.len(), cols, "sum_rows_into: shape");
    for dr in dy.chunks_exact(cols) {
        for (g, d) in out.iter_mut().zip(dr) {
            *g += d;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Activations.

/// `max(x, 0)`.
pub fn relu(x: &[f32]) -> Vec<f32> {
    x.iter().map(|&v| if v > 0.0 { v } else { 0.0 }).collect()
}

/// Gradient of [`relu`] given its input `x`.
pub fn relu_backward(x: &[f32], dy: &[f32]) -> Vec<f32> {
    x.iter()
        .zip(dy)
        .map(|(&v, &d)| if v > 0.0 { d } else { 0.0 })
        .collect()
}

const GELU_C: f32 = 0.797_884_6; // sqrt(2/pi)
const GELU_A: f32 = 0.044_715;

/// GELU, tanh approximation: `0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))`.
pub fn gelu(x: &[f32]) -> Vec<f32> {
    x.iter()
        .map(|&v| {
            let u = GELU_C * (v + GELU_A * v * v * v);
            0.5 * v * (1.0 + libm::tanhf(u))
        })
        .collect()
}

/// Gradient of [`gelu`] given its input `x`.
pub fn gelu_backward(x: &[f32], dy: &[f32]) -> Vec<f32> {
    x.iter()
        .zip(dy)
        .map(|(&v, &d)| {
            let u = GELU_C * (v + GELU_A * v * v * v);
            let t = libm::tanhf(u);
            let du = GELU_C * (1.0 + 3.0 * GELU_A * v * v);
            let g = 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * du;
            d * g
        })
        .collect()
}

/// GELU, exact (erf) form as BERT uses it: `0.5 x (1 + erf(x / √2))`.
///
/// Operation order, per element: `t = x · (1/√2)` (one rounding, with the f32 constant
/// [`std::f32::consts::FRAC_1_SQRT_2`]), `e = libm::erff(t)`, `y = (0.5 · x) · (1 + e)`.
pub fn gelu_erf(x: &[f32]) -> Vec<f32> {
    x.iter()
        .map(|&v| {
            let e = libm::erff(v * std::f32::consts::FRAC_1_SQRT_2);
            (0.5 * v) * (1.0 + e)
        })
        .collect()
}

/// Gradient of [`gelu_erf`] given its input `x`:
/// `dy · (0.5 (1 + erf(x/√2)) + x · φ(x))`, `φ(x) = exp(−x²/2) / √(2π)`.
pub fn gelu_erf_backward(x: &[f32], dy: &[f32]) -> Vec<f32> {
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    x.iter()
        .zip(dy)
        .map(|(&v, &d)| {
            let e = libm::erff(v * std::f32::consts::FRAC_1_SQRT_2);
            let pdf = INV_SQRT_2PI * libm::expf(-0.5 * v * v);
            d * (0.5 * (1.0 + e) + v * pdf)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Softmax, layer norm, embedding, cross-entropy.

/// Row-wise softmax of a `rows × cols` matrix: `exp(x - max) / Σ exp(x - max)`.
pub fn softmax_rows(x: &[f32], cols: usize) -> Vec<f32> {
    let mut y = vec![0.0f32; x.len()];
    for (xr, yr) in x.chunks_exact(cols).zip(y.chunks_exact_mut(cols)) {
        softmax_into(xr, yr);
    }
    y
}

/// Softmax of one row into `y`.
pub(crate) fn softmax_into(x: &[f32], y: &mut [f32]) {
    let mut max = f32::NEG_INFINITY;
    for &v in x {
        if v > max {
            max = v;
        }
    }
    let mut sum = 0.0f32;
    for (o, &v) in y.iter_mut().zip(x) {
        let e = libm::expf(v - max);
        *o = e;
        sum += e;
    }
    let inv = 1.0 / sum;
    for o in y.iter_mut() {
        *o *= inv;
    }
}

/// Gradient of [`softmax_rows`] given its output `y`: `dx = y ⊙ (dy − Σ_j dy_j y_j)`.
pub fn softmax_rows_backward(y: &[f32], dy: &[f32], cols: usize) -> Vec<f32> {
    let mut dx = vec![0.0f32; y.len()];
    for ((yr, dr), xr) in y
        .chunks_exact(cols)
        .zip(dy.chunks_exact(cols))
        .zip(dx.chunks_exact_mut(cols))
    {
        let mut dot = 0.0f32;
        for (a, b) in yr.iter().zip(dr) {
            dot += a * b;
        }
        for ((o, a), b) in xr.iter_mut().zip(yr).zip(dr) {
            *o = a * (b - dot);
        }
    }
    dx
}

/// What [`layer_norm`] keeps for its backward pass.
#[derive(Clone, Debug)]
pub struct LayerNormCache {
    /// The normalized input `(x - mean) * rstd`, `rows × dim`.
    pub xhat: Vec<f32>,
    /// `1 / sqrt(var + eps)` per row.
    pub rstd: Vec<f32>,
}

/// Layer norm over the last dimension: `y = (x − mean) / sqrt(var + eps) · gamma + beta`,
/// with the biased variance `Σ (x − mean)² / dim`.
pub fn layer_norm(x: &[f32], gamma: &[f32], beta: &[f32], eps: f32) -> (Vec<f32>, LayerNormCache) {
    let dim = gamma.len();
    let rows = x.len() / dim;
    let mut y = vec![0.0f32; x.len()];
    let mut xhat = vec![0.0f32; x.len()];
    let mut rstd = vec![0.0f32; rows];
    let inv_dim = 1.0 / dim as f32;
    for r in 0..rows {
        let xr = &x[r * dim..(r + 1) * dim];
        let mut sum = 0.0f32;
        for &v in xr {
            sum += v;
        }
        let mean = sum * inv_dim;
        let mut var = 0.0f32;
        for &v in xr {
            let d = v - mean;
            var += d * d;
        }
        let rs = 1.0 / libm::sqrtf(var * inv_dim + eps);
        rstd[r] = rs;
        for c in 0..dim {
            let h = (xr[c] - mean) * rs;
            xhat[r * dim + c] = h;
            y[r * dim + c] = h * gamma[c] + beta[c];
        }
    }
    (y, LayerNormCache { xhat, rstd })
}

/// Gradient of [`layer_norm`]: returns `dx` and adds into `dgamma`, `dbeta` (rows in order).
pub fn layer_norm_backward(
    cache: &LayerNormCache,
    gamma: &[f32],
    dy: &[f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) -> Vec<f32> {
    let dim = gamma.len();
    let rows = dy.len() / dim;
    let inv_dim = 1.0 / dim as f32;
    let mut dx = vec![0.0f32; dy.len()];
    let mut dxhat = vec![0.0f32; dim];
    for r in 0..rows {
        let xh = &cache.xhat[r * dim..(r + 1) * dim];
        let dr = &dy[r * dim..(r + 1) * dim];
        let mut sum_dxhat = 0.0f32;
        let mut sum_dxhat_xhat = 0.0f32;
        for c in 0..dim {
            dgamma[c] += dr[c] * xh[c];
            dbeta[c] += dr[c];
            let g = dr[c] * gamma[c];
            dxhat[c] = g;
            sum_dxhat += g;
            sum_dxhat_xhat += g * xh[c];
        }
        let mean_dxhat = sum_dxhat * inv_dim;
        let mean_dxhat_xhat = sum_dxhat_xhat * inv_dim;
        let rs = cache.rstd[r];
        for c in 0..dim {
            dx[r * dim + c] = rs * (dxhat[c] - mean_dxhat - xh[c] * mean_dxhat_xhat);
        }
    }
    dx
}

/// Embedding lookup: row `ids[i]` of a `vocab × dim` table for each `i`. Ids must be in range
/// (the data layer checks them).
pub fn embedding(ids: &[u32], table: &[f32], dim: usize) -> Vec<f32> {
    let mut y = Vec::with_capacity(ids.len() * dim);
    for &id in ids {
        let id = id as usize;
        y.extend_from_slice(&table[id * dim..(id + 1) * dim]);
    }
    y
}

/// Gradient of [`embedding`]: adds `dy` row `i` into `dtable` row `ids[i]`, for `i` in order.
pub fn embedding_backward(ids: &[u32], dy: &[f32], dim: usize, dtable: &mut [f32]) {
    for (i, &id) in ids.iter().enumerate() {
        let id = id as usize;
        for (g, d) in dtable[id * dim..(id + 1) * dim]
            .iter_mut()
            .zip(&dy[i * dim..(i + 1) * dim])
        {
            *g += d;
        }
    }
}

/// Mean cross-entropy of `rows × classes` logits against `targets`, and its gradient with
/// respect to the logits: `(softmax(x) − onehot(t)) / rows`. The row losses
/// `logsumexp(x) − x[t]` are summed in row order, then divided by `rows`.
pub fn cross_entropy(logits: &[f32], targets: &[u32], classes: usize) -> (f32, Vec<f32>) {
    let rows = targets.len();
    assert_eq!(logits.len(), rows * classes, "cross_entropy: shape");
    let mut dlogits = vec![0.0f32; logits.len()];
    let mut total = 0.0f32;
    let inv_rows = 1.0 / rows as f32;
    for r in 0..rows {
        let xr = &logits[r * classes..(r + 1) * classes];
        let dr = &mut dlogits[r * classes..(r + 1) * classes];
        softmax_into(xr, dr);
        let mut max = f32::NEG_INFINITY;
        for &v in xr {
            if v > max {
                max = v;
            }
        }
        let mut sum = 0.0f32;
        for &v in xr {
            sum += libm::expf(v - max);
        }
        let t = targets[r] as usize;
        total += max + libm::logf(sum) - xr[t];
        dr[t] -= 1.0;
        for d in dr.iter_mut() {
            *d *= inv_rows;
        }
    }
    (total * inv_rows, dlogits)
}

#[cfg(test)]
mod tests;
