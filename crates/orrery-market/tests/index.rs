//! The index against a linear scan on random markets and random queries, before and after
//! random upserts and removals.

use orrery_ledger::Params;
use orrery_ledger::entries::Reputation;
use orrery_market::{Offer, OfferIndex, RegionPreference, Requirements, RouteError, RouterWeights};
use orrery_types::resources::{GpuModel, GpuSpec, Hardware, PriceList, ResourceRequest, Usage};
use orrery_types::{AccountId, Amount, Verification};
use proptest::prelude::*;

const MODELS: [&str; 4] = ["NVIDIA H100", "NVIDIA A100", "RTX 4090", "RTX 3090"];
const REGIONS: [&str; 3] = ["eu-west", "us-east", "ap-south"];

fn id(n: u16) -> AccountId {
    let mut a = [0u8; 20];
    a[..2].copy_from_slice(&n.to_be_bytes());
    AccountId(a)
}

prop_compose! {
    fn arb_offer(max_id: u16)(
        n in 0..max_id,
        model in prop::option::weighted(0.9, 0..MODELS.len()),
        count in prop::sample::select(vec![1u16, 2, 4, 8]),
        vram in prop::sample::select(vec![16u32, 24, 40, 80]),
        region in 0..REGIONS.len(),
        // Few distinct prices so that ties (broken by id) are common.
        gpu_hour in 1u64..8,
        cpu_hour in 0u64..3,
        mega in 0u64..3,
        understaked in prop::bool::weighted(0.1),
        rep in (0u64..30, 0u64..30, 0u64..3, 0u64..2, 0u64..3),
        bench in prop::option::of(0u32..3000),
        latency in prop::option::of(1u32..300),
        seen in prop::option::of(0u64..100),
        // Online, uptime and proven score: few offline, so most queries still match.
        proof in (prop::bool::weighted(0.9), prop::option::of(0u32..=10_000), prop::option::of(0u32..=10_000)),
    ) -> Offer {
        let hardware = Hardware {
            gpu: model.map(|m| GpuSpec { model: GpuModel::new(MODELS[m]).unwrap(), vram_mib: vram * 1024, count }),
            cpu_cores: 8 * count,
            ram_gib: 32 * u32::from(count),
        };
        let need = Params::default().min_stake(&hardware).unwrap();
        Offer {
            provider: id(n),
            hardware,
            region: REGIONS[region].to_owned(),
            prices: PriceList {
                gpu_hour: Amount::orr(gpu_hour) ,
                cpu_core_hour: Amount(u128::from(cpu_hour) * 10_000_000),
                ram_gib_hour: Amount(u128::from(cpu_hour) * 1_000_000),
                mega_unit: Amount(u128::from(mega) * 1_000),
            },
            stake: if understaked { Amount(need.units() / 2) } else { need },
            reputation: Reputation { settled: rep.0, checked: rep.1, failed: rep.2, slashed: rep.3, timed_out: rep.4 },
            benchmark: bench,
            last_seen_ms: seen,
            latency_ms: latency,
            online: proof.0,
            uptime_bps: proof.1,
            proven_score_bps: proof.2,
        }
    }
}

prop_compose! {
    fn arb_req()(
        model in prop::option::weighted(0.5, prop::sample::select(vec!["h100", "a100", "rtx", "4090", "nvidia"])),
        vram in prop::sample::select(vec![0u32, 24, 40, 80]),
        gpus in 0u16..9,
        cores in 0u16..40,
        ram in 0u32..300,
        max_mega in prop::option::weighted(0.2, 0u64..3),
        region in 0usize..7,
        max_gpu_hour in prop::option::weighted(0.3, 1u64..8),
        max_cost in prop::option::weighted(0.2, 1u64..40),
        min_rep in prop::option::weighted(0.2, -20i64..40),
        seen in prop::option::weighted(0.2, 0u64..100),
        redundant in prop::option::weighted(0.2, 2u8..5),
        limit in 1usize..12,
        seconds in 1u64..20_000,
        units in 0u64..50_000_000,
        w in (0u8..4, 0u8..4, 0u8..4, 0u8..4),
    ) -> (Requirements, RouterWeights) {
        let region = match region {
            0..=2 => RegionPreference::Prefer(REGIONS[region].to_owned()),
            3..=5 => RegionPreference::Require(REGIONS[region - 3].to_owned()),
            _ => RegionPreference::Any,
        };
        let req = Requirements {
            gpu_model: model.map(str::to_owned),
            min_vram_mib: vram * 1024,
            resources: ResourceRequest { gpus, cpu_cores: cores, ram_gib: ram },
            usage: Usage { seconds, units },
            region,
            max_gpu_hour: max_gpu_hour.map(Amount::orr),
            max_mega_unit: max_mega.map(|m| Amount(u128::from(m) * 1_000)),
            max_cost: max_cost.map(Amount::orr),
            verification: redundant.map_or(Verification::None, |k| Verification::Redundant { k }),
            min_reputation: min_rep,
            seen_since_ms: seen,
            limit,
        };
        let f = |x: u8| f64::from(x) * 0.25;
        // Half the queries use the default static weights (the index's fast lists), half not.
        let weights = if w.0 % 2 == 0 {
            RouterWeights { region: f(w.1), ..RouterWeights::default() }
        } else {
            RouterWeights { reputation: f(w.0), region: f(w.1), latency: f(w.2), benchmark: f(w.3) }
        };
        (req, weights)
    }
}

fn same_answer(
    idx: &OfferIndex,
    req: &Requirements,
    w: &RouterWeights,
) -> Result<(), TestCaseError> {
    let p = Params::default();
    let fast = idx.rank(req, w, &p);
    let slow = idx.rank_linear(req, w, &p);
    match (fast, slow) {
        (Ok(f), Ok(s)) => {
            prop_assert_eq!(&f.ranked, &s.ranked);
            // Each offer is read at most once per list .
            prop_assert!(f.evaluated <= idx.len() * 11);
            // Every result qualifies and the order is by effective cost.
            for pair in f.ranked.windows(2) {
                prop_assert!(pair[0].effective_cost <= pair[1].effective_cost);
            }
        }
        (Err(f), Err(s)) => prop_assert_eq!(f, s),
        (f, s) => prop_assert!(
            false,
            "index {:?} vs linear {:?}",
            f.map(|r| r.ranked.len()),
            s.map(|r| r.ranked.len())
        ),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn index_equals_linear_scan(
        offers in prop::collection::vec(arb_offer(400), 0..300),
        queries in prop::collection::vec(arb_req(), 1..8),
    ) {
        let idx = OfferIndex::from_offers(offers).unwrap();
        idx.check_invariants().map_err(TestCaseError::fail)?;
        for (req, w) in &queries {
            same_answer(&idx, req, w)?;
        }
    }

    #[test]
    fn upserts_and_removals_keep_the_index_consistent(
        initial in prop::collection::vec(arb_offer(60), 0..60),
        ops in prop::collection::vec((prop::bool::weighted(0.3), arb_offer(60)), 1..80),
        queries in prop::collection::vec(arb_req(), 1..4),
    ) {
        let mut idx = OfferIndex::from_offers(initial.clone()).unwrap();
        // The model: the last offer per provider.
        let mut model: std::collections::BTreeMap<AccountId, Offer> = initial.into_iter().map(|o| (o.provider, o)).collect();
        for (remove, offer) in ops {
            if remove {
                prop_assert_eq!(idx.remove(&offer.provider), model.remove(&offer.provider));
            } else {
                model.insert(offer.provider, offer.clone());
                idx.upsert(offer).unwrap();
            }
            idx.check_invariants().map_err(TestCaseError::fail)?;
        }
        prop_assert_eq!(idx.len(), model.len());
        let rebuilt = OfferIndex::from_offers(model.values().cloned()).unwrap();
        let p = Params::default();
        for (req, w) in &queries {
            same_answer(&idx, req, w)?;
            let a = idx.rank(req, w, &p);
            let b = rebuilt.rank(req, w, &p);
            match (a, b) {
                (Ok(a), Ok(b)) => prop_assert_eq!(a.ranked, b.ranked),
                (Err(a), Err(b)) => prop_assert_eq!(a, b),
                _ => prop_assert!(false, "updated and rebuilt index disagree"),
            }
        }
    }
}

/// Many offers in two buckets (one model, one region, 1 or 2 GPUs), so that trees get deep,
/// tails fill up and buckets are rebuilt while offers come and go.
fn dense(offers: Vec<Offer>) -> Vec<Offer> {
    offers
        .into_iter()
        .map(|mut o| {
            o.region = REGIONS[0].to_owned();
            let count = if o.hardware.gpu_count() > 1 { 2 } else { 1 };
            o.hardware.gpu = Some(GpuSpec {
                model: GpuModel::new(MODELS[0]).unwrap(),
                vram_mib: 80 * 1024,
                count,
            });
            o.hardware.cpu_cores = 8 * count;
            o.hardware.ram_gib = 32 * u32::from(count);
            o.stake = if o.stake.is_zero() {
                o.stake
            } else {
                Params::default().min_stake(&o.hardware).unwrap()
            };
            o
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn dense_buckets_stay_equal_to_a_linear_scan_through_rebuilds(
        initial in prop::collection::vec(arb_offer(2_000), 0..600),
        ops in prop::collection::vec((prop::bool::weighted(0.4), arb_offer(2_000)), 200..700),
        queries in prop::collection::vec(arb_req(), 3..6),
    ) {
        let initial = dense(initial);
        let mut idx = OfferIndex::from_offers(initial.clone()).unwrap();
        idx.check_invariants().map_err(TestCaseError::fail)?;
        let mut model: std::collections::BTreeMap<AccountId, Offer> =
            initial.into_iter().map(|o| (o.provider, o)).collect();
        let ops: Vec<(bool, Offer)> = ops
            .into_iter()
            .map(|(remove, o)| (remove, dense(vec![o]).remove(0)))
            .collect();
        for (i, (remove, offer)) in ops.into_iter().enumerate() {
            // Remove existing offers more often than missing ones.
            let target = if remove {
                model.keys().nth(usize::from(offer.provider.0[1]) % model.len().max(1)).copied()
            } else {
                None
            };
            match target {
                Some(id) => prop_assert_eq!(idx.remove(&id), model.remove(&id)),
                None => {
                    model.insert(offer.provider, offer.clone());
                    idx.upsert(offer).unwrap();
                }
            }
            if i % 50 == 0 {
                idx.check_invariants().map_err(TestCaseError::fail)?;
                for (req, w) in &queries {
                    same_answer(&idx, req, w)?;
                }
            }
        }
        idx.check_invariants().map_err(TestCaseError::fail)?;
        prop_assert_eq!(idx.len(), model.len());
        for (req, w) in &queries {
            same_answer(&idx, req, w)?;
        }
    }
}

#[test]
fn observe_updates_measurements_and_ranking() {
    let mk = |n| Offer {
        provider: id(n),
        hardware: Hardware {
            gpu: None,
            cpu_cores: 8,
            ram_gib: 16,
        },
        region: "eu-west".into(),
        prices: PriceList {
            cpu_core_hour: Amount::orr(1),
            ..PriceList::default()
        },
        stake: Amount::orr(1_000),
        reputation: Reputation::default(),
        benchmark: None,
        last_seen_ms: None,
        latency_ms: None,
        online: true,
        uptime_bps: None,
        proven_score_bps: None,
    };
    let mut idx = OfferIndex::from_offers([mk(1), mk(2)]).unwrap();
    let req = Requirements {
        resources: ResourceRequest {
            gpus: 0,
            cpu_cores: 4,
            ram_gib: 8,
        },
        ..Requirements::default()
    };
    let w = RouterWeights::default();
    let p = Params::default();
    assert_eq!(
        idx.rank(&req, &w, &p).unwrap().ranked[0].offer.provider,
        id(1)
    );
    assert!(idx.observe(&id(2), Some(3_000), Some(42), Some(5)));
    assert!(!idx.observe(&id(9), None, None, None));
    idx.check_invariants().unwrap();
    let top = &idx.rank(&req, &w, &p).unwrap().ranked[0];
    assert_eq!(top.offer.provider, id(2));
    assert_eq!(
        (
            top.offer.benchmark,
            top.offer.last_seen_ms,
            top.offer.latency_ms
        ),
        (Some(3_000), Some(42), Some(5))
    );
    let seen_req = Requirements {
        seen_since_ms: Some(40),
        ..req.clone()
    };
    assert_eq!(idx.rank(&seen_req, &w, &p).unwrap().ranked.len(), 1);
    assert_eq!(idx.remove(&id(2)).map(|o| o.provider), Some(id(2)));
    assert!(matches!(
        idx.rank(&seen_req, &w, &p),
        Err(RouteError::Unsatisfiable { .. })
    ));
}
