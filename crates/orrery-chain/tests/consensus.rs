//! Validators in the deterministic runtime on a simulated network: finality with real
//! transfers, crash faults, partitions, restarts, late joiners.

mod common;

use common::*;
use commonware_runtime::{Clock, Runner as _};
use orrery_types::amount::Amount;
use std::time::Duration;

#[test]
fn four_validators_finalize_blocks_with_transfers_and_agree() {
    let dir = tempfile::tempdir().unwrap();
    let net = devnet(4, 1, dir.path(), 8);
    runner(1, Duration::from_secs(120)).start(|context| async move {
        let oracle = network(&context, &net.configs).await;
        let keys: Vec<_> = net.configs.iter().map(public_key).collect();
        link_all(&oracle, &keys, LINK).await;
        let mut nodes = Vec::new();
        for c in &net.configs {
            nodes.push(start(&context, &oracle, c).await);
        }
        let recorders: Vec<_> = nodes.iter().map(|n| record(&context, &n.handle)).collect();
        let users = users(8);
        let receiver = orrery_types::crypto::Keypair::from_seed(99_999);
        // Each user sends 5 transfers, each submitted to a different validator.
        let mut hashes = Vec::new();
        for (u, user) in users.iter().enumerate() {
            for nonce in 0..5 {
                let node = &nodes[(u + nonce as usize) % 4].handle;
                hashes.push(node.submit(transfer(user, nonce, &receiver, 1)).unwrap());
            }
        }
        let handles: Vec<_> = nodes.iter().map(|n| &n.handle).collect();
        // Everything lands: 40 transfers of 1 ORR.
        let deadline = context.current() + Duration::from_secs(30);
        loop {
            let got = nodes[0]
                .handle
                .read(|s| s.account(&receiver.account()).balance);
            if got == Amount::orr(40) {
                break;
            }
            assert!(context.current() < deadline, "only {got:?} arrived");
            context.sleep(Duration::from_millis(100)).await;
        }
        let h = nodes[0].handle.status().height;
        wait_height(&context, &handles, h, Duration::from_secs(10)).await;
        assert_agree(&handles, h);
        for r in &recorders {
            assert!(r.roots.lock().unwrap().len() as u64 >= h);
        }
        for n in &nodes {
            let st = n.handle.status();
            assert_eq!(st.validators, 4);
            assert_eq!(st.mempool_len, 0, "mempool drained on every node");
            assert_eq!(
                n.handle.read(|s| s.account(&receiver.account()).balance),
                Amount::orr(40)
            );
        }
        // Seeds differ block to block and are not the zero hash.
        let b1 = nodes[0].handle.block(1).unwrap().unwrap();
        let b2 = nodes[0].handle.block(2).unwrap().unwrap();
        assert_ne!(b1.seed, b2.seed);
    });
}
