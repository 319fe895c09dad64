//! The model router: which provider should answer an inference request for a model name, in
//! what order, and why.
//!
//! # Candidates
//!
//! Every on-chain [`ModelOffer`] of a bonded provider is a [`ModelCandidate`]: the offer (weights
//! hash, kind, context, prices, sampling rate), the provider's endpoint and its ledger
//! [`Reputation`]. Candidates are grouped by name in a hash map, so a name nobody offers is one
//! hash-map miss, whatever the number of offers ([`ModelRouter::rank`] never scans on a miss;
//! the few names it suggests come from the front of a sorted set).
//!
//! What only the caller measures is kept per provider and survives [`ModelRouter::replace`]:
//! the latency to the first byte as an exponentially weighted moving average
//! ([`ModelRouter::observe_latency`]) and the requests in flight ([`ModelRouter::started`],
//! [`ModelRouter::finished`]).
//!
//! # Score
//!
//! Ranking is by an *effective cost*, lower first, like the lease router's:
//!
//! ```text
//! effective = (cost + 1 base unit) × (1 + w_rep·p_rep + w_lat·p_lat + w_load·p_load)
//! ```
//!
//! `cost` is the offer's price for the request's estimated tokens ([`ModelOffer::cost`]);
//! `p_rep = 1 − reputation_quality` (0.5 for a new provider), `p_lat = l / (l + 50 ms)` (0.5
//! unmeasured), `p_load = n / (n + 4)` for `n` requests in flight. Ties break by provider id, so
//! the order is total. A candidate whose context is shorter than the request needs, or whose
//! price overflows, does not qualify.

use crate::offer::{LATENCY_REFERENCE_MS, reputation_quality};
use orrery_ledger::entries::Reputation;
use orrery_types::inference::{ModelKind, ModelOffer};
use orrery_types::{AccountId, Amount};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};

/// Requests in flight that earn the load penalty 0.5: a provider with four requests already
/// running answers a fifth noticeably later on one accelerator.
pub const LOAD_REFERENCE: f64 = 4.0;
/// Weight of the newest latency sample in the moving average: about the last ten requests
/// count, so one slow answer does not exile a provider but a slow streak moves it down.
pub const LATENCY_EWMA_ALPHA: f64 = 0.2;
/// Names suggested when a name is unknown.
pub const SUGGESTED_NAMES: usize = 5;
/// Most candidates one query returns.
pub const MAX_MODEL_RESULTS: usize = 64;

/// One provider's offer of one model.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelCandidate {
    /// The provider's account.
    pub provider: AccountId,
    /// Where its agent listens (`http://host:port`).
    pub endpoint: String,
    /// Its track record from the chain.
    pub reputation: Reputation,
    /// The offer.
    pub offer: ModelOffer,
}

/// What the caller measured about a provider.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct ProviderLoad {
    /// Moving average of the time to the first byte, ms; `None` until measured.
    pub latency_ms: Option<f64>,
    /// Requests sent to it and not finished.
    pub in_flight: u32,
}

/// How much each factor besides price may weigh (the largest share of the price it adds).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ModelWeights {
    /// Reputation: a wrong answer costs the client its trust, so it weighs most.
    pub reputation: f64,
    /// Latency to the first token.
    pub latency: f64,
    /// Requests already in flight at the provider.
    pub load: f64,
}

impl Default for ModelWeights {
    fn default() -> Self {
        ModelWeights {
            reputation: 0.5,
            latency: 0.3,
            load: 0.3,
        }
    }
}

/// A request to route.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelQuery<'a> {
    /// The model's name.
    pub name: &'a str,
    /// Estimated input tokens.
    pub tokens_in: u32,
    /// Output tokens to price (the request's `max_tokens`; 0 for embeddings).
    pub tokens_out: u32,
    /// Least context a candidate must have.
    pub min_context: u32,
    /// Most results (capped to [`MAX_MODEL_RESULTS`]).
    pub limit: usize,
}

/// One ranked candidate.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RankedModel {
    /// 1-based position.
    pub rank: usize,
    /// The candidate.
    pub candidate: ModelCandidate,
    /// The request's price at its estimated tokens.
    pub cost: Amount,
    /// The score (lower is better).
    pub effective_cost: f64,
    /// What was measured about the provider.
    pub load: ProviderLoad,
    /// The factors in words.
    pub explanation: String,
}

/// Why nothing was ranked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum ModelRouteError {
    /// No bonded provider offers the name.
    #[error("no provider offers a model named {name:?} (available: {})", list(.available))]
    UnknownModel {
        /// The name asked for.
        name: String,
        /// A few names that are offered.
        available: Vec<String>,
    },
    /// Offered, but no offer's context holds the request.
    #[error("model {name:?} takes at most {largest} tokens of context; the request needs {needed}")]
    ContextTooShort {
        /// The name.
        name: String,
        /// Tokens the request needs.
        needed: u32,
        /// The longest context offered.
        largest: u32,
    },
    /// Every offer's price overflows for the request's tokens.
    #[error("model {name:?} cannot be priced for this many tokens")]
    Unpriceable {
        /// The name.
        name: String,
    },
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// What the hot loop of [`ModelRouter::rank`] reads per candidate, laid out flat: prices as
/// floats, the reputation penalty computed once, and the provider's slot in the load table
/// (a vector index, not a hash lookup).
#[derive(Clone, Copy, Debug)]
struct Scoring {
    slot: u32,
    context: u32,
    price_in: f64,
    price_out: f64,
    reputation_penalty: f64,
}

/// The candidates of one name.
#[derive(Clone, Debug, Default)]
struct Group {
    candidates: Vec<ModelCandidate>,
    scoring: Vec<Scoring>,
}

/// The model router.
#[derive(Clone, Debug, Default)]
pub struct ModelRouter {
    by_name: HashMap<String, Group>,
    names: BTreeSet<String>,
    /// Provider → its index in `loads`; kept across [`ModelRouter::replace`].
    slots: HashMap<AccountId, u32>,
    loads: Vec<ProviderLoad>,
    weights: ModelWeights,
    offers: usize,
}

impl ModelRouter {
    /// An empty router with the default weights.
    pub fn new() -> ModelRouter {
        ModelRouter::default()
    }

    /// An empty router with other weights (each finite and ≥ 0; others are taken as 0).
    pub fn with_weights(weights: ModelWeights) -> ModelRouter {
        let clean = |w: f64| if w.is_finite() && w > 0.0 { w } else { 0.0 };
        ModelRouter {
            weights: ModelWeights {
                reputation: clean(weights.reputation),
                latency: clean(weights.latency),
                load: clean(weights.load),
            },
            ..ModelRouter::default()
        }
    }

    fn slot(&mut self, provider: &AccountId) -> u32 {
        if let Some(s) = self.slots.get(provider) {
            return *s;
        }
        let s = self.loads.len() as u32;
        self.loads.push(ProviderLoad::default());
        self.slots.insert(*provider, s);
        s
    }

    /// Add one candidate.
    pub fn insert(&mut self, candidate: ModelCandidate) {
        let slot = self.slot(&candidate.provider);
        let name = candidate.offer.name.as_str();
        if !self.by_name.contains_key(name) {
            self.names.insert(name.to_owned());
        }
        let scoring = Scoring {
            slot,
            context: candidate.offer.context,
            price_in: candidate.offer.price_in.units() as f64,
            price_out: candidate.offer.price_out.units() as f64,
            reputation_penalty: 1.0 - reputation_quality(&candidate.reputation),
        };
        let group = self.by_name.entry(name.to_owned()).or_default();
        group.candidates.push(candidate);
        group.scoring.push(scoring);
        self.offers += 1;
    }

    /// Replace every candidate (once per finalized block that changed offers); measurements
    /// are kept.
    pub fn replace(&mut self, candidates: impl IntoIterator<Item = ModelCandidate>) {
        self.by_name.clear();
        self.names.clear();
        self.offers = 0;
        for c in candidates {
            self.insert(c);
        }
    }

    /// Candidates in the router.
    pub fn len(&self) -> usize {
        self.offers
    }

    /// Whether the router has no candidate.
    pub fn is_empty(&self) -> bool {
        self.offers == 0
    }

    /// Every offered name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    /// The candidates under a name, in insertion order (empty if unknown).
    pub fn candidates(&self, name: &str) -> &[ModelCandidate] {
        self.by_name
            .get(name)
            .map_or(&[], |g| g.candidates.as_slice())
    }

    /// The kind a name serves (of its first offer), if offered.
    pub fn kind(&self, name: &str) -> Option<ModelKind> {
        self.candidates(name).first().map(|c| c.offer.kind)
    }

    /// What was measured about a provider.
    pub fn load(&self, provider: &AccountId) -> ProviderLoad {
        self.slots
            .get(provider)
            .and_then(|s| self.loads.get(*s as usize))
            .copied()
            .unwrap_or_default()
    }

    fn load_mut(&mut self, provider: &AccountId) -> &mut ProviderLoad {
        let s = self.slot(provider) as usize;
        &mut self.loads[s]
    }

    /// Fold a time-to-first-byte sample into the provider's moving average.
    pub fn observe_latency(&mut self, provider: &AccountId, ms: f64) {
        if !ms.is_finite() || ms < 0.0 {
            return;
        }
        let l = self.load_mut(provider);
        l.latency_ms = Some(match l.latency_ms {
            None => ms,
            Some(prev) => prev + LATENCY_EWMA_ALPHA * (ms - prev),
        });
    }

    /// A request was sent to the provider.
    pub fn started(&mut self, provider: &AccountId) {
        let l = self.load_mut(provider);
        l.in_flight = l.in_flight.saturating_add(1);
    }

    /// A request to the provider finished (answered or failed).
    pub fn finished(&mut self, provider: &AccountId) {
        let l = self.load_mut(provider);
        l.in_flight = l.in_flight.saturating_sub(1);
    }

    /// The best candidates for a query, best first.
    pub fn rank(&self, q: &ModelQuery<'_>) -> Result<Vec<RankedModel>, ModelRouteError> {
        let Some(group) = self.by_name.get(q.name) else {
            return Err(ModelRouteError::UnknownModel {
                name: q.name.to_owned(),
                available: self.names.iter().take(SUGGESTED_NAMES).cloned().collect(),
            });
        };
        let (mut scored, largest) = self.score(group, q);
        let order = |a: &(f64, usize), b: &(f64, usize)| {
            a.0.total_cmp(&b.0).then_with(|| {
                group.candidates[a.1]
                    .provider
                    .cmp(&group.candidates[b.1].provider)
            })
        };
        let k = q.limit.clamp(1, MAX_MODEL_RESULTS).min(scored.len());
        if k > 0 && k < scored.len() {
            scored.select_nth_unstable_by(k - 1, order);
            scored.truncate(k);
        }
        scored.sort_by(order);
        // Exact prices for the few returned; one that overflows is dropped.
        let priced: Vec<(f64, Amount, &ModelCandidate)> = scored
            .into_iter()
            .filter_map(|(e, i)| {
                let c = &group.candidates[i];
                c.offer
                    .cost(q.tokens_in, q.tokens_out)
                    .map(|cost| (e, cost, c))
            })
            .collect();
        if priced.is_empty() {
            return Err(if largest < q.min_context {
                ModelRouteError::ContextTooShort {
                    name: q.name.to_owned(),
                    needed: q.min_context,
                    largest,
                }
            } else {
                ModelRouteError::Unpriceable {
                    name: q.name.to_owned(),
                }
            });
        }
        let cheapest = priced.iter().map(|s| s.1).min();
        Ok(priced
            .into_iter()
            .enumerate()
            .map(|(i, (effective_cost, cost, c))| {
                let load = self.load(&c.provider);
                RankedModel {
                    rank: i + 1,
                    explanation: explain(c, cost, &load, Some(cost) == cheapest),
                    candidate: c.clone(),
                    cost,
                    effective_cost,
                    load,
                }
            })
            .collect())
    }

    /// Every qualifying candidate's effective cost (index into the group), and the longest
    /// context offered. Prices are computed in floating point here, exactly only for results.
    fn score(&self, group: &Group, q: &ModelQuery<'_>) -> (Vec<(f64, usize)>, u32) {
        let w = &self.weights;
        let (tin, tout) = (f64::from(q.tokens_in), f64::from(q.tokens_out));
        let mut largest = 0;
        let mut scored = Vec::with_capacity(group.scoring.len());
        for (i, s) in group.scoring.iter().enumerate() {
            largest = largest.max(s.context);
            if s.context < q.min_context {
                continue;
            }
            let load = self.loads[s.slot as usize];
            let cost = ((s.price_in * tin + s.price_out * tout) / TOKENS_PER_PRICE_UNIT).ceil();
            let multiplier = 1.0
                + w.reputation * s.reputation_penalty
                + w.latency * latency_penalty(load.latency_ms)
                + w.load * load_penalty(load.in_flight);
            scored.push(((cost + 1.0) * multiplier, i));
        }
        (scored, largest)
    }
}

/// Tokens per priced unit, as a float for scoring.
const TOKENS_PER_PRICE_UNIT: f64 = orrery_types::inference::TOKENS_PER_PRICE_UNIT as f64;

/// `l / (l + 50 ms)`; 0.5 when unmeasured.
pub fn latency_penalty(latency_ms: Option<f64>) -> f64 {
    latency_ms.map_or(0.5, |l| l / (l + LATENCY_REFERENCE_MS))
}

/// `n / (n + 4)`.
pub fn load_penalty(in_flight: u32) -> f64 {
    let n = f64::from(in_flight);
    n / (n + LOAD_REFERENCE)
}

fn explain(c: &ModelCandidate, cost: Amount, load: &ProviderLoad, cheapest: bool) -> String {
    let r = &c.reputation;
    let reputation = if r.checked + r.settled + r.failed + r.slashed + r.timed_out == 0 {
        "new provider (neutral reputation)".to_owned()
    } else {
        format!(
            "reputation {:.2} ({} checks, {} settled, {} failures, {} slashes)",
            reputation_quality(r),
            r.checked,
            r.settled,
            r.failed,
            r.slashed
        )
    };
    let latency = match load.latency_ms {
        Some(l) => format!("latency {l:.0} ms"),
        None => "latency not measured".to_owned(),
    };
    format!(
        "{}{cost} for the request ({}/M in, {}/M out); {reputation}; {latency}; {} in flight",
        if cheapest { "cheapest: " } else { "" },
        c.offer.price_in,
        c.offer.price_out,
        load.in_flight
    )
}

#[cfg(test)]
mod tests;
