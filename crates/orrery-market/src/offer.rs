//! One provider's offer as the router sees it, and the query-independent penalties derived from
//! it.
//!
//! An [`Offer`] joins what the chain knows about a provider (hardware, region, prices, stake,
//! reputation) with what only the caller can know (benchmark score, when the provider was last
//! seen, latency measured from the requester). The index never measures anything itself.
//!
//! Every penalty lies in `[0, 1]`: 0 is the best possible value, 1 the worst. A missing
//! measurement (no proven score yet, no latency probe, never challenged) and a brand-new
//! provider all get the neutral 0.5, so newcomers are neither punished nor favoured much.
//!
//! # What the chain proves
//!
//! The chain draws providers for seeded matrix-product challenges sized from their claimed
//! hardware (see `orrery_types::challenge`). Three results reach the router:
//!
//! - `online`: false after a missed or failed challenge, until the provider answers one again.
//!   An offline offer never routes ([`crate::Requirement::Online`]).
//! - `proven_score_bps`: measured throughput ÷ claimed, capped at 10 000. It replaces the
//!   self-reported benchmark in the benchmark penalty: `0.5 × (1 − score)`, so a provider
//!   proven at its full claim pays 0, one proven at the chain's minimum (25 % of its claim,
//!   below which it is docked and offline) pays 0.375, and an *unproven* one pays the neutral
//!   0.5 — worse than any proven provider still online, so proving pays, but not so bad that a
//!   newcomer cannot win on price. The agent's own benchmark is shown, never scored: nobody
//!   checks it.
//! - `uptime_bps`: challenges answered ÷ decided (answered + missed; an open one is not counted). It joins the reputation penalty as an equal
//!   half: `p_rep = (p_leases + (1 − uptime)) / 2`, never drawn counting 0.5. Leases and
//!   challenges are both evidence of "will this provider be there and do the work", so one
//!   weight (0.5 by default) covers both; the combined penalty stays in `[0, 1]`, so the
//!   index's bounds hold unchanged.

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
/// Latency (ms) that earns the neutral penalty 0.5; 10 ms earns 0.17, 200 ms 0.8.
pub const LATENCY_REFERENCE_MS: f64 = 50.0;
/// Benchmark penalty of a provider the chain has never measured: the neutral 0.5, worse than
/// any proven provider still online (whose penalty is at most `0.5 × (1 − 0.25)` = 0.375).
pub const UNPROVEN_BENCHMARK_PENALTY: f64 = 0.5;
/// A full score in basis points (10 000 = 100 %).
pub const FULL_BPS: f64 = 10_000.0;

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
    /// Whether the chain counts it online: false after a missed or failed challenge, until it
    /// answers one again. Offline offers never route.
    pub online: bool,
    /// Challenges answered ÷ decided, in basis points; `None` before the first is decided.
    pub uptime_bps: Option<u32>,
    /// Throughput the chain measured ÷ the throughput its hardware claims, in basis points
    /// (capped at 10 000); `None` if never measured.
    pub proven_score_bps: Option<u32>,
}

impl Offer {
    /// The offer of a registered provider as the chain records it, with its challenge record
    /// (online, uptime, proven score); benchmark, liveness and latency start unknown.
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
            online: provider.proof.online,
            uptime_bps: (provider.proof.decided() > 0).then(|| provider.proof.uptime_bps()),
            proven_score_bps: (provider.proof.proven_flops > 0)
                .then_some(provider.proof.proven_score_bps),
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
            reputation: reputation_penalty(&self.reputation, self.uptime_bps),
            benchmark: proven_penalty(self.proven_score_bps),
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
    /// `((1 − reputation_quality) + (1 − uptime)) / 2`, see [`reputation_penalty`].
    pub reputation: f64,
    /// `0.5 × (1 − proven score)`; 0.5 when unproven, see [`proven_penalty`].
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

/// The reputation penalty: the lease record's `1 − quality` and the challenge record's
/// `1 − uptime` as equal halves (never drawn: 0.5). In `[0, 1]`.
pub fn reputation_penalty(r: &Reputation, uptime_bps: Option<u32>) -> f64 {
    let leases = 1.0 - reputation_quality(r);
    let challenges = uptime_bps.map_or(0.5, |u| 1.0 - (f64::from(u) / FULL_BPS).min(1.0));
    (leases + challenges) / 2.0
}

/// The benchmark penalty from the chain's proven score: `0.5 × (1 − score)` (0 at the full
/// claim), [`UNPROVEN_BENCHMARK_PENALTY`] when never measured. In `[0, 0.5]`.
pub fn proven_penalty(proven_score_bps: Option<u32>) -> f64 {
    proven_score_bps.map_or(UNPROVEN_BENCHMARK_PENALTY, |s| {
        0.5 * (1.0 - (f64::from(s) / FULL_BPS).min(1.0))
    })
}
