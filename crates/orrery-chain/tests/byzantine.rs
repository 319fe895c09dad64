//! A Byzantine proposer: one validator, a mock actor in test code
//! ([`common::proposer::Proposer`]), corrupts every block it proposes. Honest validators
//! refuse each such block, its views are skipped, and no corrupted block is ever finalized.

mod common;

use common::proposer::{Corruption, Lies, chosen_seed};
use common::*;
use commonware_runtime::Runner as _;
use orrery_types::block::Block;
use orrery_types::crypto::Keypair;
use orrery_types::hash::Hash;
use std::time::Duration;

/// Runs 4 validators, validator 0 lying with `corruption`; returns after 12 blocks are
/// finalized on every node and checked: none is one the liar built, none passes `is_corrupt`.
fn run(seed: u64, corruption: Corruption, is_corrupt: fn(&Block) -> bool) {
    let dir = tempfile::tempdir().unwrap();
    let net = devnet(4, seed, dir.path(), 2);
    runner(seed, Duration::from_secs(240)).start(|context| async move {
        let oracle = network(&context, &net.configs).await;
        let keys: Vec<_> = net.configs.iter().map(public_key).collect();
        link_all(&oracle, &keys, LINK).await;
        let mut nodes = Vec::new();
        let mut lies = Lies::default();
        for (i, c) in net.configs.iter().enumerate() {
            let v = c.parse().unwrap();
            if i == 0 {
                let (node, log) = start_lying(&context, &oracle, v, corruption).await;
                lies = log;
                nodes.push(node);
            } else {
                nodes.push(start_parsed(&context, &oracle, v).await);
            }
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
        assert!(lies.count() > 0, "the Byzantine validator proposed");
        assert_agree(&all, 12);
        for height in 1..=12 {
            let b = all[1].block(height).unwrap().unwrap();
            assert!(
                !lies.told(&b.hash()),
                "corrupted block finalized at {height}"
            );
            assert!(!is_corrupt(&b), "corrupted block finalized at {height}");
        }
    });
}

#[test]
fn a_block_with_a_chosen_seed_is_refused() {
    run(11, Corruption::ChosenSeed, |b| b.seed == chosen_seed());
}

#[test]
fn a_block_with_a_forged_transaction_is_refused() {
    run(12, Corruption::ForgedTx, |b| {
        b.txs.as_slice().iter().any(|t| !t.verify_signature())
    });
}

#[test]
fn a_block_going_back_in_time_is_refused() {
    run(13, Corruption::BackInTime, |b| {
        b.height > 1 && b.time_ms <= 1
    });
}

#[test]
fn a_block_with_a_wrong_parent_or_height_is_refused() {
    run(14, Corruption::WrongParent, |b| {
        b.parent == Hash::of(b"elsewhere")
    });
    // Heights are checked by the ledger on apply too; a skipped height would have halted the
    // honest nodes before they reached 12. The liar's log still names every lie.
    run(15, Corruption::WrongHeight, |_| false);
}
