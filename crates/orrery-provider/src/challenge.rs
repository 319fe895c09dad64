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
//! Rows are dealt out in blocks from one shared counter to the claimed cores' threads
//! ([`ROW_BLOCK`] rows each time) and, on a provider whose offer claims GPUs and whose
//! self-checked GPU backend is hardware, to a GPU feeder (up to [`GPU_BLOCK`] rows, at most
//! half of those left): whoever is free takes the next block, so a fast GPU does most of the
//! rows and no party waits long for another. On the CPU, a block goes through
//! `orrery_ml`'s blocked matrix kernel (packed panels, a register tile, the best SIMD the CPU
//! has, picked at run time); on the GPU, through `orrery_ml::Device::matmul`. Every value is
//! an exact small integer in `f32` (see the types' module docs), so the result equals the
//! reference kernel's bit for bit whatever the device or the order; the tests check it.

use orrery_ml::Device;
use orrery_ml::ops::{Trans, matmul};
use orrery_types::challenge::{
    ChallengeRow, ChallengeRows, Matrix, a_row, b_matrix, matrix_row, row_leaf,
};
use orrery_types::codec::BoundedVec;
use orrery_types::hash::Hash;
use orrery_types::merkle::MerkleTree;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

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
    solve_until(cseed, n, rows, threads, None, &AtomicBool::new(false))
}

/// [`solve`] on `threads` CPU threads and, when `gpu` is a GPU, on it too, giving up with
/// [`SolveError::Cancelled`] soon after `cancel` is set (it is read once per block of rows): a
/// challenge that closed, or one the machine cannot finish in time, stops costing cores.
///
/// The rows are dealt out in blocks from one shared counter, so each party takes the next block
/// as soon as it is free: CPU threads take [`ROW_BLOCK`] rows, the GPU up to [`GPU_BLOCK`] at a
/// time but never more than half of what is left.
/// A provider whose claim counts its GPUs is sized for them, and answers with them. A GPU
/// error (out of memory, a lost device) makes the GPU's feeder finish its block on the CPU and
/// stop taking blocks; the answer is the same bits either way.
pub fn solve_until(
    cseed: &Hash,
    n: usize,
    rows: u64,
    threads: usize,
    gpu: Option<&Device>,
    cancel: &AtomicBool,
) -> Result<MerkleTree, SolveError> {
    if n == 0 || !n.is_multiple_of(16) {
        return Err(SolveError::BadDim(n));
    }
    let b = b_matrix(cseed, n);
    let total = usize::try_from(rows).unwrap_or(usize::MAX);
    let next = AtomicUsize::new(0);
    let cpu_threads = threads.clamp(1, total.div_ceil(ROW_BLOCK).max(1));
    let gpu = gpu.filter(|d| d.is_gpu());
    let parts: Vec<Vec<(usize, Vec<Hash>)>> = std::thread::scope(|s| {
        let work = Work {
            cseed,
            b: &b,
            n,
            total,
            next: &next,
            cancel,
        };
        let mut handles = Vec::new();
        if let Some(device) = gpu {
            handles.push(s.spawn(move || work.run(GPU_BLOCK, Some(device))));
        }
        for _ in 0..cpu_threads {
            handles.push(s.spawn(move || work.run(ROW_BLOCK, None)));
        }
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| SolveError::Panicked))
            .collect::<Result<_, _>>()
    })?;
    if cancel.load(Ordering::Relaxed) {
        return Err(SolveError::Cancelled);
    }
    let mut leaves = vec![Hash::default(); total];
    let mut filled = 0;
    for (start, block) in parts.into_iter().flatten() {
        filled += block.len();
        leaves[start..start + block.len()].copy_from_slice(&block);
    }
    if filled != total {
        return Err(SolveError::Panicked);
    }
    Ok(MerkleTree::new(&leaves))
}

/// Rows of `A` the GPU multiplies in one dispatch: large enough that the upload of `B` and
/// the dispatch's fixed cost are small beside the product (4,096 × 512 rows is 2 GFLOP), small
/// enough that `A` and `C` (8 MiB each at `n = 512`) fit any GPU's buffer limits.
pub const GPU_BLOCK: usize = 4_096;

/// One solve's shared inputs and its block counter.
#[derive(Clone, Copy)]
struct Work<'a> {
    cseed: &'a Hash,
    b: &'a [f32],
    n: usize,
    total: usize,
    next: &'a AtomicUsize,
    cancel: &'a AtomicBool,
}

impl Work<'_> {
    /// Take blocks of `block` rows until none are left (or the solve is called off), on
    /// `gpu` if given: each block's first row and leaves.
    fn run(self, block: usize, mut gpu: Option<&Device>) -> Vec<(usize, Vec<Hash>)> {
        let n = self.n;
        let mut a = vec![0f32; block * n];
        let mut c = vec![0f32; block * n];
        let mut values = vec![0u32; n];
        let mut done = Vec::new();
        loop {
            if self.cancel.load(Ordering::Relaxed) {
                return done;
            }
            // The GPU takes at most half of what is left, so a GPU slower than hoped never holds
            // the last large block while the threads sit idle.
            let take = if gpu.is_some() {
                let left = self.total.saturating_sub(self.next.load(Ordering::Relaxed));
                (left / 2).clamp(ROW_BLOCK, block)
            } else {
                block
            };
            let start = self.next.fetch_add(take, Ordering::Relaxed);
            if start >= self.total {
                return done;
            }
            let m = take.min(self.total - start);
            for r in 0..m {
                let row = matrix_row(self.cseed, Matrix::A, n, (start + r) as u64);
                for (dst, &x) in a[r * n..(r + 1) * n].iter_mut().zip(&row) {
                    *dst = f32::from(x);
                }
            }
            let (a, c) = (&a[..m * n], &mut c[..m * n]);
            match gpu {
                Some(device) => {
                    if let Err(e) = device.matmul(a, Trans::No, self.b, Trans::No, (m, n, n), c, 1)
                    {
                        tracing::warn!(error = %e, "challenge rows on the GPU failed; the CPU threads finish the solve");
                        gpu = None;
                        multiply(a, self.b, c, n);
                    }
                }
                None => multiply(a, self.b, c, n),
            }
            let mut leaves = Vec::with_capacity(m);
            for r in 0..m {
                for (v, &x) in values.iter_mut().zip(&c[r * n..(r + 1) * n]) {
                    *v = x as u32;
                }
                leaves.push(row_leaf((start + r) as u64, &values));
            }
            done.push((start, leaves));
            if gpu.is_none() && block == GPU_BLOCK {
                // The GPU failed: leave the rest to the CPU threads' smaller blocks.
                return done;
            }
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
