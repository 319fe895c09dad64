//! `GET /api/v1/cluster-leases/{id}`: a cluster training lease as the explorer shows it — its
//! members and what each earned, and every round with each worker's loss, who missed it, and
//! which workers' rounds were drawn for a check and how the checks ended.
//!
//! Cost: one lease record and its round records (at most `rounds`, each at most 16 commits and
//! 16 checks), read from the ledger state in one pass.

use crate::api::{AppState, read};
use crate::error::ApiError;
use crate::params::{WholeNumber, parse_u64};
use axum::Json;
use axum::extract::{Path, State};
use orrery_client::api::ErrorBody;
use orrery_ledger::entries::{ClusterLease, ClusterRound};
use serde::Serialize;
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
