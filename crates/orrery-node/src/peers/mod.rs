//! Blobs from other nodes: a job bundle or an output uploaded to one node can be read from any.
//!
//! # Placement
//! A node lists the other nodes' API base URLs (`[peers] urls`, [`PeerConfig`]). For a blob
//! hash `h`, every listed peer gets the score `SHA-256("orrery/blob-home/v1" || h || url)`,
//! and peers are ranked by score, highest first ([`rank`]; rendezvous hashing). The first
//! `replicas` of that ranking are the blob's *homes*.
//!
//! - **Upload.** A client's `PUT` is stored as before (streamed to a temporary file, hashed,
//!   synced, renamed), then pushed to the blob's homes ([`Peers::push`]: a `HEAD` first, a
//!   `PUT` only to a home that lacks it) before the upload is answered; the answer's
//!   `replicas` counts the homes that hold it.
//! - **Fetch.** A `GET` or `HEAD` of a blob the node lacks asks the node's best-ranked `ask`
//!   peers, one at a time in rank order ([`Peers::fetch`]), and stores the first body whose
//!   bytes hash to `h`, through the same store path as an upload, under the same retention
//!   rules; then it answers as if the blob had been there.
//!
//! Why bounded asks find the blob, with four nodes or a hundred: removing one peer from a
//! rendezvous ranking does not reorder the others. Every node lists every node but itself, so
//! an uploader's homes are the network-wide top `replicas` minus itself (plus the next one),
//! and a fetcher's first `ask ≥ replicas` peers include the network-wide top `replicas` minus
//! itself: each of those is a home the uploader pushed to, or the uploader itself; if the
//! fetcher is a home, it already holds the blob. One upload costs `replicas` pushes and one
//! fetch at most `ask` requests, whatever the size of the network. This needs every node to
//! spell a peer's URL the same way (the URL is what is ranked).
//!
//! A node that is not a validator (a public gateway) lists the validators. Nobody lists it,
//! so it is never a home: an upload to it is pushed to the validators that are the blob's
//! homes, and its fetches ask those same homes.
//!
//! # No loops
//! Requests between nodes carry the header [`PEER_HEADER`]. A node answers a peer's `GET` or
//! `HEAD` from its own store only, and never pushes a blob a peer pushed to it; so a client's
//! request causes at most one hop of peer requests, and nodes never ask each other in
//! circles. A client that sets the header only gets a narrower answer.
//!
//! # Bounds
//! - Size: the node's `max_blob_bytes`, enforced while the body streams; a peer declaring a
//!   larger `Content-Length` is skipped before reading.
//! - Time: `peer_timeout_secs` for a connection, an answer's headers and every gap between
//!   two chunks; `fetch_deadline_secs` for a whole fetch and `push_deadline_secs` for an
//!   upload's pushes, both below the request timeout so the waiting request gets the answer.
//! - Load: at most `max_concurrent_fetches` fetches (one more is answered 503 `overloaded`,
//!   never queued), and requests for a blob already being fetched share that fetch; at most
//!   `max_concurrent_pushes` pushes. A blob no asked peer had is answered 404 at once for
//!   `miss_ttl_secs` ([`MAX_REMEMBERED_MISSES`] hashes at most), so repeating a request for a
//!   hash nobody holds costs the peers nothing more.
//! - Redirects are not followed: a peer can only answer for itself.
//!
//! # Trust
//! A peer is trusted with nothing. Bytes that do not hash to the address are discarded
//! (never stored, never served), counted (`blob_peer_bad_bytes_total`), logged with the
//! peer's URL, and the next peer is asked. A peer can at worst withhold a blob or spend one
//! per-peer timeout of a fetch.

use crate::blobs::{BlobError, BlobStore};
use crate::config::PeerConfig;
use crate::metrics::Metrics;
use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};
use orrery_types::hash::Hash;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// The header that marks a request from another node: answered from the local store only,
/// and never passed on.
pub const PEER_HEADER: &str = "x-orrery-peer";

/// Domain separation of the placement score, so it can never collide with another use of a
/// hash over the same bytes.
const PLACEMENT_DOMAIN: &[u8] = b"orrery/blob-home/v1";

/// Most hashes remembered as missing. A flood of distinct made-up hashes evicts the oldest
/// entries rather than growing the table; each such hash still costs one bounded fetch.
pub const MAX_REMEMBERED_MISSES: usize = 65_536;

/// Idle connections kept per peer: enough for the concurrent fetches and pushes of a busy
/// node without holding sockets to a hundred peers open.
const IDLE_CONNECTIONS_PER_PEER: usize = 4;

/// Why a blob could not be had from the peers.
#[derive(Clone, Debug, thiserror::Error)]
pub enum FetchError {
    /// No asked peer served it (or the node lists no peers).
    #[error("this node has no blob {hash}, and {why}")]
    NotFound {
        /// The blob.
        hash: Hash,
        /// What each asked peer answered, or why none was asked.
        why: String,
    },
    /// The node is already fetching as many blobs as it allows.
    #[error(
        "this node is already fetching {limit} blobs from its peers; retry in a second \
         (blob {hash})"
    )]
    Busy {
        /// The blob.
        hash: Hash,
        /// `max_concurrent_fetches`.
        limit: usize,
    },
    /// The node's own disk failed while storing what a peer sent.
    #[error("storing blob {hash} fetched from a peer failed: {message}")]
    Store {
        /// The blob.
        hash: Hash,
        /// The store's error.
        message: String,
    },
}

/// What one peer answered to a fetch, when it was not the blob.
#[derive(Debug, thiserror::Error)]
enum PeerMiss {
    #[error("does not have it")]
    NotFound,
    #[error("served bytes hashing to {actual}")]
    WrongBytes { actual: Hash },
    #[error("offered {size} bytes, over this node's limit of {limit}")]
    TooLarge { size: u64, limit: u64 },
    #[error("sent more than this node's limit of {limit} bytes")]
    SentTooMuch { limit: u64 },
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("unreachable or broke off: {0}")]
    Transport(String),
    #[error("not asked: the fetch deadline passed")]
    Deadline,
    #[error("{0}")]
    Store(BlobError),
}

/// A fetch under way, shared by every request for the same blob.
type Flight = Shared<BoxFuture<'static, Result<u64, FetchError>>>;

/// The node's side of the peer protocol: ranking, fetching, pushing, and their bounds.
pub struct Peers {
    urls: Vec<String>,
    config: PeerConfig,
    blobs: Arc<BlobStore>,
    metrics: Arc<Metrics>,
    http: reqwest::Client,
    fetch_slots: Arc<Semaphore>,
    push_slots: Semaphore,
    flights: Mutex<HashMap<Hash, Flight>>,
    misses: Mutex<Misses>,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peers").field("urls", &self.urls).finish()
    }
}

/// A peer URL as it is ranked and asked: `http://host[:port][/path]` without a trailing
/// slash. Only plain HTTP: the node's API speaks nothing else (put a TLS proxy in front of a
/// node and list the proxy's plain address on the private side).
pub fn parse_peer_url(url: &str) -> Result<String, String> {
    let parsed = reqwest::Url::parse(url.trim()).map_err(|e| {
        format!("peers.urls: {url:?} is not a URL ({e}); write it as http://host:port")
    })?;
    if parsed.scheme() != "http" {
        return Err(format!(
            "peers.urls: {url:?} is not an http:// URL; nodes talk to each other over plain HTTP"
        ));
    }
    if parsed.host_str().is_none()
        || parsed.query().is_some()
        || parsed.fragment().is_some()
        || !parsed.username().is_empty()
    {
        return Err(format!(
            "peers.urls: {url:?} must be a node's API base URL (http://host:port), without a \
             query, fragment or user"
        ));
    }
    Ok(parsed.as_str().trim_end_matches('/').to_string())
}

/// `peers` (canonical URLs) best first for `hash`: the placement order of the module docs.
pub fn rank<'a>(hash: &Hash, peers: &'a [String]) -> Vec<&'a str> {
    let mut scored: Vec<(Hash, &str)> = peers
        .iter()
        .map(|url| {
            // Fixed-length domain and hash, then the URL: the parts cannot run into each other.
            let score = Hash::of_parts(&[PLACEMENT_DOMAIN, hash.as_bytes(), url.as_bytes()]);
            (score, url.as_str())
        })
        .collect();
    scored.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    scored.into_iter().map(|(_, url)| url).collect()
}

fn blob_url(peer: &str, hash: &Hash) -> String {
    format!("{peer}/api/v1/blobs/{hash}")
}

impl Peers {
    /// The peers of `config` (validated: every URL parses), storing into `blobs`.
    pub fn new(
        config: &PeerConfig,
        blobs: Arc<BlobStore>,
        metrics: Arc<Metrics>,
    ) -> Result<Peers, String> {
        let mut urls = Vec::with_capacity(config.urls.len());
        for url in &config.urls {
            let url = parse_peer_url(url)?;
            if !urls.contains(&url) {
                urls.push(url);
            }
        }
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.peer_timeout())
            .pool_max_idle_per_host(IDLE_CONNECTIONS_PER_PEER)
            .build()
            .map_err(|e| format!("cannot create the HTTP client for peers: {e}"))?;
        Ok(Peers {
            urls,
            config: config.clone(),
            blobs,
            metrics,
            http,
            fetch_slots: Arc::new(Semaphore::new(config.max_concurrent_fetches)),
            push_slots: Semaphore::new(config.max_concurrent_pushes),
            flights: Mutex::new(HashMap::new()),
            misses: Mutex::new(Misses::new(Duration::from_secs(config.miss_ttl_secs))),
        })
    }

    /// Get `hash` from the peers into the local store; returns its size. Requests for a blob
    /// already being fetched wait for that fetch; the fetch itself runs to its end (or its
    /// deadline) even if every request waiting for it goes away.
    pub async fn fetch(self: &Arc<Self>, hash: Hash) -> Result<u64, FetchError> {
        if self.urls.is_empty() {
            return Err(FetchError::NotFound {
                hash,
                why: "it lists no peers to ask".into(),
            });
        }
        if self.lock_misses().contains(&hash, Instant::now()) {
            self.metrics.fetch_outcome("remembered_miss");
            return Err(FetchError::NotFound {
                hash,
                why: format!(
                    "none of its peers had it when asked less than {}s ago",
                    self.config.miss_ttl_secs
                ),
            });
        }
        let flight = {
            let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
            match flights.get(&hash) {
                Some(flight) => flight.clone(),
                None => {
                    let Ok(slot) = self.fetch_slots.clone().try_acquire_owned() else {
                        self.metrics.fetch_outcome("busy");
                        return Err(FetchError::Busy {
                            hash,
                            limit: self.config.max_concurrent_fetches,
                        });
                    };
                    let me = self.clone();
                    let task = tokio::spawn(async move {
                        let result = me.fetch_from_peers(hash).await;
                        drop(slot);
                        me.finish(hash, &result);
                        result
                    });
                    let flight: Flight = async move {
                        task.await.unwrap_or_else(|e| {
                            Err(FetchError::Store {
                                hash,
                                message: format!("the fetch task failed: {e}"),
                            })
                        })
                    }
                    .boxed()
                    .shared();
                    flights.insert(hash, flight.clone());
                    flight
                }
            }
        };
        flight.await
    }

    fn lock_misses(&self) -> std::sync::MutexGuard<'_, Misses> {
        self.misses.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A fetch ended: remember a miss, count the outcome, let the next request start afresh.
    fn finish(&self, hash: Hash, result: &Result<u64, FetchError>) {
        let outcome = match result {
            Ok(_) => "found",
            Err(FetchError::NotFound { .. }) => {
                self.lock_misses().insert(hash, Instant::now());
                "not_found"
            }
            Err(_) => "error",
        };
        self.metrics.fetch_outcome(outcome);
        self.flights
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&hash);
    }

    /// Ask the best-ranked peers in turn until one serves bytes that hash right.
    async fn fetch_from_peers(&self, hash: Hash) -> Result<u64, FetchError> {
        let deadline = Instant::now() + Duration::from_secs(self.config.fetch_deadline_secs);
        let mut answers = Vec::new();
        for peer in rank(&hash, &self.urls).into_iter().take(self.config.ask) {
            let miss = match tokio::time::timeout_at(deadline, self.fetch_one(peer, hash)).await {
                Ok(Ok(size)) => {
                    tracing::info!(%hash, peer, size, "blob fetched from a peer");
                    return Ok(size);
                }
                Ok(Err(PeerMiss::Store(e))) => {
                    tracing::error!(%hash, peer, error = %e, "storing a fetched blob failed");
                    return Err(FetchError::Store {
                        hash,
                        message: e.to_string(),
                    });
                }
                Ok(Err(miss)) => miss,
                Err(_) => PeerMiss::Deadline,
            };
            if let PeerMiss::WrongBytes { actual } = &miss {
                self.metrics.blob_peer_bad_bytes.inc();
                tracing::warn!(%hash, %actual, peer, "a peer served wrong bytes for a blob; ignored");
            } else {
                tracing::debug!(%hash, peer, answer = %miss, "peer did not serve the blob");
            }
            let stop = matches!(miss, PeerMiss::Deadline);
            answers.push(format!("{peer} {miss}"));
            if stop {
                break;
            }
        }
        Err(FetchError::NotFound {
            hash,
            why: format!(
                "none of the peers it asked served it: {}",
                answers.join("; ")
            ),
        })
    }

    /// Fetch from one peer into the store; every wait bounded by the per-peer timeout.
    async fn fetch_one(&self, peer: &str, hash: Hash) -> Result<u64, PeerMiss> {
        let timeout = self.config.peer_timeout();
        let request = self
            .http
            .get(blob_url(peer, &hash))
            .header(PEER_HEADER, "1");
        let resp = tokio::time::timeout(timeout, request.send())
            .await
            .map_err(|_| PeerMiss::Timeout(timeout))?
            .map_err(|e| PeerMiss::Transport(e.to_string()))?;
        match resp.status().as_u16() {
            200 => {}
            404 => return Err(PeerMiss::NotFound),
            s => return Err(PeerMiss::Status(s)),
        }
        let limit = self.blobs.max_blob_bytes();
        if let Some(size) = resp.content_length()
            && size > limit
        {
            return Err(PeerMiss::TooLarge { size, limit });
        }
        let body = futures::stream::unfold(Some(resp), move |resp| async move {
            let mut resp = resp?;
            match tokio::time::timeout(timeout, resp.chunk()).await {
                Ok(Ok(Some(chunk))) => Some((Ok(chunk), Some(resp))),
                Ok(Ok(None)) => None,
                Ok(Err(e)) => Some((Err(e.to_string()), None)),
                Err(_) => Some((Err(format!("no data for {timeout:?} in the body")), None)),
            }
        });
        match self.blobs.put(hash, body).await {
            Ok((size, created)) => {
                if created {
                    self.metrics.blobs_stored.inc();
                    self.metrics.blob_bytes_stored.inc_by(size);
                }
                Ok(size)
            }
            Err(BlobError::HashMismatch { actual, .. }) => Err(PeerMiss::WrongBytes { actual }),
            Err(BlobError::TooLarge { limit }) => Err(PeerMiss::SentTooMuch { limit }),
            Err(BlobError::Body(e)) => Err(PeerMiss::Transport(e)),
            Err(e @ BlobError::Io { .. }) => Err(PeerMiss::Store(e)),
        }
    }

    /// Push a stored blob to its homes (those that lack it); returns how many homes hold it
    /// afterwards. Never fails: a home that cannot be reached is logged and not counted.
    pub async fn push(&self, hash: Hash, size: u64) -> usize {
        let deadline = Instant::now() + Duration::from_secs(self.config.push_deadline_secs);
        let homes = rank(&hash, &self.urls);
        let pushes = homes
            .into_iter()
            .take(self.config.replicas)
            .map(|peer| async move {
                let result = tokio::time::timeout_at(deadline, self.push_one(peer, hash, size))
                    .await
                    .unwrap_or_else(|_| Err("the push deadline passed".into()));
                match result {
                    Ok(outcome) => {
                        self.metrics.push_outcome(outcome);
                        tracing::debug!(%hash, peer, outcome, "blob on its home peer");
                        true
                    }
                    Err(why) => {
                        self.metrics.push_outcome("failed");
                        tracing::warn!(%hash, peer, why, "could not push a blob to its home peer");
                        false
                    }
                }
            });
        futures::future::join_all(pushes)
            .await
            .into_iter()
            .filter(|held| *held)
            .count()
    }

    /// `present` if the peer already had it, `pushed` if it took it now.
    async fn push_one(&self, peer: &str, hash: Hash, size: u64) -> Result<&'static str, String> {
        let _slot = self
            .push_slots
            .acquire()
            .await
            .map_err(|_| "the node is stopping".to_string())?;
        let url = blob_url(peer, &hash);
        let timeout = self.config.peer_timeout();
        let head = self.http.head(&url).header(PEER_HEADER, "1").send();
        match tokio::time::timeout(timeout, head).await {
            Ok(Ok(r)) if r.status().as_u16() == 200 => return Ok("present"),
            Ok(Ok(r)) if r.status().as_u16() == 404 => {}
            Ok(Ok(r)) => return Err(format!("HEAD answered HTTP {}", r.status().as_u16())),
            Ok(Err(e)) => return Err(format!("unreachable: {e}")),
            Err(_) => return Err(format!("no answer to HEAD within {timeout:?}")),
        }
        let Some((bytes, stored)) = self.blobs.read(&hash).await else {
            return Err("the blob left this node's store before it was pushed".into());
        };
        debug_assert_eq!(stored, size, "a stored blob never changes");
        let body = http_body_util::StreamBody::new(futures::StreamExt::map(bytes, |chunk| {
            chunk.map(http_body::Frame::data)
        }));
        let resp = self
            .http
            .put(&url)
            .header(PEER_HEADER, "1")
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, stored)
            .body(reqwest::Body::wrap(body))
            .send()
            .await
            .map_err(|e| format!("upload failed: {e}"))?;
        match resp.status().as_u16() {
            200 => Ok("pushed"),
            s => Err(format!(
                "PUT answered HTTP {s}: {}",
                resp.text().await.unwrap_or_default()
            )),
        }
    }
}

/// Hashes recently found on no asked peer, each for a fixed time; bounded, oldest out first.
#[derive(Debug)]
struct Misses {
    ttl: Duration,
    at: HashMap<Hash, Instant>,
    order: VecDeque<(Hash, Instant)>,
}

impl Misses {
    fn new(ttl: Duration) -> Misses {
        Misses {
            ttl,
            at: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn contains(&self, hash: &Hash, now: Instant) -> bool {
        self.at
            .get(hash)
            .is_some_and(|at| now.saturating_duration_since(*at) < self.ttl)
    }

    fn insert(&mut self, hash: Hash, now: Instant) {
        while let Some((old, at)) = self.order.front().copied() {
            let expired = now.saturating_duration_since(at) >= self.ttl;
            if !expired && self.order.len() < MAX_REMEMBERED_MISSES {
                break;
            }
            self.order.pop_front();
            // Only the latest entry of a hash owns its slot in the map.
            if self.at.get(&old) == Some(&at) {
                self.at.remove(&old);
            }
        }
        self.at.insert(hash, now);
        self.order.push_back((hash, now));
        debug_assert!(self.order.len() <= MAX_REMEMBERED_MISSES);
        debug_assert!(self.at.len() <= self.order.len());
    }
}

#[cfg(test)]
mod tests;
