//! The node answers as its OpenAPI document says: a single-validator network (`orrery node
//! init --validators 1`, `orrery node run`) gets providers, leases of every verification level,
//! transactions and a blob, then schemathesis (pinned in `tests/openapi/requirements.txt`,
//! configured by `tests/openapi/schemathesis.toml`) runs every check it has against every
//! operation of `/openapi.json`: no 5xx, no status code, content type, header or body the
//! document does not declare, invalid input refused, valid input accepted (with the exceptions
//! the configuration names, each with its reason). A drift between the node and its document
//! fails this test.
//!
//! Needs `schemathesis` at the pinned version: named by `$SCHEMATHESIS`, in
//! `target/schemathesis-venv` (where `.ci/run` installs it), or on `PATH`. Without it the test says "skipped" loudly and passes,
//! unless `ORRERY_E2E=1` (as `.ci/run` sets), where it fails naming what to install.

use orrery_client::Client;
use orrery_types::amount::Amount;
use orrery_types::codec::Text;
use orrery_types::crypto::Keypair;
use orrery_types::hash::Hash;
use orrery_types::resources::{Hardware, PriceList, ResourceRequest};
use orrery_types::tx::{ChainId, LeaseTerms, ProviderOffer, Tx, TxBody, Verification};
use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const REQUIREMENTS: &str = include_str!("openapi/requirements.txt");
const CONFIG: &str = include_str!("openapi/schemathesis.toml");

/// The schemathesis version `requirements.txt` pins.
fn pinned_version() -> &'static str {
    REQUIREMENTS
        .lines()
        .find_map(|l| l.trim().strip_prefix("schemathesis=="))
        .expect("requirements.txt pins schemathesis==<version>")
}

/// Where `.ci/run` installs schemathesis.
fn ci_venv_schemathesis() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/schemathesis-venv/bin/schemathesis")
}

/// The schemathesis to run — `$SCHEMATHESIS`, else `.ci/run`'s venv, else `PATH` — or what
/// is missing.
fn schemathesis() -> Result<PathBuf, String> {
    let bin = std::env::var_os("SCHEMATHESIS")
        .map(PathBuf::from)
        .or_else(|| Some(ci_venv_schemathesis()).filter(|p| p.exists()))
        .unwrap_or_else(|| PathBuf::from("schemathesis"));
    let version = pinned_version();
    let install = "install it as .ci/run does: `python3 -m venv target/schemathesis-venv && \
                   target/schemathesis-venv/bin/pip install -r \
                   crates/orrery-cli/tests/openapi/requirements.txt` (or put it on PATH, or \
                   name it with SCHEMATHESIS=<absolute path>)";
    let out = Command::new(&bin)
        .arg("--version")
        .output()
        .map_err(|e| format!("{} cannot be run ({e}): {install}", bin.display()))?;
    let said = String::from_utf8_lossy(&out.stdout);
    if !said.contains(version) {
        return Err(format!(
            "{} is not schemathesis {version} (it says {:?}): {install}",
            bin.display(),
            said.trim()
        ));
    }
    Ok(bin)
}

/// The validator process, in its own process group: stopped with Ctrl-C, then killed if it
/// lingers — also when the test fails halfway.
struct Node(std::process::Child);

impl Drop for Node {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-INT", "--", &group]).status();
        for _ in 0..100 {
            if self.0.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.0.wait();
    }
}

fn orrery() -> Command {
    Command::new(env!("CARGO_BIN_EXE_orrery"))
}

/// Start a one-validator network in `dir`; returns the node and its API address.
fn start(dir: &Path) -> (Node, String) {
    // Above the other network tests' ports (20000–60000) and Linux's ephemeral range (up to
    // 60999), so neither a stale process of another test nor an outgoing connection holds it.
    let base = 61_000 + (std::process::id() % 2_000) as u16 * 2;
    let init = orrery()
        .args(["node", "init", "--validators", "1", "--dir"])
        .arg(dir)
        .args(["--p2p-port", &base.to_string()])
        .args(["--api-port", &(base + 1).to_string()])
        .output()
        .expect("orrery node init runs");
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let v = dir.join("validator-0");
    let log = std::fs::File::create(dir.join("node.log")).expect("log file");
    let child = orrery()
        .args(["node", "run", "--validator"])
        .arg(v.join("validator.toml"))
        .arg("--node")
        .arg(v.join("node.toml"))
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .process_group(0)
        .spawn()
        .expect("orrery node run starts");
    let node = Node(child);
    let api = format!("http://127.0.0.1:{}", base + 1);
    let client = Client::with_timeout(&api, Duration::from_secs(2));
    let start = Instant::now();
    while client.status().map_or(true, |s| s.chain.height < 2) {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the node did not finalize 2 blocks in 120 s: {}",
            std::fs::read_to_string(dir.join("node.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    (node, api)
}

/// What the test put on the chain, for schemathesis's dictionaries.
#[derive(Default)]
struct Seeded {
    leases: BTreeSet<u64>,
    accounts: BTreeSet<String>,
    providers: BTreeSet<String>,
    txs: BTreeSet<String>,
    heights: BTreeSet<u64>,
    blobs: BTreeSet<String>,
}

struct Chain<'a> {
    client: &'a Client,
    id: ChainId,
    seeded: Seeded,
}

impl Chain<'_> {
    /// Submit `body` from `key`, wait until it is final, and check that it applied.
    fn apply(&mut self, key: &Keypair, body: TxBody) -> orrery_client::api::TxRecord {
        let nonce = self.client.account(&key.account()).expect("account").nonce;
        let tx = Tx {
            chain_id: self.id.clone(),
            nonce,
            body,
        }
        .sign(key);
        let hash = self.client.submit(&tx).expect("the node accepts it");
        let record = self
            .client
            .wait_for_tx(&hash, Duration::from_secs(60))
            .expect("finalized");
        let receipt = record.receipt.clone().expect("outcome known");
        assert!(receipt.ok, "{receipt:?}");
        self.seeded.txs.insert(hash.to_string());
        self.seeded.heights.insert(record.height);
        self.seeded.accounts.insert(key.account().to_string());
        record
    }
}

/// Two providers (no agents: their leases time out), a requester, and one lease at each
/// verification level, so that lists and details have real entries of every shape.
fn seed(client: &Client, net_dir: &Path) -> Seeded {
    let id = ChainId::new(client.status().expect("status").chain.chain_id).expect("chain id");
    let secret = std::fs::read_to_string(net_dir.join("faucet.key")).expect("faucet key");
    let bytes: [u8; 32] = hex::decode(secret.trim())
        .expect("hex key")
        .try_into()
        .expect("32 bytes");
    let faucet = Keypair::from_secret_bytes(&bytes).expect("faucet key");
    let requester = Keypair::from_seed(0x0A91);
    let providers = [Keypair::from_seed(0x0A92), Keypair::from_seed(0x0A93)];
    let mut chain = Chain {
        client,
        id,
        seeded: Seeded::default(),
    };
    for to in std::iter::once(&requester).chain(&providers) {
        let body = TxBody::Transfer {
            to: to.account(),
            amount: Amount::orr(1_000),
        };
        chain.apply(&faucet, body);
    }
    let prices = PriceList {
        gpu_hour: Amount::ZERO,
        cpu_core_hour: Amount::orr(1),
        ram_gib_hour: Amount::ZERO,
        mega_unit: Amount::ZERO,
    };
    for p in &providers {
        let offer = ProviderOffer {
            hardware: Hardware {
                gpu: None,
                cpu_cores: 4,
                ram_gib: 8,
            },
            region: Text::new("conformance").expect("region"),
            endpoint: Text::new("http://127.0.0.1:9").expect("endpoint"),
            prices,
        };
        chain.apply(p, TxBody::RegisterProvider(offer));
        let bond = TxBody::Bond {
            amount: Amount::orr(500),
        };
        chain.apply(p, bond);
        chain.seeded.providers.insert(p.account().to_string());
    }
    let verifications = [
        Verification::None,
        Verification::Sampled,
        Verification::Redundant { k: 2 },
    ];
    for (i, verification) in verifications.into_iter().enumerate() {
        let height = client.status().expect("status").chain.height;
        let body = TxBody::OpenLease {
            provider: providers[i % 2].account(),
            job: Hash::of(&(i as u64).to_be_bytes()),
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
            verification,
        };
        let record = chain.apply(&requester, body);
        let receipt = record.receipt.expect("outcome known");
        let lease = receipt
            .events
            .iter()
            .find_map(|e| e.get("lease").and_then(|l| l.as_u64()))
            .expect("the receipt names the lease");
        chain.seeded.leases.insert(lease);
    }
    let blob = client
        .put_blob(b"a job bundle, as far as the blob store knows")
        .expect("blob stored");
    chain.seeded.blobs.insert(blob.hash.to_string());
    chain.seeded.heights.insert(1);
    chain.seeded
}

/// `[dictionaries.<name>]` with `values`, as TOML: integers (to match integer parameters) or
/// strings. The values are digits, hex and account ids: nothing to escape.
fn dictionary(name: &str, values: &[String], integers: bool) -> String {
    assert!(!values.is_empty(), "dictionary {name} is empty");
    let values: Vec<String> = values
        .iter()
        .map(|v| {
            if integers {
                v.clone()
            } else {
                format!("\"{v}\"")
            }
        })
        .collect();
    format!(
        "\n[dictionaries.{name}]\nvalues = [{}]\n",
        values.join(", ")
    )
}

/// The configuration with the dictionaries of what `s` holds appended.
fn write_config(dir: &Path, s: &Seeded) -> PathBuf {
    let numbers = |set: &BTreeSet<u64>| set.iter().map(u64::to_string).collect::<Vec<_>>();
    let strings = |set: &BTreeSet<String>| set.iter().cloned().collect::<Vec<_>>();
    let search: Vec<String> = numbers(&s.leases)
        .into_iter()
        .chain(numbers(&s.heights))
        .chain(strings(&s.txs))
        .chain(strings(&s.accounts))
        .collect();
    let text = [
        CONFIG.to_string(),
        dictionary("leases", &numbers(&s.leases), true),
        dictionary("accounts", &strings(&s.accounts), false),
        dictionary("providers", &strings(&s.providers), false),
        dictionary("txs", &strings(&s.txs), false),
        dictionary("heights", &numbers(&s.heights), true),
        dictionary("blobs", &strings(&s.blobs), false),
        // A query string is text, numbers included.
        dictionary("search", &search, false),
    ]
    .concat();
    let config = dir.join("schemathesis.toml");
    std::fs::write(&config, text).expect("config written");
    config
}

#[test]
fn the_node_answers_as_its_openapi_document_says() {
    let bin = match schemathesis() {
        Ok(bin) => bin,
        Err(what) => {
            if std::env::var("ORRERY_E2E").as_deref() == Ok("1") {
                panic!("ORRERY_E2E=1 but the OpenAPI conformance test cannot run: {what}");
            }
            eprintln!("\n*** skipped: the OpenAPI conformance test: {what} ***\n");
            return;
        }
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let net_dir = dir.path().join("net");
    let (node, api) = start(&net_dir);
    let client = Client::new(&api);
    let seeded = seed(&client, &net_dir);
    let work = dir.path().join("schemathesis");
    std::fs::create_dir_all(&work).expect("work dir");
    let config = write_config(&work, &seeded);

    let t = Instant::now();
    let out = Command::new(&bin)
        .arg("--config-file")
        .arg(&config)
        .args(["run", &format!("{api}/openapi.json"), "--no-color"])
        .current_dir(&work)
        .stdin(Stdio::null())
        .output()
        .expect("schemathesis runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}schemathesis: {:.1} s", t.elapsed().as_secs_f64());
    assert!(
        out.status.success(),
        "the node does not answer as its OpenAPI document says:\n{text}"
    );
    // Every operation was exercised, none skipped or errored.
    assert!(text.contains("33 selected / 33 total"), "{text}");
    assert!(text.contains("Tested: 33"), "{text}");
    drop(node);
}
