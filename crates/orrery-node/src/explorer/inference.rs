//! `GET /api/v1/inference/overview`: the explorer's inference page in one answer — the model
//! catalog with the lowest listed per-token prices beside public APIs' list prices, the
//! network's inference counters and their series, and the latest batches with their checks.
//!
//! Cost: the catalog reads the model offers (at most `MAX_MODELS_PER_PROVIDER` per provider),
//! the counters and series come from the index ([`crate::index::stats`]), and the latest
//! batches are the last [`RECENT_BATCHES`] of the ledger's ordered batch map.

use super::catalog::{REFERENCE_USD_PER_ORR, TOKEN_REFERENCE_PRICES};
use crate::api::{AppState, read, with_index};
use crate::error::ApiError;
use crate::index::stats::orr_f64;
use axum::Json;
use axum::extract::State;
use orrery_types::amount::Amount;
use orrery_types::crypto::AccountId;
use orrery_types::hash::Hash;
use orrery_types::inference::ModelKind;
use serde::Serialize;
use std::collections::BTreeMap;

/// Batches the page lists.
pub const RECENT_BATCHES: usize = 20;
/// Points of the inference series.
const SERIES_POINTS: usize = 200;

/// One model name on offer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CatalogEntry {
    /// The name clients ask for.
    pub name: String,
    /// Embedding or generation.
    pub kind: ModelKind,
    /// Longest context among its offers.
    pub context: u32,
    /// Weights hash (the first offer's, when several weights share a name).
    #[schema(value_type = String)]
    pub weights: Hash,
    /// Offers of it.
    pub providers: u64,
    /// Lowest price per million input tokens.
    #[schema(value_type = String)]
    pub min_price_in: Amount,
    /// Lowest price per million output tokens.
    #[schema(value_type = String)]
    pub min_price_out: Amount,
}

/// A public API's list price per million tokens.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenReference {
    /// Who sells it.
    pub provider: &'static str,
    /// The model.
    pub model: &'static str,
    /// What kind of model it is.
    pub kind: ModelKind,
    /// USD per million input tokens.
    pub price_in_usd: f64,
    /// USD per million output tokens (`null` for embeddings).
    pub price_out_usd: Option<f64>,
}

/// Inference counters since genesis.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct InferenceTotals {
    /// Settlements.
    pub batches: u64,
    /// Responses settled.
    pub responses: u64,
    /// Paid to providers after the fee.
    #[schema(value_type = String)]
    pub paid: Amount,
    /// Returned to keys by checks.
    #[schema(value_type = String)]
    pub refunded: Amount,
    /// Responses whose check ended with a verdict.
    pub checks: u64,
    /// Responses found wrong.
    pub caught: u64,
    /// Checks that agreed (checks − caught − checkers found wrong).
    pub agreed: u64,
}

/// One of the latest batches.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchLine {
    /// Batch id.
    pub id: u64,
    /// The provider.
    #[schema(value_type = String)]
    pub provider: AccountId,
    /// The model's name, as its provider offers it (or its weights hash).
    pub model_name: String,
    /// Responses it settled.
    pub responses: u64,
    /// Height of settlement.
    pub settled_at: u64,
    /// `drawing`, `checking` or `released`.
    pub phase: String,
    /// Outcome of each drawn check (`open` while it runs).
    pub outcomes: Vec<String>,
    /// Paid to the provider.
    #[schema(value_type = String)]
    pub paid: Amount,
}

/// Cumulative inference counters over time.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct InferenceSeries {
    /// Block times (ms).
    pub times_ms: Vec<u64>,
    /// Responses settled.
    pub responses: Vec<u64>,
    /// Responses checked.
    pub checks: Vec<u64>,
    /// Responses found wrong.
    pub caught: Vec<u64>,
    /// ORR paid to providers.
    pub paid: Vec<f64>,
}

/// The inference page.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InferenceOverview {
    /// Models on offer by name.
    pub catalog: Vec<CatalogEntry>,
    /// Public APIs' per-token list prices.
    pub references: Vec<TokenReference>,
    /// The USD value the comparison assumes for one ORR.
    pub usd_per_orr: f64,
    /// Counters since genesis.
    pub totals: InferenceTotals,
    /// The latest batches, newest first.
    pub recent: Vec<BatchLine>,
    /// Counters over time.
    pub series: InferenceSeries,
}

/// The explorer's inference page data.
#[utoipa::path(get, path = "/api/v1/inference/overview", responses((status = 200, body = InferenceOverview)))]
pub(crate) async fn overview(
    State(s): State<AppState>,
) -> Result<Json<InferenceOverview>, ApiError> {
    let (catalog, recent) = read(&s, |st| {
        let mut catalog: BTreeMap<String, CatalogEntry> = BTreeMap::new();
        for (_, o) in st.all_model_offers() {
            let name = o.name.to_string();
            let e = catalog.entry(name.clone()).or_insert(CatalogEntry {
                name,
                kind: o.kind,
                context: o.context,
                weights: o.weights,
                providers: 0,
                min_price_in: o.price_in,
                min_price_out: o.price_out,
            });
            e.providers += 1;
            e.context = e.context.max(o.context);
            e.min_price_in = e.min_price_in.min(o.price_in);
            e.min_price_out = e.min_price_out.min(o.price_out);
        }
        let recent: Vec<BatchLine> = st
            .inference_batches()
            .rev()
            .take(RECENT_BATCHES)
            .map(|(id, b)| BatchLine {
                id: *id,
                provider: b.provider,
                model_name: st
                    .model_offers(&b.provider)
                    .iter()
                    .find(|o| o.weights == b.model)
                    .map_or_else(|| b.model.short(), |o| o.name.to_string()),
                responses: b.responses,
                settled_at: b.settled_at,
                phase: json_name(&b.phase),
                outcomes: b
                    .checks
                    .iter()
                    .map(|c| c.outcome.as_ref().map_or_else(|| "open".into(), json_name))
                    .collect(),
                paid: b.paid,
            })
            .collect();
        (catalog.into_values().collect::<Vec<_>>(), recent)
    })
    .await?;
    let samples = with_index(&s, move |i| i.series(SERIES_POINTS)).await?;
    let mut series = InferenceSeries::default();
    let mut totals = InferenceTotals::default();
    for (_, t, c) in samples {
        series.times_ms.push(t);
        series.responses.push(c.inference_responses);
        series.checks.push(c.inference_checks);
        series.caught.push(c.inference_caught);
        series.paid.push(orr_f64(c.inference_paid));
        totals = InferenceTotals {
            batches: c.inference_batches,
            responses: c.inference_responses,
            paid: c.inference_paid,
            refunded: c.inference_refunded,
            checks: c.inference_checks,
            caught: c.inference_caught,
            agreed: c.inference_checks.saturating_sub(c.inference_caught),
        };
    }
    let references = TOKEN_REFERENCE_PRICES
        .iter()
        .map(|r| TokenReference {
            provider: r.provider,
            model: r.model,
            kind: r.kind,
            price_in_usd: r.usd_in,
            price_out_usd: r.usd_out,
        })
        .collect();
    Ok(Json(InferenceOverview {
        catalog,
        references,
        usd_per_orr: REFERENCE_USD_PER_ORR,
        totals,
        recent,
        series,
    }))
}

/// A unit enum's JSON name (`released`, `provider_caught`).
fn json_name(v: &impl Serialize) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}
