//! The inference read API under `/api/v1/inference`: the model catalog, keys, batches, the
//! open checks a party has a duty in, and the receipts this node's gateway served.
//!
//! - `GET /inference/models` — every name bonded providers offer: kind, context, weights,
//!   provider count, cheapest and median prices;
//! - `GET /inference/keys/{id}` — a key's limit, spent, deposit, revocation, and what this
//!   node's gateway signed for it that no settlement has paid yet;
//! - `GET /inference/batches/{id}` — a settled batch and its checks;
//! - `GET /inference/checks?party=` — open response checks where the party is a drawn checker
//!   of the current round or the batch's provider: what the provider agent polls;
//! - `GET /inference/receipts/{leaf}` — a response this node's gateway served and paid.
//!
//! # Cost per request
//! The catalog reads every offer once (at most `MAX_MODELS_PER_PROVIDER` per provider). The
//! checks list reads batches newest first and stops after [`MAX_CHECK_SCAN`]: checks end
//! within a few hundred blocks of their settlement, so open ones are among the newest.

use crate::api::{AppState, query, read};
use crate::error::ApiError;
use crate::explorer::median;
use crate::params::{AccountParam, HashParam, WholeNumber, parse_account, parse_hash, parse_u64};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use orrery_client::api::ErrorBody;
use orrery_client::inference::{
    CheckRole, CheckerView, InferenceBatchView, InferenceCheckView, InferenceKeyView,
    InferenceModelView, InferenceReceiptView, ResponseCheckView,
};
use orrery_ledger::State as LedgerState;
use orrery_ledger::entries::{BatchPhase, InferenceBatch, ResponseCheck};
use orrery_types::amount::Amount;
use orrery_types::crypto::AccountId;
use orrery_types::hash::Hash;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Most batches one `checks` request reads (newest first).
pub const MAX_CHECK_SCAN: usize = 100_000;

/// The routes, nested under `/api/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/inference/models", get(models))
        .route("/inference/keys/{id}", get(key))
        .route("/inference/batches/{id}", get(batch))
        .route("/inference/checks", get(checks))
        .route("/inference/receipts/{leaf}", get(receipt))
}

/// The catalog of model names bonded providers offer, sorted by name.
pub fn catalog(st: &LedgerState) -> Vec<InferenceModelView> {
    let mut by_name: BTreeMap<String, Vec<orrery_types::inference::ModelOffer>> = BTreeMap::new();
    for c in crate::gateway::ledger::bonded_candidates(st) {
        by_name
            .entry(c.offer.name.as_str().to_owned())
            .or_default()
            .push(c.offer);
    }
    by_name
        .into_iter()
        .filter_map(|(name, offers)| {
            let first = offers.first()?;
            let mut weights: BTreeMap<Hash, usize> = BTreeMap::new();
            for o in &offers {
                *weights.entry(o.weights).or_default() += 1;
            }
            let common = weights
                .iter()
                .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
                .map_or(first.weights, |(w, _)| *w);
            let ins: Vec<Amount> = offers.iter().map(|o| o.price_in).collect();
            let outs: Vec<Amount> = offers.iter().map(|o| o.price_out).collect();
            Some(InferenceModelView {
                kind: first.kind,
                context: offers.iter().map(|o| o.context).min().unwrap_or(0),
                weights: common,
                providers: offers.len() as u32,
                min_price_in: ins.iter().min().copied().unwrap_or_default(),
                min_price_out: outs.iter().min().copied().unwrap_or_default(),
                median_price_in: median(ins).unwrap_or_default(),
                median_price_out: median(outs).unwrap_or_default(),
                name,
            })
        })
        .collect()
}

/// The model catalog.
#[utoipa::path(get, path = "/api/v1/inference/models",
    responses((status = 200, body = Vec<InferenceModelView>, description = "every model name bonded providers offer, by name")))]
pub(crate) async fn models(
    State(s): State<AppState>,
) -> Result<Json<Vec<InferenceModelView>>, ApiError> {
    read(&s, catalog).await.map(Json)
}

/// An API key's state, and this node's gateway's unsettled vouchers for it.
#[utoipa::path(get, path = "/api/v1/inference/keys/{id}", params(("id" = AccountParam, Path, description = "The key's id.")),
    responses(
        (status = 200, body = InferenceKeyView),
        (status = 400, body = ErrorBody, description = "bad_account: not orr + 40 hex"),
        (status = 404, body = ErrorBody, description = "key_not_found"),
    ))]
pub(crate) async fn key(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<InferenceKeyView>, ApiError> {
    let id = parse_account(&id)?;
    let k = read(&s, move |st| st.inference_key(&id).cloned())
        .await?
        .ok_or_else(|| ApiError::not_found("key_not_found", format!("no API key {id}")))?;
    let outstanding = match s.gateway.clone() {
        Some(gw) => tokio::task::spawn_blocking(move || gw.outstanding(&id))
            .await
            .map_err(|e| ApiError::internal(format!("outstanding vouchers: {e}")))?,
        None => Amount(0),
    };
    Ok(Json(InferenceKeyView {
        id,
        owner: k.owner,
        limit: k.limit,
        spent: k.spent,
        deposit: k.deposit,
        revoked_at: k.revoked_at,
        outstanding,
    }))
}

fn phase_name(p: BatchPhase) -> String {
    serde_json::to_value(p)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn check_view(c: &ResponseCheck) -> ResponseCheckView {
    ResponseCheckView {
        index: c.index,
        round: u32::from(c.round),
        checkers: c
            .checkers
            .iter()
            .map(|e| CheckerView {
                checker: e.checker,
                round: u32::from(e.round),
                sealed: e.seal.is_some(),
                revealed: e.revealed.is_some(),
                missed: e.missed,
            })
            .collect(),
        seal_deadline: c.seal_deadline,
        reveal_deadline: c.reveal_deadline,
        opened: c.opened.is_some(),
        outcome: c
            .outcome
            .and_then(|o| serde_json::to_value(o).ok())
            .and_then(|v| v.as_str().map(str::to_owned)),
    }
}

/// The API view of a batch.
pub fn batch_view(id: u64, b: &InferenceBatch) -> InferenceBatchView {
    InferenceBatchView {
        id,
        provider: b.provider,
        key: b.key,
        channel: b.channel,
        model: b.model,
        root: b.root,
        file: b.file,
        responses: b.responses,
        held: b.held,
        settled_at: b.settled_at,
        sample_bps: b.sample_bps,
        phase: phase_name(b.phase),
        checks: b.checks.iter().map(check_view).collect(),
        refunded: b.refunded,
        paid: b.paid,
    }
}

/// A settled batch and its checks.
#[utoipa::path(get, path = "/api/v1/inference/batches/{id}", params(("id" = WholeNumber, Path, description = "The batch's number.")),
    responses(
        (status = 200, body = InferenceBatchView),
        (status = 400, body = ErrorBody, description = "bad_number: the id is not a whole number"),
        (status = 404, body = ErrorBody, description = "batch_not_found"),
    ))]
pub(crate) async fn batch(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<InferenceBatchView>, ApiError> {
    let id = parse_u64("batch id", &id)?;
    read(&s, move |st| {
        st.inference_batch(id).map(|b| batch_view(id, b))
    })
    .await?
    .map(Json)
    .ok_or_else(|| ApiError::not_found("batch_not_found", format!("no inference batch {id}")))
}

/// `?party=`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CheckParams {
    /// The account whose duties to list: a drawn checker or a batch's provider.
    #[param(value_type = AccountParam)]
    party: Option<String>,
}

/// The open checks in which `party` has a duty, oldest batch first.
pub fn open_checks(st: &LedgerState, party: &AccountId) -> Vec<InferenceCheckView> {
    let mut out = Vec::new();
    // Batch numbers are assigned in order; `last` on the map's iterator is a tree descent.
    let newest = st.inference_batches().last().map_or(0, |(id, _)| *id);
    let oldest = newest.saturating_sub(MAX_CHECK_SCAN as u64);
    for id in (oldest..=newest).rev() {
        let Some(b) = st.inference_batch(id) else {
            continue;
        };
        if b.phase == BatchPhase::Released {
            continue;
        }
        for c in b.checks.iter().filter(|c| c.outcome.is_none()) {
            let mine = c.round_checkers().find(|e| e.checker == *party);
            let role = if mine.is_some() {
                CheckRole::Checker
            } else if b.provider == *party {
                CheckRole::Provider
            } else {
                continue;
            };
            out.push(InferenceCheckView {
                batch: id,
                index: c.index,
                round: u32::from(c.round),
                role,
                phase: if c.sealing_closed() { "reveal" } else { "seal" }.to_owned(),
                seal_deadline: c.seal_deadline,
                reveal_deadline: c.reveal_deadline,
                file: b.file,
                model: b.model,
                provider: b.provider,
                sealed: mine.is_some_and(|e| e.seal.is_some()),
                revealed: mine.is_some_and(|e| e.revealed.is_some()),
                opened: c.opened.is_some(),
            });
        }
    }
    out.reverse();
    out
}

/// Open response checks in which an account has a duty (what a provider agent polls).
#[utoipa::path(get, path = "/api/v1/inference/checks", params(CheckParams),
    responses(
        (status = 200, body = Vec<InferenceCheckView>, description = "open checks: the party is a drawn checker of the current round (role checker) or the batch's provider (role provider)"),
        (status = 400, body = ErrorBody, description = "bad_account (party is not an account id) or bad_query (party missing)"),
    ))]
pub(crate) async fn checks(
    State(s): State<AppState>,
    q: Result<Query<CheckParams>, QueryRejection>,
) -> Result<Json<Vec<InferenceCheckView>>, ApiError> {
    let p = query(q)?;
    let party = p
        .party
        .as_deref()
        .ok_or_else(|| ApiError::bad_request("bad_query", "give ?party=<account id>"))?;
    let party = parse_account(party)?;
    read(&s, move |st| open_checks(st, &party)).await.map(Json)
}

/// A response this node's gateway served and paid for.
#[utoipa::path(get, path = "/api/v1/inference/receipts/{leaf}", params(("leaf" = HashParam, Path, description = "The response commitment's leaf (the receipt id).")),
    responses(
        (status = 200, body = InferenceReceiptView),
        (status = 400, body = ErrorBody, description = "bad_hash: not 64 hex characters"),
        (status = 404, body = ErrorBody, description = "receipt_not_found: this node's gateway served no response with that leaf"),
    ))]
pub(crate) async fn receipt(
    State(s): State<AppState>,
    Path(leaf): Path<String>,
) -> Result<Json<InferenceReceiptView>, ApiError> {
    let leaf = parse_hash(&leaf)?;
    let not_found = || {
        ApiError::not_found(
            "receipt_not_found",
            format!("this node's gateway served no response with receipt {leaf}"),
        )
    };
    let Some(gw) = s.gateway.clone() else {
        return Err(not_found());
    };
    let mut r = tokio::task::spawn_blocking(move || gw.receipt(&leaf))
        .await
        .map_err(|e| ApiError::internal(format!("receipt read: {e}")))?
        .map_err(|e| ApiError::internal(e.to_string()))?
        .ok_or_else(not_found)?;
    let (key, provider, channel, n) = (r.key, r.provider, r.channel, r.voucher_responses);
    r.batch = read(&s, move |st| {
        settling_batch(st, &key, &provider, channel, n)
    })
    .await?;
    Ok(Json(r))
}

/// The batch of a channel that settled its `n`th response: batches of one channel settle
/// consecutive ranges of its voucher count, in batch order. Reads at most [`MAX_CHECK_SCAN`]
/// batches, newest first.
pub fn settling_batch(
    st: &LedgerState,
    key: &AccountId,
    provider: &AccountId,
    channel: u64,
    n: u64,
) -> Option<u64> {
    let paid = st.inference_channel(key, provider, channel)?.paid_responses;
    if n == 0 || n > paid {
        return None;
    }
    // Walk back from the channel's last settlement: each batch covers `responses` counts
    // ending where the next one began.
    let newest = st.inference_batches().last().map_or(0, |(id, _)| *id);
    let mut end = paid;
    for id in (newest.saturating_sub(MAX_CHECK_SCAN as u64)..=newest).rev() {
        let Some(b) = st.inference_batch(id) else {
            continue;
        };
        if b.key != *key || b.provider != *provider || b.channel != channel {
            continue;
        }
        let start = end.saturating_sub(b.responses);
        if n > start {
            return Some(id);
        }
        end = start;
    }
    None
}
