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
//! the vector width (SSE, AVX2, AVX-512, NEON) changes speed but not one bit of output. The
//! tile loop is compiled once per instruction set and picked at run time with `pulp` (safe
//! dispatch, no `unsafe` here), with a tile shape sized to that set's registers ([`Tile`]);
//! only separate multiplies and adds are ever emitted, on every path.
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

/// Depth of a packed block: a `KC×NR` panel of `B` (at most 32 KiB) stays in L1.
const KC: usize = 256;
/// Rows of `A` packed at a time (rounded down to a multiple of the tile height): an `MC×KC`
/// block stays in L2.
const MC_TARGET: usize = 96;
/// Below this many multiply-adds, threads cost more than they save.
const PARALLEL_MIN_WORK: usize = 32 * 32 * 32;

/// Register tile shapes (`MR×NR`), one per instruction set, sized to its vector registers.
/// The shape changes which elements are computed together, never how any one is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tile {
    /// 4×8: SSE2 / NEON (16 × 128-bit registers).
    Small,
    /// 6×16: AVX2 (16 × 256-bit registers).
    Medium,
    /// 8×32: AVX-512 (32 × 512-bit registers).
    Large,
}

/// Which code generation runs the tile loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// The best instruction set this CPU has (detected at run time by `pulp`).
    Best,
    /// Portable baseline code (SSE2 on x86-64), as on a CPU without AVX.
    Portable,
}

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
    let tile = match pulp::Arch::new() {
        #[cfg(target_arch = "x86_64")]
        pulp::Arch::V4(_) => Tile::Large,
        #[cfg(target_arch = "x86_64")]
        pulp::Arch::V3(_) => Tile::Medium,
        _ => Tile::Small,
    };
    matmul_with(a, ta, b, tb, (m, k, n), c, threads, tile, Isa::Best);
}

/// [`matmul`] with an explicit tile shape and instruction set (tests run every combination).
#[allow(clippy::too_many_arguments)]
pub fn matmul_with(
    a: &[f32],
    ta: Trans,
    b: &[f32],
    tb: Trans,
    (m, k, n): (usize, usize, usize),
    c: &mut [f32],
    threads: usize,
    tile: Tile,
    isa: Isa,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c.fill(0.0);
        return;
    }
    let op = Operands {
        a,
        ta,
        b,
        tb,
        m,
        k,
        n,
    };
    match tile {
        Tile::Small => tiled::<4, 8, 1>(op, c, threads, isa),
        Tile::Medium => tiled::<6, 16, 2>(op, c, threads, isa),
        Tile::Large => tiled::<8, 32, 2>(op, c, threads, isa),
    }
}

#[derive(Clone, Copy)]
struct Operands<'a> {
    a: &'a [f32],
    ta: Trans,
    b: &'a [f32],
    tb: Trans,
    m: usize,
    k: usize,
    n: usize,
}

fn tiled<const MR: usize, const NR: usize, const NV: usize>(
    op: Operands<'_>,
    c: &mut [f32],
    threads: usize,
    isa: Isa,
) {
    let Operands { m, k, n, .. } = op;
    let packed_b = pack_b::<NR>(op.b, op.tb, k, n);
    let threads = if m * n * k < PARALLEL_MIN_WORK {
        1
    } else {
        threads.max(1)
    };
    // Contiguous row ranges, a multiple of MR rows each.
    let tiles = m.div_ceil(MR);
    let rows_per_thread = tiles.div_ceil(threads) * MR;
    par_chunks_mut(c, rows_per_thread * n, threads, |chunk_index, c_rows| {
        let job = GemmRows::<MR, NR, NV> {
            op,
            packed_b: &packed_b,
            row0: chunk_index * rows_per_thread,
            c_rows,
        };
        match isa {
            Isa::Best => dispatch_best(job),
            Isa::Portable => job.run(None::<pulp::Scalar>),
        }
    });
}

/// Run `job` compiled for the instruction set its tile was sized for (AVX-512 for 8×32,
/// AVX2 for 6×16), or else for the best one this CPU has.
#[inline(always)]
fn dispatch_best<const MR: usize, const NR: usize, const NV: usize>(job: GemmRows<'_, MR, NR, NV>) {
    use pulp::Simd;
    #[cfg(target_arch = "x86_64")]
    {
        if NR == 32
            && let Some(simd) = pulp::x86::V4::try_new()
        {
            return Simd::vectorize(simd, job);
        }
        if NR == 16
            && let Some(simd) = pulp::x86::V3::try_new()
        {
            return Simd::vectorize(simd, job);
        }
    }
    pulp::Arch::new().dispatch(job)
}

/// One thread's share: output rows `row0..` into `c_rows` (those rows of `C`, full width).
struct GemmRows<'a, const MR: usize, const NR: usize, const NV: usize> {
    op: Operands<'a>,
    packed_b: &'a [f32],
    row0: usize,
    c_rows: &'a mut [f32],
}

impl<const MR: usize, const NR: usize, const NV: usize> pulp::WithSimd
    for GemmRows<'_, MR, NR, NV>
{
    type Output = ();

    // Inlined into pulp's `#[target_feature]` function, so the whole loop nest is compiled for
    // the detected instruction set. Where a tile row is exactly `NV` of that set's vectors, the
    // tile is computed with explicit vector multiplies and adds (`mul_f32s`, `add_f32s`: one
    // rounding each, lane by lane, the same as the scalar definition); otherwise the portable
    // loop is used. LLVM never contracts a multiply and an add into an FMA without fast-math
    // flags, which Rust never sets.
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        if S::F32_LANES * NV == NR {
            self.run(Some(simd))
        } else {
            self.run(None::<S>)
        }
    }
}

impl<const MR: usize, const NR: usize, const NV: usize> GemmRows<'_, MR, NR, NV> {
    #[inline(always)]
    fn run<S: pulp::Simd>(self, simd: Option<S>) {
        let Operands { a, ta, m, k, n, .. } = self.op;
        let (row0, c_rows) = (self.row0, self.c_rows);
        let rows = c_rows.len() / n;
        let panels = n.div_ceil(NR);
        let mc_max = (MC_TARGET / MR).max(1) * MR;
        let mut packed_a = vec![0.0f32; mc_max * KC];
        let mut pc = 0;
        while pc < k {
            let kc = KC.min(k - pc);
            let b_block = &self.packed_b[pc * panels * NR..(pc + kc) * panels * NR];
            let mut ic = 0;
            while ic < rows {
                let mc = mc_max.min(rows - ic);
                let a_panels = mc.div_ceil(MR);
                // Pack rows row0+ic .. +mc of op(A), columns pc..pc+kc, as [panel][p][MR].
                for ip in 0..a_panels {
                    let base = ip * MR * kc;
                    for r in 0..MR {
                        let i_local = ic + ip * MR + r;
                        if i_local < ic + mc {
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
                        let mr = MR.min(ic + mc - i0);
                        let a_panel = &packed_a[ip * MR * kc..(ip + 1) * MR * kc];
                        let mut acc = [[0.0f32; NR]; MR];
                        if pc > 0 {
                            for (r, acc_row) in acc.iter_mut().enumerate().take(mr) {
                                let src = &c_rows[(i0 + r) * n + j0..(i0 + r) * n + j0 + nr];
                                acc_row[..nr].copy_from_slice(src);
                            }
                        }
                        match simd {
                            Some(simd) => {
                                simd_kernel::<S, MR, NR, NV>(simd, a_panel, b_panel, &mut acc)
                            }
                            None => micro_kernel::<MR, NR>(a_panel, b_panel, &mut acc),
                        }
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
}

/// Pack all of `op(B)` as `[k-block][column panel][p within block][NR]`, zero-padding the last
/// panel's columns.
fn pack_b<const NR: usize>(b: &[f32], tb: Trans, k: usize, n: usize) -> Vec<f32> {
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

/// `acc[i][j] += a[p][i] * b[p][j]` for every `p` in order: one rounding for the product, one
/// for the sum, vectorized across `j` only.
#[inline(always)]
fn micro_kernel<const MR: usize, const NR: usize>(
    a_panel: &[f32],
    b_panel: &[f32],
    acc: &mut [[f32; NR]; MR],
) {
    let mut t = *acc;
    for (ap, bp) in a_panel.chunks_exact(MR).zip(b_panel.chunks_exact(NR)) {
        // Fixed-size copies (chunks_exact guarantees the lengths) let the compiler keep the
        // whole tile in registers.
        let ap: [f32; MR] = std::array::from_fn(|i| ap[i]);
        let bp: [f32; NR] = std::array::from_fn(|j| bp[j]);
        for (row, &ai) in t.iter_mut().zip(&ap) {
            for (x, &bj) in row.iter_mut().zip(&bp) {
                *x += ai * bj;
            }
        }
    }
    *acc = t;
}

/// The same tile computation as [`micro_kernel`] with explicit vectors: `acc[i][v] =
/// acc[i][v] + splat(a[p][i]) * b[p][v]`, lane by lane, `p` in order.
#[inline(always)]
fn simd_kernel<S: pulp::Simd, const MR: usize, const NR: usize, const NV: usize>(
    simd: S,
    a_panel: &[f32],
    b_panel: &[f32],
    acc: &mut [[f32; NR]; MR],
) {
    let zero: S::f32s = pulp::bytemuck::Zeroable::zeroed();
    let mut t = [[zero; NV]; MR];
    for (row, tv) in acc.iter().zip(t.iter_mut()) {
        pulp::bytemuck::cast_slice_mut::<S::f32s, f32>(tv).copy_from_slice(row);
    }
    for (ap, bp) in a_panel.chunks_exact(MR).zip(b_panel.chunks_exact(NR)) {
        let mut bv = [zero; NV];
        pulp::bytemuck::cast_slice_mut::<S::f32s, f32>(&mut bv).copy_from_slice(bp);
        for (row, &ai) in t.iter_mut().zip(ap) {
            let a = simd.splat_f32s(ai);
            for (x, &b) in row.iter_mut().zip(&bv) {
                *x = simd.add_f32s(*x, simd.mul_f32s(a, b));
            }
        }
    }
    for (row, tv) in acc.iter_mut().zip(t.iter()) {
        row.copy_from_slice(pulp::bytemuck::cast_slice::<S::f32s, f32>(tv));
    }
}
