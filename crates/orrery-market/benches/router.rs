//! Routing latency over a million offers: the index against a linear scan, in the same run.
//!
//! `cargo bench -p orrery-market` builds 1,000,000 seeded synthetic offers (a realistic mix of
//! GPU models, counts, regions, prices, reputations, benchmarks and latencies), runs
//! `ORRERY_BENCH_QUERIES` (default 3,000) varied queries through the index, runs every
//! `ORRERY_BENCH_LINEAR_EVERY`-th (default 5th) through the linear scan as well, checks both
//! return the same ranking, and prints median and p99 latencies and their ratio — overall and
//! per query shape (CPU-only jobs; GPU jobs naming no model; GPU jobs naming a model; jobs
//! requiring a region), so a fast common case cannot hide a slow selective one.

use orrery_ledger::Params;
use orrery_ledger::entries::Reputation;
use orrery_market::{Offer, OfferIndex, RegionPreference, Requirements, RouterWeights};
use orrery_types::resources::{GpuModel, GpuSpec, Hardware, PriceList, ResourceRequest, Usage};
use orrery_types::{AccountId, Amount, Verification};
use std::hint::black_box;
use std::time::{Duration, Instant};

const OFFERS: usize = 1_000_000;
const SEED: u64 = 0x0dd5_eed0_0f0f_f3e7;

/// splitmix64: small, seeded, good enough for synthetic data.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

/// (model, VRAM GiB, share of offers in ‰, typical price per GPU-hour in milli-ORR, benchmark).
const MODELS: [(&str, u32, u64, u64, u32); 10] = [
    ("NVIDIA GeForce RTX 3090", 24, 200, 220, 600),
    ("NVIDIA GeForce RTX 4090", 24, 250, 400, 1_000),
    ("NVIDIA RTX A6000", 48, 60, 550, 800),
    ("NVIDIA L40S", 48, 60, 900, 1_300),
    ("NVIDIA A100-SXM4-40GB", 40, 80, 1_100, 1_600),
    ("NVIDIA A100-SXM4-80GB", 80, 80, 1_500, 1_700),
    ("NVIDIA H100 80GB HBM3", 80, 120, 2_200, 3_000),
    ("NVIDIA H200", 141, 30, 3_200, 3_600),
    ("AMD Instinct MI300X", 192, 20, 2_600, 3_200),
    ("", 0, 100, 0, 200), // CPU-only
];
const REGIONS: [&str; 12] = [
    "us-east",
    "us-west",
    "us-central",
    "eu-west",
    "eu-central",
    "eu-north",
    "ap-south",
    "ap-northeast",
    "ap-southeast",
    "sa-east",
    "af-south",
    "me-central",
];

fn id(n: u64) -> AccountId {
    let mut a = [0u8; 20];
    a[..8].copy_from_slice(&n.to_be_bytes());
    AccountId(a)
}

fn offer(rng: &mut Rng, n: u64, params: &Params) -> Offer {
    let mut pick = rng.below(1_000);
    let (model, vram, _, price, bench) = *MODELS
        .iter()
        .find(|m| {
            if pick < m.2 {
                true
            } else {
                pick -= m.2;
                false
            }
        })
        .unwrap_or(&MODELS[0]);
    let count = [1u16, 1, 1, 2, 2, 4, 8][rng.below(7) as usize];
    let gpu = (!model.is_empty()).then(|| GpuSpec {
        model: GpuModel::new(model).unwrap(),
        vram_mib: vram * 1024,
        count,
    });
    let cpu_cores = 8 * count.max(1) * (1 + rng.below(4) as u16);
    let hardware = Hardware {
        gpu,
        cpu_cores,
        ram_gib: u32::from(cpu_cores) * 4,
    };
    // Prices spread ±40% around the model's typical price, in milli-ORR.
    let spread = |base: u64, rng: &mut Rng| {
        let f = 0.6 + 0.8 * rng.unit();
        Amount((base as f64 * f * 1e6) as u128)
    };
    let settled = rng.below(200);
    let rep = Reputation {
        settled,
        checked: rng.below(settled / 3 + 1),
        failed: if rng.chance(0.1) { rng.below(5) } else { 0 },
        slashed: if rng.chance(0.02) { 1 } else { 0 },
        timed_out: if rng.chance(0.15) { rng.below(6) } else { 0 },
    };
    let need = params.min_stake(&hardware).unwrap();
    Offer {
        provider: id(n),
        hardware,
        region: REGIONS[rng.below(REGIONS.len() as u64) as usize].to_owned(),
        prices: PriceList {
            gpu_hour: spread(price, rng),
            cpu_core_hour: spread(8, rng),
            ram_gib_hour: spread(1, rng),
            mega_unit: spread(1, rng),
        },
        stake: if rng.chance(0.03) {
            Amount(need.units() / 2)
        } else {
            need
        },
        reputation: rep,
        benchmark: rng
            .chance(0.8)
            .then(|| (f64::from(bench) * (0.8 + 0.4 * rng.unit())) as u32),
        last_seen_ms: Some(1_000_000 - rng.below(600_000)),
        latency_ms: rng.chance(0.5).then(|| 5 + rng.below(250) as u32),
        // Drawn last, so the fields above keep the stream they had before challenges existed.
        online: !rng.chance(0.02),
        uptime_bps: rng.chance(0.9).then(|| 9_000 + rng.below(1_001) as u32),
        proven_score_bps: rng.chance(0.8).then(|| 5_000 + rng.below(5_001) as u32),
    }
}

fn query(rng: &mut Rng) -> Requirements {
    let m = rng.below(MODELS.len() as u64) as usize;
    let (model, vram, _, price, _) = MODELS[m];
    let gpu_model = match rng.below(10) {
        0..=5 if !model.is_empty() => Some(
            [
                "h100",
                "4090",
                "a100",
                "3090",
                "l40s",
                "h200",
                "mi300x",
                "a6000",
                "a100-sxm4-80gb",
            ][rng.below(9) as usize]
                .to_owned(),
        ),
        _ => None,
    };
    let gpus = if model.is_empty() && gpu_model.is_none() {
        0
    } else {
        [1u16, 1, 1, 2, 4, 8][rng.below(6) as usize]
    };
    let region = match rng.below(4) {
        0 => RegionPreference::Any,
        1 => RegionPreference::Require(REGIONS[rng.below(12) as usize].to_owned()),
        _ => RegionPreference::Prefer(REGIONS[rng.below(12) as usize].to_owned()),
    };
    Requirements {
        gpu_model,
        min_vram_mib: if rng.chance(0.3) { vram * 1024 } else { 0 },
        resources: ResourceRequest {
            gpus,
            cpu_cores: [1u16, 4, 8, 16][rng.below(4) as usize],
            ram_gib: [1u32, 16, 32][rng.below(3) as usize],
        },
        usage: Usage {
            seconds: 600 + rng.below(36_000),
            units: rng.below(1_000_000_000),
        },
        region,
        max_gpu_hour: rng
            .chance(0.2)
            .then(|| Amount(u128::from(price.max(100)) * 1_000_000)),
        max_mega_unit: None,
        max_cost: None,
        verification: match rng.below(4) {
            0 => Verification::Redundant { k: 3 },
            1 => Verification::Sampled,
            _ => Verification::None,
        },
        min_reputation: rng.chance(0.2).then(|| rng.below(50) as i64),
        seen_since_ms: rng.chance(0.3).then_some(700_000),
        limit: [1usize, 5, 10, 20][rng.below(4) as usize],
    }
}

/// Query shapes reported separately.
const SHAPES: [&str; 4] = [
    "cpu-only job",
    "gpu job, any model",
    "gpu job, model named",
    "region required",
];

fn shape(q: &Requirements) -> usize {
    if matches!(q.region, RegionPreference::Require(_)) {
        3
    } else if q.resources.gpus == 0 {
        0
    } else if q.gpu_model.is_none() {
        1
    } else {
        2
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let queries = env("ORRERY_BENCH_QUERIES", 3_000);
    let linear_every = env("ORRERY_BENCH_LINEAR_EVERY", 5).max(1);
    let params = Params::default();
    let weights = RouterWeights::default();
    let mut rng = Rng(SEED);

    let t = Instant::now();
    let offers: Vec<Offer> = (0..OFFERS as u64)
        .map(|n| offer(&mut rng, n, &params))
        .collect();
    let index = OfferIndex::from_offers(offers).expect("a million offers fit");
    println!(
        "built index of {} offers in {:.2?}",
        index.len(),
        t.elapsed()
    );

    let qs: Vec<Requirements> = (0..queries).map(|_| query(&mut rng)).collect();
    // Warm up caches and branch predictors.
    for q in qs.iter().take(200) {
        let _ = black_box(index.rank(q, &weights, &params));
    }
    let mut fast = Vec::with_capacity(queries);
    let mut slow = Vec::new();
    let mut fast_on_linear_set = Vec::new();
    let mut fast_answered = Vec::new();
    let mut slowest: Vec<(Duration, usize, usize)> = Vec::new();
    let mut fast_no_match = Vec::new();
    // Per shape: index times of answered queries, and (index, linear) times on the linear set.
    let mut by_shape: Vec<(Vec<Duration>, Vec<Duration>, Vec<Duration>)> =
        vec![Default::default(); SHAPES.len()];
    let (mut evaluated, mut answered, mut errors) = (0usize, 0usize, 0usize);
    for (i, q) in qs.iter().enumerate() {
        let t = Instant::now();
        let a = black_box(index.rank(q, &weights, &params));
        let dt = t.elapsed();
        fast.push(dt);
        match &a {
            Ok(r) => {
                evaluated += r.evaluated;
                answered += 1;
                fast_answered.push(dt);
                by_shape[shape(q)].0.push(dt);
                slowest.push((dt, i, r.evaluated));
            }
            Err(_) => {
                errors += 1;
                fast_no_match.push(dt);
            }
        }
        if i % linear_every == 0 {
            fast_on_linear_set.push(dt);
            let t = Instant::now();
            let b = black_box(index.rank_linear(q, &weights, &params));
            slow.push(t.elapsed());
            by_shape[shape(q)].1.push(dt);
            by_shape[shape(q)].2.push(t.elapsed());
            match (&a, &b) {
                (Ok(a), Ok(b)) => assert_eq!(a.ranked, b.ranked, "query {i}: rankings differ"),
                (Err(a), Err(b)) => assert_eq!(a, b, "query {i}: errors differ"),
                _ => panic!("query {i}: one answered, the other did not"),
            }
        }
    }
    for v in [
        &mut fast,
        &mut slow,
        &mut fast_on_linear_set,
        &mut fast_answered,
        &mut fast_no_match,
    ] {
        v.sort();
    }
    let (fm, fp) = (percentile(&fast, 0.5), percentile(&fast, 0.99));
    let (sm, sp) = (percentile(&slow, 0.5), percentile(&slow, 0.99));
    let fm_same = percentile(&fast_on_linear_set, 0.5);
    println!(
        "{queries} queries ({answered} answered, {errors} with no match); index evaluated {:.0} offers per answered query on average",
        evaluated as f64 / answered.max(1) as f64
    );
    println!("index:       median {fm:>10.2?}   p99 {fp:>10.2?}   (all {queries} queries)");
    if !fast_answered.is_empty() {
        println!(
            "index, answered queries:  median {:>10.2?}   p99 {:>10.2?}",
            percentile(&fast_answered, 0.5),
            percentile(&fast_answered, 0.99)
        );
    }
    if !fast_no_match.is_empty() {
        println!(
            "index, no-match queries (diagnosis scans every offer): median {:>10.2?}",
            percentile(&fast_no_match, 0.5)
        );
    }
    slowest.sort_by_key(|s| std::cmp::Reverse(s.0));
    for &(dt, i, n) in slowest.iter().take(5) {
        let q = &qs[i];
        println!(
            "  slow: {dt:.2?}, {n} evaluated: model {:?}, gpus {}, cores {}, units {}, region {:?}, max GPU-h {}, min rep {:?}, seen filter {}, {:?}, limit {}",
            q.gpu_model,
            q.resources.gpus,
            q.resources.cpu_cores,
            q.usage.units,
            q.region,
            q.max_gpu_hour.is_some(),
            q.min_reputation,
            q.seen_since_ms.is_some(),
            q.verification,
            q.limit
        );
    }
    println!(
        "linear scan: median {sm:>10.2?}   p99 {sp:>10.2?}   ({} queries, every {linear_every}th; identical results checked)",
        slow.len()
    );
    println!(
        "speed-up on the same queries: median {:.0}x",
        sm.as_secs_f64() / fm_same.as_secs_f64()
    );
    println!("per query shape (answered: index median / p99; linear set: index and scan medians):");
    for (name, (answered, on_set, linear)) in SHAPES.iter().zip(&mut by_shape) {
        for v in [&mut *answered, &mut *on_set, &mut *linear] {
            v.sort();
        }
        if answered.is_empty() || on_set.is_empty() {
            println!("  {name:<22} (no queries)");
            continue;
        }
        let (im, sm) = (percentile(on_set, 0.5), percentile(linear, 0.5));
        println!(
            "  {name:<22} {:>5} answered: median {:>10.2?} p99 {:>10.2?} | {:>4} scanned: index {im:>10.2?} scan {sm:>10.2?} = {:.0}x",
            answered.len(),
            percentile(answered, 0.5),
            percentile(answered, 0.99),
            on_set.len(),
            sm.as_secs_f64() / im.as_secs_f64()
        );
    }
}
