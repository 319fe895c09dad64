//! The agent's challenge solver: the seeded product `C = A·B` of [`orrery_types::challenge`],
//! fast, on several threads, in bounded memory.
//!
//! # What it computes
//!
//! [`solve`] returns the Merkle tree over `row_leaf(i, C[i])` for every row — the tree whose
//! root `AnswerChallenge` carries. [`open`] then produces the rows the chain drew after the
//! answer, with their proofs.
//!
//! # Memory
//!
//! `B` (`n² × 4` bytes, 1 MiB at `n = 512`) is shared by every thread; each thread holds
//! [`ROW_BLOCK`] rows of `A` and of `C` at a time (2 × 96 KiB at `n = 128`… 2 × 384 KiB at
//! 512). Only the leaves (32 bytes a row) and the
//! tree built on them (about twice that) are kept: `C` itself is never stored. The opened
//! rows are known only after the answer, so [`open`] recomputes them from their rows of `A`
//! and `B`, O(n²) each — 16 rows of 512 are 8 MFLOP, a millisecond.
//!
//! # Speed
//!
//! Rows are split into one contiguous range per thread (`std::thread::scope`). Inside a
//! range, [`ROW_BLOCK`] rows of `A` at a time go through `orrery_ml`'s blocked matrix kernel
//! (packed panels, a register tile, the best SIMD the CPU has, picked at run time) on that
//! thread. Every value is an exact small integer in `f32` (see the types' module docs), so the
//! result equals the reference kernel's bit for bit whatever the order; the tests check it.

use orrery_ml::ops::{Trans, matmul};
use orrery_types::challenge::{
    ChallengeRow, ChallengeRows, Matrix, a_row, b_matrix, matrix_row, row_leaf,
};
use orrery_types::codec::BoundedVec;
use orrery_types::hash::Hash;
use orrery_types::merkle::MerkleTree;
use std::sync::atomic::{AtomicBool, Ordering};

/// Rows of `A` multiplied at once: enough for the kernel's packed blocks (96 rows) to fill,
/// few enough that a thread's share stays in cache.
pub const ROW_BLOCK: usize = 192;

/// Why a challenge could not be solved or opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SolveError {
    /// `n` is zero or not a multiple of 16 (the generator's word size).
    #[error("challenge side {0} is not a positive multiple of 16")]
    BadDim(usize),
    /// An opened index is not a row of the challenge.
    #[error("row {index} is outside a challenge of {rows} rows")]
    NoSuchRow {
        /// The index asked for.
        index: u64,
        /// Rows of the challenge.
        rows: u64,
    },
    /// More rows to open than a transaction carries.
    #[error("too many rows to open: {0}")]
    TooManyRows(usize),
    /// The solver's thread ended without an answer.
    #[error("the solver's thread panicked")]
    Panicked,
    /// The solve was called off (the challenge closed, or the agent stops).
    #[error("called off")]
    Cancelled,
}

/// Solve the challenge `cseed` of side `n` with `rows` rows of `A` on `threads` threads: the
/// Merkle tree over every row's leaf.
pub fn solve(cseed: &Hash, n: usize, rows: u64, threads: usize) -> Result<MerkleTree, SolveError> {
    solve_until(cseed, n, rows, threads, &AtomicBool::new(false))
}

/// [`solve`], giving up with [`SolveError::Cancelled`] soon after `cancel` is set (it is read
/// once per [`ROW_BLOCK`] rows): a challenge that closed, or one the machine cannot finish in
/// time, stops costing cores.
pub fn solve_until(
    cseed: &Hash,
    n: usize,
    rows: u64,
    threads: usize,
    cancel: &AtomicBool,
) -> Result<MerkleTree, SolveError> {
    if n == 0 || !n.is_multiple_of(16) {
        return Err(SolveError::BadDim(n));
    }
    let b = b_matrix(cseed, n);
    let mut leaves = vec![Hash::default(); usize::try_from(rows).unwrap_or(usize::MAX)];
    let threads = threads.clamp(1, leaves.len().max(1));
    let per = leaves.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        for (t, chunk) in leaves.chunks_mut(per).enumerate() {
            let b = &b;
            s.spawn(move || solve_range(cseed, b, n, (t * per) as u64, chunk, cancel));
        }
    });
    if cancel.load(Ordering::Relaxed) {
        return Err(SolveError::Cancelled);
    }
    Ok(MerkleTree::new(&leaves))
}

/// Leaves of rows `first ..` into `out`, [`ROW_BLOCK`] rows at a time.
fn solve_range(
    cseed: &Hash,
    b: &[f32],
    n: usize,
    first: u64,
    out: &mut [Hash],
    cancel: &AtomicBool,
) {
    let mut a = vec![0f32; ROW_BLOCK * n];
    let mut c = vec![0f32; ROW_BLOCK * n];
    let mut values = vec![0u32; n];
    for (block, leaves) in out.chunks_mut(ROW_BLOCK).enumerate() {
        if cancel.load(Ordering::Relaxed) {
            return;
        }
        let start = first + (block * ROW_BLOCK) as u64;
        let m = leaves.len();
        for r in 0..m {
            let row = matrix_row(cseed, Matrix::A, n, start + r as u64);
            for (dst, &x) in a[r * n..(r + 1) * n].iter_mut().zip(&row) {
                *dst = f32::from(x);
            }
        }
        multiply(&a[..m * n], b, &mut c[..m * n], n);
        for (r, leaf) in leaves.iter_mut().enumerate() {
            for (v, &x) in values.iter_mut().zip(&c[r * n..(r + 1) * n]) {
                *v = x as u32;
            }
            *leaf = row_leaf(start + r as u64, &values);
        }
    }
}

/// `c = a · B` for `m` rows (`a` and `c` are `m × n`), on the calling thread.
fn multiply(a: &[f32], b: &[f32], c: &mut [f32], n: usize) {
    let m = a.len() / n;
    matmul(a, Trans::No, b, Trans::No, m, n, n, c, 1);
}

/// The opening of rows `indices` of the challenge solved into `tree`, each row recomputed
/// from its row of `A` and `B`, with its proof.
pub fn open(
    cseed: &Hash,
    n: usize,
    tree: &MerkleTree,
    indices: &[u64],
) -> Result<ChallengeRows, SolveError> {
    if n == 0 || !n.is_multiple_of(16) {
        return Err(SolveError::BadDim(n));
    }
    let b = b_matrix(cseed, n);
    let rows = indices
        .iter()
        .map(|&index| {
            let a = a_row(cseed, n, index);
            let mut c = vec![0f32; n];
            multiply(&a, &b, &mut c, n);
            let values: Vec<u32> = c.into_iter().map(|x| x as u32).collect();
            let proof = tree.proof(index).ok_or(SolveError::NoSuchRow {
                index,
                rows: tree.len(),
            })?;
            Ok(ChallengeRow {
                index,
                values: BoundedVec::new(values).map_err(|_| SolveError::BadDim(n))?,
                proof,
            })
        })
        .collect::<Result<Vec<_>, SolveError>>()?;
    let count = rows.len();
    BoundedVec::new(rows).map_err(|_| SolveError::TooManyRows(count))
}

#[cfg(test)]
mod tests;
