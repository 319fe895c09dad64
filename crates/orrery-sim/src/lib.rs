//! `orrery sim`: Orrery's economy, simulated on the real ledger and the real router.
//!
//! # What it answers
//!
//! Does demand for compute shrink the token supply through burns? Do providers earn more than
//! their electricity? Does any kind of cheating pay? `docs/economics.md` derives the answers;
//! this crate runs them, at up to a million providers, and writes a JSON summary and plots.
//!
//! # The model (and what is abstracted)
//!
//! - **Time.** Simulated time advances in *steps* of `step_hours` (6 by default). A step is a
//!   fixed number of blocks (enough for the step's busiest transactions; see
//!   [`engine::blocks_per_step`]); the first block of a step advances block time by the step,
//!   the others keep it. So one simulated block stands for many chain blocks: windows that the
//!   ledger counts in blocks (reveal, dispute rounds, unbonding) last longer in simulated time
//!   than on a 200 ms chain. Honest parties always act in the next block, so only deliberate
//!   no-shows ever reach a deadline.
//! - **Emission.** The ledger's schedule (1,000 ORR per epoch, halving after 8,760 epochs) is
//!   read as one epoch per simulated hour (8,760 hours = a year). A simulated epoch is one
//!   step: `epoch_blocks = blocks_per_step`, `emission_initial = 1,000 ORR × step_hours`,
//!   `emission_halving_epochs = 8,760 / step_hours` ([`engine::params`]).
//! - **Leases.** A job rents a whole machine for whole steps. Every lease goes through the
//!   ledger's real transactions: `OpenLease` (escrow), `StartLease`, `CommitResult` (sealed),
//!   the draw at the start of the next block, `CommitCheck`/`RevealResult` by the drawn
//!   verifier and the provider, `SettleLease`; a wrong result opens a real bisection dispute,
//!   the honest verifier makes its move, the cheater does not, and the ledger slashes it at the
//!   round deadline. Checkpoint trees are two leaves (the dispute narrows in one round).
//! - **Routing.** Requesters' orders are routed by `orrery_market::OfferIndex::rank` over every
//!   idle provider's offer as the ledger records it (stake, reputation, prices); a leased
//!   machine leaves the index until its result is committed.
//! - **Signatures.** By default transactions carry a placeholder signature and blocks are
//!   applied with `Signatures::PreVerified` — the path a node takes after batch-verifying a
//!   block. `sign_transactions = true` signs and verifies every transaction (small runs).
//! - **Verifier work** is paid as the ledger pays it but not charged electricity or machine
//!   time; verifiers are always honest.
//! - **Hardware challenges.** The ledger draws `challenges.max_per_step`-capped providers at
//!   the first block of each step (`challenge_every_blocks = blocks_per_step`), so that a draw
//!   and its answer fall in one step's block time; honest providers answer in the next block
//!   and open in the one after ([`challenge`] says how the simulator answers without doing
//!   the whole product); spoofers never answer in time and are missed.
//!
//! # Invariants
//!
//! Every block runs the ledger's supply check (and, in debug builds, its full audit); the full
//! audit also runs after every simulated day and at the end. A refused block stops the run.
//! Refused transactions are counted by reason in the summary: a correct run has none. (A
//! requester routed to a provider that is docked or slashed before its `OpenLease` is sent
//! withdraws the order, as a client that reads the chain before sending would.)
//!
//! # What it never does
//!
//! No sockets, no threads, no clock in what it reports: the [`Summary`] is a pure function of
//! the scenario, size, seed and choices, byte for byte. Wall-clock measurements go to
//! [`Timings`] only.

pub mod challenge;
pub mod engine;
pub mod plots;
pub mod population;
pub mod rng;
pub mod scenario;
pub mod summary;

pub use engine::{Engine, Progress, RunConfig, SimError};
pub use scenario::{DEFAULT_SCENARIO, Scenario, ScenarioError};
pub use summary::{DemandShape, EmissionMode, Summary, Timings};

use std::time::Instant;

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Providers at the start.
    pub providers: u32,
    /// Simulated days.
    pub days: u32,
    /// Seed.
    pub seed: u64,
    /// Demand shapes to run.
    pub demands: Vec<DemandShape>,
    /// Emission rules to run (each with every demand shape).
    pub emissions: Vec<EmissionMode>,
}

/// Run every (demand, emission) pair in order. `progress` gets the run's label and its progress.
pub fn simulate(
    sc: &Scenario,
    cfg: &SimConfig,
    progress: &mut dyn FnMut(&str, &Progress),
) -> Result<(Summary, Timings), SimError> {
    let start = Instant::now();
    let mut runs = Vec::new();
    let mut timings = Timings::default();
    let mut blocks_per_step = 0;
    for &emission in &cfg.emissions {
        for &demand in &cfg.demands {
            let run = RunConfig {
                providers: cfg.providers,
                days: cfg.days,
                seed: cfg.seed,
                demand,
                emission,
            };
            let label = format!("{}/{}", demand.name(), emission.name());
            let engine = Engine::new(sc, run)?;
            blocks_per_step = blocks_per_step.max(engine.blocks_per_step());
            let (summary, t) = engine.run(&mut |p| progress(&label, p))?;
            runs.push(summary);
            timings.runs.push(t);
        }
    }
    timings.wall_s = start.elapsed().as_secs_f64();
    timings.peak_memory_mib = peak_memory_mib();
    let summary = Summary {
        providers: cfg.providers,
        days: cfg.days,
        seed: cfg.seed,
        scenario: sc.clone(),
        model: summary::ModelNotes {
            step_hours: sc.step_hours,
            blocks_per_step,
            emission_per_step_orr: engine::params(sc, blocks_per_step, 1, EmissionMode::Fixed)
                .emission_initial
                .units() as f64
                / 1e9,
            signed: sc.sign_transactions,
        },
        runs,
    };
    Ok((summary, timings))
}

/// The process's peak resident memory (`VmHWM` in `/proc/self/status`), MiB.
pub fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The summary as pretty JSON (the bytes that must not change for a seed).
pub fn summary_json(summary: &Summary) -> String {
    serde_json::to_string_pretty(summary).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
