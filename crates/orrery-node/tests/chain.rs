//! The node over real validators: four `orrery-chain` validators on authenticated p2p over
//! loopback sockets, in commonware's tokio runtime (real time); validator 0 is started with
//! the node API by `start_node`, and the real client submits a transfer and follows it.

use commonware_runtime::{Runner as _, Supervisor as _};
use orrery_chain::devnet::{self, DevnetSpec};
use orrery_client::Client;
use orrery_ledger::GenesisAccount;
use orrery_node::{NodeConfig, start_node};
use orrery_types::amount::Amount;
use orrery_types::crypto::Keypair;
use orrery_types::tx::{ChainId, Tx, TxBody};
use std::net::TcpListener;
use std::time::Duration;

const CHAIN: &str = "orrery-node-chain-test";
const VALIDATORS: u16 = 4;

/// A run of free consecutive loopback ports (devnet validator i listens on first + i).
fn free_ports() -> u16 {
    let base = 20_000 + (std::process::id() % 1_500) as u16 * 8;
    (0..500u16)
        .map(|k| base.wrapping_add(k * 8))
        .find(|&first| {
            first > 1024
                && (0..VALIDATORS).all(|i| TcpListener::bind(("127.0.0.1", first + i)).is_ok())
        })
        .expect("free loopback ports")
}

#[test]
fn node_serves_a_real_validator_end_to_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let user = Keypair::from_seed(7);
    let receiver = Keypair::from_seed(8);
    let mut net = devnet::generate(&DevnetSpec {
        validators: VALIDATORS as usize,
        seed: 3,
        chain_id: CHAIN.into(),
        genesis_time_ms: 0,
        data_root: dir.path().join("chain"),
        first_port: free_ports(),
        accounts: vec![GenesisAccount {
            account: user.account(),
            balance: Amount::orr(1_000),
        }],
        validator_balance: Amount::orr(1_000),
    })
    .expect("devnet");
    for c in &mut net.configs {
        c.block_interval_ms = 200;
    }
    let node_dir = dir.path().join("node");
    let runner = commonware_runtime::tokio::Runner::new(
        commonware_runtime::tokio::Config::new()
            .with_storage_directory(dir.path().join("journals")),
    );
    runner.start(|context| async move {
        let mut configs = net.configs.into_iter();
        let first = configs.next().expect("validator 0");
        for c in configs {
            let ctx = context
                .child("validator")
                .with_attribute("port", c.listen.port());
            orrery_chain::start(ctx, c).await.expect("validator starts");
        }
        let node_config = NodeConfig {
            data_dir: node_dir,
            api_listen: "127.0.0.1:0".parse().expect("addr"),
            ..NodeConfig::default()
        };
        let (_handle, node) = start_node(context.child("node"), node_config, first)
            .await
            .expect("validator 0 and its API start");
        let base = format!("http://{}", node.local_addr());
        let scenario = tokio::task::spawn_blocking(move || {
            let c = Client::new(&base);
            let mut events = c.events().expect("event stream");
            let tx = Tx {
                chain_id: ChainId::new(CHAIN).expect("id"),
                nonce: 0,
                body: TxBody::Transfer {
                    to: receiver.account(),
                    amount: Amount::orr(3),
                },
            }
            .sign(&user);
            let hash = c.submit(&tx).expect("accepted by the mempool");
            // The chain's own refusal comes through with the API's code.
            let err = c.submit(&tx).expect_err("already waiting");
            assert_eq!(err.code(), Some("duplicate_tx"), "{err}");
            let rec = c
                .wait_for_tx(&hash, Duration::from_secs(90))
                .expect("finalized");
            assert!(rec.receipt.as_ref().expect("live outcome").ok, "{rec:?}");
            assert_eq!(
                c.account(&receiver.account()).expect("account").balance,
                Amount::orr(3)
            );
            let block = c.block(rec.height).expect("block").expect("exists");
            assert_eq!(block.summary.hash, rec.block_hash);
            let status = c.status().expect("status");
            assert_eq!(status.chain.chain_id, CHAIN);
            assert_eq!(status.chain.validators, u64::from(VALIDATORS));
            assert!(status.indexed_height >= rec.height);
            let first = events.next().expect("a block").expect("decodes");
            assert!(first.height >= 1);
            let replay = c.submit(&tx).expect_err("replayed");
            assert_eq!(replay.code(), Some("stale_nonce"), "{replay}");
        });
        let outcome = scenario.await;
        node.shutdown().await.expect("clean shutdown");
        outcome.expect("scenario passes");
    });
}
