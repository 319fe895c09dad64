//! The money flows of a lease, end to end, with exact amounts.

mod common;

use common::*;
use orrery_ledger::entries::LeaseState;
use orrery_ledger::{Event, TxError};
use orrery_types::amount::Amount;
use orrery_types::resources::Usage;
use orrery_types::tx::TxBody;

const REQ: usize = 0;
const PROV: usize = 1;

fn commit(net: &mut Net, lease: u64, usage: Usage) -> orrery_ledger::Receipt {
    commit_and_reveal(net, PROV, lease, usage)
}

#[test]
fn a_lease_settles_automatically_and_every_unit_is_accounted_for() {
    let mut net = Net::new(3);
    make_provider(&mut net, PROV, 1);
    let before_req = net.balance(REQ);
    let before_prov = net.balance(PROV);

    // Max cost: 1 GPU × 2 ORR/h × 1 h + 10M units × 1 ORR/M = 12 ORR in escrow.
    let out = net.apply(vec![open(&net, REQ, PROV, 10_000_000, 2_000)]);
    let r = &out.receipts[0];
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(
        net.balance(REQ),
        before_req.checked_sub(Amount::orr(12)).unwrap()
    );
    assert_eq!(net.state.totals().escrow, Amount::orr(12));

    assert!(net.run(PROV, TxBody::StartLease { lease: 0 }).is_ok());
    net.empty_blocks(1799); // 1800 s of chain time pass (one block per second).
    // Half an hour on one GPU (1 ORR) + 4M units (4 ORR) = 5 ORR.
    let r = commit(
        &mut net,
        0,
        Usage {
            seconds: 1800,
            units: 4_000_000,
        },
    );
    assert!(r.is_ok(), "{r:?}");
    assert!(matches!(
        net.state.lease(0).unwrap().state,
        LeaseState::Committed { .. }
    ));

    // Nothing is paid during the challenge window; then it settles by itself.
    let window = net.state.params().challenge_blocks;
    let outs = net.empty_blocks(window);
    let settled: Vec<_> = outs
        .iter()
        .flat_map(|o| o.events.iter())
        .filter(|e| matches!(e, Event::LeaseSettled { .. }))
        .collect();
    assert_eq!(settled.len(), 1);

    let cost = Amount::orr(5);
    let fee = cost.bps(500).unwrap(); // 0.25 ORR
    let burned = fee.bps(5_000).unwrap(); // half burned, half to the two validators
    assert_eq!(
        settled[0],
        &Event::LeaseSettled {
            lease: 0,
            provider_paid: cost.checked_sub(fee).unwrap(),
            verifiers_paid: Amount::ZERO,
            fee,
            burned,
            refunded: Amount::orr(7),
        }
    );
    assert_eq!(net.balance(REQ), before_req.checked_sub(cost).unwrap());
    assert_eq!(
        net.balance(PROV),
        before_prov
            .checked_add(cost.checked_sub(fee).unwrap())
            .unwrap()
    );
    let per_validator = Amount(fee.checked_sub(burned).unwrap().units() / 2);
    for v in &net.validators {
        assert_eq!(net.state.account(&v.account()).balance, per_validator);
    }
    assert_eq!(net.state.globals().burned, burned);
    assert_eq!(net.state.totals().escrow, Amount::ZERO);
    let p = net.state.provider(&net.id(PROV)).unwrap();
    assert_eq!(p.reputation.settled, 1);
    assert_eq!(p.active_leases, 0);
}

#[test]
fn the_requester_can_accept_early_and_only_the_requester() {
    let mut net = Net::new(3);
    make_provider(&mut net, PROV, 1);
    net.apply(vec![open(&net, REQ, PROV, 1_000_000, 100)]);
    net.run(PROV, TxBody::StartLease { lease: 0 });
    assert!(
        commit(
            &mut net,
            0,
            Usage {
                seconds: 0,
                units: 1_000_000
            }
        )
        .is_ok()
    );
    let r = net.run(2, TxBody::SettleLease { lease: 0 });
    assert_eq!(r.outcome, Err(TxError::NotAuthorized { role: "requester" }));
    let r = net.run(REQ, TxBody::SettleLease { lease: 0 });
    assert!(r.is_ok(), "{r:?}");
    assert!(matches!(
        net.state.lease(0).unwrap().state,
        LeaseState::Settled { .. }
    ));
}

#[test]
fn a_lease_never_started_is_refunded_and_the_provider_docked() {
    let mut net = Net::new(3);
    make_provider(&mut net, PROV, 1);
    let stake = net.state.provider(&net.id(PROV)).unwrap().stake;
    let before = net.balance(REQ);
    net.apply(vec![open(&net, REQ, PROV, 10_000_000, 100)]);
    let outs = net.empty_blocks(net.state.params().start_timeout_blocks);
    let timed_out: Vec<_> = outs
        .iter()
        .flat_map(|o| &o.events)
        .filter(|e| matches!(e, Event::LeaseTimedOut { .. }))
        .collect();
    // 10% of the 12 ORR maximum cost is docked and burned.
    let docked = Amount::orr(12).bps(1_000).unwrap();
    assert_eq!(
        timed_out,
        vec![&Event::LeaseTimedOut {
            lease: 0,
            refunded: Amount::orr(12),
            docked
        }]
    );
    assert_eq!(net.balance(REQ), before);
    let p = net.state.provider(&net.id(PROV)).unwrap();
    assert_eq!(p.stake, stake.checked_sub(docked).unwrap());
    assert_eq!(p.reputation.timed_out, 1);
    assert_eq!(net.state.globals().burned, docked);
    // Too late to start now.
    let r = net.run(PROV, TxBody::StartLease { lease: 0 });
    assert!(
        matches!(r.outcome, Err(TxError::WrongLeaseState { .. })),
        "{r:?}"
    );
}

#[test]
fn a_lease_started_but_not_finished_by_its_deadline_times_out() {
    let mut net = Net::new(3);
    make_provider(&mut net, PROV, 1);
    let before = net.balance(REQ);
    net.apply(vec![open(&net, REQ, PROV, 1_000_000, 10)]);
    net.run(PROV, TxBody::StartLease { lease: 0 });
    net.empty_blocks(12);
    assert!(matches!(
        net.state.lease(0).unwrap().state,
        LeaseState::TimedOut { .. }
    ));
    assert_eq!(net.balance(REQ), before);
    let r = commit(
        &mut net,
        0,
        Usage {
            seconds: 1,
            units: 1,
        },
    );
    assert!(r.outcome.is_err());
}

#[test]
fn usage_claims_are_bounded_by_the_terms_and_by_elapsed_time() {
    let mut net = Net::new(3);
    make_provider(&mut net, PROV, 1);
    net.apply(vec![open(&net, REQ, PROV, 1_000_000, 100)]);
    net.run(PROV, TxBody::StartLease { lease: 0 });
    // One block (1 s) later: claiming an hour is refused, as is more units than allowed.
    assert_eq!(
        commit(
            &mut net,
            0,
            Usage {
                seconds: 3_600,
                units: 1
            }
        )
        .outcome,
        Err(TxError::UsageAboveLimit)
    );
    assert_eq!(
        commit(
            &mut net,
            0,
            Usage {
                seconds: 1,
                units: 1_000_001
            }
        )
        .outcome,
        Err(TxError::UsageAboveLimit)
    );
    assert!(
        commit(
            &mut net,
            0,
            Usage {
                seconds: 2,
                units: 1_000_000
            }
        )
        .is_ok()
    );
}

#[test]
fn only_the_provider_starts_and_commits() {
    let mut net = Net::new(3);
    make_provider(&mut net, PROV, 1);
    net.apply(vec![open(&net, REQ, PROV, 1_000_000, 100)]);
    assert_eq!(
        net.run(2, TxBody::StartLease { lease: 0 }).outcome,
        Err(TxError::NotAuthorized { role: "provider" })
    );
    assert_eq!(
        net.run(REQ, TxBody::StartLease { lease: 7 }).outcome,
        Err(TxError::UnknownLease(7))
    );
}

#[test]
fn unbonding_waits_for_the_delay_and_is_locked_by_active_leases() {
    let mut net = Net::new(3);
    make_provider(&mut net, PROV, 1);
    let stake = net.state.provider(&net.id(PROV)).unwrap().stake;
    net.apply(vec![open(&net, REQ, PROV, 1_000_000, 100)]);
    let r = net.run(
        PROV,
        TxBody::Unbond {
            amount: Amount::orr(1),
        },
    );
    assert!(
        matches!(r.outcome, Err(TxError::StakeLocked { .. })),
        "{r:?}"
    );
    // Let the lease time out, then unbond everything that is left.
    net.empty_blocks(net.state.params().start_timeout_blocks);
    let left = net.state.provider(&net.id(PROV)).unwrap().stake;
    assert!(left < stake);
    let before = net.balance(PROV);
    let r = net.run(PROV, TxBody::Unbond { amount: left });
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(net.state.totals().unbonding, left);
    let delay = net.state.params().unbonding_delay_blocks;
    net.empty_blocks(delay - 1);
    assert_eq!(net.balance(PROV), before, "released early");
    net.empty_blocks(1);
    assert_eq!(net.balance(PROV), before.checked_add(left).unwrap());
    assert_eq!(net.state.totals().unbonding, Amount::ZERO);
}

#[test]
fn minimum_stake_scales_with_the_hardware_offered() {
    let mut net = Net::new(3);
    net.run(PROV, TxBody::RegisterProvider(offer(8, prices())));
    let small = net
        .state
        .params()
        .min_stake(&offer(1, prices()).hardware)
        .unwrap();
    let big = net
        .state
        .params()
        .min_stake(&offer(8, prices()).hardware)
        .unwrap();
    assert!(big > small);
    net.run(PROV, TxBody::Bond { amount: small });
    let r = net
        .apply(vec![open(&net, REQ, PROV, 1_000_000, 100)])
        .receipts
        .remove(0);
    assert_eq!(
        r.outcome,
        Err(TxError::InsufficientStake {
            need: big,
            have: small
        })
    );
    net.run(
        PROV,
        TxBody::Bond {
            amount: big.checked_sub(small).unwrap(),
        },
    );
    assert!(
        net.apply(vec![open(&net, REQ, PROV, 1_000_000, 100)])
            .receipts[0]
            .is_ok()
    );
}

#[test]
fn epoch_emission_is_shared_pro_rata_to_settled_work() {
    let params = orrery_ledger::Params {
        epoch_blocks: 50,
        ..Default::default()
    };
    let mut net = Net::with_params(4, params);
    make_provider(&mut net, 1, 1);
    make_provider(&mut net, 2, 1);
    // Provider 1 does 1M units of work, provider 2 does 3M (prices are equal).
    net.apply(vec![
        open(&net, REQ, 1, 1_000_000, 40),
        net.tx_at(REQ, 1, open(&net, REQ, 2, 3_000_000, 40).tx.body),
    ]);
    net.apply(vec![
        net.tx(1, TxBody::StartLease { lease: 0 }),
        net.tx(2, TxBody::StartLease { lease: 1 }),
    ]);
    let c = |net: &Net, who: usize, lease, units| {
        commit_body(net, who, lease, Usage { seconds: 0, units }, &claim())
    };
    let reveal = |lease, units| reveal_body(lease, claim().with_units(units));
    net.apply(vec![
        net.tx(1, c(&net, 1, 0, 1_000_000)),
        net.tx(2, c(&net, 2, 1, 3_000_000)),
        net.tx_at(1, 1, reveal(0, 1_000_000)),
        net.tx_at(2, 1, reveal(1, 3_000_000)),
    ]);
    net.apply(vec![
        net.tx(REQ, TxBody::SettleLease { lease: 0 }),
        net.tx_at(REQ, 1, TxBody::SettleLease { lease: 1 }),
    ]);
    let (b1, b2) = (net.balance(1), net.balance(2));
    let to_boundary = 50 - net.state.height();
    let outs = net.empty_blocks(to_boundary);
    let minted: std::collections::BTreeMap<_, _> = outs
        .iter()
        .flat_map(|o| &o.events)
        .filter_map(|e| match e {
            Event::Minted {
                provider,
                amount,
                epoch: 0,
            } => Some((*provider, *amount)),
            _ => None,
        })
        .collect();
    let e = net.state.params().emission(0);
    let expected = [
        (net.id(1), e.mul_div(1, 4).unwrap()),
        (net.id(2), e.mul_div(3, 4).unwrap()),
    ];
    assert_eq!(minted, expected.into_iter().collect());
    assert_eq!(
        net.balance(1),
        b1.checked_add(e.mul_div(1, 4).unwrap()).unwrap()
    );
    assert_eq!(
        net.balance(2),
        b2.checked_add(e.mul_div(3, 4).unwrap()).unwrap()
    );
    assert_eq!(net.state.globals().minted, e);
    assert!(net.state.epoch_work().is_empty());
}

#[test]
fn a_tapered_emission_mints_the_schedule_less_the_burned_fees_share() {
    // One provider settles 10 ORR of work in epoch 0 (10M units at 1 ORR/M): 5% fee, half of it
    // burned = 0.25 ORR.
    let run = |taper: u16| {
        let params = orrery_ledger::Params {
            epoch_blocks: 50,
            emission_initial: Amount::orr(1),
            emission_taper_bps: taper,
            ..Default::default()
        };
        let mut net = Net::with_params(3, params);
        make_provider(&mut net, PROV, 1);
        net.apply(vec![open(&net, REQ, PROV, 10_000_000, 40)]);
        net.run(PROV, TxBody::StartLease { lease: 0 });
        let usage = Usage {
            seconds: 0,
            units: 10_000_000,
        };
        assert!(commit(&mut net, 0, usage).is_ok());
        assert!(net.run(REQ, TxBody::SettleLease { lease: 0 }).is_ok());
        let to_boundary = 50 - net.state.height();
        net.empty_blocks(to_boundary);
        net.state.globals().minted
    };
    // Fixed schedule (the default): the whole 1 ORR.
    assert_eq!(run(0), Amount::orr(1));
    // 100% taper: 1 − 0.25 = 0.75 ORR; 50%: 1 − 0.125 = 0.875 ORR.
    assert_eq!(run(10_000), Amount(750_000_000));
    assert_eq!(run(5_000), Amount(875_000_000));
    // The taper never mints less than nothing.
    let p = orrery_ledger::Params {
        emission_taper_bps: 10_000,
        ..Default::default()
    };
    assert_eq!(
        p.epoch_emission(0, Amount::orr(1_000_000_000)),
        Amount::ZERO
    );
    assert_eq!(p.epoch_emission(0, Amount::ZERO), p.emission(0));
}

#[test]
fn unchecked_work_earns_emission_only_at_its_weight() {
    // One provider settles 10 ORR of work nobody checks (verification `none`) in epoch 0.
    let run = |weight: u16| {
        let params = orrery_ledger::Params {
            epoch_blocks: 50,
            emission_initial: Amount::orr(1),
            emission_unchecked_weight_bps: weight,
            ..Default::default()
        };
        let mut net = Net::with_params(3, params);
        make_provider(&mut net, PROV, 1);
        net.apply(vec![open(&net, REQ, PROV, 10_000_000, 40)]);
        net.run(PROV, TxBody::StartLease { lease: 0 });
        let usage = Usage {
            seconds: 0,
            units: 10_000_000,
        };
        assert!(commit(&mut net, 0, usage).is_ok());
        assert!(net.run(REQ, TxBody::SettleLease { lease: 0 }).is_ok());
        let to_boundary = 50 - net.state.height();
        net.empty_blocks(to_boundary);
        (
            net.state.globals().minted,
            net.state.account(&net.id(PROV)).balance,
        )
    };
    let (all_minted, all_balance) = run(10_000);
    assert_eq!(
        all_minted,
        Amount::orr(1),
        "the default counts all settled work"
    );
    // Only checked work counts: unchecked work earns its pay and no emission.
    let (none_minted, none_balance) = run(0);
    assert_eq!(none_minted, Amount::ZERO);
    assert_eq!(
        all_balance.checked_sub(none_balance),
        Some(Amount::orr(1)),
        "the provider misses exactly the emission"
    );
    let bad = orrery_ledger::Params {
        emission_unchecked_weight_bps: 10_001,
        ..Default::default()
    };
    assert!(bad.validate().is_err());
}

#[test]
fn emission_halves_on_schedule() {
    let p = orrery_ledger::Params::default();
    assert_eq!(p.emission(0), p.emission_initial);
    assert_eq!(
        p.emission(p.emission_halving_epochs),
        Amount(p.emission_initial.units() / 2)
    );
    assert_eq!(p.emission(p.emission_halving_epochs * 200), Amount::ZERO);
}
