//! Failure claims against the real state machine: a job that fails by itself (here, a real wasm
//! module that loops until its fuel runs out) is a result the provider is paid for, to the
//! unit, never a penalty; a claim of failure is checked like any result, and every lie about
//! a failure — failing a job that succeeds, failing at another step or for another reason,
//! succeeding at a job that fails, padding a failure with something else — loses its dispute
//! to the honest claim at the referee.
//!
//! Every party's claim comes from really executing the job with `orrery-exec` (the same calls
//! the provider agent makes); liars change what they commit to, never what the job does.

mod common;

use common::*;
use orrery_exec::{Bundle, EntryStyle, Limits, Manifest, Runtime};
use orrery_ledger::entries::{DisputeKind, LeaseState};
use orrery_ledger::{Event, TxError};
use orrery_types::amount::Amount;
use orrery_types::codec::{self, Blob};
use orrery_types::crypto::AccountId;
use orrery_types::hash::Hash;
use orrery_types::merkle::{MerkleTree, merkle_root};
use orrery_types::resources::Usage;
use orrery_types::tx::{
    FailureNote, LeaseId, ResultClaim, TxBody, Verification, failure_note, result_seal,
};
use orrery_types::workload::{
    FailedAt, FailureReason, JobFailure, RunError, Start, checkpoint, run,
};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// Fuel per call for the test jobs: small, so a loop runs out in milliseconds.
const FUEL: u64 = 5_000_000;
const LEASE: LeaseId = 0;
const REQUESTER: usize = 0;
const PROVIDER: usize = 1;

/// The devnet case: a WASI command whose one step loops forever.
const LOOPING_COMMAND: &str =
    r#"(module (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))"#;

/// A counter stepper (`state_k = k`, output `3n`) whose step `loop_at` loops forever and
/// whose output traps when `output_traps`.
fn stepper_wat(loop_at: u64, output_traps: bool) -> String {
    let output_body = if output_traps {
        "unreachable"
    } else {
        "(i64.store (i32.const 0) (i64.mul (i64.load (local.get $ptr)) (i64.const 3))) (call $pack (i32.const 0) (i32.const 8))"
    };
    format!(
        r#"(module
  (memory (export "memory") 1 1)
  (global $heap (mut i32) (i32.const 1024))
  (func (export "alloc") (param $len i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (local.get $p) (local.get $len)))
    (local.get $p))
  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))
  (func (export "init") (param i32 i32) (result i64)
    (i64.store (i32.const 0) (i64.const 0))
    (call $pack (i32.const 0) (i32.const 8)))
  (func (export "step") (param $k i64) (param $ptr i32) (param $len i32) (result i64)
    (if (i64.eq (local.get $k) (i64.const {loop_at})) (then (loop $l (br $l))))
    (i64.store (i32.const 0) (i64.add (i64.load (local.get $ptr)) (i64.const 1)))
    (call $pack (i32.const 0) (i32.const 8)))
  (func (export "output") (param $ptr i32) (param $len i32) (result i64)
    {output_body}))"#
    )
}

fn bundle(wat: &str, entry: EntryStyle, steps: u64) -> Bundle {
    let mut manifest = Manifest::wasm(entry, steps, None);
    manifest.limits = Limits {
        fuel_per_step: FUEL,
        ..Limits::default()
    };
    Bundle::new(manifest, wat::parse_str(wat).unwrap(), BTreeMap::new()).unwrap()
}

/// A stepper of `steps` steps that loops at step `loop_at` (never, when it is past the end).
fn stepper(steps: u64, loop_at: u64) -> Bundle {
    bundle(&stepper_wat(loop_at, false), EntryStyle::Stepper, steps)
}

fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| Runtime::new().unwrap())
}

/// What a party commits to: its leaves, the states behind them where it has them, its claim
/// and the units it bills.
#[derive(Clone, Debug)]
struct Run {
    leaves: Vec<Hash>,
    /// `states[k]` behind leaf `k`; `None` where the leaf is a failure marker (or made up).
    states: Vec<Option<Vec<u8>>>,
    claim: ResultClaim,
    units: u64,
    note: String,
}

impl Run {
    /// The claim as sealed: with the units this run metered.
    fn sealed(&self) -> ResultClaim {
        self.claim.with_units(self.units)
    }

    /// The job's true run, executed.
    fn of(bundle: &Bundle) -> Run {
        let n = bundle.manifest().steps;
        let mut job = runtime().load(bundle).unwrap();
        let mut states: Vec<Vec<u8>> = Vec::new();
        let ran = run(&mut job, Start::Fresh, |_, s, _| {
            states.push(s.to_vec());
            true
        });
        match ran {
            Ok(Some(rec)) => Run {
                claim: ResultClaim::succeeded(Hash::of(&rec.output), rec.checkpoint_root(), n),
                leaves: rec.checkpoints,
                states: states.into_iter().map(Some).collect(),
                units: rec.cost,
                note: String::new(),
            },
            Err(RunError::Workload { at, cost, source }) => {
                let failure = JobFailure {
                    at,
                    reason: source.failure_reason().expect("a deterministic failure"),
                };
                let recorded = states.iter().map(|s| checkpoint(s)).collect();
                let leaves = failure.leaves(recorded, n).unwrap();
                let mut states: Vec<Option<Vec<u8>>> = states.into_iter().map(Some).collect();
                states.resize(leaves.len(), None);
                Run {
                    claim: ResultClaim::failed(failure, merkle_root(&leaves), n),
                    leaves,
                    states,
                    units: cost,
                    note: source.to_string(),
                }
            }
            other => panic!("the test job must finish or fail: {other:?}"),
        }
    }

    /// This run with leaves `from..` replaced by `failure`'s marker: a claim that the job
    /// failed there.
    fn failing_at(&self, failure: JobFailure) -> Run {
        let from = failure
            .first_marker_leaf()
            .unwrap_or(self.leaves.len() as u64) as usize;
        let leaves = failure
            .leaves(self.leaves[..from].to_vec(), self.claim.steps)
            .unwrap();
        let mut states = self.states.clone();
        for s in &mut states[from..] {
            *s = None;
        }
        Run {
            claim: ResultClaim::failed(failure, merkle_root(&leaves), self.claim.steps),
            leaves,
            states,
            units: self.units / 2,
            note: "made up".into(),
        }
    }

    /// This run with leaf `k` changed to `leaf` (and its state forgotten).
    fn with_leaf(&self, k: usize, leaf: Hash) -> Run {
        let mut run = self.clone();
        run.leaves[k] = leaf;
        run.states[k] = None;
        run.claim.checkpoint_root = merkle_root(&run.leaves);
        run
    }

    fn note(&self) -> FailureNote {
        match self.claim.failure {
            Some(_) => failure_note(&self.note),
            None => FailureNote::default(),
        }
    }

    /// The referee's input for the agreed leaf `k`: the state, or the failure whose marker the
    /// leaf is.
    fn agreed(&self, k: u64) -> Option<Vec<u8>> {
        match (&self.states[k as usize], self.claim.failure) {
            (Some(state), _) => Some(state.clone()),
            (None, Some(f)) if self.leaves[k as usize] == f.marker() => Some(codec::encode(&f)),
            _ => None,
        }
    }
}

struct Party {
    account: usize,
    run: Run,
    honest: bool,
}

/// One lease (id 0, opened by account 0 with account 1 as provider) played through commit,
/// check and dispute, every party acting as soon as it may.
struct Game {
    net: Net,
    job: Vec<u8>,
    parties: BTreeMap<AccountId, Party>,
    events: Vec<Event>,
}

impl Game {
    fn new(providers: usize, job: Vec<u8>, verification: Verification, seed: u64) -> Game {
        let mut net = Net::new(providers + 1);
        net.seed_salt = seed;
        let stake = net
            .state
            .params()
            .min_stake(&offer(1, prices()).hardware)
            .unwrap();
        let txs = (1..=providers)
            .flat_map(|p| {
                [
                    net.tx(p, TxBody::RegisterProvider(offer(1, prices()))),
                    net.tx_at(p, 1, TxBody::Bond { amount: stake }),
                ]
            })
            .collect();
        assert!(net.apply(txs).receipts.iter().all(|r| r.is_ok()));
        let open = net.tx(
            REQUESTER,
            TxBody::OpenLease {
                provider: net.id(PROVIDER),
                job: Hash::of(&job),
                terms: terms(100_000_000),
                deadline: net.state.height() + 200,
                verification,
            },
        );
        let r = net.apply(vec![open]).receipts.remove(0);
        assert!(r.is_ok(), "{r:?}");
        Game {
            net,
            job,
            parties: BTreeMap::new(),
            events: Vec::new(),
        }
    }

    /// Every provider account `1..=providers` plays `run` (honestly).
    fn everyone_runs(&mut self, run: &Run) {
        let ids: Vec<usize> = (1..self.net.keys.len()).collect();
        for i in ids {
            self.set(i, run.clone(), true);
        }
    }

    fn set(&mut self, account: usize, run: Run, honest: bool) {
        let id = self.net.id(account);
        self.parties.insert(
            id,
            Party {
                account,
                run,
                honest,
            },
        );
    }

    fn lease(&self) -> &orrery_ledger::entries::Lease {
        self.net.state.lease(LEASE).unwrap()
    }

    fn apply(&mut self, txs: Vec<orrery_types::tx::SignedTx>) -> Vec<Result<(), TxError>> {
        let out = self.net.apply(txs);
        let mut results = Vec::new();
        for r in out.receipts {
            match r.outcome {
                Ok(events) => {
                    self.events.extend(events);
                    results.push(Ok(()));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        self.events.extend(out.events);
        results
    }

    /// Start, then commit the provider's claim billed at its units (no seconds: the bill is
    /// the fuel alone, so it can be checked to the unit).
    fn commit(&mut self) {
        assert_eq!(
            self.apply(vec![
                self.net.tx(PROVIDER, TxBody::StartLease { lease: LEASE })
            ]),
            vec![Ok(())]
        );
        let run = &self.parties[&self.net.id(PROVIDER)].run;
        let usage = Usage {
            seconds: 0,
            units: run.units,
        };
        let body = commit_body(&self.net, PROVIDER, LEASE, usage, &run.claim);
        assert_eq!(self.apply(vec![self.net.tx(PROVIDER, body)]), vec![Ok(())]);
    }

    /// The moves every party makes now.
    fn moves(&self) -> Vec<(usize, TxBody)> {
        let mut out = Vec::new();
        match &self.lease().state {
            LeaseState::Checking(check) => {
                for c in check.claims.as_slice() {
                    let Some(p) = self.parties.get(&c.party) else {
                        continue;
                    };
                    if c.status != orrery_ledger::entries::ClaimStatus::Active {
                        continue;
                    }
                    match check.phase {
                        orrery_ledger::entries::CheckPhase::Sealing if c.seal.is_none() => {
                            out.push((
                                p.account,
                                TxBody::CommitCheck {
                                    lease: LEASE,
                                    seal: result_seal(LEASE, &c.party, &p.run.sealed()),
                                },
                            ));
                        }
                        orrery_ledger::entries::CheckPhase::Revealing
                            if c.seal.is_some() && c.revealed.is_none() =>
                        {
                            out.push((
                                p.account,
                                TxBody::RevealResult {
                                    lease: LEASE,
                                    claim: p.run.sealed(),
                                    note: p.run.note(),
                                },
                            ));
                        }
                        _ => {}
                    }
                }
            }
            LeaseState::Disputed(d) => {
                let challenger = d.check.claims.as_slice()[usize::from(d.challenger)].party;
                for (side, who) in [(0, self.lease().provider), (1, challenger)] {
                    let p = &self.parties[&who];
                    if !d.awaiting_referee {
                        let moved = if side == 0 {
                            d.provider_move.is_some()
                        } else {
                            d.challenger_move.is_some()
                        };
                        if moved {
                            continue;
                        }
                        let k = 1u64 << (63 - (d.size - 1).leading_zeros());
                        let node =
                            |a: u64, b: u64| merkle_root(&p.run.leaves[a as usize..b as usize]);
                        out.push((
                            p.account,
                            TxBody::DisputeMove {
                                lease: LEASE,
                                left: node(d.start, d.start + k),
                                right: node(d.start + k, d.start + d.size),
                            },
                        ));
                    } else if p.honest {
                        out.push((p.account, self.adjudication(d, &p.run)));
                    }
                }
            }
            _ => {}
        }
        out
    }

    /// The referee's input, as `run` sees the narrowed dispute.
    fn adjudication(&self, d: &orrery_ledger::entries::Dispute, run: &Run) -> TxBody {
        let tree = MerkleTree::new(&run.leaves);
        let n = d.leaf_count.saturating_sub(1);
        let agreed_leaf = match d.kind {
            DisputeKind::Steps => None,
            DisputeKind::Output => Some(n),
            DisputeKind::Checkpoints => d.start.checked_sub(1),
        };
        let (state, proof) = match agreed_leaf {
            None => (Vec::new(), tree.proof(0).unwrap()),
            Some(k) => (run.agreed(k).unwrap(), tree.proof(k).unwrap()),
        };
        TxBody::Adjudicate {
            lease: LEASE,
            bundle: Blob::new(self.job.clone()).unwrap(),
            state: Blob::new(state).unwrap(),
            proof,
        }
    }

    /// Play until the lease is final.
    fn play(&mut self) {
        for _ in 0..500 {
            if !self.lease().state.is_active() {
                return;
            }
            let mut offsets: BTreeMap<usize, u64> = BTreeMap::new();
            let txs = self
                .moves()
                .into_iter()
                .map(|(who, body)| {
                    let off = offsets.entry(who).or_default();
                    let tx = self.net.tx_at(who, *off, body);
                    *off += 1;
                    tx
                })
                .collect();
            self.apply(txs);
        }
        panic!("the lease did not finish: {:?}", self.lease().state);
    }

    fn slashed(&self) -> Vec<AccountId> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Slashed { party, .. } => Some(*party),
                _ => None,
            })
            .collect()
    }

    fn drawn(&self) -> Vec<AccountId> {
        self.events
            .iter()
            .find_map(|e| match e {
                Event::CheckDrawn { verifiers, .. } => Some(verifiers.clone()),
                _ => None,
            })
            .unwrap_or_default()
    }

    fn ruling(&self) -> Option<(bool, bool, Option<JobFailure>)> {
        self.events.iter().find_map(|e| match e {
            Event::RefereeRuled {
                provider_right,
                challenger_right,
                failure,
                ..
            } => Some((*provider_right, *challenger_right, *failure)),
            _ => None,
        })
    }

    fn disputes(&self) -> Vec<DisputeKind> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::DisputeOpened { kind, .. } => Some(*kind),
                _ => None,
            })
            .collect()
    }

    fn stake(&self, i: usize) -> Amount {
        self.net.state.provider(&self.net.id(i)).unwrap().stake
    }
}

/// What the requester is charged for `units` of work and no seconds: the agreed price per
/// million units, rounded down, computed here from the terms rather than by the ledger.
fn charge(units: u64) -> Amount {
    Amount(prices().mega_unit.units() * u128::from(units) / 1_000_000)
}

/// The provider's (and each agreeing verifier's) pay for `charge`: less the protocol fee.
fn pay(charge: Amount) -> Amount {
    let fee_bps = u128::from(orrery_ledger::Params::default().fee_bps);
    Amount(charge.units() - charge.units() * fee_bps / 10_000)
}

fn provider_is_whole(g: &Game, stake_before: Amount) {
    let p = g.net.state.provider(&g.net.id(PROVIDER)).unwrap();
    assert_eq!(p.stake, stake_before, "not docked");
    assert_eq!(
        (
            p.reputation.failed,
            p.reputation.slashed,
            p.reputation.timed_out
        ),
        (0, 0, 0),
        "no mark against the provider: {:?}",
        p.reputation
    );
    assert_eq!(p.reputation.settled, 1);
    assert_eq!(p.active_leases, 0);
}

#[test]
fn a_looping_job_pays_the_provider_for_the_fuel_it_burned_and_refunds_the_rest() {
    let job = bundle(LOOPING_COMMAND, EntryStyle::Command, 1);
    let truth = Run::of(&job);
    let failure = truth.claim.failure.expect("the loop fails");
    assert_eq!(
        failure,
        JobFailure {
            at: FailedAt::Step(0),
            reason: FailureReason::OutOfFuel
        }
    );
    // The command's one step burned its whole fuel bound (its init is the input: free).
    assert_eq!(truth.units, FUEL);
    let mut g = Game::new(1, job.bytes().to_vec(), Verification::None, 0);
    g.everyone_runs(&truth);
    let (stake, provider_before) = (g.stake(PROVIDER), g.net.balance(PROVIDER));
    g.commit();
    g.play();

    let cost = charge(truth.units);
    assert_eq!(
        cost,
        Amount(1_000 * u128::from(FUEL)),
        "1 ORR per million units"
    );
    let LeaseState::Settled {
        failure: settled_failure,
        paid,
        usage,
        refunded,
        ..
    } = g.lease().state.clone()
    else {
        panic!("a failure claim settles: {:?}", g.lease().state);
    };
    assert_eq!(
        settled_failure,
        Some(failure),
        "the final state names the failure"
    );
    assert_eq!(usage.units, FUEL);
    assert_eq!(
        paid, cost,
        "the requester paid exactly the price of the fuel burned"
    );
    let escrow = terms(100_000_000).max_cost().unwrap();
    assert_eq!(refunded, escrow.checked_sub(cost).unwrap());
    assert_eq!(
        g.net.balance(REQUESTER),
        START_BALANCE.checked_sub(cost).unwrap(),
        "the rest of the escrow came back, to the unit"
    );
    assert_eq!(
        g.net.balance(PROVIDER),
        provider_before.checked_add(pay(cost)).unwrap(),
        "the provider is paid for the work done"
    );
    provider_is_whole(&g, stake);
    assert!(g.slashed().is_empty());
    assert!(
        !g.events
            .iter()
            .any(|e| matches!(e, Event::LeaseTimedOut { .. }))
    );
    // The reveal carried the runtime's own words for the requester.
    let note = g.events.iter().find_map(|e| match e {
        Event::ResultRevealed { failure, note, .. } if failure.is_some() => Some(note.clone()),
        _ => None,
    });
    assert!(note.is_some_and(|n| n.contains("ran out of fuel")));
}

#[test]
fn an_honest_verifier_agrees_with_a_failure_and_is_paid() {
    // The loop at step 3 of 8: the claim commits to four real checkpoints, then the marker.
    let job = stepper(8, 3);
    let truth = Run::of(&job);
    assert_eq!(truth.claim.failure.map(|f| f.at), Some(FailedAt::Step(3)));
    let cost = charge(truth.units);
    for verification in [Verification::Sampled, Verification::Redundant { k: 3 }] {
        // Sampled checks are drawn at random: play seeds until one is.
        let mut checked = false;
        for seed in 0..40 {
            let mut g = Game::new(3, job.bytes().to_vec(), verification, seed);
            g.everyone_runs(&truth);
            let stake = g.stake(PROVIDER);
            let before: Vec<Amount> = (0..=3).map(|i| g.net.balance(i)).collect();
            g.commit();
            g.play();
            let verifiers = g.drawn();
            if verifiers.is_empty() {
                continue;
            }
            checked = true;
            assert!(g.slashed().is_empty(), "{verification:?}");
            assert!(g.disputes().is_empty(), "{verification:?}");
            assert!(
                matches!(
                    &g.lease().state,
                    LeaseState::Settled {
                        failure: Some(_),
                        ..
                    }
                ),
                "{:?}",
                g.lease().state
            );
            provider_is_whole(&g, stake);
            let p = g.net.state.provider(&g.net.id(PROVIDER)).unwrap();
            assert_eq!(
                p.reputation.checked, 1,
                "a checked failure is a checked result"
            );
            // Each verifier that agreed is paid what the provider is; the requester pays for
            // every run of the job that was made, and gets the rest back.
            for v in &verifiers {
                let i = (0..=3).find(|&i| g.net.id(i) == *v).unwrap();
                assert_eq!(
                    g.net.balance(i),
                    before[i].checked_add(pay(cost)).unwrap(),
                    "verifier {i} paid under {verification:?}"
                );
            }
            assert_eq!(
                g.net.balance(PROVIDER),
                before[PROVIDER].checked_add(pay(cost)).unwrap()
            );
            let runs = 1 + verifiers.len() as u128;
            assert_eq!(
                g.net.balance(REQUESTER),
                START_BALANCE
                    .checked_sub(cost.checked_mul(runs).unwrap())
                    .unwrap()
            );
            break;
        }
        assert!(checked, "{verification:?} was never checked");
    }
}

/// Play a redundant lease where the provider commits `provider` and one honest verifier runs
/// the job; returns the game.
fn dispute(job: &Bundle, provider: Run, honest_provider: bool) -> Game {
    let truth = Run::of(job);
    let mut g = Game::new(2, job.bytes().to_vec(), Verification::Redundant { k: 2 }, 1);
    g.set(PROVIDER, provider, honest_provider);
    g.set(2, truth, true);
    g.commit();
    g.play();
    g
}

fn assert_provider_lost(g: &Game, what: &str) {
    assert_eq!(g.slashed(), vec![g.net.id(PROVIDER)], "{what}");
    assert!(
        matches!(g.lease().state, LeaseState::Failed { .. }),
        "{what}: {:?}",
        g.lease().state
    );
    assert_eq!(
        g.net.balance(REQUESTER),
        START_BALANCE,
        "{what}: refunded in full"
    );
    let p = g.net.state.provider(&g.net.id(PROVIDER)).unwrap();
    assert_eq!(
        (p.reputation.failed, p.reputation.slashed),
        (1, 1),
        "{what}"
    );
}

#[test]
fn a_provider_that_claims_failure_for_a_job_that_succeeds_is_slashed() {
    let job = stepper(12, u64::MAX);
    let truth = Run::of(&job);
    assert!(truth.claim.failure.is_none(), "this job succeeds");
    for (at, what) in [
        (FailedAt::Init, "failed at init"),
        (FailedAt::Step(0), "failed at the first step"),
        (FailedAt::Step(7), "failed in the middle"),
        (FailedAt::Step(11), "failed at the last step"),
    ] {
        let lie = truth.failing_at(JobFailure {
            at,
            reason: FailureReason::OutOfFuel,
        });
        let g = dispute(&job, lie, false);
        assert_provider_lost(&g, what);
        assert_eq!(g.disputes(), vec![DisputeKind::Checkpoints], "{what}");
        // The referee ran the step and got a state, not a failure.
        assert_eq!(g.ruling(), Some((false, true, None)), "{what}");
    }
    // A failure claimed in `output` (every checkpoint real) loses the output dispute.
    let lie = truth.failing_at(JobFailure {
        at: FailedAt::Output,
        reason: FailureReason::Trap,
    });
    let g = dispute(&job, lie, false);
    assert_provider_lost(&g, "failed at output");
    assert_eq!(g.disputes(), vec![DisputeKind::Output]);
}

#[test]
fn a_failure_claimed_at_another_step_or_for_another_reason_is_slashed() {
    // The job really loops at step 5 of 10.
    let job = stepper(10, 5);
    let truth = Run::of(&job);
    let real = truth.claim.failure.unwrap();
    assert_eq!(real.at, FailedAt::Step(5));
    // Earlier: saves the work of steps 2..5.
    let earlier = truth.failing_at(JobFailure {
        at: FailedAt::Step(2),
        reason: FailureReason::OutOfFuel,
    });
    // Later: pretends step 5 worked and made up a state for it.
    let later = {
        let failure = JobFailure {
            at: FailedAt::Step(7),
            reason: FailureReason::OutOfFuel,
        };
        let mut recorded = truth.leaves[..6].to_vec();
        recorded.extend((6..8u8).map(|i| Hash::of(&[b'x', i])));
        let leaves = failure.leaves(recorded, 10).unwrap();
        Run {
            claim: ResultClaim::failed(failure, merkle_root(&leaves), 10),
            states: vec![None; leaves.len()],
            leaves,
            ..truth.clone()
        }
    };
    // The right step, the wrong reason.
    let reason = truth.failing_at(JobFailure {
        at: FailedAt::Step(5),
        reason: FailureReason::Trap,
    });
    for (lie, what) in [
        (earlier, "earlier"),
        (later, "later"),
        (reason, "another reason"),
    ] {
        let g = dispute(&job, lie, false);
        assert_provider_lost(&g, what);
        let (provider_right, challenger_right, found) = g.ruling().unwrap();
        assert!(!provider_right && challenger_right, "{what}");
        if what == "earlier" {
            assert_eq!(found, None, "{what}: step 2 ran fine");
        } else {
            assert_eq!(
                found,
                Some(real),
                "{what}: the referee met the real failure"
            );
        }
    }
}

#[test]
fn a_provider_that_claims_success_for_a_job_that_fails_loses() {
    // The loop at step 4 of 9: the liar makes up states 5..9 and an output.
    let job = stepper(9, 4);
    let truth = Run::of(&job);
    let mut lie = truth.clone();
    for k in 5..=9 {
        lie.leaves[k] = checkpoint(&(k as u64).to_le_bytes());
        lie.states[k] = Some((k as u64).to_le_bytes().to_vec());
    }
    lie.claim = ResultClaim::succeeded(Hash::of(&27u64.to_le_bytes()), merkle_root(&lie.leaves), 9);
    let g = dispute(&job, lie, false);
    assert_provider_lost(&g, "success claimed for a loop");
    assert_eq!(g.ruling().unwrap().2, truth.claim.failure);

    // The devnet's command: the liar claims it printed something.
    let job = bundle(LOOPING_COMMAND, EntryStyle::Command, 1);
    let truth = Run::of(&job);
    let mut lie = truth.with_leaf(1, checkpoint(b"hello"));
    lie.claim = ResultClaim::succeeded(Hash::of(b"hello"), lie.claim.checkpoint_root, 1);
    let g = dispute(&job, lie, false);
    assert_provider_lost(&g, "success claimed for the looping command");
}

#[test]
fn a_verifier_that_disputes_an_honest_failure_is_slashed_and_the_provider_paid() {
    let job = stepper(9, 2);
    let truth = Run::of(&job);
    // Padding after the marker that is not the marker: the dispute narrows to a leaf whose
    // agreed predecessor is the marker, and the referee applies "a failure is absorbing"
    // without executing anything.
    let padded = truth.with_leaf(6, Hash::of(b"padding"));
    // Claims the job succeeded with the same leaves: only the output differs, and the agreed
    // last leaf is the marker.
    let posing = Run {
        claim: ResultClaim::succeeded(Hash::of(b"out"), truth.claim.checkpoint_root, 9),
        ..truth.clone()
    };
    for (lie, kind, what) in [
        (padded, DisputeKind::Checkpoints, "wrong padding"),
        (posing, DisputeKind::Output, "an output for a failed run"),
    ] {
        let mut g = Game::new(2, job.bytes().to_vec(), Verification::Redundant { k: 2 }, 1);
        g.set(PROVIDER, truth.clone(), true);
        g.set(2, lie, false);
        let stake = g.stake(PROVIDER);
        let provider_before = g.net.balance(PROVIDER);
        g.commit();
        g.play();
        assert_eq!(g.disputes(), vec![kind], "{what}");
        assert_eq!(g.slashed(), vec![g.net.id(2)], "{what}");
        assert_eq!(
            g.ruling(),
            Some((true, false, truth.claim.failure)),
            "{what}: ruled from the agreed marker"
        );
        assert!(
            matches!(
                g.lease().state,
                LeaseState::Settled {
                    failure: Some(_),
                    ..
                }
            ),
            "{what}: {:?}",
            g.lease().state
        );
        provider_is_whole(&g, stake);
        // Paid for the fuel, plus its share of the loser's slash.
        assert!(
            g.net.balance(PROVIDER)
                > provider_before
                    .checked_add(pay(charge(truth.units)))
                    .unwrap(),
            "{what}"
        );
    }
}

#[test]
fn a_job_whose_output_traps_is_a_failure_at_output() {
    let job = bundle(&stepper_wat(u64::MAX, true), EntryStyle::Stepper, 6);
    let truth = Run::of(&job);
    let failure = truth.claim.failure.unwrap();
    assert_eq!(
        failure,
        JobFailure {
            at: FailedAt::Output,
            reason: FailureReason::Trap
        }
    );
    assert!(
        truth.states.iter().all(Option::is_some),
        "every checkpoint is real"
    );
    // A provider that claims an output loses the output dispute to the verifier's failure.
    let lie = Run {
        claim: ResultClaim::succeeded(Hash::of(b"made up"), truth.claim.checkpoint_root, 6),
        ..truth.clone()
    };
    let g = dispute(&job, lie, false);
    assert_eq!(g.disputes(), vec![DisputeKind::Output]);
    assert_provider_lost(&g, "output claimed for a trapping output");
    // Honest on both sides: settled, nobody slashed.
    let g = dispute(&job, truth, true);
    assert!(g.slashed().is_empty());
    assert!(
        matches!(g.lease().state, LeaseState::Settled { failure: Some(f), .. } if f == failure)
    );
}

#[test]
fn a_job_that_is_not_a_bundle_fails_at_init_and_the_referee_says_so() {
    // The requester leased bytes that are no bundle at all.
    let junk = b"not a bundle, but leased all the same".to_vec();
    let failure = JobFailure {
        at: FailedAt::Init,
        reason: FailureReason::InvalidJob,
    };
    let leaves = failure.leaves(Vec::new(), 0).unwrap();
    let honest = Run {
        claim: ResultClaim::failed(failure, merkle_root(&leaves), 0),
        leaves,
        states: vec![None],
        units: 0,
        note: "the bundle does not decode".into(),
    };
    let lie = honest.with_leaf(0, checkpoint(b"state"));
    let lie = Run {
        claim: ResultClaim::succeeded(Hash::of(b"out"), lie.claim.checkpoint_root, 0),
        ..lie
    };
    let mut g = Game::new(2, junk, Verification::Redundant { k: 2 }, 1);
    g.set(PROVIDER, lie, false);
    g.set(2, honest, true);
    g.commit();
    g.play();
    assert_provider_lost(&g, "success claimed for an undecodable job");
    assert_eq!(g.ruling().unwrap().2, Some(failure));
}

#[test]
fn a_malformed_failure_claim_is_refused_and_changes_nothing() {
    let job = stepper(4, u64::MAX);
    let mut g = Game::new(1, job.bytes().to_vec(), Verification::None, 0);
    let failure = JobFailure {
        at: FailedAt::Step(4),
        reason: FailureReason::OutOfFuel,
    };
    // Sealed like any claim (the seal cannot see its shape)...
    let beyond = ResultClaim::failed(failure, Hash::of(b"root"), 4);
    let mut run = Run::of(&job);
    run.claim = beyond;
    g.set(PROVIDER, run, false);
    g.commit();
    let before = g.lease().clone();
    let balances: Vec<Amount> = (0..2).map(|i| g.net.balance(i)).collect();
    let stake = g.stake(PROVIDER);
    let reveal = |claim: ResultClaim, note: &str| TxBody::RevealResult {
        lease: LEASE,
        claim,
        note: failure_note(note),
    };
    let refusals = [
        // ...but a failure at step 4 of a 4-step job (steps 0..4) is no failure of this job.
        (reveal(beyond, ""), "step 4"),
        // A failure claim names no output.
        (
            reveal(
                ResultClaim {
                    output: Hash::of(b"out"),
                    ..beyond
                },
                "",
            ),
            "no output",
        ),
        // A note explains failures only.
        (
            reveal(
                ResultClaim::succeeded(Hash::of(b"o"), Hash::of(b"r"), 4),
                "why",
            ),
            "empty note",
        ),
    ];
    for (body, says) in refusals {
        let r = g.net.run(PROVIDER, body);
        let err = r.outcome.unwrap_err();
        assert!(
            matches!(
                err,
                TxError::MalformedClaim(_) | TxError::NoteWithoutFailure
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains(says), "{err}");
        // The lease, the balances and the stake are as they were.
        assert_eq!(g.lease(), &before);
        assert_eq!(
            (0..2).map(|i| g.net.balance(i)).collect::<Vec<_>>(),
            balances
        );
        assert_eq!(g.stake(PROVIDER), stake);
    }
    // The malformed claim can never be revealed: the provider misses its reveal and loses,
    // and the requester is refunded in full.
    g.net
        .empty_blocks(orrery_ledger::Params::default().reveal_blocks + 1);
    assert!(matches!(g.lease().state, LeaseState::Failed { .. }));
    assert_eq!(g.net.balance(REQUESTER), START_BALANCE);
}
