//! The swarm: whole validators — consensus, mempool, gossip, ledger and its storage — inside
//! commonware's deterministic runtime, driven by one seed each.
//!
//! A seed draws the committee (4–7 validators, fewer than a third Byzantine: silent, one of
//! commonware's simplex vote mocks, or a proposer whose every block is corrupted — the mock
//! actor in `../common/proposer.rs`), the links (latency, jitter, loss), faults that heal
//! (partitions, bad links, crashes with restarts, disks that die in the middle of a write and
//! lose or tear what was not synced), and a load: transfers (with forged and far-future ones)
//! and leases played through the ledger's real transactions — bonding, opening, the seed's
//! draw of checkers, sealed commitments and reveals, and disputes of lying providers (see
//! `leases.rs`). See `plan.rs` for the draw, `disk.rs` for the disk model and `sim.rs` for the
//! run.
//!
//! Every seed asserts:
//! - no two validators finalize different blocks at a height, and none finalizes a block a
//!   Byzantine proposer corrupted;
//! - equal state roots at equal heights, and the supply invariant after every block;
//! - once every fault has healed, every honest validator finalizes new blocks;
//! - and a replayed seed gives the same auditor state (see [`a_seed_replays_exactly`]).
//!
//! # Running
//! - CI: `cargo nextest run -p orrery-chain --test swarm` runs [`swarm_sweep`] over
//!   [`CI_SEEDS`] seeds.
//! - One seed: `ORRERY_SWARM_SEED=<seed> cargo nextest run -p orrery-chain --test swarm
//!   swarm_sweep --no-capture`.
//! - A long sweep: `ORRERY_SWARM_FIRST=1000 ORRERY_SWARM_SEEDS=10000 cargo test --release -p
//!   orrery-chain --test swarm swarm_sweep -- --nocapture` (plain `cargo test`: nextest's
//!   slow-test limit would stop it after ten minutes); it prints each failing seed with the
//!   command that replays it, the count line every [`PROGRESS_EVERY`] seeds and at the end. `ORRERY_SWARM_MINUTES` stops taking new seeds after that long,
//!   `ORRERY_SWARM_THREADS` sets the worker threads (default: every core).

#[path = "../common/mod.rs"]
mod common;
mod disk;
mod leases;
mod plan;
mod sim;

use plan::Plan;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A long sweep reports its progress every this many seeds.
const PROGRESS_EVERY: u64 = 100;

/// Seeds CI sweeps, in the test profile on two cores. (Seed 15 once cost ≈ 500 s of CPU: two
/// linked vote mocks answered each other's votes without end; see `Plan::vote_mocks`.)
const CI_SEEDS: u64 = 16;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
    })
}

fn replay_command(seed: u64) -> String {
    format!(
        "ORRERY_SWARM_SEED={seed} cargo nextest run -p orrery-chain --test swarm swarm_sweep --no-capture"
    )
}

/// Totals over a sweep.
#[derive(Default)]
struct Totals {
    seeds: AtomicU64,
    blocks: AtomicU64,
    txs: AtomicU64,
    faults: AtomicU64,
    restarts: AtomicU64,
    failed_starts: AtomicU64,
    disk_crashes: AtomicU64,
    lost_ops: AtomicU64,
    torn: AtomicU64,
    byzantine: AtomicU64,
    lies: AtomicU64,
    leases: AtomicU64,
    checked: AtomicU64,
    disputed: AtomicU64,
    settled: AtomicU64,
    failed: AtomicU64,
    timed_out: AtomicU64,
}

impl Totals {
    /// The count line: seeds, faults injected, blocks finalized and what the load did.
    fn line(&self, failed: usize, elapsed: Duration) -> String {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "{} passed, {failed} failed in {:.1} s; {} blocks finalized ({} transactions); \
             faults injected: {} (partitions, bad links, crashes, disk deaths), {} restarts ({} \
             failed starts on a dying disk), {} disk power cuts losing {} unsynced writes ({} torn); {} Byzantine validators ({} \
             corrupted proposals refused); {} leases opened, {} checked, {} disputed, {} \
             settled, {} failed, {} timed out",
            get(&self.seeds),
            elapsed.as_secs_f64(),
            get(&self.blocks),
            get(&self.txs),
            get(&self.faults),
            get(&self.restarts),
            get(&self.failed_starts),
            get(&self.disk_crashes),
            get(&self.lost_ops),
            get(&self.torn),
            get(&self.byzantine),
            get(&self.lies),
            get(&self.leases),
            get(&self.checked),
            get(&self.disputed),
            get(&self.settled),
            get(&self.failed),
            get(&self.timed_out),
        )
    }
}

/// Run `seeds` on every core (or `ORRERY_SWARM_THREADS`), taking no new seed once
/// `ORRERY_SWARM_MINUTES` have passed; returns the failing seeds with their panic message.
fn sweep(seeds: Vec<u64>, totals: &Totals) -> Vec<(u64, String)> {
    let next = Mutex::new(seeds.into_iter());
    let failures = Mutex::new(Vec::new());
    let workers = env_u64("ORRERY_SWARM_THREADS").map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        |n| n.max(1) as usize,
    );
    let budget = env_u64("ORRERY_SWARM_MINUTES").map(|m| Duration::from_secs(m * 60));
    let started = Instant::now();
    let done = AtomicU64::new(0);
    let verbose = env_u64("ORRERY_SWARM_SEED").is_some();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    if budget.is_some_and(|b| started.elapsed() > b) {
                        return;
                    }
                    let Some(seed) = next.lock().unwrap().next() else {
                        return;
                    };
                    let plan = Plan::draw(seed);
                    match catch_unwind(AssertUnwindSafe(|| sim::run(&plan))) {
                        Ok(o) => {
                            totals.seeds.fetch_add(1, Ordering::Relaxed);
                            totals.blocks.fetch_add(o.blocks, Ordering::Relaxed);
                            totals.txs.fetch_add(o.txs, Ordering::Relaxed);
                            totals.faults.fetch_add(o.faults, Ordering::Relaxed);
                            totals.restarts.fetch_add(o.restarts, Ordering::Relaxed);
                            totals
                                .failed_starts
                                .fetch_add(o.failed_starts, Ordering::Relaxed);
                            totals
                                .disk_crashes
                                .fetch_add(o.disk.crashes, Ordering::Relaxed);
                            totals
                                .lost_ops
                                .fetch_add(o.disk.lost_ops, Ordering::Relaxed);
                            totals.torn.fetch_add(o.disk.torn_writes, Ordering::Relaxed);
                            totals
                                .byzantine
                                .fetch_add(plan.byzantine.len() as u64, Ordering::Relaxed);
                            totals.lies.fetch_add(o.lies, Ordering::Relaxed);
                            let l = o.leases;
                            totals.leases.fetch_add(l.opened, Ordering::Relaxed);
                            totals.checked.fetch_add(l.checked, Ordering::Relaxed);
                            totals.disputed.fetch_add(l.disputed, Ordering::Relaxed);
                            totals.settled.fetch_add(l.settled, Ordering::Relaxed);
                            totals.failed.fetch_add(l.failed, Ordering::Relaxed);
                            totals.timed_out.fetch_add(l.timed_out, Ordering::Relaxed);
                            if verbose {
                                eprintln!(
                                    "swarm: seed {seed}: {} blocks, {} txs, {} faults, {} \
                                     restarts, {} lies, {:?}",
                                    o.blocks, o.txs, o.faults, o.restarts, o.lies, o.leases
                                );
                            }
                        }
                        Err(panic) => {
                            let message = panic
                                .downcast_ref::<String>()
                                .cloned()
                                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                                .unwrap_or_else(|| "panic".into());
                            eprintln!(
                                "swarm: seed {seed} FAILED: {message}\n  validators: {}, \
                                 Byzantine: {:?}, faults: {:?}\n  replay: {}",
                                plan.validators,
                                plan.byzantine,
                                plan.faults,
                                replay_command(seed)
                            );
                            failures.lock().unwrap().push((seed, message));
                        }
                    }
                    let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
                    if finished.is_multiple_of(PROGRESS_EVERY) {
                        let failed = failures.lock().unwrap().len();
                        eprintln!(
                            "swarm: progress (up to seed {seed}): {}",
                            totals.line(failed, started.elapsed())
                        );
                    }
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    failures.sort();
    failures
}

/// The sweep: [`CI_SEEDS`] seeds by default, `ORRERY_SWARM_SEEDS` seeds from
/// `ORRERY_SWARM_FIRST` when set, or the one seed `ORRERY_SWARM_SEED`.
#[test]
fn swarm_sweep() {
    let seeds: Vec<u64> = match env_u64("ORRERY_SWARM_SEED") {
        Some(seed) => {
            println!("swarm: seed {seed}: {:#?}", Plan::draw(seed));
            vec![seed]
        }
        None => {
            let first = env_u64("ORRERY_SWARM_FIRST").unwrap_or(0);
            let count = env_u64("ORRERY_SWARM_SEEDS").unwrap_or(CI_SEEDS);
            (first..first + count).collect()
        }
    };
    // One line per panic: the sweep reports each failing seed itself, with its replay command.
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| l.to_string()).unwrap_or_default();
        eprintln!("swarm: panic at {location}");
    }));
    let totals = Totals::default();
    let started = Instant::now();
    let first = seeds[0];
    let failures = sweep(seeds, &totals);
    println!(
        "swarm: seeds from {first}: {}",
        totals.line(failures.len(), started.elapsed())
    );
    for (seed, message) in &failures {
        println!(
            "swarm: FAILED seed {seed}: {}\n  replay: {}",
            message.lines().next().unwrap_or(""),
            replay_command(*seed)
        );
    }
    assert!(failures.is_empty(), "{} seeds failed", failures.len());
}

/// The same seed gives the same run: the runtime's auditor (every message, task and storage
/// operation, hashed) ends in the same state, and so does everything the sweep counts.
#[test]
fn a_seed_replays_exactly() {
    for seed in [7, 1_000_003] {
        let plan = Plan::draw(seed);
        let a = sim::run(&plan);
        let b = sim::run(&plan);
        assert_eq!(a.auditor, b.auditor, "seed {seed} does not replay");
        assert_eq!((a.blocks, a.txs, a.restarts), (b.blocks, b.txs, b.restarts));
    }
}
