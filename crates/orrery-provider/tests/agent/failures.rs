//! Jobs that fail by themselves, played by real agents against a real ledger: the agent runs a
//! looping job once, commits a failure claim and is paid for the fuel it burned, never docked;
//! a verifier that fails the same way agrees; a dispute about a failing job is won by the
//! honest side, whichever it is.

use super::*;
use orrery_ledger::entries::Lease;
use orrery_provider::job::JobError;
use orrery_provider::runner::RunJobError;
use orrery_types::workload::{FailedAt, FailureReason, JobFailure, RunError};

/// Fuel per call of the looping jobs: small, so a loop runs out in milliseconds.
const FUEL: u64 = 20_000_000;

/// The devnet's case: a WASI command whose one step loops forever.
const LOOPING_COMMAND: &str =
    r#"(module (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))"#;

/// Pack `wat` as `orrery run-local --pack` does: `steps` steps of `entry`, `limits` as TOML.
fn pack(wat: &str, entry: &str, steps: u64, limits: &str) -> Bundle {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("job.wat"), wat).unwrap();
    let job = format!(
        "module = \"job.wat\"\nruntime = \"wasm\"\nsteps = {steps}\n[wasm]\nentry = \"{entry}\"\n\
         [limits]\n{limits}\n"
    );
    std::fs::write(dir.path().join("job.toml"), job).unwrap();
    orrery_exec::pack_job_file(&dir.path().join("job.toml")).unwrap()
}

fn looping_command() -> Bundle {
    pack(
        LOOPING_COMMAND,
        "command",
        1,
        &format!("fuel_per_step = {FUEL}"),
    )
}

/// The counter stepper of `steps` steps whose step `loop_at` loops forever.
fn looping_stepper(steps: u64, loop_at: u64) -> Bundle {
    let wat = COUNTER_WAT.replace(
        "(if (i32.ne (local.get $len) (i32.const 8)) (then unreachable))\n    (i64.store (i32.const 0) (i64.add",
        &format!(
            "(if (i64.eq (local.get $k) (i64.const {loop_at})) (then (loop $l (br $l))))\n    (i64.store (i32.const 0) (i64.add"
        ),
    );
    assert_ne!(wat, COUNTER_WAT, "the loop was put in");
    pack(&wat, "stepper", steps, &format!("fuel_per_step = {FUEL}"))
}

fn lease0(chain: &LedgerChain) -> Lease {
    chain.with(|n| n.state.lease(0).unwrap().clone())
}

fn timed_out(chain: &LedgerChain) -> usize {
    chain.count_events(|e| matches!(e, Event::LeaseTimedOut { .. }))
}

#[test]
fn a_looping_job_is_run_once_and_settles_as_a_failure_paid_for_its_fuel() {
    let data = tempfile::tempdir().unwrap();
    let chain = LedgerChain::new(3, Params::default());
    let mut agents = vec![worker(&chain, 1, data.path(), Cheat::None)];
    let bundle = looping_command();
    open_lease(&chain, &mut agents, &bundle, Verification::None);
    let provider = agents[0].account();
    let before = status_of(&chain, &provider).unwrap();
    let end = play(&chain, &mut agents);

    // Run once: the failure is a finished run, not an error to retry.
    let snapshot = agents[0].snapshot();
    assert_eq!(snapshot.runs_finished, 1, "{snapshot:?}");
    assert_eq!(snapshot.last_error, None);
    let LeaseState::Settled {
        failure,
        usage,
        paid,
        refunded,
        ..
    } = end
    else {
        panic!("the failure claim settles: {end:?}");
    };
    assert_eq!(
        failure,
        Some(JobFailure {
            at: FailedAt::Step(0),
            reason: FailureReason::OutOfFuel,
        })
    );
    // Billed the fuel the one step burned, at the agreed price, and nothing more.
    assert_eq!(usage.units, FUEL);
    let lease = lease0(&chain);
    let cost = lease
        .terms
        .prices
        .cost(&lease.terms.resources, &usage)
        .unwrap();
    assert_eq!(paid, cost);
    let escrow = lease.terms.max_cost().unwrap();
    assert_eq!(refunded, escrow.checked_sub(cost).unwrap());
    let requester = chain.with(|n| n.state.account(&Keypair::from_seed(0).account()).balance);
    assert_eq!(requester, ledger::START_BALANCE.checked_sub(cost).unwrap());
    // Paid, not docked, no mark against it.
    let after = status_of(&chain, &provider).unwrap();
    let fee = cost.bps(Params::default().fee_bps).unwrap();
    assert_eq!(
        after.balance,
        before
            .balance
            .checked_add(cost.checked_sub(fee).unwrap())
            .unwrap()
    );
    assert_eq!(after.stake, before.stake, "not docked");
    let r = after.reputation;
    assert_eq!((r.failed, r.slashed, r.timed_out), (0, 0, 0), "{r:?}");
    assert_eq!(r.settled, 1);
    assert_eq!(timed_out(&chain), 0);
    assert!(chain.slashed().is_empty());
    assert_eq!(chain.with(|n| n.refused.clone()), Vec::<String>::new());
    // The reveal told the requester why, in the runtime's words.
    let note = chain.with(|n| {
        n.events.iter().find_map(|e| match e {
            Event::ResultRevealed { note, .. } => Some(note.clone()),
            _ => None,
        })
    });
    assert!(
        note.as_ref().is_some_and(|n| n.contains("ran out of fuel")),
        "{note:?}"
    );
}

#[test]
fn a_verifier_that_fails_the_same_way_agrees_and_is_paid() {
    let data = tempfile::tempdir().unwrap();
    let chain = LedgerChain::new(4, Params::default());
    let mut agents = vec![
        worker(&chain, 1, data.path(), Cheat::None),
        worker(&chain, 2, data.path(), Cheat::None),
    ];
    let ids: Vec<AccountId> = agents.iter().map(|a| a.account()).collect();
    open_lease(
        &chain,
        &mut agents,
        &looping_stepper(8, 3),
        Verification::Redundant { k: 2 },
    );
    let end = play(&chain, &mut agents);
    assert!(
        matches!(end, LeaseState::Settled { failure: Some(f), .. } if f.at == FailedAt::Step(3)),
        "{end:?}"
    );
    assert!(chain.slashed().is_empty());
    assert!(disputes(&chain).is_empty());
    for a in &agents {
        assert_eq!(a.snapshot().runs_finished, 1, "each ran the job once");
    }
    let provider = status_of(&chain, &ids[0]).unwrap();
    assert_eq!(provider.reputation.checked, 1);
    assert!(provider.earned > Amount::ZERO);
    let verifier = chain.with(|n| n.state.provider(&ids[1]).unwrap().earned);
    assert_eq!(
        verifier, provider.earned,
        "the verifier is paid what the provider is"
    );
    assert_eq!(chain.with(|n| n.refused.clone()), Vec::<String>::new());
}

#[test]
fn a_dispute_over_a_failing_job_is_won_by_the_honest_side() {
    // Step 5 of 8 loops; a cheater skips step 4, so its leaf 5 is wrong while it still
    // fails at step 5: the referee re-executes step 4 from the agreed state 4.
    for (provider, verifier) in [
        (Cheat::None, Cheat::SkipStep),
        (Cheat::SkipStep, Cheat::None),
    ] {
        let data = tempfile::tempdir().unwrap();
        let chain = LedgerChain::new(4, Params::default());
        let mut agents = vec![
            worker(&chain, 1, data.path(), provider),
            worker(&chain, 2, data.path(), verifier),
        ];
        let ids: Vec<AccountId> = agents.iter().map(|a| a.account()).collect();
        open_lease(
            &chain,
            &mut agents,
            &looping_stepper(8, 5),
            Verification::Redundant { k: 2 },
        );
        let end = play(&chain, &mut agents);
        assert_eq!(disputes(&chain), vec![DisputeKind::Checkpoints]);
        if provider == Cheat::None {
            assert_eq!(chain.slashed(), vec![ids[1]]);
            assert!(
                matches!(
                    end,
                    LeaseState::Settled {
                        failure: Some(_),
                        ..
                    }
                ),
                "{end:?}"
            );
            let r = status_of(&chain, &ids[0]).unwrap().reputation;
            assert_eq!((r.failed, r.slashed, r.timed_out), (0, 0, 0));
        } else {
            assert_eq!(chain.slashed(), vec![ids[0]]);
            assert!(matches!(end, LeaseState::Failed { .. }), "{end:?}");
        }
        assert_eq!(timed_out(&chain), 0);
    }
}

#[test]
fn a_failed_run_is_recorded_once_and_replays_its_failure_for_the_referee() {
    let runtime = orrery_exec::Runtime::new().unwrap();
    let data = tempfile::tempdir().unwrap();
    let store = Store::open(data.path()).unwrap();
    let dir = store.lease(0);
    let no = AtomicBool::new(false);
    let bundle = looping_stepper(6, 2);
    let RunEnd::Finished(outcome) =
        run_job(&runtime, &bundle, &dir, settings(Cheat::None), &no).unwrap()
    else {
        panic!("stopped");
    };
    let failure = outcome.claim.failure.expect("a failure claim");
    assert_eq!(failure.at, FailedAt::Step(2));
    assert_eq!(outcome.claim.output, orrery_types::hash::Hash::ZERO);
    // Three real checkpoints, then the marker up to leaf 6.
    assert_eq!(outcome.checkpoints.len(), 7);
    assert!(
        outcome.checkpoints[3..]
            .iter()
            .all(|l| *l == failure.marker())
    );
    assert_eq!(
        checkpoint_root(&outcome.checkpoints),
        outcome.claim.checkpoint_root
    );
    assert!(
        outcome.units > FUEL,
        "the failed step's whole fuel is billed"
    );
    assert!(outcome.note.contains("ran out of fuel"), "{}", outcome.note);
    assert!(dir.output().is_none(), "a failure has no output");
    // Recorded: asking again returns it without running (a second run would take as long).
    let again = run_job(&runtime, &bundle, &dir, settings(Cheat::None), &no).unwrap();
    assert_eq!(again, RunEnd::Finished(outcome.clone()));
    // The referee's input: a real state before the failure, the failure's encoding after.
    let (_, s2) = replay_state(&runtime, &bundle, &dir, settings(Cheat::None), 2, &no)
        .unwrap()
        .unwrap();
    assert_eq!(s2, 2u64.to_le_bytes());
    for k in [3, 6] {
        let (_, input) = replay_state(&runtime, &bundle, &dir, settings(Cheat::None), k, &no)
            .unwrap()
            .unwrap();
        assert_eq!(input, orrery_types::codec::encode(&failure));
    }
}

#[test]
fn a_wall_clock_timeout_is_no_result_and_is_not_recorded() {
    let runtime = orrery_exec::Runtime::new().unwrap();
    let data = tempfile::tempdir().unwrap();
    let dir = Store::open(data.path()).unwrap().lease(0);
    let limits = format!(
        "fuel_per_step = {}\nwall_time_ms = 50",
        orrery_exec::limits::MAX_FUEL_PER_STEP
    );
    let bundle = pack(LOOPING_COMMAND, "command", 1, &limits);
    let err = run_job(
        &runtime,
        &bundle,
        &dir,
        settings(Cheat::None),
        &AtomicBool::new(false),
    )
    .unwrap_err();
    assert!(
        matches!(
            &err,
            RunJobError::Run(RunError::Workload {
                source: JobError::Exec(orrery_exec::ExecError::TimedOut { .. }),
                ..
            })
        ),
        "{err:?}"
    );
    assert!(
        dir.outcome().is_none(),
        "a timeout never becomes a failure claim"
    );
}

#[test]
fn bytes_that_are_no_bundle_are_a_failure_at_init_not_a_no_show() {
    let data = tempfile::tempdir().unwrap();
    let chain = LedgerChain::new(4, Params::default());
    let mut agents = vec![
        worker(&chain, 1, data.path(), Cheat::None),
        worker(&chain, 2, data.path(), Cheat::None),
    ];
    let ids: Vec<AccountId> = agents.iter().map(|a| a.account()).collect();
    rounds(&chain, &mut agents, 2);
    // The requester leases bytes that decode as nothing.
    let junk = b"leased, but not a bundle".to_vec();
    let job = orrery_types::hash::Hash::of(&junk);
    chain.with(|n| n.blobs.insert(job, junk));
    let height = chain.with(|n| n.state.height());
    chain.submit_from(
        &Keypair::from_seed(0),
        TxBody::OpenLease {
            provider: ids[0],
            job,
            terms: terms(),
            deadline: height + 300,
            verification: Verification::Redundant { k: 2 },
        },
    );
    chain.block();
    let before = status_of(&chain, &ids[0]).unwrap();
    let end = play(&chain, &mut agents);
    let LeaseState::Settled { failure, usage, .. } = end else {
        panic!("settled as a failure claim: {end:?}");
    };
    assert_eq!(
        failure,
        Some(JobFailure {
            at: FailedAt::Init,
            reason: FailureReason::InvalidJob,
        })
    );
    assert_eq!(usage.units, 0, "nothing ran, nothing is billed for work");
    assert!(chain.slashed().is_empty());
    assert_eq!(timed_out(&chain), 0, "started and answered, not a no-show");
    let after = status_of(&chain, &ids[0]).unwrap();
    assert_eq!(after.stake, before.stake);
    assert_eq!(after.reputation.checked, 1, "the verifier agreed");
    assert_eq!(chain.with(|n| n.refused.clone()), Vec::<String>::new());
}
