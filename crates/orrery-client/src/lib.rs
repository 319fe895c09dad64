//! A blocking Rust SDK for an Orrery node's HTTP API.
//!
//! [`Client`] has one typed method per endpoint of `/api/v1` (see `docs/api.md`), plus
//! [`Client::wait_for_tx`] (poll until a transaction is in a finalized block) and
//! [`Client::events`] (the live block stream as an iterator). The JSON shapes live in [`api`]
//! and are the very types the node serializes.
//!
//! Failure model: every method returns [`Error`]. A refusal by the node is [`Error::Api`] with
//! the node's stable `code` (e.g. `stale_nonce`, `rate_limited`), its message and, for 429/503,
//! the `Retry-After` seconds; a node that cannot be reached is [`Error::Transport`]; a reply
//! that is not what the API promises is [`Error::Decode`]. Blobs fetched with
//! [`Client::get_blob`] are checked against their hash, so a lying node cannot hand back other
//! bytes.
//!
//! [`probe::RttProbe`] measures round-trip times to providers' endpoints for the router.

pub mod api;
pub mod inference;
pub mod probe;

use api::{
    AccountView, BlobStored, BlockEvent, BlockReceipts, BlockSummary, BlockView, ErrorBody,
    LeaseView, Page, ProviderView, StatusResponse, SubmitResponse, TxRecord,
};
use orrery_types::crypto::AccountId;
use orrery_types::hash::{Hash, HashWriter};
use orrery_types::tx::{LeaseId, SignedTx};
use serde::de::DeserializeOwned;
use std::io::{BufRead, BufReader, Read};
use std::time::{Duration, Instant};

/// Default timeout for one request. Generous enough for a large blob on a slow link; a node
/// that does not answer within it is treated as unreachable.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest JSON answer read into memory. Pages are bounded by the node's page limit, so real
/// answers are far smaller; this only stops a broken node from exhausting our memory.
pub const MAX_JSON_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;

/// Largest blob [`Client::get_blob`] accepts; the node's own upload limit is lower.
pub const MAX_BLOB_DOWNLOAD_BYTES: u64 = 1024 * 1024 * 1024;

/// Longest line of the event stream read before giving up on the stream.
pub const MAX_EVENT_LINE_BYTES: usize = 4 * 1024 * 1024;

/// How often [`Client::wait_for_tx`] asks the node.
pub const WAIT_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The node refused the request; `code` is stable and listed in `docs/api.md`.
    #[error("the node answered {status} ({code}): {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The node's error code.
        code: String,
        /// The node's message.
        message: String,
        /// Seconds to wait before retrying, when the node said so (rate limits, overload).
        retry_after: Option<u64>,
    },
    /// The node could not be reached or the connection broke.
    #[error(
        "could not talk to the node at {url}: {source} (is the node running and the address right?)"
    )]
    Transport {
        /// The request's URL.
        url: String,
        /// The cause.
        #[source]
        source: Box<ureq::Error>,
    },
    /// The node answered something the API does not promise.
    #[error("unexpected answer from the node at {url}: {detail}")]
    Decode {
        /// The request's URL.
        url: String,
        /// What was wrong.
        detail: String,
    },
    /// [`Client::wait_for_tx`] gave up.
    #[error(
        "transaction {hash} was not in a finalized block after {waited:?}; it may still be in the mempool, or was dropped (check the nonce and resubmit)"
    )]
    Timeout {
        /// The transaction.
        hash: Hash,
        /// How long we waited.
        waited: Duration,
    },
    /// A downloaded blob does not hash to the address it was asked for.
    #[error(
        "blob {expected} came back with content hashing to {actual}: the node served wrong bytes"
    )]
    BlobMismatch {
        /// Asked for.
        expected: Hash,
        /// Got.
        actual: Hash,
    },
}

impl Error {
    /// The node's error code, if the node refused the request.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status, if the node answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A filter for [`Client::leases`].
#[derive(Clone, Debug, Default)]
pub struct LeaseQuery {
    /// Only leases served by this provider.
    pub provider: Option<AccountId>,
    /// Only leases paid by this requester.
    pub requester: Option<AccountId>,
    /// Only leases in which this account has a part: as their provider, or as a party to
    /// their check or dispute (a drawn verifier or a tie-breaker).
    pub party: Option<AccountId>,
    /// Only leases in this state (`awaiting_start`, `running`, `committed`, `settled`,
    /// `timed_out`, or `active` for any state holding escrow).
    pub state: Option<String>,
    /// Page size, capped to `1..=`[`api::MAX_PAGE_LIMIT`] (the node refuses others).
    pub limit: Option<u32>,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
}

/// A connection to one node. Cheap to clone; clones share a connection pool.
#[derive(Clone, Debug)]
pub struct Client {
    base: String,
    agent: ureq::Agent,
}

type Response = ureq::http::Response<ureq::Body>;

impl Client {
    /// A client for the node at `base_url` (e.g. `http://127.0.0.1:7420`), with
    /// [`DEFAULT_TIMEOUT`] per request.
    pub fn new(base_url: &str) -> Client {
        Client::with_timeout(base_url, DEFAULT_TIMEOUT)
    }

    /// A client whose requests each give up after `timeout`.
    pub fn with_timeout(base_url: &str, timeout: Duration) -> Client {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build();
        Client {
            base: base_url.trim_end_matches('/').to_string(),
            agent: ureq::Agent::new_with_config(config),
        }
    }

    /// The node's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    fn transport(url: &str, e: ureq::Error) -> Error {
        Error::Transport {
            url: url.to_string(),
            source: Box::new(e),
        }
    }

    /// Turn a non-2xx answer into [`Error::Api`]; pass 2xx through.
    fn check(mut resp: Response) -> Result<Response, Error> {
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(resp);
        }
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_JSON_RESPONSE_BYTES)
            .read_to_vec()
            .unwrap_or_default();
        let (code, message) = match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(e) => (e.code, e.error),
            Err(_) => (
                "http_error".to_string(),
                format!(
                    "{} (body: {})",
                    resp.status(),
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                ),
            ),
        };
        Err(Error::Api {
            status,
            code,
            message,
            retry_after,
        })
    }

    fn json<T: DeserializeOwned>(url: &str, mut resp: Response) -> Result<T, Error> {
        resp.body_mut()
            .with_config()
            .limit(MAX_JSON_RESPONSE_BYTES)
            .read_json()
            .map_err(|e| Error::Decode {
                url: url.to_string(),
                detail: e.to_string(),
            })
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        let url = self.url(path);
        let resp = self
            .agent
            .get(&url)
            .call()
            .map_err(|e| Self::transport(&url, e))?;
        Self::json(&url, Self::check(resp)?)
    }

    /// `GET` that maps 404 to `None`.
    fn get_opt<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>, Error> {
        match self.get(path) {
            Ok(v) => Ok(Some(v)),
            Err(Error::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Submit a signed transaction; returns its hash once the node accepted it into its
    /// mempool (not yet final: see [`Client::wait_for_tx`]).
    pub fn submit(&self, tx: &SignedTx) -> Result<Hash, Error> {
        self.submit_raw(&orrery_types::codec::encode(tx))
    }

    /// Submit an already encoded transaction (the canonical binary encoding).
    pub fn submit_raw(&self, bytes: &[u8]) -> Result<Hash, Error> {
        let url = self.url("/txs");
        let resp = self
            .agent
            .post(&url)
            .header("content-type", "application/octet-stream")
            .send(bytes)
            .map_err(|e| Self::transport(&url, e))?;
        let r: SubmitResponse = Self::json(&url, Self::check(resp)?)?;
        Ok(r.hash)
    }

    /// The chain's status and the node's index height.
    pub fn status(&self) -> Result<StatusResponse, Error> {
        self.get("/status")
    }

    /// The chain's protocol parameters (`GET /params`). Deserialize them into
    /// `orrery_ledger::Params`; this crate does not depend on the ledger, so the type is the
    /// caller's.
    pub fn params<T: DeserializeOwned>(&self) -> Result<T, Error> {
        self.get("/params")
    }

    /// An account (an unknown account has balance 0 and nonce 0).
    pub fn account(&self, id: &AccountId) -> Result<AccountView, Error> {
        self.get(&format!("/accounts/{id}"))
    }

    /// Transactions sent by or naming an account, newest first.
    pub fn account_txs(
        &self,
        id: &AccountId,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Page<TxRecord>, Error> {
        self.get(&format!("/accounts/{id}/txs{}", page_query(limit, cursor)))
    }

    /// A page of registered providers, in account id order.
    pub fn providers(
        &self,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Page<ProviderView>, Error> {
        self.get(&format!("/providers{}", page_query(limit, cursor)))
    }

    /// One provider, or `None` if it is not registered.
    pub fn provider(&self, id: &AccountId) -> Result<Option<ProviderView>, Error> {
        self.get_opt(&format!("/providers/{id}"))
    }

    /// A page of leases, in id order, filtered by `query`.
    pub fn leases(&self, query: &LeaseQuery) -> Result<Page<LeaseView>, Error> {
        let mut params = Vec::new();
        if let Some(p) = &query.provider {
            params.push(format!("provider={p}"));
        }
        if let Some(r) = &query.requester {
            params.push(format!("requester={r}"));
        }
        if let Some(a) = &query.party {
            params.push(format!("party={a}"));
        }
        if let Some(s) = &query.state {
            params.push(format!("state={}", encode_query_value(s)));
        }
        if let Some(l) = query.limit {
            params.push(format!("limit={}", page_limit(l)));
        }
        if let Some(c) = &query.cursor {
            params.push(format!("cursor={}", encode_query_value(c)));
        }
        let q = if params.is_empty() {
            String::new()
        } else {
            format!("?{}", params.join("&"))
        };
        self.get(&format!("/leases{q}"))
    }

    /// One lease, or `None` if no lease has that id.
    pub fn lease(&self, id: LeaseId) -> Result<Option<LeaseView>, Error> {
        self.get_opt(&format!("/leases/{id}"))
    }

    /// A cluster training lease with its rounds (`GET /cluster-leases/{id}`), as the node's
    /// JSON: `{ lease, rounds }` (see `docs/api.md`); `None` if there is no such cluster lease.
    pub fn cluster_lease(&self, id: LeaseId) -> Result<Option<serde_json::Value>, Error> {
        self.get_opt(&format!("/cluster-leases/{id}"))
    }

    /// One round of a cluster lease (`GET /cluster-leases/{id}/rounds/{round}`); `None` if
    /// there is no such lease or the round has not opened yet.
    pub fn cluster_round(
        &self,
        id: LeaseId,
        round: u32,
    ) -> Result<Option<api::ClusterRoundView>, Error> {
        self.get_opt(&format!("/cluster-leases/{id}/rounds/{round}"))
    }

    /// A page of the cluster leases that name `member` (`GET /cluster-leases?member=`), in id
    /// order; only running ones with `running_only`.
    pub fn member_cluster_leases(
        &self,
        member: &AccountId,
        running_only: bool,
        cursor: Option<&str>,
    ) -> Result<Page<api::ClusterLeaseView>, Error> {
        let mut path = format!("/cluster-leases?member={member}");
        if running_only {
            path.push_str("&phase=running");
        }
        if let Some(c) = cursor {
            path.push_str(&format!("&cursor={}", encode_query_value(c)));
        }
        self.get(&path)
    }

    /// Transactions that acted on a lease, newest first.
    pub fn lease_txs(
        &self,
        id: LeaseId,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Page<TxRecord>, Error> {
        self.get(&format!("/leases/{id}/txs{}", page_query(limit, cursor)))
    }

    /// A finalized block, or `None` above the chain's height.
    pub fn block(&self, height: u64) -> Result<Option<BlockView>, Error> {
        self.get_opt(&format!("/blocks/{height}"))
    }

    /// The last finalized block (`None` before the first block).
    pub fn latest_block(&self) -> Result<Option<BlockView>, Error> {
        self.get_opt("/blocks/latest")
    }

    /// A page of block summaries, newest first.
    pub fn blocks(
        &self,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Page<BlockSummary>, Error> {
        self.get(&format!("/blocks{}", page_query(limit, cursor)))
    }

    /// The receipts and end-of-block events of a block, or `None` if the node has not indexed it.
    pub fn block_receipts(&self, height: u64) -> Result<Option<BlockReceipts>, Error> {
        self.get_opt(&format!("/blocks/{height}/receipts"))
    }

    /// A transaction in a finalized block with its receipt, or `None` if the node has not seen
    /// it finalized (yet).
    pub fn tx(&self, hash: &Hash) -> Result<Option<TxRecord>, Error> {
        self.get_opt(&format!("/txs/{hash}"))
    }

    /// Poll until the transaction is in a finalized block, then return it with its receipt.
    /// Inclusion is not success: check `receipt.ok`.
    pub fn wait_for_tx(&self, hash: &Hash, timeout: Duration) -> Result<TxRecord, Error> {
        let start = Instant::now();
        loop {
            if let Some(rec) = self.tx(hash)? {
                return Ok(rec);
            }
            if start.elapsed() >= timeout {
                return Err(Error::Timeout {
                    hash: *hash,
                    waited: start.elapsed(),
                });
            }
            std::thread::sleep(WAIT_POLL_INTERVAL.min(timeout.saturating_sub(start.elapsed())));
        }
    }

    /// Upload a blob; it is stored under its SHA-256 hash.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<BlobStored, Error> {
        self.put_blob_as(&Hash::of(bytes), bytes)
    }

    /// Upload `bytes` claiming they hash to `hash` (the node checks and refuses a mismatch
    /// with code `hash_mismatch`).
    pub fn put_blob_as(&self, hash: &Hash, bytes: &[u8]) -> Result<BlobStored, Error> {
        let url = self.url(&format!("/blobs/{hash}"));
        let resp = self
            .agent
            .put(&url)
            .header("content-type", "application/octet-stream")
            .send(bytes)
            .map_err(|e| Self::transport(&url, e))?;
        Self::json(&url, Self::check(resp)?)
    }

    /// Download a blob, checked against its hash; `None` if the node does not have it.
    pub fn get_blob(&self, hash: &Hash) -> Result<Option<Vec<u8>>, Error> {
        let url = self.url(&format!("/blobs/{hash}"));
        let resp = self
            .agent
            .get(&url)
            .call()
            .map_err(|e| Self::transport(&url, e))?;
        let mut resp = match Self::check(resp) {
            Ok(r) => r,
            Err(Error::Api { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(MAX_BLOB_DOWNLOAD_BYTES)
            .read_to_vec()
            .map_err(|e| Self::transport(&url, e))?;
        let mut h = HashWriter::new();
        h.update(&bytes);
        let actual = h.finish();
        if actual != *hash {
            return Err(Error::BlobMismatch {
                expected: *hash,
                actual,
            });
        }
        Ok(Some(bytes))
    }

    /// Whether the node has a blob (a `HEAD` request).
    pub fn has_blob(&self, hash: &Hash) -> Result<bool, Error> {
        let url = self.url(&format!("/blobs/{hash}"));
        let resp = self
            .agent
            .head(&url)
            .call()
            .map_err(|e| Self::transport(&url, e))?;
        match resp.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            s => Err(Error::Api {
                status: s,
                code: "http_error".into(),
                message: format!("HEAD {url} answered {s}"),
                retry_after: None,
            }),
        }
    }

    /// The node's OpenAPI document.
    pub fn openapi(&self) -> Result<serde_json::Value, Error> {
        let url = format!("{}/openapi.json", self.base);
        let resp = self
            .agent
            .get(&url)
            .call()
            .map_err(|e| Self::transport(&url, e))?;
        Self::json(&url, Self::check(resp)?)
    }

    /// Subscribe to finalized blocks as they happen. The iterator ends when the node closes
    /// the stream (for example because this client read too slowly and was dropped).
    /// The request timeout does not apply to the stream.
    pub fn events(&self) -> Result<EventStream, Error> {
        let url = self.url("/events");
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build();
        let agent = ureq::Agent::new_with_config(config);
        let resp = agent
            .get(&url)
            .header("accept", "text/event-stream")
            .call()
            .map_err(|e| Self::transport(&url, e))?;
        let resp = Self::check(resp)?;
        Ok(EventStream {
            url,
            reader: Box::new(BufReader::new(resp.into_body().into_reader())),
        })
    }
}

/// Finalized blocks from the node's server-sent event stream; see [`Client::events`].
pub struct EventStream {
    url: String,
    reader: Box<dyn BufRead + Send>,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EventStream({})", self.url)
    }
}

impl Iterator for EventStream {
    type Item = Result<BlockEvent, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        // SSE: lines `event: x`, `data: ...`, blank line ends a message; `:` lines are
        // comments (keep-alives).
        let mut event = String::new();
        let mut data = String::new();
        loop {
            let mut line = Vec::new();
            let read = (&mut self.reader)
                .take(MAX_EVENT_LINE_BYTES as u64 + 1)
                .read_until(b'\n', &mut line);
            match read {
                Ok(0) => return None,
                Ok(_) if line.len() > MAX_EVENT_LINE_BYTES => {
                    return Some(Err(Error::Decode {
                        url: self.url.clone(),
                        detail: format!("event line longer than {MAX_EVENT_LINE_BYTES} bytes"),
                    }));
                }
                Ok(_) => {}
                Err(_) => return None,
            }
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if data.is_empty() {
                    continue;
                }
                if event.is_empty() || event == "block" {
                    return Some(serde_json::from_str(&data).map_err(|e| Error::Decode {
                        url: self.url.clone(),
                        detail: format!("bad event: {e}"),
                    }));
                }
                event.clear();
                data.clear();
            } else if let Some(v) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(v.strip_prefix(' ').unwrap_or(v));
            } else if let Some(v) = line.strip_prefix("event:") {
                event = v.trim().to_string();
            }
        }
    }
}

/// A page size the node accepts: `1..=MAX_PAGE_LIMIT`. Asking for more gets a full page and a
/// `next_cursor`, as it did when the node clamped.
fn page_limit(limit: u32) -> u32 {
    limit.clamp(1, api::MAX_PAGE_LIMIT)
}

fn page_query(limit: Option<u32>, cursor: Option<&str>) -> String {
    let limit = limit.map(page_limit);
    match (limit, cursor) {
        (None, None) => String::new(),
        (Some(l), None) => format!("?limit={l}"),
        (None, Some(c)) => format!("?cursor={}", encode_query_value(c)),
        (Some(l), Some(c)) => format!("?limit={l}&cursor={}", encode_query_value(c)),
    }
}

/// Percent-encode a query value (cursors and states are plain ASCII words, but be safe).
fn encode_query_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
