//! The scenario: every economic input of a simulation, read from TOML.
//!
//! The default (`scenarios/default.toml`, embedded) documents each key. A scenario file replaces
//! it whole: every key is required and unknown keys are refused, so a typo never silently falls
//! back to a default. Errors name the key and the reason (`ScenarioError`).

use serde::{Deserialize, Serialize};

/// The embedded default scenario.
pub const DEFAULT_SCENARIO: &str = include_str!("../scenarios/default.toml");

/// Longest step: a lease must fit `max_lease_blocks` and a day must hold whole steps.
pub const MAX_STEP_HOURS: u32 = 24;

/// Every input of a run besides its size, seed and demand shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Dollars per ORR.
    pub usd_per_orr: f64,
    /// Simulated hours per step.
    pub step_hours: u32,
    /// Requester accounts per 1,000 providers (at least 10 in all).
    pub requesters_per_1000_providers: u32,
    /// Sign and verify every transaction.
    pub sign_transactions: bool,
    /// Machine kinds.
    pub hardware: Vec<HardwareClass>,
    /// Regions.
    pub regions: Vec<Region>,
    /// Listed prices.
    pub pricing: Pricing,
    /// Joins, churn, funding.
    pub population: Population,
    /// Requesters' demand.
    pub demand: Demand,
    /// Cheaters.
    pub cheaters: Cheaters,
    /// Hardware challenges.
    pub challenges: Challenges,
}

/// One kind of machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HardwareClass {
    /// Name in outputs ("RTX 4090 x1").
    pub name: String,
    /// GPU model as the provider agent reports it; empty for a CPU-only machine.
    pub gpu_model: String,
    /// GPUs in the machine.
    pub gpus: u16,
    /// Memory per GPU.
    pub vram_mib: u32,
    /// CPU cores.
    pub cpu_cores: u16,
    /// Memory.
    pub ram_gib: u32,
    /// Whole machine's draw under load.
    pub load_watts: f64,
    /// Whole machine's draw idle.
    pub idle_watts: f64,
    /// Share of providers.
    pub share: f64,
}

/// One region.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    /// Name as registered.
    pub name: String,
    /// Electricity price.
    pub usd_per_kwh: f64,
    /// Share of providers.
    pub share: f64,
}

/// How providers price.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pricing {
    /// Lowest listed price as a share of the cloud reference.
    pub list_share_min: f64,
    /// Highest.
    pub list_share_max: f64,
}

/// Joins, churn and funding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Population {
    /// Joins per day, share of the starting count.
    pub join_per_day: f64,
    /// Leaves per day, share of the live count.
    pub churn_per_day: f64,
    /// Funding, as a multiple of the minimum stake.
    pub funding_stake_multiple: f64,
}

/// Requesters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Demand {
    /// Share of machines wanted busy at the base level.
    pub base_utilization: f64,
    /// Most a requester pays, share of the cloud reference.
    pub max_price_share: f64,
    /// Shortest job, hours.
    pub job_hours_min: u32,
    /// Mean job, hours.
    pub job_hours_mean: u32,
    /// Machines per order, at most.
    pub max_order_machines: u32,
    /// Share of jobs verified `sampled`.
    pub sampled_share: f64,
}

/// Cheaters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cheaters {
    /// Share of wrong-output providers.
    pub wrong_output_share: f64,
    /// Electricity they save.
    pub wrong_output_saving: f64,
    /// Share of lazy providers (no work, made-up result).
    pub lazy_share: f64,
    /// Share of wash traders.
    pub wash_trader_share: f64,
    /// Their self-dealing price, multiple of their listed price.
    pub wash_price_multiple: f64,
    /// Share of providers that claim hardware they do not have.
    pub spoofed_hardware_share: f64,
}

/// How often the ledger challenges each provider's hardware claim.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Challenges {
    /// Mean simulated hours between two challenges of one provider.
    pub hours_between: f64,
    /// At most this many challenges per step, whatever the network's size: each costs three
    /// transactions and a few hashes, so this bounds the simulation's cost.
    pub max_per_step: u32,
}

/// Why a scenario is refused.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// Not TOML, a missing or unknown key, or a wrong type (the message names the key).
    #[error("scenario is not valid: {0}")]
    Parse(String),
    /// A value out of range.
    #[error("scenario key `{key}` is out of range: {reason}")]
    Range {
        /// The key, as a path (`hardware[2].share`).
        key: String,
        /// Why.
        reason: String,
    },
}

fn range(key: impl Into<String>, reason: impl Into<String>) -> ScenarioError {
    ScenarioError::Range {
        key: key.into(),
        reason: reason.into(),
    }
}

impl Default for Scenario {
    fn default() -> Self {
        // The embedded default is parsed and validated by a test; a broken one is a build bug.
        Scenario::from_toml(DEFAULT_SCENARIO).unwrap_or_else(|e| panic!("default scenario: {e}"))
    }
}

impl Scenario {
    /// Parse and validate.
    pub fn from_toml(text: &str) -> Result<Scenario, ScenarioError> {
        let s: Scenario = toml::from_str(text).map_err(|e| ScenarioError::Parse(e.to_string()))?;
        s.validate()?;
        Ok(s)
    }

    /// Check every value is usable.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        positive("usd_per_orr", self.usd_per_orr)?;
        if self.step_hours == 0 || self.step_hours > MAX_STEP_HOURS || 24 % self.step_hours != 0 {
            return Err(range(
                "step_hours",
                "must divide 24 (1, 2, 3, 4, 6, 8, 12 or 24)",
            ));
        }
        if self.hardware.is_empty() {
            return Err(range("hardware", "needs at least one machine kind"));
        }
        for (i, h) in self.hardware.iter().enumerate() {
            let key = |f: &str| format!("hardware[{i}].{f}");
            if h.gpu_model.len() > 64 {
                return Err(range(key("gpu_model"), "at most 64 bytes"));
            }
            if (h.gpus == 0) != h.gpu_model.is_empty() {
                return Err(range(
                    key("gpu_model"),
                    "a machine with GPUs names their model; a CPU-only one (gpus = 0) leaves it empty",
                ));
            }
            if h.gpus > 0 && orrery_market::reference::gpu_reference(&h.gpu_model).is_none() {
                return Err(range(
                    key("gpu_model"),
                    format!(
                        "`{}` has no cloud reference price in orrery_market::reference",
                        h.gpu_model
                    ),
                ));
            }
            if h.cpu_cores == 0 || h.ram_gib == 0 {
                return Err(range(
                    key("cpu_cores"),
                    "cores and ram_gib must be at least 1",
                ));
            }
            positive(&key("load_watts"), h.load_watts)?;
            if !(h.idle_watts >= 0.0 && h.idle_watts <= h.load_watts) {
                return Err(range(key("idle_watts"), "must be between 0 and load_watts"));
            }
            share(&key("share"), h.share)?;
        }
        sums_to_one("hardware", self.hardware.iter().map(|h| h.share))?;
        if self.regions.is_empty() {
            return Err(range("regions", "needs at least one region"));
        }
        for (i, r) in self.regions.iter().enumerate() {
            if r.name.is_empty() || r.name.len() > 32 {
                return Err(range(format!("regions[{i}].name"), "1 to 32 characters"));
            }
            positive(&format!("regions[{i}].usd_per_kwh"), r.usd_per_kwh)?;
            share(&format!("regions[{i}].share"), r.share)?;
        }
        sums_to_one("regions", self.regions.iter().map(|r| r.share))?;
        let p = &self.pricing;
        positive("pricing.list_share_min", p.list_share_min)?;
        if p.list_share_max < p.list_share_min {
            return Err(range(
                "pricing.list_share_max",
                "must be at least pricing.list_share_min",
            ));
        }
        share("population.join_per_day", self.population.join_per_day)?;
        share("population.churn_per_day", self.population.churn_per_day)?;
        if !(self.population.funding_stake_multiple >= 1.0
            && self.population.funding_stake_multiple <= 1000.0)
        {
            return Err(range(
                "population.funding_stake_multiple",
                "must be between 1 and 1000",
            ));
        }
        let d = &self.demand;
        if !(d.base_utilization > 0.0 && d.base_utilization <= 1.0) {
            return Err(range("demand.base_utilization", "must be in (0, 1]"));
        }
        positive("demand.max_price_share", d.max_price_share)?;
        if d.job_hours_min == 0 || d.job_hours_mean < d.job_hours_min {
            return Err(range(
                "demand.job_hours_mean",
                "job_hours_min must be at least 1 and job_hours_mean at least job_hours_min",
            ));
        }
        if d.max_order_machines == 0 || d.max_order_machines > 1_000 {
            return Err(range("demand.max_order_machines", "must be 1 to 1000"));
        }
        share("demand.sampled_share", d.sampled_share)?;
        let c = &self.cheaters;
        share("cheaters.wrong_output_share", c.wrong_output_share)?;
        share("cheaters.wrong_output_saving", c.wrong_output_saving)?;
        share("cheaters.lazy_share", c.lazy_share)?;
        share("cheaters.wash_trader_share", c.wash_trader_share)?;
        share("cheaters.spoofed_hardware_share", c.spoofed_hardware_share)?;
        if c.wrong_output_share + c.lazy_share + c.wash_trader_share + c.spoofed_hardware_share
            > 0.5
        {
            return Err(range(
                "cheaters",
                "the cheater shares add up to more than half the providers",
            ));
        }
        if !(c.wash_price_multiple >= 1.0 && c.wash_price_multiple <= 1_000.0) {
            return Err(range("cheaters.wash_price_multiple", "must be 1 to 1000"));
        }
        positive("challenges.hours_between", self.challenges.hours_between)?;
        if self.challenges.max_per_step == 0 || self.challenges.max_per_step > u32::from(u16::MAX) {
            return Err(range("challenges.max_per_step", "must be 1 to 65535"));
        }
        Ok(())
    }
}

fn positive(key: &str, v: f64) -> Result<(), ScenarioError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(range(key, format!("must be a positive number, got {v}")))
    }
}

fn share(key: &str, v: f64) -> Result<(), ScenarioError> {
    if (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(range(key, format!("must be between 0 and 1, got {v}")))
    }
}

fn sums_to_one(key: &str, shares: impl Iterator<Item = f64>) -> Result<(), ScenarioError> {
    let total: f64 = shares.sum();
    if (total - 1.0).abs() > 1e-6 {
        return Err(range(
            format!("{key}[*].share"),
            format!("the shares must add up to 1, they add up to {total}"),
        ));
    }
    Ok(())
}
