//! Production start: the validator on commonware's authenticated p2p network (`lookup`
//! flavour: every peer's address is known from the configuration) over real sockets.
//!
//! Connections are mutually authenticated with the validators' ed25519 keys and encrypted;
//! only the committee's keys are admitted (peer set 0 is the committee).

use crate::api::{ChainError, Handle};
use crate::config::{CONSENSUS_NAMESPACE, ValidatorConfig};
use crate::engine::{
    CHANNEL_BACKFILL, CHANNEL_BLOCKS, CHANNEL_CERTIFICATES, CHANNEL_RESOLVER, CHANNEL_TXS,
    CHANNEL_VOTES, Channels, start_with,
};
use commonware_cryptography::ChaCha20Poly1305;
use commonware_p2p::authenticated::lookup;
use commonware_p2p::{Address, AddressableManager as _};
use commonware_runtime::{Clock, Metrics, Network, Quota, Resolver, Spawner, Storage};
use commonware_stream::cups::{self, Cups};
use commonware_stream::sake::{self, Sake};
use commonware_utils::ordered::Map;
use commonware_utils::{NZU32, NZUsize};
use std::time::Duration;

/// Messages per second accepted from one peer on each channel. A 100-validator committee sends
/// a few votes per view per peer; 1,000/s leaves room for catch-up bursts while bounding what a
/// misbehaving peer can make us process.
const CHANNEL_RATE: u32 = 1_000;
/// Messages queued to the network actor before senders see backpressure.
const NETWORK_MAILBOX: usize = 4_096;
/// Largest p2p message: the largest block plus framing and a certificate.
fn max_message_size(max_block_bytes: usize) -> u32 {
    (max_block_bytes + 64 * 1024).min(u32::MAX as usize) as u32
}

/// Start a validator from its configuration on real sockets. `context` is the runtime context
/// (commonware's tokio runtime in production); consensus journals go to the runtime's storage
/// directory, the ledger to `config.data_dir`. Every task is a child of `context`: keep the
/// calling task alive for as long as the validator should run.
pub async fn start<E>(context: E, config: ValidatorConfig) -> Result<Handle, ChainError>
where
    E: Spawner + Metrics + Clock + Storage + Network + Resolver + rand_core::CryptoRng,
{
    let validator = config.parse()?;
    let signer = validator.key.clone();
    let p2p = lookup::Config::recommended(
        Cups::<_, ChaCha20Poly1305>::new(
            Sake {
                signer,
                synchrony_bound: Duration::from_secs(5),
                max_handshake_age: Duration::from_secs(10),
                version: sake::Version::V1,
            },
            cups::Version::V1,
        ),
        CONSENSUS_NAMESPACE,
        validator.listen,
        NZUsize!(validator.peers.len().max(1)),
        max_message_size(validator.max_block_bytes),
        NZUsize!(NETWORK_MAILBOX),
    );
    let mut p2p = p2p;
    // Devnets run on one machine or a private network.
    p2p.allow_private_ips = true;
    // Several validators may share a host or NAT: a handshake per 5 s per IP (the WAN default)
    // would make a committee take minutes to connect.
    p2p.allowed_handshake_rate_per_ip = Quota::per_second(NZU32!(16));
    // Redial a lost validator within seconds: the committee is small and known, so there is
    // no reconnect storm to damp.
    p2p.peer_connection_cooldown = Duration::from_secs(2);
    p2p.dial_frequency = Duration::from_millis(500);
    let (mut network, mut oracle) = lookup::Network::new(context.child("p2p"), p2p);
    let peers: Map<_, Address> = validator
        .peers
        .iter()
        .map(|(pk, addr)| (pk.clone(), Address::from(*addr)))
        .collect::<Vec<_>>()
        .try_into()
        .map_err(|_| ChainError::Config("a peer is listed twice".into()))?;
    let _ = oracle.track(0, peers);
    let quota = Quota::per_second(NZU32!(CHANNEL_RATE));
    let channels = Channels {
        votes: network.register(CHANNEL_VOTES, quota),
        certificates: network.register(CHANNEL_CERTIFICATES, quota),
        resolver: network.register(CHANNEL_RESOLVER, quota),
        backfill: network.register(CHANNEL_BACKFILL, quota),
        blocks: network.register(CHANNEL_BLOCKS, quota),
        txs: network.register(CHANNEL_TXS, quota),
    };
    network.start();
    start_with(
        context.child("validator"),
        validator,
        channels,
        oracle.clone(),
        oracle,
    )
    .await
}
