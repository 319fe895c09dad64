//! Clusters: `N` distinct machines chosen together for one job.
//!
//! # Rule
//!
//! Every member must qualify for the same per-machine [`Requirements`]. Candidates are the
//! best `N` offers of each region (ranked as in [`crate::router`]). Then, in order:
//!
//! 1. **One region.** If some region alone has `N` qualifying providers, the cluster is the
//!    best `N` of the preferred region when it is one of them, else of the region whose best
//!    `N` have the lowest total effective cost.
//! 2. **Nearby regions.** Otherwise, starting from each region in turn, regions are added
//!    nearest first (the largest latency from the new region to any region already chosen,
//!    from the caller's [`RegionLatency`]; unknown pairs count as [`UNKNOWN_LATENCY_MS`]),
//!    taking each region's candidates best first until `N` are chosen. The cluster with the
//!    lowest worst-pair latency wins, ties going to the lowest total effective cost — so with no
//!    latency data this is simply the cheapest mix.
//!
//! Fewer than `N` qualifying providers overall is [`RouteError::TooFewForCluster`]; none is the
//! router's own "which requirement" error.

use crate::index::OfferIndex;
use crate::router::{
    MAX_RESULTS, Ranked, RegionPreference, Requirements, RouteError, RouterWeights,
};
use orrery_ledger::Params;
use orrery_types::Amount;
use serde::Serialize;
use std::collections::HashMap;

/// Latency assumed between two regions nobody measured: worse than any measured pair, so that
/// known-near regions win.
pub const UNKNOWN_LATENCY_MS: u32 = 1_000;

/// Round-trip latency between regions, as the caller measured or configured it. Symmetric;
/// a region to itself is 0.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RegionLatency {
    pairs: HashMap<(String, String), u32>,
}

impl RegionLatency {
    /// No data: every pair of distinct regions counts as [`UNKNOWN_LATENCY_MS`].
    pub fn new() -> RegionLatency {
        RegionLatency::default()
    }

    /// Records the latency between `a` and `b` (either order).
    pub fn set(&mut self, a: &str, b: &str, ms: u32) {
        self.pairs.insert(Self::key(a, b), ms);
    }

    /// Latency between two regions.
    pub fn between(&self, a: &str, b: &str) -> u32 {
        if a.eq_ignore_ascii_case(b) {
            return 0;
        }
        self.pairs
            .get(&Self::key(a, b))
            .copied()
            .unwrap_or(UNKNOWN_LATENCY_MS)
    }

    fn key(a: &str, b: &str) -> (String, String) {
        let (a, b) = (a.to_lowercase(), b.to_lowercase());
        if a <= b { (a, b) } else { (b, a) }
    }
}

/// A chosen cluster.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Cluster {
    /// The machines, best first within their region.
    pub members: Vec<Ranked>,
    /// Sum of the members' expected costs.
    pub total_cost: Amount,
    /// Regions used, in the order they were chosen.
    pub regions: Vec<String>,
    /// Largest latency between two members' regions (0 for one region).
    pub max_latency_ms: u32,
    /// Why this cluster.
    pub explanation: String,
}

/// Chooses `size` distinct providers for one job. See the module docs.
pub fn select_cluster(
    index: &OfferIndex,
    req: &Requirements,
    size: usize,
    weights: &RouterWeights,
    params: &Params,
    latency: &RegionLatency,
) -> Result<Cluster, RouteError> {
    if size == 0 || size > MAX_RESULTS {
        return Err(RouteError::BadClusterSize {
            size,
            max: MAX_RESULTS,
        });
    }
    let regions = match &req.region {
        RegionPreference::Require(r) => vec![r.clone()],
        _ => index.regions(),
    };
    let mut per_region: Vec<(String, Vec<Ranked>)> = Vec::new();
    let mut first_error = None;
    for region in regions {
        let mut r = req.clone();
        r.region = RegionPreference::Require(region.clone());
        r.limit = size;
        match index.rank(&r, weights, params) {
            Ok(routing) => per_region.push((region, routing.ranked)),
            Err(e @ (RouteError::InvalidWeight { .. } | RouteError::BadRedundancy { .. })) => {
                return Err(e);
            }
            Err(_) => {}
        }
    }
    if per_region.is_empty() {
        // Let the router name the requirement nobody meets.
        let mut r = req.clone();
        r.limit = size;
        first_error = Some(match index.rank(&r, weights, params) {
            Err(e) => e,
            Ok(_) => RouteError::TooFewForCluster {
                need: size,
                found: 0,
            },
        });
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let found: usize = per_region.iter().map(|(_, v)| v.len()).sum();
    if found < size {
        return Err(RouteError::TooFewForCluster { need: size, found });
    }
    let total_eff = |v: &[Ranked]| v.iter().map(|r| r.effective_cost).sum::<f64>();

    // 1. One region.
    let preferred = match &req.region {
        RegionPreference::Prefer(p) => Some(p.as_str()),
        _ => None,
    };
    let mut single: Option<&(String, Vec<Ranked>)> = None;
    for cand in per_region.iter().filter(|(_, v)| v.len() >= size) {
        let better = match single {
            None => true,
            Some(best) => {
                let pref = |r: &str| preferred.is_some_and(|p| p.eq_ignore_ascii_case(r));
                match (pref(&cand.0), pref(&best.0)) {
                    (true, false) => true,
                    (false, true) => false,
                    _ => total_eff(&cand.1) < total_eff(&best.1),
                }
            }
        };
        if better {
            single = Some(cand);
        }
    }
    if let Some((region, members)) = single {
        let members: Vec<Ranked> = members.iter().take(size).cloned().collect();
        let why = if preferred.is_some_and(|p| p.eq_ignore_ascii_case(region)) {
            format!("all {size} in the preferred region {region}")
        } else {
            format!("all {size} in one region, {region}: the cheapest region that can host them")
        };
        return Ok(finish(members, vec![region.clone()], 0, why));
    }

    // 2. Nearby regions, seeded from each region in turn.
    let mut best: Option<(u32, f64, Vec<Ranked>, Vec<String>)> = None;
    for seed in 0..per_region.len() {
        let mut chosen = vec![seed];
        let mut members: Vec<Ranked> = Vec::new();
        let mut worst = 0u32;
        members.extend(per_region[seed].1.iter().take(size).cloned());
        while members.len() < size {
            let next = (0..per_region.len())
                .filter(|i| !chosen.contains(i))
                .map(|i| {
                    let lat = chosen
                        .iter()
                        .map(|&c| latency.between(&per_region[c].0, &per_region[i].0))
                        .max()
                        .unwrap_or(0);
                    (lat, per_region[i].1[0].effective_cost, i)
                })
                .min_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
            let Some((lat, _, i)) = next else { break };
            worst = worst.max(lat);
            chosen.push(i);
            let room = size - members.len();
            members.extend(per_region[i].1.iter().take(room).cloned());
        }
        let eff = total_eff(&members);
        let better = match &best {
            None => true,
            Some((bw, be, _, _)) => (worst, eff) < (*bw, *be),
        };
        if better {
            let regions = chosen.iter().map(|&c| per_region[c].0.clone()).collect();
            best = Some((worst, eff, members, regions));
        }
    }
    let Some((worst, _, members, regions)) = best else {
        return Err(RouteError::TooFewForCluster { need: size, found });
    };
    let why = format!(
        "no single region has {size} qualifying providers; {} nearby regions ({}) with worst latency {} ms{}",
        regions.len(),
        regions.join(", "),
        worst,
        if worst >= UNKNOWN_LATENCY_MS {
            " (not measured: chose the cheapest mix)"
        } else {
            ""
        }
    );
    Ok(finish(members, regions, worst, why))
}

fn finish(mut members: Vec<Ranked>, regions: Vec<String>, worst: u32, why: String) -> Cluster {
    for (i, m) in members.iter_mut().enumerate() {
        m.rank = i + 1;
    }
    let total_cost = members
        .iter()
        .try_fold(Amount::ZERO, |acc, m| acc.checked_add(m.cost))
        .unwrap_or(Amount(u128::MAX));
    let explanation = format!("{why}; total {total_cost} for the job");
    Cluster {
        members,
        total_cost,
        regions,
        max_latency_ms: worst,
        explanation,
    }
}
