//! The one hash function of the protocol: SHA-256, wrapped in [`Hash`].
//!
//! Every content address (job bundles, outputs), checkpoint, transaction id, block id and
//! Merkle node is a [`Hash`]. Callers that hash structured data must domain-separate it
//! (a distinct prefix per kind of object) so that two different objects can never share a
//! preimage; [`Hash::tagged`] does that.

use bytes::{Buf as _, BufMut};
use commonware_codec::{Error as CodecError, FixedSize, Read, Write};
use commonware_cryptography::{Hasher as _, Sha256};
use std::fmt;
use std::str::FromStr;

/// Length of a [`Hash`] in bytes.
pub const HASH_LEN: usize = 32;

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash(pub [u8; HASH_LEN]);

impl Hash {
    /// The all-zero hash, used as "nothing here" (for example the root of an empty tree is not
    /// this value; see [`crate::merkle`]).
    pub const ZERO: Hash = Hash([0; HASH_LEN]);

    /// SHA-256 of `data`.
    pub fn of(data: &[u8]) -> Hash {
        Hash(Sha256::hash(&[data]).0)
    }

    /// SHA-256 over the concatenation of `parts` (no copying into one buffer).
    pub fn of_parts(parts: &[&[u8]]) -> Hash {
        Hash(Sha256::hash(parts).0)
    }

    /// SHA-256 of `data` prefixed by a domain tag, so that hashes of different kinds of object
    /// never collide by construction.
    pub fn tagged(tag: &[u8], data: &[u8]) -> Hash {
        let len = (tag.len() as u32).to_be_bytes();
        Hash::of_parts(&[&len, tag, data])
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; HASH_LEN] {
        &self.0
    }

    /// Lower-case hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 8 hex characters, for logs and tables.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

/// An incremental SHA-256 hasher producing a [`Hash`].
#[derive(Default)]
pub struct HashWriter(Sha256);

impl HashWriter {
    /// A fresh hasher.
    pub fn new() -> Self {
        Self::default()
    }
    /// Feed bytes.
    pub fn update(&mut self, data: &[u8]) -> &mut Self {
        self.0.update(data);
        self
    }
    /// Finish and return the digest.
    pub fn finish(self) -> Hash {
        let (_, digest) = self.0.finalize();
        Hash(digest.0)
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.short())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Why a string is not a hash.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseHashError {
    /// Wrong number of characters.
    #[error("a hash is 64 hex characters, got {0}")]
    Length(usize),
    /// A character outside 0-9a-f.
    #[error("a hash is hex (0-9, a-f): {0}")]
    Hex(String),
}

impl FromStr for Hash {
    type Err = ParseHashError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.strip_prefix("0x").unwrap_or(s);
        if s.len() != HASH_LEN * 2 {
            return Err(ParseHashError::Length(s.len()));
        }
        let mut out = [0u8; HASH_LEN];
        hex::decode_to_slice(s, &mut out).map_err(|e| ParseHashError::Hex(e.to_string()))?;
        Ok(Hash(out))
    }
}

impl serde::Serialize for Hash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for Hash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Write for Hash {
    fn write(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.0);
    }
}

impl FixedSize for Hash {
    const SIZE: usize = HASH_LEN;
}

impl Read for Hash {
    type Cfg = ();
    fn read_cfg(buf: &mut impl commonware_codec::Buf, _: &()) -> Result<Self, CodecError> {
        if buf.remaining() < HASH_LEN {
            return Err(CodecError::EndOfBuffer);
        }
        let mut out = [0u8; HASH_LEN];
        buf.copy_to_slice(&mut out);
        Ok(Hash(out))
    }
}

impl AsRef<[u8]> for Hash {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}
