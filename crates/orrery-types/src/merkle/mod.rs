//! Binary Merkle trees with inclusion proofs.
//!
//! Used for state roots, checkpoint commitments (the root over a workload's per-step state
//! hashes) and anything else that must be committed to as a list and later opened at one index.
//!
//! # Construction (RFC 6962 shape)
//!
//! - leaf node: `H(0x00 || leaf)`; inner node: `H(0x01 || left || right)`. The distinct prefixes
//!   make a leaf impossible to pass off as an inner node (second-preimage safety).
//! - Levels are built bottom-up; a node without a sibling is promoted unchanged to the next
//!   level. Nothing is ever duplicated, so `[a, b, c]` and `[a, b, c, c]` have different roots
//!   (the CVE-2012-2459 ambiguity cannot arise). This equals RFC 6962's recursive definition.
//! - The root of the empty list is [`empty_root`], a tagged constant.
//!
//! A proof for leaf `i` of `n` lists the siblings on the path from the leaf to the root, skipping
//! levels where the node was promoted. The verifier recomputes the path from `i` and `n`, so a
//! proof cannot be replayed for a different index or a different tree size.

use crate::hash::{Hash, HashWriter};
use bytes::BufMut;
use commonware_codec::{EncodeSize, Error as CodecError, Read, ReadExt, Write};

/// The most levels a tree can have: 2^64 leaves. Bounds proof decoding.
pub const MAX_PROOF_DEPTH: usize = 64;

const LEAF_PREFIX: u8 = 0x00;
const NODE_PREFIX: u8 = 0x01;

/// Hash of a leaf as it enters the tree.
pub fn leaf_hash(leaf: &Hash) -> Hash {
    let mut h = HashWriter::new();
    h.update(&[LEAF_PREFIX]).update(leaf.as_bytes());
    h.finish()
}

/// Hash of an inner node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = HashWriter::new();
    h.update(&[NODE_PREFIX])
        .update(left.as_bytes())
        .update(right.as_bytes());
    h.finish()
}

/// The root of a tree with no leaves.
pub fn empty_root() -> Hash {
    Hash::tagged(b"orrery/merkle/empty", &[])
}

/// The root over `leaves` without keeping the tree (O(n) time, O(n/2) scratch).
pub fn merkle_root(leaves: &[Hash]) -> Hash {
    if leaves.is_empty() {
        return empty_root();
    }
    let mut level: Vec<Hash> = leaves.iter().map(leaf_hash).collect();
    while level.len() > 1 {
        level = next_level(&level);
    }
    level[0]
}

fn next_level(level: &[Hash]) -> Vec<Hash> {
    level
        .chunks(2)
        .map(|pair| match pair {
            [l, r] => node_hash(l, r),
            [lone] => *lone,
            _ => unreachable!("chunks(2) yields one or two items"),
        })
        .collect()
}

/// A Merkle tree that keeps every level, so it can produce proofs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerkleTree {
    /// `levels[0]` are the leaf nodes; the last level holds the root alone.
    levels: Vec<Vec<Hash>>,
}

impl MerkleTree {
    /// Build the tree over `leaves`.
    pub fn new(leaves: &[Hash]) -> Self {
        let mut levels = vec![leaves.iter().map(leaf_hash).collect::<Vec<_>>()];
        while levels.last().is_some_and(|l| l.len() > 1) {
            let next = next_level(levels.last().expect("checked non-empty"));
            levels.push(next);
        }
        Self { levels }
    }

    /// Number of leaves.
    pub fn len(&self) -> u64 {
        self.levels[0].len() as u64
    }

    /// Whether the tree has no leaves.
    pub fn is_empty(&self) -> bool {
        self.levels[0].is_empty()
    }

    /// The root.
    pub fn root(&self) -> Hash {
        match self.levels.last() {
            Some(top) if top.len() == 1 => top[0],
            _ => empty_root(),
        }
    }

    /// The inclusion proof for leaf `index`, or `None` if out of range.
    pub fn proof(&self, index: u64) -> Option<MerkleProof> {
        if index >= self.len() {
            return None;
        }
        let mut siblings = Vec::new();
        let mut i = index as usize;
        for level in &self.levels[..self.levels.len() - 1] {
            let sibling = i ^ 1;
            if sibling < level.len() {
                siblings.push(level[sibling]);
            }
            i /= 2;
        }
        Some(MerkleProof {
            index,
            leaf_count: self.len(),
            siblings,
        })
    }
}

/// Proof that a leaf sits at `index` in a tree of `leaf_count` leaves.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MerkleProof {
    /// Position of the leaf.
    pub index: u64,
    /// Number of leaves in the tree the proof is for.
    pub leaf_count: u64,
    /// Sibling hashes from the leaf level upwards (promoted levels are skipped).
    pub siblings: Vec<Hash>,
}

impl MerkleProof {
    /// The root this proof yields for `leaf`, or `None` if the proof is malformed (index out of
    /// range, wrong number of siblings).
    pub fn root_for(&self, leaf: &Hash) -> Option<Hash> {
        if self.index >= self.leaf_count {
            return None;
        }
        let mut acc = leaf_hash(leaf);
        let mut i = self.index;
        let mut width = self.leaf_count;
        let mut siblings = self.siblings.iter();
        while width > 1 {
            let sibling = i ^ 1;
            if sibling < width {
                let s = siblings.next()?;
                acc = if i.is_multiple_of(2) {
                    node_hash(&acc, s)
                } else {
                    node_hash(s, &acc)
                };
            }
            i /= 2;
            width = width.div_ceil(2);
        }
        if siblings.next().is_some() {
            return None;
        }
        Some(acc)
    }

    /// Whether `leaf` is at `self.index` of the tree with root `root`.
    pub fn verify(&self, root: &Hash, leaf: &Hash) -> bool {
        self.root_for(leaf).is_some_and(|r| &r == root)
    }
}

impl Write for MerkleProof {
    fn write(&self, buf: &mut impl BufMut) {
        self.index.write(buf);
        self.leaf_count.write(buf);
        (self.siblings.len() as u8).write(buf);
        for s in &self.siblings {
            s.write(buf);
        }
    }
}

impl EncodeSize for MerkleProof {
    fn encode_size(&self) -> usize {
        8 + 8 + 1 + 32 * self.siblings.len()
    }
}

impl Read for MerkleProof {
    type Cfg = ();
    fn read_cfg(buf: &mut impl commonware_codec::Buf, _: &()) -> Result<Self, CodecError> {
        let index = u64::read(buf)?;
        let leaf_count = u64::read(buf)?;
        let n = u8::read(buf)? as usize;
        if n > MAX_PROOF_DEPTH {
            return Err(CodecError::Invalid("MerkleProof", "more than 64 siblings"));
        }
        let mut siblings = Vec::with_capacity(n);
        for _ in 0..n {
            siblings.push(Hash::read(buf)?);
        }
        Ok(Self {
            index,
            leaf_count,
            siblings,
        })
    }
}

#[cfg(test)]
mod tests;
