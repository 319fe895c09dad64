//! Job bundles and outputs from any node, with real processes: four validators
//! (`orrery node init` + `orrery node run`), one `orrery provider run` agent attached to
//! node 2, and a requester whose `orrery job submit` talks to node 0 only.
//!
//! The bundle is a renamed copy of the π example, named so that node 2 is not among the
//! nodes node 0 pushes it to: the provider's node does not hold it and must fetch it from its
//! peers (issue 19: this lease used to time out and dock the provider). The lease settles;
//! the honest provider is paid exactly the lease's price × usage less the protocol fee and
//! is not docked; the requester pays exactly that price × usage; and the output the provider
//! uploaded to node 2 is read back through node 0.

mod support;

use orrery_client::Client;
use orrery_ledger::Params;
use orrery_types::amount::Amount;
use orrery_types::crypto::{AccountId, Keypair};
use orrery_types::hash::Hash;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;
use support::{
    PROVIDER_STAKE, client, kill_all, orrery, run_ok, start_provider, start_validators, transfer,
    wait_until,
};

/// The provider's devnet key.
const PROVIDER_SEED: u64 = 4_343;
/// The node the requester talks to, and the node the provider talks to.
const REQUESTER_NODE: usize = 0;
const PROVIDER_NODE: usize = 2;

/// Four validators and a provider, killed when dropped.
struct Net {
    dir: tempfile::TempDir,
    apis: Vec<String>,
    children: Vec<Child>,
    faucet: Keypair,
}

impl Drop for Net {
    fn drop(&mut self) {
        kill_all(&mut self.children);
    }
}

impl Net {
    fn start() -> Net {
        let dir = tempfile::tempdir().unwrap();
        // Ports apart from the other network tests' (which run alone anyway).
        let base = 12_000 + (std::process::id() % 500) as u16 * 20;
        let (children, apis, faucet) = start_validators(dir.path(), base, |_| {});
        Net {
            dir,
            apis,
            children,
            faucet,
        }
    }

    fn client(&self, node: usize) -> Client {
        client(&self.apis[node])
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn transfer(&self, to: AccountId, amount: Amount) {
        transfer(&self.client(REQUESTER_NODE), &self.faucet, to, amount);
    }

    /// `orrery provider run` against node `node`, registered and bonded.
    fn start_provider(&mut self, node: usize) {
        let child = start_provider(self.dir.path(), &self.apis[node], PROVIDER_SEED, "");
        self.children.push(child);
    }

    /// Whether node `node` holds `hash` itself (a peer's HEAD is answered locally only).
    fn holds(&self, node: usize, hash: &Hash) -> bool {
        peer_head(&format!("{}/api/v1/blobs/{hash}", self.apis[node])) == 200
    }

    /// A balance read with the height it was read at, never straddling an epoch boundary
    /// (emissions are minted there), and the height.
    fn balance_between_epochs(&self, who: &AccountId, epoch_blocks: u64) -> (Amount, u64) {
        let c = self.client(REQUESTER_NODE);
        loop {
            let before = c.status().unwrap().chain.height;
            let balance = c.account(who).unwrap().balance;
            let after = c.status().unwrap().chain.height;
            if before / epoch_blocks == after / epoch_blocks {
                return (balance, after);
            }
        }
    }

    /// Emission minted to `who` at the epoch boundaries in `(from, to]`.
    fn minted_to(&self, who: &AccountId, from: u64, to: u64, epoch_blocks: u64) -> Amount {
        let c = self.client(REQUESTER_NODE);
        let mut total = Amount::ZERO;
        let first = (from / epoch_blocks + 1) * epoch_blocks;
        for h in (first..=to).step_by(epoch_blocks as usize) {
            let r = c.block_receipts(h).unwrap().expect("indexed");
            assert!(r.outcome_known, "block {h}'s events are known");
            for e in &r.events {
                if e["event"] == "minted" && e["provider"] == who.to_string() {
                    let amount: Amount = e["amount"].as_str().unwrap().parse().unwrap();
                    total = total.checked_add(amount).unwrap();
                }
            }
        }
        total
    }
}

/// A HEAD marked as a peer's: answered from the node's own store, never fetched.
fn peer_head(url: &str) -> u16 {
    ureq::head(url)
        .header(orrery_node::peers::PEER_HEADER, "1")
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .map_or(0, |r| r.status().as_u16())
}

/// A counter of a node's `/metrics`, 0 if absent.
fn metric(api: &str, name: &str) -> u64 {
    let text = ureq::get(format!("{api}/metrics"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

fn provider_account() -> AccountId {
    Keypair::from_seed(PROVIDER_SEED).account()
}

/// A renamed copy of the π example (`steps` steps), named so that node 0 does not push it to
/// node 2; returns the request file and the bundle's hash.
fn write_job(dir: &Path, apis: &[String], steps: u64) -> (PathBuf, Hash) {
    let job = dir.join("job");
    std::fs::create_dir_all(&job).unwrap();
    let pi = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../workloads/wasm/pi/pi.wat"
    );
    std::fs::copy(pi, job.join("pi.wat")).unwrap();
    // Node 0's peers, as `orrery node init` wrote them, and their default number of homes.
    let peers: Vec<String> = apis[1..].to_vec();
    let replicas = orrery_node::PeerConfig::default().replicas;
    let manifest = job.join("job.toml");
    let hash = (0u32..)
        .find_map(|n| {
            std::fs::write(
                &manifest,
                format!(
                    "module = \"pi.wat\"\nruntime = \"wasm\"\nname = \"my pi, copy {n}\"\n\
                     steps = {steps}\n[wasm]\nentry = \"stepper\"\n[limits]\n\
                     fuel_per_step = 200000000\nmemory_bytes = 1048576\n\
                     max_state_bytes = 1024\nmax_output_bytes = 1024\n"
                ),
            )
            .unwrap();
            let hash = orrery_exec::pack_job_file(&manifest).unwrap().hash();
            let homes = orrery_node::peers::rank(&hash, &peers);
            (!homes[..replicas].contains(&apis[PROVIDER_NODE].as_str())).then_some(hash)
        })
        .unwrap();
    let request = job.join("request.toml");
    std::fs::write(
        &request,
        "bundle = \"job.toml\"\nverification = \"none\"\nmax_seconds = 600\n\
         deadline_blocks = 400\n[requirements]\ncpu_cores = 1\nram_gib = 1\n",
    )
    .unwrap();
    (request, hash)
}

#[test]
fn a_bundle_uploaded_to_node_0_runs_on_a_provider_of_node_2_and_the_lease_settles() {
    let mut net = Net::start();
    net.transfer(provider_account(), Amount::orr(1_000));
    net.start_provider(PROVIDER_NODE);
    let client = net.client(REQUESTER_NODE);
    let params: Params = client.params().unwrap();
    let epoch = params.epoch_blocks;
    let provider = provider_account();
    let requester = net.faucet.account();

    let (request, bundle) = write_job(net.dir.path(), &net.apis, 300);
    let (provider_before, h0) = net.balance_between_epochs(&provider, epoch);
    let requester_before = client.account(&requester).unwrap().balance;
    let out = run_ok(
        orrery()
            .args(["job", "submit"])
            .arg(&request)
            .arg("--key")
            .arg(net.path("faucet.key"))
            .args(["--node", &net.apis[REQUESTER_NODE]]),
    );
    let lease: u64 = out
        .split_whitespace()
        .nth(1)
        .and_then(|w| w.trim_end_matches(':').parse().ok())
        .unwrap_or_else(|| panic!("no lease id in: {out}"));
    let view = client.lease(lease).unwrap().unwrap();
    assert_eq!(view.job, bundle);
    assert_eq!(view.provider, provider);
    // Uploaded once, to node 0, which pushed it to its two homes, nodes 1 and 3.
    for node in [0, 1, 3] {
        assert!(net.holds(node, &bundle), "node {node}");
    }

    wait_until("the lease settling", Duration::from_secs(120), || {
        client
            .lease(lease)
            .ok()
            .flatten()
            .is_some_and(|l| !l.active)
    });
    let view = client.lease(lease).unwrap().unwrap();
    assert_eq!(view.state, "settled", "{}", view.state_detail);
    // Node 2 was no home of the bundle: it fetched it from a peer for its provider, and kept it.
    assert!(net.holds(PROVIDER_NODE, &bundle));
    assert!(
        metric(
            &net.apis[PROVIDER_NODE],
            "orrery_node_blob_fetches_total{outcome=\"found\"}"
        ) >= 1
    );

    // Paid to the unit: price × usage, less the protocol fee.
    let d = &view.state_detail;
    let usage: orrery_types::resources::Usage = serde_json::from_value(d["usage"].clone()).unwrap();
    let cost = view
        .terms
        .prices
        .cost(&view.terms.resources, &usage)
        .unwrap();
    assert!(!cost.is_zero(), "{d}");
    let fee = cost.bps(params.fee_bps).unwrap();
    let paid = cost.checked_sub(fee).unwrap();
    let amount = |k: &str| d[k].as_str().unwrap().parse::<Amount>().unwrap();
    assert_eq!(amount("paid"), cost, "{d}");
    assert_eq!(amount("fee"), fee, "{d}");
    assert_eq!(
        client.account(&requester).unwrap().balance,
        requester_before.checked_sub(cost).unwrap(),
        "the requester paid exactly price × usage"
    );
    let record = client.provider(&provider).unwrap().unwrap();
    assert_eq!(record.earned, paid);
    assert_eq!(
        record.stake,
        PROVIDER_STAKE.parse::<Amount>().unwrap(),
        "not docked"
    );
    assert_eq!(record.reputation.timed_out, 0);
    assert_eq!(record.reputation.settled, 1);
    let (provider_after, h1) = net.balance_between_epochs(&provider, epoch);
    let minted = net.minted_to(&provider, h0, h1, epoch);
    assert_eq!(
        provider_after,
        provider_before
            .checked_add(paid)
            .and_then(|b| b.checked_add(minted))
            .unwrap(),
        "the provider's balance grew by its pay (and any epoch emission, {minted})"
    );

    // The output, uploaded by the provider to node 2, read through node 0.
    let output: Hash = d["output"].as_str().unwrap().parse().unwrap();
    let fetched = net.path("output.bin");
    run_ok(
        orrery()
            .args(["job", "result", &lease.to_string(), "--node"])
            .arg(&net.apis[REQUESTER_NODE])
            .arg("--out")
            .arg(&fetched),
    );
    assert_eq!(Hash::of(&std::fs::read(&fetched).unwrap()), output);
}
