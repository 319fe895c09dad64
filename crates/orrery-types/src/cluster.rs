//! Cluster leases: one lease, N workers, DiLoCo-style training rounds.
//!
//! A requester opens one lease naming its member providers ([`crate::tx::TxBody::OpenClusterLease`]).
//! Each round, every live member trains `inner_steps` steps on its own shard from the round's
//! starting weights, exchanges its delta with the other members peer to peer, and commits the
//! round on chain ([`crate::tx::TxBody::CommitClusterRound`]): the hash of the weights it
//! started from, [`cluster_delta_commitment`] of its delta's hash (`orrery_ml`'s `Delta::hash`,
//! over the delta's canonical bytes) and its mean inner loss. Deltas never go on chain.
//!
//! A committed (worker, round) pair drawn for a check is re-executed by a drawn verifier, who
//! seals ([`cluster_check_seal`]) and then reveals the delta hash it computed. The ledger's
//! rules are in `orrery-ledger`'s `cluster` module and `docs/protocol.md`.

use crate::codec::BoundedVec;
use crate::crypto::AccountId;
use crate::hash::{Hash, HashWriter};
use crate::tx::LeaseId;

/// Most members one cluster lease may name. Every member commits one transaction per round,
/// and the chain keeps one record per member per round; 16 bounds a round's record and the
/// exchange's fan-out (each worker sends its delta to every other).
pub const MAX_CLUSTER_MEMBERS: usize = 16;

/// Most rounds one cluster lease may run. Each round leaves one record on chain; 10,000 is
/// far beyond a DiLoCo run (hundreds of rounds) and bounds a lease's records.
pub const MAX_CLUSTER_ROUNDS: u32 = 10_000;

/// Most inner steps one round may ask of a worker: a round is the unit a verifier
/// re-executes, so it must stay a bounded amount of work.
pub const MAX_INNER_STEPS: u32 = 100_000;

/// The member providers of a cluster lease, in worker order (worker `i` trains shard `i`).
pub type ClusterMembers = BoundedVec<AccountId, MAX_CLUSTER_MEMBERS>;

/// A round's mean inner loss as committed on chain: the IEEE-754 bits of an `f32`, so the
/// record is exact and compares bitwise.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct LossBits(pub u32);

impl LossBits {
    /// The bits of `loss`.
    pub fn of(loss: f32) -> LossBits {
        LossBits(loss.to_bits())
    }
    /// The loss as a number.
    pub fn value(self) -> f32 {
        f32::from_bits(self.0)
    }
}

impl commonware_codec::Write for LossBits {
    fn write(&self, buf: &mut impl bytes::BufMut) {
        self.0.write(buf);
    }
}
impl commonware_codec::EncodeSize for LossBits {
    fn encode_size(&self) -> usize {
        4
    }
}
impl commonware_codec::Read for LossBits {
    type Cfg = ();
    fn read_cfg(
        buf: &mut impl commonware_codec::Buf,
        _: &(),
    ) -> Result<Self, commonware_codec::Error> {
        Ok(LossBits(<u32 as commonware_codec::ReadExt>::read(buf)?))
    }
}

/// What a worker commits for its round's delta: the delta's hash (`Delta::hash`, over its
/// canonical bytes) bound to the lease, the round and the worker. The worker's peers, who hold the delta,
/// check it against this; a verifier, who does not, cannot read the delta's hash from it and
/// must re-execute the round to match it.
pub fn cluster_delta_commitment(
    lease: LeaseId,
    round: u32,
    worker: &AccountId,
    delta: &Hash,
) -> Hash {
    let mut h = HashWriter::new();
    h.update(b"orrery/cluster-delta/v1")
        .update(&lease.to_be_bytes())
        .update(&round.to_be_bytes())
        .update(&worker.0)
        .update(delta.as_bytes());
    h.finish()
}

/// The seal a verifier commits over the delta hash it computed for `worker`'s `round`, bound
/// to the verifier: two verifiers who computed the same delta make different seals, so neither
/// can copy the other's before the reveal.
pub fn cluster_check_seal(
    lease: LeaseId,
    round: u32,
    worker: &AccountId,
    verifier: &AccountId,
    delta: &Hash,
) -> Hash {
    let mut h = HashWriter::new();
    h.update(b"orrery/cluster-check-seal/v1")
        .update(&lease.to_be_bytes())
        .update(&round.to_be_bytes())
        .update(&worker.0)
        .update(&verifier.0)
        .update(delta.as_bytes());
    h.finish()
}

/// How a provider's offer publishes its cluster interconnect: its endpoint URL, then
/// `#cluster=<port>&key=<hex of its 32-byte ed25519 public key>`. A URL fragment is never sent
/// to a server, so HTTP users of the endpoint (gateways) call [`endpoint_base`] and are
/// unaffected. A peer is reached at the endpoint's host and that port, and authenticated by
/// that key, which must be the key of the member's account ([`AccountId::from_public_key`]):
/// an offer cannot make its workers' peers talk to another account's machine.
pub const CLUSTER_FRAGMENT: &str = "#cluster=";

/// A member's cluster interconnect as its offer publishes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterContact {
    /// The endpoint's host (a name or an IP address).
    pub host: String,
    /// The cluster p2p port.
    pub port: u16,
    /// Its p2p identity: the key of its account.
    pub key: crate::crypto::PublicKey,
}

/// Why an endpoint does not publish a usable cluster contact.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ContactError {
    /// No `#cluster=` part: the provider does not run cluster workers.
    #[error(
        "the offer's endpoint publishes no cluster port (`{CLUSTER_FRAGMENT}<port>&key=<hex>`)"
    )]
    Missing,
    /// The URL is not `scheme://host[:port][/path]`.
    #[error("the endpoint {0:?} is not a URL with a host (scheme://host:port)")]
    BadUrl(String),
    /// The cluster part does not parse.
    #[error("the endpoint's cluster part is not `cluster=<port 1-65535>&key=<64 hex>`: {0}")]
    BadFragment(String),
    /// The key is not the account's.
    #[error("the endpoint's cluster key is not the key of account {0}")]
    WrongKey(AccountId),
}

/// The endpoint without its cluster fragment: the URL HTTP clients use.
pub fn endpoint_base(endpoint: &str) -> &str {
    endpoint.split('#').next().unwrap_or(endpoint)
}

/// The host of `scheme://host[:port][/path]` (brackets kept off an IPv6 literal).
fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let authority = authority.rsplit('@').next()?;
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.split(':').next()?
    };
    (!host.is_empty()).then_some(host)
}

/// `base` with a cluster contact appended: what an offer publishes for a provider that runs
/// cluster workers on `port` as `key`.
pub fn cluster_endpoint(
    base: &str,
    port: u16,
    key: &crate::crypto::PublicKey,
) -> Result<String, ContactError> {
    if base.contains('#') {
        return Err(ContactError::BadUrl(base.into()));
    }
    url_host(base).ok_or_else(|| ContactError::BadUrl(base.into()))?;
    if port == 0 {
        return Err(ContactError::BadFragment("port 0".into()));
    }
    Ok(format!(
        "{base}{CLUSTER_FRAGMENT}{port}&key={}",
        hex::encode(crate::codec::encode(key))
    ))
}

/// The cluster contact `account`'s offer publishes in `endpoint`, checked against the account.
pub fn cluster_contact(
    endpoint: &str,
    account: &AccountId,
) -> Result<ClusterContact, ContactError> {
    let (base, fragment) = endpoint
        .split_once(CLUSTER_FRAGMENT)
        .ok_or(ContactError::Missing)?;
    let host = url_host(base).ok_or_else(|| ContactError::BadUrl(base.into()))?;
    let bad = |why: &str| ContactError::BadFragment(why.into());
    let (port, key) = fragment
        .split_once("&key=")
        .ok_or_else(|| bad("no &key="))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| bad("the port is not 1 to 65535"))?;
    let bytes = hex::decode(key).map_err(|_| bad("the key is not hex"))?;
    let key: crate::crypto::PublicKey = crate::codec::decode("cluster key", &bytes)
        .map_err(|_| bad("the key is not an ed25519 public key"))?;
    if AccountId::from_public_key(&key) != *account {
        return Err(ContactError::WrongKey(*account));
    }
    Ok(ClusterContact {
        host: host.to_string(),
        port,
        key,
    })
}

#[cfg(test)]
mod tests;
