//! Provider challenges: a seeded, exact matrix product that proves a provider is alive and as
//! fast as it claims, checked on chain in O(n²).
//!
//! # The computation
//!
//! For a challenge with seed `cseed` ([`challenge_seed`]: the drawing block's seed, the
//! provider and the height), `n = challenge_dim` and `rows` ([`challenge_rows`], sized from
//! the provider's *claimed* hardware):
//! - `B` is `n × n` and `A` is `rows × n`; every entry is an integer in `[0, 16)`. Row `i` of
//!   `A` (or `B`) comes from a counter-based SplitMix64 stream keyed by `(cseed, "A")` (or
//!   `"B"`) at counters `i·n/16 ..`, 16 entries (4 bits each) per 64-bit word, so any single row
//!   can be generated on its own ([`a_row`], [`matrix_row`]). The chain never generates `A`.
//! - `C = A·B`. Every partial sum is below `n · 15 · 15 < 2^24` for `n ≤` [`MAX_CHALLENGE_DIM`],
//!   so an ordinary `f32` matrix product — any summation order, FMA or not, CPU or GPU — is
//!   exact. `C`'s entries are written as `u32`.
//! - The answer is the Merkle root ([`crate::merkle`]) over the leaves
//!   `row_leaf(i, C[i]) = H_tagged("orrery/challenge/row", i as u64 LE ‖ C[i][j] as u32 LE …)`.
//!   The computation streams: a solver holds `B`, one row of `A` and one leaf per row.
//!
//! # The check
//!
//! The seed of the block after the answer (`open_seed`) picks `challenge_open_rows` row
//! indices ([`open_indices`]) and a Freivalds vector `r` with entries mod `p = 2^61 − 1`
//! ([`FreivaldsCheck`]). The provider opens those rows with their Merkle proofs; the chain
//! checks each row's shape ([`check_row_shape`]: `n` values, each `< 2^24`, else a malformed
//! matrix), its proof against the root, and `Σ_j C[i][j]·r_j ≡ Σ_k A[i][k]·(B·r)_k (mod p)`:
//! `B·r` once in O(n²), then O(n) per row. A wrong row passes with probability `1/p`: its
//! difference from the true row is nonzero mod `p` (every value is below `2^24`), and a
//! uniform `r` is orthogonal to a fixed nonzero vector mod a prime with probability `1/p`.
//!
//! # Why it proves throughput
//!
//! The root is committed before `open_seed` exists, so a provider that skipped a fraction `f`
//! of the rows is caught with probability `1 − (1 − f)^open_rows`. The deadline is counted in
//! block time from the draw, and `rows` is sized so that the product takes
//! `challenge_target_ms` at the claimed rate ([`claimed_flops`]): a machine much slower than
//! its claim cannot finish in time.

use crate::codec::BoundedVec;
use crate::codec_struct;
use crate::crypto::AccountId;
use crate::hash::Hash;
use crate::merkle::{MerkleProof, MerkleTree};
use crate::resources::Hardware;

/// Largest matrix side a chain may choose. Bounds an opened row's size; with entries below 16,
/// every partial sum stays below `1024 · 225 < 2^24`, so `f32` arithmetic is exact.
pub const MAX_CHALLENGE_DIM: usize = 1024;
/// Most rows one opening may carry (a chain opens `challenge_open_rows`, 16 by default).
pub const MAX_CHALLENGE_OPEN_ROWS: usize = 64;
/// Most rows of `A` in one challenge: 2^22 rows of 512 are 2.2 TFLOP, 2 s of 11 GPUs at the
/// [`GPU_FLOPS`] floor. A claim beyond what this many rows prove in the target time is proven
/// only up to it. It bounds a solver's memory (32 bytes of leaf per row) and a proof's depth.
pub const MAX_CHALLENGE_ROWS: u64 = 1 << 22;
/// Largest encoded [`crate::tx::TxBody::OpenChallenge`] transaction. It carries
/// `challenge_open_rows` rows of `n` `u32` values with their proofs (16 rows of 512 are about
/// 45 KiB), far over [`crate::tx::MAX_TX_BYTES`]; the decoder holds it to this carve-out, and a
/// genesis whose opening would not fit is refused ([`max_open_bytes`]).
pub const MAX_CHALLENGE_OPEN_BYTES: usize = 64 << 10;
/// Every entry of `C` is below this: `n · 15 · 15 < 2^24` for `n ≤` [`MAX_CHALLENGE_DIM`]. A
/// value at or above it cannot be a product of the challenge's matrices.
pub const MAX_PRODUCT_VALUE: u32 = 1 << 24;
/// The Freivalds modulus, the Mersenne prime `2^61 − 1`.
pub const FREIVALDS_PRIME: u64 = (1 << 61) - 1;

/// FLOP/s credited per claimed CPU core.
///
/// Calibrated from the reference kernel [`solve_row`] in a release build (x86-64 baseline
/// target, no `-C target-cpu`) on one core of the development machine, shared with other
/// builds: 17.3 GFLOP/s at `n = 512`
/// (`cargo test -p orrery-types --release -- --ignored reference_kernel_speed --nocapture`
/// prints it). A credit of about half of that, 8 GFLOP/s, lets a busy or older core meet its
/// claim with margin, while a machine claiming several times its cores cannot.
pub const CORE_FLOPS: u64 = 8_000_000_000;
/// FLOP/s credited per claimed GPU: 100 GFLOP/s, a floor every real data-centre or gaming GPU
/// of the last decade exceeds many times over in f32 (and that leaves a solver time to hash
/// the rows it streams back), but that a CPU box cannot fake: a provider is docked below a
/// quarter of its claim, so claiming 8 GPUs (800 GFLOP/s) takes 200 GFLOP/s of real work, about
/// twelve cores of the reference kernel — and the box's own cores count in its claim too.
pub const GPU_FLOPS: u64 = 100_000_000_000;

/// Why an opened row is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    /// A row with the wrong number of values.
    #[error("malformed matrix: row {row} has {got} values, the challenge's rows have {n}")]
    WrongLength {
        /// Which row.
        row: u64,
        /// Values sent.
        got: usize,
        /// Values expected.
        n: usize,
    },
    /// A value no product of the challenge's matrices can have.
    #[error("malformed matrix: row {row} column {column} holds {value}, at least 2^24")]
    ValueTooLarge {
        /// Which row.
        row: u64,
        /// Which column.
        column: usize,
        /// The value.
        value: u32,
    },
    /// Freivalds' test failed: the row is not the product's.
    #[error("row {row} is not row {row} of A·B (Freivalds' test failed)")]
    WrongProduct {
        /// Which row.
        row: u64,
    },
}

/// One opened row of `C` with its proof under the answer's root.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChallengeRow {
    /// The row's index in `C`.
    pub index: u64,
    /// `C[index]`: `n` values, each below [`MAX_PRODUCT_VALUE`].
    pub values: BoundedVec<u32, MAX_CHALLENGE_DIM>,
    /// Proof of `row_leaf(index, values)` at `index` under the root.
    pub proof: MerkleProof,
}
codec_struct!(ChallengeRow {
    index: u64,
    values: BoundedVec<u32, MAX_CHALLENGE_DIM>,
    proof: MerkleProof,
});

/// The rows an [`crate::tx::TxBody::OpenChallenge`] carries.
pub type ChallengeRows = BoundedVec<ChallengeRow, MAX_CHALLENGE_OPEN_ROWS>;

/// The seed of the challenge drawn for `provider` at height `drawn_at` by a block with seed
/// `block_seed`. Binding the provider and the height makes every challenge's matrices unique,
/// so an answer can be neither reused nor copied.
pub fn challenge_seed(block_seed: &Hash, provider: &AccountId, drawn_at: u64) -> Hash {
    let mut data = Vec::with_capacity(32 + 20 + 8);
    data.extend_from_slice(block_seed.as_bytes());
    data.extend_from_slice(&provider.0);
    data.extend_from_slice(&drawn_at.to_be_bytes());
    Hash::tagged(b"orrery/challenge", &data)
}

/// The throughput a hardware claim stands for, in FLOP/s: `cpu_cores ×` [`CORE_FLOPS`] `+
/// gpus ×` [`GPU_FLOPS`].
pub fn claimed_flops(hardware: &Hardware) -> u64 {
    u64::from(hardware.cpu_cores)
        .saturating_mul(CORE_FLOPS)
        .saturating_add(u64::from(hardware.gpu_count()).saturating_mul(GPU_FLOPS))
}

/// Floating-point operations of a challenge: `rows · 2n²` (a multiply and an add per term).
pub fn challenge_flops(rows: u64, n: u64) -> u64 {
    rows.saturating_mul(2).saturating_mul(n.saturating_mul(n))
}

/// Rows of `A` for a provider claiming `claimed_flops`: enough that the product takes
/// `target_ms` at the claimed rate, `ceil(rate · target_ms / 1000 / 2n²)`, clamped to
/// `[open_rows, MAX_CHALLENGE_ROWS]` (at least the rows an opening samples).
pub fn challenge_rows(claimed_flops: u64, n: u64, target_ms: u64, open_rows: u64) -> u64 {
    let work = u128::from(claimed_flops) * u128::from(target_ms);
    let per_row = 2000 * u128::from(n) * u128::from(n);
    let rows = if per_row == 0 {
        0
    } else {
        work.div_ceil(per_row)
    };
    let rows = u64::try_from(rows).unwrap_or(u64::MAX);
    rows.clamp(open_rows.min(MAX_CHALLENGE_ROWS), MAX_CHALLENGE_ROWS)
}

/// Largest encoding of an opening of `open_rows` rows of a challenge of side `n`: each row is
/// its index, `n` values with their length, and a proof at most 22 siblings deep (for
/// [`MAX_CHALLENGE_ROWS`] leaves), plus the transaction's headers and signature.
pub fn max_open_bytes(n: usize, open_rows: usize) -> usize {
    const PROOF: usize = 8 + 8 + 1 + 32 * 22;
    const HEADERS: usize = 512;
    open_rows * (8 + 4 + 4 * n + PROOF) + HEADERS
}

const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64's output function.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Word `counter` of the counter-based stream keyed by `key`.
fn stream(key: u64, counter: u64) -> u64 {
    mix(key.wrapping_add(counter.wrapping_add(1).wrapping_mul(GAMMA)))
}

fn key(tag: &[u8], parts: &[&[u8]]) -> u64 {
    let data: Vec<u8> = parts.concat();
    let h = Hash::tagged(tag, &data);
    u64::from_be_bytes(h.0[..8].try_into().unwrap_or_default())
}

/// Which matrix a row belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Matrix {
    /// The tall `rows × n` left factor.
    A,
    /// The square `n × n` right factor.
    B,
}

fn matrix_key(cseed: &Hash, which: Matrix) -> u64 {
    let name: &[u8] = match which {
        Matrix::A => b"A",
        Matrix::B => b"B",
    };
    key(b"orrery/challenge/matrix", &[cseed.as_bytes(), name])
}

fn fill_row(key: u64, n: usize, i: u64, out: &mut Vec<u8>) {
    let words = (n / 16) as u64;
    out.clear();
    for m in 0..words {
        let w = stream(key, i.wrapping_mul(words).wrapping_add(m));
        out.extend((0..16).map(|e| ((w >> (4 * e)) & 0xf) as u8));
    }
}

/// Row `i` of matrix `which` of the challenge with seed `cseed` and side `n` (a multiple of
/// 16): `n` integers in `[0, 16)`.
pub fn matrix_row(cseed: &Hash, which: Matrix, n: usize, i: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(n);
    fill_row(matrix_key(cseed, which), n, i, &mut out);
    out
}

/// Row `i` of `A` as `f32`, ready for [`solve_row`].
pub fn a_row(cseed: &Hash, n: usize, i: u64) -> Vec<f32> {
    matrix_row(cseed, Matrix::A, n, i)
        .into_iter()
        .map(f32::from)
        .collect()
}

/// `B` as `f32`, row-major (`n × n`).
pub fn b_matrix(cseed: &Hash, n: usize) -> Vec<f32> {
    let key = matrix_key(cseed, Matrix::B);
    let mut row = Vec::with_capacity(n);
    let mut b = Vec::with_capacity(n * n);
    for j in 0..n as u64 {
        fill_row(key, n, j, &mut row);
        b.extend(row.iter().map(|&x| f32::from(x)));
    }
    b
}

/// The reference kernel: one row of `C = A·B`, `c[j] = Σ_k a[k]·B[k][j]`, with `b` row-major
/// `n × n` and `n = a_row.len()`. Exact in `f32` (see the module docs), so any other kernel
/// must produce the same values.
pub fn solve_row(b: &[f32], a_row: &[f32]) -> Vec<u32> {
    let n = a_row.len();
    assert_eq!(b.len(), n * n, "B must be n × n for a row of n values");
    let mut acc = vec![0f32; n];
    for (k, &a) in a_row.iter().enumerate() {
        if a == 0.0 {
            continue;
        }
        let b_row = &b[k * n..(k + 1) * n];
        for (c, &bv) in acc.iter_mut().zip(b_row) {
            *c += a * bv;
        }
    }
    acc.into_iter().map(|v| v as u32).collect()
}

/// The leaf committed for row `i` of `C`.
pub fn row_leaf(i: u64, values: &[u32]) -> Hash {
    let mut data = Vec::with_capacity(8 + 4 * values.len());
    data.extend_from_slice(&i.to_le_bytes());
    for v in values {
        data.extend_from_slice(&v.to_le_bytes());
    }
    Hash::tagged(b"orrery/challenge/row", &data)
}

/// Solve a whole challenge with the reference kernel, single-threaded: the Merkle tree over
/// every row's leaf (its root is the answer). For tests and as the reference a faster solver
/// must agree with.
pub fn solve(cseed: &Hash, n: usize, rows: u64) -> MerkleTree {
    let b = b_matrix(cseed, n);
    let key = matrix_key(cseed, Matrix::A);
    let mut row = Vec::with_capacity(n);
    let leaves: Vec<Hash> = (0..rows)
        .map(|i| {
            fill_row(key, n, i, &mut row);
            let a: Vec<f32> = row.iter().map(|&x| f32::from(x)).collect();
            row_leaf(i, &solve_row(&b, &a))
        })
        .collect();
    MerkleTree::new(&leaves)
}

/// The opening of rows `indices` of a challenge solved into `tree`: each row recomputed with
/// the reference kernel, with its proof. `None` if an index is outside the tree.
pub fn open(cseed: &Hash, n: usize, tree: &MerkleTree, indices: &[u64]) -> Option<ChallengeRows> {
    let b = b_matrix(cseed, n);
    let rows = indices
        .iter()
        .map(|&i| {
            let values = solve_row(&b, &a_row(cseed, n, i));
            Some(ChallengeRow {
                index: i,
                values: BoundedVec::new(values).ok()?,
                proof: tree.proof(i)?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    BoundedVec::new(rows).ok()
}

/// The row indices an opening must carry, ascending and distinct: `min(count, rows)` of them,
/// drawn from `open_seed` (the seed of the block after the answer).
pub fn open_indices(cseed: &Hash, open_seed: &Hash, rows: u64, count: u64) -> Vec<u64> {
    let key = key(
        b"orrery/challenge/open",
        &[cseed.as_bytes(), open_seed.as_bytes()],
    );
    let want = count.min(rows) as usize;
    let mut picked = std::collections::BTreeSet::new();
    let mut counter = 0u64;
    while picked.len() < want {
        let x = stream(key, counter);
        counter += 1;
        picked.insert(((u128::from(x) * u128::from(rows)) >> 64) as u64);
    }
    picked.into_iter().collect()
}

/// Check an opened row's shape: `n` values, each below [`MAX_PRODUCT_VALUE`].
pub fn check_row_shape(row: u64, values: &[u32], n: usize) -> Result<(), ChallengeError> {
    if values.len() != n {
        return Err(ChallengeError::WrongLength {
            row,
            got: values.len(),
            n,
        });
    }
    match values.iter().position(|&v| v >= MAX_PRODUCT_VALUE) {
        Some(column) => Err(ChallengeError::ValueTooLarge {
            row,
            column,
            value: values[column],
        }),
        None => Ok(()),
    }
}

fn mod_p(x: u128) -> u64 {
    (x % u128::from(FREIVALDS_PRIME)) as u64
}

/// Freivalds' test for one challenge and one opening seed: `r` and `B·r` computed once
/// (O(n²)), then O(n) per row.
#[derive(Clone, Debug)]
pub struct FreivaldsCheck {
    cseed: Hash,
    n: usize,
    r: Vec<u64>,
    br: Vec<u64>,
}

impl FreivaldsCheck {
    /// Prepare the test for the challenge `cseed` of side `n`, opened with `open_seed`.
    pub fn new(cseed: &Hash, open_seed: &Hash, n: usize) -> FreivaldsCheck {
        let key = key(
            b"orrery/challenge/freivalds",
            &[cseed.as_bytes(), open_seed.as_bytes()],
        );
        let r: Vec<u64> = (0..n as u64)
            .map(|j| stream(key, j) % FREIVALDS_PRIME)
            .collect();
        let b_key = matrix_key(cseed, Matrix::B);
        let mut row = Vec::with_capacity(n);
        let br = (0..n as u64)
            .map(|k| {
                fill_row(b_key, n, k, &mut row);
                let sum: u128 = row
                    .iter()
                    .zip(&r)
                    .map(|(&b, &rj)| u128::from(b) * u128::from(rj))
                    .sum();
                mod_p(sum)
            })
            .collect();
        FreivaldsCheck {
            cseed: *cseed,
            n,
            r,
            br,
        }
    }

    /// Check that `values` is row `row` of `A·B`: its shape, then
    /// `Σ_j C[row][j]·r_j ≡ Σ_k A[row][k]·(B·r)_k (mod p)`.
    pub fn check_row(&self, row: u64, values: &[u32]) -> Result<(), ChallengeError> {
        check_row_shape(row, values, self.n)?;
        let lhs: u128 = values
            .iter()
            .zip(&self.r)
            .map(|(&c, &rj)| u128::from(c) * u128::from(rj))
            .sum();
        let a = matrix_row(&self.cseed, Matrix::A, self.n, row);
        let rhs: u128 = a
            .iter()
            .zip(&self.br)
            .map(|(&a, &brk)| u128::from(a) * u128::from(brk))
            .sum();
        if mod_p(lhs) == mod_p(rhs) {
            Ok(())
        } else {
            Err(ChallengeError::WrongProduct { row })
        }
    }
}

/// Freivalds' test over several opened rows `(index, values)` of the challenge `cseed` of side
/// `n`, opened with `open_seed`. The first failing row's error.
pub fn freivalds_check(
    cseed: &Hash,
    open_seed: &Hash,
    n: usize,
    rows: &[(u64, &[u32])],
) -> Result<(), ChallengeError> {
    let check = FreivaldsCheck::new(cseed, open_seed, n);
    rows.iter().try_for_each(|(i, v)| check.check_row(*i, v))
}

#[cfg(test)]
mod tests;
