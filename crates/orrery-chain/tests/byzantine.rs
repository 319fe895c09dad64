//! A Byzantine proposer: one validator corrupts every block it proposes. Honest validators
//! refuse each such block, its views are skipped, and no corrupted block is ever finalized.

mod common;

use common::*;
use commonware_runtime::Runner as _;
use orrery_types::block::{Block, BlockTxs};
use orrery_types::crypto::Keypair;
use orrery_types::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Runs 4 validators, validator 0 corrupting its proposals with `corrupt`; returns after 12
/// blocks are finalized and checked with `is_corrupt` on every node.
fn run(
    seed: u64,
    corrupt: fn(&mut Block),
    calls: &'static AtomicUsize,
    is_corrupt: fn(&Block) -> bool,
) {
    let dir = tempfile::tempdir().unwrap();
    let net = devnet(4, seed, dir.path(), 2);
    runner(seed, Duration::from_secs(240)).start(|context| async move {
        let oracle = network(&context, &net.configs).await;
        let keys: Vec<_> = net.configs.iter().map(public_key).collect();
        link_all(&oracle, &keys, LINK).await;
        let mut nodes = Vec::new();
        for (i, c) in net.configs.iter().enumerate() {
            let mut v = c.parse().unwrap();
            if i == 0 {
                v.corrupt_proposals = Some(corrupt);
            }
            nodes.push(start_parsed(&context, &oracle, v).await);
        }
        // Some traffic so blocks carry transactions.
        let receiver = Keypair::from_seed(44_444);
        for (i, u) in users(2).iter().enumerate() {
            for nonce in 0..3 {
                nodes[1 + i]
                    .handle
                    .submit(transfer(u, nonce, &receiver, 1))
                    .unwrap();
            }
        }
        let all: Vec<_> = nodes.iter().map(|n| &n.handle).collect();
        wait_height(&context, &all, 12, Duration::from_secs(120)).await;
        assert!(
            calls.load(Ordering::Relaxed) > 0,
            "the Byzantine validator proposed"
        );
        assert_agree(&all, 12);
        for height in 1..=12 {
            let b = all[1].block(height).unwrap().unwrap();
            assert!(!is_corrupt(&b), "corrupted block finalized at {height}");
        }
    });
}

static ZERO_SEED: AtomicUsize = AtomicUsize::new(0);
static FORGED_TX: AtomicUsize = AtomicUsize::new(0);
static BACK_IN_TIME: AtomicUsize = AtomicUsize::new(0);
static WRONG_PARENT: AtomicUsize = AtomicUsize::new(0);
static WRONG_HEIGHT: AtomicUsize = AtomicUsize::new(0);

#[test]
fn a_block_with_a_chosen_seed_is_refused() {
    run(
        11,
        |b| {
            ZERO_SEED.fetch_add(1, Ordering::Relaxed);
            b.seed = Hash::of(b"the proposer's favourite seed");
        },
        &ZERO_SEED,
        |b| b.seed == Hash::of(b"the proposer's favourite seed"),
    );
}

fn forged() -> orrery_types::tx::SignedTx {
    let mut tx = transfer(&users(2)[0], 0, &Keypair::from_seed(1), 1_000);
    tx.tx.nonce = 1_000; // signed over nonce 0
    tx
}

#[test]
fn a_block_with_a_forged_transaction_is_refused() {
    run(
        12,
        |b| {
            FORGED_TX.fetch_add(1, Ordering::Relaxed);
            let mut txs = b.txs.as_slice().to_vec();
            txs.push(forged());
            b.txs = BlockTxs::new(txs).unwrap();
        },
        &FORGED_TX,
        |b| b.txs.as_slice().iter().any(|t| !t.verify_signature()),
    );
}

#[test]
fn a_block_going_back_in_time_is_refused() {
    run(
        13,
        |b| {
            BACK_IN_TIME.fetch_add(1, Ordering::Relaxed);
            b.time_ms = 1;
        },
        &BACK_IN_TIME,
        |b| b.height > 1 && b.time_ms == 1,
    );
}

#[test]
fn a_block_with_a_wrong_parent_or_height_is_refused() {
    run(
        14,
        |b| {
            WRONG_PARENT.fetch_add(1, Ordering::Relaxed);
            b.parent = Hash::of(b"elsewhere");
        },
        &WRONG_PARENT,
        |b| b.parent == Hash::of(b"elsewhere"),
    );
    run(
        15,
        |b| {
            WRONG_HEIGHT.fetch_add(1, Ordering::Relaxed);
            b.height += 1;
        },
        &WRONG_HEIGHT,
        // Heights are checked by the ledger on apply; a skipped height would have halted the
        // honest nodes before they reached 12.
        |_| false,
    );
}
