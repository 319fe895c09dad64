//! The HTTP API under `/api/v1`, its OpenAPI document (`/openapi.json`) and `/metrics`.
//!
//! Every handler answers JSON ([`orrery_client::api`] shapes) or an [`ApiError`]. Reads of
//! chain state go through [`crate::backend::read`] (the last finalized state, never a
//! half-applied block); reads of history go to the node's [`Index`]; blocking work (redb,
//! chain storage) runs on the blocking pool.
//!
//! Submission checks, in order, each with its own answer: body size (413 `tx_too_large`),
//! decoding (400 `malformed_tx`), signature (422 `bad_signature`), chain id (422
//! `wrong_chain`), nonce below the account's (409 `stale_nonce`); then the chain's own
//! verdict (409 `duplicate_tx`, 503 `overloaded`, ...).

use crate::backend::{self, Backend, RejectKind};
use crate::blobs::{BlobError, BlobStore};
use crate::config::NodeConfig;
use crate::error::{ApiError, CommonRefusals};
use crate::events::{BLOCK_EVENT_NAME, BlockStreamEvent, EventHub};
use crate::index::{Index, IndexError, TxList, tx_view};
use crate::limits::{RateLimiter, rate_limited};
use crate::metrics::{Metrics, RequestLabels, RouteLabels};
use crate::params::{
    AccountParam, BinaryBody, HashParam, LeaseStateFilter, Order, PageLimit, PositionCursor,
    TxHexBody, WholeNumber, lease_state_filter, order, page_limit, parse_account, parse_hash,
    parse_position, parse_u64, tx_from_hex,
};
use crate::peers::{FetchError, PEER_HEADER, Peers};
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use orrery_client::api::{
    AccountView, BlobStored, BlockEvent, BlockReceipts, BlockSummary, BlockView, ErrorBody,
    LeaseView, Page, ProviderView, ReceiptView, ReputationView, StatusResponse, SubmitResponse,
    SupplyView, TxRecord, TxView,
};
use orrery_ledger::State as LedgerState;
use orrery_ledger::entries::{Lease, Provider};
use orrery_types::crypto::AccountId;
use orrery_types::hash::Hash;
use orrery_types::tx::{MAX_ADJUDICATE_TX_BYTES, MAX_TX_BYTES, SignedTx};
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;
use utoipa::OpenApi;

/// Most leases one list request examines when filtering: bounds the work of a request whose
/// filter matches rarely. The answer's cursor continues the scan where it stopped.
pub const MAX_LEASE_SCAN: usize = 100_000;

/// Largest body of `POST /txs`: a transaction in hex (two characters a byte) plus a `0x`
/// prefix and some whitespace. Larger bodies are refused before decoding.
pub const MAX_SUBMIT_BODY_BYTES: usize = 2 * MAX_ADJUDICATE_TX_BYTES + 64;

/// Bytes of an oversized upload read and thrown away before answering 413: an HTTP/1 client
/// still sending its body only reads the answer if the server keeps reading, otherwise it
/// sees a broken connection. Beyond this much the node stops reading and closes the
/// connection (the client then gets a transport error instead of the 413).
pub const MAX_DRAIN_BYTES: u64 = 8 * 1024 * 1024;

/// Everything the handlers share.
pub struct Shared {
    /// The chain.
    pub backend: Arc<dyn Backend>,
    /// The local index.
    pub index: Arc<Index>,
    /// The blob store.
    pub blobs: Arc<BlobStore>,
    /// Other nodes, for blobs this one lacks.
    pub peers: Arc<Peers>,
    /// The event fan-out.
    pub hub: Arc<EventHub>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The configuration.
    pub config: NodeConfig,
    /// The per-IP limiter.
    pub rate: RateLimiter,
    /// Slots for requests in flight.
    pub slots: Arc<Semaphore>,
    /// The explorer's per-height cache.
    pub explorer: crate::explorer::Cache,
    /// The inference gateway (`/v1`), unless disabled in the configuration.
    pub gateway: Option<Arc<crate::gateway::Gateway>>,
}

/// Handler state.
pub type AppState = Arc<Shared>;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Orrery node API",
        description = "Submit transactions, read the chain, store job blobs, follow finalized blocks. See docs/api.md."
    ),
    paths(
        submit_tx,
        get_tx,
        status,
        account,
        account_txs,
        crate::explorer::providers,
        crate::explorer::provider,
        crate::explorer::provider_leases,
        crate::explorer::params,
        crate::explorer::overview,
        crate::explorer::series,
        crate::explorer::evidence,
        crate::explorer::search,
        crate::explorer::inference::overview,
        crate::explorer::cluster::cluster_lease,
        crate::explorer::cluster::cluster_leases,
        crate::explorer::cluster::cluster_round,
        crate::inference::models,
        crate::inference::key,
        crate::inference::batch,
        crate::inference::checks,
        crate::inference::receipt,
        leases,
        lease,
        lease_txs,
        blocks,
        latest_block,
        block,
        block_receipts,
        put_blob,
        get_blob,
        head_blob,
        events
    ),
    components(schemas(
        ErrorBody,
        TxView,
        ReceiptView,
        ReputationView,
        BlockEvent,
        BlockStreamEvent,
        // Parameter and body schemas (crate::params), referenced by name.
        AccountParam,
        HashParam,
        WholeNumber,
        PageLimit,
        PositionCursor,
        LeaseStateFilter,
        Order,
        BinaryBody,
        TxHexBody,
        crate::params::SeriesPoints,
        crate::params::SearchQuery,
        crate::params::ProviderSort,
        crate::params::ProviderCursor,
        crate::params::ClusterPhaseFilter,
    )),
    modifiers(&CommonRefusals)
)]
struct ApiDoc;

/// The OpenAPI document, as utoipa builds it. What `/openapi.json` serves is
/// [`openapi_document`].
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The OpenAPI document as `/openapi.json` serves it: [`openapi`] plus what utoipa cannot write
/// — the `contentSchema` that says each event of `GET /events` carries a `BlockEvent` as its
/// JSON data.
pub fn openapi_document() -> Result<serde_json::Value, serde_json::Error> {
    let mut doc = serde_json::to_value(openapi())?;
    if let Some(data) = doc.pointer_mut("/components/schemas/BlockStreamEvent/properties/data")
        && let Some(data) = data.as_object_mut()
    {
        data.insert(
            "contentSchema".to_string(),
            serde_json::json!({"$ref": "#/components/schemas/BlockEvent"}),
        );
    }
    Ok(doc)
}

/// The whole router.
pub fn router(state: AppState) -> Router {
    let limits = &state.config.limits;
    let api = Router::new()
        .route("/txs", axum::routing::post(submit_tx))
        .route("/txs/{hash}", get(get_tx))
        .route("/status", get(status))
        .route("/accounts/{id}", get(account))
        .route("/accounts/{id}/txs", get(account_txs))
        .route("/providers", get(crate::explorer::providers))
        .route("/providers/{id}", get(crate::explorer::provider))
        .route("/leases", get(leases))
        .route("/leases/{id}", get(lease))
        .route("/leases/{id}/txs", get(lease_txs))
        .route("/blocks", get(blocks))
        .route("/blocks/latest", get(latest_block))
        .route("/blocks/{height}", get(block))
        .route("/blocks/{height}/receipts", get(block_receipts))
        .route(
            "/blobs/{hash}",
            get(get_blob)
                .head(head_blob)
                .put(put_blob)
                .layer(DefaultBodyLimit::disable()),
        )
        .merge(crate::explorer::api_routes())
        .merge(crate::inference::routes())
        .layer(DefaultBodyLimit::max(limits.max_body_bytes));
    let bounded = Router::new()
        .nest("/api/v1", api)
        .merge(crate::explorer::assets::routes())
        .route("/openapi.json", get(openapi_json))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            timeout_and_slots,
        ));
    // The event stream is long-lived: exempt from the timeout and the request slots (it has
    // its own client cap).
    let stream = Router::new().route("/api/v1/events", get(events));
    // The gateway streams answers and bounds itself (its own request slots and timeouts).
    let gateway = match &state.gateway {
        Some(gw) => gw.routes(),
        None => Router::new(),
    };
    bounded
        .merge(stream)
        .merge(gateway)
        .layer(middleware::from_fn_with_state(state.clone(), rate_limit))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Outermost: count and log every request by route template and status.
async fn observe(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().to_string();
    let start = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    let elapsed = start.elapsed();
    s.metrics
        .requests
        .get_or_create(&RequestLabels {
            route: route.clone(),
            method: method.clone(),
            status,
        })
        .inc();
    s.metrics
        .request_duration
        .get_or_create(&RouteLabels {
            route: route.clone(),
        })
        .observe(elapsed.as_secs_f64());
    let elapsed_ms = elapsed.as_millis() as u64;
    if status >= 500 {
        tracing::warn!(%method, %route, status, elapsed_ms, "request failed");
    } else {
        tracing::debug!(%method, %route, status, elapsed_ms, "request");
    }
    resp
}

async fn rate_limit(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(ip) = ip
        && let Err(wait) = s.rate.check(ip, Instant::now())
    {
        s.metrics.rate_limited.inc();
        tracing::debug!(%ip, wait, "rate limited");
        return rate_limited(wait).into_response();
    }
    next.run(req).await
}

async fn timeout_and_slots(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let Ok(_permit) = s.slots.clone().try_acquire_owned() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "the node is handling too many requests; retry shortly",
        )
        .retry_after(1)
        .into_response();
    };
    let limit = s.config.limits.request_timeout();
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!("the request took longer than {} s", limit.as_secs()),
        )
        .retry_after(1)
        .into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("no_such_route", "no such endpoint; see /openapi.json")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method; see /openapi.json",
    )
}

async fn openapi_json() -> Response {
    match openapi_document() {
        Ok(doc) => Json(doc).into_response(),
        Err(e) => ApiError::internal(format!("OpenAPI document: {e}")).into_response(),
    }
}

async fn metrics(State(s): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}

// ---- helpers ----

pub(crate) fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(t)| t)
        .map_err(|e| ApiError::bad_request("bad_query", e.body_text()))
}

/// Read the last finalized state on the blocking pool (the chain may hold its lock while it
/// applies a block; the request timeout must still be able to fire).
pub(crate) async fn read<R: Send + 'static>(
    s: &Shared,
    f: impl FnOnce(&LedgerState) -> R + Send + 'static,
) -> Result<R, ApiError> {
    let backend = s.backend.clone();
    tokio::task::spawn_blocking(move || backend::read(&*backend, f))
        .await
        .map_err(|e| ApiError::internal(format!("state read failed: {e}")))?
        .ok_or_else(|| ApiError::unavailable("the chain backend did not answer a state read"))
}

fn index_error(e: IndexError) -> ApiError {
    tracing::error!(error = %e, "index");
    ApiError::internal(e.to_string())
}

/// Run blocking index work off the async threads.
pub(crate) async fn with_index<R: Send + 'static>(
    s: &Shared,
    f: impl FnOnce(&Index) -> Result<R, IndexError> + Send + 'static,
) -> Result<R, ApiError> {
    let index = s.index.clone();
    tokio::task::spawn_blocking(move || f(&index))
        .await
        .map_err(|e| ApiError::internal(format!("index task failed: {e}")))?
        .map_err(index_error)
}

/// `?limit=&cursor=` for lists keyed by a number (a height or a lease id).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageParams {
    /// Page size: 1 to 500 (default 50).
    #[param(value_type = Option<PageLimit>)]
    pub(crate) limit: Option<String>,
    /// The previous page's `next_cursor`.
    #[param(value_type = Option<WholeNumber>)]
    pub(crate) cursor: Option<String>,
}

impl PageParams {
    /// The page size, or 400 if out of range.
    pub(crate) fn limit(&self) -> Result<usize, ApiError> {
        page_limit(self.limit.as_deref())
    }

    /// The cursor of a list keyed by a number (a height or a lease id), if given.
    pub(crate) fn numeric_cursor(&self) -> Result<Option<u64>, ApiError> {
        self.cursor
            .as_deref()
            .map(|c| parse_u64("cursor", c))
            .transpose()
    }
}

// ---- transactions ----

/// Submit a signed transaction.
///
/// Body: the canonical binary encoding (`application/octet-stream`), or the same in hex with
/// `Content-Type: text/plain`.
#[utoipa::path(post, path = "/api/v1/txs",
    request_body(
        description = "A signed transaction: its canonical binary encoding, or the same in hex as text (a 0x prefix and surrounding whitespace allowed).",
        content(
            (BinaryBody = "application/octet-stream"),
            (TxHexBody = "text/plain"),
        )
    ),
    responses(
        (status = 200, body = SubmitResponse, description = "accepted into the mempool"),
        (status = 400, body = ErrorBody, description = "malformed_tx (not hex, or not a canonically encoded signed transaction) or bad_body (the body could not be read)"),
        (status = 409, body = ErrorBody, description = "stale_nonce (the nonce was already used) or duplicate_tx (already waiting)"),
        (status = 413, body = ErrorBody, description = "tx_too_large: over 4096 bytes (2 MiB + 4 KiB for an adjudication)"),
        (status = 422, body = ErrorBody, description = "bad_signature, wrong_chain or invalid_tx"),
    ))]
async fn submit_tx(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<SubmitResponse>, ApiError> {
    let result = match read_tx_body(&headers, body).await {
        Ok(body) => {
            let s2 = s.clone();
            tokio::task::spawn_blocking(move || check_and_submit(&s2, &headers, body))
                .await
                .unwrap_or_else(|e| Err(ApiError::internal(format!("submission failed: {e}"))))
        }
        Err(e) => Err(e),
    };
    match &result {
        Ok(_) => {
            s.metrics.txs_submitted.inc();
        }
        Err(e) => s.metrics.reject(e.code),
    }
    result.map(|hash| Json(SubmitResponse { hash }))
}

fn tx_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "tx_too_large",
        format!(
            "a transaction is at most {MAX_TX_BYTES} bytes ({MAX_ADJUDICATE_TX_BYTES} for an \
             adjudication, which carries a bundle and a state)"
        ),
    )
}

/// Read a submission body of at most [`MAX_SUBMIT_BODY_BYTES`]; a larger one is drained (see
/// [`MAX_DRAIN_BYTES`]) and refused with 413.
async fn read_tx_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    use futures::StreamExt as _;
    let mut stream = body.into_data_stream();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared
        && n > MAX_SUBMIT_BODY_BYTES as u64
    {
        if n <= MAX_DRAIN_BYTES {
            drain(&mut stream, n).await;
        }
        return Err(tx_too_large());
    }
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request("bad_body", e.to_string()))?;
        if buf.len() + chunk.len() > MAX_SUBMIT_BODY_BYTES {
            drain(&mut stream, MAX_DRAIN_BYTES).await;
            return Err(tx_too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

fn check_and_submit(s: &Shared, headers: &HeaderMap, body: Bytes) -> Result<Hash, ApiError> {
    let too_large = tx_too_large;
    let is_hex = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/plain"));
    let bytes = if is_hex {
        tx_from_hex(&body)?
    } else {
        body.to_vec()
    };
    if bytes.len() > MAX_ADJUDICATE_TX_BYTES {
        return Err(too_large());
    }
    if bytes.len() > MAX_TX_BYTES && SignedTx::decode(&bytes).is_err() {
        // Only an adjudication may be this big; anything else over the limit is too large.
        return Err(too_large());
    }
    let tx = SignedTx::decode(&bytes).map_err(|e| {
        ApiError::bad_request(
            "malformed_tx",
            format!("not a canonically encoded signed transaction: {e}"),
        )
    })?;
    if !tx.verify_signature() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_signature",
            "the signature does not match the transaction and signer",
        ));
    }
    let chain_id = s.backend.status().chain_id;
    if tx.tx.chain_id.as_str() != chain_id {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong_chain",
            format!(
                "transaction is signed for chain {:?}, this node serves {chain_id:?}",
                tx.tx.chain_id.as_str()
            ),
        ));
    }
    let sender = tx.sender();
    let nonce = backend::read(&*s.backend, |st| st.account(&sender).nonce)
        .ok_or_else(|| ApiError::unavailable("the chain backend did not answer a state read"))?;
    if tx.tx.nonce < nonce {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "stale_nonce",
            format!(
                "nonce {} was already used; the account's next nonce is {nonce}",
                tx.tx.nonce
            ),
        ));
    }
    s.backend.submit(tx).map_err(|r| {
        let (status, code) = match r.kind {
            RejectKind::Malformed => (StatusCode::BAD_REQUEST, "malformed_tx"),
            RejectKind::StaleNonce => (StatusCode::CONFLICT, "stale_nonce"),
            RejectKind::Duplicate => (StatusCode::CONFLICT, "duplicate_tx"),
            RejectKind::WrongChain => (StatusCode::UNPROCESSABLE_ENTITY, "wrong_chain"),
            RejectKind::BadSignature => (StatusCode::UNPROCESSABLE_ENTITY, "bad_signature"),
            RejectKind::Invalid => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_tx"),
            RejectKind::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            RejectKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        };
        let e = ApiError::new(status, code, r.message);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            e.retry_after(1)
        } else {
            e
        }
    })
}

/// A transaction in a finalized block, with its receipt.
#[utoipa::path(get, path = "/api/v1/txs/{hash}", params(("hash" = HashParam, Path, description = "The transaction's hash.")),
    responses(
        (status = 200, body = TxRecord),
        (status = 400, body = ErrorBody, description = "bad_hash: not 64 hex characters"),
        (status = 404, body = ErrorBody, description = "tx_not_found: not (yet) in a finalized block this node has indexed"),
    ))]
async fn get_tx(
    State(s): State<AppState>,
    Path(hash): Path<String>,
) -> Result<Json<TxRecord>, ApiError> {
    let hash = parse_hash(&hash)?;
    with_index(&s, move |i| i.tx(&hash))
        .await?
        .map(Json)
        .ok_or_else(|| {
            ApiError::not_found(
                "tx_not_found",
                format!("transaction {hash} is not in a finalized block this node has indexed"),
            )
        })
}

// ---- status and accounts ----

/// The chain's status and the node's index height.
#[utoipa::path(get, path = "/api/v1/status", responses((status = 200, body = StatusResponse)))]
async fn status(State(s): State<AppState>) -> Result<Json<StatusResponse>, ApiError> {
    let indexed_height = with_index(&s, |i| i.indexed_height()).await?;
    let supply = read(&s, supply_view).await?;
    Ok(Json(StatusResponse {
        chain: s.backend.status(),
        indexed_height,
        version: env!("CARGO_PKG_VERSION").to_string(),
        supply,
    }))
}

/// Where every token sits, from the last finalized state.
pub(crate) fn supply_view(st: &LedgerState) -> SupplyView {
    let (g, t) = (st.globals(), st.totals());
    SupplyView {
        genesis: g.genesis_supply,
        minted: g.minted,
        burned: g.burned,
        balances: t.balances,
        stakes: t.stakes,
        unbonding: t.unbonding,
        escrow: t.escrow,
        invariant_holds: st.check_supply().is_ok(),
    }
}

/// An account's balance and next nonce (zero for an account never seen).
#[utoipa::path(get, path = "/api/v1/accounts/{id}", params(("id" = AccountParam, Path, description = "The account id.")),
    responses(
        (status = 200, body = AccountView),
        (status = 400, body = ErrorBody, description = "bad_account: not orr + 40 hex"),
    ))]
async fn account(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<AccountView>, ApiError> {
    let id = parse_account(&id)?;
    let a = read(&s, move |st| st.account(&id)).await?;
    Ok(Json(AccountView {
        id,
        balance: a.balance,
        nonce: a.nonce,
    }))
}

/// `?limit=&cursor=&brief=` for transaction lists.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct TxPageParams {
    /// Page size: 1 to 500 (default 50).
    #[param(value_type = Option<PageLimit>)]
    limit: Option<String>,
    /// The previous page's `next_cursor` (`height:index`).
    #[param(value_type = Option<PositionCursor>)]
    cursor: Option<String>,
    /// `true`: long byte fields of bodies (an adjudication's bundle and state) are replaced
    /// by `"<N bytes>"`, so a page stays small. `GET /txs/{hash}` has the whole body.
    brief: Option<bool>,
}

async fn tx_list(
    s: &Shared,
    list: TxList,
    p: TxPageParams,
) -> Result<Json<Page<TxRecord>>, ApiError> {
    let before = p.cursor.as_deref().map(parse_position).transpose()?;
    let limit = page_limit(p.limit.as_deref())?;
    let (mut items, next) = with_index(s, move |i| i.txs(list, before, limit)).await?;
    if p.brief == Some(true) {
        for r in &mut items {
            r.tx.body = crate::explorer::shorten(&r.tx.body);
        }
    }
    Ok(Json(Page {
        items,
        next_cursor: next.map(|(h, i)| format!("{h}:{i}")),
    }))
}

/// Transactions sent by or naming an account, newest first.
#[utoipa::path(get, path = "/api/v1/accounts/{id}/txs", params(("id" = AccountParam, Path, description = "The account id."), TxPageParams),
    responses(
        (status = 200, body = Page<TxRecord>),
        (status = 400, body = ErrorBody, description = "bad_account, bad_cursor (not height:index) or bad_query (limit out of range, brief not true or false)"),
    ))]
async fn account_txs(
    State(s): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<TxPageParams>, QueryRejection>,
) -> Result<Json<Page<TxRecord>>, ApiError> {
    let id = parse_account(&id)?;
    tx_list(&s, TxList::Account(id), query(q)?).await
}

// ---- providers ----

pub(crate) fn provider_view(id: AccountId, p: &Provider) -> ProviderView {
    let r = p.reputation;
    ProviderView {
        id,
        offer: p.offer.clone(),
        stake: p.stake,
        active_leases: p.active_leases,
        registered_at: p.registered_at,
        reputation: ReputationView {
            settled: r.settled,
            checked: r.checked,
            failed: r.failed,
            slashed: r.slashed,
            timed_out: r.timed_out,
        },
        earned: p.earned,
        activity: None,
        challenges: None,
    }
}

// ---- leases ----

/// The API view of a lease.
pub fn lease_view(l: &Lease) -> LeaseView {
    LeaseView {
        id: l.id,
        requester: l.requester,
        provider: l.provider,
        job: l.job,
        terms: l.terms,
        verification: l.verification,
        escrow: l.escrow,
        opened_at: l.opened_at,
        start_by: l.start_by,
        deadline: l.deadline,
        state: l.state.name().to_string(),
        state_detail: serde_json::to_value(&l.state).unwrap_or(serde_json::Value::Null),
        active: l.state.is_active(),
    }
}

/// `GET /leases` filters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct LeaseParams {
    /// Only this provider's leases.
    #[param(value_type = Option<AccountParam>)]
    provider: Option<String>,
    /// Only this requester's leases.
    #[param(value_type = Option<AccountParam>)]
    requester: Option<String>,
    /// Only leases in which this account has a part: their provider, or a party to their
    /// check or dispute (a drawn verifier or a tie-breaker). What a provider agent polls.
    #[param(value_type = Option<AccountParam>)]
    party: Option<String>,
    /// Only leases in this state, or `active` (every state that still holds escrow).
    #[param(value_type = Option<LeaseStateFilter>)]
    state: Option<String>,
    /// `asc` (default: oldest first) or `desc` (newest first).
    #[param(value_type = Option<Order>)]
    order: Option<String>,
    /// Page size: 1 to 500 (default 50).
    #[param(value_type = Option<PageLimit>)]
    limit: Option<String>,
    /// The previous page's `next_cursor` (a lease id).
    #[param(value_type = Option<WholeNumber>)]
    cursor: Option<String>,
}

/// Leases in id order (or newest first with `order=desc`), filtered.
#[utoipa::path(get, path = "/api/v1/leases", params(LeaseParams),
    responses(
        (status = 200, body = Page<LeaseView>),
        (status = 400, body = ErrorBody, description = "bad_account (a filter is not an account id), bad_number (cursor) or bad_query (state, order or limit out of range)"),
    ))]
async fn leases(
    State(s): State<AppState>,
    q: Result<Query<LeaseParams>, QueryRejection>,
) -> Result<Json<Page<LeaseView>>, ApiError> {
    let p = query(q)?;
    let provider = p.provider.as_deref().map(parse_account).transpose()?;
    let requester = p.requester.as_deref().map(parse_account).transpose()?;
    let party = p.party.as_deref().map(parse_account).transpose()?;
    let after = p
        .cursor
        .as_deref()
        .map(|c| parse_u64("cursor", c))
        .transpose()?;
    let state = lease_state_filter(p.state.as_deref())?;
    let limit = page_limit(p.limit.as_deref())?;
    let desc = order(p.order.as_deref())?.unwrap_or(false);
    let (items, next) = read(&s, move |st| {
        let range: Box<dyn Iterator<Item = (&u64, &Lease)>> = if desc {
            Box::new(st.leases().range(..after.unwrap_or(u64::MAX)).rev())
        } else {
            Box::new(
                st.leases()
                    .range(after.map_or(0, |a| a.saturating_add(1))..),
            )
        };
        let mut items = Vec::new();
        let mut last_scanned = None;
        let mut exhausted = true;
        for (scanned, (id, l)) in range.enumerate() {
            if items.len() == limit || scanned == MAX_LEASE_SCAN {
                exhausted = false;
                break;
            }
            last_scanned = Some(*id);
            let keep = provider.is_none_or(|p| l.provider == p)
                && requester.is_none_or(|r| l.requester == r)
                && party.is_none_or(|a| l.involves(&a))
                && state.as_deref().is_none_or(|s| {
                    if s == "active" {
                        l.state.is_active()
                    } else {
                        l.state.name() == s
                    }
                });
            if keep {
                items.push(lease_view(l));
            }
        }
        let next = if exhausted { None } else { last_scanned };
        (items, next)
    })
    .await?;
    Ok(Json(Page {
        items,
        next_cursor: next.map(|n| n.to_string()),
    }))
}

/// One lease.
#[utoipa::path(get, path = "/api/v1/leases/{id}", params(("id" = WholeNumber, Path, description = "The lease id.")),
    responses(
        (status = 200, body = LeaseView),
        (status = 400, body = ErrorBody, description = "bad_number: the id is not a whole number"),
        (status = 404, body = ErrorBody, description = "lease_not_found"),
    ))]
async fn lease(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<LeaseView>, ApiError> {
    let id = parse_u64("lease id", &id)?;
    read(&s, move |st| st.lease(id).map(lease_view))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("lease_not_found", format!("no lease {id}")))
}

/// Transactions that acted on a lease, newest first.
#[utoipa::path(get, path = "/api/v1/leases/{id}/txs", params(("id" = WholeNumber, Path, description = "The lease id."), TxPageParams),
    responses(
        (status = 200, body = Page<TxRecord>, description = "the lease's transactions (an empty page for a lease that never existed)"),
        (status = 400, body = ErrorBody, description = "bad_number (id), bad_cursor (not height:index) or bad_query (limit out of range, brief not true or false)"),
    ))]
async fn lease_txs(
    State(s): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<TxPageParams>, QueryRejection>,
) -> Result<Json<Page<TxRecord>>, ApiError> {
    let id = parse_u64("lease id", &id)?;
    tx_list(&s, TxList::Lease(id), query(q)?).await
}

// ---- blocks ----

/// Block summaries, newest first.
#[utoipa::path(get, path = "/api/v1/blocks", params(PageParams),
    responses(
        (status = 200, body = Page<BlockSummary>),
        (status = 400, body = ErrorBody, description = "bad_number (cursor) or bad_query (limit out of range)"),
    ))]
async fn blocks(
    State(s): State<AppState>,
    q: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<Page<BlockSummary>>, ApiError> {
    let p = query(q)?;
    let before = p.numeric_cursor()?;
    let limit = p.limit()?;
    let (items, next) = with_index(&s, move |i| i.blocks(before, limit)).await?;
    Ok(Json(Page {
        items,
        next_cursor: next.map(|h| h.to_string()),
    }))
}

async fn block_at(s: &Shared, height: u64) -> Result<Json<BlockView>, ApiError> {
    let backend = s.backend.clone();
    let block = tokio::task::spawn_blocking(move || backend.block(height))
        .await
        .map_err(|e| ApiError::internal(format!("block read failed: {e}")))?
        .map_err(|e| ApiError::unavailable(e.to_string()))?
        .ok_or_else(|| {
            ApiError::not_found(
                "block_not_found",
                format!("no finalized block at height {height}"),
            )
        })?;
    let txs: Vec<TxView> = block.txs.as_slice().iter().map(tx_view).collect();
    let hashes: Vec<Hash> = txs.iter().map(|t| t.hash).collect();
    Ok(Json(BlockView {
        summary: BlockSummary {
            height: block.height,
            hash: block.hash_with(&hashes),
            parent: block.parent,
            time_ms: block.time_ms,
            tx_count: txs.len() as u32,
        },
        seed: block.seed,
        txs,
    }))
}

/// The last finalized block.
#[utoipa::path(get, path = "/api/v1/blocks/latest",
    responses(
        (status = 200, body = BlockView),
        (status = 404, body = ErrorBody, description = "block_not_found: no block yet"),
    ))]
async fn latest_block(State(s): State<AppState>) -> Result<Json<BlockView>, ApiError> {
    let height = s.backend.status().height;
    block_at(&s, height).await
}

/// A finalized block with its transactions.
#[utoipa::path(get, path = "/api/v1/blocks/{height}", params(("height" = WholeNumber, Path, description = "The block's height.")),
    responses(
        (status = 200, body = BlockView),
        (status = 400, body = ErrorBody, description = "bad_number: the height is not a whole number"),
        (status = 404, body = ErrorBody, description = "block_not_found: no finalized block at that height"),
    ))]
async fn block(
    State(s): State<AppState>,
    Path(height): Path<String>,
) -> Result<Json<BlockView>, ApiError> {
    let height = parse_u64("height", &height)?;
    block_at(&s, height).await
}

/// The receipts and end-of-block events of a block.
#[utoipa::path(get, path = "/api/v1/blocks/{height}/receipts", params(("height" = WholeNumber, Path, description = "The block's height.")),
    responses(
        (status = 200, body = BlockReceipts),
        (status = 400, body = ErrorBody, description = "bad_number: the height is not a whole number"),
        (status = 404, body = ErrorBody, description = "block_not_indexed: not finalized or not indexed yet"),
    ))]
async fn block_receipts(
    State(s): State<AppState>,
    Path(height): Path<String>,
) -> Result<Json<BlockReceipts>, ApiError> {
    let height = parse_u64("height", &height)?;
    with_index(&s, move |i| i.block_receipts(height))
        .await?
        .map(Json)
        .ok_or_else(|| {
            ApiError::not_found(
                "block_not_indexed",
                format!("block {height} is not finalized or not indexed yet"),
            )
        })
}

// ---- blobs ----

/// Store a blob under its SHA-256 hash; the hash is checked. A client's upload is then pushed
/// to the blob's home peers (`replicas` counts those holding it); a peer's push is not.
#[utoipa::path(put, path = "/api/v1/blobs/{hash}", params(("hash" = HashParam, Path, description = "The SHA-256 of the body.")),
    request_body(content = BinaryBody, content_type = "application/octet-stream", description = "The blob's bytes."),
    responses(
        (status = 200, body = BlobStored),
        (status = 400, body = ErrorBody, description = "bad_hash (the path is not a hash) or bad_body (the body could not be read)"),
        (status = 413, body = ErrorBody, description = "blob_too_large: over the node's max_blob_bytes"),
        (status = 422, body = ErrorBody, description = "hash_mismatch: the body hashes to something else"),
    ))]
async fn put_blob(
    State(s): State<AppState>,
    Path(hash): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<BlobStored>, ApiError> {
    let expected = parse_hash(&hash)?;
    let limit = s.blobs.max_blob_bytes();
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "blob_too_large",
            format!("a blob is at most {limit} bytes on this node"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut stream = body.into_data_stream();
    if let Some(n) = declared
        && n > limit
    {
        if n - limit <= MAX_DRAIN_BYTES {
            drain(&mut stream, n).await;
        }
        return Err(too_large());
    }
    let result = s.blobs.put(expected, &mut stream).await;
    if matches!(result, Err(BlobError::TooLarge { .. })) {
        drain(&mut stream, MAX_DRAIN_BYTES).await;
    }
    match result {
        Ok((size, created)) => {
            if created {
                s.metrics.blobs_stored.inc();
                s.metrics.blob_bytes_stored.inc_by(size);
                tracing::info!(hash = %expected, size, "blob stored");
            }
            let replicas = if from_peer(&headers) {
                0
            } else {
                s.peers.push(expected, size).await as u32
            };
            Ok(Json(BlobStored {
                hash: expected,
                size,
                created,
                replicas,
            }))
        }
        Err(BlobError::TooLarge { .. }) => Err(too_large()),
        Err(e @ BlobError::HashMismatch { .. }) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "hash_mismatch",
            e.to_string(),
        )),
        Err(e @ BlobError::Body(_)) => Err(ApiError::bad_request("bad_body", e.to_string())),
        Err(e @ BlobError::Io { .. }) => {
            tracing::error!(error = %e, "blob store");
            Err(ApiError::internal(e.to_string()))
        }
    }
}

/// Read and discard up to `max` bytes of what is left of a request body.
async fn drain(stream: &mut axum::body::BodyDataStream, max: u64) {
    use futures::StreamExt as _;
    let mut read = 0u64;
    while read <= max {
        match stream.next().await {
            Some(Ok(chunk)) => read += chunk.len() as u64,
            _ => return,
        }
    }
}

fn blob_not_found(hash: &Hash) -> ApiError {
    ApiError::not_found("blob_not_found", format!("this node has no blob {hash}"))
}

/// Whether a request comes from another node (see [`crate::peers`]): answered from the local
/// store only.
fn from_peer(headers: &HeaderMap) -> bool {
    headers.contains_key(PEER_HEADER)
}

/// Make sure the node holds `hash`: if it does not, and the request is a client's, fetch it
/// from the peers. `Ok` means it is stored now (unless collected in between).
async fn ensure_blob(s: &AppState, hash: Hash, headers: &HeaderMap) -> Result<(), ApiError> {
    if s.blobs.size(&hash).await.is_some() {
        return Ok(());
    }
    if from_peer(headers) {
        return Err(blob_not_found(&hash));
    }
    match s.peers.fetch(hash).await {
        Ok(_) => Ok(()),
        Err(e @ FetchError::NotFound { .. }) => {
            Err(ApiError::not_found("blob_not_found", e.to_string()))
        }
        Err(e @ FetchError::Busy { .. }) => {
            Err(
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", e.to_string())
                    .retry_after(1),
            )
        }
        Err(e @ FetchError::Store { .. }) => Err(ApiError::internal(e.to_string())),
    }
}

/// Fetch a blob: from this node's store, or else from its peers (then stored here too).
#[utoipa::path(get, path = "/api/v1/blobs/{hash}", params(("hash" = HashParam, Path, description = "The blob's SHA-256.")),
    responses(
        (status = 200, content_type = "application/octet-stream", body = BinaryBody, description = "the blob's bytes",
            headers(("Content-Length" = u64, description = "The blob's size."), ("ETag" = String, description = "The blob's hash, quoted."))),
        (status = 400, body = ErrorBody, description = "bad_hash: not 64 hex characters"),
        (status = 404, body = ErrorBody, description = "blob_not_found: neither this node nor the peers it asked have it"),
        (status = 503, body = ErrorBody, description = "overloaded: too many fetches from peers under way",
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
    ))]
async fn get_blob(
    State(s): State<AppState>,
    Path(hash): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let hash = parse_hash(&hash)?;
    ensure_blob(&s, hash, &headers).await?;
    let (bytes, size) = s
        .blobs
        .read(&hash)
        .await
        .ok_or_else(|| blob_not_found(&hash))?;
    let mut resp = Body::from_stream(bytes).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    if let Ok(v) = HeaderValue::from_str(&format!("\"{hash}\"")) {
        h.insert(header::ETAG, v);
    }
    Ok(resp)
}

/// Whether the node has a blob, and its size; like `GET`, a blob the node lacks is fetched
/// from its peers first.
#[utoipa::path(head, path = "/api/v1/blobs/{hash}", params(("hash" = HashParam, Path, description = "The blob's SHA-256.")),
    responses(
        (status = 200, description = "present (here or fetched from a peer); Content-Length is its size", headers(("Content-Length" = u64, description = "The blob's size."))),
        (status = 400, description = "bad_hash: not 64 hex characters (no body: a HEAD answer has none)"),
        (status = 404, description = "blob_not_found: absent here and on the peers asked (no body: a HEAD answer has none)"),
        (status = 503, description = "overloaded: too many fetches from peers under way (no body: a HEAD answer has none)",
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
    ))]
async fn head_blob(
    State(s): State<AppState>,
    Path(hash): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let hash = parse_hash(&hash)?;
    ensure_blob(&s, hash, &headers).await?;
    let size = s
        .blobs
        .size(&hash)
        .await
        .ok_or_else(|| blob_not_found(&hash))?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (header::CONTENT_LENGTH, HeaderValue::from(size)),
        ],
        (),
    )
        .into_response())
}

// ---- events ----

/// Finalized blocks as server-sent events (`event: block`, data: a `BlockEvent` JSON).
#[utoipa::path(get, path = "/api/v1/events",
    responses(
        (status = 200, content_type = "text/event-stream", body = BlockStreamEvent, description = "one `event: block` per finalized block, its data a BlockEvent as JSON"),
    ))]
async fn events(State(s): State<AppState>) -> Result<Response, ApiError> {
    let rx = s.hub.subscribe().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_stream_clients",
            "the node serves its maximum number of event-stream clients; retry later",
        )
        .retry_after(5)
    })?;
    s.metrics.event_clients.set(s.hub.clients() as i64);
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        let msg = rx.recv().await?;
        Some((
            Ok::<_, std::convert::Infallible>(Event::default().event(BLOCK_EVENT_NAME).data(&*msg)),
            rx,
        ))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}
