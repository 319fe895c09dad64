//! What consensus orders: an Orrery ledger block plus the proof of its seed.
//!
//! # Encoding
//! `u32 length (big endian) || ledger block bytes || u8 has_seed_proof || [Seed]`.
//! The ledger block bytes are bounded by the decoder's `max_block_bytes` *before* anything is
//! allocated, then decoded with the ledger's own bounded decoder.
//!
//! # Digest
//! A block's consensus digest is the ledger's block hash ([`Block::hash`]), so the parent link
//! consensus checks (`parent digest`) is the same link the ledger checks (`block.parent`). The
//! seed proof is bound by that hash too: the block's `seed` field is the hash of the proof.
//! The genesis anchor (height 0, never applied) has digest `Hash::ZERO`, which is what the
//! ledger names as the parent of the first block.

use commonware_codec::{EncodeSize, Error as CodecError, Read, ReadExt as _, Write};
use commonware_consensus::simplex::scheme::bls12381_threshold::vrf::Seed;
use commonware_consensus::types::Height;
use commonware_cryptography::Digestible;
use commonware_cryptography::bls12381::primitives::variant::MinSig;
use commonware_cryptography::sha256::Digest;
use orrery_types::block::Block;
use orrery_types::hash::Hash;

/// The BLS12-381 variant of the threshold scheme: small signatures (G1), keys in G2, so that
/// certificates and seeds carried in every block are as short as possible.
pub type Variant = MinSig;

/// The consensus digest type.
pub type BlockDigest = Digest;

/// The threshold seed of a view.
pub type ViewSeed = Seed<Variant>;

/// Convert a ledger hash to a consensus digest.
pub fn digest_of(hash: &Hash) -> Digest {
    Digest(hash.0)
}

/// Convert a consensus digest to a ledger hash.
pub fn hash_of(digest: &Digest) -> Hash {
    Hash(digest.0)
}

/// The domain tag for deriving a block's seed from a threshold seed signature.
const SEED_TAG: &[u8] = b"orrery/block-seed";

/// The ledger seed derived from a view's threshold seed: `H("orrery/block-seed", round ||
/// signature)`. See `docs/protocol.md`, "Consensus and randomness".
pub fn seed_from(seed: &ViewSeed) -> Hash {
    Hash::tagged(SEED_TAG, &commonware_codec::Encode::encode(seed))
}

/// The seed of a block built directly on genesis, which has no certificate to draw from:
/// the hash of the group's public identity. Known to all in advance, so it carries no
/// randomness; it seeds only the first block, which cannot contain a sealed result whose draw
/// is due (a draw happens at least one block after the result was committed).
pub fn genesis_seed(identity: &[u8]) -> Hash {
    Hash::tagged(b"orrery/genesis-seed", identity)
}

/// A ledger block as consensus carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainBlock {
    /// The ledger block.
    pub block: Block,
    /// The threshold seed of the view the parent was certified in, from which `block.seed`
    /// derives; `None` for the genesis anchor and for a block built on it.
    pub seed_proof: Option<ViewSeed>,
    digest: Digest,
}

impl ChainBlock {
    /// Wrap a ledger block.
    pub fn new(block: Block, seed_proof: Option<ViewSeed>) -> ChainBlock {
        let digest = if block.height == 0 {
            Digest(Hash::ZERO.0)
        } else {
            digest_of(&block.hash())
        };
        ChainBlock {
            block,
            seed_proof,
            digest,
        }
    }

    /// The genesis anchor: height 0 at the genesis time, never applied to the ledger.
    pub fn genesis(genesis_time_ms: u64) -> ChainBlock {
        ChainBlock::new(
            Block {
                height: 0,
                time_ms: genesis_time_ms,
                seed: Hash::ZERO,
                parent: Hash::ZERO,
                txs: Default::default(),
            },
            None,
        )
    }

    /// The ledger hash of this block (its consensus digest).
    pub fn hash(&self) -> Hash {
        hash_of(&self.digest)
    }
}

impl Write for ChainBlock {
    fn write(&self, buf: &mut impl bytes::BufMut) {
        let bytes = self.block.encode();
        (bytes.len() as u32).write(buf);
        buf.put_slice(&bytes);
        match &self.seed_proof {
            None => 0u8.write(buf),
            Some(seed) => {
                1u8.write(buf);
                seed.write(buf);
            }
        }
    }
}

impl EncodeSize for ChainBlock {
    fn encode_size(&self) -> usize {
        4 + self.block.encode().len()
            + 1
            + self.seed_proof.as_ref().map_or(0, EncodeSize::encode_size)
    }
}

impl Read for ChainBlock {
    /// The largest ledger block encoding accepted, in bytes.
    type Cfg = usize;

    fn read_cfg(
        buf: &mut impl commonware_codec::Buf,
        max_block_bytes: &usize,
    ) -> Result<Self, CodecError> {
        let len = u32::read(buf)? as usize;
        if len > *max_block_bytes {
            return Err(CodecError::InvalidLength(len));
        }
        if buf.remaining() < len {
            return Err(CodecError::EndOfBuffer);
        }
        let mut bytes = vec![0u8; len];
        buf.copy_to_slice(&mut bytes);
        let block = Block::decode(&bytes)
            .map_err(|_| CodecError::Invalid("orrery block", "does not decode"))?;
        let seed_proof = match u8::read(buf)? {
            0 => None,
            1 => Some(ViewSeed::read(buf)?),
            t => return Err(CodecError::InvalidEnum(t)),
        };
        Ok(ChainBlock::new(block, seed_proof))
    }
}

impl Digestible for ChainBlock {
    type Digest = Digest;
    fn digest(&self) -> Digest {
        self.digest
    }
}

impl commonware_consensus::Heightable for ChainBlock {
    fn height(&self) -> Height {
        Height::new(self.block.height)
    }
}

impl commonware_consensus::Block for ChainBlock {
    fn parent(&self) -> Digest {
        digest_of(&self.block.parent)
    }
}

impl commonware_consensus::BoundedBlock for ChainBlock {
    fn max_encode_size(max_block_bytes: &usize) -> usize {
        // length prefix, block, flag, seed (round: two varints of at most 10 bytes each, then
        // a G1 signature).
        4 + max_block_bytes + 1 + 20 + 48
    }
}

#[cfg(test)]
mod tests;
