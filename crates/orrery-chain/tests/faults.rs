//! Crash faults, partitions, restarts and late joiners.

mod common;

use common::*;
use commonware_runtime::{Clock, Runner as _};
use orrery_types::amount::Amount;
use orrery_types::crypto::Keypair;
use std::time::Duration;

#[test]
fn one_crashed_validator_of_four_does_not_stop_finality() {
    let dir = tempfile::tempdir().unwrap();
    let net = devnet(4, 2, dir.path(), 4);
    runner(2, Duration::from_secs(120)).start(|context| async move {
        let oracle = network(&context, &net.configs).await;
        let keys: Vec<_> = net.configs.iter().map(public_key).collect();
        link_all(&oracle, &keys, LINK).await;
        let mut nodes = Vec::new();
        for c in &net.configs {
            nodes.push(start(&context, &oracle, c).await);
        }
        {
            let all: Vec<_> = nodes.iter().map(|n| &n.handle).collect();
            wait_height(&context, &all, 2, Duration::from_secs(10)).await;
        }
        let crashed = nodes.pop().unwrap();
        crashed.task.abort();
        let stuck_at = crashed.handle.status().height;
        let live: Vec<_> = nodes.iter().map(|n| &n.handle).collect();
        let start_height = live[0].status().height;
        let receiver = Keypair::from_seed(77_777);
        for (i, u) in users(4).iter().enumerate() {
            for nonce in 0..3 {
                live[(i + nonce as usize) % 3]
                    .submit(transfer(u, nonce, &receiver, 2))
                    .unwrap();
            }
        }
        wait_balance(
            &context,
            live[0],
            &receiver.account(),
            Amount::orr(24),
            Duration::from_secs(60),
        )
        .await;
        // Finality goes on without the crashed validator (its leader views time out).
        let h = start_height + 8;
        wait_height(&context, &live, h, Duration::from_secs(60)).await;
        assert_agree(&live, h);
        // The crashed node did not move, and the others stop counting it as connected.
        assert_eq!(crashed.handle.status().height, stuck_at);
        context.sleep(Duration::from_secs(10)).await;
        for h in &live {
            assert_eq!(h.status().peers_connected, 2, "{:?}", h.status());
        }
    });
}

#[test]
fn partition_heals_with_no_fork_and_no_lost_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let net = devnet(4, 3, dir.path(), 6);
    runner(3, Duration::from_secs(240)).start(|context| async move {
        let oracle = network(&context, &net.configs).await;
        let keys: Vec<_> = net.configs.iter().map(public_key).collect();
        link_all(&oracle, &keys, LINK).await;
        let mut nodes = Vec::new();
        for c in &net.configs {
            nodes.push(start(&context, &oracle, c).await);
        }
        let all: Vec<_> = nodes.iter().map(|n| &n.handle).collect();
        let recorders: Vec<_> = all.iter().map(|h| record(&context, h)).collect();
        wait_height(&context, &all, 2, Duration::from_secs(10)).await;

        // Split 2 | 2: neither side has a quorum (3 of 4).
        cut(&oracle, &keys[..2], &keys[2..]).await;
        context.sleep(Duration::from_secs(1)).await;
        let frozen: Vec<u64> = all.iter().map(|h| h.status().height).collect();
        let receiver = Keypair::from_seed(88_888);
        for (i, u) in users(6).iter().enumerate() {
            for nonce in 0..2 {
                // Half the transactions reach only one side, half only the other.
                all[i % 4].submit(transfer(u, nonce, &receiver, 1)).unwrap();
            }
        }
        context.sleep(Duration::from_secs(5)).await;
        let during: Vec<u64> = all.iter().map(|h| h.status().height).collect();
        for (f, d) in frozen.iter().zip(&during) {
            assert!(
                d <= &(f + 1),
                "no quorum, no progress: {frozen:?} -> {during:?}"
            );
        }

        // Heal: everything submitted on either side is finalized once, on every node.
        link_all(&oracle, &keys, LINK).await;
        for h in &all {
            wait_balance(
                &context,
                h,
                &receiver.account(),
                Amount::orr(12),
                Duration::from_secs(90),
            )
            .await;
        }
        let h = all.iter().map(|h| h.status().height).min().unwrap();
        assert_agree(&all, h);
        // Every node recorded the same (block, root) at every height it saw.
        let maps: Vec<_> = recorders
            .iter()
            .map(|r| r.roots.lock().unwrap().clone())
            .collect();
        for height in 1..=h {
            let seen: Vec<_> = maps.iter().filter_map(|m| m.get(&height)).collect();
            assert!(seen.windows(2).all(|w| w[0] == w[1]), "fork at {height}");
        }
    });
}

#[test]
fn restarted_validator_catches_up_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let net = devnet(4, 4, dir.path(), 4);
    runner(4, Duration::from_secs(240)).start(|context| async move {
        let oracle = network(&context, &net.configs).await;
        let keys: Vec<_> = net.configs.iter().map(public_key).collect();
        link_all(&oracle, &keys, LINK).await;
        let mut nodes = Vec::new();
        for c in &net.configs {
            nodes.push(start(&context, &oracle, c).await);
        }
        {
            let all: Vec<_> = nodes.iter().map(|n| &n.handle).collect();
            wait_height(&context, &all, 4, Duration::from_secs(20)).await;
        }
        // Crash validator 3 and drop everything it held (its database closes).
        let crashed = nodes.pop().unwrap();
        let before = crashed.handle.status().height;
        crashed.task.abort();
        drop(crashed);
        context.sleep(Duration::from_millis(100)).await;

        let receiver = Keypair::from_seed(66_666);
        for (i, u) in users(4).iter().enumerate() {
            nodes[i % 3]
                .handle
                .submit(transfer(u, 0, &receiver, 3))
                .unwrap();
        }
        let live: Vec<_> = nodes.iter().map(|n| &n.handle).collect();
        wait_balance(
            &context,
            live[0],
            &receiver.account(),
            Amount::orr(12),
            Duration::from_secs(30),
        )
        .await;
        let target = live[0].status().height + 3;
        wait_height(&context, &live, target, Duration::from_secs(30)).await;

        // Restart from the same data directory and storage: it resumes from its stored height
        // (not genesis) and catches up.
        let restarted = start(&context, &oracle, &net.configs[3]).await;
        let resumed = restarted.handle.status().height;
        assert!(resumed >= before, "resumed at {resumed}, had {before}");
        let mut all = live.clone();
        all.push(&restarted.handle);
        wait_height(&context, &all, target, Duration::from_secs(60)).await;
        assert_agree(&all, target);
        assert_eq!(
            restarted
                .handle
                .read(|s| s.account(&receiver.account()).balance),
            Amount::orr(12)
        );
        // And it takes part again: the chain keeps finalizing with it.
        let further = target + 3;
        wait_height(&context, &all, further, Duration::from_secs(60)).await;
    });
}

#[test]
fn a_new_validator_syncs_from_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let net = devnet(4, 5, dir.path(), 2);
    runner(5, Duration::from_secs(240)).start(|context| async move {
        let oracle = network(&context, &net.configs).await;
        let keys: Vec<_> = net.configs.iter().map(public_key).collect();
        link_all(&oracle, &keys, LINK).await;
        let mut nodes = Vec::new();
        for c in &net.configs[..3] {
            nodes.push(start(&context, &oracle, c).await);
        }
        let receiver = Keypair::from_seed(55_555);
        nodes[0]
            .handle
            .submit(transfer(&users(2)[0], 0, &receiver, 5))
            .unwrap();
        let early: Vec<_> = nodes.iter().map(|n| &n.handle).collect();
        wait_height(&context, &early, 12, Duration::from_secs(60)).await;

        // Validator 3 starts with an empty disk at height 0 and fetches the history.
        let late = start(&context, &oracle, &net.configs[3]).await;
        assert_eq!(late.handle.status().height, 0);
        let target = early[0].status().height;
        let mut all = early.clone();
        all.push(&late.handle);
        wait_height(&context, &all, target, Duration::from_secs(60)).await;
        assert_agree(&all, target);
        assert_eq!(
            late.handle.read(|s| s.account(&receiver.account()).balance),
            Amount::orr(5)
        );
    });
}

#[test]
fn a_transaction_outlives_the_validator_it_was_sent_to() {
    let dir = tempfile::tempdir().unwrap();
    let net = devnet(4, 6, dir.path(), 1);
    runner(6, Duration::from_secs(120)).start(|context| async move {
        let oracle = network(&context, &net.configs).await;
        let keys: Vec<_> = net.configs.iter().map(public_key).collect();
        link_all(&oracle, &keys, LINK).await;
        let mut nodes = Vec::new();
        for c in &net.configs {
            nodes.push(start(&context, &oracle, c).await);
        }
        {
            let all: Vec<_> = nodes.iter().map(|n| &n.handle).collect();
            wait_height(&context, &all, 2, Duration::from_secs(10)).await;
        }
        // Sent to validator 3 only, which crashes before it can propose: gossip carried it to
        // the others.
        let receiver = Keypair::from_seed(11_111);
        let doomed = nodes.pop().unwrap();
        doomed
            .handle
            .submit(transfer(&users(1)[0], 0, &receiver, 7))
            .unwrap();
        context.sleep(Duration::from_millis(60)).await;
        doomed.task.abort();
        assert!(nodes.iter().all(|n| n.handle.status().mempool_len == 1
            || n.handle.read(|s| s.account(&receiver.account()).balance) == Amount::orr(7)));
        wait_balance(
            &context,
            &nodes[0].handle,
            &receiver.account(),
            Amount::orr(7),
            Duration::from_secs(30),
        )
        .await;
    });
}
