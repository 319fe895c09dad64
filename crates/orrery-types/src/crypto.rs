//! Keys, signatures and account ids.
//!
//! Accounts are controlled by ed25519 keys (from `commonware-cryptography`). An [`AccountId`]
//! is the first 20 bytes of `H("orrery/account" || public_key)`: short enough to read, long
//! enough (160 bits) that no one can find a key for someone else's id.
//!
//! Every signature is made under a namespace (see [`NAMESPACE_TX`]), so a signature for one
//! purpose can never be replayed for another.

use crate::hash::Hash;
use bytes::BufMut;
use commonware_codec::{Error as CodecError, FixedSize, Read, ReadExt as _, Write};
use commonware_cryptography::{Signer as _, Verifier as _};
use std::fmt;
use std::str::FromStr;

pub use commonware_cryptography::ed25519::{PrivateKey, PublicKey, Signature};

/// Namespace under which transactions are signed.
pub const NAMESPACE_TX: &[u8] = b"orrery/tx/v1";

/// Length of an account id in bytes.
pub const ACCOUNT_ID_LEN: usize = 20;

/// The address of an account.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct AccountId(pub [u8; ACCOUNT_ID_LEN]);

impl AccountId {
    /// The id controlled by `key`.
    pub fn from_public_key(key: &PublicKey) -> AccountId {
        let h = Hash::tagged(b"orrery/account", key.as_ref());
        let mut id = [0u8; ACCOUNT_ID_LEN];
        id.copy_from_slice(&h.0[..ACCOUNT_ID_LEN]);
        AccountId(id)
    }

    /// Short form for tables and logs: `orr1a2b3c4…`.
    pub fn short(&self) -> String {
        format!("orr{}", hex::encode(&self.0[..4]))
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "orr{}", hex::encode(self.0))
    }
}
impl fmt::Debug for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.short())
    }
}

/// Why a string is not an account id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("an account id is \"orr\" followed by 40 hex characters: {0:?}")]
pub struct ParseAccountIdError(pub String);

impl FromStr for AccountId {
    type Err = ParseAccountIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseAccountIdError(s.into());
        let hexpart = s.strip_prefix("orr").ok_or_else(bad)?;
        let mut id = [0u8; ACCOUNT_ID_LEN];
        hex::decode_to_slice(hexpart, &mut id).map_err(|_| bad())?;
        Ok(AccountId(id))
    }
}

impl serde::Serialize for AccountId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}
impl<'de> serde::Deserialize<'de> for AccountId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Write for AccountId {
    fn write(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.0);
    }
}
impl FixedSize for AccountId {
    const SIZE: usize = ACCOUNT_ID_LEN;
}
impl Read for AccountId {
    type Cfg = ();
    fn read_cfg(buf: &mut impl commonware_codec::Buf, _: &()) -> Result<Self, CodecError> {
        Ok(AccountId(<[u8; ACCOUNT_ID_LEN]>::read(buf)?))
    }
}

/// A signing key and the account it controls.
#[derive(Clone)]
pub struct Keypair {
    secret: PrivateKey,
    public: PublicKey,
    account: AccountId,
}

impl Keypair {
    /// A key derived from a seed. Deterministic and therefore insecure: for tests, simulations
    /// and devnets only.
    pub fn from_seed(seed: u64) -> Keypair {
        Self::from_private(PrivateKey::from_seed(seed))
    }

    /// A key from its 32 secret bytes (as stored in a key file).
    pub fn from_secret_bytes(bytes: &[u8; 32]) -> Result<Keypair, CodecError> {
        let secret = PrivateKey::read_cfg(&mut commonware_codec::Copying(bytes), &())?;
        Ok(Self::from_private(secret))
    }

    fn from_private(secret: PrivateKey) -> Keypair {
        let public = secret.public_key();
        let account = AccountId::from_public_key(&public);
        Keypair {
            secret,
            public,
            account,
        }
    }

    /// The public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The account this key controls.
    pub fn account(&self) -> AccountId {
        self.account
    }

    /// Sign `msg` under `namespace`.
    pub fn sign(&self, namespace: &[u8], msg: &[u8]) -> Signature {
        self.secret.sign(namespace, msg)
    }

    /// The private key, as the identity of the holder's authenticated peer-to-peer links (a
    /// cluster worker's interconnect): peers check it against the account it controls.
    pub fn private_key(&self) -> &PrivateKey {
        &self.secret
    }

    /// The secret bytes, for writing a key file. Handle with care.
    pub fn secret_bytes(&self) -> Vec<u8> {
        crate::codec::encode(&self.secret)
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({})", self.account.short())
    }
}

/// Whether `signature` is `key`'s signature of `msg` under `namespace`.
pub fn verify(key: &PublicKey, namespace: &[u8], msg: &[u8], signature: &Signature) -> bool {
    key.verify(namespace, msg, signature)
}

/// Serde for a [`PublicKey`] as hex of its 32 bytes (for JSON views of vouchers).
pub mod public_key_hex {
    use super::PublicKey;
    use commonware_codec::{Read as _, Write as _};
    use serde::Deserialize as _;

    /// Write the key as hex.
    pub fn serialize<S: serde::Serializer>(key: &PublicKey, s: S) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::new();
        key.write(&mut bytes);
        s.serialize_str(&hex::encode(bytes))
    }

    /// Read a key from hex.
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<PublicKey, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = hex::decode(&text).map_err(serde::de::Error::custom)?;
        PublicKey::read_cfg(&mut commonware_codec::Copying(bytes.as_slice()), &())
            .map_err(serde::de::Error::custom)
    }
}

/// Serde for a [`Signature`] as hex of its 64 bytes.
pub mod signature_hex {
    use super::Signature;
    use commonware_codec::{Read as _, Write as _};
    use serde::Deserialize as _;

    /// Write the signature as hex.
    pub fn serialize<S: serde::Serializer>(sig: &Signature, s: S) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::new();
        sig.write(&mut bytes);
        s.serialize_str(&hex::encode(bytes))
    }

    /// Read a signature from hex.
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Signature, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = hex::decode(&text).map_err(serde::de::Error::custom)?;
        Signature::read_cfg(&mut commonware_codec::Copying(bytes.as_slice()), &())
            .map_err(serde::de::Error::custom)
    }
}
