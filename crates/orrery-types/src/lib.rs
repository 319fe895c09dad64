//! Orrery's shared vocabulary.
//!
//! Everything that two parties must agree on byte for byte lives here: amounts, account ids,
//! keys and signatures, hashes, Merkle trees, hardware resources, prices, transactions and
//! blocks with their canonical binary encoding, and the workload shape. Nothing here does I/O
//! or reads a clock.
//!
//! Start with [`tx`] for what a user can ask the chain to do, [`codec`] for the encoding rules,
//! [`merkle`] for how lists are committed to, and [`workload`] for the shape of a job.

pub mod amount;
pub mod block;
pub mod challenge;
pub mod cluster;
pub mod codec;
pub mod crypto;
pub mod hash;
pub mod inference;
pub mod merkle;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod resources;
pub mod status;
pub mod tx;
pub mod workload;

pub use amount::Amount;
pub use block::Block;
pub use crypto::{AccountId, Keypair};
pub use hash::{HASH_LEN, Hash};
pub use merkle::{MerkleProof, MerkleTree, merkle_root};
pub use resources::{GpuSpec, Hardware, PriceList, ResourceRequest, Usage};
pub use tx::{LeaseId, LeaseTerms, ProviderOffer, SignedTx, Tx, TxBody, Verification};
