//! Inference kernels on top of [`crate::ops`]: a matrix-vector product for one decoding step,
//! linear layers, and attention of one query row against cached keys and values.
//!
//! Each follows the operation order of the operator it stands in for, so their results are
//! bitwise those of the training-side code:
//!
//! - [`gemv`] is [`crate::ops::matmul`] with one row: `y[j] = Σ_p x[p] · W[p, j]`, `p`
//!   increasing from `0.0`, a separate multiply and add. It walks `W` row by row, updating a
//!   block of independent accumulators `y[j..j+B]` per row, which is the same sequence of
//!   roundings for every `y[j]` and vectorizes across `j`. Threads own disjoint column blocks.
//! - [`attend_row`] is one query row of [`crate::ops::attention_forward`]: scores
//!   `(Σ_c q[c] · k[j][c]) · scale`, softmax (max, `exp(s − max)` and sum in `j` order, times
//!   `1/sum`), then `o[c] = Σ_j p[j] · v[j][c]`, `j` increasing from `0.0`.

use crate::ops::{self, Trans};

/// Columns per block of [`gemv`]: 128 accumulators (512 bytes) stay in L1 while `W` streams.
const GEMV_BLOCK: usize = 128;
/// Below this many multiply-adds a thread costs more than it saves.
const GEMV_PARALLEL_MIN_WORK: usize = 1 << 18;

/// `y = x · W` for `x` of length `k` and `W` stored `k × n` row-major; bitwise
/// [`crate::ops::matmul`] of a `1 × k` by `k × n` product on any thread count.
pub fn gemv(x: &[f32], w: &[f32], k: usize, n: usize, y: &mut [f32], threads: usize) {
    assert_eq!(x.len(), k, "gemv: x has the wrong length");
    assert_eq!(w.len(), k * n, "gemv: W has the wrong length");
    assert_eq!(y.len(), n, "gemv: y has the wrong length");
    let threads = if k * n < GEMV_PARALLEL_MIN_WORK {
        1
    } else {
        threads.max(1)
    };
    let blocks = n.div_ceil(GEMV_BLOCK);
    let cols_per_thread = blocks.div_ceil(threads).max(1) * GEMV_BLOCK;
    ops::par_chunks_mut(y, cols_per_thread, threads, |chunk, y_cols| {
        pulp::Arch::new().dispatch(GemvCols {
            x,
            w,
            n,
            col0: chunk * cols_per_thread,
            y: y_cols,
        });
    });
}

struct GemvCols<'a> {
    x: &'a [f32],
    w: &'a [f32],
    n: usize,
    col0: usize,
    y: &'a mut [f32],
}

impl pulp::WithSimd for GemvCols<'_> {
    type Output = ();

    // Inlined into pulp's `#[target_feature]` function: the inner loop is compiled for the
    // detected instruction set. It is element-wise across `j` (no reduction across lanes),
    // and Rust never contracts `a * b + c` into a fused multiply-add, so every lane computes
    // the scalar definition.
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let GemvCols { x, w, n, col0, y } = self;
        for (b, yb) in y.chunks_mut(GEMV_BLOCK).enumerate() {
            let j0 = col0 + b * GEMV_BLOCK;
            let width = yb.len();
            yb.fill(0.0);
            for (p, &xp) in x.iter().enumerate() {
                let wr = &w[p * n + j0..p * n + j0 + width];
                for (acc, &wv) in yb.iter_mut().zip(wr) {
                    *acc += xp * wv;
                }
            }
        }
    }
}

/// `y = x · W (+ b)` for `rows` rows of width `fi`, `W` stored `fi × fo` (GPT-2's Conv1D
/// layout, and the training model's): [`gemv`] for one row, [`ops::matmul`] otherwise.
pub fn linear_in_out(
    x: &[f32],
    rows: usize,
    w: &[f32],
    b: &[f32],
    (fi, fo): (usize, usize),
    threads: usize,
) -> Vec<f32> {
    let mut y = vec![0.0f32; rows * fo];
    if rows == 1 {
        gemv(x, w, fi, fo, &mut y, threads);
    } else {
        ops::matmul(x, Trans::No, w, Trans::No, rows, fi, fo, &mut y, threads);
    }
    if !b.is_empty() {
        ops::add_row_broadcast(&mut y, b);
    }
    y
}

/// `y = x · Wᵀ + b` for `W` stored `fo × fi` (PyTorch `nn.Linear`'s layout, BERT's).
pub fn linear_out_in(
    x: &[f32],
    rows: usize,
    w: &[f32],
    b: &[f32],
    (fi, fo): (usize, usize),
    threads: usize,
) -> Vec<f32> {
    let mut y = vec![0.0f32; rows * fo];
    ops::matmul(x, Trans::No, w, Trans::Yes, rows, fi, fo, &mut y, threads);
    ops::add_row_broadcast(&mut y, b);
    y
}

/// One query row attending to `len` cached keys and values of one head.
///
/// `q` is `head_dim` wide; key `j` is `keys[j * stride + off ..][..head_dim]`, and likewise
/// for values, so caches laid out `position × d` are read in place. Writes `head_dim` outputs
/// into `out` and uses `scores` (at least `len` long) as scratch.
#[allow(clippy::too_many_arguments)]
pub fn attend_row(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    (len, stride, off): (usize, usize, usize),
    scale: f32,
    scores: &mut [f32],
    probs: &mut [f32],
    out: &mut [f32],
) {
    let hd = q.len();
    for (j, s) in scores[..len].iter_mut().enumerate() {
        let k = &keys[j * stride + off..j * stride + off + hd];
        let mut dot = 0.0f32;
        for c in 0..hd {
            dot += q[c] * k[c];
        }
        *s = dot * scale;
    }
    ops::softmax_into(&scores[..len], &mut probs[..len]);
    out.fill(0.0);
    for (j, &pj) in probs[..len].iter().enumerate() {
        let v = &values[j * stride + off..j * stride + off + hd];
        for c in 0..hd {
            out[c] += pj * v[c];
        }
    }
}

/// `x += y`, element-wise (a residual connection).
pub fn add_into(x: &mut [f32], y: &[f32]) {
    debug_assert_eq!(x.len(), y.len());
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}
