//! A simulated committee: validators from a devnet config, on commonware's simulated network,
//! in the deterministic runtime.

#![allow(dead_code)]

pub mod proposer;

use commonware_cryptography::{Signer as _, ed25519};
use commonware_p2p::simulated::{self, Link, Network, Oracle};
use commonware_runtime::{Clock, Quota, Spawner, Supervisor as _, deterministic};
use commonware_utils::{NZU32, NZUsize, probability};
use futures::channel::oneshot;
use orrery_chain::application::App;
use orrery_chain::devnet::{self, Devnet, DevnetSpec};
use orrery_chain::engine::ChainApplication;
use orrery_chain::engine::{
    CHANNEL_BACKFILL, CHANNEL_BLOCKS, CHANNEL_CERTIFICATES, CHANNEL_RESOLVER, CHANNEL_TXS,
    CHANNEL_VOTES,
};
use orrery_chain::{Channels, Finalized, Handle, ValidatorConfig, start_with_application};
use orrery_ledger::GenesisAccount;
use orrery_store::Ledger;
use orrery_types::amount::Amount;
use orrery_types::crypto::AccountId;
use orrery_types::crypto::Keypair;
use orrery_types::hash::Hash;
use orrery_types::tx::{ChainId, SignedTx, Tx, TxBody};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub const CHAIN: &str = "orrery-test";

/// A link with realistic latency between validators in one region.
pub const LINK: Link = Link {
    latency: Duration::from_millis(20),
    jitter: Duration::from_millis(5),
    success_rate: probability!(1.0),
};

/// Users with funds.
pub fn users(n: u64) -> Vec<Keypair> {
    (0..n).map(|i| Keypair::from_seed(50_000 + i)).collect()
}

/// A 4-validator (or `n`) devnet whose users `users(n_users)` are funded.
pub fn devnet(n: usize, seed: u64, root: &Path, n_users: u64) -> Devnet {
    let accounts = users(n_users)
        .iter()
        .map(|k| GenesisAccount {
            account: k.account(),
            balance: Amount::orr(1_000_000),
        })
        .collect();
    let mut net = devnet::generate(&DevnetSpec {
        validators: n,
        seed,
        chain_id: CHAIN.into(),
        genesis_time_ms: 0,
        data_root: root.to_path_buf(),
        first_port: 30_000,
        accounts,
        validator_balance: Amount::orr(1_000),
    })
    .unwrap();
    for c in &mut net.configs {
        c.block_interval_ms = 100;
    }
    net
}

pub fn transfer(from: &Keypair, nonce: u64, to: &Keypair, amount: u64) -> SignedTx {
    Tx {
        chain_id: ChainId::new(CHAIN).unwrap(),
        nonce,
        body: TxBody::Transfer {
            to: to.account(),
            amount: Amount::orr(amount),
        },
    }
    .sign(from)
}

pub fn public_key(config: &ValidatorConfig) -> ed25519::PublicKey {
    config.parse().unwrap().key.public_key()
}

/// Start the simulated network with every validator as a peer (no links yet).
pub async fn network(
    context: &deterministic::Context,
    configs: &[ValidatorConfig],
) -> Oracle<ed25519::PublicKey, deterministic::Context> {
    let peers: Vec<_> = configs.iter().map(public_key).collect();
    let (network, oracle) = Network::new_with_peers(
        context.child("network"),
        simulated::Config {
            max_size: 8 * 1024 * 1024,
            max_peers_per_set: NZUsize!(peers.len()),
            disconnect_on_block: true,
            tracked_peer_sets: NZUsize!(1),
        },
        peers,
    )
    .await;
    network.start();
    oracle
}

/// Link every pair among `keys` both ways.
pub async fn link_all(
    oracle: &Oracle<ed25519::PublicKey, deterministic::Context>,
    keys: &[ed25519::PublicKey],
    link: Link,
) {
    for a in keys {
        for b in keys {
            if a != b {
                let _ = oracle.add_link(a.clone(), b.clone(), link.clone()).await;
            }
        }
    }
}

/// Cut every link between the two groups, both ways.
pub async fn cut(
    oracle: &Oracle<ed25519::PublicKey, deterministic::Context>,
    left: &[ed25519::PublicKey],
    right: &[ed25519::PublicKey],
) {
    for a in left {
        for b in right {
            let _ = oracle.remove_link(a.clone(), b.clone()).await;
            let _ = oracle.remove_link(b.clone(), a.clone()).await;
        }
    }
}

/// A running validator: its handle and the task whose abort crashes it.
pub struct Node {
    pub handle: Handle,
    pub task: commonware_runtime::Handle<()>,
}

/// Start `config` as a validator in its own task on the simulated network.
pub async fn start(
    context: &deterministic::Context,
    oracle: &Oracle<ed25519::PublicKey, deterministic::Context>,
    config: &ValidatorConfig,
) -> Node {
    start_parsed(context, oracle, config.parse().unwrap()).await
}

/// [`start`] with an already parsed (possibly test-modified) validator.
pub async fn start_parsed(
    context: &deterministic::Context,
    oracle: &Oracle<ed25519::PublicKey, deterministic::Context>,
    validator: orrery_chain::Validator,
) -> Node {
    start_wrapped(context, oracle, validator, |app| app).await
}

/// A validator whose proposals lie ([`proposer::Proposer`]); returns the log of its lies.
pub async fn start_lying(
    context: &deterministic::Context,
    oracle: &Oracle<ed25519::PublicKey, deterministic::Context>,
    validator: orrery_chain::Validator,
    corruption: proposer::Corruption,
) -> (Node, proposer::Lies) {
    let lies = proposer::Lies::default();
    let log = lies.clone();
    let node = start_wrapped(context, oracle, validator, move |honest| {
        proposer::Proposer {
            honest,
            corruption,
            lies: log,
        }
    })
    .await;
    (node, lies)
}

/// Start `validator` on its own ledger file, with consensus driving `wrap(app)`.
async fn start_wrapped<A>(
    context: &deterministic::Context,
    oracle: &Oracle<ed25519::PublicKey, deterministic::Context>,
    validator: orrery_chain::Validator,
    wrap: impl FnOnce(App) -> A + Send + 'static,
) -> Node
where
    A: ChainApplication<deterministic::Context>,
{
    let me = validator.key.public_key();
    let control = oracle.control(me.clone());
    let quota = Quota::per_second(NZU32!(100_000));
    let channels = Channels {
        votes: control.register(CHANNEL_VOTES, quota).await.unwrap(),
        certificates: control.register(CHANNEL_CERTIFICATES, quota).await.unwrap(),
        resolver: control.register(CHANNEL_RESOLVER, quota).await.unwrap(),
        backfill: control.register(CHANNEL_BACKFILL, quota).await.unwrap(),
        blocks: control.register(CHANNEL_BLOCKS, quota).await.unwrap(),
        txs: control.register(CHANNEL_TXS, quota).await.unwrap(),
    };
    let manager = oracle.manager();
    std::fs::create_dir_all(&validator.data_dir).unwrap();
    let ledger = Ledger::open(&validator.data_dir.join("ledger.redb"), &validator.genesis).unwrap();
    let (tx, rx) = oneshot::channel();
    let task = context
        .child("validator")
        .with_attribute("key", &me)
        .spawn(move |ctx| async move {
            let handle =
                start_with_application(ctx, validator, ledger, channels, control, manager, wrap)
                    .await
                    .unwrap();
            let _ = tx.send(handle);
            futures::future::pending::<()>().await;
        });
    let handle = rx.await.unwrap();
    Node { handle, task }
}

/// Wait until every handle reports at least `height` (virtual time; panics after `limit`).
pub async fn wait_height(
    context: &deterministic::Context,
    handles: &[&Handle],
    height: u64,
    limit: Duration,
) {
    let deadline = context.current() + limit;
    loop {
        if handles.iter().all(|h| h.status().height >= height) {
            return;
        }
        assert!(
            context.current() < deadline,
            "heights {:?} did not reach {height} in {limit:?}",
            handles
                .iter()
                .map(|h| h.status().height)
                .collect::<Vec<_>>()
        );
        context.sleep(Duration::from_millis(50)).await;
    }
}

/// Every block each handle finalized, recorded by a background task, with the supply
/// invariant checked at each.
pub struct Recorder {
    pub roots: Arc<std::sync::Mutex<BTreeMap<u64, (Hash, Hash)>>>,
}

pub fn record(context: &deterministic::Context, handle: &Handle) -> Recorder {
    let roots = Arc::new(std::sync::Mutex::new(BTreeMap::new()));
    let mut rx = handle.subscribe();
    let h = handle.clone();
    let r = roots.clone();
    context.child("recorder").spawn(move |_| async move {
        while let Ok(f) = rx.recv().await {
            let f: Arc<Finalized> = f;
            h.read(|s| s.check_supply()).expect("supply invariant");
            let prev = r
                .lock()
                .unwrap()
                .insert(f.block.height, (f.block_hash, f.state_root));
            assert!(prev.is_none(), "height {} finalized twice", f.block.height);
        }
    });
    Recorder { roots }
}

/// All nodes agree on block hash and state root at every height any two of them finalized.
pub fn assert_agree(handles: &[&Handle], upto: u64) {
    for height in 1..=upto {
        let blocks: Vec<_> = handles
            .iter()
            .map(|h| h.block(height).unwrap().map(|b| b.hash()))
            .collect();
        let first = blocks[0];
        assert!(first.is_some(), "node 0 has no block {height}");
        for b in &blocks {
            assert_eq!(*b, first, "nodes disagree at height {height}");
        }
    }
    let roots: Vec<_> = handles
        .iter()
        .map(|h| h.read(|s| (s.height(), s.root())))
        .collect();
    for w in roots.windows(2) {
        if w[0].0 == w[1].0 {
            assert_eq!(w[0].1, w[1].1, "state roots differ at height {}", w[0].0);
        }
    }
}

pub fn runner(seed: u64, timeout: Duration) -> deterministic::Runner {
    deterministic::Runner::new(
        deterministic::Config::new()
            .with_seed(seed)
            .with_timeout(Some(timeout)),
    )
}

/// Wait until `account` holds `amount` on `handle`.
pub async fn wait_balance(
    context: &deterministic::Context,
    handle: &Handle,
    account: &AccountId,
    amount: Amount,
    limit: Duration,
) {
    let deadline = context.current() + limit;
    loop {
        let got = handle.read(|s| s.account(account).balance);
        if got == amount {
            return;
        }
        assert!(
            context.current() < deadline,
            "balance {got:?}, expected {amount:?}"
        );
        context.sleep(Duration::from_millis(100)).await;
    }
}
