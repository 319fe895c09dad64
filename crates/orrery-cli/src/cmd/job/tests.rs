use super::*;
use orrery_ledger::entries::Reputation;
use orrery_market::{Offer, OfferIndex};
use orrery_types::resources::{Hardware, PriceList};

fn offer(seed: u64, region: &str, cpu_core_hour: u64) -> Offer {
    Offer {
        provider: Keypair::from_seed(seed).account(),
        hardware: Hardware {
            gpu: None,
            cpu_cores: 8,
            ram_gib: 16,
        },
        region: region.into(),
        prices: PriceList {
            gpu_hour: Amount::ZERO,
            cpu_core_hour: Amount::orr(cpu_core_hour),
            ram_gib_hour: Amount::ZERO,
            mega_unit: Amount::orr(1),
        },
        stake: Amount::orr(1_000),
        reputation: Reputation::default(),
        benchmark: None,
        last_seen_ms: None,
        latency_ms: None,
        online: true,
        uptime_bps: None,
        proven_score_bps: None,
    }
}

fn request(workers: usize, inner_steps: u32) -> Request {
    let text = format!(
        r#"
bundle = "job.toml"
max_seconds = 600
max_units = 1000000
[requirements]
cpu_cores = 2
ram_gib = 4
[cluster]
workers = {workers}
rounds = 10
inner_steps = {inner_steps}
"#
    );
    toml::from_str(&text).unwrap()
}

fn needs(req: &Request) -> Requirements {
    Requirements {
        resources: ResourceRequest {
            gpus: 0,
            cpu_cores: req.requirements.cpu_cores.unwrap_or(1),
            ram_gib: req.requirements.ram_gib.unwrap_or(1),
        },
        usage: Usage {
            seconds: req.max_seconds,
            units: req.max_units,
        },
        limit: 5,
        ..Requirements::default()
    }
}

fn index() -> OfferIndex {
    OfferIndex::from_offers([
        offer(1, "eu-west", 3),
        offer(2, "eu-west", 2),
        offer(3, "eu-west", 4),
        offer(4, "us-east", 1),
    ])
    .unwrap()
}

#[test]
fn a_cluster_request_opens_one_lease_in_one_region_within_every_members_prices() {
    let req = request(3, 20);
    let cluster = req.cluster.as_ref().unwrap();
    let plan = plan_cluster(cluster, &req, &needs(&req), &index(), &Default::default()).unwrap();
    // The three in eu-west, though us-east has the cheapest single offer.
    let mut want: Vec<AccountId> = (1..=3).map(|s| Keypair::from_seed(s).account()).collect();
    let mut got = plan.members.clone();
    want.sort();
    got.sort();
    assert_eq!(got, want, "{}", plan.why);
    let TxBody::OpenClusterLease {
        terms,
        inner_steps,
        rounds,
        ..
    } = plan.body
    else {
        panic!("not a cluster lease");
    };
    assert_eq!((inner_steps, rounds), (20, 10));
    // The cheapest member's price, so within every member's offer.
    assert_eq!(terms.prices.cpu_core_hour, Amount::orr(2));
    assert_eq!(terms.resources.cpu_cores, 2);
}

#[test]
fn more_workers_than_fitting_offers_and_h_zero_are_clear_errors() {
    let req = request(5, 20);
    let e = plan_cluster(
        req.cluster.as_ref().unwrap(),
        &req,
        &needs(&req),
        &index(),
        &Default::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("only 4 meet the requirements"), "{e}");
    let req = request(3, 0);
    let e = plan_cluster(
        req.cluster.as_ref().unwrap(),
        &req,
        &needs(&req),
        &index(),
        &Default::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("inner_steps = 0"), "{e}");
}

#[test]
fn a_cluster_lease_status_shows_rounds_losses_misses_and_checks() {
    let c = serde_json::json!({
        "lease": {
            "phase": "running", "round": 2, "rounds": 3, "inner_steps": 20,
            "escrow": "4 ORR", "refunded": "0 ORR",
            "members": [
                {"provider": "orrA", "status": "live", "rounds_paid": 2, "paid": "3.8 ORR", "docked": "0 ORR"},
                {"provider": "orrB", "status": "dropped", "rounds_paid": 1, "paid": "1.9 ORR", "docked": "0.2 ORR"}
            ]
        },
        "rounds": [
            {"round": 0, "mean_loss": 2.5, "missed": [], "checked": ["orrA"], "recompute": false},
            {"round": 1, "mean_loss": 2.25, "missed": ["orrB"], "checked": [], "recompute": true}
        ]
    });
    let lines = cluster_status(7, &c);
    assert_eq!(
        lines[0],
        "cluster lease 7: running — round 2 of 3, H = 20, escrow 4 ORR, refunded 0 ORR"
    );
    assert!(
        lines[2].contains("orrB dropped — 1 rounds paid"),
        "{}",
        lines[2]
    );
    assert_eq!(
        lines[3],
        "  round 0: mean loss 2.5000, missed none, checked orrA"
    );
    assert_eq!(
        lines[4],
        "  round 1: mean loss 2.2500, missed orrB, checked none, recompute"
    );
}
