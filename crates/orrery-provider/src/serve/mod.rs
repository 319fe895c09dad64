//! The serving lane: inference for the network's gateways, on its own thread, runtime and
//! compute threads.
//!
//! # Endpoints (at `[serve] listen`; the offer's `endpoint` must reach it)
//!
//! | endpoint | what |
//! |---|---|
//! | `POST /infer` | an [`InferenceRequest`] as JSON → a [`SignedResponse`] (JSON), or with `Accept: text/event-stream` `data: <StreamEvent>` lines: `delta`s while generating, then `done` with the signed response, or `error` |
//! | `POST /voucher` | a [`VoucherDelivery`]: the voucher paying a response just served ([`book`]'s rules) |
//! | `GET /health` | `{"status":"ok", provider, models, offers, in_flight, max_concurrent}` |
//! | `GET /status` | the agent's inference counters ([`crate::actor::InferenceSnapshot`]): served, tokens, vouchers, settlements, checks |
//!
//! # `/infer`
//!
//! 1. The body is at most [`MAX_REQUEST_BYTES`] (413 `request_too_large`).
//! 2. It parses as an [`InferenceRequest`] (400 `invalid_request_error`) and is **canonical**:
//!    its bytes are exactly `request.canonical_bytes()` (400 `non_canonical_request`), so the
//!    gateway, the provider and a checker hash the same bytes (`request_hash`).
//! 3. The model is one this agent serves, by weights hash (404 `model_not_found`).
//! 4. A compute place is free (`max_concurrent`; else 503 `overloaded` at once, so the
//!    gateway fails over rather than queue).
//! 5. The request fits the model ([`model::ServedModel::prepare`]: 400
//!    `context_length_exceeded` or `invalid_request_error`), then it is computed and the
//!    [`ResponseCommitment`] signed: `request_hash` of the received bytes, the seed, the
//!    `output_digest`, the token counts and `offer.cost(tokens_in, tokens_out)`.
//! 6. The commitment is remembered until a voucher pays for it ([`book::Book::remember`]).
//!
//! Errors are `{"error": {"message", "code"}}`.
//!
//! # Threads
//!
//! The HTTP server runs on its own thread with a small tokio runtime; each request is computed
//! on that runtime's blocking pool (at most `max_concurrent` at once, each on `threads`
//! threads). The duty loop never waits for it and the job lanes ([`crate::runs`]) never share
//! it: a long job cannot starve serving, and a burst of requests cannot delay a chain duty.
//!
//! [`InferenceRequest`]: orrery_types::inference::InferenceRequest
//! [`SignedResponse`]: orrery_types::inference::SignedResponse
//! [`VoucherDelivery`]: orrery_types::inference::VoucherDelivery
//! [`ResponseCommitment`]: orrery_types::inference::ResponseCommitment
//! [`MAX_REQUEST_BYTES`]: orrery_types::inference::MAX_REQUEST_BYTES

pub mod book;
pub mod http;
pub mod model;

pub use book::{Book, VoucherError};
pub use http::{ServeError, ServerHandle};
pub use model::{ComputeError, Computed, ServedModel};

use crate::config::{Cheat, ServeConfig};
use orrery_types::amount::Amount;
use orrery_types::crypto::{AccountId, Keypair};
use orrery_types::hash::Hash;
use orrery_types::inference::ModelOffer;
use orrery_types::tx::ChainId;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

/// What the serving lane has done since the agent started.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ServeStats {
    /// Responses computed and signed.
    pub served: u64,
    /// Input tokens of those responses.
    pub tokens_in: u64,
    /// Output tokens of those responses.
    pub tokens_out: u64,
    /// Requests refused (4xx) or failed (5xx).
    pub refused: u64,
    /// Requests turned away because every compute place was taken.
    pub overloaded: u64,
    /// Vouchers accepted.
    pub vouchers: u64,
    /// What the accepted vouchers pay, in total.
    pub vouchers_amount: Amount,
    /// Vouchers refused.
    pub vouchers_refused: u64,
}

/// Everything the serving lane and the duty loop share.
pub struct Serving {
    models: Vec<Arc<ServedModel>>,
    key: Keypair,
    me: AccountId,
    threads: usize,
    max_concurrent: usize,
    settle_every_blocks: u64,
    max_batch: u64,
    book: Mutex<Book>,
    chain_id: Mutex<Option<ChainId>>,
    stats: Mutex<ServeStats>,
    permits: Arc<tokio::sync::Semaphore>,
    /// The duty loop's latest inference counters, for `GET /status`.
    report: Mutex<Option<crate::actor::InferenceSnapshot>>,
}

/// Lock a mutex, taking the data even if a thread panicked while holding it: every update
/// under these locks leaves the data consistent before anything can panic.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Serving {
    /// Load every configured model (perturbed for [`Cheat::WrongModel`]) and open the books
    /// in `data_dir`.
    ///
    /// With a (self-checked) GPU `device`, each model's linear layers run on it; a model the
    /// GPU cannot hold is served from the CPU, with a warning (same answers, slower).
    pub fn load(
        config: &ServeConfig,
        key: Keypair,
        cheat: Cheat,
        data_dir: &Path,
        device: Option<&orrery_ml::Device>,
    ) -> Result<Serving, ServeError> {
        let mut models = Vec::new();
        for m in &config.models {
            let mut model = ServedModel::load(m, cheat)?;
            let mut on = "cpu".to_string();
            if let Some(device) = device.filter(|d| d.is_gpu()) {
                // Load again on failure: a half-uploaded model keeps the matrices that fit on
                // the GPU, which is correct but uneven; the CPU path is the clear fallback.
                match model.use_device(device) {
                    Ok(()) => on = device.name(),
                    Err(e) => {
                        tracing::warn!(name = %m.name, error = %e, "the model does not fit the GPU; serving it on the CPU");
                        model = ServedModel::load(m, cheat)?;
                    }
                }
            }
            tracing::info!(name = %m.name, weights = %model.weights(), kind = ?model.offer().kind, device = %on, "model loaded");
            models.push(model);
        }
        Ok(Self::new(config, key, models, Book::open(data_dir)?))
    }

    /// Serving `models` with `book` (tests build both by hand).
    pub fn new(
        config: &ServeConfig,
        key: Keypair,
        models: Vec<ServedModel>,
        book: Book,
    ) -> Serving {
        Serving {
            models: models.into_iter().map(Arc::new).collect(),
            me: key.account(),
            key,
            threads: config.threads.max(1),
            max_concurrent: config.max_concurrent.max(1),
            settle_every_blocks: config.settle_every_blocks.max(1),
            max_batch: config.max_batch.max(1),
            book: Mutex::new(book),
            chain_id: Mutex::new(None),
            stats: Mutex::new(ServeStats::default()),
            permits: Arc::new(tokio::sync::Semaphore::new(config.max_concurrent.max(1))),
            report: Mutex::new(None),
        }
    }

    /// The model with these weights, if served.
    pub fn model(&self, weights: &Hash) -> Option<Arc<ServedModel>> {
        self.models
            .iter()
            .find(|m| m.weights() == *weights)
            .cloned()
    }

    /// The offers, in configuration order.
    pub fn offers(&self) -> Vec<ModelOffer> {
        self.models.iter().map(|m| m.offer().clone()).collect()
    }

    /// The provider account.
    pub fn account(&self) -> AccountId {
        self.me
    }

    /// The provider's key (signs commitments).
    pub fn key(&self) -> &Keypair {
        &self.key
    }

    /// Compute threads per request.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Requests computed at once.
    pub fn max_concurrent(&self) -> usize {
        self.max_concurrent
    }

    /// Settle a channel at least this often (blocks).
    pub fn settle_every_blocks(&self) -> u64 {
        self.settle_every_blocks
    }

    /// Settle a channel once this many responses wait.
    pub fn max_batch(&self) -> u64 {
        self.max_batch
    }

    /// The books.
    pub fn book(&self) -> MutexGuard<'_, Book> {
        lock(&self.book)
    }

    /// The chain id vouchers must name (set by the duty loop once it read the chain).
    pub fn set_chain_id(&self, id: ChainId) {
        *lock(&self.chain_id) = Some(id);
    }

    /// See [`Serving::set_chain_id`].
    pub fn chain_id(&self) -> Option<ChainId> {
        lock(&self.chain_id).clone()
    }

    /// What the lane has done.
    pub fn stats(&self) -> ServeStats {
        lock(&self.stats).clone()
    }

    /// The compute places: one permit per request computed at once.
    pub fn permits(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.permits
    }

    /// Publish the duty loop's counters (served at `GET /status`).
    pub fn publish(&self, report: crate::actor::InferenceSnapshot) {
        *lock(&self.report) = Some(report);
    }

    /// The last counters the duty loop published, with the lane's own counters as they are
    /// now.
    pub fn report(&self) -> crate::actor::InferenceSnapshot {
        let mut r = lock(&self.report).clone().unwrap_or_default();
        r.serve = self.stats();
        r
    }

    pub(crate) fn stats_mut(&self) -> MutexGuard<'_, ServeStats> {
        lock(&self.stats)
    }
}

#[cfg(test)]
pub(crate) mod tests;
