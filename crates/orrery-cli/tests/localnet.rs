//! Four real validator processes on loopback: one is killed with SIGKILL mid-run and restarted;
//! the chain keeps finalizing without it, and afterwards all four agree on the blocks, the state
//! root and the balances.

use orrery_client::Client;
use orrery_types::amount::Amount;
use orrery_types::crypto::{AccountId, Keypair};
use orrery_types::tx::{ChainId, Tx, TxBody};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

fn orrery() -> Command {
    Command::new(env!("CARGO_BIN_EXE_orrery"))
}

fn spawn(dir: &Path, i: usize) -> Child {
    let v = dir.join(format!("validator-{i}"));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("validator-{i}.log")))
        .unwrap();
    orrery()
        .args(["node", "run", "--validator"])
        .arg(v.join("validator.toml"))
        .arg("--node")
        .arg(v.join("node.toml"))
        .env("ORRERY_LOG", "info")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

struct Net {
    children: Vec<Option<Child>>,
}

impl Drop for Net {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn height(api: &str) -> Option<u64> {
    Client::with_timeout(api, Duration::from_secs(2))
        .status()
        .ok()
        .map(|s| s.chain.height)
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn transfer(client: &Client, key: &Keypair, to: AccountId, amount: Amount) {
    let status = client.status().unwrap();
    let nonce = client.account(&key.account()).unwrap().nonce;
    let tx = Tx {
        chain_id: ChainId::new(&status.chain.chain_id).unwrap(),
        nonce,
        body: TxBody::Transfer { to, amount },
    }
    .sign(key);
    let hash = client.submit(&tx).unwrap();
    let record = client.wait_for_tx(&hash, Duration::from_secs(60)).unwrap();
    assert!(record.receipt.is_none_or(|r| r.ok));
}

#[test]
fn four_processes_survive_a_sigkill_and_converge() {
    let dir = tempfile::tempdir().unwrap();
    // Ports unlikely to collide with other tests or a running localnet.
    let base = 20_000 + (std::process::id() % 1_200) as u16 * 10;
    let init = orrery()
        .args(["node", "init", "--dir"])
        .arg(dir.path())
        .args(["--p2p-port", &base.to_string()])
        .args(["--api-port", &(base + 5).to_string()])
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let apis: Vec<String> = (0..4)
        .map(|i| format!("http://127.0.0.1:{}", base + 5 + i))
        .collect();
    let mut net = Net {
        children: (0..4).map(|i| Some(spawn(dir.path(), i))).collect(),
    };
    wait_until(
        "four validators at height 3",
        Duration::from_secs(120),
        || apis.iter().all(|a| height(a).is_some_and(|h| h >= 3)),
    );

    let text = std::fs::read_to_string(dir.path().join("faucet.key")).unwrap();
    let bytes: [u8; 32] = hex::decode(text.trim()).unwrap().try_into().unwrap();
    let faucet = Keypair::from_secret_bytes(&bytes).unwrap();
    let alice = Keypair::from_seed(77).account();
    let client = Client::new(&apis[0]);
    transfer(&client, &faucet, alice, Amount::orr(10));

    // SIGKILL validator 3: the other three (2f + 1 of 4) keep finalizing.
    let mut victim = net.children[3].take().unwrap();
    victim.kill().unwrap();
    victim.wait().unwrap();
    let h = height(&apis[0]).unwrap();
    transfer(&client, &faucet, alice, Amount::orr(5));
    wait_until(
        "progress without validator 3",
        Duration::from_secs(60),
        || {
            apis[..3]
                .iter()
                .all(|a| height(a).is_some_and(|x| x >= h + 10))
        },
    );

    // Restart it from its data on disk: it catches up.
    net.children[3] = Some(spawn(dir.path(), 3));
    let target = height(&apis[0]).unwrap();
    wait_until("validator 3 catching up", Duration::from_secs(120), || {
        height(&apis[3]).is_some_and(|x| x >= target)
    });
    transfer(&client, &faucet, alice, Amount::orr(1));

    // Every node has the same block at a common height.
    let common = apis.iter().filter_map(|a| height(a)).min().unwrap();
    let hashes: Vec<_> = apis
        .iter()
        .map(|a| Client::new(a).block(common).unwrap().unwrap().summary.hash)
        .collect();
    assert!(hashes.windows(2).all(|w| w[0] == w[1]), "{hashes:?}");
    // The same state root when they report the same height, and the same balances.
    wait_until(
        "all four at one height with one root",
        Duration::from_secs(60),
        || {
            let s: Vec<_> = apis
                .iter()
                .filter_map(|a| Client::new(a).status().ok())
                .collect();
            s.len() == 4
                && s.iter().all(|x| x.chain.height == s[0].chain.height)
                && s.iter()
                    .all(|x| x.chain.state_root == s[0].chain.state_root)
        },
    );
    for a in &apis {
        wait_until("the transfers everywhere", Duration::from_secs(30), || {
            Client::new(a)
                .account(&alice)
                .is_ok_and(|acc| acc.balance == Amount::orr(16))
        });
    }
}
