//! `GET /api/v1/cluster-leases/{id}`: a cluster training lease as the explorer shows it — its
//! members and what each earned, and every round with each worker's loss, who missed it, and
//! which workers' rounds were drawn for a check and how the checks ended.
//!
//! Cost: one lease record and its round records (at most `rounds`, each at most 16 commits and
//! 16 checks), read from the ledger state in one pass.
//!
//! `GET /api/v1/cluster-leases/{id}/rounds/{round}`: one round alone — what a worker's agent
//! polls while it waits for the chain to close the round (one record, not every round).
//!
//! `GET /api/v1/cluster-leases?member=…&phase=running`: the cluster leases that name an account
//! as a member, in id order, a page at a time — how a provider agent learns of the cluster
//! leases it must work for. Cost: at most [`crate::api::MAX_LEASE_SCAN`] lease records per
//! request (each at most 16 members); the page's `next_cursor` goes on from there.

use crate::api::{AppState, MAX_LEASE_SCAN, query, read};
use crate::error::ApiError;
use crate::params::{
    AccountParam, ClusterPhaseFilter, PageLimit, WholeNumber, page_limit, parse_account, parse_u64,
};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use orrery_client::api::{ErrorBody, Page};
use orrery_ledger::entries::{ClusterLease, ClusterPhase, ClusterRound};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One worker's commit of a round, with its loss as a number.
#[derive(Debug, Serialize)]
struct CommitView {
    worker: orrery_types::crypto::AccountId,
    loss: f32,
    start: orrery_types::hash::Hash,
    delta: orrery_types::hash::Hash,
    status: orrery_ledger::entries::CommitStatus,
}

/// One round as the page shows it.
#[derive(Debug, Serialize)]
struct RoundView {
    round: u32,
    closed_at: Option<u64>,
    /// Mean of the commits' losses (none without commits).
    mean_loss: Option<f32>,
    commits: Vec<CommitView>,
    missed: Vec<orrery_types::crypto::AccountId>,
    /// Workers whose round was drawn for a check.
    checked: Vec<orrery_types::crypto::AccountId>,
    checks: Vec<orrery_ledger::entries::ClusterCheck>,
    recompute: bool,
}

fn round_view(round: u32, rec: &ClusterRound) -> RoundView {
    let commits: Vec<CommitView> = rec
        .commits
        .as_slice()
        .iter()
        .map(|c| CommitView {
            worker: c.worker,
            loss: c.loss.value(),
            start: c.start,
            delta: c.delta,
            status: c.status,
        })
        .collect();
    let mean_loss = (!commits.is_empty())
        .then(|| commits.iter().map(|c| f64::from(c.loss)).sum::<f64>() / commits.len() as f64)
        .map(|m| m as f32);
    RoundView {
        round,
        closed_at: rec.closed_at,
        mean_loss,
        commits,
        missed: rec.missed.as_slice().to_vec(),
        checked: rec.checks.as_slice().iter().map(|c| c.worker).collect(),
        checks: rec.checks.as_slice().to_vec(),
        recompute: rec.recompute,
    }
}

/// The lease and its rounds, as JSON.
#[derive(Debug, Serialize)]
struct ClusterLeaseAnswer {
    lease: ClusterLease,
    rounds: Vec<RoundView>,
}

/// A cluster lease: members, escrow, and every round's losses and checks.
#[utoipa::path(get, path = "/api/v1/cluster-leases/{id}", params(("id" = WholeNumber, Path, description = "The cluster lease id (lease ids are shared with single-provider leases).")),
    responses(
        (status = 200, body = Object, description = "{ lease: the ledger's ClusterLease record, rounds: [{ round, closed_at, mean_loss, commits: [{ worker, loss, start, delta, status }], missed, checked, checks, recompute }] }"),
        (status = 400, body = ErrorBody, description = "bad_number: the id is not a whole number"),
        (status = 404, body = ErrorBody, description = "cluster_lease_not_found"),
    ))]
pub(crate) async fn cluster_lease(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_u64("cluster lease id", &id)?;
    let answer = read(&s, move |st| {
        let lease = st.cluster_lease(id)?.clone();
        let rounds = st
            .cluster_rounds(id)
            .map(|(r, rec)| round_view(r, rec))
            .collect();
        Some(ClusterLeaseAnswer { lease, rounds })
    })
    .await?
    .ok_or_else(|| {
        ApiError::not_found("cluster_lease_not_found", format!("no cluster lease {id}"))
    })?;
    serde_json::to_value(&answer)
        .map(Json)
        .map_err(|e| ApiError::internal(format!("cluster lease: {e}")))
}

/// One round of a cluster lease.
#[utoipa::path(get, path = "/api/v1/cluster-leases/{id}/rounds/{round}", params(("id" = WholeNumber, Path, description = "The cluster lease id."), ("round" = WholeNumber, Path, description = "The round, from 0.")),
    responses(
        (status = 200, body = Object, description = "{ round, closed_at, mean_loss, commits: [{ worker, loss, start, delta, status }], missed, checked, checks, recompute }; closed_at is null while the round takes commits"),
        (status = 400, body = ErrorBody, description = "bad_number: the id or the round is not a whole number"),
        (status = 404, body = ErrorBody, description = "cluster_lease_not_found, or cluster_round_not_found: the round has not opened (a round with no commit yet is answered while the lease is in it)"),
    ))]
pub(crate) async fn cluster_round(
    State(s): State<AppState>,
    Path((id, round)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_u64("cluster lease id", &id)?;
    let round = parse_u64("round", &round)?;
    let found = read(&s, move |st| {
        let lease = st.cluster_lease(id)?;
        let round = u32::try_from(round).ok().filter(|r| *r < lease.rounds);
        Some(round.and_then(|r| {
            // The open round has no record until its first commit: answer it as empty.
            let rec = match st.cluster_round(id, r) {
                Some(rec) => rec.clone(),
                None if r == lease.round => ClusterRound::default(),
                None => return None,
            };
            Some(round_view(r, &rec))
        }))
    })
    .await?
    .ok_or_else(|| {
        ApiError::not_found("cluster_lease_not_found", format!("no cluster lease {id}"))
    })?
    .ok_or_else(|| {
        ApiError::not_found(
            "cluster_round_not_found",
            format!("cluster lease {id} has no round {round} yet"),
        )
    })?;
    serde_json::to_value(&found)
        .map(Json)
        .map_err(|e| ApiError::internal(format!("cluster round: {e}")))
}

/// `GET /cluster-leases` filters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ClusterLeaseParams {
    /// Only leases that name this account as a member (in any status).
    #[param(value_type = Option<AccountParam>)]
    member: Option<String>,
    /// Only leases in this phase: `running` or `finished`.
    #[param(value_type = Option<ClusterPhaseFilter>)]
    phase: Option<String>,
    /// Page size: 1 to 500 (default 50).
    #[param(value_type = Option<PageLimit>)]
    limit: Option<String>,
    /// The previous page's `next_cursor` (a lease id).
    #[param(value_type = Option<WholeNumber>)]
    cursor: Option<String>,
}

fn phase_filter(raw: Option<&str>) -> Result<Option<ClusterPhase>, ApiError> {
    match raw {
        None => Ok(None),
        Some("running") => Ok(Some(ClusterPhase::Running)),
        Some("finished") => Ok(Some(ClusterPhase::Finished)),
        Some(other) => Err(ApiError::bad_request(
            "bad_query",
            format!("phase must be running or finished, got {other:?}"),
        )),
    }
}

/// Cluster leases in id order, filtered: each the ledger's `ClusterLease` record.
#[utoipa::path(get, path = "/api/v1/cluster-leases", params(ClusterLeaseParams),
    responses(
        (status = 200, body = Object, description = "{ items: [the ledger's ClusterLease record], next_cursor }"),
        (status = 400, body = ErrorBody, description = "bad_account, bad_number (cursor) or bad_query (limit out of range, an unknown phase)"),
    ))]
pub(crate) async fn cluster_leases(
    State(s): State<AppState>,
    q: Result<Query<ClusterLeaseParams>, QueryRejection>,
) -> Result<Json<Page<Value>>, ApiError> {
    let p = query(q)?;
    let member = p.member.as_deref().map(parse_account).transpose()?;
    let phase = phase_filter(p.phase.as_deref())?;
    let after = p
        .cursor
        .as_deref()
        .map(|c| parse_u64("cursor", c))
        .transpose()?;
    let limit = page_limit(p.limit.as_deref())?;
    let (items, next) = read(&s, move |st| {
        let mut items = Vec::new();
        let mut last_scanned = None;
        let mut exhausted = true;
        let from = after.map_or(0, |a| a.saturating_add(1));
        for (scanned, (id, l)) in st.cluster_leases().range(from..).enumerate() {
            if items.len() == limit || scanned == MAX_LEASE_SCAN {
                exhausted = false;
                break;
            }
            last_scanned = Some(*id);
            let keep = member.is_none_or(|m| l.member(&m).is_some())
                && phase.is_none_or(|ph| l.phase == ph);
            if keep {
                items.push(l.clone());
            }
        }
        (items, if exhausted { None } else { last_scanned })
    })
    .await?;
    let items = items
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::internal(format!("cluster leases: {e}")))?;
    Ok(Json(Page {
        items,
        next_cursor: next.map(|n| n.to_string()),
    }))
}
