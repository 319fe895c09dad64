//! Every kind of bad input gets a clear error and changes nothing.

mod common;

use common::*;
use orrery_ledger::{BlockError, Signatures, TxError, apply_block};
use orrery_types::amount::Amount;
use orrery_types::hash::Hash;
use orrery_types::resources::PriceList;
use orrery_types::tx::{ChainId, SignedTx, Tx, TxBody, Verification};

/// Apply `tx` alone and check it was refused with `expected` and changed nothing but the
/// block header entry (height, time) and, for a refusal past the signature, chain and nonce
/// checks, the sender's nonce (an account the state holds spends it; no account is created).
fn refused(net: &mut Net, tx: SignedTx, expected: impl Fn(&TxError) -> bool) {
    let mut accounts = net.state.accounts().clone();
    let sender = tx.sender();
    let providers = net.state.providers().clone();
    let leases = net.state.leases().clone();
    let totals = *net.state.totals();
    let out = net.apply(vec![tx]);
    let err = out.receipts[0]
        .outcome
        .as_ref()
        .expect_err("must be refused");
    assert!(expected(err), "unexpected error: {err}");
    assert!(!err.to_string().is_empty());
    if err.consumes_nonce()
        && let Some(a) = accounts.get_mut(&sender)
    {
        a.nonce += 1;
    }
    assert_eq!(net.state.accounts(), &accounts, "accounts changed");
    assert_eq!(net.state.providers(), &providers, "providers changed");
    assert_eq!(net.state.leases(), &leases, "leases changed");
    assert_eq!(net.state.totals(), &totals, "totals changed");
}

fn transfer(net: &Net, amount: Amount) -> TxBody {
    TxBody::Transfer {
        to: net.id(2),
        amount,
    }
}

#[test]
fn bad_signature() {
    let mut net = Net::new(3);
    let mut tx = net.tx(0, transfer(&net, Amount::orr(1)));
    tx.signature = net.tx(1, transfer(&net, Amount::orr(1))).signature;
    refused(&mut net, tx, |e| *e == TxError::BadSignature);
}

#[test]
fn wrong_nonce_and_replay() {
    let mut net = Net::new(3);
    let tx = net.tx_at(0, 5, transfer(&net, Amount::orr(1)));
    refused(&mut net, tx, |e| {
        *e == TxError::WrongNonce {
            expected: 0,
            got: 5,
        }
    });
    // A transaction that applied once cannot apply again.
    let tx = net.tx(0, transfer(&net, Amount::orr(1)));
    assert!(net.apply(vec![tx.clone()]).receipts[0].is_ok());
    refused(&mut net, tx, |e| {
        matches!(
            e,
            TxError::WrongNonce {
                expected: 1,
                got: 0
            }
        )
    });
}

#[test]
fn same_transaction_twice_in_one_block_applies_once() {
    let mut net = Net::new(3);
    let tx = net.tx(0, transfer(&net, Amount::orr(1)));
    let out = net.apply(vec![tx.clone(), tx]);
    assert!(out.receipts[0].is_ok());
    assert!(matches!(
        out.receipts[1].outcome,
        Err(TxError::WrongNonce { .. })
    ));
    assert_eq!(
        net.balance(2),
        START_BALANCE.checked_add(Amount::orr(1)).unwrap()
    );
}

#[test]
fn a_refused_action_spends_its_nonce_so_later_transactions_still_apply() {
    let mut net = Net::new(3);
    // Nonce 0 is refused by its action; nonce 1, signed before anyone knew, still applies.
    let bad = net.tx_at(0, 0, transfer(&net, Amount::ZERO));
    let good = net.tx_at(0, 1, transfer(&net, Amount::orr(1)));
    let out = net.apply(vec![bad, good]);
    assert_eq!(out.receipts[0].outcome, Err(TxError::ZeroAmount));
    assert!(out.receipts[1].is_ok(), "{:?}", out.receipts[1]);
    assert_eq!(net.state.account(&net.id(0)).nonce, 2);
    assert_eq!(
        net.balance(2),
        START_BALANCE.checked_add(Amount::orr(1)).unwrap()
    );
    assert_eq!(
        net.balance(0),
        START_BALANCE.checked_sub(Amount::orr(1)).unwrap()
    );
}

#[test]
fn wrong_chain_id() {
    let mut net = Net::new(3);
    let tx = Tx {
        chain_id: ChainId::new("orrery-other").unwrap(),
        nonce: 0,
        body: transfer(&net, Amount::orr(1)),
    }
    .sign(&net.keys[0]);
    refused(&mut net, tx, |e| matches!(e, TxError::WrongChain { .. }));
}

#[test]
fn insufficient_funds_and_zero_amounts() {
    let mut net = Net::new(3);
    let tx = net.tx(
        0,
        transfer(&net, START_BALANCE.checked_add(Amount(1)).unwrap()),
    );
    refused(&mut net, tx, |e| {
        matches!(e, TxError::InsufficientFunds { .. })
    });
    let tx = net.tx(0, transfer(&net, Amount::ZERO));
    refused(&mut net, tx, |e| *e == TxError::ZeroAmount);
    // An account that never received anything cannot spend.
    let stranger = orrery_types::crypto::Keypair::from_seed(77);
    let tx = Tx {
        chain_id: ChainId::new(CHAIN).unwrap(),
        nonce: 0,
        body: transfer(&net, Amount(1)),
    }
    .sign(&stranger);
    refused(&mut net, tx, |e| {
        matches!(e, TxError::InsufficientFunds { .. })
    });
}

#[test]
fn overflowing_lease_terms() {
    let mut net = Net::new(3);
    let huge = PriceList {
        gpu_hour: Amount(u128::MAX),
        ..prices()
    };
    net.run(1, TxBody::RegisterProvider(offer(1, huge)));
    net.run(
        1,
        TxBody::Bond {
            amount: Amount::orr(5_000),
        },
    );
    let mut t = terms(1);
    t.prices = huge;
    let tx = net.tx(
        0,
        TxBody::OpenLease {
            provider: net.id(1),
            job: Hash::ZERO,
            terms: t,
            deadline: 50,
            verification: Verification::None,
        },
    );
    refused(&mut net, tx, |e| *e == TxError::Overflow);
}

#[test]
fn unknown_provider_and_price_above_offer() {
    let mut net = Net::new(3);
    let tx = open(&net, 0, 1, 1_000, 10);
    refused(&mut net, tx, |e| matches!(e, TxError::UnknownProvider(_)));
    make_provider(&mut net, 1, 1);
    let mut t = terms(1_000);
    t.prices.gpu_hour = Amount::orr(3); // listed at 2
    let tx = net.tx(
        0,
        TxBody::OpenLease {
            provider: net.id(1),
            job: Hash::ZERO,
            terms: t,
            deadline: 50,
            verification: Verification::None,
        },
    );
    refused(&mut net, tx, |e| *e == TxError::PriceAboveOffer);
}

#[test]
fn leases_that_cannot_be_honoured_are_refused() {
    let mut net = Net::new(3);
    make_provider(&mut net, 1, 1);
    let h = net.state.height();
    let mk = |net: &Net, t, deadline, v| {
        net.tx(
            0,
            TxBody::OpenLease {
                provider: net.id(1),
                job: Hash::ZERO,
                terms: t,
                deadline,
                verification: v,
            },
        )
    };
    let mut too_big = terms(1);
    too_big.resources.gpus = 2;
    let tx = mk(&net, too_big, h + 10, Verification::None);
    refused(&mut net, tx, |e| *e == TxError::ResourcesUnavailable);
    let mut free = terms(0);
    free.max_seconds = 0;
    let tx = mk(&net, free, h + 10, Verification::None);
    refused(&mut net, tx, |e| *e == TxError::ZeroCostLease);
    let tx = mk(&net, terms(1), h, Verification::None);
    refused(&mut net, tx, |e| matches!(e, TxError::BadDeadline { .. }));
    let tx = mk(&net, terms(1), h + 10_000_000, Verification::None);
    refused(&mut net, tx, |e| matches!(e, TxError::BadDeadline { .. }));
    for k in [0, 1, orrery_types::tx::MAX_REDUNDANCY + 1] {
        let tx = mk(&net, terms(1), h + 10, Verification::Redundant { k });
        refused(&mut net, tx, |e| matches!(e, TxError::BadRedundancy { .. }));
    }
    let tx = net.tx(
        1,
        TxBody::OpenLease {
            provider: net.id(1),
            job: Hash::ZERO,
            terms: terms(1),
            deadline: h + 10,
            verification: Verification::None,
        },
    );
    refused(&mut net, tx, |e| *e == TxError::SelfLease);
}

#[test]
fn provider_actions_need_a_registered_provider() {
    let mut net = Net::new(3);
    let tx = net.tx(
        0,
        TxBody::Bond {
            amount: Amount::orr(1),
        },
    );
    refused(&mut net, tx, |e| matches!(e, TxError::NotAProvider(_)));
    let tx = net.tx(0, TxBody::UpdateProvider(offer(0, prices())));
    refused(&mut net, tx, |e| matches!(e, TxError::NotAProvider(_)));
    make_provider(&mut net, 0, 0);
    let tx = net.tx(0, TxBody::RegisterProvider(offer(0, prices())));
    refused(&mut net, tx, |e| matches!(e, TxError::AlreadyRegistered(_)));
    let mut bad = offer(0, prices());
    bad.hardware.cpu_cores = 0;
    let tx = net.tx(0, TxBody::UpdateProvider(bad));
    refused(&mut net, tx, |e| matches!(e, TxError::InvalidOffer(_)));
    let tx = net.tx(
        0,
        TxBody::Unbond {
            amount: Amount::orr(1_000_000),
        },
    );
    refused(&mut net, tx, |e| {
        matches!(e, TxError::InsufficientStake { .. })
    });
}

#[test]
fn bad_block_headers_refuse_the_whole_block_and_change_nothing() {
    let mut net = Net::new(3);
    net.apply(vec![]);
    let root = net.state.root();
    let good = net.next_block(vec![net.tx(0, transfer(&net, Amount::orr(1)))]);

    let mut b = good.clone();
    b.height += 1;
    assert!(matches!(
        apply_block(&mut net.state, &b, Signatures::Verify),
        Err(BlockError::WrongHeight { .. })
    ));
    let mut b = good.clone();
    b.time_ms = 0;
    assert!(matches!(
        apply_block(&mut net.state, &b, Signatures::Verify),
        Err(BlockError::TimeWentBackwards { .. })
    ));
    let mut b = good.clone();
    b.parent = Hash::of(b"fork");
    assert!(matches!(
        apply_block(&mut net.state, &b, Signatures::Verify),
        Err(BlockError::WrongParent { .. })
    ));
    assert_eq!(net.state.root(), root);
    assert!(apply_block(&mut net.state, &good, Signatures::Verify).is_ok());
}

#[test]
fn malformed_bytes_are_a_decode_error() {
    let net = Net::new(3);
    let bytes = orrery_types::codec::encode(&net.tx(0, transfer(&net, Amount(1))));
    for cut in 0..bytes.len() {
        let err = SignedTx::decode(&bytes[..cut]).unwrap_err();
        assert!(
            err.to_string().starts_with("malformed transaction"),
            "{err}"
        );
    }
}

#[test]
fn batch_verification_finds_a_forged_signature() {
    let net = Net::new(3);
    let good: Vec<_> = (0..3)
        .map(|i| net.tx(i, transfer(&net, Amount(1))))
        .collect();
    assert_eq!(
        orrery_ledger::verify_block_signatures(&net.next_block(good.clone())),
        Ok(())
    );
    let mut bad = good;
    bad[1].signature = bad[0].signature.clone();
    assert_eq!(
        orrery_ledger::verify_block_signatures(&net.next_block(bad)),
        Err(1)
    );
}
