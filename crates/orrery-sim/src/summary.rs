//! What a run reports.
//!
//! [`Summary`] is a pure function of the scenario, the size, the seed and the demand and
//! emission choices: the same inputs give the same bytes (no wall-clock, no hash-map order).
//! Everything measured in wall time — block execution, state root, router queries, peak
//! memory — is in [`Timings`], written to a separate file because it differs on every run.

use crate::population::Kind;
use crate::scenario::Scenario;
use serde::Serialize;
use std::collections::BTreeMap;

/// How requesters' demand moves over the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DemandShape {
    /// The base level throughout.
    Flat,
    /// From a quarter of the base to 1.75× the base, linearly.
    Growing,
    /// 0.6× the base, with a day at 2.6× every four days.
    Bursty,
    /// 1.5× the base for the first 40% of the run, then 0.15×.
    Collapsing,
}

impl DemandShape {
    /// Every shape, in report order.
    pub const ALL: [DemandShape; 4] = [
        DemandShape::Flat,
        DemandShape::Growing,
        DemandShape::Bursty,
        DemandShape::Collapsing,
    ];

    /// Multiple of the base demand at `day` (fractional) of a `days`-long run.
    pub fn level(self, day: f64, days: f64) -> f64 {
        let x = (day / days.max(1e-9)).clamp(0.0, 1.0);
        match self {
            DemandShape::Flat => 1.0,
            DemandShape::Growing => 0.25 + 1.5 * x,
            DemandShape::Bursty => {
                if (day % 4.0) >= 2.0 && (day % 4.0) < 3.0 {
                    2.6
                } else {
                    0.6
                }
            }
            DemandShape::Collapsing => {
                if x < 0.4 {
                    1.5
                } else {
                    0.15
                }
            }
        }
    }

    /// The highest level the shape reaches (sizes blocks).
    pub fn peak(self) -> f64 {
        match self {
            DemandShape::Flat => 1.0,
            DemandShape::Growing => 1.75,
            DemandShape::Bursty => 2.6,
            DemandShape::Collapsing => 1.5,
        }
    }

    /// Name in outputs.
    pub fn name(self) -> &'static str {
        match self {
            DemandShape::Flat => "flat",
            DemandShape::Growing => "growing",
            DemandShape::Bursty => "bursty",
            DemandShape::Collapsing => "collapsing",
        }
    }

    /// Parse a name.
    pub fn parse(s: &str) -> Option<DemandShape> {
        DemandShape::ALL.into_iter().find(|d| d.name() == s)
    }
}

/// The emission rule a run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EmissionMode {
    /// The ledger's schedule (`emission_taper_bps = 0`, today's default).
    Fixed,
    /// Emission less the epoch's burned fees, one for one (`emission_taper_bps = 10000`).
    Taper,
    /// The schedule, shared over checked work only (`emission_unchecked_weight_bps = 0`):
    /// the fix for wash trading.
    Checked,
}

impl EmissionMode {
    /// Every rule, in report order.
    pub const ALL: [EmissionMode; 3] = [
        EmissionMode::Fixed,
        EmissionMode::Taper,
        EmissionMode::Checked,
    ];

    /// The ledger's `emission_taper_bps`.
    pub fn taper_bps(self) -> u16 {
        match self {
            EmissionMode::Fixed | EmissionMode::Checked => 0,
            EmissionMode::Taper => 10_000,
        }
    }

    /// The ledger's `emission_unchecked_weight_bps`.
    pub fn unchecked_weight_bps(self) -> u16 {
        match self {
            EmissionMode::Fixed | EmissionMode::Taper => 10_000,
            EmissionMode::Checked => 0,
        }
    }

    /// Name in outputs.
    pub fn name(self) -> &'static str {
        match self {
            EmissionMode::Fixed => "fixed",
            EmissionMode::Taper => "taper",
            EmissionMode::Checked => "checked",
        }
    }

    /// Parse a name.
    pub fn parse(s: &str) -> Option<EmissionMode> {
        EmissionMode::ALL.into_iter().find(|d| d.name() == s)
    }
}

/// Everything a simulation reports (deterministic).
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Providers at the start.
    pub providers: u32,
    /// Simulated days.
    pub days: u32,
    /// The seed.
    pub seed: u64,
    /// The scenario used.
    pub scenario: Scenario,
    /// How the simulation maps the chain onto simulated time.
    pub model: ModelNotes,
    /// One per (demand shape, emission mode).
    pub runs: Vec<RunSummary>,
}

/// The abstraction, in numbers.
#[derive(Clone, Debug, Serialize)]
pub struct ModelNotes {
    /// Simulated hours per step.
    pub step_hours: u32,
    /// Blocks per step (an emission epoch is one step).
    pub blocks_per_step: u64,
    /// ORR minted per step at the start of the schedule (the ledger's `emission_initial` per
    /// simulated hour: its 8,760-epoch halving period is a year of hourly epochs).
    pub emission_per_step_orr: f64,
    /// Whether transactions were signed and verified (otherwise applied as pre-verified).
    pub signed: bool,
}

/// One run: one demand shape under one emission rule.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    /// Demand shape.
    pub demand: DemandShape,
    /// Emission rule.
    pub emission: EmissionMode,
    /// Blocks applied (registration included).
    pub blocks: u64,
    /// Transactions applied.
    pub transactions: u64,
    /// Refused transactions by reason (a correct simulation has none).
    pub refused: BTreeMap<String, u64>,
    /// Hardware challenges over the run.
    pub challenges: ChallengeCounts,
    /// Full ledger audits that passed (one per simulated day and one at the end; debug builds
    /// also audit inside every block).
    pub audits_passed: u64,
    /// The state root after the last block (hex).
    pub final_state_root: String,
    /// Lease counts.
    pub leases: LeaseCounts,
    /// Supply totals at the end, ORR.
    pub supply: SupplyTotals,
    /// Per simulated day.
    pub days: Vec<DayRow>,
    /// Per machine kind (honest providers).
    pub classes: Vec<ClassSummary>,
    /// Per provider kind.
    pub kinds: Vec<KindSummary>,
    /// Machines requesters wanted but no offer under their price cap could serve.
    pub unmet_machines: u64,
}

/// Lease counts.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LeaseCounts {
    /// Opened (wash trades included).
    pub opened: u64,
    /// Of which wash trades.
    pub wash: u64,
    /// Settled.
    pub settled: u64,
    /// Re-executed by a drawn verifier.
    pub checked: u64,
    /// Disputed.
    pub disputed: u64,
    /// Failed (a cheater caught).
    pub failed: u64,
    /// Timed out (none expected).
    pub timed_out: u64,
    /// Slashes.
    pub slashes: u64,
}

/// Supply at the end of a run, ORR.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SupplyTotals {
    /// At genesis.
    pub genesis: f64,
    /// Minted by emission.
    pub minted: f64,
    /// Burned (fees, slashes, penalties).
    pub burned: f64,
    /// `minted − burned`.
    pub net: f64,
}

/// One simulated day (cumulative amounts are since genesis).
#[derive(Clone, Debug, Serialize)]
pub struct DayRow {
    /// Day, 1-based.
    pub day: u32,
    /// Demand level (multiple of the base).
    pub demand_level: f64,
    /// Minted so far, ORR.
    pub minted: f64,
    /// Burned so far, ORR.
    pub burned: f64,
    /// `minted − burned`, ORR.
    pub net: f64,
    /// Registered live providers at the day's end.
    pub live_providers: u64,
    /// Settled lease volume this day, ORR (wash trades included).
    pub volume: f64,
    /// Wash-trade volume this day, ORR.
    pub wash_volume: f64,
    /// Machine utilization this day, per class (honest and cheating machines that serve
    /// requesters; wash traders excluded).
    pub utilization: Vec<f64>,
    /// Average agreed price as a share of the cloud reference, per class (`None`: no lease
    /// opened that day).
    pub price_share: Vec<Option<f64>>,
    /// Cumulative profit per provider, USD, per kind (`Kind::ALL` order; income − electricity
    /// − slashed stake).
    pub profit_per_provider: Vec<f64>,
}

/// Per machine kind, honest providers over the whole run.
#[derive(Clone, Debug, Serialize)]
pub struct ClassSummary {
    /// Name.
    pub name: String,
    /// GPUs per machine.
    pub gpus: u16,
    /// Honest providers ever live.
    pub providers: u64,
    /// Utilization over the run.
    pub utilization: f64,
    /// Average agreed price per GPU-hour (per core-hour for CPU), USD.
    pub price_usd: f64,
    /// The cloud reference, USD.
    pub reference_usd: f64,
    /// Lease income per busy GPU-hour (core-hour for CPU), after the fee, USD.
    pub lease_income_per_busy_unit_hour: f64,
    /// Emission per busy GPU-hour, USD.
    pub emission_per_busy_unit_hour: f64,
    /// Electricity per GPU-hour under load, at the class's average kWh price, USD.
    pub electricity_load_per_unit_hour: f64,
    /// Electricity per GPU-hour idle, USD.
    pub electricity_idle_per_unit_hour: f64,
    /// Least utilization at which income covers electricity (`None`: never).
    pub break_even_utilization: Option<f64>,
    /// Profit per machine over the run at the simulated utilization, USD.
    pub profit_per_machine: f64,
}

/// Per provider kind over the whole run.
#[derive(Clone, Debug, Serialize)]
pub struct KindSummary {
    /// Kind.
    pub kind: Kind,
    /// Providers ever live.
    pub providers: u64,
    /// Income: lease payments, verifier pay, emission, slash rewards, USD.
    pub income_usd: f64,
    /// Of which emission.
    pub emission_usd: f64,
    /// Spent on their own leases (wash traders), USD.
    pub self_dealing_usd: f64,
    /// Electricity, USD.
    pub electricity_usd: f64,
    /// Stake lost to slashes, USD.
    pub slashed_usd: f64,
    /// Stake burned for missed or failed hardware challenges, USD.
    pub docked_usd: f64,
    /// Hardware challenges missed, failed or answered below the claim.
    pub challenges_failed: u64,
    /// Income − self-dealing − electricity − slashed − docked, USD.
    pub profit_usd: f64,
    /// Per provider.
    pub profit_per_provider_usd: f64,
    /// Times caught (slashed).
    pub caught: u64,
    /// Leases it served (as provider).
    pub leases: u64,
}

/// Wall-clock measurements (not deterministic; kept out of [`Summary`]).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Timings {
    /// Per run.
    pub runs: Vec<RunTimings>,
    /// Peak resident memory of the process (VmHWM), MiB, when the OS reports it.
    pub peak_memory_mib: Option<f64>,
    /// Whole command, seconds.
    pub wall_s: f64,
}

/// One run's timings.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunTimings {
    /// `demand/emission`.
    pub run: String,
    /// Seconds for the whole run.
    pub wall_s: f64,
    /// Seconds to derive keys and build genesis.
    pub setup_s: f64,
    /// Per block.
    pub blocks: Vec<BlockTiming>,
    /// Router queries per step.
    pub router: Vec<RouterTiming>,
    /// Router probe queries (one per machine kind) as the index grew during registration.
    pub router_growth: Vec<RouterTiming>,
    /// Checks drawn: the ledger's verifier draw scans every provider.
    pub checks_drawn: u64,
}

/// One block.
#[derive(Clone, Debug, Serialize)]
pub struct BlockTiming {
    /// Height.
    pub height: u64,
    /// Step (−1: registration).
    pub step: i64,
    /// Providers registered in the ledger.
    pub providers: u64,
    /// Transactions.
    pub txs: u64,
    /// `execute_block`, ms (transactions, end of block, invariant).
    pub execute_ms: f64,
    /// `State::commit`, ms (the state root).
    pub commit_ms: f64,
}

/// Router queries of one step or probe.
#[derive(Clone, Debug, Serialize)]
pub struct RouterTiming {
    /// Step (−1: registration).
    pub step: i64,
    /// Offers in the index.
    pub offers: u64,
    /// Queries.
    pub queries: u64,
    /// Median, µs.
    pub median_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
}

/// Hardware challenges over a run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ChallengeCounts {
    /// Drawn by the ledger.
    pub drawn: u64,
    /// Answered, opened and passed.
    pub passed: u64,
    /// Missed, wrong or below the claim (docked unless already offline).
    pub failed: u64,
}
