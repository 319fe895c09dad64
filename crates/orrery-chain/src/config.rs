//! Validator configuration: what an operator writes in TOML, and the parsed form the engine uses.
//!
//! Key material is hex of commonware's canonical encodings:
//! - `p2p_key`: the validator's 32-byte ed25519 secret. The same key signs consensus messages
//!   (as the p2p identity) and is the validator's ledger account: the committee is the set of
//!   ledger genesis validators (`State::validators()`), each identified by the account of its
//!   p2p public key.
//! - `bls_share`: this validator's share of the group's BLS12-381 threshold key.
//! - `group_polynomial`: the group's public polynomial (its constant term is the group
//!   identity that verifies every certificate and seed).

use crate::api::ChainError;
use crate::block::Variant;
use crate::mempool::MempoolLimits;
use commonware_codec::{Copying, Decode as _, DecodeExt as _};
use commonware_cryptography::bls12381::primitives::group::Share;
use commonware_cryptography::bls12381::primitives::sharing::{ModeVersion, Sharing};
use commonware_cryptography::ed25519;
use orrery_ledger::Genesis;
use orrery_types::block::MAX_BLOCK_TXS;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

/// Default [`ValidatorConfig::block_interval_ms`]: a leader waits this long after its parent's
/// time before proposing, so that an idle chain does not spin out empty blocks and a busy one
/// fills each block. 200 ms keeps finality well under a second (a block finalizes about two
/// network round trips after its proposal).
pub const DEFAULT_BLOCK_INTERVAL_MS: u64 = 200;
/// Default [`ValidatorConfig::max_block_txs`]: 5,000 transfers per second at one block per
/// ~250 ms needs ~1,250 per block; 4,000 leaves headroom for bursts while a block of transfers
/// (~150 bytes each) stays about 600 KiB.
pub const DEFAULT_MAX_BLOCK_TXS: usize = 4_000;
/// Default [`ValidatorConfig::max_block_bytes`]: room for one dispute adjudication (which carries
/// a job bundle and a state, up to `MAX_ADJUDICATE_TX_BYTES` ≈ 4 MiB) plus 2 MiB of ordinary
/// transactions; it bounds what a Byzantine proposer can make every validator download and
/// decode, and what one p2p message must carry.
pub const DEFAULT_MAX_BLOCK_BYTES: usize =
    orrery_types::tx::MAX_ADJUDICATE_TX_BYTES + 2 * 1024 * 1024;
/// Default [`ValidatorConfig::leader_timeout_ms`]: how long to wait for a leader's proposal
/// before voting to skip its view. Several block intervals plus WAN latency.
pub const DEFAULT_LEADER_TIMEOUT_MS: u64 = 1_000;
/// Default [`ValidatorConfig::certification_timeout_ms`]: how long to wait for a proposal to be
/// notarized before voting to skip the view.
pub const DEFAULT_CERTIFICATION_TIMEOUT_MS: u64 = 2_000;
/// A block whose time is more than this far ahead of the verifier's clock is refused: it
/// bounds how far a proposer can push block time (and every later block's time) into the
/// future. Operators keep clocks within NTP accuracy, far below this.
pub const MAX_FUTURE_DRIFT_MS: u64 = 5_000;
/// How long a proposer or verifier waits for the threshold seed of the parent's view to reach
/// it. The certificate that lets it enter the view carries the seed, so this only covers local
/// delivery order.
pub const SEED_WAIT: Duration = Duration::from_secs(2);
/// Finalized blocks kept for slow subscribers of [`crate::Handle::subscribe`]; beyond that a
/// subscriber is told it lagged and re-reads blocks by height.
pub const FINALIZED_CHANNEL_CAPACITY: usize = 1_024;
/// The namespace all consensus signatures are made under, so that no other signed message can
/// be replayed as a vote.
pub const CONSENSUS_NAMESPACE: &[u8] = b"orrery/consensus/v1";

/// One peer of the committee.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// The peer's ed25519 public key, hex.
    pub public_key: String,
    /// Where it listens for p2p connections.
    pub address: SocketAddr,
}

/// A validator's configuration file.
#[derive(Clone, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatorConfig {
    /// Directory for the ledger database and consensus journals.
    pub data_dir: PathBuf,
    /// Address to accept p2p connections on.
    pub listen: SocketAddr,
    /// This validator's ed25519 secret key, hex (32 bytes).
    pub p2p_key: String,
    /// This validator's BLS12-381 threshold share, hex.
    pub bls_share: String,
    /// The group's public polynomial, hex.
    pub group_polynomial: String,
    /// Every committee member, this validator included.
    pub peers: Vec<PeerConfig>,
    /// Path of the genesis TOML (used when `genesis` is absent).
    #[serde(default)]
    pub genesis_path: Option<PathBuf>,
    /// The genesis, inline.
    #[serde(default)]
    pub genesis: Option<Genesis>,
    /// See [`DEFAULT_BLOCK_INTERVAL_MS`].
    #[serde(default = "default_block_interval_ms")]
    pub block_interval_ms: u64,
    /// See [`DEFAULT_MAX_BLOCK_TXS`]; at most [`MAX_BLOCK_TXS`].
    #[serde(default = "default_max_block_txs")]
    pub max_block_txs: usize,
    /// See [`DEFAULT_MAX_BLOCK_BYTES`].
    #[serde(default = "default_max_block_bytes")]
    pub max_block_bytes: usize,
    /// See [`DEFAULT_LEADER_TIMEOUT_MS`].
    #[serde(default = "default_leader_timeout_ms")]
    pub leader_timeout_ms: u64,
    /// See [`DEFAULT_CERTIFICATION_TIMEOUT_MS`].
    #[serde(default = "default_certification_timeout_ms")]
    pub certification_timeout_ms: u64,
    /// Mempool limits.
    #[serde(default)]
    pub mempool: MempoolLimits,
}

fn default_block_interval_ms() -> u64 {
    DEFAULT_BLOCK_INTERVAL_MS
}
fn default_max_block_txs() -> usize {
    DEFAULT_MAX_BLOCK_TXS
}
fn default_max_block_bytes() -> usize {
    DEFAULT_MAX_BLOCK_BYTES
}
fn default_leader_timeout_ms() -> u64 {
    DEFAULT_LEADER_TIMEOUT_MS
}
fn default_certification_timeout_ms() -> u64 {
    DEFAULT_CERTIFICATION_TIMEOUT_MS
}

/// A checked configuration with decoded keys.
#[derive(Clone, Debug)]
pub struct Validator {
    /// Data directory.
    pub data_dir: PathBuf,
    /// Listen address.
    pub listen: SocketAddr,
    /// This validator's key.
    pub key: ed25519::PrivateKey,
    /// This validator's share.
    pub share: Share,
    /// The group polynomial.
    pub polynomial: Sharing<Variant>,
    /// The committee (sorted by public key, as consensus orders it) and addresses.
    pub peers: Vec<(ed25519::PublicKey, SocketAddr)>,
    /// The genesis.
    pub genesis: Genesis,
    /// Block interval.
    pub block_interval: Duration,
    /// Most transactions per block.
    pub max_block_txs: usize,
    /// Most ledger-block bytes per block.
    pub max_block_bytes: usize,
    /// Leader timeout.
    pub leader_timeout: Duration,
    /// Certification timeout.
    pub certification_timeout: Duration,
    /// Mempool limits.
    pub mempool: MempoolLimits,
}

fn bad(what: impl Into<String>) -> ChainError {
    ChainError::Config(what.into())
}

fn unhex(field: &str, s: &str) -> Result<Vec<u8>, ChainError> {
    hex::decode(s.trim()).map_err(|e| bad(format!("{field} is not hex: {e}")))
}

/// Encode a key or share for the config file.
pub fn to_hex(value: &impl commonware_codec::Encode) -> String {
    hex::encode(value.encode())
}

impl ValidatorConfig {
    /// Parse TOML.
    pub fn from_toml(text: &str) -> Result<ValidatorConfig, ChainError> {
        toml::from_str(text).map_err(|e| bad(format!("not a valid validator config: {e}")))
    }

    /// Render as TOML.
    pub fn to_toml(&self) -> Result<String, ChainError> {
        toml::to_string(self).map_err(|e| bad(format!("cannot render config: {e}")))
    }

    /// Decode keys, load the genesis and check everything fits together.
    pub fn parse(&self) -> Result<Validator, ChainError> {
        let key = ed25519::PrivateKey::decode(Copying(unhex("p2p_key", &self.p2p_key)?.as_slice()))
            .map_err(|e| bad(format!("p2p_key is not an ed25519 secret key: {e}")))?;
        let share = Share::decode(Copying(unhex("bls_share", &self.bls_share)?.as_slice()))
            .map_err(|e| bad(format!("bls_share is not a BLS12-381 share: {e}")))?;
        let mut peers = Vec::with_capacity(self.peers.len());
        for p in &self.peers {
            let pk = ed25519::PublicKey::decode(Copying(
                unhex("peer public_key", &p.public_key)?.as_slice(),
            ))
            .map_err(|e| {
                bad(format!(
                    "peer key {} is not an ed25519 key: {e}",
                    p.public_key
                ))
            })?;
            peers.push((pk, p.address));
        }
        peers.sort_by(|a, b| a.0.cmp(&b.0));
        if peers.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(bad("a peer is listed twice"));
        }
        let genesis = match (&self.genesis, &self.genesis_path) {
            (Some(g), _) => g.clone(),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| bad(format!("cannot read genesis {}: {e}", path.display())))?;
                Genesis::from_toml(&text)?
            }
            (None, None) => return Err(bad("set genesis_path or an inline [genesis]")),
        };
        // The committee is the ledger's genesis validators, one vote each.
        let mut committee: Vec<_> = peers
            .iter()
            .map(|(pk, _)| orrery_types::crypto::AccountId::from_public_key(pk))
            .collect();
        committee.sort();
        let mut expected = genesis.validators.clone();
        expected.sort();
        if committee != expected {
            return Err(bad(
                "the peers' keys are not exactly the genesis validators; every genesis validator must be listed once with its p2p key",
            ));
        }
        let n = NonZeroU32::new(peers.len() as u32).ok_or_else(|| bad("no peers listed"))?;
        let poly_bytes = unhex("group_polynomial", &self.group_polynomial)?;
        let polynomial =
            Sharing::<Variant>::decode_cfg(Copying(poly_bytes.as_slice()), &(n, ModeVersion::v0()))
                .map_err(|e| {
                    bad(format!(
                        "group_polynomial does not decode for {n} validators: {e}"
                    ))
                })?;
        if !(1..=MAX_BLOCK_TXS).contains(&self.max_block_txs) {
            return Err(bad(format!("max_block_txs must be in 1..={MAX_BLOCK_TXS}")));
        }
        if self.max_block_bytes < orrery_types::tx::MAX_ADJUDICATE_TX_BYTES + 1024 {
            return Err(bad(format!(
                "max_block_bytes must hold the largest transaction, a dispute adjudication of up to \
                 {} bytes, with its block header",
                orrery_types::tx::MAX_ADJUDICATE_TX_BYTES
            )));
        }
        if self.block_interval_ms >= self.leader_timeout_ms {
            return Err(bad("block_interval_ms must be below leader_timeout_ms"));
        }
        Ok(Validator {
            data_dir: self.data_dir.clone(),
            listen: self.listen,
            key,
            share,
            polynomial,
            peers,
            genesis,
            block_interval: Duration::from_millis(self.block_interval_ms),
            max_block_txs: self.max_block_txs,
            max_block_bytes: self.max_block_bytes,
            leader_timeout: Duration::from_millis(self.leader_timeout_ms),
            certification_timeout: Duration::from_millis(self.certification_timeout_ms),
            mempool: self.mempool,
        })
    }
}
