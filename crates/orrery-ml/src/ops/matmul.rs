//! Deterministic matrix multiplication.
//!
//! # Specification
//!
//! `C (m×n) = op(A) (m×k) · op(B) (k×n)`, where `op` is identity or transpose. Every output
//! element is computed as
//!
//! ```text
//! acc = 0.0f32
//! for p in 0..k:            // strictly increasing p, never split, never reassociated
//!     acc = acc + round(A[i,p] * B[p,j])      // a separate multiply then add: no FMA
//! C[i,j] = acc
//! ```
//!
//! which is exactly the naive triple loop [`matmul_naive`]; the tests check that bitwise.
//!
//! # How it is fast anyway
//!
//! GotoBLAS-style blocking: `B` is packed once into `KC×NR` panels, each thread packs `MC×KC`
//! blocks of its own rows of `A` into `MR×KC` panels, and a `MR×NR` register tile accumulates
//! over `p`. The tile vectorizes across `j` (independent output columns), never across `p`, so
//! the vector width the compiler picks (SSE, AVX, NEON) changes speed but not one bit of output.
//! A `KC` block boundary stores the tile to `C` and reloads it, which is the same sequence of
//! roundings. Threads own disjoint, contiguous ranges of output rows; no reduction is ever split
//! across threads, so the thread count never changes the result.

use super::par_chunks_mut;

/// Whether an operand is used as stored or transposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trans {
    /// Use the matrix as stored (row-major).
    No,
    /// Use its transpose: a stored `k×m` matrix serves as `m×k`.
    Yes,
}

/// Rows of the register tile.
const MR: usize = 4;
/// Columns of the register tile (two AVX or four SSE/NEON vectors).
const NR: usize = 16;
/// Depth of a packed block: a `KC×NR` panel of `B` (16 KiB) stays in L1.
const KC: usize = 256;
/// Rows of `A` packed at a time: an `MC×KC` block (64 KiB) stays in L2.
const MC: usize = 64;
/// Below this many multiply-adds, threads cost more than they save.
const PARALLEL_MIN_WORK: usize = 32 * 32 * 32;

#[inline(always)]
fn a_at(a: &[f32], ta: Trans, m: usize, k: usize, i: usize, p: usize) -> f32 {
    match ta {
        Trans::No => a[i * k + p],
        Trans::Yes => a[p * m + i],
    }
}

#[inline(always)]
fn b_at(b: &[f32], tb: Trans, k: usize, n: usize, p: usize, j: usize) -> f32 {
    match tb {
        Trans::No => b[p * n + j],
        Trans::Yes => b[j * k + p],
    }
}

/// The reference: the naive triple loop that defines the result. Single-threaded, slow.
#[allow(clippy::too_many_arguments)]
pub fn matmul_naive(
    a: &[f32],
    ta: Trans,
    b: &[f32],
    tb: Trans,
    m: usize,
    k: usize,
    n: usize,
    c: &mut [f32],
) {
    assert_eq!(a.len(), m * k, "matmul: A has the wrong length");
    assert_eq!(b.len(), k * n, "matmul: B has the wrong length");
    assert_eq!(c.len(), m * n, "matmul: C has the wrong length");
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f32;
            for p in 0..k {
                acc += a_at(a, ta, m, k, i, p) * b_at(b, tb, k, n, p, j);
            }
            c[i * n + j] = acc;
        }
    }
}

/// `C = op(A)·op(B)`, overwriting `C`, on `threads` threads; bitwise equal to [`matmul_naive`]
/// for every thread count.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    a: &[f32],
    ta: Trans,
    b: &[f32],
    tb: Trans,
    m: usize,
    k: usize,
    n: usize,
    c: &mut [f32],
    threads: usize,
) {
    assert_eq!(a.len(), m * k, "matmul: A has the wrong length");
    assert_eq!(b.len(), k * n, "matmul: B has the wrong length");
    assert_eq!(c.len(), m * n, "matmul: C has the wrong length");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c.fill(0.0);
        return;
    }
    let packed_b = pack_b(b, tb, k, n);
    let threads = if m * n * k < PARALLEL_MIN_WORK {
        1
    } else {
        threads.max(1)
    };
    // Contiguous row ranges, a multiple of MR rows each.
    let tiles = m.div_ceil(MR);
    let rows_per_thread = tiles.div_ceil(threads) * MR;
    par_chunks_mut(c, rows_per_thread * n, threads, |chunk_index, c_rows| {
        let row0 = chunk_index * rows_per_thread;
        let rows = c_rows.len() / n;
        gemm_rows(a, ta, m, k, n, &packed_b, row0, rows, c_rows);
    });
}

/// Pack all of `op(B)` as `[k-block][column panel][p within block][NR]`, zero-padding the last
/// panel's columns.
fn pack_b(b: &[f32], tb: Trans, k: usize, n: usize) -> Vec<f32> {
    let panels = n.div_ceil(NR);
    let mut out = vec![0.0f32; k * panels * NR];
    let mut o = 0;
    let mut pc = 0;
    while pc < k {
        let kc = KC.min(k - pc);
        for jp in 0..panels {
            let j0 = jp * NR;
            let nr = NR.min(n - j0);
            for p in pc..pc + kc {
                let dst = &mut out[o..o + NR];
                match tb {
                    Trans::No => dst[..nr].copy_from_slice(&b[p * n + j0..p * n + j0 + nr]),
                    Trans::Yes => {
                        for (jj, d) in dst[..nr].iter_mut().enumerate() {
                            *d = b[(j0 + jj) * k + p];
                        }
                    }
                }
                o += NR;
            }
        }
        pc += kc;
    }
    out
}

/// Compute output rows `row0..row0+rows` into `c_rows` (those rows of `C`, full width).
#[allow(clippy::too_many_arguments)]
fn gemm_rows(
    a: &[f32],
    ta: Trans,
    m: usize,
    k: usize,
    n: usize,
    packed_b: &[f32],
    row0: usize,
    rows: usize,
    c_rows: &mut [f32],
) {
    let panels = n.div_ceil(NR);
    let mut packed_a = vec![0.0f32; MC.div_ceil(MR) * MR * KC];
    let mut pc = 0;
    while pc < k {
        let kc = KC.min(k - pc);
        let b_block = &packed_b[pc * panels * NR..(pc + kc) * panels * NR];
        let mut ic = 0;
        while ic < rows {
            let mc = MC.min(rows - ic);
            let a_panels = mc.div_ceil(MR);
            // Pack rows row0+ic .. +mc of op(A), columns pc..pc+kc, as [panel][p][MR].
            for ip in 0..a_panels {
                let base = ip * MR * kc;
                for r in 0..MR {
                    let i_local = ic + ip * MR + r;
                    if i_local < rows {
                        let i = row0 + i_local;
                        for p in 0..kc {
                            packed_a[base + p * MR + r] = a_at(a, ta, m, k, i, pc + p);
                        }
                    } else {
                        for p in 0..kc {
                            packed_a[base + p * MR + r] = 0.0;
                        }
                    }
                }
            }
            for jp in 0..panels {
                let j0 = jp * NR;
                let nr = NR.min(n - j0);
                let b_panel = &b_block[jp * kc * NR..(jp + 1) * kc * NR];
                for ip in 0..a_panels {
                    let i0 = ic + ip * MR;
                    let mr = MR.min(rows - i0);
                    let a_panel = &packed_a[ip * MR * kc..(ip + 1) * MR * kc];
                    let mut acc = [[0.0f32; NR]; MR];
                    if pc > 0 {
                        for (r, acc_row) in acc.iter_mut().enumerate().take(mr) {
                            let src = &c_rows[(i0 + r) * n + j0..(i0 + r) * n + j0 + nr];
                            acc_row[..nr].copy_from_slice(src);
                        }
                    }
                    micro_kernel(a_panel, b_panel, &mut acc);
                    for (r, acc_row) in acc.iter().enumerate().take(mr) {
                        c_rows[(i0 + r) * n + j0..(i0 + r) * n + j0 + nr]
                            .copy_from_slice(&acc_row[..nr]);
                    }
                }
            }
            ic += mc;
        }
        pc += kc;
    }
}

/// `acc[i][j] += a[p][i] * b[p][j]` for every `p` in order: one rounding for the product, one
/// for the sum, vectorized across `j` only.
#[inline(always)]
fn micro_kernel(a_panel: &[f32], b_panel: &[f32], acc: &mut [[f32; NR]; MR]) {
    let mut t = *acc;
    for (ap, bp) in a_panel.chunks_exact(MR).zip(b_panel.chunks_exact(NR)) {
        for i in 0..MR {
            let ai = ap[i];
            for j in 0..NR {
                t[i][j] += ai * bp[j];
            }
        }
    }
    *acc = t;
}
