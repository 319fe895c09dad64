//! Checked billing: the metered units are sealed in the claim, so an overbilling provider
//! mismatches the verifiers' re-execution and loses like a wrong output, and an honest one is
//! paid to the unit.

mod common;

use common::*;
use orrery_ledger::entries::{CheckPhase, LeaseState};
use orrery_ledger::{Event, TxError};
use orrery_types::amount::Amount;
use orrery_types::resources::Usage;
use orrery_types::tx::{TxBody, Verification, result_seal};

const REQ: usize = 0;
const PROVIDER: usize = 1;
/// The units every honest re-execution of the job meters.
const TRUE_UNITS: u64 = 2_000_000;

/// A chain with a requester, the provider and four more providers to verify.
fn chain() -> Net {
    let mut net = Net::new(6);
    for i in 1..6 {
        make_provider(&mut net, i, 1);
    }
    let open = net.tx(
        REQ,
        TxBody::OpenLease {
            provider: net.id(PROVIDER),
            job: orrery_types::hash::Hash::of(b"job bundle"),
            terms: terms(10_000_000),
            deadline: net.state.height() + 200,
            verification: Verification::Redundant { k: 2 },
        },
    );
    let out = net.apply(vec![open]);
    assert!(out.receipts[0].is_ok(), "{:?}", out.receipts[0]);
    assert!(net.run(PROVIDER, TxBody::StartLease { lease: 0 }).is_ok());
    net
}

/// Commit `units`, then let every party do its part until the lease leaves checking: the
/// provider reveals what it sealed, every verifier seals and reveals the true units.
fn play(net: &mut Net, units: u64) -> Vec<Event> {
    let usage = Usage { seconds: 0, units };
    let r = net.run(PROVIDER, commit_body(net, PROVIDER, 0, usage, &claim()));
    assert!(r.is_ok(), "{r:?}");
    let index = |net: &Net, id| (0..net.keys.len()).find(|&i| net.id(i) == id).unwrap();
    let mut events = Vec::new();
    for _ in 0..20 {
        let LeaseState::Checking(check) = net.state.lease(0).unwrap().state.clone() else {
            let out = net.apply(vec![]);
            events.extend(out.events);
            if !matches!(
                net.state.lease(0).unwrap().state,
                LeaseState::Sealed { .. } | LeaseState::Checking(_)
            ) {
                break;
            }
            continue;
        };
        let mut txs = Vec::new();
        for c in check.claims.as_slice() {
            let i = index(net, c.party);
            let own = if i == PROVIDER { units } else { TRUE_UNITS };
            let body = match (check.phase, c.seal, c.revealed) {
                (CheckPhase::Sealing, None, _) => TxBody::CommitCheck {
                    lease: 0,
                    seal: result_seal(0, &c.party, &claim().with_units(own)),
                },
                (CheckPhase::Revealing, Some(_), None) => reveal_body(0, claim().with_units(own)),
                _ => continue,
            };
            txs.push(net.tx(i, body));
        }
        let out = net.apply(txs);
        for r in &out.receipts {
            events.extend(r.outcome.clone().expect("every move applies"));
        }
        events.extend(out.events);
    }
    events
}

#[test]
fn an_overbilling_provider_is_caught_like_a_wrong_output_and_slashed() {
    let mut net = chain();
    let requester_before = net.balance(REQ);
    let escrow = net.state.lease(0).unwrap().escrow;
    let stake = net.state.provider(&net.id(PROVIDER)).unwrap().stake;
    let events = play(&mut net, 3 * TRUE_UNITS);
    let tiebreak = events
        .iter()
        .find_map(|e| match e {
            Event::TiebreakDrawn {
                reason, verifiers, ..
            } => Some((reason, verifiers.len())),
            _ => None,
        })
        .expect("a units-only disagreement goes to re-executions");
    assert!(tiebreak.0.contains("metered units"), "{}", tiebreak.0);
    assert_eq!(tiebreak.1, 2);
    let slashed: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Slashed { party, amount, .. } => Some((*party, *amount)),
            _ => None,
        })
        .collect();
    let expected = stake.bps(net.state.params().slash_bps).unwrap();
    assert_eq!(slashed, vec![(net.id(PROVIDER), expected)]);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::LeaseFailed { lease: 0, .. }))
    );
    assert!(matches!(
        net.state.lease(0).unwrap().state,
        LeaseState::Failed { .. }
    ));
    // The requester pays nothing for the overbilled run.
    assert_eq!(
        net.balance(REQ),
        requester_before.checked_add(escrow).unwrap()
    );
    assert_eq!(
        net.state.provider(&net.id(PROVIDER)).unwrap().stake,
        stake.checked_sub(expected).unwrap()
    );
}

#[test]
fn an_honest_provider_is_paid_to_the_unit() {
    let mut net = chain();
    let events = play(&mut net, TRUE_UNITS);
    let paid = events
        .iter()
        .find_map(|e| match e {
            Event::LeaseSettled { provider_paid, .. } => Some(*provider_paid),
            _ => None,
        })
        .expect("settled");
    let lease = net.state.lease(0).unwrap();
    let cost = lease
        .terms
        .prices
        .cost(
            &lease.terms.resources,
            &Usage {
                seconds: 0,
                units: TRUE_UNITS,
            },
        )
        .unwrap();
    let fee = cost.bps(net.state.params().fee_bps).unwrap();
    assert_eq!(paid, cost.checked_sub(fee).unwrap());
    assert_eq!(cost, Amount::orr(2), "2 mega-units at 1 ORR");
    assert!(!events.iter().any(|e| matches!(e, Event::Slashed { .. })));
}

#[test]
fn a_provider_cannot_reveal_other_units_than_it_committed() {
    let mut net = Net::new(3);
    make_provider(&mut net, 1, 1);
    let out = net.apply(vec![open(&net, REQ, 1, 10_000_000, 50)]);
    assert!(out.receipts[0].is_ok());
    assert!(net.run(1, TxBody::StartLease { lease: 0 }).is_ok());
    // Committed 3M units but sealed a claim of 1M: the reveal is refused.
    let sealed = claim().with_units(1_000_000);
    let commit = TxBody::CommitResult {
        lease: 0,
        seal: result_seal(0, &net.id(1), &sealed),
        usage: Usage {
            seconds: 0,
            units: 3_000_000,
        },
    };
    assert!(net.run(1, commit).is_ok());
    let r = net.run(1, reveal_body(0, sealed));
    assert_eq!(
        r.outcome.unwrap_err(),
        TxError::UnitsMismatch {
            sealed: 1_000_000,
            committed: 3_000_000
        }
    );
}
