//! Cluster leases end to end through the real ledger: payment per completed round, dropped
//! workers, checks that catch a wrong delta, and refusals of bad input.

mod common;

use common::{Net, offer, prices};
use orrery_ledger::entries::{ClusterPhase, CommitStatus, MemberStatus};
use orrery_ledger::{Event, Params, State, TxError};
use orrery_types::amount::Amount;
use orrery_types::cluster::{LossBits, cluster_check_seal, cluster_delta_commitment};
use orrery_types::codec::BoundedVec;
use orrery_types::crypto::AccountId;
use orrery_types::hash::Hash;
use orrery_types::resources::ResourceRequest;
use orrery_types::tx::{LeaseId, LeaseTerms, SignedTx, TxBody};

const REQUESTER: usize = 0;
/// One worker-round's pay: 2 ORR per GPU-hour for one GPU-hour, no units.
const ROUND_COST: Amount = Amount::orr(2);

fn params() -> Params {
    // No epoch boundary inside a test, so no emission moves balances under it.
    Params {
        epoch_blocks: 1_000_000,
        ..Params::default()
    }
}

/// Accounts 1..=6 are one-GPU providers; 0 is the requester.
fn net() -> Net {
    let mut net = Net::with_params(8, params());
    for i in 1..=6 {
        assert!(
            net.run(i, TxBody::RegisterProvider(cluster_offer(&net, i)))
                .is_ok()
        );
        let need = net.state.params().min_stake(&offer(1, prices()).hardware);
        assert!(
            net.run(
                i,
                TxBody::Bond {
                    amount: need.unwrap()
                }
            )
            .is_ok()
        );
    }
    net
}

/// Provider `i`'s one-GPU offer, publishing its cluster contact: it runs cluster workers.
fn cluster_offer(net: &Net, i: usize) -> orrery_types::tx::ProviderOffer {
    let mut o = offer(1, prices());
    let endpoint = orrery_types::cluster::cluster_endpoint(
        o.endpoint.as_str(),
        7300 + i as u16,
        net.keys[i].public_key(),
    )
    .unwrap();
    o.endpoint = orrery_types::codec::Text::new(endpoint).unwrap();
    o
}

fn terms() -> LeaseTerms {
    LeaseTerms {
        resources: ResourceRequest {
            gpus: 1,
            cpu_cores: 2,
            ram_gib: 8,
        },
        prices: prices(),
        max_seconds: 3_600,
        max_units: 0,
    }
}

fn open_body(net: &Net, members: &[usize], rounds: u32, check_bps: u16) -> TxBody {
    TxBody::OpenClusterLease {
        members: BoundedVec::new(members.iter().map(|i| net.id(*i)).collect()).unwrap(),
        job: Hash::of(b"cluster bundle"),
        terms: terms(),
        rounds,
        inner_steps: 20,
        round_blocks: 5,
        check_bps,
    }
}

fn open(net: &mut Net, members: &[usize], rounds: u32, check_bps: u16) -> LeaseId {
    let r = net.run(REQUESTER, open_body(net, members, rounds, check_bps));
    let events = r.outcome.expect("cluster lease opens");
    match &events[0] {
        Event::ClusterLeaseOpened { lease, .. } => *lease,
        e => panic!("unexpected event {e:?}"),
    }
}

fn delta(worker: usize, round: u32) -> Hash {
    Hash::of_parts(&[b"delta", &[worker as u8], &round.to_be_bytes()])
}

/// `worker`'s commit of a round whose delta hashes to `d`.
fn commit_as(net: &Net, worker: usize, lease: LeaseId, round: u32, d: Hash) -> TxBody {
    TxBody::CommitClusterRound {
        lease,
        round,
        start: Hash::of_parts(&[b"weights", &round.to_be_bytes()]),
        delta: cluster_delta_commitment(lease, round, &net.id(worker), &d),
        loss: LossBits::of(3.0 - round as f32 * 0.1),
    }
}

/// Every listed worker commits its honest delta for `round`, all in one block.
fn commit_all(net: &mut Net, lease: LeaseId, round: u32, workers: &[usize]) {
    let txs = workers
        .iter()
        .map(|w| net.tx(*w, commit_as(net, *w, lease, round, delta(*w, round))))
        .collect();
    let out = net.apply(txs);
    for r in out.receipts {
        assert!(r.is_ok(), "{r:?}");
    }
}

fn stake(net: &Net, i: usize) -> Amount {
    net.state.provider(&net.id(i)).unwrap().stake
}

fn after_fee(net: &Net, cost: Amount) -> Amount {
    cost.checked_sub(cost.bps(net.state.params().fee_bps).unwrap())
        .unwrap()
}

fn refused(r: &orrery_ledger::Receipt) -> TxError {
    r.outcome.clone().expect_err("refused")
}

#[test]
fn honest_workers_are_paid_exactly_per_completed_round() {
    let mut net = net();
    let workers = [1, 2, 3];
    let before: Vec<Amount> = (0..4).map(|i| net.balance(i)).collect();
    let lease = open(&mut net, &workers, 2, 0);
    let escrow = ROUND_COST.checked_mul(6).unwrap();
    assert_eq!(
        net.balance(REQUESTER),
        before[0].checked_sub(escrow).unwrap()
    );
    assert_eq!(net.state.cluster_lease(lease).unwrap().escrow, escrow);

    commit_all(&mut net, lease, 0, &workers);
    commit_all(&mut net, lease, 1, &workers);
    net.empty_blocks(1); // the draw of round 1 pays it

    let l = net.state.cluster_lease(lease).unwrap();
    assert_eq!(l.phase, ClusterPhase::Finished);
    assert_eq!(l.refunded, Amount::ZERO, "every worker-round was completed");
    let per_round = after_fee(&net, ROUND_COST);
    for w in workers {
        let m = l.member(&net.id(w)).unwrap();
        assert_eq!(m.rounds_paid, 2);
        assert_eq!(
            net.balance(w),
            before[w]
                .checked_add(per_round.checked_mul(2).unwrap())
                .unwrap()
        );
        assert_eq!(net.state.provider(&net.id(w)).unwrap().active_leases, 0);
    }
    assert_eq!(
        net.balance(REQUESTER),
        before[0].checked_sub(escrow).unwrap()
    );
    // The chain keeps every round's commits and losses.
    let rounds: Vec<_> = net.state.cluster_rounds(lease).collect();
    assert_eq!(rounds.len(), 2);
    assert_eq!(rounds[1].1.commits.len(), 3);
    assert_eq!(rounds[1].1.commits.as_slice()[0].loss, LossBits::of(2.9));
    // The records are part of the state root: a reload from the entries reproduces it.
    let reloaded = State::from_entries(net.state.entries()).unwrap();
    assert_eq!(reloaded.root(), net.state.root());
}

#[test]
fn a_worker_missing_a_round_is_dropped_docked_and_unpaid() {
    let mut net = net();
    let workers = [1, 2, 3];
    let start = net.balance(REQUESTER);
    let (bal3, stake3) = (net.balance(3), stake(&net, 3));
    let lease = open(&mut net, &workers, 2, 0);
    // Worker 3 dies: the round waits for its deadline, then completes without it.
    commit_all(&mut net, lease, 0, &[1, 2]);
    let out = net.empty_blocks(5);
    let dropped = out
        .iter()
        .flat_map(|o| o.events.iter())
        .find_map(|e| match e {
            Event::ClusterMemberDropped { member, docked, .. } => Some((*member, *docked)),
            _ => None,
        });
    let docked = ROUND_COST
        .bps(net.state.params().timeout_penalty_bps)
        .unwrap();
    assert_eq!(dropped, Some((net.id(3), docked)));
    assert_eq!(stake(&net, 3), stake3.checked_sub(docked).unwrap());
    // Its late commit is refused: it is out of the lease.
    let late = net.run(3, commit_as(&net, 3, lease, 0, delta(3, 0)));
    assert!(matches!(refused(&late), TxError::MemberDropped { .. }));
    // The lease goes on with the others; round 1 closes as soon as both committed.
    commit_all(&mut net, lease, 1, &[1, 2]);
    net.empty_blocks(1);
    let l = net.state.cluster_lease(lease).unwrap();
    assert_eq!(l.phase, ClusterPhase::Finished);
    assert_eq!(l.member(&net.id(3)).unwrap().status, MemberStatus::Dropped);
    assert_eq!(l.member(&net.id(3)).unwrap().rounds_paid, 0);
    assert_eq!(
        net.balance(3),
        bal3,
        "never paid for work it did not complete"
    );
    // The requester paid for exactly the four completed worker-rounds.
    let paid = ROUND_COST.checked_mul(4).unwrap();
    assert_eq!(l.refunded, ROUND_COST.checked_mul(2).unwrap());
    assert_eq!(net.balance(REQUESTER), start.checked_sub(paid).unwrap());
    assert_eq!(net.state.provider(&net.id(3)).unwrap().active_leases, 0);
}

/// The checks drawn in `out`: `(worker, verifiers)`.
fn drawn(out: &orrery_ledger::BlockOutcome) -> Vec<(AccountId, Vec<AccountId>)> {
    out.events
        .iter()
        .filter_map(|e| match e {
            Event::ClusterCheckDrawn {
                worker, verifiers, ..
            } => Some((*worker, verifiers.clone())),
            _ => None,
        })
        .collect()
}

fn index_of(net: &Net, who: AccountId) -> usize {
    (0..net.keys.len()).find(|i| net.id(*i) == who).unwrap()
}

/// Each `(verifier, worker)` seals `d` in one block, then reveals in the next.
fn check(net: &mut Net, lease: LeaseId, round: u32, votes: &[(AccountId, AccountId, Hash)]) {
    let seals = votes
        .iter()
        .map(|(v, w, d)| {
            let seal = cluster_check_seal(lease, round, w, v, d);
            let body = TxBody::SealClusterCheck {
                lease,
                round,
                worker: *w,
                seal,
            };
            net.tx(index_of(net, *v), body)
        })
        .collect();
    for r in net.apply(seals).receipts {
        assert!(r.is_ok(), "{r:?}");
    }
    let reveals = votes
        .iter()
        .map(|(v, w, d)| {
            let body = TxBody::RevealClusterCheck {
                lease,
                round,
                worker: *w,
                delta: *d,
            };
            net.tx(index_of(net, *v), body)
        })
        .collect();
    for r in net.apply(reveals).receipts {
        assert!(r.is_ok(), "{r:?}");
    }
}

#[test]
fn a_wrong_delta_is_caught_slashed_and_excluded_and_the_verifiers_are_rewarded() {
    let mut net = net();
    let (w1, w2) = (net.id(1), net.id(2));
    let start = net.balance(REQUESTER);
    let (bal1, stake1) = (net.balance(1), stake(&net, 1));
    let lease = open(&mut net, &[1, 2], 1, 10_000);
    // Worker 1 sends a delta that is not what its round computes; worker 2 is honest.
    let txs = vec![
        net.tx(1, commit_as(&net, 1, lease, 0, Hash::of(b"lazy delta"))),
        net.tx(2, commit_as(&net, 2, lease, 0, delta(2, 0))),
    ];
    net.apply(txs);
    let out = net.apply(vec![]);
    let checks = drawn(&out);
    assert_eq!(checks.len(), 2, "check_bps = 10000 draws every commit");
    let first_of = |w: AccountId| checks.iter().find(|c| c.0 == w).unwrap().1[0];
    let (v1, v2) = (first_of(w1), first_of(w2));
    let verifier_balance = net.balance(index_of(&net, v1));
    // Verifiers recompute: worker 2's delta matches, worker 1's does not.
    check(
        &mut net,
        lease,
        0,
        &[(v1, w1, delta(1, 0)), (v2, w2, delta(2, 0))],
    );
    // The dissent brings tie-breakers at the next block.
    let out = net.apply(vec![]);
    let tiebreak = drawn(&out);
    assert_eq!(tiebreak.len(), 1);
    assert_eq!(tiebreak[0].0, w1);
    let votes: Vec<_> = tiebreak[0]
        .1
        .iter()
        .map(|v| (*v, w1, delta(1, 0)))
        .collect();
    assert_eq!(votes.len(), 2);
    check(&mut net, lease, 0, &votes);

    let rec = net.state.cluster_round(lease, 0).unwrap();
    assert_eq!(rec.commit_of(&w1).unwrap().status, CommitStatus::Excluded);
    assert_eq!(rec.commit_of(&w2).unwrap().status, CommitStatus::Paid);
    assert!(
        rec.recompute,
        "the round is recomputed without the wrong delta"
    );
    let slash = stake1.bps(net.state.params().slash_bps).unwrap();
    assert_eq!(stake(&net, 1), stake1.checked_sub(slash).unwrap());
    assert_eq!(net.balance(1), bal1, "a wrong round is not paid");
    // The first verifier: its round's pay plus a third of the slash reward.
    let reward = slash.bps(net.state.params().slash_reward_bps).unwrap();
    let share = Amount(reward.units() / 3);
    assert_eq!(
        net.balance(index_of(&net, v1)),
        verifier_balance
            .checked_add(after_fee(&net, ROUND_COST))
            .unwrap()
            .checked_add(share)
            .unwrap()
    );
    // The requester paid worker 2 and the two first verifiers; the rest came back.
    let l = net.state.cluster_lease(lease).unwrap();
    assert_eq!(l.phase, ClusterPhase::Finished);
    let spent = ROUND_COST.checked_mul(3).unwrap();
    assert_eq!(net.balance(REQUESTER), start.checked_sub(spent).unwrap());
}

#[test]
fn a_lying_verifier_is_outvoted_and_the_honest_worker_paid() {
    let mut net = net();
    let w1 = net.id(1);
    let (bal1, stake1) = (net.balance(1), stake(&net, 1));
    let lease = open(&mut net, &[1], 1, 10_000);
    commit_all(&mut net, lease, 0, &[1]);
    let out = net.apply(vec![]);
    let v = drawn(&out)[0].1[0];
    let v_stake = stake(&net, index_of(&net, v));
    check(&mut net, lease, 0, &[(v, w1, Hash::of(b"a lie"))]);
    let out = net.apply(vec![]);
    let votes: Vec<_> = drawn(&out)[0]
        .1
        .iter()
        .map(|t| (*t, w1, delta(1, 0)))
        .collect();
    check(&mut net, lease, 0, &votes);
    let rec = net.state.cluster_round(lease, 0).unwrap();
    assert_eq!(rec.commit_of(&w1).unwrap().status, CommitStatus::Paid);
    assert!(!rec.recompute);
    assert_eq!(stake(&net, 1), stake1, "an honest worker is never slashed");
    assert!(net.balance(1) > bal1);
    let slash = v_stake.bps(net.state.params().slash_bps).unwrap();
    assert_eq!(
        stake(&net, index_of(&net, v)),
        v_stake.checked_sub(slash).unwrap()
    );
}

#[test]
fn bad_cluster_input_is_refused_with_typed_errors() {
    let mut net = net();
    // Bad leases.
    let mut h0 = open_body(&net, &[1, 2], 2, 0);
    if let TxBody::OpenClusterLease { inner_steps, .. } = &mut h0 {
        *inner_steps = 0;
    }
    assert!(matches!(
        refused(&net.run(REQUESTER, h0)),
        TxError::BadClusterRounds(_)
    ));
    let none = open_body(&net, &[], 2, 0);
    assert!(matches!(
        refused(&net.run(REQUESTER, none)),
        TxError::BadClusterSize { got: 0, .. }
    ));
    let twice = open_body(&net, &[1, 1], 2, 0);
    assert!(matches!(
        refused(&net.run(REQUESTER, twice)),
        TxError::BadClusterMember {
            why: "named twice",
            ..
        }
    ));
    let stranger = open_body(&net, &[1, 7], 2, 0);
    let e = refused(&net.run(REQUESTER, stranger));
    assert_eq!(
        e,
        TxError::BadClusterMember {
            member: net.id(7),
            why: "not a registered provider"
        }
    );
    // A CPU-only provider does not fit a GPU round.
    assert!(
        net.run(7, TxBody::RegisterProvider(offer(0, prices())))
            .is_ok()
    );
    let need = net
        .state
        .params()
        .min_stake(&offer(0, prices()).hardware)
        .unwrap();
    assert!(net.run(7, TxBody::Bond { amount: need }).is_ok());
    let unfit = open_body(&net, &[1, 7], 2, 0);
    assert_eq!(
        refused(&net.run(REQUESTER, unfit)),
        TxError::BadClusterMember {
            member: net.id(7),
            why: "its hardware does not fit the requested resources"
        }
    );
    // A fitting provider that publishes no cluster contact has not consented to cluster work
    // (it runs no worker, and would only be docked); once it publishes one, it may be named.
    assert!(
        net.run(7, TxBody::UpdateProvider(offer(1, prices())))
            .is_ok()
    );
    let more = net
        .state
        .params()
        .min_stake(&offer(1, prices()).hardware)
        .and_then(|m| m.checked_sub(need))
        .unwrap();
    assert!(net.run(7, TxBody::Bond { amount: more }).is_ok());
    let silent = open_body(&net, &[1, 7], 2, 0);
    assert_eq!(
        refused(&net.run(REQUESTER, silent)),
        TxError::BadClusterMember {
            member: net.id(7),
            why: "its offer publishes no cluster contact for its account (it runs no cluster workers)"
        }
    );
    // Nor may it publish another account's key.
    let mut borrowed = offer(1, prices());
    borrowed.endpoint = orrery_types::codec::Text::new(
        orrery_types::cluster::cluster_endpoint(
            "http://127.0.0.1:7100",
            7300,
            net.keys[1].public_key(),
        )
        .unwrap(),
    )
    .unwrap();
    assert!(net.run(7, TxBody::UpdateProvider(borrowed)).is_ok());
    let borrowed = open_body(&net, &[1, 7], 2, 0);
    assert!(matches!(
        refused(&net.run(REQUESTER, borrowed)),
        TxError::BadClusterMember { why, .. } if why.contains("no cluster contact")
    ));
    assert!(
        net.run(7, TxBody::UpdateProvider(cluster_offer(&net, 7)))
            .is_ok()
    );
    assert!(net.run(REQUESTER, open_body(&net, &[1, 7], 2, 0)).is_ok());
    // More members than the type holds cannot even be encoded.
    assert!(BoundedVec::<AccountId, 16>::new(vec![net.id(1); 17]).is_err());

    // Bad commits, on a lease whose rounds last long enough for all of them.
    let mut long = open_body(&net, &[1, 2], 2, 0);
    if let TxBody::OpenClusterLease { round_blocks, .. } = &mut long {
        *round_blocks = 20;
    }
    let lease = match &net.run(REQUESTER, long).outcome.unwrap()[0] {
        Event::ClusterLeaseOpened { lease, .. } => *lease,
        e => panic!("unexpected event {e:?}"),
    };
    let unknown = net.run(1, commit_as(&net, 1, lease + 100, 0, delta(1, 0)));
    assert_eq!(refused(&unknown), TxError::UnknownClusterLease(lease + 100));
    let outsider = net.run(3, commit_as(&net, 3, lease, 0, delta(3, 0)));
    assert!(matches!(refused(&outsider), TxError::NotAMember { .. }));
    let ahead = net.run(1, commit_as(&net, 1, lease, 1, delta(1, 1)));
    assert!(matches!(
        refused(&ahead),
        TxError::WrongRound { got: 1, .. }
    ));
    assert!(
        net.run(1, commit_as(&net, 1, lease, 0, delta(1, 0)))
            .is_ok()
    );
    let again = net.run(1, commit_as(&net, 1, lease, 0, delta(1, 0)));
    assert!(matches!(refused(&again), TxError::AlreadyCommitted { .. }));
    let mut other_start = commit_as(&net, 2, lease, 0, delta(2, 0));
    if let TxBody::CommitClusterRound { start, .. } = &mut other_start {
        *start = Hash::of(b"other weights");
    }
    assert!(matches!(
        refused(&net.run(2, other_start)),
        TxError::StartWeightsMismatch { .. }
    ));
    // Past the deadline the round closes without worker 2; its late commit is refused.
    net.empty_blocks(20);
    let late = net.run(2, commit_as(&net, 2, lease, 0, delta(2, 0)));
    assert!(matches!(refused(&late), TxError::MemberDropped { .. }));
    let stale = net.run(1, commit_as(&net, 1, lease, 0, delta(1, 0)));
    assert!(matches!(
        refused(&stale),
        TxError::WrongRound { got: 0, .. }
    ));
    // A provider that was not drawn cannot seal a check.
    let seal = TxBody::SealClusterCheck {
        lease,
        round: 0,
        worker: net.id(1),
        seal: Hash::of(b"seal"),
    };
    assert!(matches!(
        refused(&net.run(4, seal)),
        TxError::NoClusterCheck { .. }
    ));
}

/// What a worker does in a round of the seeded runs.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Move {
    Honest,
    Wrong,
    Silent,
}

/// Drive one seeded cluster lease to its end: workers commit honestly, wrongly or not at all,
/// drawn verifiers (honest) seal and reveal what the round really computes. Returns the chain.
fn seeded_run(seed: u64) -> (Net, LeaseId, Vec<Vec<Move>>) {
    let mut net = net();
    net.seed_salt = seed;
    let mut rng = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let n = 1 + next(3) as usize;
    let rounds = 1 + next(3) as u32;
    let check_bps = [0, 5_000, 10_000][next(3) as usize];
    let workers: Vec<usize> = (1..=n).collect();
    let lease = open(&mut net, &workers, rounds, check_bps);
    let moves: Vec<Vec<Move>> = (0..rounds)
        .map(|_| {
            (0..n)
                .map(|_| [Move::Honest, Move::Honest, Move::Wrong, Move::Silent][next(4) as usize])
                .collect()
        })
        .collect();
    for _ in 0..400 {
        let l = net.state.cluster_lease(lease).unwrap().clone();
        if l.phase == ClusterPhase::Finished {
            break;
        }
        let mut txs = Vec::new();
        if !l.rounds_over() && net.state.height() + 1 >= l.round_opens_at {
            let r = l.round;
            for (i, w) in workers.iter().enumerate() {
                let live = l.member(&net.id(*w)).unwrap().status == MemberStatus::Live;
                let done = net
                    .state
                    .cluster_round(lease, r)
                    .is_some_and(|rec| rec.commit_of(&net.id(*w)).is_some());
                let d = match moves[r as usize][i] {
                    Move::Honest => delta(*w, r),
                    Move::Wrong => Hash::of(b"wrong"),
                    Move::Silent => continue,
                };
                if live && !done {
                    txs.push(net.tx(*w, commit_as(&net, *w, lease, r, d)));
                }
            }
        }
        txs.extend(verifier_txs(&net, lease));
        net.apply(txs);
    }
    (net, lease, moves)
}

/// The seal or reveal every seated verifier owes now, for the honest delta.
fn verifier_txs(net: &Net, lease: LeaseId) -> Vec<SignedTx> {
    use orrery_ledger::entries::ClusterCheckPhase;
    let mut txs = Vec::new();
    let mut nonce_offset: std::collections::BTreeMap<usize, u64> = Default::default();
    for (r, rec) in net.state.cluster_rounds(lease) {
        for check in rec.checks.as_slice() {
            if rec.commit_of(&check.worker).unwrap().status != CommitStatus::Checking {
                continue;
            }
            let w = index_of(net, check.worker);
            let honest = delta(w, r);
            for slot in check.slots.as_slice() {
                let v = index_of(net, slot.verifier);
                let body = match (check.phase, slot.seal, slot.revealed) {
                    (ClusterCheckPhase::Sealing, None, _) => TxBody::SealClusterCheck {
                        lease,
                        round: r,
                        worker: check.worker,
                        seal: cluster_check_seal(lease, r, &check.worker, &slot.verifier, &honest),
                    },
                    (ClusterCheckPhase::Revealing, Some(_), None) => TxBody::RevealClusterCheck {
                        lease,
                        round: r,
                        worker: check.worker,
                        delta: honest,
                    },
                    _ => continue,
                };
                let off = nonce_offset.entry(v).or_default();
                txs.push(net.tx_at(v, *off, body));
                *off += 1;
            }
        }
    }
    txs
}

#[test]
fn seeded_cluster_runs_pay_exactly_what_was_earned_and_never_slash_the_honest() {
    // How often each case happened over the seeds: each must, or the test proves little.
    let (mut caught, mut missed_wrong, mut drops, mut checks) = (0, 0, 0, 0);
    for seed in 0..24 {
        let stakes: Vec<Amount> = (1..=6).map(|i| stake(&net(), i)).collect();
        let start = net().balance(REQUESTER);
        let (net, lease, moves) = seeded_run(seed);
        let l = net.state.cluster_lease(lease).unwrap();
        assert_eq!(
            l.phase,
            ClusterPhase::Finished,
            "seed {seed}: the lease ends"
        );
        let mut paid_rounds = 0u128;
        for (i, m) in l.members.as_slice().iter().enumerate() {
            let w = i + 1;
            let mut expected = 0;
            let mut dropped = false;
            for (r, round_moves) in moves.iter().enumerate() {
                if dropped {
                    break;
                }
                let rec = net.state.cluster_round(lease, r as u32).unwrap();
                match round_moves[i] {
                    Move::Silent => dropped = true,
                    Move::Honest => expected += 1,
                    // A wrong delta is paid only when no check drew it.
                    Move::Wrong => {
                        let c = rec.commit_of(&net.id(w)).unwrap();
                        if rec.checks.as_slice().iter().all(|k| k.worker != c.worker) {
                            expected += 1;
                            missed_wrong += 1;
                        } else {
                            caught += 1;
                            assert_eq!(c.status, CommitStatus::Excluded, "seed {seed}");
                            assert!(rec.recompute);
                        }
                    }
                }
            }
            assert_eq!(m.rounds_paid, expected, "seed {seed} worker {w}: {moves:?}");
            assert_eq!(m.status == MemberStatus::Dropped, dropped, "seed {seed}");
            drops += usize::from(dropped);
            paid_rounds += u128::from(m.rounds_paid);
            let honest_only = moves.iter().all(|r| r[i] != Move::Wrong);
            if honest_only {
                let lost = stakes[i].checked_sub(stake(&net, w)).unwrap();
                assert_eq!(
                    lost,
                    if dropped { m.docked } else { Amount::ZERO },
                    "seed {seed}"
                );
            }
        }
        // Honest verifiers are never slashed.
        for v in 4..=6 {
            assert!(
                stake(&net, v) >= stakes[v - 1],
                "seed {seed}: verifier {v} lost stake"
            );
        }
        // The requester paid exactly the worker-rounds completed plus the funded checks.
        let funded: u128 = net
            .state
            .cluster_rounds(lease)
            .map(|(_, rec)| rec.checks.len() as u128)
            .sum();
        checks += funded;
        let spent = ROUND_COST.checked_mul(paid_rounds + funded).unwrap();
        assert_eq!(
            net.balance(REQUESTER),
            start.checked_sub(spent).unwrap(),
            "seed {seed}"
        );
    }
    assert!(
        caught > 0 && missed_wrong > 0 && drops > 0 && checks > 0,
        "caught {caught}, unchecked wrong {missed_wrong}, drops {drops}, checks {checks}"
    );
}
