//! Node configuration: where data lives, where the API listens, and every limit, each with a
//! safe default. Read from TOML ([`NodeConfig::from_toml`]); every field may be omitted.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Hard upper bound on one blob. Job bundles (a wasm module plus inputs) and outputs are
/// megabytes; 1 GiB is the most a single upload may ever hold the connection and the disk for.
/// [`BlobConfig::max_blob_bytes`] may lower it, never raise it.
pub const MAX_BLOB_BYTES: u64 = 1024 * 1024 * 1024;

/// Default blob size limit: large enough for an ML checkpoint or dataset shard, small enough
/// that a handful of concurrent uploads cannot fill a small disk.
pub const DEFAULT_MAX_BLOB_BYTES: u64 = 64 * 1024 * 1024;

/// Page sizes: part of the API's contract, so defined with its types in `orrery-client`.
pub use orrery_client::api::{DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT};

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The TOML is malformed or has unknown fields.
    #[error("invalid node configuration: {0}")]
    Toml(#[from] toml::de::Error),
    /// A value is out of range.
    #[error("invalid node configuration: {0}")]
    Invalid(String),
}

/// Everything `serve` needs besides the chain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Directory for the node's index (`index.redb`) and blobs (`blobs/`).
    pub data_dir: PathBuf,
    /// Address the HTTP API listens on. Port 0 picks a free port (tests).
    pub api_listen: SocketAddr,
    /// Request limits.
    pub limits: Limits,
    /// Blob store limits and retention.
    pub blobs: BlobConfig,
    /// Other nodes' APIs, for blobs this node does not have (see [`crate::peers`]).
    pub peers: PeerConfig,
    /// The OpenAI-compatible inference gateway under `/v1` (see [`crate::gateway`]).
    pub gateway: GatewayConfig,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            data_dir: PathBuf::from("orrery-node-data"),
            api_listen: SocketAddr::from(([127, 0, 0, 1], 7420)),
            limits: Limits::default(),
            blobs: BlobConfig::default(),
            peers: PeerConfig::default(),
            gateway: GatewayConfig::default(),
        }
    }
}

/// Most providers one inference request is tried on: a client waits at most this many
/// connect/first-token timeouts before it hears that nobody answered.
pub const MAX_GATEWAY_ATTEMPTS: u32 = 3;

/// The inference gateway's limits and timeouts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Serve `/v1/…`. Off, those routes answer 404 like any unknown path.
    pub enabled: bool,
    /// Milliseconds to open a connection to a provider before trying the next one.
    pub connect_timeout_ms: u64,
    /// Seconds a provider has to send its first byte (a whole answer, or the first streamed
    /// token) before the next one is tried: covers queueing and the prompt's forward pass.
    pub first_token_timeout_secs: u64,
    /// Seconds a whole answer may take, and the longest pause between two streamed events.
    pub response_timeout_secs: u64,
    /// Providers tried per request, at most [`MAX_GATEWAY_ATTEMPTS`].
    pub max_attempts: u32,
    /// Largest request body (bytes); larger ones are refused with 413 before parsing.
    pub max_body_bytes: usize,
    /// Inference requests in flight at once; more are answered 503 at once.
    pub max_concurrent_requests: usize,
    /// Tries to deliver a voucher to a provider that did not take it (backing off from
    /// 200 ms); after that the provider can still settle the channel's next voucher.
    pub voucher_delivery_attempts: u32,
    /// Seconds between round-trip probes of the offered providers' endpoints (`GET
    /// {endpoint}/health`, see `orrery_client::probe`), whose results feed the router's latency
    /// next to the measured time to first byte; 0 turns probing off.
    pub rtt_probe_interval_secs: u64,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            enabled: true,
            connect_timeout_ms: 2_000,
            first_token_timeout_secs: 30,
            response_timeout_secs: 300,
            max_attempts: MAX_GATEWAY_ATTEMPTS,
            max_body_bytes: 1024 * 1024,
            max_concurrent_requests: 256,
            voucher_delivery_attempts: 5,
            rtt_probe_interval_secs: 60,
        }
    }
}

impl GatewayConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.connect_timeout_ms == 0
            || self.first_token_timeout_secs == 0
            || self.response_timeout_secs == 0
        {
            return Err(ConfigError::Invalid(
                "gateway.connect_timeout_ms, first_token_timeout_secs and response_timeout_secs \
                 must be at least 1"
                    .into(),
            ));
        }
        if self.max_attempts == 0 || self.max_attempts > MAX_GATEWAY_ATTEMPTS {
            return Err(ConfigError::Invalid(format!(
                "gateway.max_attempts must be between 1 and {MAX_GATEWAY_ATTEMPTS}"
            )));
        }
        if self.max_body_bytes == 0 || self.max_concurrent_requests == 0 {
            return Err(ConfigError::Invalid(
                "gateway.max_body_bytes and gateway.max_concurrent_requests must be at least 1"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// Limits on what clients may ask of the API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Seconds one request may take before it is answered 503 `timeout` (the event stream is
    /// exempt). Bounds how long a slow handler or client can hold a slot.
    pub request_timeout_secs: u64,
    /// Requests handled at once; more are answered 503 `overloaded` at once rather than
    /// queued, so memory and latency stay bounded under a flood.
    pub max_concurrent_requests: usize,
    /// Sustained requests per second allowed from one IP address (token bucket refill rate).
    pub rate_per_ip_per_sec: f64,
    /// Burst allowed from one IP address (token bucket size).
    pub burst_per_ip: u32,
    /// Most IP addresses the rate limiter tracks; beyond it, idle entries are evicted so an
    /// attacker with many addresses cannot grow the table without bound.
    pub max_tracked_ips: usize,
    /// Largest body of any request other than a transaction or a blob (bytes).
    pub max_body_bytes: usize,
    /// Event-stream clients served at once.
    pub max_event_clients: usize,
    /// Blocks buffered per event-stream client; a client that falls further behind is
    /// disconnected (it can reconnect and read what it missed from `/blocks`).
    pub event_buffer_blocks: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_timeout_secs: 30,
            max_concurrent_requests: 256,
            rate_per_ip_per_sec: 50.0,
            burst_per_ip: 200,
            max_tracked_ips: 65_536,
            max_body_bytes: 64 * 1024,
            max_event_clients: 256,
            event_buffer_blocks: 64,
        }
    }
}

impl Limits {
    /// The request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }
}

/// Blob store limits and garbage collection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlobConfig {
    /// Largest blob accepted (bytes); at most [`MAX_BLOB_BYTES`].
    pub max_blob_bytes: u64,
    /// Blocks a lease's job and output blobs are kept after the lease settles or times out
    /// (time for the requester to fetch the output and for disputes to read it).
    pub retention_blocks: u64,
    /// Seconds an uploaded blob that no lease references is kept (time for the requester to
    /// upload a bundle and then open the lease that names it).
    pub unreferenced_grace_secs: u64,
    /// Seconds between garbage collection passes.
    pub gc_interval_secs: u64,
}

impl Default for BlobConfig {
    fn default() -> Self {
        BlobConfig {
            max_blob_bytes: DEFAULT_MAX_BLOB_BYTES,
            retention_blocks: 10_000,
            unreferenced_grace_secs: 24 * 3600,
            gc_interval_secs: 300,
        }
    }
}

/// Most peers a node may list. Every fetch and every upload ranks all of them (one SHA-256
/// each), and the config is read by hand; a thousand covers a validator set of a hundred with
/// room for public nodes, and keeps the ranking a few microseconds.
pub const MAX_PEERS: usize = 1_000;

/// Most peers asked for one missing blob, and most peers an upload is pushed to: each one is
/// a round trip and a share of the fetch deadline, and a blob's home peers are a handful by
/// design ([`crate::peers`]); more would turn one request into a fan-out.
pub const MAX_PEERS_PER_BLOB: usize = 16;

/// Where a node finds the blobs it does not hold: the other nodes' HTTP APIs, and the bounds
/// on asking them ([`crate::peers`] describes the protocol).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PeerConfig {
    /// Other nodes' API base URLs (`http://host:port`), written the same way on every node:
    /// a blob's home peers are ranked by these strings, so two nodes that spell one peer
    /// differently disagree about where its blobs live. Empty: the node serves only what it
    /// holds.
    pub urls: Vec<String>,
    /// Peers asked, best-ranked first and one at a time, for a blob this node does not hold.
    /// At least `replicas`, so that the asked peers include every home of the blob.
    pub ask: usize,
    /// Home peers a client's upload is pushed to before the upload is answered, so that any
    /// node asking its best-ranked peers finds it.
    pub replicas: usize,
    /// Seconds one peer may take to connect, to answer, or between two chunks of a body; a
    /// peer slower than this is skipped.
    pub peer_timeout_secs: u64,
    /// Seconds a whole fetch (every peer asked) may take; below `limits.request_timeout_secs`
    /// so that the request that started it still gets the answer.
    pub fetch_deadline_secs: u64,
    /// Seconds pushing an upload to its home peers may take; below
    /// `limits.request_timeout_secs`, for the same reason.
    pub push_deadline_secs: u64,
    /// Fetches from peers under way at once; one more is answered 503 `overloaded` rather
    /// than queued. Requests for a blob already being fetched wait for that fetch.
    pub max_concurrent_fetches: usize,
    /// Pushes to peers under way at once (each one streams a blob from disk).
    pub max_concurrent_pushes: usize,
    /// Seconds a blob that no asked peer had is answered 404 at once, without asking again:
    /// a client repeating a request for a hash nobody holds costs the peers nothing more.
    pub miss_ttl_secs: u64,
}

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            urls: Vec::new(),
            ask: 3,
            replicas: 2,
            peer_timeout_secs: 5,
            fetch_deadline_secs: 20,
            push_deadline_secs: 20,
            max_concurrent_fetches: 16,
            max_concurrent_pushes: 8,
            miss_ttl_secs: 5,
        }
    }
}

impl PeerConfig {
    /// Per-peer timeout.
    pub fn peer_timeout(&self) -> Duration {
        Duration::from_secs(self.peer_timeout_secs)
    }

    fn validate(&self, request_timeout_secs: u64) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.urls.len() > MAX_PEERS {
            return bad(format!(
                "peers.urls lists {} peers; at most {MAX_PEERS} are allowed",
                self.urls.len()
            ));
        }
        for url in &self.urls {
            crate::peers::parse_peer_url(url).map_err(ConfigError::Invalid)?;
        }
        if self.ask == 0 || self.ask > MAX_PEERS_PER_BLOB {
            return bad(format!(
                "peers.ask must be between 1 and {MAX_PEERS_PER_BLOB}"
            ));
        }
        if self.replicas == 0 || self.replicas > self.ask {
            return bad("peers.replicas must be at least 1 and at most peers.ask".into());
        }
        if self.peer_timeout_secs == 0
            || self.max_concurrent_fetches == 0
            || self.max_concurrent_pushes == 0
        {
            return bad("peers.peer_timeout_secs, peers.max_concurrent_fetches and \
                 peers.max_concurrent_pushes must be at least 1"
                .into());
        }
        for (name, secs) in [
            ("fetch_deadline_secs", self.fetch_deadline_secs),
            ("push_deadline_secs", self.push_deadline_secs),
        ] {
            // Without peers the deadlines are never used; a short request timeout is fine.
            if secs == 0 || (!self.urls.is_empty() && secs >= request_timeout_secs) {
                return bad(format!(
                    "peers.{name} must be at least 1 and below limits.request_timeout_secs \
                     ({request_timeout_secs})"
                ));
            }
        }
        Ok(())
    }
}

impl NodeConfig {
    /// Parse and validate a TOML configuration.
    pub fn from_toml(text: &str) -> Result<NodeConfig, ConfigError> {
        let config: NodeConfig = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Check that every value is usable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        let l = &self.limits;
        if l.request_timeout_secs == 0 {
            return bad("limits.request_timeout_secs must be at least 1");
        }
        if l.max_concurrent_requests == 0 {
            return bad("limits.max_concurrent_requests must be at least 1");
        }
        if !(l.rate_per_ip_per_sec.is_finite() && l.rate_per_ip_per_sec > 0.0) {
            return bad("limits.rate_per_ip_per_sec must be a positive number");
        }
        if l.burst_per_ip == 0 || l.max_tracked_ips == 0 {
            return bad("limits.burst_per_ip and limits.max_tracked_ips must be at least 1");
        }
        if l.max_event_clients == 0 || l.event_buffer_blocks == 0 {
            return bad(
                "limits.max_event_clients and limits.event_buffer_blocks must be at least 1",
            );
        }
        if self.blobs.max_blob_bytes == 0 || self.blobs.max_blob_bytes > MAX_BLOB_BYTES {
            return Err(ConfigError::Invalid(format!(
                "blobs.max_blob_bytes must be between 1 and {MAX_BLOB_BYTES}"
            )));
        }
        if self.blobs.gc_interval_secs == 0 {
            return bad("blobs.gc_interval_secs must be at least 1");
        }
        self.gateway.validate()?;
        self.peers.validate(l.request_timeout_secs)
    }
}

#[cfg(test)]
mod tests;
