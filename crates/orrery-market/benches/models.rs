//! Model routing over a million model offers: a hit, a miss, and a linear scan of every offer
//! (what a router without the name map would do) as the baseline, in the same run.
//!
//! `cargo bench -p orrery-market --bench models` builds 1,000,000 seeded synthetic offers over
//! 10,000 model names (a skewed mix: a few popular names with thousands of providers, a long
//! tail with a handful), with random prices, contexts, reputations, latencies and loads, then
//! times `ORRERY_BENCH_QUERIES` (default 3,000) queries of each kind and prints the median and
//! p99.

use orrery_ledger::entries::Reputation;
use orrery_market::{ModelCandidate, ModelQuery, ModelRouter};
use orrery_types::Amount;
use orrery_types::crypto::AccountId;
use orrery_types::hash::Hash;
use orrery_types::inference::{ModelKind, ModelName, ModelOffer};
use std::hint::black_box;
use std::time::{Duration, Instant};

const OFFERS: usize = 1_000_000;
const NAMES: u64 = 10_000;

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
}

/// A skewed name: squaring a uniform draw puts most offers on the first names.
fn name_index(rng: &mut Rng) -> u64 {
    let u = rng.below(1 << 20) as f64 / (1u64 << 20) as f64;
    ((u * u * u) * NAMES as f64) as u64
}

fn build(rng: &mut Rng) -> ModelRouter {
    let mut router = ModelRouter::new();
    for i in 0..OFFERS {
        let name = format!("model-{}", name_index(rng));
        let mut id = [0u8; 20];
        id[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let provider = AccountId(id);
        router.insert(ModelCandidate {
            provider,
            endpoint: format!("http://10.0.{}.{}:7430", i / 250 % 250, i % 250),
            reputation: Reputation {
                settled: rng.below(100),
                checked: rng.below(50),
                failed: rng.below(3),
                ..Reputation::default()
            },
            offer: ModelOffer {
                name: ModelName::new(&name).unwrap(),
                weights: Hash::of(name.as_bytes()),
                kind: ModelKind::Generation,
                context: [512, 1024, 2048, 8192][rng.below(4) as usize],
                price_in: Amount(u128::from(rng.below(2_000_000))),
                price_out: Amount(u128::from(rng.below(6_000_000))),
                sample_bps: 500,
            },
        });
        if i % 3 == 0 {
            router.observe_latency(&provider, rng.below(400) as f64);
        }
        if i % 5 == 0 {
            router.started(&provider);
        }
    }
    router
}

fn q(name: &str) -> ModelQuery<'_> {
    ModelQuery {
        name,
        tokens_in: 500,
        tokens_out: 256,
        min_context: 756,
        limit: 3,
    }
}

fn stats(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[(v.len() * 99 / 100).min(v.len() - 1)])
}

fn time(queries: usize, mut f: impl FnMut(usize)) -> (Duration, Duration) {
    let mut v = Vec::with_capacity(queries);
    for i in 0..queries {
        let t = Instant::now();
        f(i);
        v.push(t.elapsed());
    }
    stats(v)
}

/// The baseline: every offer examined, as a router keyed by nothing must.
fn scan(router: &ModelRouter, names: &[String], name: &str) -> usize {
    names
        .iter()
        .flat_map(|n| router.candidates(n))
        .filter(|c| c.offer.name.as_str() == name)
        .count()
}

fn main() {
    let queries: usize = std::env::var("ORRERY_BENCH_QUERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000);
    let mut rng = Rng(0x5eed_f1e7_0ff3_0001);
    let t = Instant::now();
    let router = build(&mut rng);
    let names: Vec<String> = router.names().map(str::to_owned).collect();
    println!(
        "{} offers over {} names built in {:.1?}; largest name has {} offers",
        router.len(),
        names.len(),
        t.elapsed(),
        names
            .iter()
            .map(|n| router.candidates(n).len())
            .max()
            .unwrap_or(0)
    );
    let picks: Vec<String> = (0..queries)
        .map(|_| format!("model-{}", name_index(&mut rng)))
        .collect();
    let (hit50, hit99) = time(queries, |i| {
        black_box(router.rank(&q(&picks[i])).ok());
    });
    let misses: Vec<String> = (0..queries).map(|i| format!("no-such-model-{i}")).collect();
    let (miss50, miss99) = time(queries, |i| {
        black_box(router.rank(&q(&misses[i])).err());
    });
    let scans = (queries / 30).max(10);
    let (scan50, scan99) = time(scans, |i| {
        black_box(scan(&router, &names, &misses[i]));
    });
    println!(
        "hit  (name offered, skewed popularity): median {hit50:>10.2?}  p99 {hit99:>10.2?}  ({queries} queries)"
    );
    println!(
        "miss (name nobody offers):               median {miss50:>10.2?}  p99 {miss99:>10.2?}  ({queries} queries)"
    );
    println!(
        "baseline: linear scan of every offer:    median {scan50:>10.2?}  p99 {scan99:>10.2?}  ({scans} queries)"
    );
    println!(
        "miss vs scan: {:.0}x faster at the median",
        scan50.as_secs_f64() / miss50.as_secs_f64().max(1e-9)
    );
}
