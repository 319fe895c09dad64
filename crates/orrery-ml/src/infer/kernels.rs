//! Inference kernels on top of [`crate::ops`]: linear layers over weights packed once at load,
//! and attention of one query row against cached keys and values.
//!
//! Each follows the operation order of the operator it stands in for, so their results are
//! bitwise those of the training-side code:
//!
//! - [`linear`] computes `y[i, j] = Σ_p x[i, p] · W[p, j]`, `p` increasing from `0.0`, one
//!   multiply and one add per term: exactly [`crate::ops::matmul`]'s definition. The weights
//!   are stored as [`PackedMatrix`] panels of [`PANEL`] output columns, `p`-major, so a
//!   decoding step (one row) streams memory contiguously and keeps a panel's accumulators in
//!   registers; lanes are independent outputs, so vector width changes speed, not bits.
//!   Threads own disjoint ranges of panels.
//! - [`attend_row`] is one query row of [`crate::ops::attention_forward`]: scores
//!   `(Σ_c q[c] · k[j][c]) · scale`, softmax (max, `exp(s − max)` and sum in `j` order, times
//!   `1/sum`), then `o[c] = Σ_j p[j] · v[j][c]`, `j` increasing from `0.0`.

use crate::device::{Device, GpuMatrix};
use crate::ops;

/// Output columns per packed panel: 16 accumulators per row are two AVX2 or one AVX-512
/// register. A layout choice only: every output is computed the same way whatever it is.
pub const PANEL: usize = 16;
/// Rows computed together against one panel (their accumulators stay in registers).
const ROW_BLOCK: usize = 4;
/// Below this many multiply-adds a thread costs more than it saves: threads are spawned per
/// call, which costs 0.1–0.7 ms on a loaded machine, while a `384 × 1536` decode step takes
/// 0.03 ms on one core. In practice only output heads and long prompts are split.
pub const PARALLEL_MIN_WORK: usize = 1 << 22;

/// A `k × n` weight matrix (`y = x · W`) packed for [`linear`]: panel `c` holds columns
/// `c·PANEL ..` as `k` rows of `PANEL` values, the last panel padded with zeros. After
/// [`PackedMatrix::upload`] to a GPU it also lives there, and [`linear`] multiplies on the GPU.
#[derive(Clone, Debug)]
pub struct PackedMatrix {
    k: usize,
    n: usize,
    panels: Vec<f32>,
    gpu: Option<GpuMatrix>,
}

impl PackedMatrix {
    /// Pack `w` stored `k × n` (`[in, out]`: GPT-2's `Conv1D`).
    pub fn from_in_out(w: &[f32], k: usize, n: usize) -> PackedMatrix {
        assert_eq!(w.len(), k * n, "pack: W has the wrong length");
        Self::pack(k, n, |p, j| w[p * n + j])
    }

    /// Pack `w` stored `n × k` (`[out, in]`: PyTorch `nn.Linear`, or an embedding table used
    /// as an output head).
    pub fn from_out_in(w: &[f32], k: usize, n: usize) -> PackedMatrix {
        assert_eq!(w.len(), k * n, "pack: W has the wrong length");
        Self::pack(k, n, |p, j| w[j * k + p])
    }

    fn pack(k: usize, n: usize, at: impl Fn(usize, usize) -> f32) -> PackedMatrix {
        let panels_n = n.div_ceil(PANEL);
        let mut panels = vec![0.0f32; panels_n * k * PANEL];
        for c in 0..panels_n {
            let panel = &mut panels[c * k * PANEL..(c + 1) * k * PANEL];
            for p in 0..k {
                for l in 0..PANEL.min(n - c * PANEL) {
                    panel[p * PANEL + l] = at(p, c * PANEL + l);
                }
            }
        }
        PackedMatrix {
            k,
            n,
            panels,
            gpu: None,
        }
    }

    /// The matrix `k × n`, row-major, unpacked from its panels.
    fn unpacked(&self) -> Vec<f32> {
        let (k, n) = (self.k, self.n);
        let mut w = vec![0.0f32; k * n];
        for (c, panel) in self.panels.chunks_exact(k * PANEL).enumerate() {
            for p in 0..k {
                for l in 0..PANEL.min(n - c * PANEL) {
                    w[p * n + c * PANEL + l] = panel[p * PANEL + l];
                }
            }
        }
        w
    }

    /// Keep a copy on `device` when it is a GPU, so [`linear`] multiplies there (the CPU
    /// panels stay, for a GPU that fails later). Nothing to do on the CPU path.
    /// `Err(DeviceOutOfMemory)` names `what` and its size when the GPU cannot hold it.
    pub fn upload(&mut self, device: &Device, what: &str) -> crate::error::Result<()> {
        if device.is_gpu() {
            self.gpu = device.upload_matrix(what, &self.unpacked(), self.k, self.n)?;
        }
        Ok(())
    }

    /// Whether [`linear`] runs on a GPU for this matrix.
    pub fn on_gpu(&self) -> bool {
        self.gpu.is_some()
    }

    /// Input width.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Output width.
    pub fn n(&self) -> usize {
        self.n
    }
}

/// `y = x · W (+ b)` for `rows` rows of width `W.k()`; bitwise [`crate::ops::matmul_naive`]
/// (plus the bias added after the sum) on any thread count.
///
/// With the matrix on a GPU ([`PackedMatrix::upload`]) the product runs there: the GPU's
/// matmul kernel is bitwise the same sum. Should the GPU fail mid-call (a lost device), this
/// call falls back to the CPU panels, with a warning: same bits, slower.
pub fn linear(x: &[f32], rows: usize, w: &PackedMatrix, b: &[f32], threads: usize) -> Vec<f32> {
    let (k, n) = (w.k, w.n);
    assert_eq!(x.len(), rows * k, "linear: x has the wrong length");
    if let Some(g) = &w.gpu {
        match g.matmul(x, rows) {
            Ok(mut y) => {
                if !b.is_empty() {
                    ops::add_row_broadcast(&mut y, b);
                }
                return y;
            }
            Err(e) => tracing::warn!(
                error = %e,
                rows,
                k,
                n,
                "a GPU product failed; this one runs on the CPU (same bits)"
            ),
        }
    }
    let panels_n = n.div_ceil(PANEL);
    let threads = if rows * k * n < PARALLEL_MIN_WORK {
        1
    } else {
        threads.max(1).min(panels_n)
    };
    let per_thread = panels_n.div_ceil(threads.max(1)).max(1);
    let parts = ops::par_map(threads, threads, |t| {
        let c0 = (t * per_thread).min(panels_n);
        let c1 = ((t + 1) * per_thread).min(panels_n);
        let mut out = vec![0.0f32; rows * (c1 - c0) * PANEL];
        pulp::Arch::new().dispatch(PanelRange {
            x,
            rows,
            k,
            panels: &w.panels[c0 * k * PANEL..c1 * k * PANEL],
            out: &mut out,
        });
        (c0, c1, out)
    });
    let mut y = vec![0.0f32; rows * n];
    for (c0, c1, out) in parts {
        let width = (c1 - c0) * PANEL;
        for r in 0..rows {
            let j0 = c0 * PANEL;
            let take = (n - j0).min(width);
            y[r * n + j0..r * n + j0 + take].copy_from_slice(&out[r * width..r * width + take]);
        }
    }
    if !b.is_empty() {
        ops::add_row_broadcast(&mut y, b);
    }
    y
}

/// One thread's panels: `out` is `rows × (panels · PANEL)`.
struct PanelRange<'a> {
    x: &'a [f32],
    rows: usize,
    k: usize,
    panels: &'a [f32],
    out: &'a mut [f32],
}

impl pulp::WithSimd for PanelRange<'_> {
    type Output = ();

    // Inlined into pulp's `#[target_feature]` function, so the lane loops are compiled for
    // the detected instruction set. Lanes are independent outputs (no reduction across
    // them), and Rust never contracts `a * b + c` into a fused multiply-add.
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let PanelRange {
            x,
            rows,
            k,
            panels,
            out,
        } = self;
        let width = panels.len() / k.max(1);
        for (c, panel) in panels.chunks_exact(k * PANEL).enumerate() {
            let mut r = 0;
            while r < rows {
                match rows - r {
                    1 => panel_rows::<1>(x, k, r, panel, out, width, c),
                    2 => panel_rows::<2>(x, k, r, panel, out, width, c),
                    3 => panel_rows::<3>(x, k, r, panel, out, width, c),
                    _ => panel_rows::<ROW_BLOCK>(x, k, r, panel, out, width, c),
                }
                r += ROW_BLOCK.min(rows - r);
            }
        }
    }
}

/// Rows `r0 .. r0 + R` against one panel: `acc[r][l] = Σ_p x[r0+r, p] · panel[p][l]`.
#[inline(always)]
fn panel_rows<const R: usize>(
    x: &[f32],
    k: usize,
    r0: usize,
    panel: &[f32],
    out: &mut [f32],
    width: usize,
    c: usize,
) {
    let mut acc = [[0.0f32; PANEL]; R];
    let xs: [&[f32]; R] = std::array::from_fn(|r| &x[(r0 + r) * k..(r0 + r + 1) * k]);
    for (p, w) in panel.chunks_exact(PANEL).enumerate() {
        let Some(w) = w.first_chunk::<PANEL>() else {
            continue;
        };
        for r in 0..R {
            let xv = xs[r][p];
            for l in 0..PANEL {
                acc[r][l] += xv * w[l];
            }
        }
    }
    for (r, a) in acc.iter().enumerate() {
        let dst = (r0 + r) * width + c * PANEL;
        out[dst..dst + PANEL].copy_from_slice(a);
    }
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
