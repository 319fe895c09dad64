//! Filters, ranking, explanations, "which requirement" errors and clusters, on small hand-built
//! markets where the right answer is obvious.

use orrery_ledger::Params;
use orrery_ledger::entries::Reputation;
use orrery_market::{
    Offer, OfferIndex, RegionLatency, RegionPreference, Requirement, Requirements, RouteError,
    RouterWeights, format_table, select_cluster,
};
use orrery_types::resources::{GpuModel, GpuSpec, Hardware, PriceList, ResourceRequest};
use orrery_types::{AccountId, Amount, Verification};

fn id(n: u32) -> AccountId {
    let mut a = [0u8; 20];
    a[..4].copy_from_slice(&n.to_be_bytes());
    AccountId(a)
}

/// A machine with `count` GPUs of `model`, staked enough, priced at `milli` thousandths of an
/// ORR per GPU-hour.
fn offer(n: u32, model: &str, vram_gib: u32, count: u16, region: &str, milli: u64) -> Offer {
    let hardware = Hardware {
        gpu: Some(GpuSpec {
            model: GpuModel::new(model).unwrap(),
            vram_mib: vram_gib * 1024,
            count,
        }),
        cpu_cores: 16 * count.max(1),
        ram_gib: 64 * u32::from(count.max(1)),
    };
    let stake = Params::default().min_stake(&hardware).unwrap();
    Offer {
        provider: id(n),
        hardware,
        region: region.to_owned(),
        prices: PriceList {
            gpu_hour: Amount(u128::from(milli) * 1_000_000),
            ..PriceList::default()
        },
        stake,
        reputation: Reputation::default(),
        benchmark: None,
        last_seen_ms: None,
        latency_ms: None,
        online: true,
        uptime_bps: None,
        proven_score_bps: None,
    }
}

fn index(offers: Vec<Offer>) -> OfferIndex {
    let idx = OfferIndex::from_offers(offers).unwrap();
    idx.check_invariants().unwrap();
    idx
}

fn gpu_job(gpus: u16) -> Requirements {
    Requirements {
        resources: ResourceRequest {
            gpus,
            cpu_cores: 1,
            ram_gib: 1,
        },
        ..Requirements::default()
    }
}

fn rank_ids(idx: &OfferIndex, req: &Requirements) -> Vec<AccountId> {
    let w = RouterWeights::default();
    let p = Params::default();
    let fast = idx.rank(req, &w, &p).unwrap();
    let slow = idx.rank_linear(req, &w, &p).unwrap();
    assert_eq!(fast.ranked, slow.ranked, "index and linear scan disagree");
    fast.ranked.iter().map(|r| r.offer.provider).collect()
}

fn market() -> Vec<Offer> {
    vec![
        offer(1, "NVIDIA H100 80GB HBM3", 80, 8, "eu-west", 2_400),
        offer(2, "NVIDIA H100 80GB HBM3", 80, 1, "us-east", 2_000),
        offer(3, "NVIDIA A100-SXM4-40GB", 40, 4, "eu-west", 1_200),
        offer(4, "NVIDIA GeForce RTX 4090", 24, 1, "eu-west", 400),
        offer(5, "NVIDIA GeForce RTX 4090", 24, 2, "ap-south", 350),
    ]
}

#[test]
fn filters_are_respected() {
    let idx = index(market());
    let mut req = gpu_job(1);
    req.gpu_model = Some("h100".into());
    assert_eq!(rank_ids(&idx, &req), vec![id(2), id(1)]);

    let mut req = gpu_job(2);
    req.min_vram_mib = 24 * 1024;
    assert_eq!(rank_ids(&idx, &req), vec![id(5), id(3), id(1)]);

    let mut req = gpu_job(1);
    req.region = RegionPreference::Require("EU-west".into());
    assert_eq!(rank_ids(&idx, &req), vec![id(4), id(3), id(1)]);

    let mut req = gpu_job(1);
    req.max_gpu_hour = Some(Amount::orr(1));
    assert_eq!(rank_ids(&idx, &req), vec![id(5), id(4)]);

    let mut req = gpu_job(1);
    req.max_cost = Some(Amount(1_300_000_000)); // one GPU for an hour
    assert_eq!(rank_ids(&idx, &req), vec![id(5), id(4), id(3)]);

    let mut req = gpu_job(1);
    req.resources.cpu_cores = 64;
    assert_eq!(rank_ids(&idx, &req), vec![id(3), id(1)]);
}

#[test]
fn stake_below_the_ledgers_minimum_is_excluded() {
    let mut offers = market();
    offers[3].stake = Amount::orr(1); // the cheapest 4090
    let idx = index(offers);
    let ids = rank_ids(&idx, &gpu_job(1));
    assert!(!ids.contains(&id(4)));
    assert_eq!(ids[0], id(5));
}

#[test]
fn liveness_and_reputation_filters() {
    let mut offers = market();
    for (i, o) in offers.iter_mut().enumerate() {
        o.last_seen_ms = Some(1_000 * i as u64);
        o.reputation.checked = 10 * i as u64;
    }
    let idx = index(offers);
    let mut req = gpu_job(1);
    req.seen_since_ms = Some(3_000);
    assert_eq!(rank_ids(&idx, &req), vec![id(5), id(4)]);
    let mut req = gpu_job(1);
    req.min_reputation = Some(25);
    assert_eq!(rank_ids(&idx, &req), vec![id(5), id(4)]);
}

#[test]
fn cheaper_wins_when_all_else_is_equal() {
    let idx = index(vec![
        offer(1, "RTX 4090", 24, 1, "eu-west", 500),
        offer(2, "RTX 4090", 24, 1, "eu-west", 450),
        offer(3, "RTX 4090", 24, 1, "eu-west", 600),
    ]);
    assert_eq!(rank_ids(&idx, &gpu_job(1)), vec![id(2), id(1), id(3)]);
}

#[test]
fn reputation_beats_a_small_price_difference_but_not_a_large_one() {
    let mut good = offer(1, "RTX 4090", 24, 1, "eu-west", 500);
    good.reputation.checked = 200;
    let mut bad = offer(2, "RTX 4090", 24, 1, "eu-west", 450);
    bad.reputation.failed = 10;
    bad.reputation.settled = 20;
    let idx = index(vec![good.clone(), bad.clone()]);
    assert_eq!(rank_ids(&idx, &gpu_job(1)), vec![id(1), id(2)]);
    // Half price outweighs any reputation at the default weight (0.5).
    bad.prices.gpu_hour = Amount(200_000_000);
    let idx = index(vec![good, bad]);
    assert_eq!(rank_ids(&idx, &gpu_job(1)), vec![id(2), id(1)]);
    // With reputation weighted at zero, only the price counts.
}

#[test]
fn new_provider_sits_between_good_and_bad_records() {
    let mut good = offer(1, "RTX 4090", 24, 1, "eu-west", 500);
    good.reputation.checked = 50;
    let new = offer(2, "RTX 4090", 24, 1, "eu-west", 500);
    let mut bad = offer(3, "RTX 4090", 24, 1, "eu-west", 500);
    bad.reputation.settled = 20;
    bad.reputation.timed_out = 10;
    let idx = index(vec![bad, new, good]);
    assert_eq!(rank_ids(&idx, &gpu_job(1)), vec![id(1), id(2), id(3)]);
}

#[test]
fn preferred_region_and_low_latency_and_benchmark_win_ties() {
    let a = offer(1, "RTX 4090", 24, 1, "us-east", 500);
    let b = offer(2, "RTX 4090", 24, 1, "eu-west", 500);
    let idx = index(vec![a.clone(), b.clone()]);
    let mut req = gpu_job(1);
    req.region = RegionPreference::Prefer("eu-west".into());
    assert_eq!(rank_ids(&idx, &req), vec![id(2), id(1)]);
    req.region = RegionPreference::Prefer("us-east".into());
    assert_eq!(rank_ids(&idx, &req), vec![id(1), id(2)]);

    let (mut a2, mut b2) = (a.clone(), b.clone());
    a2.latency_ms = Some(8);
    b2.latency_ms = Some(180);
    let idx = index(vec![a2, b2]);
    assert_eq!(rank_ids(&idx, &gpu_job(1)), vec![id(1), id(2)]);

    // The proven score ranks; the self-reported benchmark does not (nobody checks it).
    let (mut a3, mut b3) = (a.clone(), b.clone());
    a3.benchmark = Some(5_000);
    a3.proven_score_bps = Some(3_000);
    b3.proven_score_bps = Some(9_500);
    let idx = index(vec![a3, b3]);
    assert_eq!(rank_ids(&idx, &gpu_job(1)), vec![id(2), id(1)]);

    // Uptime from challenges ranks like reputation.
    let (mut a4, mut b4) = (a, b);
    a4.uptime_bps = Some(6_000);
    b4.uptime_bps = Some(10_000);
    let idx = index(vec![a4, b4]);
    assert_eq!(rank_ids(&idx, &gpu_job(1)), vec![id(2), id(1)]);
}

#[test]
fn proven_beats_unproven_beats_nothing() {
    // Equal prices: proven at its claim < proven at the chain's 25% floor < never measured.
    let mut full = offer(1, "RTX 4090", 24, 1, "eu-west", 500);
    full.proven_score_bps = Some(10_000);
    let mut floor = offer(2, "RTX 4090", 24, 1, "eu-west", 500);
    floor.proven_score_bps = Some(2_500);
    let unproven = offer(3, "RTX 4090", 24, 1, "eu-west", 500);
    let idx = index(vec![unproven, floor, full]);
    assert_eq!(rank_ids(&idx, &gpu_job(1)), vec![id(1), id(2), id(3)]);
    let r = idx
        .rank(&gpu_job(1), &RouterWeights::default(), &Params::default())
        .unwrap();
    assert_eq!(r.ranked[0].breakdown.benchmark_penalty, 0.0);
    assert!(
        r.ranked[2]
            .explanation
            .contains("throughput not proven yet")
    );
    assert!(
        r.ranked[1]
            .explanation
            .contains("proven 25.0% of its claim")
    );
}

#[test]
fn offline_offers_never_route_and_the_error_says_why() {
    // The cheapest, best-proven offer is offline: it is skipped, whatever the weights.
    let mut down = offer(1, "RTX 4090", 24, 1, "eu-west", 100);
    down.online = false;
    down.proven_score_bps = Some(10_000);
    down.uptime_bps = Some(9_000);
    let up = offer(2, "RTX 4090", 24, 1, "eu-west", 900);
    let idx = index(vec![down.clone(), up]);
    assert_eq!(rank_ids(&idx, &gpu_job(1)), vec![id(2)]);

    let idx = index(vec![down]);
    match error(&idx, &gpu_job(1)) {
        RouteError::Unsatisfiable { unmet } => {
            assert_eq!(unmet[0].requirement, Requirement::Online);
            assert!(
                unmet[0].message.contains("1 offline"),
                "{}",
                unmet[0].message
            );
            assert!(
                unmet[0].message.contains("challenge"),
                "{}",
                unmet[0].message
            );
        }
        e => panic!("expected the offline requirement, got {e:?}"),
    }
}

#[test]
fn weights_change_the_order() {
    let mut cheap_far = offer(1, "RTX 4090", 24, 1, "us-east", 450);
    cheap_far.latency_ms = Some(300);
    let mut near = offer(2, "RTX 4090", 24, 1, "eu-west", 500);
    near.latency_ms = Some(5);
    let idx = index(vec![cheap_far, near]);
    let p = Params::default();
    let req = gpu_job(1);
    let price_only = RouterWeights {
        reputation: 0.0,
        region: 0.0,
        latency: 0.0,
        benchmark: 0.0,
    };
    let first = |w: &RouterWeights| idx.rank(&req, w, &p).unwrap().ranked[0].offer.provider;
    assert_eq!(first(&price_only), id(1));
    assert_eq!(first(&RouterWeights::default()), id(2));
    let bad = RouterWeights {
        latency: -1.0,
        ..RouterWeights::default()
    };
    assert!(matches!(
        idx.rank(&req, &bad, &p),
        Err(RouteError::InvalidWeight {
            name: "latency",
            ..
        })
    ));
}

#[test]
fn explanation_names_the_reasons() {
    let mut a = offer(1, "RTX 4090", 24, 1, "eu-west", 1_800);
    a.reputation.checked = 42;
    a.latency_ms = Some(12);
    a.uptime_bps = Some(9_950);
    a.proven_score_bps = Some(8_000);
    let b = offer(2, "RTX 4090", 24, 1, "us-east", 2_400);
    let c = offer(3, "RTX 4090", 24, 1, "us-east", 2_400);
    let idx = index(vec![a, b, c]);
    let mut req = gpu_job(1);
    req.region = RegionPreference::Prefer("eu-west".into());
    let r = idx
        .rank(&req, &RouterWeights::default(), &Params::default())
        .unwrap();
    let top = &r.ranked[0];
    assert_eq!(top.offer.provider, id(1));
    let e = &top.explanation;
    for needle in [
        "cheapest",
        "1.8 ORR/GPU-h",
        "vs median 2.4 ORR",
        "42 checks, 0 settled, 0 failures",
        "same region eu-west",
        "latency 12 ms",
        "uptime 99.5% (challenges)",
        "proven 80.0% of its claim",
    ] {
        assert!(e.contains(needle), "{e:?} lacks {needle:?}");
    }
    let second = &r.ranked[1].explanation;
    assert!(second.contains("new provider"), "{second}");
    assert!(second.contains("never challenged"), "{second}");
    assert!(
        second.contains("other region us-east (preferred eu-west)"),
        "{second}"
    );
    assert!(!second.contains("cheapest"), "{second}");
    assert_eq!(top.breakdown.region_match, Some(true));
    assert!(top.breakdown.reputation_penalty < r.ranked[1].breakdown.reputation_penalty);

    let table = format_table(&r.ranked);
    assert_eq!(table.lines().count(), 4);
    assert!(table.lines().nth(1).unwrap().contains("eu-west"));
}

fn error(idx: &OfferIndex, req: &Requirements) -> RouteError {
    let e = idx
        .rank(req, &RouterWeights::default(), &Params::default())
        .unwrap_err();
    let e2 = idx
        .rank_linear(req, &RouterWeights::default(), &Params::default())
        .unwrap_err();
    assert_eq!(e, e2);
    e
}

fn unmet(e: &RouteError) -> Vec<Requirement> {
    match e {
        RouteError::Unsatisfiable { unmet } => unmet.iter().map(|u| u.requirement).collect(),
        other => panic!("expected Unsatisfiable, got {other:?}"),
    }
}

#[test]
fn no_match_names_the_requirement_nobody_meets() {
    let idx = index(vec![
        offer(1, "RTX 4090", 24, 1, "eu-west", 400),
        offer(2, "RTX 3090", 24, 2, "us-east", 300),
    ]);
    let mut req = gpu_job(1);
    req.min_vram_mib = 80 * 1024;
    let e = error(&idx, &req);
    assert_eq!(unmet(&e), vec![Requirement::Vram]);
    assert_eq!(
        e.to_string(),
        "no provider offers ≥ 80 GiB VRAM (largest: 24 GiB)"
    );

    let mut req = gpu_job(1);
    req.gpu_model = Some("B200".into());
    let e = error(&idx, &req);
    assert_eq!(unmet(&e), vec![Requirement::GpuModel]);
    assert!(e.to_string().contains("RTX 3090, RTX 4090"), "{e}");

    let mut req = gpu_job(8);
    req.max_gpu_hour = Some(Amount(100));
    let e = error(&idx, &req);
    assert_eq!(
        unmet(&e),
        vec![Requirement::GpuCount, Requirement::MaxGpuHour]
    );
    assert!(e.to_string().contains("most: 2"), "{e}");
    assert!(e.to_string().contains("cheapest: 0.3 ORR"), "{e}");
}

#[test]
fn no_match_relaxes_one_requirement_at_a_time() {
    let idx = index(vec![
        offer(1, "RTX 4090", 24, 1, "eu-west", 400),
        offer(2, "H100", 80, 1, "us-east", 2_000),
    ]);
    // Each requirement alone is met by someone, not both together.
    let mut req = gpu_job(1);
    req.min_vram_mib = 80 * 1024;
    req.region = RegionPreference::Require("eu-west".into());
    let e = error(&idx, &req);
    assert_eq!(unmet(&e), vec![Requirement::Vram, Requirement::Region]);
    let text = e.to_string();
    assert!(
        text.contains("no provider that meets your other requirements offers ≥ 80 GiB VRAM (largest: 24 GiB); dropping it would match 1"),
        "{text}"
    );
    assert!(
        text.contains("is in region eu-west (regions: us-east)"),
        "{text}"
    );
}

#[test]
fn empty_index_and_redundancy_errors() {
    let idx = OfferIndex::new();
    assert_eq!(error(&idx, &gpu_job(1)), RouteError::NoOffers);

    let idx = index(market());
    let mut req = gpu_job(1);
    req.gpu_model = Some("h100".into());
    req.verification = Verification::Redundant { k: 3 };
    assert_eq!(
        error(&idx, &req),
        RouteError::TooFewForRedundancy { need: 3, found: 2 }
    );
    req.verification = Verification::Redundant { k: 2 };
    req.limit = 1;
    let r = idx
        .rank(&req, &RouterWeights::default(), &Params::default())
        .unwrap();
    assert_eq!(r.ranked.len(), 2, "redundancy k=2 returns at least 2");
    // One verifier reserved per extra provider: escrow is cost × k.
    assert_eq!(r.ranked[0].escrow, r.ranked[0].cost.checked_mul(2));
}

#[test]
fn cluster_prefers_one_region() {
    let mut offers = Vec::new();
    for i in 0..3 {
        offers.push(offer(
            10 + i,
            "RTX 4090",
            24,
            1,
            "eu-west",
            500 + u64::from(i),
        ));
    }
    for i in 0..4 {
        // Cheaper, but split over two regions.
        offers.push(offer(
            20 + i,
            "RTX 4090",
            24,
            1,
            ["us-east", "ap-south"][i as usize % 2],
            300,
        ));
    }
    let idx = index(offers);
    let p = Params::default();
    let w = RouterWeights::default();
    let c = select_cluster(&idx, &gpu_job(1), 3, &w, &p, &RegionLatency::new()).unwrap();
    let mut ids: Vec<AccountId> = c.members.iter().map(|m| m.offer.provider).collect();
    ids.sort();
    assert_eq!(ids, vec![id(10), id(11), id(12)]);
    assert_eq!(c.regions, vec!["eu-west".to_string()]);
    assert_eq!(c.max_latency_ms, 0);
    assert_eq!(c.total_cost, Amount(1_503_000_000));
    assert!(
        c.explanation.contains("all 3 in one region, eu-west"),
        "{}",
        c.explanation
    );

    // Two machines: both us-east-only and ap-south-only clusters exist and are cheaper.
    let c = select_cluster(&idx, &gpu_job(1), 2, &w, &p, &RegionLatency::new()).unwrap();
    assert_eq!(c.regions.len(), 1);
    assert_ne!(c.regions[0], "eu-west");
    // A preferred region wins when it can host the whole cluster.
    let mut req = gpu_job(1);
    req.region = RegionPreference::Prefer("eu-west".into());
    let c = select_cluster(&idx, &req, 2, &w, &p, &RegionLatency::new()).unwrap();
    assert_eq!(c.regions, vec!["eu-west".to_string()]);
}

#[test]
fn cluster_spills_into_the_nearest_region() {
    let idx = index(vec![
        offer(1, "A100", 40, 1, "eu-west", 1_000),
        offer(2, "A100", 40, 1, "eu-west", 1_000),
        offer(3, "A100", 40, 1, "eu-central", 1_500),
        offer(4, "A100", 40, 1, "ap-south", 900),
    ]);
    let mut lat = RegionLatency::new();
    lat.set("eu-west", "eu-central", 15);
    lat.set("eu-west", "ap-south", 140);
    lat.set("eu-central", "ap-south", 130);
    let p = Params::default();
    let w = RouterWeights::default();
    let c = select_cluster(&idx, &gpu_job(1), 3, &w, &p, &lat).unwrap();
    let mut ids: Vec<AccountId> = c.members.iter().map(|m| m.offer.provider).collect();
    ids.sort();
    assert_eq!(ids, vec![id(1), id(2), id(3)]);
    assert_eq!(c.max_latency_ms, 15);
    // Without latency data, the cheapest mix.
    let c = select_cluster(&idx, &gpu_job(1), 3, &w, &p, &RegionLatency::new()).unwrap();
    let ids: Vec<AccountId> = c.members.iter().map(|m| m.offer.provider).collect();
    assert!(ids.contains(&id(4)), "{ids:?}");
    assert!(c.explanation.contains("not measured"), "{}", c.explanation);
    // Members are distinct.
    let mut d = ids.clone();
    d.sort();
    d.dedup();
    assert_eq!(d.len(), 3);

    assert_eq!(
        select_cluster(&idx, &gpu_job(1), 5, &w, &p, &lat).unwrap_err(),
        RouteError::TooFewForCluster { need: 5, found: 4 }
    );
    let mut req = gpu_job(1);
    req.min_vram_mib = 80 * 1024;
    assert!(matches!(
        select_cluster(&idx, &req, 2, &w, &p, &lat),
        Err(RouteError::Unsatisfiable { .. })
    ));
}

#[test]
fn index_is_built_from_ledger_providers() {
    use orrery_ledger::entries::Provider;
    use orrery_types::ProviderOffer;
    use std::collections::BTreeMap;
    let mut providers = BTreeMap::new();
    for (n, region) in [(1, "eu-west"), (2, "us-east")] {
        let o = offer(n, "RTX 4090", 24, 1, region, 400 + u64::from(n));
        providers.insert(
            o.provider,
            Provider {
                offer: ProviderOffer {
                    hardware: o.hardware.clone(),
                    region: orrery_types::resources::Region::new(region).unwrap(),
                    endpoint: orrery_types::resources::Endpoint::new("https://p.example").unwrap(),
                    prices: o.prices,
                },
                stake: o.stake,
                active_leases: 0,
                registered_at: 7,
                reputation: Reputation {
                    checked: u64::from(n),
                    ..Reputation::default()
                },
                earned: Amount::ZERO,
                proof: Default::default(),
                draw_slot: None,
            },
        );
    }
    let idx = OfferIndex::from_providers(providers.iter()).unwrap();
    idx.check_invariants().unwrap();
    assert_eq!(idx.len(), 2);
    let o = idx.get(&id(2)).unwrap();
    assert_eq!(o.region, "us-east");
    assert_eq!(o.reputation.checked, 2);
    assert_eq!(
        (o.benchmark, o.last_seen_ms, o.latency_ms),
        (None, None, None)
    );
    // One more checked result outweighs a 0.25% higher price.
    assert_eq!(rank_ids(&idx, &gpu_job(1)), vec![id(2), id(1)]);
}
