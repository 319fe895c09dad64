//! One provider's offer as the router sees it, and the query-independent penalties derived from
//! it.
//!
//! An [`Offer`] joins what the chain knows about a provider (hardware, region, prices, stake,
//! reputation) with what only the caller can know (benchmark score, when the provider was last
//! seen, latency measured from the requester). The index never measures anything itself.
//!
//! Every penalty lies in `[0, 1]`: 0 is the best possible value, 1 the worst. A missing
//! measurement (no benchmark yet, no latency probe) and a brand-new provider all get the
//! neutral 0.5, so newcomers are neither punished nor favoured much.

use orrery_ledger::entries::{Provider, Reputation};
use orrery_types::resources::{Hardware, PriceList};
use orrery_types::{AccountId, Amount};
use serde::Serialize;

/// Weight of failed, slashed and timed-out leases in the reputation score, against 1 for each
/// settled or checked lease. A wrong result costs five good ones, a slash ten, a timeout two.
pub const FAILED_WEIGHT: u64 = 5;
/// See [`FAILED_WEIGHT`].
pub const SLASHED_WEIGHT: u64 = 10;
/// See [`FAILED_WEIGHT`].
pub const TIMED_OUT_WEIGHT: u64 = 2;
/// Pseudo-observations (half good, half bad) added to every record, so that a provider with a
/// handful of leases cannot reach the extremes: 10 clean leases give quality 0.75, not 1.0.
pub const REPUTATION_PRIOR: f64 = 10.0;
/// Benchmark score that earns the neutral penalty 0.5; twice it earns 0.33, half 0.67.
pub const BENCHMARK_REFERENCE: f64 = 1_000.0;
/// Latency (ms) that earns the neutral penalty 0.5; 10 ms earns 0.17, 200 ms 0.8.
pub const LATENCY_REFERENCE_MS: f64 = 50.0;

/// What the router knows about one provider.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Offer {
    /// The provider's account.
    pub provider: AccountId,
    /// The machine it offers.
    pub hardware: Hardware,
    /// Where it is (as registered, e.g. "eu-west").
    pub region: String,
    /// Listed prices.
    pub prices: PriceList,
    /// Bonded stake.
    pub stake: Amount,
    /// Track record from the chain.
    pub reputation: Reputation,
    /// Benchmark score the provider agent measured (higher is faster); `None` until known.
    pub benchmark: Option<u32>,
    /// When the provider was last seen alive (caller's clock, ms); `None` if never.
    pub last_seen_ms: Option<u64>,
    /// Round-trip latency from the requester, in ms; `None` if not measured.
    pub latency_ms: Option<u32>,
}

impl Offer {
    /// The offer of a registered provider as the chain records it; benchmark, liveness and
    /// latency start unknown.
    pub fn from_provider(id: &AccountId, provider: &Provider) -> Offer {
        Offer {
            provider: *id,
            hardware: provider.offer.hardware.clone(),
            region: provider.offer.region.as_str().to_owned(),
            prices: provider.offer.prices,
            stake: provider.stake,
            reputation: provider.reputation,
            benchmark: None,
            last_seen_ms: None,
            latency_ms: None,
        }
    }

    /// The GPU model, or "" for a CPU-only machine.
    pub fn gpu_model(&self) -> &str {
        self.hardware.gpu.as_ref().map_or("", |g| g.model.as_str())
    }

    /// Memory per GPU in MiB (0 without GPUs).
    pub fn vram_mib(&self) -> u32 {
        self.hardware.gpu.as_ref().map_or(0, |g| g.vram_mib)
    }

    /// The reputation score `checked + settled − 5·failed − 10·slashed − 2·timed_out`.
    pub fn reputation_score(&self) -> i64 {
        reputation_score(&self.reputation)
    }

    /// Query-independent penalties, each in `[0, 1]`.
    pub fn penalties(&self) -> StaticPenalties {
        StaticPenalties {
            reputation: 1.0 - reputation_quality(&self.reputation),
            benchmark: self.benchmark.map_or(0.5, |b| {
                BENCHMARK_REFERENCE / (BENCHMARK_REFERENCE + f64::from(b))
            }),
            latency: self.latency_ms.map_or(0.5, |l| {
                let l = f64::from(l);
                l / (l + LATENCY_REFERENCE_MS)
            }),
        }
    }
}

/// Penalties that depend on the offer alone (not on the query), each in `[0, 1]`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct StaticPenalties {
    /// `1 − reputation_quality`.
    pub reputation: f64,
    /// `R / (R + score)` with `R` = [`BENCHMARK_REFERENCE`]; 0.5 when unknown.
    pub benchmark: f64,
    /// `l / (l + L)` with `L` = [`LATENCY_REFERENCE_MS`]; 0.5 when unknown.
    pub latency: f64,
}

/// `checked + settled − 5·failed − 10·slashed − 2·timed_out`, saturating.
pub fn reputation_score(r: &Reputation) -> i64 {
    let good = r.checked.saturating_add(r.settled);
    let bad = bad_weight(r);
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    clamp(good).saturating_sub(clamp(bad))
}

fn bad_weight(r: &Reputation) -> u64 {
    r.failed
        .saturating_mul(FAILED_WEIGHT)
        .saturating_add(r.slashed.saturating_mul(SLASHED_WEIGHT))
        .saturating_add(r.timed_out.saturating_mul(TIMED_OUT_WEIGHT))
}

/// Share of good weight in the record with a neutral prior:
/// `(good + P/2) / (good + bad + P)`, P = [`REPUTATION_PRIOR`]. A new provider gets 0.5.
pub fn reputation_quality(r: &Reputation) -> f64 {
    let good = r.checked.saturating_add(r.settled) as f64;
    let bad = bad_weight(r) as f64;
    (good + REPUTATION_PRIOR / 2.0) / (good + bad + REPUTATION_PRIOR)
}
