//! Blocks: what consensus orders and the ledger applies.
//!
//! A block carries everything the ledger may depend on besides its own state: the height, a
//! timestamp (milliseconds; set by consensus, never read from a local clock inside the ledger),
//! a random seed that no proposer can choose (see `docs/protocol.md`), the parent's hash, and
//! the transactions in order.

use crate::codec::{self, BoundedVec, DecodeError};
use crate::codec_struct;
use crate::hash::Hash;
use crate::merkle::merkle_root;
use crate::tx::SignedTx;

/// Most transactions in one block. With transactions of at most 4 KiB this caps a block's
/// encoding at 256 MiB; real blocks are far smaller (a transfer is ~150 bytes).
pub const MAX_BLOCK_TXS: usize = 65_536;

/// The transactions of a block.
pub type BlockTxs = BoundedVec<SignedTx, MAX_BLOCK_TXS>;

/// An ordered batch of transactions with the context the ledger needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// Height: the genesis state is height 0, the first block is 1.
    pub height: u64,
    /// Block time in milliseconds since the Unix epoch; never decreases.
    pub time_ms: u64,
    /// Unbiasable randomness for this block (verifier selection, sampling).
    pub seed: Hash,
    /// Hash of the previous block (`Hash::ZERO` for the first).
    pub parent: Hash,
    /// Transactions in execution order.
    pub txs: BlockTxs,
}
codec_struct!(Block {
    height: u64,
    time_ms: u64,
    seed: Hash,
    parent: Hash,
    txs: BlockTxs,
});

impl Block {
    /// Merkle root over the transaction hashes.
    pub fn tx_root(&self) -> Hash {
        merkle_root(&self.tx_hashes())
    }

    /// The ids of the transactions, in order.
    pub fn tx_hashes(&self) -> Vec<Hash> {
        self.txs.as_slice().iter().map(SignedTx::hash).collect()
    }

    /// The block's id: a hash over its header fields and transaction root.
    pub fn hash(&self) -> Hash {
        self.hash_with(&self.tx_hashes())
    }

    /// [`Block::hash`] from transaction ids the caller already computed.
    pub fn hash_with(&self, tx_hashes: &[Hash]) -> Hash {
        let mut header = Vec::with_capacity(8 + 8 + 32 + 32 + 32);
        header.extend_from_slice(&self.height.to_be_bytes());
        header.extend_from_slice(&self.time_ms.to_be_bytes());
        header.extend_from_slice(self.seed.as_bytes());
        header.extend_from_slice(self.parent.as_bytes());
        header.extend_from_slice(merkle_root(tx_hashes).as_bytes());
        Hash::tagged(b"orrery/block", &header)
    }

    /// Encode canonically.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decode, bounded by the type's limits.
    pub fn decode(bytes: &[u8]) -> Result<Block, DecodeError> {
        codec::decode("block", bytes)
    }
}
