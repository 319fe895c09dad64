//! Prometheus metrics, served as text at `/metrics`.
//!
//! Names (all prefixed `orrery_node_`): `http_requests_total{route,method,status}`,
//! `http_request_duration_seconds{route}`, `txs_submitted_total`,
//! `tx_rejects_total{reason}`, `rate_limited_total`, `blobs_stored_total`,
//! `blob_bytes_stored_total`, `blobs_deleted_total`, `chain_height`, `indexed_height`,
//! `finalized_blocks_total`, `event_clients`, `event_clients_dropped_total`,
//! `blob_fetches_total{outcome}` (fetches from peers: `found`, `not_found`, `error`, and
//! requests answered without one: `remembered_miss`, `busy`), `blob_peer_bad_bytes_total`
//! (peers that served bytes not hashing to the address), `blob_pushes_total{outcome}`
//! (an upload's pushes to its home peers: `present`, `pushed`, `failed`).
//! Route labels are the route templates (`/api/v1/txs/{hash}`), never raw paths, so a client
//! cannot create label values at will.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Route template, or `unmatched`.
    pub route: String,
    /// HTTP method.
    pub method: String,
    /// Status code.
    pub status: u16,
}

/// Labels of a per-route histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// Route template.
    pub route: String,
}

/// Labels of a refusal counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// The error code.
    pub reason: String,
}

/// Labels of an outcome counter (a fixed set of values, named in the module docs).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// What happened.
    pub outcome: String,
}

fn new_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 4.0, 9))
}

/// The node's metrics.
pub struct Metrics {
    registry: Registry,
    /// Requests by route, method and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Request latency by route.
    pub request_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    /// Transactions accepted into the mempool.
    pub txs_submitted: Counter,
    /// Transactions refused, by error code.
    pub tx_rejects: Family<ReasonLabels, Counter>,
    /// Requests refused by the per-IP rate limit.
    pub rate_limited: Counter,
    /// Blobs newly stored.
    pub blobs_stored: Counter,
    /// Bytes of newly stored blobs.
    pub blob_bytes_stored: Counter,
    /// Blobs deleted by garbage collection.
    pub blobs_deleted: Counter,
    /// Chain height seen by the node.
    pub chain_height: Gauge,
    /// Height the index has reached.
    pub indexed_height: Gauge,
    /// Finalized blocks received.
    pub finalized_blocks: Counter,
    /// Event-stream clients connected.
    pub event_clients: Gauge,
    /// Event-stream clients dropped for reading too slowly.
    pub event_clients_dropped: Counter,
    /// Blob fetches from peers, by outcome.
    pub blob_fetches: Family<OutcomeLabels, Counter>,
    /// Peers that served bytes not hashing to the blob asked for.
    pub blob_peer_bad_bytes: Counter,
    /// Pushes of uploads to their home peers, by outcome.
    pub blob_pushes: Family<OutcomeLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Register every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("orrery_node");
        let m = Metrics {
            requests: Family::default(),
            request_duration: Family::new_with_constructor(new_histogram),
            txs_submitted: Counter::default(),
            tx_rejects: Family::default(),
            rate_limited: Counter::default(),
            blobs_stored: Counter::default(),
            blob_bytes_stored: Counter::default(),
            blobs_deleted: Counter::default(),
            chain_height: Gauge::default(),
            indexed_height: Gauge::default(),
            finalized_blocks: Counter::default(),
            event_clients: Gauge::default(),
            event_clients_dropped: Counter::default(),
            blob_fetches: Family::default(),
            blob_peer_bad_bytes: Counter::default(),
            blob_pushes: Family::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "http_requests",
            "HTTP requests by route, method and status",
            m.requests.clone(),
        );
        r.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            m.request_duration.clone(),
        );
        r.register(
            "txs_submitted",
            "Transactions accepted into the mempool",
            m.txs_submitted.clone(),
        );
        r.register(
            "tx_rejects",
            "Transactions refused, by reason",
            m.tx_rejects.clone(),
        );
        r.register(
            "rate_limited",
            "Requests refused by the per-IP rate limit",
            m.rate_limited.clone(),
        );
        r.register("blobs_stored", "Blobs newly stored", m.blobs_stored.clone());
        r.register(
            "blob_bytes_stored",
            "Bytes of newly stored blobs",
            m.blob_bytes_stored.clone(),
        );
        r.register(
            "blobs_deleted",
            "Blobs deleted by garbage collection",
            m.blobs_deleted.clone(),
        );
        r.register(
            "chain_height",
            "Height of the last finalized block seen",
            m.chain_height.clone(),
        );
        r.register(
            "indexed_height",
            "Height the local index has reached",
            m.indexed_height.clone(),
        );
        r.register(
            "finalized_blocks",
            "Finalized blocks received",
            m.finalized_blocks.clone(),
        );
        r.register(
            "event_clients",
            "Event-stream clients connected",
            m.event_clients.clone(),
        );
        r.register(
            "event_clients_dropped",
            "Event-stream clients dropped for reading too slowly",
            m.event_clients_dropped.clone(),
        );
        r.register(
            "blob_fetches",
            "Blob fetches from peers, and requests answered without one, by outcome",
            m.blob_fetches.clone(),
        );
        r.register(
            "blob_peer_bad_bytes",
            "Peers that served bytes not hashing to the blob asked for",
            m.blob_peer_bad_bytes.clone(),
        );
        r.register(
            "blob_pushes",
            "Pushes of uploaded blobs to their home peers, by outcome",
            m.blob_pushes.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Count a refused transaction.
    pub fn reject(&self, reason: &str) {
        self.tx_rejects
            .get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Count a blob fetch by outcome.
    pub fn fetch_outcome(&self, outcome: &str) {
        self.blob_fetches
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Count a push to a home peer by outcome.
    pub fn push_outcome(&self, outcome: &str) {
        self.blob_pushes
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
