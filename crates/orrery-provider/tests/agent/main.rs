//! The provider agent against a real ledger: honest agents settle without slashes; cheating
//! agents (as provider or as verifier) lose their disputes to honest ones; jobs (wasm and ML)
//! resume from saved snapshots with the same checkpoint root; the agent stops gracefully.

mod challenges;
mod failures;
mod gpu;
mod inference;
mod ledger;

use ledger::LedgerChain;
use orrery_exec::{Bundle, Manifest, RuntimeKind};
use orrery_ledger::entries::{DisputeKind, LeaseState};
use orrery_ledger::{Event, Params};
use orrery_provider::config::{Cheat, ProviderConfig};
use orrery_provider::outbox::RESEND_AFTER_BLOCKS;
use orrery_provider::runner::{RunEnd, RunSettings, replay_state, run_job, state_at};
use orrery_provider::store::{Progress, Store};
use orrery_provider::{Agent, Worker, status_of};
use orrery_types::amount::Amount;
use orrery_types::crypto::{AccountId, Keypair};
use orrery_types::resources::{Hardware, PriceList, ResourceRequest};
use orrery_types::tx::{LeaseTerms, TxBody, Verification};
use orrery_types::workload::{Start, checkpoint_root, checkpoint_root as checkpoint_root_of, run};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

const COUNTER_WAT: &str = include_str!("../../../../workloads/wasm/counter/counter.wat");

/// The counter stepper (`state_k = k`, output `3n`) with `steps` steps, packed from files the
/// way `orrery run-local --pack` does.
fn counter_bundle(steps: u64) -> Bundle {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("counter.wat"), COUNTER_WAT).unwrap();
    let job = format!(
        "module = \"counter.wat\"\nruntime = \"wasm\"\nsteps = {steps}\n[wasm]\nentry = \"stepper\"\n"
    );
    std::fs::write(dir.path().join("job.toml"), job).unwrap();
    orrery_exec::pack_job_file(&dir.path().join("job.toml")).unwrap()
}

/// A small ML training bundle (spirals MLP) with `steps` steps.
fn ml_bundle(steps: u64) -> Bundle {
    let ml = format!(
        r#"
task = "train"
[spec]
seed = 1
steps = {steps}
batch_size = 16
[spec.model]
kind = "mlp"
inputs = 2
hidden = [8]
classes = 3
activation = "relu"
[spec.data]
kind = "spirals"
classes = 3
points_per_class = 40
noise = 0.05
seed = 7
[spec.optimizer]
kind = "adamw"
lr = 0.01
"#
    );
    let manifest = Manifest {
        runtime: RuntimeKind::Ml,
        name: Some("spirals-tiny".into()),
        steps,
        inputs: vec![],
        wasm: None,
        ml: Some(toml::from_str(&ml).unwrap()),
        limits: Default::default(),
    };
    Bundle::new(manifest, Vec::new(), BTreeMap::new()).unwrap()
}

fn hardware() -> Hardware {
    Hardware {
        gpu: None,
        cpu_cores: 16,
        ram_gib: 64,
    }
}

fn prices() -> PriceList {
    PriceList {
        gpu_hour: Amount::ZERO,
        cpu_core_hour: "0.01".parse().unwrap(),
        ram_gib_hour: Amount::ZERO,
        mega_unit: "0.001".parse().unwrap(),
    }
}

fn config(seed: u64, data: &std::path::Path, cheat: Cheat) -> ProviderConfig {
    let stake = Params::default().min_stake(&hardware()).unwrap();
    ProviderConfig {
        node: "http://unused".into(),
        fallback_nodes: Vec::new(),
        key_file: None,
        key_seed: Some(seed),
        data_dir: data.join(format!("agent-{seed}")),
        region: "eu-west".into(),
        endpoint: "http://127.0.0.1:7100".into(),
        prices: prices(),
        stake: Some(stake),
        hardware: Some(hardware()),
        verifier: true,
        cheat,
        poll_interval_ms: 50,
        save_every_steps: 4,
        threads: 1,
        ml_gpu: false,
        max_job_runs: 1,
        max_verify_runs: 1,
        serve: None,
        cluster: None,
    }
}

fn worker(
    chain: &LedgerChain,
    seed: u64,
    data: &std::path::Path,
    cheat: Cheat,
) -> Worker<LedgerChain> {
    let cfg = config(seed, data, cheat);
    let offer = cfg.offer(hardware()).unwrap();
    Worker::new(&cfg, offer, chain.clone(), Arc::new(AtomicBool::new(false))).unwrap()
}

fn terms() -> LeaseTerms {
    LeaseTerms {
        resources: ResourceRequest {
            gpus: 0,
            cpu_cores: 2,
            ram_gib: 8,
        },
        prices: prices(),
        max_seconds: 3_600,
        max_units: 100_000_000,
    }
}

/// Tick every agent, let the runs it started finish, and make a block, `n` times: every block
/// sees each run finished (the chain waits for the agents, so the games are deterministic).
fn rounds(chain: &LedgerChain, agents: &mut [Worker<LedgerChain>], n: usize) {
    for _ in 0..n {
        for a in agents.iter_mut() {
            a.tick().unwrap();
            assert!(a.wait_for_runs(std::time::Duration::from_secs(120)));
        }
        chain.block();
    }
}

/// Register and bond every agent, then open lease 0 from account 0 with agents[0] as provider.
fn open_lease(
    chain: &LedgerChain,
    agents: &mut [Worker<LedgerChain>],
    bundle: &Bundle,
    verification: Verification,
) {
    rounds(chain, agents, 2);
    for a in agents.iter() {
        let p = chain
            .with(|n| n.state.provider(&a.account()).cloned())
            .expect("registered");
        assert_eq!(
            p.stake,
            Params::default().min_stake(&hardware()).unwrap(),
            "bonded"
        );
    }
    chain.put_bundle(bundle);
    let height = chain.with(|n| n.state.height());
    chain.submit_from(
        &Keypair::from_seed(0),
        TxBody::OpenLease {
            provider: agents[0].account(),
            job: bundle.hash(),
            terms: terms(),
            deadline: height + 300,
            verification,
        },
    );
    chain.block();
    assert!(
        chain.with(|n| n.state.lease(0).is_some()),
        "lease opened: {:?}",
        chain.with(|n| n.refused.clone())
    );
}

/// Play until lease 0 is final; returns its final state.
fn play(chain: &LedgerChain, agents: &mut [Worker<LedgerChain>]) -> LeaseState {
    for _ in 0..400 {
        let state = chain.with(|n| n.state.lease(0).unwrap().state.clone());
        if !state.is_active() {
            return state;
        }
        rounds(chain, agents, 1);
    }
    panic!(
        "lease 0 did not finish: {:?}",
        chain.with(|n| n.state.lease(0).unwrap().state.clone())
    );
}

fn game(provider: Cheat, verifier: Cheat, steps: u64) -> (LedgerChain, Vec<AccountId>, LeaseState) {
    let data = tempfile::tempdir().unwrap();
    let chain = LedgerChain::new(4, Params::default());
    let mut agents = vec![
        worker(&chain, 1, data.path(), provider),
        worker(&chain, 2, data.path(), verifier),
    ];
    let ids = agents.iter().map(|a| a.account()).collect();
    open_lease(
        &chain,
        &mut agents,
        &counter_bundle(steps),
        Verification::Redundant { k: 2 },
    );
    let end = play(&chain, &mut agents);
    (chain, ids, end)
}

fn disputes(chain: &LedgerChain) -> Vec<DisputeKind> {
    chain.with(|n| {
        n.events
            .iter()
            .filter_map(|e| match e {
                Event::DisputeOpened { kind, .. } => Some(*kind),
                _ => None,
            })
            .collect()
    })
}

#[test]
fn honest_provider_and_verifier_settle_without_slashing() {
    let (chain, ids, end) = game(Cheat::None, Cheat::None, 12);
    assert!(matches!(end, LeaseState::Settled { .. }), "{end:?}");
    assert!(chain.slashed().is_empty());
    assert!(disputes(&chain).is_empty());
    // The verifier really checked, and both were paid.
    let status = status_of(&chain, &ids[0]).unwrap();
    assert_eq!(status.reputation.checked, 1);
    assert!(status.earned > Amount::ZERO);
    assert_eq!(status.leases_by_state.get("settled"), Some(&1));
    let verifier = chain.with(|n| n.state.provider(&ids[1]).unwrap().earned);
    assert!(verifier > Amount::ZERO);
    // Nothing the agents sent was refused, and their folders for the final lease are gone.
    assert_eq!(chain.with(|n| n.refused.clone()), Vec::<String>::new());
}

#[test]
fn cheating_provider_that_skips_a_step_loses_the_bisection() {
    let (chain, ids, end) = game(Cheat::SkipStep, Cheat::None, 20);
    assert!(matches!(end, LeaseState::Failed { .. }), "{end:?}");
    assert_eq!(chain.slashed(), vec![ids[0]]);
    assert_eq!(disputes(&chain), vec![DisputeKind::Checkpoints]);
    // Bisected to one step, which the referee executed.
    assert!(chain.count_events(|e| matches!(e, Event::DisputeNarrowed { .. })) >= 4);
    assert_eq!(
        chain.count_events(|e| matches!(e, Event::RefereeRuled { .. })),
        1
    );
}

#[test]
fn cheating_verifier_loses_to_an_honest_provider() {
    let (chain, ids, end) = game(Cheat::None, Cheat::SkipStep, 9);
    assert!(matches!(end, LeaseState::Settled { .. }), "{end:?}");
    assert_eq!(chain.slashed(), vec![ids[1]]);
    assert_eq!(
        chain.count_events(|e| matches!(e, Event::RefereeRuled { .. })),
        1
    );
}

#[test]
fn wrong_output_is_caught_by_the_output_referee() {
    let (chain, ids, end) = game(Cheat::WrongOutput, Cheat::None, 5);
    assert!(matches!(end, LeaseState::Failed { .. }), "{end:?}");
    assert_eq!(chain.slashed(), vec![ids[0]]);
    assert_eq!(disputes(&chain), vec![DisputeKind::Output]);
}

#[test]
fn unchecked_lease_is_committed_and_revealed_with_bounded_usage() {
    let data = tempfile::tempdir().unwrap();
    let chain = LedgerChain::new(3, Params::default());
    let mut agents = vec![worker(&chain, 1, data.path(), Cheat::None)];
    open_lease(&chain, &mut agents, &counter_bundle(7), Verification::None);
    for _ in 0..20 {
        if matches!(
            chain.with(|n| n.state.lease(0).unwrap().state.clone()),
            LeaseState::Committed { .. }
        ) {
            break;
        }
        rounds(&chain, &mut agents, 1);
    }
    let LeaseState::Committed { usage, output, .. } =
        chain.with(|n| n.state.lease(0).unwrap().state.clone())
    else {
        panic!("not committed");
    };
    // The output is published under its hash, and usage never exceeds what the chain saw.
    assert!(chain.with(|n| n.blobs.contains_key(&output)));
    assert!(usage.units > 0 && usage.seconds <= 3);
    assert_eq!(chain.with(|n| n.refused.clone()), Vec::<String>::new());
}

fn settings(cheat: Cheat) -> RunSettings {
    RunSettings {
        cheat,
        threads: 1,
        save_every: 3,
    }
}

#[test]
fn wasm_and_ml_runs_resume_from_a_saved_snapshot_with_the_same_root() {
    let runtime = orrery_exec::Runtime::new().unwrap();
    let data = tempfile::tempdir().unwrap();
    let store = Store::open(data.path()).unwrap();
    let no = AtomicBool::new(false);
    for (i, bundle) in [counter_bundle(25), ml_bundle(12)].iter().enumerate() {
        let id = i as u64 * 10;
        let RunEnd::Finished(whole) = run_job(
            &runtime,
            bundle,
            &store.lease(id),
            settings(Cheat::None),
            &no,
        )
        .unwrap() else {
            panic!("stopped");
        };
        assert_eq!(whole.claim.steps, bundle.manifest().steps);
        // A run interrupted at step 5, its snapshot saved as the agent does...
        let dir = store.lease(id + 1);
        let mut job = orrery_provider::job::load(&runtime, bundle, 1).unwrap();
        let mut cps = Vec::new();
        run(&mut job, Start::Fresh, |k, state, cost| {
            cps.push(orrery_types::workload::checkpoint(state));
            if k == 5 {
                dir.save_progress(
                    Progress {
                        k,
                        cost,
                        wall_ms: 0,
                    },
                    state,
                    &cps,
                )
                .unwrap();
                return false;
            }
            true
        })
        .unwrap();
        // ...resumes to the same claim and cost.
        let RunEnd::Finished(resumed) =
            run_job(&runtime, bundle, &dir, settings(Cheat::None), &no).unwrap()
        else {
            panic!("stopped");
        };
        assert_eq!(resumed.claim, whole.claim, "bundle {i}");
        assert_eq!(resumed.units, whole.units);
        assert_eq!(
            checkpoint_root(&resumed.checkpoints),
            whole.claim.checkpoint_root
        );
        // A stop request saves a snapshot and returns; the next run finishes it identically.
        let dir = store.lease(id + 2);
        let stop = AtomicBool::new(true);
        assert_eq!(
            run_job(&runtime, bundle, &dir, settings(Cheat::None), &stop).unwrap(),
            RunEnd::Stopped { k: 0 }
        );
        assert!(dir.progress().is_some());
        let RunEnd::Finished(again) =
            run_job(&runtime, bundle, &dir, settings(Cheat::None), &no).unwrap()
        else {
            panic!("stopped");
        };
        assert_eq!(again.claim, whole.claim);
        // A replayed state is the one the checkpoint list commits to.
        let s7 = state_at(&runtime, bundle, settings(Cheat::None), 7).unwrap();
        assert_eq!(
            orrery_types::workload::checkpoint(&s7),
            whole.checkpoints[7]
        );
    }
}

#[test]
fn referee_replays_start_from_a_kept_state_and_check_it_first() {
    let runtime = orrery_exec::Runtime::new().unwrap();
    let data = tempfile::tempdir().unwrap();
    let dir = Store::open(data.path()).unwrap().lease(0);
    let no = AtomicBool::new(false);
    // 100 steps, snapshots every 3: states kept every 6 steps (at most 32 kept, a multiple of
    // the snapshot interval).
    let bundle = counter_bundle(100);
    let RunEnd::Finished(_) = run_job(&runtime, &bundle, &dir, settings(Cheat::None), &no).unwrap()
    else {
        panic!("stopped");
    };
    let kept = std::fs::read_dir(dir.path().join("states"))
        .unwrap()
        .count();
    assert_eq!(kept, 16, "6, 12, … 96");
    // state_50 = 50 (the counter), replayed from the kept state_48: two steps, not fifty.
    let (from, state) = replay_state(&runtime, &bundle, &dir, settings(Cheat::None), 50, &no)
        .unwrap()
        .unwrap();
    assert_eq!((from, state), (48, 50u64.to_le_bytes().to_vec()));
    // A kept state that does not match the run's checkpoint is not used.
    std::fs::write(dir.path().join("states/48.bin"), 7u64.to_le_bytes()).unwrap();
    let (from, state) = replay_state(&runtime, &bundle, &dir, settings(Cheat::None), 50, &no)
        .unwrap()
        .unwrap();
    assert_eq!((from, state), (0, 50u64.to_le_bytes().to_vec()));
    // A fresh run of the lease forgets them.
    dir.clear_progress().unwrap();
    assert!(!dir.path().join("states").exists());
}

#[test]
fn a_crash_between_saving_a_state_and_its_progress_keeps_the_previous_snapshot() {
    let runtime = orrery_exec::Runtime::new().unwrap();
    let data = tempfile::tempdir().unwrap();
    let dir = Store::open(data.path()).unwrap().lease(0);
    let cps = |k: u64| -> Vec<_> {
        (0..=k)
            .map(|i| orrery_types::workload::checkpoint(&i.to_le_bytes()))
            .collect()
    };
    let at = |k: u64| Progress {
        k,
        cost: 0,
        wall_ms: 0,
    };
    dir.save_progress(at(4), &4u64.to_le_bytes(), &cps(4))
        .unwrap();
    // The next save wrote state_8 and died before its progress (SIGKILL, power loss).
    std::fs::write(dir.path().join("state.8.bin"), 8u64.to_le_bytes()).unwrap();
    let (p, state, _) = dir.progress().expect("the previous snapshot is whole");
    assert_eq!((p.k, state), (4, 4u64.to_le_bytes().to_vec()));
    // The run resumes from it, and the next save drops the stray state.
    let bundle = counter_bundle(10);
    let no = AtomicBool::new(false);
    let RunEnd::Finished(o) = run_job(&runtime, &bundle, &dir, settings(Cheat::None), &no).unwrap()
    else {
        panic!("stopped");
    };
    assert_eq!(o.claim.checkpoint_root, checkpoint_root(&cps(10)));
    assert!(!dir.path().join("state.8.bin").exists());
}

#[test]
fn a_corrupt_snapshot_restarts_the_run_instead_of_resuming_it() {
    let runtime = orrery_exec::Runtime::new().unwrap();
    let data = tempfile::tempdir().unwrap();
    let store = Store::open(data.path()).unwrap();
    let no = AtomicBool::new(false);
    let bundle = counter_bundle(10);
    let RunEnd::Finished(whole) = run_job(
        &runtime,
        &bundle,
        &store.lease(0),
        settings(Cheat::None),
        &no,
    )
    .unwrap() else {
        panic!()
    };
    let dir = store.lease(1);
    // State says 4, checkpoints say otherwise.
    let cps: Vec<_> = (0..=3u64)
        .map(|k| orrery_types::workload::checkpoint(&k.to_le_bytes()))
        .collect();
    dir.save_progress(
        Progress {
            k: 3,
            cost: 0,
            wall_ms: 0,
        },
        &4u64.to_le_bytes(),
        &cps,
    )
    .unwrap();
    let RunEnd::Finished(o) = run_job(&runtime, &bundle, &dir, settings(Cheat::None), &no).unwrap()
    else {
        panic!()
    };
    assert_eq!(o.claim, whole.claim);
}

#[test]
fn agent_thread_starts_registers_and_stops_gracefully() {
    let data = tempfile::tempdir().unwrap();
    let chain = LedgerChain::new(3, Params::default());
    let handle = Agent::start_with(
        config(1, data.path(), Cheat::None),
        chain.clone(),
        &Params::default(),
    )
    .unwrap();
    // The agent registers and bonds on its first tick.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while chain.with(|n| n.mempool.len()) < 2 {
        assert!(std::time::Instant::now() < deadline, "agent sent nothing");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    chain.block();
    assert!(chain.with(|n| n.state.provider(&handle.account()).is_some()));
    let snap = handle.snapshot().expect("agent answers");
    assert!(snap.benchmark_score.is_some_and(|s| s > 0.0));
    assert!(snap.txs_sent >= 2);
    assert!(handle.stop(), "agent thread exits cleanly");
}

#[test]
fn a_stopped_agent_resumes_its_lease_after_restart() {
    let data = tempfile::tempdir().unwrap();
    let chain = LedgerChain::new(3, Params::default());
    let bundle = counter_bundle(1_500);
    let mut agents = vec![worker(&chain, 1, data.path(), Cheat::None)];
    open_lease(&chain, &mut agents, &bundle, Verification::None);
    rounds(&chain, &mut agents, 1); // StartLease applied
    assert!(matches!(
        chain.with(|n| n.state.lease(0).unwrap().state.clone()),
        LeaseState::Running { .. }
    ));
    // Stop the agent as soon as its run (on a worker thread) has saved a snapshot.
    let cfg = config(1, data.path(), Cheat::None);
    let dir = Store::open(&cfg.data_dir).unwrap().lease(0);
    let stop = Arc::new(AtomicBool::new(false));
    let mut first = Worker::new(&cfg, cfg.offer(hardware()).unwrap(), chain.clone(), stop).unwrap();
    first.tick().unwrap();
    assert_eq!(
        first.running().get(&0).map(String::as_str),
        Some("job"),
        "the run went to the job lane"
    );
    while dir.progress().is_none() {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    first.shutdown();
    assert!(first.running().is_empty(), "worker threads joined");
    let (saved, _, _) = dir.progress().expect("snapshot saved on stop");
    assert!(dir.outcome().is_none(), "the run was interrupted");
    assert!(saved.k < 1_500);
    chain.block();
    // A fresh agent on the same data directory resumes, finishes and commits the right root.
    let mut agents = vec![worker(&chain, 1, data.path(), Cheat::None)];
    for _ in 0..10 {
        if matches!(
            chain.with(|n| n.state.lease(0).unwrap().state.clone()),
            LeaseState::Committed { .. }
        ) {
            break;
        }
        rounds(&chain, &mut agents, 1);
    }
    let LeaseState::Committed {
        checkpoint_root, ..
    } = chain.with(|n| n.state.lease(0).unwrap().state.clone())
    else {
        panic!(
            "not committed: {:?}",
            chain.with(|n| n.state.lease(0).unwrap().state.clone())
        );
    };
    // The counter's states are known: state_k = k.
    let expected: Vec<_> = (0..=1_500u64)
        .map(|k| orrery_types::workload::checkpoint(&k.to_le_bytes()))
        .collect();
    assert_eq!(checkpoint_root, checkpoint_root_of(&expected));
}

/// The devnet's "one run in seven": under load an agent's `StartLease` waited more than
/// [`RESEND_AFTER_BLOCKS`] blocks, the agent signed it again with the next nonce, the chain
/// refused the duplicate once the first applied, and — a refusal then spending no nonce —
/// every later transaction of that agent was stranded until its deadlines passed. Now the
/// step is not signed again while its transaction waits (it is resubmitted as it was), and
/// the lease settles with nothing refused and the provider whole.
#[test]
fn a_transaction_that_waits_under_load_is_not_signed_twice() {
    let data = tempfile::tempdir().unwrap();
    let chain = LedgerChain::new(4, Params::default());
    let mut agents = vec![worker(&chain, 1, data.path(), Cheat::None)];
    open_lease(&chain, &mut agents, &counter_bundle(8), Verification::None);
    let me = agents[0].account();
    let stake = chain.with(|n| n.state.provider(&me).unwrap().stake);
    // The agent sends StartLease; no proposer includes anything for 4 × RESEND_AFTER_BLOCKS.
    for _ in 0..4 * RESEND_AFTER_BLOCKS {
        agents[0].tick().unwrap();
        chain.idle_block();
    }
    let waiting: Vec<_> = chain.with(|n| n.mempool.iter().map(|t| t.tx.body.kind()).collect());
    assert_eq!(
        waiting,
        vec!["start_lease"],
        "signed once, resubmitted as it was"
    );
    let end = play(&chain, &mut agents);
    let LeaseState::Settled { paid, .. } = end else {
        panic!("{end:?}")
    };
    assert_eq!(chain.with(|n| n.refused.clone()), Vec::<String>::new());
    assert_eq!(agents[0].snapshot().txs_refused, 0);
    let p = chain.with(|n| n.state.provider(&me).cloned()).unwrap();
    assert_eq!(p.stake, stake, "not docked");
    assert_eq!(p.reputation.timed_out, 0);
    assert!(!paid.is_zero());
}

/// A transaction the chain includes and refuses (here a `StartLease` that waited past the
/// lease's start deadline) is reported by the agent the block it happens, with the ledger's
/// reason — and, because a refusal spends its nonce, the agent's next transaction, already
/// signed and waiting behind it, still applies.
#[test]
fn a_refused_transaction_is_reported_at_once_and_strands_nothing_behind_it() {
    let data = tempfile::tempdir().unwrap();
    let chain = LedgerChain::new(4, Params::default());
    let mut agents = vec![worker(&chain, 1, data.path(), Cheat::None)];
    open_lease(&chain, &mut agents, &counter_bundle(8), Verification::None);
    let me = agents[0].account();
    // A second lease, opened later, so it has more time to start.
    let start_by = chain.with(|n| n.state.lease(0).unwrap().start_by);
    while chain.with(|n| n.state.height()) + 10 < start_by {
        chain.block();
    }
    let bundle = counter_bundle(4);
    chain.put_bundle(&bundle);
    let height = chain.with(|n| n.state.height());
    chain.submit_from(
        &Keypair::from_seed(0),
        TxBody::OpenLease {
            provider: me,
            job: bundle.hash(),
            terms: terms(),
            deadline: height + 600,
            verification: Verification::None,
        },
    );
    chain.block();
    // Both StartLease transactions are signed and wait; no block includes them until lease 0
    // is past its start deadline.
    agents[0].tick().unwrap();
    assert!(chain.with(|n| n.state.lease(1).unwrap().start_by) > start_by + 10);
    while chain.with(|n| n.state.height()) <= start_by {
        chain.idle_block();
        agents[0].tick().unwrap();
    }
    assert_eq!(
        chain.with(|n| n.state.lease(0).unwrap().state.name()),
        "timed_out"
    );
    let before = chain.with(|n| n.state.account(&me).nonce);
    // Both starts, and the bond that restores the stake the timeout docked.
    let mine = chain.with(|n| n.mempool.iter().filter(|t| t.sender() == me).count() as u64);
    assert!(mine >= 2);
    chain.block();
    // Lease 0's start was refused and spent its nonce; everything behind it applied.
    assert_eq!(chain.with(|n| n.refused.len()), 1);
    assert_eq!(chain.with(|n| n.state.account(&me).nonce), before + mine);
    assert_eq!(
        chain.with(|n| n.state.lease(1).unwrap().state.name()),
        "running"
    );
    agents[0].tick().unwrap();
    let s = agents[0].snapshot();
    assert_eq!(s.txs_refused, 1);
    let refusal = s.last_refusal.clone().unwrap();
    assert!(
        refusal.contains("start_lease") && refusal.contains("lease 0"),
        "{refusal}"
    );
    // Lease 1 goes on to settle.
    for _ in 0..200 {
        if !chain.with(|n| n.state.lease(1).unwrap().state.is_active()) {
            break;
        }
        rounds(&chain, &mut agents, 1);
    }
    let end = chain.with(|n| n.state.lease(1).unwrap().state.clone());
    assert!(matches!(end, LeaseState::Settled { .. }), "{end:?}");
}

#[test]
fn lost_transactions_are_resubmitted_as_they_were() {
    let data = tempfile::tempdir().unwrap();
    let chain = LedgerChain::new(3, Params::default());
    let mut a = worker(&chain, 1, data.path(), Cheat::None);
    a.tick().unwrap();
    assert_eq!(chain.with(|n| n.mempool.len()), 2, "register and bond sent");
    // The node loses them (restart, eviction): the chain's nonce never moves.
    chain.with(|n| n.mempool.clear());
    let mut blocks = 0;
    while chain.with(|n| n.state.provider(&a.account()).is_none()) {
        blocks += 1;
        assert!(blocks < 20, "never resent");
        a.tick().unwrap();
        chain.block();
    }
    // Resent with nonces the chain accepts: registered and bonded, nothing refused.
    a.tick().unwrap();
    chain.block();
    let p = chain
        .with(|n| n.state.provider(&a.account()).cloned())
        .unwrap();
    assert_eq!(p.stake, Params::default().min_stake(&hardware()).unwrap());
    assert_eq!(chain.with(|n| n.refused.clone()), Vec::<String>::new());
    assert_eq!(chain.with(|n| n.state.account(&a.account()).nonce), 2);
}

#[test]
fn ml_bundle_leases_are_run_and_committed_by_the_agent() {
    let data = tempfile::tempdir().unwrap();
    let chain = LedgerChain::new(3, Params::default());
    let mut agents = vec![worker(&chain, 1, data.path(), Cheat::None)];
    let bundle = ml_bundle(6);
    open_lease(&chain, &mut agents, &bundle, Verification::None);
    rounds(&chain, &mut agents, 4);
    let LeaseState::Committed {
        checkpoint_root,
        usage,
        output,
        ..
    } = chain.with(|n| n.state.lease(0).unwrap().state.clone())
    else {
        panic!(
            "{:?}",
            chain.with(|n| n.state.lease(0).unwrap().state.clone())
        );
    };
    let runtime = orrery_exec::Runtime::new().unwrap();
    let mut job = orrery_provider::job::load(&runtime, &bundle, 2).unwrap();
    let rec = run(&mut job, Start::Fresh, |_, _, _| true)
        .unwrap()
        .unwrap();
    assert_eq!(
        checkpoint_root,
        rec.checkpoint_root(),
        "same root on 1 and 2 threads"
    );
    assert_eq!(usage.units, rec.cost);
    // The trained weights are published under the output hash.
    assert_eq!(
        chain.with(|n| n.blobs.get(&output).cloned()),
        Some(rec.output)
    );
}

#[test]
fn in_a_dispute_only_a_redundant_referee_input_is_refused() {
    for (provider, verifier) in [
        (Cheat::SkipStep, Cheat::None),
        (Cheat::None, Cheat::SkipStep),
    ] {
        let (chain, _, _) = game(provider, verifier, 20);
        let refused = chain.with(|n| n.refused.clone());
        // Both disputants give the referee its input in the same block; the second finds the
        // dispute decided. Nothing else either agent sent is refused.
        assert!(refused.len() <= 1, "{refused:?}");
        for r in &refused {
            assert!(r.starts_with("WrongLeaseState { lease: 0"), "{r}");
        }
    }
}

/// The chain keeps making blocks on its own clock (every `every`) until `done` holds or
/// `blocks` blocks have been made; returns whether `done` held.
fn blocks_until(
    chain: &LedgerChain,
    every: std::time::Duration,
    blocks: usize,
    mut done: impl FnMut(&LedgerChain) -> bool,
) -> bool {
    for _ in 0..blocks {
        if done(chain) {
            return true;
        }
        std::thread::sleep(every);
        chain.block();
    }
    done(chain)
}

/// An honest agent busy with a long job of its own still does its chain duties on time: drawn
/// as the verifier of a cheater's lease while its own job runs, it re-executes, seals, reveals,
/// bisects and gives the referee its input within every deadline, wins the dispute and is
/// neither docked nor slashed. The chain runs on its own clock (a block every 20 ms), as a real
/// one does; an agent whose loop waited for its job would miss the deadlines and lose.
#[test]
fn a_busy_agent_still_answers_a_dispute_in_time() {
    // Windows of 2 s (100 blocks) instead of the default 25 blocks: time enough for a loop that
    // polls every 50 ms on a loaded machine, and still far shorter than the busy agent's job.
    let params = Params {
        verify_blocks: 100,
        reveal_blocks: 100,
        dispute_round_blocks: 100,
        ..Params::default()
    };
    let every = std::time::Duration::from_millis(20);
    let data = tempfile::tempdir().unwrap();
    let chain = LedgerChain::new(4, params.clone());
    let mut busy_config = config(1, data.path(), Cheat::None);
    busy_config.save_every_steps = 10_000;
    let busy_dir = Store::open(&busy_config.data_dir).unwrap().lease(0);
    let busy = Agent::start_with(busy_config, chain.clone(), &params).unwrap();
    let cheater = Agent::start_with(
        config(2, data.path(), Cheat::SkipStep),
        chain.clone(),
        &params,
    )
    .unwrap();
    let (busy_id, cheater_id) = (busy.account(), cheater.account());
    assert!(
        blocks_until(&chain, every, 1_000, |c| {
            c.with(|n| {
                [busy_id, cheater_id]
                    .iter()
                    .all(|a| n.state.provider(a).is_some_and(|p| !p.stake.is_zero()))
            })
        }),
        "both agents registered and bonded"
    );
    let stake_before = chain.with(|n| n.state.provider(&busy_id).unwrap().stake);
    let balance_before = chain.with(|n| n.state.account(&busy_id).balance);

    // Lease 0: the busy agent's own long job (a million steps).
    let long = counter_bundle(1_000_000);
    chain.put_bundle(&long);
    let height = chain.with(|n| n.state.height());
    chain.submit_from(
        &Keypair::from_seed(0),
        TxBody::OpenLease {
            provider: busy_id,
            job: long.hash(),
            terms: terms(),
            deadline: height + 50_000,
            verification: Verification::None,
        },
    );
    assert!(
        blocks_until(&chain, every, 1_000, |_| busy_dir.progress().is_some()),
        "the long job is running and has saved a snapshot"
    );

    // Lease 1: the cheater's job, always checked; the busy agent is the only possible verifier.
    let short = counter_bundle(20);
    chain.put_bundle(&short);
    let height = chain.with(|n| n.state.height());
    chain.submit_from(
        &Keypair::from_seed(0),
        TxBody::OpenLease {
            provider: cheater_id,
            job: short.hash(),
            terms: terms(),
            deadline: height + 2_000,
            verification: Verification::Redundant { k: 2 },
        },
    );
    let lease1 = |c: &LedgerChain| c.with(|n| n.state.lease(1).map(|l| l.state.clone()));
    let finished = blocks_until(&chain, every, 3_000, |c| {
        lease1(c).is_some_and(|s| !s.is_active())
    });
    let end = lease1(&chain);
    // The busy agent's job was still running the whole time.
    let still_running = matches!(
        chain.with(|n| n.state.lease(0).unwrap().state.clone()),
        LeaseState::Running { .. }
    ) && busy_dir.outcome().is_none();
    let busy_record = chain.with(|n| n.state.provider(&busy_id).cloned().unwrap());
    let balance_after = chain.with(|n| n.state.account(&busy_id).balance);
    let slashed = chain.slashed();
    // The duty loop answers while the job runs on its worker thread.
    let snap = busy.snapshot().expect("the busy agent answers");
    assert_eq!(
        snap.running.get(&0).map(String::as_str),
        Some("job"),
        "{snap:?}"
    );
    let disputes = disputes(&chain);
    assert!(cheater.stop());
    assert!(
        busy.stop(),
        "the busy agent stops cleanly in the middle of its job"
    );

    assert!(finished, "lease 1 never finished: {end:?}");
    assert!(
        still_running,
        "the long job finished early: the test proves nothing"
    );
    assert_eq!(disputes, vec![DisputeKind::Checkpoints], "{end:?}");
    assert!(matches!(end, Some(LeaseState::Failed { .. })), "{end:?}");
    assert_eq!(slashed, vec![cheater_id], "only the cheater is slashed");
    assert_eq!(
        busy_record.reputation.timed_out, 0,
        "the busy agent missed no deadline"
    );
    assert_eq!(busy_record.stake, stake_before);
    assert!(
        balance_after > balance_before,
        "the winner gets its share of the slash"
    );
    // Stopping saved the long job's progress for a restart.
    let (saved, _, _) = busy_dir.progress().expect("snapshot kept");
    assert!(saved.k > 0 && saved.k < 1_000_000, "{saved:?}");
}
