//! Provider challenges with real processes: four validators (`orrery node run`) whose genesis
//! draws a challenge every few blocks, and `orrery provider run` agents answering them.
//!
//! - **Downtime.** A provider process is stopped (SIGSTOP): it misses a challenge, its stake
//!   drops by exactly the penalty, its uptime falls, the chain marks it offline and
//!   `orrery market offers` stops listing it. Continued (SIGCONT), its agent sees itself
//!   offline, asks for a challenge, answers it, and is routed again.
//! - **Spoofing.** A provider that claims 64 cores on this 2-core machine cannot finish a
//!   challenge sized for them by the deadline: it is docked, marked offline and dropped from
//!   routing, while the honest providers beside it (one core each) are never docked.
//!
//! The genesis sizes challenges for a short target (300 ms at the claimed rate) and draws one
//! provider every 5 blocks, so each test takes well under two minutes.

mod support;

use orrery_client::Client;
use orrery_client::api::ChallengeRecordView;
use orrery_types::amount::Amount;
use orrery_types::crypto::{AccountId, Keypair};
use std::path::Path;
use std::process::Child;
use std::time::Duration;
use support::{
    client, kill_all, orrery, run_ok, start_provider_claiming, start_validators, transfer,
    wait_until,
};

/// The honest providers' stake (ORR): above the minimum for one core.
const HONEST_STAKE: &str = "200";
/// The challenge parameters these tests run with (see `docs/economics.md`).
const CHALLENGE_PARAMS: [(&str, i64); 5] = [
    ("challenges_per_block", 1),
    ("challenge_every_blocks", 5),
    ("challenge_target_ms", 300),
    ("challenge_latency_ms", 1_500),
    ("challenge_miss_penalty_bps", 500),
];

/// Four validators on loopback and the providers started on them; every process is killed
/// when it is dropped.
struct Net {
    dir: tempfile::TempDir,
    api: String,
    validators: Vec<Child>,
    providers: Vec<Child>,
    faucet: Keypair,
}

impl Drop for Net {
    fn drop(&mut self) {
        // A stopped process must be continued to die promptly on some systems.
        for p in &self.providers {
            signal(p, "CONT");
        }
        kill_all(self.validators.iter_mut().chain(self.providers.iter_mut()));
    }
}

impl Net {
    /// Four validators (ports from `slot`) whose genesis challenges often and cheaply.
    fn start(slot: u16) -> Net {
        let dir = tempfile::tempdir().unwrap();
        let base = 11_000 + (std::process::id() % 900) as u16 * 20 + slot * 10;
        let (validators, apis, faucet) = start_validators(dir.path(), base, set_challenge_params);
        Net {
            api: apis[0].clone(),
            dir,
            validators,
            providers: Vec::new(),
            faucet,
        }
    }

    fn client(&self) -> Client {
        client(&self.api)
    }

    /// Fund and start provider `seed` claiming `cores` cores and bonding `stake` ORR; returns
    /// its index in `providers`.
    fn provider(&mut self, seed: u64, cores: u16, stake: &str) -> usize {
        let account = Keypair::from_seed(seed).account();
        let funds = stake
            .parse::<Amount>()
            .unwrap()
            .checked_add(Amount::orr(100));
        transfer(&self.client(), &self.faucet, account, funds.unwrap());
        let dir = self.dir.path().join(format!("provider-{seed}"));
        self.providers.push(start_provider_claiming(
            &dir, &self.api, seed, "", cores, stake,
        ));
        self.providers.len() - 1
    }

    /// The chain's challenge record of `who`.
    fn record(&self, who: &AccountId) -> ChallengeRecordView {
        let view = self.client().provider(who).unwrap().expect("registered");
        view.challenges.expect("the node reports challenges")
    }

    fn stake(&self, who: &AccountId) -> Amount {
        self.client()
            .provider(who)
            .unwrap()
            .expect("registered")
            .stake
    }

    /// The providers `orrery market offers` ranks for a one-core job.
    fn routed(&self) -> Vec<AccountId> {
        let out = run_ok(
            orrery()
                .args(["market", "offers", "--json", "--node", &self.api])
                .args(["--cpu-cores", "1", "--limit", "50"]),
        );
        let ranked: serde_json::Value = serde_json::from_str(&out).unwrap();
        ranked
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["offer"]["provider"].as_str().unwrap().parse().unwrap())
            .collect()
    }

    fn log(&self, seed: u64) -> String {
        let path = self
            .dir
            .path()
            .join(format!("provider-{seed}"))
            .join("provider.log");
        std::fs::read_to_string(path).unwrap_or_default()
    }
}

/// Writes [`CHALLENGE_PARAMS`] into the network's genesis (the file, and each validator's
/// inline copy, which is what validators run) before the validators start.
fn set_challenge_params(dir: &Path) {
    let set = |path: &Path, genesis_key: Option<&str>| {
        let mut doc: toml::Table = std::fs::read_to_string(path).unwrap().parse().unwrap();
        let genesis = match genesis_key {
            Some(k) => doc.get_mut(k).unwrap().as_table_mut().unwrap(),
            None => &mut doc,
        };
        let params = genesis.get_mut("params").unwrap().as_table_mut().unwrap();
        for (k, v) in CHALLENGE_PARAMS {
            params.insert(k.into(), toml::Value::Integer(v));
        }
        std::fs::write(path, toml::to_string(&doc).unwrap()).unwrap();
    };
    set(&dir.join("genesis.toml"), None);
    for i in 0..4 {
        set(
            &dir.join(format!("validator-{i}/validator.toml")),
            Some("genesis"),
        );
    }
}

fn signal(child: &Child, sig: &str) {
    let _ = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status();
}

fn penalty_bps() -> u128 {
    CHALLENGE_PARAMS
        .iter()
        .find(|(k, _)| *k == "challenge_miss_penalty_bps")
        .map(|(_, v)| *v as u128)
        .unwrap()
}

#[test]
fn a_stopped_provider_misses_is_docked_and_unrouted_then_comes_back() {
    let mut net = Net::start(0);
    let (a_seed, b_seed) = (6_101, 6_102);
    let a = net.provider(a_seed, 1, HONEST_STAKE);
    net.provider(b_seed, 1, HONEST_STAKE);
    let a_id = Keypair::from_seed(a_seed).account();
    let b_id = Keypair::from_seed(b_seed).account();

    wait_until("A answering a challenge", Duration::from_secs(60), || {
        net.record(&a_id).answered >= 1
    });
    let before = net.record(&a_id);
    assert!(before.online && before.missed == 0, "{before:?}");
    assert!(before.proven_score_bps.is_some_and(|s| s > 0), "{before:?}");
    assert!(net.routed().contains(&a_id));

    // Stopped: the process holds its state but answers nothing.
    signal(&net.providers[a], "STOP");
    let stake_before = net.stake(&a_id);
    let mut missed = None;
    wait_until("A missing a challenge", Duration::from_secs(60), || {
        let r = net.record(&a_id);
        let stake = net.stake(&a_id);
        let done = r.missed >= 1 && !r.online;
        if done {
            missed = Some((r, stake));
        }
        done
    });
    let (record, stake) = missed.unwrap();
    assert_eq!(record.missed, 1, "{record:?}");
    let docked = stake_before.units() * penalty_bps() / 10_000;
    assert_eq!(
        stake.units(),
        stake_before.units() - docked,
        "docked exactly the penalty"
    );
    assert!(record.uptime_bps.is_some_and(|u| u < 10_000), "{record:?}");
    let routed = net.routed();
    assert!(!routed.contains(&a_id), "an offline provider is not routed");
    assert!(routed.contains(&b_id), "the other provider still is");

    // Continued: the agent finds itself offline, asks for a challenge and answers it.
    signal(&net.providers[a], "CONT");
    wait_until("A back online", Duration::from_secs(60), || {
        let r = net.record(&a_id);
        r.online && r.answered > record.answered
    });
    assert!(net.routed().contains(&a_id), "routed again");
    assert!(
        net.log(a_seed).contains("asked for a challenge"),
        "the agent asked for a challenge to come back"
    );
    let b = net.record(&b_id);
    assert_eq!((b.missed, b.below_claim), (0, 0), "{b:?}");
}

#[test]
fn a_provider_claiming_64_cores_is_docked_and_dropped_while_honest_ones_are_not() {
    let mut net = Net::start(1);
    let params: orrery_ledger::Params = net.client().params().unwrap();
    let claim = orrery_types::resources::Hardware {
        gpu: None,
        cpu_cores: 64,
        ram_gib: 4,
    };
    let need = params.min_stake(&claim).unwrap();
    let spoof_stake = (need.units() / Amount::orr(1).units() + 50).to_string();
    let honest = [6_201, 6_202];
    for seed in honest {
        net.provider(seed, 1, HONEST_STAKE);
    }
    let spoofer_seed = 6_203;
    net.provider(spoofer_seed, 64, &spoof_stake);
    let spoofer = Keypair::from_seed(spoofer_seed).account();
    let honest_ids: Vec<AccountId> = honest
        .iter()
        .map(|s| Keypair::from_seed(*s).account())
        .collect();
    let honest_stakes: Vec<Amount> = honest_ids.iter().map(|id| net.stake(id)).collect();
    // The agent bonds back up to its configured stake after a dock, so the stake alone may not
    // show it: the node's index counts the stake taken.
    let taken = |net: &Net, who: &AccountId| {
        let view = net.client().provider(who).unwrap().expect("registered");
        view.activity.expect("activity").slashed
    };
    assert!(taken(&net, &spoofer).is_zero());

    wait_until(
        "the spoofer docked and the honest providers proven twice",
        Duration::from_secs(100),
        || {
            let s = net.record(&spoofer);
            // Too slow for its claim either way: a late answer is a miss, an answer in time
            // below 25% of the claim is "below claim"; both dock and take it offline.
            s.missed + s.below_claim >= 1
                && !s.online
                && honest_ids.iter().all(|id| net.record(id).answered >= 2)
        },
    );
    assert!(!taken(&net, &spoofer).is_zero(), "the spoofer is docked");
    let routed = net.routed();
    assert!(
        !routed.contains(&spoofer),
        "the spoofer is dropped from routing"
    );
    for (id, stake) in honest_ids.iter().zip(&honest_stakes) {
        let r = net.record(id);
        assert_eq!((r.missed, r.wrong, r.below_claim), (0, 0, 0), "{id}: {r:?}");
        assert!(r.online, "{id}: {r:?}");
        assert_eq!(net.stake(id), *stake, "{id} is never docked");
        assert!(taken(&net, id).is_zero(), "{id} is never docked");
        assert!(routed.contains(id), "{id} is routed");
    }
}
