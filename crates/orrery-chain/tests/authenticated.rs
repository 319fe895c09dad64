//! The production entry point, `orrery_chain::start`: four validators on commonware's
//! authenticated p2p network (encrypted, key-authenticated connections), here over the
//! deterministic runtime's in-memory sockets.

mod common;

use common::*;
use commonware_runtime::{Runner as _, Supervisor as _};
use orrery_chain::ValidatorConfig;
use orrery_types::amount::Amount;
use orrery_types::crypto::Keypair;
use std::time::Duration;

#[test]
fn validators_started_from_config_files_finalize_over_authenticated_p2p() {
    let dir = tempfile::tempdir().unwrap();
    let net = devnet(4, 21, dir.path(), 2);
    // What an operator writes to disk and the node reads back.
    let configs: Vec<ValidatorConfig> = net
        .configs
        .iter()
        .map(|c| ValidatorConfig::from_toml(&c.to_toml().unwrap()).unwrap())
        .collect();
    assert_eq!(configs, net.configs);
    runner(21, Duration::from_secs(120)).start(|context| async move {
        let mut handles = Vec::new();
        for c in &configs {
            let ctx = context
                .child("node")
                .with_attribute("port", c.listen.port());
            handles.push(orrery_chain::start(ctx, c.clone()).await.unwrap());
        }
        let receiver = Keypair::from_seed(33_333);
        handles[2]
            .submit(transfer(&users(2)[1], 0, &receiver, 9))
            .unwrap();
        let all: Vec<_> = handles.iter().collect();
        for h in &all {
            wait_balance(
                &context,
                h,
                &receiver.account(),
                Amount::orr(9),
                Duration::from_secs(60),
            )
            .await;
        }
        // Give every pair time to connect (a simultaneous dial backs off once).
        commonware_runtime::Clock::sleep(&context, Duration::from_secs(10)).await;
        let height = all.iter().map(|h| h.status().height).max().unwrap() + 5;
        wait_height(&context, &all, height, Duration::from_secs(30)).await;
        assert_agree(&all, height);
        let statuses: Vec<_> = all.iter().map(|h| h.status()).collect();
        for st in &statuses {
            assert_eq!(st.peers_connected, 3, "{statuses:#?}");
            assert!(!st.syncing);
            assert_eq!(st.chain_id, CHAIN);
        }
    });
}

#[test]
fn a_config_whose_peers_are_not_the_genesis_validators_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = devnet(4, 22, dir.path(), 0);
    net.configs[0].peers.pop();
    let err = net.configs[0].parse().unwrap_err();
    assert!(err.to_string().contains("genesis validators"), "{err}");
    let mut net = devnet(4, 23, dir.path(), 0);
    // Another validator's share.
    net.configs[0].bls_share = net.configs[1].bls_share.clone();
    let r = commonware_runtime::deterministic::Runner::default();
    let c = net.configs[0].clone();
    r.start(|context| async move {
        let err = match orrery_chain::start(context, c).await {
            Err(e) => e,
            Ok(_) => panic!("a wrong share must be refused"),
        };
        assert!(err.to_string().contains("bls_share"), "{err}");
    });
}
