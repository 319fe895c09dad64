//! The explorer in a real browser: `orrery devnet --cheaters 1` settles its jobs and slashes
//! the cheater, then `e2e/explorer.mjs` drives headless Chromium (Debian's `chromium`, through
//! playwright-core) over the first validator's explorer: the overview, a settled job's
//! evidence, the dispute and the slashed cheater, search messages, a phone-sized screen, and
//! each page's load time. Screenshots go to `target/explorer-screenshots/`.
//!
//! Before the browser opens, the test adds thousands of leases (`ORRERY_E2E_LEASES`, default
//! 2,000) to the running devnet — opened by the faucet to a provider registered without an
//! agent, so they time out rather than make the machine run thousands of jobs — so that page
//! load times are measured over a chain with thousands of jobs.
//!
//! Needs `chromium` and `npm ci --prefix e2e`. Without them the test says "skipped" loudly and
//! passes, unless `ORRERY_E2E=1` (as `.ci/run` sets), where it fails naming what to install.

use orrery_client::{Client, Error};
use orrery_types::amount::Amount;
use orrery_types::codec::Text;
use orrery_types::crypto::Keypair;
use orrery_types::hash::Hash;
use orrery_types::resources::{Hardware, PriceList, ResourceRequest};
use orrery_types::tx::{ChainId, LeaseTerms, ProviderOffer, Tx, TxBody, Verification};
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The devnet and everything it started, in its own process group: stopped with Ctrl-C
/// (which stops its validators), then killed as a group if it lingers — also when the test
/// fails halfway.
struct Devnet(std::process::Child);

impl Drop for Devnet {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-INT", "--", &group]).status();
        for _ in 0..100 {
            if self.0.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.0.wait();
    }
}

/// Submit `body` from `key` with `nonce`, waiting out rate limits and a full mempool.
fn submit(client: &Client, chain: &ChainId, key: &Keypair, nonce: u64, body: TxBody) {
    let tx = Tx {
        chain_id: chain.clone(),
        nonce,
        body,
    }
    .sign(key);
    let start = Instant::now();
    loop {
        match client.submit(&tx) {
            Ok(_) => return,
            Err(Error::Api {
                retry_after: Some(s),
                ..
            }) if start.elapsed() < Duration::from_secs(120) => {
                std::thread::sleep(Duration::from_secs(s.min(2)));
            }
            Err(e) => panic!("submitting a load transaction: {e}"),
        }
    }
}

/// Wait until `key`'s account has used nonces below `nonce`.
fn wait_nonce(client: &Client, key: &Keypair, nonce: u64) {
    let start = Instant::now();
    while client.account(&key.account()).map(|a| a.nonce).unwrap_or(0) < nonce {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "load transactions were not finalized (nonce {nonce})"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Open `n` leases to a provider that has no agent (they time out after the start timeout,
/// refunding their requesters and docking that provider): thousands of jobs on the chain
/// without thousands of runs on the machine. Four requesters funded by the faucet submit in
/// parallel, each to its own validator's API (each node limits requests per address), in
/// batches under the mempool's 256 transactions per sender.
fn add_leases(apis: &[String], net_dir: &Path, n: u64) {
    const BATCH: u64 = 200;
    let client = Client::new(&apis[0]);
    let chain = ChainId::new(client.status().expect("status").chain.chain_id).expect("chain id");
    let secret = std::fs::read_to_string(net_dir.join("faucet.key")).expect("faucet key");
    let bytes: [u8; 32] = hex::decode(secret.trim())
        .expect("hex key")
        .try_into()
        .expect("32 bytes");
    let faucet = Keypair::from_secret_bytes(&bytes).expect("faucet key");
    let idle = Keypair::from_seed(0x0E2E);
    let requesters: Vec<Keypair> = (0..apis.len() as u64)
        .map(|i| Keypair::from_seed(0x0E2E + 1 + i))
        .collect();
    let prices = PriceList {
        gpu_hour: Amount::ZERO,
        cpu_core_hour: Amount::orr(1),
        ram_gib_hour: Amount::ZERO,
        mega_unit: Amount::ZERO,
    };
    let mut nonce = client.account(&faucet.account()).expect("faucet").nonce;
    for to in std::iter::once(&idle).chain(&requesters) {
        let amount = Amount::orr(1_000);
        let body = TxBody::Transfer {
            to: to.account(),
            amount,
        };
        submit(&client, &chain, &faucet, nonce, body);
        nonce += 1;
    }
    wait_nonce(&client, &faucet, nonce);
    let offer = ProviderOffer {
        hardware: Hardware {
            gpu: None,
            cpu_cores: 4,
            ram_gib: 8,
        },
        region: Text::new("load-test").expect("region"),
        endpoint: Text::new("http://127.0.0.1:9").expect("endpoint"),
        prices,
    };
    submit(&client, &chain, &idle, 0, TxBody::RegisterProvider(offer));
    let bond = TxBody::Bond {
        amount: Amount::orr(500),
    };
    submit(&client, &chain, &idle, 1, bond);
    wait_nonce(&client, &idle, 2);
    let per = n.div_ceil(requesters.len() as u64);
    std::thread::scope(|scope| {
        for (r, key) in requesters.iter().enumerate() {
            let (chain, api, idle) = (&chain, &apis[r], idle.account());
            scope.spawn(move || {
                let client = Client::new(api);
                let mut nonce = 0;
                while nonce < per {
                    let height = client.status().expect("status").chain.height;
                    let batch = BATCH.min(per - nonce);
                    for i in nonce..nonce + batch {
                        let body = TxBody::OpenLease {
                            provider: idle,
                            job: Hash::of(&[r as u64, i].map(u64::to_be_bytes).concat()),
                            terms: LeaseTerms {
                                resources: ResourceRequest {
                                    gpus: 0,
                                    cpu_cores: 1,
                                    ram_gib: 1,
                                },
                                prices,
                                max_seconds: 60,
                                max_units: 0,
                            },
                            deadline: height + 1_000,
                            verification: Verification::None,
                        };
                        submit(&client, chain, key, i, body);
                    }
                    nonce += batch;
                    wait_nonce(&client, key, nonce);
                }
            });
        }
    });
}

/// What is missing to run the browser test, if anything.
fn missing() -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!(
            "{chromium} is missing: install Debian's chromium (`sudo apt-get install -y chromium`)"
        ));
    }
    if !repo().join("e2e/node_modules/playwright-core").exists() {
        return Some(
            "e2e/node_modules is missing: run `npm ci --prefix e2e` (needs Node.js 20+)".into(),
        );
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("node is missing: install Node.js 20 or later".into());
    }
    None
}

#[test]
fn the_explorer_shows_the_devnet_in_a_browser() {
    if let Some(what) = missing() {
        if std::env::var("ORRERY_E2E").as_deref() == Ok("1") {
            panic!("ORRERY_E2E=1 but the explorer's browser test cannot run: {what}");
        }
        eprintln!("\n*** skipped: the explorer's browser test: {what} ***\n");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let net_dir = dir.path().join("net");
    // Away from the devnet test's ports (28000 + …), so both can run on one machine, and below
    // the kernel's ephemeral range (32768 and up), where outgoing connections take ports.
    // p2p base…+3, API base+5…+8, inference serving base+10…+13, cluster p2p base+15…+18.
    let base = 24_000 + (std::process::id() % 200) as u16 * 20;
    let api = format!("http://127.0.0.1:{}", base + 5);
    let log = std::fs::File::create(dir.path().join("devnet.log")).expect("log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_orrery"))
        .args(["devnet", "--json", "--cheaters", "1", "--dir"])
        .arg(&net_dir)
        .args(["--p2p-port", &base.to_string()])
        .args(["--api-port", &(base + 5).to_string()])
        .args(["--serve-port", &(base + 10).to_string()])
        .args(["--cluster-port", &(base + 15).to_string()])
        .stdout(Stdio::piped())
        .stderr(log)
        .process_group(0)
        .spawn()
        .expect("orrery devnet starts");
    let stdout = child.stdout.take().expect("stdout");
    let devnet = Devnet(child);

    // The summary is printed once every job is final and the epoch's emission minted.
    let mut json = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("devnet output");
        if line.starts_with("the devnet keeps running") {
            break;
        }
        json.push_str(&line);
        json.push('\n');
    }
    let log = || std::fs::read_to_string(dir.path().join("devnet.log")).unwrap_or_default();
    let s: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| {
        let log = log();
        let tail = &log[log.len().saturating_sub(3_000)..];
        panic!("the devnet printed no summary ({e}): {json}\n{tail}")
    });
    assert!(s["settled"].as_u64().unwrap_or(0) >= 1, "{s}");
    // The job cheater (--cheaters 1) and the devnet's inference cheater.
    assert_eq!(s["cheaters_slashed"], 2, "{s}");

    let leases: u64 = std::env::var("ORRERY_E2E_LEASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let t = Instant::now();
    let apis: Vec<String> = (0..4)
        .map(|i| format!("http://127.0.0.1:{}", base + 5 + i))
        .collect();
    add_leases(&apis, &net_dir, leases);
    println!(
        "{leases} more leases opened in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let shots = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"))
        .join("explorer-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    let t = Instant::now();
    let out = Command::new("node")
        .arg(repo().join("e2e/explorer.mjs"))
        .arg(&api)
        .arg(&shots)
        .output()
        .expect("node runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}browser run: {:.1} s", t.elapsed().as_secs_f64());
    assert!(
        out.status.success(),
        "the explorer's browser test failed:\n{text}"
    );
    assert!(shots.join("01-overview.png").exists(), "{text}");
    drop(devnet);
}
