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
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            data_dir: PathBuf::from("orrery-node-data"),
            api_listen: SocketAddr::from(([127, 0, 0, 1], 7420)),
            limits: Limits::default(),
            blobs: BlobConfig::default(),
        }
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
        Ok(())
    }
}

#[cfg(test)]
mod tests;
