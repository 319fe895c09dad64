//! The OpenAI-compatible inference gateway every node serves under `/v1`.
//!
//! # Routes
//! `GET /v1/models`, `POST /v1/embeddings`, `POST /v1/completions`, `POST
//! /v1/chat/completions` (`stream: true`: server-sent events in OpenAI's chunk format, ending
//! `data: [DONE]`). Shapes are OpenAI's ([`openai`]), so the official clients work unchanged;
//! every answer adds an `orrery` object (provider, tokens, price, receipt) and the headers
//! `x-orrery-provider` and `x-orrery-receipt`. Refusals are OpenAI-shaped ([`error`]).
//!
//! # One request
//! 1. **Admission.** The bearer token must be an [`ApiKey`] the chain knows (401
//!    `invalid_api_key`) and not revoked (401 `key_revoked`). The body must parse and be
//!    servable (400, 413); the model name must be offered by a bonded provider (404
//!    `model_not_found`) of the route's kind.
//! 2. **Budget.** The worst case — `max_tokens × price_out + input estimate × price_in` of the
//!    dearest provider that may be tried — must fit in `min(deposit, limit − spent)` minus
//!    this gateway's signed-but-unsettled vouchers for the key minus what its requests in
//!    flight have reserved (429 `insufficient_quota`). The worst case stays reserved until
//!    the request ends, so concurrent requests cannot overspend together.
//! 3. **Routing.** [`orrery_market::ModelRouter`] ranks the providers of the name by price,
//!    reputation, measured latency and load; the first [`GatewayConfig::max_attempts`] are
//!    tried in order. Latency is a moving average of each provider's time to first byte and
//!    of round-trip probes of its endpoint (`GET {endpoint}/health`, every
//!    [`GatewayConfig::rtt_probe_interval_secs`], in the background, at most
//!    [`orrery_client::probe::DEFAULT_PROBE_CONCURRENCY`] at once; an unreachable endpoint
//!    counts as the probe's timeout, the worst latency), so a provider is ranked by distance
//!    before anyone has sent it a request.
//! 4. **Forwarding** ([`forward`]). The request becomes an [`InferenceRequest`] (routed weights,
//!    key, channel, a fresh nonce, the task; a seed drawn from the nonce when the client gave
//!    none) whose canonical bytes are `POST`ed to `{endpoint}/infer`. A provider that cannot be
//!    reached, answers 5xx or an error, times out before its first byte (or first streamed
//!    event), or returns a response that does not verify is a *provider failure*: the next
//!    one is tried, as long as nothing has reached the client. A provider's
//!    `context_length_exceeded` is the client's fault and is passed on as 400.
//! 5. **Verification** ([`forward::verify`]) before any payment: signature and output digest,
//!    the provider routed to, the routed weights, the key, the request's hash over exactly the
//!    bytes sent, the seed, `charged == offer.cost(tokens_in, tokens_out)` at the on-chain
//!    prices, `tokens_out ≤ max_tokens`, one vector per input; for a stream, also the
//!    streamed text equal to the committed one.
//! 6. **Payment** ([`vouchers`]). The channel (key, provider, weights)'s next cumulative
//!    voucher is signed under a lock and delivered to `{endpoint}/voucher` in the background
//!    (with retries). A stream whose provider dies after the first token ends with an
//!    OpenAI-shaped error event and no voucher: nobody pays for an unfinished answer.
//! 7. **Receipt.** The commitment is stored under its leaf for
//!    `GET /api/v1/inference/receipts/{leaf}`.
//!
//! # What it never does
//! Pay for a response it did not verify; sign two vouchers of one channel at once; let a
//! client's bytes reach a provider other than as the canonical request; panic on anything a
//! client or a provider sends.

pub mod chain;
pub mod error;
pub mod forward;
pub mod ledger;
pub mod openai;
mod serve;
pub mod vouchers;

pub use chain::{InferenceChain, KeyState};
pub use error::GatewayError;
pub use vouchers::{VoucherStore, VoucherStoreError};

use crate::config::GatewayConfig;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use orrery_client::inference::InferenceReceiptView;
use orrery_client::probe::RttProbe;
use orrery_market::ModelRouter;
use orrery_types::amount::Amount;
use orrery_types::crypto::AccountId;
use orrery_types::hash::Hash;
#[allow(unused_imports)] // named in the docs above
use orrery_types::inference::{ApiKey, InferenceRequest};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// The gateway's file in the node's data directory.
pub const STORE_FILE: &str = "gateway.redb";

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayOpenError {
    /// The channel table cannot be opened.
    #[error(transparent)]
    Store(#[from] VoucherStoreError),
    /// The HTTP client cannot be built.
    #[error("cannot create the gateway's HTTP client: {0}")]
    Http(String),
}

/// The model offers as of one finalized height, and what was measured about providers.
struct Models {
    height: Option<u64>,
    router: ModelRouter,
}

/// The gateway: shared by its handlers.
pub struct Gateway {
    chain: Arc<dyn InferenceChain>,
    config: GatewayConfig,
    http: reqwest::Client,
    models: Mutex<Models>,
    store: VoucherStore,
    slots: Arc<Semaphore>,
    reserved: Mutex<HashMap<AccountId, u128>>,
    nonce_seed: u64,
    counter: AtomicU64,
    /// When the endpoints were last probed; `None` before the first probe.
    probed_at: Mutex<Option<std::time::Instant>>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gateway({:?})", self.store)
    }
}

/// splitmix64: a bijection on u64, so distinct counters give distinct nonces.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Gateway {
    /// Open the gateway's store in `data_dir` and set up its HTTP client.
    pub fn open(
        data_dir: &Path,
        chain: Arc<dyn InferenceChain>,
        config: GatewayConfig,
    ) -> Result<Gateway, GatewayOpenError> {
        let store = VoucherStore::open(&data_dir.join(STORE_FILE))?;
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .build()
            .map_err(|e| GatewayOpenError::Http(e.to_string()))?;
        let nonce_seed = splitmix(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
                ^ u64::from(std::process::id()).rotate_left(32),
        );
        Ok(Gateway {
            chain,
            slots: Arc::new(Semaphore::new(config.max_concurrent_requests)),
            config,
            http,
            models: Mutex::new(Models {
                height: None,
                router: ModelRouter::new(),
            }),
            store,
            reserved: Mutex::new(HashMap::new()),
            nonce_seed,
            counter: AtomicU64::new(0),
            probed_at: Mutex::new(None),
        })
    }

    /// The `/v1` routes, for any router state.
    pub fn routes<S: Clone + Send + Sync + 'static>(self: &Arc<Self>) -> Router<S> {
        Router::new()
            .route("/v1/models", get(serve::models))
            .route("/v1/embeddings", post(serve::embeddings))
            .route("/v1/completions", post(serve::completions))
            .route("/v1/chat/completions", post(serve::chat))
            .layer(DefaultBodyLimit::max(self.config.max_body_bytes))
            .with_state(self.clone())
    }

    /// Run `f` over the model router (as of the last [`Gateway::refresh`]).
    fn with_router<R>(&self, f: impl FnOnce(&mut ModelRouter) -> R) -> R {
        let mut m = self.models.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut m.router)
    }

    /// Reload the model offers if the chain finalized a block since the last load. The read
    /// runs on the blocking pool: the chain may hold its state while it applies a block.
    pub async fn refresh(self: &Arc<Self>) {
        let gw = self.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            let height = gw.chain.height();
            let current = gw.models.lock().unwrap_or_else(|p| p.into_inner()).height;
            (current != Some(height)).then(|| (height, gw.chain.candidates()))
        })
        .await;
        if let Ok(Some((height, candidates))) = loaded {
            let mut m = self.models.lock().unwrap_or_else(|p| p.into_inner());
            if m.height.is_none_or(|h| h < height) {
                m.router.replace(candidates);
                m.height = Some(height);
            }
        }
        self.probe_if_due();
    }

    /// Starts a background round-trip probe of every offered endpoint if the last one is
    /// older than the configured interval; the results are folded into the router's latency.
    /// Requests never wait for it.
    fn probe_if_due(self: &Arc<Self>) {
        let interval = Duration::from_secs(self.config.rtt_probe_interval_secs);
        if interval.is_zero() {
            return;
        }
        {
            let mut at = self.probed_at.lock().unwrap_or_else(|p| p.into_inner());
            if at.is_some_and(|t| t.elapsed() < interval) {
                return;
            }
            // Claimed now, so concurrent refreshes start one probe, not many.
            *at = Some(std::time::Instant::now());
        }
        let gw = self.clone();
        tokio::task::spawn_blocking(move || {
            let targets: Vec<(AccountId, String)> = gw.with_router(|r| {
                let mut t: Vec<(AccountId, String)> = r
                    .names()
                    .flat_map(|n| r.candidates(n))
                    .map(|c| (c.provider, c.endpoint.clone()))
                    .collect();
                t.sort_unstable();
                t.dedup();
                t
            });
            // A fresh probe each time (max age 0): every sample is new, so none is averaged in
            // twice.
            let mut probe = RttProbe::new(
                orrery_client::probe::DEFAULT_PROBE_TIMEOUT,
                orrery_client::probe::DEFAULT_PROBE_CONCURRENCY,
                Duration::ZERO,
            );
            let rtt = probe.measure(targets.iter().map(|(_, e)| e.as_str()));
            gw.with_router(|r| {
                for (provider, endpoint) in &targets {
                    if let Some(ms) = rtt.get(endpoint) {
                        r.observe_latency(provider, f64::from(*ms));
                    }
                }
            });
            tracing::debug!(endpoints = rtt.len(), "probed provider round trips");
        });
    }

    /// Every offered model name, sorted.
    pub async fn model_names(self: &Arc<Self>) -> Vec<String> {
        self.refresh().await;
        self.with_router(|r| r.names().map(str::to_owned).collect())
    }

    /// What this gateway signed for a key that settlements have not paid yet.
    pub fn outstanding(&self, key: &AccountId) -> Amount {
        let units: u128 = self
            .store
            .channels_of(key)
            .iter()
            .map(|c| {
                let paid = self.chain.channel_paid(key, &c.provider, c.id);
                c.total.units().saturating_sub(paid.units())
            })
            .fold(0u128, u128::saturating_add);
        Amount(units)
    }

    /// A receipt this gateway recorded.
    pub fn receipt(&self, leaf: &Hash) -> Result<Option<InferenceReceiptView>, VoucherStoreError> {
        self.store.receipt(leaf)
    }

    /// The channel table (tests and the read API).
    pub fn store(&self) -> &VoucherStore {
        &self.store
    }

    fn next_nonce(&self) -> u64 {
        splitmix(
            self.nonce_seed
                .wrapping_add(self.counter.fetch_add(1, Ordering::Relaxed)),
        )
    }
}
