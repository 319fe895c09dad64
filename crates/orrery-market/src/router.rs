//! What a job asks for, how offers are scored against it, and why an offer ranks where it does.
//!
//! # Filters
//!
//! An offer *qualifies* for [`Requirements`] when every one of these holds (each is a
//! [`Requirement`], named in errors):
//!
//! - its GPU model contains `gpu_model` (case-insensitive), if given;
//! - each GPU has at least `min_vram_mib`, and it has at least `resources.gpus` GPUs,
//!   `resources.cpu_cores` cores and `resources.ram_gib` GiB;
//! - its region equals the required region (case-insensitive), if one is required;
//! - its listed GPU-hour and mega-unit prices are at most the caps, and the job's cost at its
//!   listed prices (`PriceList::cost(resources, usage)`) is at most `max_cost`;
//! - its stake is at least `Params::min_stake(hardware)` (the ledger refuses a lease otherwise,
//!   whatever the verification level);
//! - its reputation score is at least `min_reputation`, and it was seen at or after
//!   `seen_since_ms`, if given;
//! - the chain counts it online (`Offer::online`): a provider that missed or failed its last
//!   challenge never routes, whatever the query, until it answers one again.
//!
//! `redundant { k }` verification needs `k` distinct providers: fewer than `k` qualifying
//! offers is an error, and at least `k` results are returned.
//!
//! # Score
//!
//! Ranking is by *effective cost*, lower first:
//!
//! ```text
//! effective = (cost + 1 base unit) × (1 + w_rep·p_rep + w_region·p_region + w_lat·p_lat + w_bench·p_bench)
//! ```
//!
//! where `cost` is the job's expected cost at the offer's listed prices and every penalty `p`
//! lies in `[0, 1]` (see [`crate::offer`]; `p_region` is 1 outside a preferred region, else 0).
//! `p_rep` averages the lease record and the challenge uptime; `p_bench` comes from the
//! chain's proven score (0.5 unproven); `p_lat` from the round-trip time the caller measured.
//! A weight is therefore "the largest share of the price this factor can add": with the default
//! reputation weight 0.5, the worst record looks 50% dearer than a perfect one at the same
//! price. Ties break by provider id, so the order is total and the same for every algorithm.
//! Being monotone in every term is what lets the index stop early (see [`crate::index`]).

use crate::offer::{Offer, StaticPenalties};
use orrery_ledger::Params;
use orrery_types::resources::{ResourceRequest, Usage};
use orrery_types::{AccountId, Amount, Verification};
use serde::Serialize;
use std::cmp::Ordering;
use std::fmt;

/// Most results one query may ask for: bounds the top-k buffer and the output.
pub const MAX_RESULTS: usize = 1_000;
/// Largest `k` of redundant verification the router accepts (the chain's `k` is a `u8`).
pub const MAX_REDUNDANCY: u8 = u8::MAX;

/// Where the job should run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "region", rename_all = "snake_case")]
pub enum RegionPreference {
    /// Anywhere.
    #[default]
    Any,
    /// Anywhere, but offers elsewhere carry the region penalty.
    Prefer(String),
    /// Only here.
    Require(String),
}

/// A job's requirements and expected usage.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Requirements {
    /// Substring of the GPU model, case-insensitive (`"h100"` matches "NVIDIA H100 80GB HBM3").
    pub gpu_model: Option<String>,
    /// Least memory per GPU, MiB.
    pub min_vram_mib: u32,
    /// GPUs, cores and memory the lease reserves.
    pub resources: ResourceRequest,
    /// Expected usage: what the job's cost is computed for.
    pub usage: Usage,
    /// Region preference or requirement.
    pub region: RegionPreference,
    /// Most a listed GPU-hour may cost.
    pub max_gpu_hour: Option<Amount>,
    /// Most a listed million compute units may cost.
    pub max_mega_unit: Option<Amount>,
    /// Most the expected usage may cost at listed prices.
    pub max_cost: Option<Amount>,
    /// How the result is checked.
    pub verification: Verification,
    /// Least reputation score (see [`Offer::reputation_score`]).
    pub min_reputation: Option<i64>,
    /// Only providers seen at or after this time (caller's clock, ms).
    pub seen_since_ms: Option<u64>,
    /// How many results to return (at least `k` for redundant verification; at most
    /// [`MAX_RESULTS`]).
    pub limit: usize,
}

impl Default for Requirements {
    fn default() -> Self {
        Requirements {
            gpu_model: None,
            min_vram_mib: 0,
            resources: ResourceRequest::default(),
            usage: Usage {
                seconds: 3_600,
                units: 0,
            },
            region: RegionPreference::Any,
            max_gpu_hour: None,
            max_mega_unit: None,
            max_cost: None,
            verification: Verification::None,
            min_reputation: None,
            seen_since_ms: None,
            limit: 10,
        }
    }
}

impl Requirements {
    /// Results to return: `limit`, raised to `k` for redundant verification, capped.
    pub fn result_count(&self) -> usize {
        let k = match self.verification {
            Verification::Redundant { k } => usize::from(k),
            _ => 0,
        };
        self.limit.max(k).clamp(1, MAX_RESULTS)
    }

    /// The GPU-model filter, lower-cased once.
    pub(crate) fn model_lower(&self) -> Option<String> {
        self.gpu_model.as_ref().map(|m| m.to_lowercase())
    }

    /// Penalty for being in `region`: 1 outside a preferred region, else 0.
    pub(crate) fn region_penalty(&self, region: &str) -> f64 {
        match &self.region {
            RegionPreference::Prefer(p) if !p.eq_ignore_ascii_case(region) => 1.0,
            _ => 0.0,
        }
    }
}

/// How much each factor besides price may weigh, as the largest share of the price it can
/// add to the effective cost (see the module docs). All must be finite and non-negative.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct RouterWeights {
    /// Reputation: the worst record adds this share; a new provider half of it.
    pub reputation: f64,
    /// Being outside the preferred region adds this share.
    pub region: f64,
    /// Measured latency: very slow adds up to this share; unmeasured half of it.
    pub latency: f64,
    /// Benchmark score: a very slow machine adds up to this share; unknown half of it.
    pub benchmark: f64,
}

impl Default for RouterWeights {
    /// Reputation 0.5 (money lost to a bad provider is the whole job), region 0.25 (data
    /// transfer and compliance), latency 0.2, benchmark 0.2 (a faster box finishes sooner, but
    /// time-billed price already reflects part of that).
    fn default() -> Self {
        RouterWeights {
            reputation: 0.5,
            region: 0.25,
            latency: 0.2,
            benchmark: 0.2,
        }
    }
}

impl RouterWeights {
    fn check(&self) -> Result<(), RouteError> {
        for (name, w) in [
            ("reputation", self.reputation),
            ("region", self.region),
            ("latency", self.latency),
            ("benchmark", self.benchmark),
        ] {
            if !w.is_finite() || w < 0.0 {
                return Err(RouteError::InvalidWeight { name, value: w });
            }
        }
        Ok(())
    }

    pub(crate) fn validate(&self, req: &Requirements) -> Result<(), RouteError> {
        self.check()?;
        if let Verification::Redundant { k } = req.verification
            && k < 2
        {
            return Err(RouteError::BadRedundancy { k });
        }
        Ok(())
    }

    /// `1 + Σ w·p`, summed in a fixed order so every caller rounds alike.
    pub(crate) fn multiplier(&self, pen: &StaticPenalties, region: f64) -> f64 {
        1.0 + self.reputation * pen.reputation
            + self.region * region
            + self.latency * pen.latency
            + self.benchmark * pen.benchmark
    }
}

/// One requirement of [`Requirements`], as named in errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Requirement {
    /// `gpu_model`.
    GpuModel,
    /// `min_vram_mib`.
    Vram,
    /// `resources.gpus`.
    GpuCount,
    /// `resources.cpu_cores`.
    CpuCores,
    /// `resources.ram_gib`.
    Ram,
    /// A required region.
    Region,
    /// `max_gpu_hour`.
    MaxGpuHour,
    /// `max_mega_unit`.
    MaxMegaUnit,
    /// `max_cost` (or a cost that overflows).
    MaxCost,
    /// The stake the ledger demands for the hardware.
    Stake,
    /// `min_reputation`.
    MinReputation,
    /// `seen_since_ms`.
    Liveness,
    /// The chain counts the provider online (it answered its last challenge).
    Online,
}

impl Requirement {
    /// Every requirement, in the order errors list them.
    pub const ALL: [Requirement; 13] = [
        Requirement::GpuModel,
        Requirement::Vram,
        Requirement::GpuCount,
        Requirement::CpuCores,
        Requirement::Ram,
        Requirement::Region,
        Requirement::MaxGpuHour,
        Requirement::MaxMegaUnit,
        Requirement::MaxCost,
        Requirement::Stake,
        Requirement::MinReputation,
        Requirement::Liveness,
        Requirement::Online,
    ];

    pub(crate) fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// The requirements an offer fails, as a bit set over [`Requirement::bit`], and the job's cost
/// at its prices when that is computable.
pub(crate) fn unmet(
    offer: &Offer,
    offer_model_lower: &str,
    req: &Requirements,
    model_lower: Option<&str>,
    params: &Params,
) -> (u16, Option<Amount>) {
    let mut failed = 0u16;
    let mut fail = |r: Requirement| failed |= r.bit();
    if let Some(m) = model_lower
        && !offer_model_lower.contains(m)
    {
        fail(Requirement::GpuModel);
    }
    if offer.vram_mib() < req.min_vram_mib {
        fail(Requirement::Vram);
    }
    if offer.hardware.gpu_count() < req.resources.gpus {
        fail(Requirement::GpuCount);
    }
    if offer.hardware.cpu_cores < req.resources.cpu_cores {
        fail(Requirement::CpuCores);
    }
    if offer.hardware.ram_gib < req.resources.ram_gib {
        fail(Requirement::Ram);
    }
    if let RegionPreference::Require(r) = &req.region
        && !r.eq_ignore_ascii_case(&offer.region)
    {
        fail(Requirement::Region);
    }
    if req.max_gpu_hour.is_some_and(|m| offer.prices.gpu_hour > m) {
        fail(Requirement::MaxGpuHour);
    }
    if req
        .max_mega_unit
        .is_some_and(|m| offer.prices.mega_unit > m)
    {
        fail(Requirement::MaxMegaUnit);
    }
    let cost = offer.prices.cost(&req.resources, &req.usage);
    match cost {
        None => fail(Requirement::MaxCost),
        Some(c) if req.max_cost.is_some_and(|m| c > m) => fail(Requirement::MaxCost),
        Some(_) => {}
    }
    if params
        .min_stake(&offer.hardware)
        .is_none_or(|need| offer.stake < need)
    {
        fail(Requirement::Stake);
    }
    if req
        .min_reputation
        .is_some_and(|m| offer.reputation_score() < m)
    {
        fail(Requirement::MinReputation);
    }
    if let Some(since) = req.seen_since_ms
        && offer.last_seen_ms.is_none_or(|t| t < since)
    {
        fail(Requirement::Liveness);
    }
    if !offer.online {
        fail(Requirement::Online);
    }
    (failed, cost)
}

/// The cheap checks first, so that the index's hot loop rejects most misses without
/// computing a cost; then the full check.
#[inline]
pub(crate) fn evaluate(
    offer: &Offer,
    offer_model_lower: &str,
    pen: &StaticPenalties,
    q: &Query<'_>,
    region_penalty: f64,
) -> Option<(Amount, f64)> {
    let req = q.req;
    if !offer.online
        || offer.vram_mib() < req.min_vram_mib
        || offer.hardware.gpu_count() < req.resources.gpus
        || offer.hardware.cpu_cores < req.resources.cpu_cores
        || offer.hardware.ram_gib < req.resources.ram_gib
    {
        return None;
    }
    let (failed, cost) = unmet(
        offer,
        offer_model_lower,
        req,
        q.model_lower.as_deref(),
        q.params,
    );
    if failed != 0 {
        return None;
    }
    let cost = cost?;
    Some((
        cost,
        effective(cost, q.weights.multiplier(pen, region_penalty)),
    ))
}

/// `(cost + 1) × multiplier` as a float; the `+ 1` keeps free offers ordered by quality.
#[inline]
pub(crate) fn effective(cost: Amount, multiplier: f64) -> f64 {
    (cost.units().saturating_add(1)) as f64 * multiplier
}

/// A query prepared once: filters lowered, weights checked.
pub(crate) struct Query<'a> {
    pub req: &'a Requirements,
    pub weights: &'a RouterWeights,
    pub params: &'a Params,
    pub model_lower: Option<String>,
}

/// Order of results: effective cost, then provider id.
pub(crate) fn order(a: (f64, &AccountId), b: (f64, &AccountId)) -> Ordering {
    a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1))
}

/// Bounded buffer of the best `k` candidates, kept sorted.
pub(crate) struct TopK {
    k: usize,
    pub items: Vec<Candidate>,
}

/// A qualifying offer found by a search.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Candidate {
    pub effective: f64,
    pub provider: AccountId,
    pub slot: u32,
    pub cost: Amount,
}

impl TopK {
    pub fn new(k: usize) -> TopK {
        TopK {
            k,
            items: Vec::with_capacity(k + 1),
        }
    }

    /// The effective cost a newcomer must beat, once full.
    #[inline]
    pub fn bar(&self) -> Option<f64> {
        (self.items.len() == self.k).then(|| self.items[self.k - 1].effective)
    }

    #[inline]
    pub fn offer(&mut self, c: Candidate) {
        if let Some(last) = self.items.last()
            && self.items.len() == self.k
            && order((c.effective, &c.provider), (last.effective, &last.provider)) != Ordering::Less
        {
            return;
        }
        if self.items.iter().any(|x| x.slot == c.slot) {
            return;
        }
        let pos = self.items.partition_point(|x| {
            order((x.effective, &x.provider), (c.effective, &c.provider)) == Ordering::Less
        });
        self.items.insert(pos, c);
        self.items.truncate(self.k);
    }
}

/// Why an offer ranks where it does, in numbers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Breakdown {
    /// Listed price per GPU-hour.
    pub gpu_hour: Amount,
    /// Median listed GPU-hour price of the offers of the matching models and regions.
    pub median_gpu_hour: Option<Amount>,
    /// Reputation score.
    pub reputation_score: i64,
    /// Whether it is in the preferred (or required) region; `None` without a preference.
    pub region_match: Option<bool>,
    /// Share of the price each factor added: reputation, region, latency, benchmark.
    pub reputation_penalty: f64,
    /// See `reputation_penalty`.
    pub region_penalty: f64,
    /// See `reputation_penalty`.
    pub latency_penalty: f64,
    /// See `reputation_penalty`.
    pub benchmark_penalty: f64,
}

/// One ranked offer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ranked {
    /// 1-based position.
    pub rank: usize,
    /// The offer.
    pub offer: Offer,
    /// The job's expected cost at its listed prices, for one provider.
    pub cost: Amount,
    /// What opening the lease locks in escrow with the chosen verification (cost × (1 +
    /// reserved verifiers)); `None` on overflow.
    pub escrow: Option<Amount>,
    /// The score it is ranked by (lower is better; base units, see the module docs).
    pub effective_cost: f64,
    /// The factors in numbers.
    pub breakdown: Breakdown,
    /// The factors in words.
    pub explanation: String,
}

pub(crate) fn build_ranked(
    rank: usize,
    offer: &Offer,
    cost: Amount,
    effective_cost: f64,
    q: &Query<'_>,
    median: Option<Amount>,
    cheapest: bool,
) -> Ranked {
    let pen = offer.penalties();
    let w = q.weights;
    let region_penalty = q.req.region_penalty(&offer.region);
    let region_match = match &q.req.region {
        RegionPreference::Any => None,
        RegionPreference::Prefer(r) | RegionPreference::Require(r) => {
            Some(r.eq_ignore_ascii_case(&offer.region))
        }
    };
    let breakdown = Breakdown {
        gpu_hour: offer.prices.gpu_hour,
        median_gpu_hour: median,
        reputation_score: offer.reputation_score(),
        region_match,
        reputation_penalty: w.reputation * pen.reputation,
        region_penalty: w.region * region_penalty,
        latency_penalty: w.latency * pen.latency,
        benchmark_penalty: w.benchmark * pen.benchmark,
    };
    let reserved = u128::from(orrery_ledger::verify::reserved_verifiers(
        q.req.verification,
    ));
    let escrow = cost.checked_mul(1 + reserved);
    let explanation = explain(offer, cost, &breakdown, cheapest, q.req);
    Ranked {
        rank,
        offer: offer.clone(),
        cost,
        escrow,
        effective_cost,
        breakdown,
        explanation,
    }
}

fn explain(
    offer: &Offer,
    cost: Amount,
    b: &Breakdown,
    cheapest: bool,
    req: &Requirements,
) -> String {
    let mut parts = Vec::new();
    let mut price = format!(
        "{}{} for the job, {}/GPU-h",
        if cheapest { "cheapest: " } else { "" },
        cost,
        offer.prices.gpu_hour
    );
    if let Some(m) = b.median_gpu_hour {
        price.push_str(&format!(" vs median {m}"));
    }
    parts.push(price);
    let r = &offer.reputation;
    if r.checked + r.settled + r.failed + r.slashed + r.timed_out == 0 {
        parts.push("new provider (neutral reputation)".to_owned());
    } else {
        let mut rep = format!(
            "reputation {} ({} checks, {} settled, {} failures",
            b.reputation_score, r.checked, r.settled, r.failed
        );
        if r.slashed > 0 {
            rep.push_str(&format!(", {} slashes", r.slashed));
        }
        if r.timed_out > 0 {
            rep.push_str(&format!(", {} timeouts", r.timed_out));
        }
        rep.push(')');
        parts.push(rep);
    }
    match (&req.region, b.region_match) {
        (RegionPreference::Prefer(p), Some(false)) => {
            parts.push(format!("other region {} (preferred {p})", offer.region))
        }
        (_, Some(true)) => parts.push(format!("same region {}", offer.region)),
        _ => parts.push(format!("region {}", offer.region)),
    }
    parts.push(match offer.latency_ms {
        Some(l) => format!("latency {l} ms"),
        None => "latency not measured".to_owned(),
    });
    parts.push(match offer.uptime_bps {
        Some(u) => format!("uptime {} (challenges)", percent(u)),
        None => "never challenged".to_owned(),
    });
    parts.push(match offer.proven_score_bps {
        Some(s) => format!("proven {} of its claim", percent(s)),
        None => "throughput not proven yet".to_owned(),
    });
    parts.join("; ")
}

/// Basis points as a percentage with one decimal: 9_950 → "99.5%".
fn percent(bps: u32) -> String {
    format!("{}.{}%", bps / 100, (bps % 100) / 10)
}

/// Why a query returned nothing (or too little).
#[derive(Clone, Debug, PartialEq, thiserror::Error, Serialize)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum RouteError {
    /// The index is empty.
    #[error("no offers are known yet: the index is empty")]
    NoOffers,
    /// No offer meets all requirements; `unmet` names the blocking ones.
    #[error("{}", describe_unmet(.unmet))]
    Unsatisfiable {
        /// The requirements that block every offer, most telling first.
        unmet: Vec<Unmet>,
    },
    /// Redundant verification needs more distinct providers than qualify.
    #[error(
        "redundant verification needs {need} distinct providers but only {found} meet the other requirements; lower k or relax a requirement"
    )]
    TooFewForRedundancy {
        /// `k`.
        need: usize,
        /// Qualifying providers.
        found: usize,
    },
    /// A cluster needs more distinct providers than qualify.
    #[error(
        "a cluster of {need} machines needs {need} distinct providers but only {found} meet the requirements"
    )]
    TooFewForCluster {
        /// Cluster size.
        need: usize,
        /// Qualifying providers.
        found: usize,
    },
    /// A weight is negative or not a number.
    #[error("router weight `{name}` must be a finite number ≥ 0, got {value}")]
    InvalidWeight {
        /// Which weight.
        name: &'static str,
        /// Its value.
        value: f64,
    },
    /// `redundant { k }` with k < 2 is not redundancy.
    #[error("redundant verification needs k ≥ 2 providers, got k = {k}")]
    BadRedundancy {
        /// The k asked for.
        k: u8,
    },
    /// A cluster of 0 machines, or more than the router returns.
    #[error("cluster size must be between 1 and {max}, got {size}")]
    BadClusterSize {
        /// Asked for.
        size: usize,
        /// Largest allowed.
        max: usize,
    },
}

fn describe_unmet(unmet: &[Unmet]) -> String {
    let msgs: Vec<&str> = unmet.iter().map(|u| u.message.as_str()).collect();
    msgs.join("; ")
}

/// One requirement that stops every offer from matching.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Unmet {
    /// Which requirement.
    pub requirement: Requirement,
    /// How many offers would match if only this requirement were dropped.
    pub matches_without_it: usize,
    /// What to tell the user, e.g. "no provider offers ≥ 80 GiB VRAM (largest: 24 GiB)".
    pub message: String,
}

/// Gathers, over offers, the best value for each requirement, to say how far off it is.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tally {
    max_vram: u32,
    max_gpus: u16,
    max_cpu: u16,
    max_ram: u32,
    min_gpu_hour: Option<Amount>,
    min_mega_unit: Option<Amount>,
    min_cost: Option<Amount>,
    best_stake_margin: Option<(Amount, Amount)>,
    max_reputation: Option<i64>,
    latest_seen: Option<u64>,
    offline: usize,
    models: std::collections::BTreeSet<String>,
    regions: std::collections::BTreeSet<String>,
}

/// Names listed in a message, at most.
const MAX_NAMES: usize = 6;

impl Tally {
    pub fn add(&mut self, o: &Offer, cost: Option<Amount>, params: &Params) {
        self.max_vram = self.max_vram.max(o.vram_mib());
        self.max_gpus = self.max_gpus.max(o.hardware.gpu_count());
        self.max_cpu = self.max_cpu.max(o.hardware.cpu_cores);
        self.max_ram = self.max_ram.max(o.hardware.ram_gib);
        let min = |a: Option<Amount>, b: Amount| Some(a.map_or(b, |a| a.min(b)));
        self.min_gpu_hour = min(self.min_gpu_hour, o.prices.gpu_hour);
        self.min_mega_unit = min(self.min_mega_unit, o.prices.mega_unit);
        if let Some(c) = cost {
            self.min_cost = min(self.min_cost, c);
        }
        if let Some(need) = params.min_stake(&o.hardware) {
            // Highest have/need ratio; ties to the larger stake, so the answer does not depend
            // on the order offers are visited in.
            let better = match self.best_stake_margin {
                None => true,
                Some((have, n)) => {
                    let mine = o.stake.units() as f64 / need.units().max(1) as f64;
                    let best = have.units() as f64 / n.units().max(1) as f64;
                    mine > best || (mine == best && (o.stake, need) > (have, n))
                }
            };
            if better {
                self.best_stake_margin = Some((o.stake, need));
            }
        }
        self.max_reputation = Some(
            self.max_reputation
                .map_or(o.reputation_score(), |m| m.max(o.reputation_score())),
        );
        if let Some(t) = o.last_seen_ms {
            self.latest_seen = Some(self.latest_seen.map_or(t, |m| m.max(t)));
        }
        if !o.online {
            self.offline += 1;
        }
        // Keep the alphabetically first few names: independent of visiting order.
        if !o.gpu_model().is_empty() && !self.models.contains(o.gpu_model()) {
            self.models.insert(o.gpu_model().to_owned());
            if self.models.len() > MAX_NAMES {
                self.models.pop_last();
            }
        }
        if !self.regions.contains(&o.region) {
            self.regions.insert(o.region.clone());
            if self.regions.len() > MAX_NAMES {
                self.regions.pop_last();
            }
        }
    }

    /// "no provider <what it lacks> (<best available>)", `scope` saying among whom.
    pub fn message(&self, r: Requirement, req: &Requirements, scope: &str) -> String {
        let gib = |mib: u32| format!("{} GiB", mib / 1024);
        let list = |s: &std::collections::BTreeSet<String>| {
            let v: Vec<&str> = s.iter().map(String::as_str).collect();
            if v.is_empty() {
                "none".to_owned()
            } else {
                v.join(", ")
            }
        };
        let amount = |a: Option<Amount>| a.map_or("none".to_owned(), |a| a.to_string());
        match r {
            Requirement::GpuModel => format!(
                "no provider{scope} offers a GPU matching \"{}\" (available: {})",
                req.gpu_model.as_deref().unwrap_or(""),
                list(&self.models)
            ),
            Requirement::Vram => format!(
                "no provider{scope} offers ≥ {} VRAM (largest: {})",
                gib(req.min_vram_mib),
                gib(self.max_vram)
            ),
            Requirement::GpuCount => format!(
                "no provider{scope} offers ≥ {} GPUs in one machine (most: {})",
                req.resources.gpus, self.max_gpus
            ),
            Requirement::CpuCores => format!(
                "no provider{scope} offers ≥ {} CPU cores (most: {})",
                req.resources.cpu_cores, self.max_cpu
            ),
            Requirement::Ram => format!(
                "no provider{scope} offers ≥ {} GiB RAM (largest: {} GiB)",
                req.resources.ram_gib, self.max_ram
            ),
            Requirement::Region => format!(
                "no provider{scope} is in region {} (regions: {})",
                match &req.region {
                    RegionPreference::Require(r) => r.as_str(),
                    _ => "",
                },
                list(&self.regions)
            ),
            Requirement::MaxGpuHour => format!(
                "no provider{scope} lists a GPU-hour at ≤ {} (cheapest: {})",
                amount(req.max_gpu_hour),
                amount(self.min_gpu_hour)
            ),
            Requirement::MaxMegaUnit => format!(
                "no provider{scope} lists a million units at ≤ {} (cheapest: {})",
                amount(req.max_mega_unit),
                amount(self.min_mega_unit)
            ),
            Requirement::MaxCost => format!(
                "no provider{scope} can run the job for ≤ {} (cheapest: {})",
                amount(req.max_cost),
                amount(self.min_cost)
            ),
            Requirement::Stake => format!(
                "no provider{scope} has bonded the stake its hardware requires (best: {} of {} needed)",
                amount(self.best_stake_margin.map(|m| m.0)),
                amount(self.best_stake_margin.map(|m| m.1))
            ),
            Requirement::MinReputation => format!(
                "no provider{scope} has reputation ≥ {} (highest: {})",
                req.min_reputation.unwrap_or(0),
                self.max_reputation
                    .map_or("none".to_owned(), |m| m.to_string())
            ),
            Requirement::Liveness => format!(
                "no provider{scope} was seen since {} ms (latest: {})",
                req.seen_since_ms.unwrap_or(0),
                self.latest_seen
                    .map_or("never".to_owned(), |t| format!("{t} ms"))
            ),
            Requirement::Online => format!(
                "no provider{scope} is online: {} offline after a missed or failed challenge \
                 (their offers return once they answer one)",
                self.offline
            ),
        }
    }
}

/// Why nothing matches, found by relaxing requirements one at a time over every offer.
///
/// First the requirements that no offer meets even alone ("no provider offers ≥ 80 GiB VRAM
/// (largest: 24 GiB)"); if every requirement is met by someone, the ones whose removal alone
/// would produce a match, with the best value among those offers; failing that, the
/// requirements that cannot be met together.
pub(crate) fn diagnose<'a>(
    offers: impl Iterator<Item = &'a Offer>,
    req: &Requirements,
    params: &Params,
) -> RouteError {
    let model = req.model_lower();
    let n = Requirement::ALL.len();
    let mut met = vec![0usize; n];
    let mut alone = vec![0usize; n];
    let mut all = Tally::default();
    let mut alone_tally = vec![Tally::default(); n];
    let mut any = false;
    let mut failed_any = 0u16;
    for o in offers {
        any = true;
        let (failed, cost) = unmet(
            o,
            &o.gpu_model().to_lowercase(),
            req,
            model.as_deref(),
            params,
        );
        failed_any |= failed;
        all.add(o, cost, params);
        for (i, r) in Requirement::ALL.iter().enumerate() {
            if failed & r.bit() == 0 {
                met[i] += 1;
            }
            if failed == r.bit() {
                alone[i] += 1;
                alone_tally[i].add(o, cost, params);
            }
        }
    }
    if !any {
        return RouteError::NoOffers;
    }
    let mut unmet_list: Vec<Unmet> = Requirement::ALL
        .iter()
        .enumerate()
        .filter(|(i, _)| met[*i] == 0)
        .map(|(i, r)| Unmet {
            requirement: *r,
            matches_without_it: alone[i],
            message: all.message(*r, req, ""),
        })
        .collect();
    if unmet_list.is_empty() {
        unmet_list = Requirement::ALL
            .iter()
            .enumerate()
            .filter(|(i, _)| alone[*i] > 0)
            .map(|(i, r)| Unmet {
                requirement: *r,
                matches_without_it: alone[i],
                message: format!(
                    "{}; dropping it would match {}",
                    alone_tally[i].message(*r, req, " that meets your other requirements"),
                    alone[i]
                ),
            })
            .collect();
    }
    if unmet_list.is_empty() {
        let names: Vec<String> = Requirement::ALL
            .iter()
            .filter(|r| failed_any & r.bit() != 0)
            .map(|r| format!("{r:?}"))
            .collect();
        unmet_list.push(Unmet {
            requirement: Requirement::ALL
                .into_iter()
                .find(|r| failed_any & r.bit() != 0)
                .unwrap_or(Requirement::GpuModel),
            matches_without_it: 0,
            message: format!(
                "each requirement is met by some provider, but none meets these together: {}",
                names.join(", ")
            ),
        });
    }
    RouteError::Unsatisfiable { unmet: unmet_list }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
