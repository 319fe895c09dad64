//! Property tests over random transaction sequences: the supply invariant holds after every
//! block, and applying the same blocks again — or reloading the state from its entries — gives
//! the same state root.

mod common;

use common::*;
use orrery_ledger::{Signatures, State, apply_block};
use orrery_types::amount::Amount;
use orrery_types::hash::Hash;
use orrery_types::resources::Usage;
use orrery_types::tx::{SignedTx, TxBody, Verification};
use proptest::prelude::*;

const ACCOUNTS: usize = 5;

#[derive(Clone, Debug)]
enum Op {
    Transfer {
        from: usize,
        to: usize,
        units: u128,
    },
    Register {
        who: usize,
        gpus: u16,
    },
    Bond {
        who: usize,
        orr: u64,
    },
    Unbond {
        who: usize,
        orr: u64,
    },
    Open {
        req: usize,
        prov: usize,
        units: u64,
        deadline_in: u64,
    },
    Start {
        who: usize,
        lease: u64,
    },
    Commit {
        who: usize,
        lease: u64,
        seconds: u64,
        units: u64,
    },
    Settle {
        who: usize,
        lease: u64,
    },
    BadNonce {
        who: usize,
    },
    Wait {
        blocks: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let who = 0..ACCOUNTS;
    prop_oneof![
        (who.clone(), 0..ACCOUNTS, 0u128..2_000_000_000_000_000)
            .prop_map(|(from, to, units)| Op::Transfer { from, to, units }),
        (who.clone(), 0u16..3).prop_map(|(who, gpus)| Op::Register { who, gpus }),
        (who.clone(), 0u64..5_000).prop_map(|(who, orr)| Op::Bond { who, orr }),
        (who.clone(), 0u64..3_000).prop_map(|(who, orr)| Op::Unbond { who, orr }),
        (who.clone(), 0..ACCOUNTS, 0u64..50_000_000, 1u64..80).prop_map(
            |(req, prov, units, deadline_in)| Op::Open {
                req,
                prov,
                units,
                deadline_in
            }
        ),
        (who.clone(), 0u64..12).prop_map(|(who, lease)| Op::Start { who, lease }),
        (who.clone(), 0u64..12, 0u64..120, 0u64..60_000_000).prop_map(
            |(who, lease, seconds, units)| Op::Commit {
                who,
                lease,
                seconds,
                units
            }
        ),
        (who.clone(), 0u64..12).prop_map(|(who, lease)| Op::Settle { who, lease }),
        who.prop_map(|who| Op::BadNonce { who }),
        (1u64..40).prop_map(|blocks| Op::Wait { blocks }),
    ]
}

/// Turn ops into blocks (up to 4 transactions per block, nonces tracked per sender).
fn run_ops(net: &mut Net, ops: Vec<Op>) {
    let mut pending: Vec<SignedTx> = Vec::new();
    let mut offsets = [0u64; ACCOUNTS];
    let flush = |net: &mut Net, pending: &mut Vec<SignedTx>, offsets: &mut [u64; ACCOUNTS]| {
        if !pending.is_empty() {
            net.apply(std::mem::take(pending));
            *offsets = [0; ACCOUNTS];
        }
    };
    for op in ops {
        let (who, body) = match op {
            Op::Wait { blocks } => {
                flush(net, &mut pending, &mut offsets);
                net.empty_blocks(blocks);
                continue;
            }
            Op::BadNonce { who } => {
                pending.push(net.tx_at(
                    who,
                    offsets[who] + 100,
                    TxBody::Bond {
                        amount: Amount::orr(1),
                    },
                ));
                continue;
            }
            Op::Transfer { from, to, units } => (
                from,
                TxBody::Transfer {
                    to: net.id(to),
                    amount: Amount(units),
                },
            ),
            Op::Register { who, gpus } => (who, TxBody::RegisterProvider(offer(gpus, prices()))),
            Op::Bond { who, orr } => (
                who,
                TxBody::Bond {
                    amount: Amount::orr(orr),
                },
            ),
            Op::Unbond { who, orr } => (
                who,
                TxBody::Unbond {
                    amount: Amount::orr(orr),
                },
            ),
            Op::Open {
                req,
                prov,
                units,
                deadline_in,
            } => (
                req,
                TxBody::OpenLease {
                    provider: net.id(prov),
                    job: Hash::of(&units.to_be_bytes()),
                    terms: terms(units),
                    deadline: net.state.height() + 1 + deadline_in,
                    verification: Verification::None,
                },
            ),
            Op::Start { who, lease } => (who, TxBody::StartLease { lease }),
            Op::Commit {
                who,
                lease,
                seconds,
                units,
            } => {
                // Commit, then reveal in the same block (leases here are unchecked).
                let body = commit_body(net, who, lease, Usage { seconds, units }, &claim());
                pending.push(net.tx_at(who, offsets[who], body));
                offsets[who] += 1;
                (who, reveal_body(lease, claim().with_units(units)))
            }
            Op::Settle { who, lease } => (who, TxBody::SettleLease { lease }),
        };
        // Every earlier transaction of this sender in the block spends its nonce, applied or
        // refused by its action, so later ones still reach their own checks.
        pending.push(net.tx_at(who, offsets[who], body));
        offsets[who] += 1;
        if pending.len() >= 4 {
            flush(net, &mut pending, &mut offsets);
        }
    }
    flush(net, &mut pending, &mut offsets);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn supply_is_conserved_and_replay_is_deterministic(ops in proptest::collection::vec(op(), 1..120)) {
        let mut net = Net::new(ACCOUNTS);
        // Net::apply audits the full invariant set after every block.
        run_ops(&mut net, ops);
        let g = net.state.globals();
        let supply = g.genesis_supply.checked_add(g.minted).unwrap().checked_sub(g.burned).unwrap();
        prop_assert_eq!(net.state.totals().sum(), Some(supply));

        // Replay the same blocks on a fresh genesis: identical roots at the end.
        let mut replay = State::genesis(&genesis(&net.keys, &net.validators, net.state.params().clone())).unwrap();
        for b in &net.blocks {
            apply_block(&mut replay, b, Signatures::Verify).unwrap();
        }
        prop_assert_eq!(replay.root(), net.state.root());

        // Reload from the state's entries (what the store persists): same root, same audit.
        let reloaded = State::from_entries(net.state.entries()).unwrap();
        prop_assert_eq!(reloaded.root(), net.state.root());
    }
}

#[test]
fn the_root_commits_to_every_entry() {
    let mut a = Net::new(3);
    let mut b = Net::new(3);
    a.apply(vec![a.tx(
        0,
        TxBody::Transfer {
            to: a.id(1),
            amount: Amount(1),
        },
    )]);
    b.apply(vec![b.tx(
        0,
        TxBody::Transfer {
            to: b.id(1),
            amount: Amount(2),
        },
    )]);
    assert_ne!(a.state.root(), b.state.root());
    let mut c = Net::new(3);
    c.apply(vec![c.tx(
        0,
        TxBody::Transfer {
            to: c.id(1),
            amount: Amount(1),
        },
    )]);
    assert_eq!(a.state.root(), c.state.root());
}

#[test]
fn state_proofs_verify_against_the_root_and_not_against_another() {
    use orrery_ledger::StateKey;
    let mut net = Net::new(4);
    make_provider(&mut net, 1, 1);
    net.apply(vec![open(&net, 0, 1, 1_000_000, 50)]);
    let root = net.state.root();
    for key in [
        StateKey::Account(net.id(0)),
        StateKey::Provider(net.id(1)),
        StateKey::Lease(0),
        StateKey::Globals,
        StateKey::Config,
    ] {
        let proof = net.state.prove(&key).expect("entry exists");
        assert!(proof.verify(&root), "{key:?}");
        let mut forged = proof.clone();
        forged.value[0] ^= 1;
        assert!(!forged.verify(&root), "{key:?} forged value accepted");
    }
    assert!(net.state.prove(&StateKey::Lease(99)).is_none());
    let old = net.state.prove(&StateKey::Account(net.id(0))).unwrap();
    net.apply(vec![net.tx(
        0,
        TxBody::Transfer {
            to: net.id(2),
            amount: Amount(5),
        },
    )]);
    assert!(
        !old.verify(&net.state.root()),
        "a stale proof must not verify against a newer root"
    );
}
