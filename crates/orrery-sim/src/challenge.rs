//! Answering the ledger's hardware challenges as a simulated provider with the hardware it
//! claims would.
//!
//! On chain a provider computes every row of `C = A·B`, commits the Merkle root over the rows'
//! leaves (`AnswerChallenge`), and then opens the rows that the seed of the block *after* the
//! answer picks (`OpenChallenge`); the ledger checks each opened row's proof and Freivalds'
//! test. The simulator makes the block seeds, so when it answers it already knows which rows
//! will be opened: it computes those rows with the reference kernel and commits a filler leaf
//! for every other row. The ledger's check is the chain's, unchanged; what is skipped is only
//! the product's bulk, the 2 s of the provider's own machine a challenge costs it, which the
//! simulating machine could not afford for thousands of challenges.
//!
//! The tree over millions of leaves, all but a few equal, is built sparsely: per level, the
//! hash of a subtree of filler leaves and the few nodes that differ (those above an opened row,
//! and the level's last node, which may be a partial subtree). O(levels × opened rows) hashes.

use orrery_types::challenge::{
    ChallengeRow, ChallengeRows, a_row, b_matrix, open_indices, row_leaf, solve_row,
};
use orrery_types::codec::BoundedVec;
use orrery_types::hash::Hash;
use orrery_types::merkle::{MerkleProof, leaf_hash, node_hash};
use std::collections::BTreeMap;

/// An answer and the opening that goes with it.
#[derive(Clone, Debug)]
pub struct Answer {
    /// The root to commit.
    pub root: Hash,
    /// The rows the chain will ask for, with their proofs under `root`.
    pub rows: ChallengeRows,
}

/// One level of the sparse tree: its width, the hash of a full subtree of filler leaves at
/// this level, and the nodes that differ from it.
struct Level {
    width: u64,
    filler: Hash,
    nodes: BTreeMap<u64, Hash>,
}

impl Level {
    fn get(&self, i: u64) -> Hash {
        self.nodes.get(&i).copied().unwrap_or(self.filler)
    }
}

/// The answer to the challenge `cseed` (`rows` rows of side `n`) whose opening will be drawn by
/// `open_seed`, opening `open_rows` rows. `None` when `rows` is 0 or a row does not fit the
/// transaction's bounds (parameters the ledger would not have drawn).
pub fn answer(
    cseed: &Hash,
    n: usize,
    rows: u64,
    open_seed: &Hash,
    open_rows: u64,
) -> Option<Answer> {
    if rows == 0 {
        return None;
    }
    let indices = open_indices(cseed, open_seed, rows, open_rows);
    let b = b_matrix(cseed, n);
    let values: Vec<Vec<u32>> = indices
        .iter()
        .map(|&i| solve_row(&b, &a_row(cseed, n, i)))
        .collect();
    let filler = leaf_hash(&Hash::tagged(b"orrery-sim/challenge/filler", &[]));
    let mut nodes: BTreeMap<u64, Hash> = indices
        .iter()
        .zip(&values)
        .map(|(&i, v)| (i, leaf_hash(&row_leaf(i, v))))
        .collect();
    nodes.entry(rows - 1).or_insert(filler);
    let mut levels = vec![Level {
        width: rows,
        filler,
        nodes,
    }];
    while let Some(level) = levels.last().filter(|l| l.width > 1) {
        let width = level.width.div_ceil(2);
        let mut parents: Vec<u64> = level.nodes.keys().map(|i| i / 2).collect();
        parents.push(width - 1);
        let nodes = parents
            .into_iter()
            .map(|p| {
                let left = level.get(2 * p);
                let hash = if 2 * p + 1 < level.width {
                    node_hash(&left, &level.get(2 * p + 1))
                } else {
                    left
                };
                (p, hash)
            })
            .collect();
        let filler = node_hash(&level.filler, &level.filler);
        levels.push(Level {
            width,
            filler,
            nodes,
        });
    }
    let root = levels.last()?.get(0);
    let opened = indices
        .iter()
        .zip(values)
        .map(|(&index, values)| {
            let mut siblings = Vec::new();
            let mut i = index;
            for level in &levels[..levels.len() - 1] {
                if (i ^ 1) < level.width {
                    siblings.push(level.get(i ^ 1));
                }
                i /= 2;
            }
            Some(ChallengeRow {
                index,
                values: BoundedVec::new(values).ok()?,
                proof: MerkleProof {
                    index,
                    leaf_count: rows,
                    siblings,
                },
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Answer {
        root,
        rows: BoundedVec::new(opened).ok()?,
    })
}

#[cfg(test)]
mod tests;
