//! The web explorer every node serves: the static pages (HTML, CSS, ES modules and the
//! vendored uPlot charting library, all embedded in the binary — see [`assets`]) and the API
//! endpoints written for them (also useful to agents):
//!
//! - `GET /api/v1/params` — the ledger's parameters;
//! - `GET /api/v1/overview` — the network at a glance;
//! - `GET /api/v1/series` — cumulative counters over time, at most
//!   [`crate::index::MAX_SERIES_POINTS`];
//! - `GET /api/v1/providers?sort=&order=&q=` — providers sorted, searched and paged;
//! - `GET /api/v1/providers/{id}/leases` — a provider's leases, newest first;
//! - `GET /api/v1/leases/{id}/evidence` — a lease's timeline, dispute rounds, verdict and
//!   transfers;
//! - `GET /api/v1/search?q=` — what an id or hash names;
//! - `GET /api/v1/inference/overview` — the model catalog beside public per-token prices,
//!   inference counters and their series, the latest batches ([`inference`]).
//!
//! # Cost per request
//! Nothing here scans every lease or block. Job, check, dispute, slash and supply counters
//! and the series are kept by the index as blocks are indexed ([`crate::index::stats`]); a
//! lease's evidence reads only that lease's index entries (bounded by
//! [`MAX_EVIDENCE_ENTRIES`]); a provider's leases come from a provider → lease index. The
//! provider-wide figures (online, GPUs by model, median prices) are computed once per
//! finalized height, on the first request that needs them, and cached ([`Cache`]).
//!
//! # Online
//! A provider is *online* when its bonded stake reaches the ledger's minimum for its
//! hardware and it signed a transaction within [`ONLINE_WINDOW_BLOCKS`] of the head. The chain
//! has no heartbeat transaction yet; registration, bonding and every lease move count.

pub mod assets;
pub mod catalog;
pub mod cluster;
pub mod inference;

use crate::api::{
    AppState, PageParams, lease_view, provider_view, query, read, supply_view, with_index,
};
use crate::error::ApiError;
use crate::index::{Activity, TxList, stats::orr_f64};
use crate::params::{
    AccountParam, MAX_SEARCH_LEN, Order, PROVIDER_SORTS, PageLimit, ProviderCursor, ProviderSort,
    SearchQuery, SeriesPoints, WholeNumber, order, page_limit, parse_account, parse_hash,
    parse_u64, series_points, trim_search,
};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::{Json, Router, routing::get};
use orrery_client::api::{
    BisectionMove, BisectionRound, ChallengeRecordView, ErrorBody, GpuModelCount, JobCounts,
    LeaseEvidence, LeaseView, OpenChallengeView, OverviewView, Page, PriceComparison,
    ProviderActivity, ProviderView, ProvidersOverview, SearchMatch, SearchResult, SeriesView,
    TimelineEntry, TransferView, TxRecord, VerificationCounts,
};
use orrery_ledger::entries::{Challenge, ChallengePhase, Provider};
use orrery_ledger::{Event, Params};
use orrery_types::amount::Amount;
use orrery_types::crypto::AccountId;
use orrery_types::hash::Hash;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// Blocks within which a provider must have signed a transaction to count as online: about
/// ten minutes at the devnet's 200 ms blocks. Long enough that a provider idle between jobs
/// stays online, short enough that a machine switched off drops out the same hour.
pub const ONLINE_WINDOW_BLOCKS: u64 = 3_000;

/// Most timeline entries (transactions plus end-of-block events) one evidence answer holds.
/// A lease's life is a few dozen entries (a dispute adds two per bisection round, about 2 ×
/// 64 at most); the bound only stops a pathological lease from making a huge answer.
pub const MAX_EVIDENCE_ENTRIES: usize = 1_000;

/// Blocks over which the overview averages the block interval.
const INTERVAL_BLOCKS: u64 = 100;

/// Provider-wide figures, computed once per finalized height.
#[derive(Debug, Default)]
pub struct Cache {
    providers: Mutex<Option<(u64, Arc<ProviderSummary>)>>,
}

#[derive(Debug, Default)]
struct ProviderSummary {
    registered: u64,
    online: u64,
    gpus: Vec<GpuModelCount>,
    cpu_cores_online: u64,
    prices: Vec<PriceComparison>,
}

/// The explorer's API routes, nested under `/api/v1` by [`crate::api::router`].
pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/params", get(params))
        .route("/overview", get(overview))
        .route("/series", get(series))
        .route("/providers/{id}/leases", get(provider_leases))
        .route("/leases/{id}/evidence", get(evidence))
        .route("/search", get(search))
        .route("/inference/overview", get(inference::overview))
        .route("/cluster-leases", get(cluster::cluster_leases))
        .route("/cluster-leases/{id}", get(cluster::cluster_lease))
        .route(
            "/cluster-leases/{id}/rounds/{round}",
            get(cluster::cluster_round),
        )
}

/// The ledger's parameters (fees, deadlines, stakes, sampling rates).
#[utoipa::path(get, path = "/api/v1/params", responses((status = 200, body = Object, description = "the ledger's Params as JSON (see orrery_ledger::Params)")))]
pub(crate) async fn params(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    let p = read(&s, |st| st.params().clone()).await?;
    serde_json::to_value(&p)
        .map(Json)
        .map_err(|e| ApiError::internal(format!("params: {e}")))
}

pub(crate) fn median(mut v: Vec<Amount>) -> Option<Amount> {
    if v.is_empty() {
        return None;
    }
    v.sort();
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        Amount((v[n / 2 - 1].0 + v[n / 2].0) / 2)
    })
}

fn is_online(p: &Provider, a: &Activity, head: u64, params: &Params) -> bool {
    let staked = params
        .min_stake(&p.offer.hardware)
        .is_some_and(|min| p.stake >= min);
    // A missed or failed challenge takes a provider offline on chain, whatever it signed.
    staked
        && p.proof.online
        && a.last_seen
            .is_some_and(|h| head.saturating_sub(h) <= ONLINE_WINDOW_BLOCKS)
}

fn comparison(
    resource: String,
    unit: &str,
    prices: Vec<Amount>,
    reference: Option<&catalog::ReferencePrice>,
) -> Option<PriceComparison> {
    let offers = prices.len() as u64;
    let median = median(prices)?;
    let median_usd = orr_f64(median) * catalog::REFERENCE_USD_PER_ORR;
    let saving_pct = reference
        .filter(|r| r.usd_per_hour > 0.0)
        .map(|r| ((r.usd_per_hour - median_usd) / r.usd_per_hour * 1000.0).round() / 10.0);
    Some(PriceComparison {
        resource,
        unit: unit.to_string(),
        median,
        offers,
        median_usd,
        reference: reference.map(|r| r.name.to_string()),
        reference_usd: reference.map(|r| r.usd_per_hour),
        saving_pct,
    })
}

async fn provider_summary(s: &AppState, height: u64) -> Result<Arc<ProviderSummary>, ApiError> {
    if let Ok(guard) = s.explorer.providers.lock()
        && let Some((h, summary)) = guard.as_ref()
        && *h == height
    {
        return Ok(summary.clone());
    }
    let (head, params, providers) = read(s, |st| {
        let providers: Vec<(AccountId, Provider)> = st
            .providers()
            .iter()
            .map(|(id, p)| (*id, p.clone()))
            .collect();
        (st.height(), st.params().clone(), providers)
    })
    .await?;
    let ids: Vec<AccountId> = providers.iter().map(|(id, _)| *id).collect();
    let activity = with_index(s, move |i| i.activities(&ids)).await?;
    let mut summary = ProviderSummary {
        registered: providers.len() as u64,
        ..ProviderSummary::default()
    };
    let mut gpus: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut gpu_prices: BTreeMap<String, Vec<Amount>> = BTreeMap::new();
    let mut cpu_prices = Vec::new();
    for ((_, p), a) in providers.iter().zip(&activity) {
        if !is_online(p, a, head, &params) {
            continue;
        }
        summary.online += 1;
        summary.cpu_cores_online += p.offer.hardware.cpu_cores as u64;
        if let Some(g) = &p.offer.hardware.gpu
            && g.count > 0
        {
            let model = g.model.as_str().to_string();
            let e = gpus.entry(model.clone()).or_default();
            e.0 += g.count as u64;
            e.1 += 1;
            gpu_prices
                .entry(model)
                .or_default()
                .push(p.offer.prices.gpu_hour);
        } else if !p.offer.prices.cpu_core_hour.is_zero() {
            cpu_prices.push(p.offer.prices.cpu_core_hour);
        }
    }
    summary.gpus = gpus
        .into_iter()
        .map(|(model, (gpus, providers))| GpuModelCount {
            model,
            gpus,
            providers,
        })
        .collect();
    for (model, prices) in gpu_prices {
        let reference = catalog::gpu_reference(&model);
        summary
            .prices
            .extend(comparison(model, "GPU-hour", prices, reference));
    }
    summary.prices.extend(comparison(
        "CPU core".to_string(),
        "core-hour",
        cpu_prices,
        Some(&catalog::CPU_REFERENCE_PRICE),
    ));
    let summary = Arc::new(summary);
    if let Ok(mut guard) = s.explorer.providers.lock() {
        *guard = Some((height, summary.clone()));
    }
    Ok(summary)
}

/// The network at a glance.
#[utoipa::path(get, path = "/api/v1/overview", responses((status = 200, body = OverviewView)))]
pub(crate) async fn overview(State(s): State<AppState>) -> Result<Json<OverviewView>, ApiError> {
    let chain = s.backend.status();
    let (stats, indexed, interval) = with_index(&s, |i| {
        let top = i.indexed_height()?;
        let k = INTERVAL_BLOCKS.min(top.saturating_sub(1));
        let interval = match (i.block_time(top)?, i.block_time(top - k.min(top))?) {
            (Some(t1), Some(t0)) if k > 0 => Some(t1.saturating_sub(t0) as f64 / k as f64),
            _ => None,
        };
        Ok((i.chain_stats()?, top, interval))
    })
    .await?;
    let supply = read(&s, supply_view).await?;
    let providers = provider_summary(&s, chain.height).await?;
    let final_jobs = stats.settled + stats.failed + stats.timed_out;
    Ok(Json(OverviewView {
        chain_id: chain.chain_id,
        height: chain.height,
        last_block_time_ms: chain.last_block_time_ms,
        block_interval_ms: interval,
        validators: chain.validators,
        syncing: chain.syncing,
        indexed_height: indexed,
        blocks_without_outcome: stats.blocks_without_outcome,
        providers: ProvidersOverview {
            registered: providers.registered,
            online: providers.online,
            online_window_blocks: ONLINE_WINDOW_BLOCKS,
        },
        gpus_online: providers.gpus.clone(),
        cpu_cores_online: providers.cpu_cores_online,
        prices: providers.prices.clone(),
        usd_per_orr: catalog::REFERENCE_USD_PER_ORR,
        jobs: JobCounts {
            opened: stats.opened,
            running: stats.opened.saturating_sub(final_jobs),
            settled: stats.settled,
            failed: stats.failed,
            timed_out: stats.timed_out,
        },
        verification: VerificationCounts {
            checks: stats.checks,
            checks_passed: stats.checks_passed,
            disputes: stats.disputes,
            referee_rulings: stats.referee_rulings,
            tiebreaks: stats.tiebreaks,
            slashes: stats.slashes,
            slashed: stats.slashed,
        },
        supply,
    }))
}

/// `?points=`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SeriesParams {
    /// Heights to sample: 1 to 500 (default 200).
    #[param(value_type = Option<SeriesPoints>)]
    points: Option<String>,
}

/// Cumulative counters over time, sampled at evenly spaced heights.
#[utoipa::path(get, path = "/api/v1/series", params(SeriesParams),
    responses(
        (status = 200, body = SeriesView),
        (status = 400, body = ErrorBody, description = "bad_query: points out of range"),
    ))]
pub(crate) async fn series(
    State(s): State<AppState>,
    q: Result<Query<SeriesParams>, QueryRejection>,
) -> Result<Json<SeriesView>, ApiError> {
    let points = series_points(query(q)?.points.as_deref())?;
    let genesis = read(&s, |st| st.globals().genesis_supply).await?;
    let samples = with_index(&s, move |i| i.series(points)).await?;
    let mut v = SeriesView::default();
    for (h, t, c) in samples {
        v.heights.push(h);
        v.times_ms.push(t);
        let supply = genesis
            .checked_add(c.minted)
            .and_then(|x| x.checked_sub(c.burned))
            .unwrap_or(genesis);
        v.supply.push(orr_f64(supply));
        v.minted.push(orr_f64(c.minted));
        v.burned.push(orr_f64(c.burned));
        v.settled.push(c.settled);
        v.failed.push(c.failed);
        v.checks.push(c.checks);
        v.disputes.push(c.disputes);
        v.slashes.push(c.slashes);
    }
    Ok(Json(v))
}

// ---- providers ----

/// `GET /providers` parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ProviderParams {
    /// `id` (default), `price` (GPU-hour, then core-hour), `stake`, `reputation`, `uptime`
    /// (challenges answered ÷ decided), `score` (the proven score: measured ÷ claimed throughput).
    #[param(value_type = Option<ProviderSort>)]
    sort: Option<String>,
    /// `asc` (default for `id` and `price`) or `desc` (default for the others).
    #[param(value_type = Option<Order>)]
    order: Option<String>,
    /// Case-insensitive: an id prefix, a region, part of a GPU model, or `cpu`.
    q: Option<String>,
    /// Page size: 1 to 500 (default 50).
    #[param(value_type = Option<PageLimit>)]
    limit: Option<String>,
    /// The previous page's `next_cursor`: in plain id order the last provider's id, sorted or
    /// searched an offset.
    #[param(value_type = Option<ProviderCursor>)]
    cursor: Option<String>,
}

/// Most providers one sorted or searched list request examines. Sorting needs them all; this
/// bounds the work (a network beyond it gets the first this many by id, and says so in logs).
pub const MAX_PROVIDER_SCAN: usize = 200_000;

fn reputation_bps(p: &Provider) -> Option<u32> {
    let r = p.reputation;
    let good = r.settled + r.checked;
    let bad = 5 * (r.failed + r.slashed) + 2 * r.timed_out;
    (good + bad > 0).then(|| (good * 10_000 / (good + bad)) as u32)
}

/// Challenges answered ÷ decided (answered + missed), in basis points; `None` before the first is decided.
fn uptime_bps(p: &Provider) -> Option<u32> {
    (p.proof.decided() > 0).then(|| p.proof.uptime_bps())
}

/// Proven ÷ claimed throughput, in basis points; `None` before the first measurement.
fn proven_score_bps(p: &Provider) -> Option<u32> {
    (p.proof.proven_flops > 0).then_some(p.proof.proven_score_bps)
}

fn activity_view(p: &Provider, a: &Activity, head: u64, params: &Params) -> ProviderActivity {
    ProviderActivity {
        last_seen: a.last_seen,
        online: is_online(p, a, head, params),
        slashes: a.slashes,
        slashed: a.slashed,
        uptime_bps: uptime_bps(p),
        reputation_bps: reputation_bps(p),
        leases: a.leases,
    }
}

/// The chain's challenge record of `p`, with `open`, its open challenge, as the agent needs it.
pub(crate) fn challenge_view(
    p: &Provider,
    open: Option<&Challenge>,
    params: &Params,
) -> ChallengeRecordView {
    let r = &p.proof;
    ChallengeRecordView {
        drawn: r.challenges_drawn,
        answered: r.challenges_answered,
        missed: r.challenges_missed,
        wrong: r.challenges_wrong,
        below_claim: r.below_claim,
        online: r.online,
        uptime_bps: uptime_bps(p),
        proven_flops: (r.proven_flops > 0).then_some(r.proven_flops),
        proven_score_bps: proven_score_bps(p),
        claimed_flops: orrery_types::challenge::claimed_flops(&p.offer.hardware),
        last_answered_at: (r.last_answered_at > 0).then_some(r.last_answered_at),
        open: open.map(|c| open_challenge_view(c, params)),
    }
}

fn open_challenge_view(c: &Challenge, params: &Params) -> OpenChallengeView {
    let open_by = |answered_at: u64| answered_at.saturating_add(params.challenge_open_blocks);
    let (phase, root, open_rows, open_by) = match c.phase {
        ChallengePhase::Requested { .. } => ("requested", None, Vec::new(), None),
        ChallengePhase::Drawn => ("drawn", None, Vec::new(), None),
        ChallengePhase::Answered { root, .. } => ("answered", Some(root), Vec::new(), None),
        ChallengePhase::Opening {
            root,
            answered_at,
            open_seed,
            ..
        } => (
            "opening",
            Some(root),
            orrery_types::challenge::open_indices(
                &c.seed,
                &open_seed,
                c.rows,
                u64::from(params.challenge_open_rows),
            ),
            Some(open_by(answered_at)),
        ),
    };
    OpenChallengeView {
        phase: phase.into(),
        drawn_at: c.drawn_at,
        seed: c.seed,
        dim: c.dim,
        rows: c.rows,
        answer_by: (phase != "requested")
            .then(|| c.drawn_at.saturating_add(params.challenge_deadline_blocks)),
        root,
        open_rows,
        open_by,
    }
}

fn matches_query(id: &AccountId, p: &Provider, q: &str) -> bool {
    let id = id.to_string();
    id.starts_with(q)
        || id.trim_start_matches("orr").starts_with(q)
        || p.offer.region.as_str().to_ascii_lowercase().contains(q)
        || p.offer
            .hardware
            .gpu
            .as_ref()
            .is_some_and(|g| g.model.as_str().to_ascii_lowercase().contains(q))
        || (q == "cpu" && p.offer.hardware.gpu.is_none())
}

/// Registered providers: in id order by default (cursor: the last id), or sorted and searched
/// (cursor: an offset), each with its activity.
#[utoipa::path(get, path = "/api/v1/providers", params(ProviderParams),
    responses(
        (status = 200, body = Page<ProviderView>),
        (status = 400, body = ErrorBody, description = "bad_query (sort, order or limit), bad_account or bad_number (a cursor of the other kind than the order pages by)"),
    ))]
pub(crate) async fn providers(
    State(s): State<AppState>,
    q: Result<Query<ProviderParams>, QueryRejection>,
) -> Result<Json<Page<ProviderView>>, ApiError> {
    let p = query(q)?;
    let limit = page_limit(p.limit.as_deref())?;
    let sort = p.sort.as_deref().unwrap_or("id").to_string();
    let desc = order(p.order.as_deref())?.unwrap_or(!matches!(sort.as_str(), "id" | "price"));
    if !PROVIDER_SORTS.contains(&sort.as_str()) {
        return Err(ApiError::bad_request(
            "bad_query",
            format!(
                "sort must be one of {}, got {sort:?}",
                PROVIDER_SORTS.join(", ")
            ),
        ));
    }
    let needle =
        p.q.as_deref()
            .map(|q| q.trim().to_ascii_lowercase())
            .filter(|q| !q.is_empty());
    let plain = sort == "id" && !desc && needle.is_none();
    // Plain id order pages by the last id (as before the explorer); any other order by offset.
    let after = match (&p.cursor, plain) {
        (Some(c), true) => Some(parse_account(c)?),
        _ => None,
    };
    let offset = match (&p.cursor, plain) {
        (Some(c), false) => parse_u64("cursor", c)? as usize,
        _ => 0,
    };
    let (head, params, rows, more, open) = read(&s, move |st| {
        use std::ops::Bound;
        let lo = match after {
            Some(a) => Bound::Excluded(a),
            None => Bound::Unbounded,
        };
        let mut rows: Vec<(AccountId, Provider)> = st
            .providers()
            .range((lo, Bound::Unbounded))
            .take(MAX_PROVIDER_SCAN)
            .filter(|(id, p)| needle.as_deref().is_none_or(|q| matches_query(id, p, q)))
            .map(|(id, p)| (*id, p.clone()))
            .take(if plain { limit + 1 } else { usize::MAX })
            .collect();
        let key = |p: &Provider| -> (u128, u128) {
            match sort.as_str() {
                "price" => (p.offer.prices.gpu_hour.0, p.offer.prices.cpu_core_hour.0),
                "stake" => (p.stake.0, 0),
                "uptime" => (uptime_bps(p).map_or(0, |v| v as u128 + 1), 0),
                "score" => (proven_score_bps(p).map_or(0, |v| v as u128 + 1), 0),
                "reputation" => (reputation_bps(p).map_or(0, |v| v as u128 + 1), 0),
                _ => (0, 0),
            }
        };
        if !plain {
            // Stable: ties stay in id order.
            rows.sort_by(|a, b| {
                let o = key(&a.1).cmp(&key(&b.1));
                if desc { o.reverse() } else { o }
            });
        }
        let total = rows.len();
        let rows: Vec<(AccountId, Provider)> = if plain {
            rows.into_iter().take(limit).collect()
        } else {
            rows.into_iter().skip(offset).take(limit).collect()
        };
        let more = if plain {
            total > limit
        } else {
            offset + rows.len() < total
        };
        let open: Vec<Option<Challenge>> = rows
            .iter()
            .map(|(id, _)| st.challenge(id).copied())
            .collect();
        (st.height(), st.params().clone(), rows, more, open)
    })
    .await?;
    let ids: Vec<AccountId> = rows.iter().map(|(id, _)| *id).collect();
    let activity = with_index(&s, move |i| i.activities(&ids)).await?;
    let items: Vec<ProviderView> = rows
        .iter()
        .zip(&activity)
        .zip(&open)
        .map(|(((id, p), a), c)| ProviderView {
            activity: Some(activity_view(p, a, head, &params)),
            challenges: Some(challenge_view(p, c.as_ref(), &params)),
            ..provider_view(*id, p)
        })
        .collect();
    let next_cursor = more
        .then(|| {
            if plain {
                items.last().map(|p| p.id.to_string())
            } else {
                Some((offset + items.len()).to_string())
            }
        })
        .flatten();
    Ok(Json(Page { items, next_cursor }))
}

/// One provider, with its activity.
#[utoipa::path(get, path = "/api/v1/providers/{id}", params(("id" = AccountParam, Path, description = "The provider's account id.")),
    responses(
        (status = 200, body = ProviderView),
        (status = 400, body = ErrorBody, description = "bad_account: not orr + 40 hex"),
        (status = 404, body = ErrorBody, description = "provider_not_found: not a registered provider"),
    ))]
pub(crate) async fn provider(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ProviderView>, ApiError> {
    let id = parse_account(&id)?;
    let found = read(&s, move |st| {
        st.provider(&id).map(|p| {
            (
                p.clone(),
                st.height(),
                st.params().clone(),
                st.challenge(&id).copied(),
            )
        })
    })
    .await?;
    let Some((p, head, params, open)) = found else {
        return Err(ApiError::not_found(
            "provider_not_found",
            format!("{id} is not a registered provider"),
        ));
    };
    let a = with_index(&s, move |i| i.activity(&id)).await?;
    Ok(Json(ProviderView {
        activity: Some(activity_view(&p, &a, head, &params)),
        challenges: Some(challenge_view(&p, open.as_ref(), &params)),
        ..provider_view(id, &p)
    }))
}

/// A search answer: what was found, its id, and the explorer route that shows it
/// (`#/<kind>s/<id>`, the route every page of the explorer uses).
fn found(kind: &str, id: impl std::fmt::Display) -> SearchMatch {
    SearchMatch {
        kind: kind.into(),
        id: id.to_string(),
        route: format!("#/{kind}s/{id}"),
    }
}

/// A provider's leases, newest first.
#[utoipa::path(get, path = "/api/v1/providers/{id}/leases", params(("id" = AccountParam, Path, description = "The provider's account id."), PageParams),
    responses(
        (status = 200, body = Page<LeaseView>, description = "the account's leases as provider (an empty page for an account that never was one)"),
        (status = 400, body = ErrorBody, description = "bad_account, bad_number (cursor) or bad_query (limit out of range)"),
    ))]
pub(crate) async fn provider_leases(
    State(s): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<Page<LeaseView>>, ApiError> {
    let id = parse_account(&id)?;
    let p = query(q)?;
    let before = p.numeric_cursor()?;
    let limit = p.limit()?;
    let (ids, next) = with_index(&s, move |i| i.provider_leases(&id, before, limit)).await?;
    let items = read(&s, move |st| {
        ids.iter()
            .filter_map(|l| st.lease(*l).map(lease_view))
            .collect()
    })
    .await?;
    Ok(Json(Page {
        items,
        next_cursor: next.map(|n| n.to_string()),
    }))
}

// ---- evidence ----

/// Replace long byte arrays and strings in a body by a short description (an adjudication
/// carries a whole job bundle).
pub(crate) fn shorten(v: &Value) -> Value {
    match v {
        Value::Array(items) if items.len() > 64 && items.iter().all(Value::is_number) => {
            Value::String(format!("<{} bytes>", items.len()))
        }
        Value::Array(items) => Value::Array(items.iter().map(shorten).collect()),
        Value::String(s) if s.len() > 256 => {
            Value::String(format!("{}… <{} characters>", &s[..64], s.len()))
        }
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shorten(v))).collect()),
        other => other.clone(),
    }
}

fn is_about(e: &Value, lease: u64) -> bool {
    e.get("lease").and_then(Value::as_u64) == Some(lease)
}

/// An event from the index or a receipt as the ledger's typed [`Event`]; `None` for an event
/// this build does not know (a newer ledger's), which then moves no tokens on the page.
fn typed(e: &Value) -> Option<Event> {
    serde_json::from_value(e.clone()).ok()
}

/// `amount`, unless it is zero (a movement of nothing is not shown).
fn nonzero(amount: Amount) -> Option<Amount> {
    (!amount.is_zero()).then_some(amount)
}

/// The token movements an event reports.
fn transfers_of(
    e: &Event,
    lease: &LeaseView,
    height: u64,
    tx: Option<Hash>,
    out: &mut Vec<TransferView>,
) {
    let requester = lease.requester.to_string();
    let provider = lease.provider.to_string();
    let mut push = |kind: &str, from: String, to: String, amount: Amount| {
        if let Some(amount) = nonzero(amount) {
            out.push(TransferView {
                kind: kind.to_string(),
                from,
                to,
                amount,
                height,
                tx,
            });
        }
    };
    match e {
        Event::LeaseOpened { escrow, .. } => {
            push("escrow_locked", requester, "escrow".into(), *escrow)
        }
        Event::LeaseSettled {
            provider_paid,
            verifiers_paid,
            fee,
            burned,
            refunded,
            ..
        } => {
            push("provider_paid", "escrow".into(), provider, *provider_paid);
            push(
                "verifiers_paid",
                "escrow".into(),
                "verifiers".into(),
                *verifiers_paid,
            );
            push("fee_burned", "escrow".into(), "burn".into(), *burned);
            let to_validators = fee.checked_sub(*burned).unwrap_or(Amount::ZERO);
            push("fee", "escrow".into(), "validators".into(), to_validators);
            push("refunded", "escrow".into(), requester, *refunded);
        }
        Event::LeaseFailed { refunded, .. } => {
            push("refunded", "escrow".into(), requester, *refunded)
        }
        Event::LeaseTimedOut {
            refunded, docked, ..
        } => {
            push("refunded", "escrow".into(), requester, *refunded);
            push(
                "docked",
                format!("stake of {provider}"),
                "burn".into(),
                *docked,
            );
        }
        Event::CheckAbsent { party, docked, .. } => push(
            "docked",
            format!("stake of {party}"),
            "burn".into(),
            *docked,
        ),
        Event::Slashed {
            party,
            rewarded,
            burned,
            ..
        } => {
            push(
                "slash_reward",
                format!("stake of {party}"),
                "winners".into(),
                *rewarded,
            );
            push(
                "slash_burned",
                format!("stake of {party}"),
                "burn".into(),
                *burned,
            );
        }
        _ => {}
    }
}

/// A lease's whole story: every transaction that acted on it and every end-of-block event
/// about it, in order, with the dispute's rounds, the verdict and the token movements.
#[utoipa::path(get, path = "/api/v1/leases/{id}/evidence", params(("id" = WholeNumber, Path, description = "The lease id.")),
    responses(
        (status = 200, body = LeaseEvidence),
        (status = 400, body = ErrorBody, description = "bad_number: the id is not a whole number"),
        (status = 404, body = ErrorBody, description = "lease_not_found"),
    ))]
pub(crate) async fn evidence(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<LeaseEvidence>, ApiError> {
    let id = parse_u64("lease id", &id)?;
    let lease = read(&s, move |st| st.lease(id).map(lease_view))
        .await?
        .ok_or_else(|| ApiError::not_found("lease_not_found", format!("no lease {id}")))?;
    let (txs, events, times, cut) = with_index(&s, move |i| {
        let (mut txs, more) = i.txs(TxList::Lease(id), None, MAX_EVIDENCE_ENTRIES)?;
        txs.reverse();
        let events = i.lease_events(id, MAX_EVIDENCE_ENTRIES)?;
        let heights: BTreeSet<u64> = txs
            .iter()
            .map(|t| t.height)
            .chain(events.iter().map(|(h, _)| *h))
            .collect();
        let mut times = BTreeMap::new();
        for h in heights {
            if let Some(t) = i.block_time(h)? {
                times.insert(h, t);
            }
        }
        let cut = more.is_some() || events.len() == MAX_EVIDENCE_ENTRIES;
        Ok((txs, events, times, cut))
    })
    .await?;
    Ok(Json(build_evidence(lease, &txs, &events, &times, cut)))
}

fn build_evidence(
    lease: LeaseView,
    txs: &[TxRecord],
    events: &[(u64, Value)],
    times: &BTreeMap<u64, u64>,
    cut: bool,
) -> LeaseEvidence {
    let id = lease.id;
    let mut timeline: Vec<(u64, u8, TimelineEntry)> = Vec::new();
    let mut transfers = Vec::new();
    let mut rounds: BTreeMap<u32, BisectionRound> = BTreeMap::new();
    let mut verdict = None;
    let mut verifiers = Vec::new();
    let mut complete = !cut;
    let mut note = |e: &Value, height: u64, tx: Option<Hash>, transfers: &mut Vec<TransferView>| {
        let Some(event) = typed(e) else {
            return;
        };
        transfers_of(&event, &lease, height, tx, transfers);
        match event {
            Event::RefereeRuled { .. } | Event::TiebreakDrawn { .. } => verdict = Some(e.clone()),
            Event::CheckDrawn { verifiers: v, .. } => verifiers = v,
            _ => {}
        }
    };
    // A transaction included twice is indexed once under its hash; show it once.
    let mut seen = BTreeSet::new();
    for t in txs {
        if !seen.insert(t.tx.hash) {
            continue;
        }
        let Some(r) = &t.receipt else {
            complete = false;
            timeline.push((
                t.height,
                0,
                TimelineEntry {
                    height: t.height,
                    time_ms: times.get(&t.height).copied(),
                    tx: Some(t.tx.hash),
                    sender: Some(t.tx.sender),
                    kind: t
                        .tx
                        .body
                        .get("type")
                        .and_then(Value::as_str)
                        .unwrap_or("transaction")
                        .to_string(),
                    ok: true,
                    message: Some("outcome unknown to this node".into()),
                    body: Some(shorten(&t.tx.body)),
                    events: Vec::new(),
                },
            ));
            continue;
        };
        let mine: Vec<Value> = r
            .events
            .iter()
            .filter(|e| is_about(e, id))
            .cloned()
            .collect();
        for e in &mine {
            note(e, t.height, Some(t.tx.hash), &mut transfers);
        }
        if r.ok && r.kind == "dispute_move" {
            let events: Vec<Event> = mine.iter().filter_map(typed).collect();
            let round = events
                .iter()
                .find_map(|e| match e {
                    Event::DisputeMoved { round, .. } => Some(*round),
                    _ => None,
                })
                .unwrap_or(0);
            let hash = |f: &str| {
                t.tx.body
                    .get(f)
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(Hash::ZERO)
            };
            let entry = rounds.entry(round).or_insert(BisectionRound {
                round,
                moves: Vec::new(),
                narrowed_to: None,
            });
            entry.moves.push(BisectionMove {
                party: t.tx.sender,
                role: if t.tx.sender == lease.provider {
                    "provider".into()
                } else {
                    "challenger".into()
                },
                left: hash("left"),
                right: hash("right"),
                height: t.height,
                tx: t.tx.hash,
            });
            entry.narrowed_to = events.iter().find_map(|e| match e {
                Event::DisputeNarrowed { start, size, .. } => Some((*start, *size)),
                _ => None,
            });
        }
        timeline.push((
            t.height,
            0,
            TimelineEntry {
                height: t.height,
                time_ms: times.get(&t.height).copied(),
                tx: Some(t.tx.hash),
                sender: Some(t.tx.sender),
                kind: r.kind.clone(),
                ok: r.ok,
                message: r.message.clone(),
                body: Some(shorten(&t.tx.body)),
                events: mine,
            },
        ));
    }
    for (height, e) in events {
        note(e, *height, None, &mut transfers);
        timeline.push((
            *height,
            1,
            TimelineEntry {
                height: *height,
                time_ms: times.get(height).copied(),
                tx: None,
                sender: None,
                kind: e
                    .get("event")
                    .and_then(Value::as_str)
                    .unwrap_or("event")
                    .to_string(),
                ok: true,
                message: None,
                body: None,
                events: vec![e.clone()],
            },
        ));
    }
    // Transactions of a block before its end-of-block events; the sort is stable.
    timeline.sort_by_key(|(h, order, _)| (*h, *order));
    LeaseEvidence {
        lease,
        timeline: timeline.into_iter().map(|(_, _, e)| e).collect(),
        rounds: rounds.into_values().collect(),
        verdict,
        transfers,
        verifiers,
        complete,
    }
}

// ---- search ----

/// `?q=`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SearchParams {
    /// A block height, block hash, transaction hash, lease id or account id.
    #[param(value_type = SearchQuery, required = true)]
    q: Option<String>,
}

/// What an id or hash names: a number is a block height and/or a lease id; 64 hex characters
/// a transaction or block hash; `orr` + 40 hex an account (a provider if registered).
#[utoipa::path(get, path = "/api/v1/search", params(SearchParams),
    responses(
        (status = 200, body = SearchResult),
        (status = 400, body = ErrorBody, description = "bad_query (missing, too long, or not an id of any kind) or bad_hash (hex of the wrong length)"),
        (status = 404, body = ErrorBody, description = "not_found: well formed, names nothing"),
    ))]
pub(crate) async fn search(
    State(s): State<AppState>,
    q: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Json<SearchResult>, ApiError> {
    let raw = query(q)?.q.unwrap_or_default();
    if raw.chars().count() > MAX_SEARCH_LEN {
        return Err(ApiError::bad_request(
            "bad_query",
            format!("a query is at most {MAX_SEARCH_LEN} characters"),
        ));
    }
    let q = trim_search(&raw).to_string();
    if q.is_empty() {
        return Err(ApiError::bad_request(
            "bad_query",
            "type a block height, a block or transaction hash, a lease id or an account id",
        ));
    }
    let mut matches = Vec::new();
    let lower = q.to_ascii_lowercase();
    let hexpart = lower.strip_prefix("0x").unwrap_or(&lower);
    if let Ok(n) = parse_u64("a block height or lease id", &q) {
        let top = with_index(&s, |i| i.indexed_height()).await?;
        if n >= 1 && n <= top {
            matches.push(found("block", n));
        }
        if read(&s, move |st| st.lease(n).is_some()).await? {
            matches.push(found("lease", n));
        }
        if matches.is_empty() {
            return Err(ApiError::not_found(
                "not_found",
                format!("no block at height {n} (the chain is at {top}) and no lease {n}"),
            ));
        }
    } else if lower.starts_with("orr") {
        let id = parse_account(&lower).map_err(|_| {
            ApiError::bad_request(
                "bad_query",
                format!("{q:?} looks like an account id but is not one: an account id is orr followed by 40 hex characters"),
            )
        })?;
        let provider = read(&s, move |st| st.provider(&id).is_some()).await?;
        matches.push(found(if provider { "provider" } else { "account" }, id));
    } else if hexpart.chars().all(|c| c.is_ascii_hexdigit()) {
        if hexpart.len() != 64 {
            return Err(ApiError::bad_request(
                "bad_hash",
                format!(
                    "{q:?} is not a hash: a block or transaction hash is 64 hex characters, this has {}",
                    hexpart.len()
                ),
            ));
        }
        let hash: Hash = parse_hash(hexpart)?;
        let (tx, block) = with_index(&s, move |i| {
            Ok((i.tx(&hash)?.is_some(), i.block_height_by_hash(&hash)?))
        })
        .await?;
        if tx {
            matches.push(found("tx", hash));
        }
        if let Some(h) = block {
            matches.push(found("block", h));
        }
        if matches.is_empty() {
            return Err(ApiError::not_found(
                "not_found",
                format!("no transaction or block this node has indexed has hash {hash}"),
            ));
        }
    } else {
        return Err(ApiError::bad_request(
            "bad_query",
            format!(
                "{q:?} is not an id: type a block height or lease number, a 64-character hex hash, or an account id (orr + 40 hex)"
            ),
        ));
    }
    Ok(Json(SearchResult { query: q, matches }))
}

#[cfg(test)]
mod tests;
