//! Orrery's shared vocabulary.
//!
//! Everything that two parties must agree on byte for byte lives here: amounts, account ids,
//! keys and signatures, hashes, Merkle trees, hardware resources, prices, and transactions with
//! their canonical binary encoding. Nothing here does I/O or reads a clock.
//!
//! Start with [`tx`] for what a user can ask the chain to do, and [`merkle`] for how lists are
//! committed to.

pub mod hash;
pub mod merkle;

pub use hash::{HASH_LEN, Hash};
pub use merkle::{MerkleProof, MerkleTree, merkle_root};
pub mod workload;
