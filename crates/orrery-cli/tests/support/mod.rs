//! What the process tests share: the `orrery` binary, commands that must succeed, waiting, and
//! a four-validator network written by `orrery node init` and run as `orrery node run`
//! processes. Each test binary uses only part of it.
#![allow(dead_code)]

use orrery_client::Client;
use orrery_types::amount::Amount;
use orrery_types::crypto::{AccountId, Keypair};
use orrery_types::tx::{ChainId, Tx, TxBody};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The binary under test.
pub fn orrery() -> Command {
    Command::new(env!("CARGO_BIN_EXE_orrery"))
}

/// Run `cmd`, fail the test with its output unless it succeeds; returns its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Poll `ok` every 100 ms until it holds; fail the test after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A client with a short timeout.
pub fn client(api: &str) -> Client {
    Client::with_timeout(api, Duration::from_secs(5))
}

/// Four validators written into `dir` by `orrery node init` (p2p ports from `base`, APIs from
/// `base + 5`); `tweak` may edit their files before they start. Returns the running processes
/// (each logging to `dir/validator-<i>.log`), their API URLs and the faucet's key, once every
/// validator has finalized height 2.
pub fn start_validators(
    dir: &Path,
    base: u16,
    tweak: impl FnOnce(&Path),
) -> (Vec<Child>, Vec<String>, Keypair) {
    run_ok(
        orrery()
            .args(["node", "init", "--dir"])
            .arg(dir)
            .args(["--p2p-port", &base.to_string()])
            .args(["--api-port", &(base + 5).to_string()]),
    );
    tweak(dir);
    let children = (0..4)
        .map(|i| {
            let v = dir.join(format!("validator-{i}"));
            let log = std::fs::File::create(dir.join(format!("validator-{i}.log"))).unwrap();
            orrery()
                .args(["node", "run", "--validator"])
                .arg(v.join("validator.toml"))
                .arg("--node")
                .arg(v.join("node.toml"))
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap()
        })
        .collect();
    let text = std::fs::read_to_string(dir.join("faucet.key")).unwrap();
    let bytes: [u8; 32] = hex::decode(text.trim()).unwrap().try_into().unwrap();
    let faucet = Keypair::from_secret_bytes(&bytes).unwrap();
    let apis: Vec<String> = (0..4)
        .map(|i| format!("http://127.0.0.1:{}", base + 5 + i))
        .collect();
    wait_until("the chain at height 2", Duration::from_secs(120), || {
        apis.iter()
            .all(|a| client(a).status().is_ok_and(|s| s.chain.height >= 2))
    });
    (children, apis, faucet)
}

/// Send `amount` from `from` to `to` through `client` and wait until it applied.
pub fn transfer(client: &Client, from: &Keypair, to: AccountId, amount: Amount) {
    let tx = Tx {
        chain_id: ChainId::new(&client.status().unwrap().chain.chain_id).unwrap(),
        nonce: client.account(&from.account()).unwrap().nonce,
        body: TxBody::Transfer { to, amount },
    }
    .sign(from);
    let hash = client.submit(&tx).unwrap();
    let record = client.wait_for_tx(&hash, Duration::from_secs(60)).unwrap();
    assert!(record.receipt.is_none_or(|r| r.ok));
}

/// Kill and reap every process.
pub fn kill_all<'a>(children: impl IntoIterator<Item = &'a mut Child>) {
    for c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// The stake the process tests' provider bonds (ORR): above the minimum for 2 cores.
pub const PROVIDER_STAKE: &str = "200";

/// Write `dir/provider.toml` for a 2-core provider with devnet key `seed` attached to `api`
/// (`extra` lines appended to its top table), start `orrery provider run` on it (log appended
/// to `dir/provider.log`), and wait until it is registered and bonded.
pub fn start_provider(dir: &Path, api: &str, seed: u64, extra: &str) -> Child {
    start_provider_claiming(dir, api, seed, extra, 2, PROVIDER_STAKE)
}

/// [`start_provider`] for a provider that claims `cpu_cores` cores and bonds `stake` ORR.
pub fn start_provider_claiming(
    dir: &Path,
    api: &str,
    seed: u64,
    extra: &str,
    cpu_cores: u16,
    stake: &str,
) -> Child {
    std::fs::create_dir_all(dir).unwrap();
    let config = dir.join("provider.toml");
    std::fs::write(
        &config,
        format!(
            r#"node = "{api}"
key_seed = {seed}
data_dir = "{data}"
region = "eu-west"
stake = "{stake}"
poll_interval_ms = 100
{extra}
[prices]
gpu_hour = "0"
cpu_core_hour = "0.05"
ram_gib_hour = "0"
mega_unit = "0.001"
[hardware]
cpu_cores = {cpu_cores}
ram_gib = 4
"#,
            data = dir.join("provider-data").display(),
        ),
    )
    .unwrap();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("provider.log"))
        .unwrap();
    let child = orrery()
        .args(["provider", "run", "--config"])
        .arg(&config)
        .env("ORRERY_LOG", "orrery_provider=info")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let account = Keypair::from_seed(seed).account();
    let client = client(api);
    wait_until(
        "the provider registered and bonded",
        Duration::from_secs(60),
        || {
            client
                .provider(&account)
                .ok()
                .flatten()
                .is_some_and(|p| !p.stake.is_zero())
        },
    );
    child
}
