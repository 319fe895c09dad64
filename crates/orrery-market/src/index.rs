//! The offer index: every live offer, bucketed so that a routing query reads a few hundred
//! entries instead of a million.
//!
//! # Layout
//!
//! Offers live in a slab (`Vec` of slots with a free list) addressed by `u32`; a map finds a
//! provider's slot. Each offer belongs to exactly one *bucket*, keyed by (GPU model lower-cased,
//! region, GPU count). A bucket keeps eleven lists of `(key, slot)`, each sorted ascending:
//!
//! - by listed GPU-hour, CPU-core-hour, GiB-hour and mega-unit price,
//! - by reputation penalty, by benchmark penalty, by latency penalty (see [`crate::offer`]),
//! - by each of the four prices times the offer's static multiplier under the default weights
//!   (`1 + Σ w·p` over reputation, benchmark, latency).
//!
//! and conservative maxima of VRAM, cores and RAM (raised on insert, never lowered, so they may
//! overstate but never understate what the bucket holds).
//!
//! A query with the default reputation, benchmark and latency weights (whatever its region
//! weight) walks the price×multiplier lists, whose order is nearly the final ranking; any other
//! query walks the plain price and penalty lists. Only lists whose quantity in the job is
//! non-zero are walked.
//!
//! # Search (threshold algorithm)
//!
//! A query keeps the buckets whose key and maxima can satisfy it, orders them by a lower bound
//! on the effective cost of anything they hold, and walks each bucket's lists round-robin
//! (Fagin's threshold algorithm), skipping lists that cannot matter to the query (a price whose
//! quantity in the job is zero, a penalty whose weight is zero). Every entry read is evaluated in
//! full. After each round the threshold — the effective cost of a hypothetical offer with the
//! prices and penalties found at the lists' cursors — bounds every offer not yet read from *any*
//! list, because the effective cost is monotone in each price and penalty. The bucket is
//! done when the threshold exceeds the current k-th result (strictly: ties break by id), when a
//! list runs out (every offer has then been read), or when the price list passes `max_gpu_hour`.
//! Buckets whose lower bound exceeds the k-th result are never opened.
//!
//! # Invariants
//!
//! - Every occupied slot is in exactly one bucket, in each of its eleven lists exactly once, at
//!   the position its current keys sort to; [`OfferIndex::check_invariants`] verifies it.
//! - [`OfferIndex::rank`] returns exactly what [`OfferIndex::rank_linear`] (a scan of every
//!   offer) returns: same offers, same order.
//!
//! Updates cost `O(log b + b)` for a bucket of `b` offers (a sorted `Vec` insert); bulk loads go
//! through [`OfferIndex::from_offers`], which sorts once.

use crate::offer::{Offer, StaticPenalties};
use crate::router::{
    Candidate, Query, RegionPreference, Requirements, RouteError, RouterWeights, TopK,
    build_ranked, diagnose, effective, evaluate,
};
use orrery_ledger::Params;
use orrery_ledger::entries::Provider;
use orrery_types::resources::{PriceList, SECONDS_PER_HOUR, UNITS_PER_MEGA_UNIT};
use orrery_types::{AccountId, Amount, Verification};
use std::collections::HashMap;

/// Most offers one index holds. Slots are `u32`; this leaves headroom and bounds memory
/// (about 250 bytes an offer).
pub const MAX_OFFERS: usize = 16_000_000;

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
struct BucketKey {
    model_lower: String,
    region: String,
    gpu_count: u16,
}

#[derive(Clone, Debug)]
struct Entry {
    offer: Offer,
    pen: StaticPenalties,
    bucket: u32,
}

/// A list entry: a key (a price in base units saturated at `u64::MAX` — still a lower bound —
/// or a penalty's `f64` bits, which sort like the non-negative floats they encode) and the slot.
type Keyed = (u64, u32);

/// Lists per bucket.
const LISTS: usize = 11;
/// List positions.
const GPU_HOUR: usize = 0;
const CPU_HOUR: usize = 1;
const MEGA_UNIT: usize = 2;
const REPUTATION: usize = 3;
const BENCHMARK: usize = 4;
const LATENCY: usize = 5;
/// Price × the offer's static multiplier under the default weights (see [`static_multiplier`]):
/// for queries with default reputation/benchmark/latency weights these orders are close to the
/// final ranking, so the search stops after a few reads.
const GPU_EFF: usize = 6;
const CPU_EFF: usize = 7;
const MEGA_EFF: usize = 8;
const RAM_HOUR: usize = 9;
const RAM_EFF: usize = 10;

/// `1 + Σ w·p` over the static penalties with [`RouterWeights::default`]: what the `*_EFF`
/// lists multiply prices by.
fn static_multiplier(pen: &StaticPenalties) -> f64 {
    RouterWeights::default().multiplier(pen, 0.0)
}

/// Largest [`static_multiplier`] (every penalty 1).
fn max_static_multiplier() -> f64 {
    let w = RouterWeights::default();
    1.0 + w.reputation + w.benchmark + w.latency
}

/// Whether `q` scores static penalties with the default weights, so the `*_EFF` lists bound it.
fn default_static_weights(q: &Query<'_>) -> bool {
    let (w, d) = (q.weights, RouterWeights::default());
    w.reputation == d.reputation && w.benchmark == d.benchmark && w.latency == d.latency
}

#[derive(Clone, Debug, Default)]
struct Bucket {
    key: BucketKey,
    max_vram: u32,
    max_cpu: u16,
    max_ram: u32,
    /// Indexed by the list positions above.
    lists: [Vec<Keyed>; LISTS],
}

const PRICE: usize = GPU_HOUR;

fn price_key(a: Amount) -> u64 {
    u64::try_from(a.units()).unwrap_or(u64::MAX)
}

fn keys(e: &Entry) -> [Keyed; LISTS] {
    let slot = u32::MAX; // replaced by the caller
    let p = &e.offer.prices;
    [
        (price_key(p.gpu_hour), slot),
        (price_key(p.cpu_core_hour), slot),
        (price_key(p.mega_unit), slot),
        (e.pen.reputation.to_bits(), slot),
        (e.pen.benchmark.to_bits(), slot),
        (e.pen.latency.to_bits(), slot),
        (eff_key(p.gpu_hour, &e.pen), slot),
        (eff_key(p.cpu_core_hour, &e.pen), slot),
        (eff_key(p.mega_unit, &e.pen), slot),
        (price_key(p.ram_gib_hour), slot),
        (eff_key(p.ram_gib_hour, &e.pen), slot),
    ]
}

fn eff_key(price: Amount, pen: &StaticPenalties) -> u64 {
    (price.units() as f64 * static_multiplier(pen)).to_bits()
}

/// Limit on the offers an index may hold was reached.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the offer index is full ({MAX_OFFERS} offers)")]
pub struct IndexFull;

/// The offer index. See the module docs.
#[derive(Clone, Debug, Default)]
pub struct OfferIndex {
    slots: Vec<Option<Entry>>,
    free: Vec<u32>,
    by_id: HashMap<AccountId, u32>,
    buckets: Vec<Bucket>,
    bucket_of: HashMap<BucketKey, u32>,
    /// Lower-cased model → its buckets.
    models: Vec<(String, Vec<u32>)>,
}

/// What a query returned, with what it cost to find.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Routing {
    /// Best first.
    pub ranked: Vec<crate::router::Ranked>,
    /// Offers evaluated to find them (the linear scan evaluates every offer).
    pub evaluated: usize,
}

impl OfferIndex {
    /// An empty index.
    pub fn new() -> OfferIndex {
        OfferIndex::default()
    }

    /// Every registered provider of a ledger state (`State::providers().iter()`).
    pub fn from_providers<'a>(
        providers: impl Iterator<Item = (&'a AccountId, &'a Provider)>,
    ) -> Result<OfferIndex, IndexFull> {
        OfferIndex::from_offers(providers.map(|(id, p)| Offer::from_provider(id, p)))
    }

    /// Bulk load: appends every offer (a later one replaces an earlier one of the same
    /// provider), then sorts each list once.
    pub fn from_offers(offers: impl IntoIterator<Item = Offer>) -> Result<OfferIndex, IndexFull> {
        // Lists are unsorted until the end, so duplicates are resolved before linking.
        let mut offers: Vec<Offer> = offers.into_iter().collect();
        let mut last: HashMap<AccountId, usize> = HashMap::with_capacity(offers.len());
        for (i, o) in offers.iter().enumerate() {
            last.insert(o.provider, i);
        }
        let mut i = 0;
        offers.retain(|o| {
            i += 1;
            last.get(&o.provider) == Some(&(i - 1))
        });
        let mut index = OfferIndex::new();
        for offer in offers {
            index.link(offer, false)?;
        }
        for b in &mut index.buckets {
            for list in &mut b.lists {
                list.sort_unstable();
            }
        }
        Ok(index)
    }

    /// Adds or replaces a provider's offer.
    pub fn upsert(&mut self, offer: Offer) -> Result<(), IndexFull> {
        if let Some(&slot) = self.by_id.get(&offer.provider) {
            self.unlink(slot);
        }
        self.link(offer, true)
    }

    /// Removes a provider's offer, returning it.
    pub fn remove(&mut self, provider: &AccountId) -> Option<Offer> {
        let slot = *self.by_id.get(provider)?;
        self.unlink(slot)
    }

    /// A provider's offer.
    pub fn get(&self, provider: &AccountId) -> Option<&Offer> {
        let slot = *self.by_id.get(provider)?;
        self.slots[slot as usize].as_ref().map(|e| &e.offer)
    }

    /// Sets what only the caller can measure: the benchmark score (`None` leaves it), when the
    /// provider was last seen, its latency. Returns `false` for an unknown provider.
    pub fn observe(
        &mut self,
        provider: &AccountId,
        benchmark: Option<u32>,
        last_seen_ms: Option<u64>,
        latency_ms: Option<u32>,
    ) -> bool {
        let Some(mut offer) = self.get(provider).cloned() else {
            return false;
        };
        offer.benchmark = benchmark.or(offer.benchmark);
        offer.last_seen_ms = last_seen_ms.or(offer.last_seen_ms);
        offer.latency_ms = latency_ms.or(offer.latency_ms);
        // Replacing an existing offer frees a slot first, so it cannot be full.
        self.upsert(offer).is_ok()
    }

    /// Number of offers.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Every offer, in no particular order.
    pub fn offers(&self) -> impl Iterator<Item = &Offer> {
        self.slots.iter().flatten().map(|e| &e.offer)
    }

    /// Distinct regions that hold at least one offer, sorted.
    pub fn regions(&self) -> Vec<String> {
        let mut r: Vec<String> = self
            .buckets
            .iter()
            .filter(|b| !b.lists[PRICE].is_empty())
            .map(|b| b.key.region.clone())
            .collect();
        r.sort();
        r.dedup();
        r
    }

    fn link(&mut self, offer: Offer, sorted: bool) -> Result<(), IndexFull> {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                if self.slots.len() >= MAX_OFFERS {
                    return Err(IndexFull);
                }
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        let key = BucketKey {
            model_lower: offer.gpu_model().to_lowercase(),
            region: offer.region.clone(),
            gpu_count: offer.hardware.gpu_count(),
        };
        let bucket = match self.bucket_of.get(&key) {
            Some(&b) => b,
            None => {
                let b = self.buckets.len() as u32;
                match self.models.iter_mut().find(|(m, _)| *m == key.model_lower) {
                    Some((_, bs)) => bs.push(b),
                    None => self.models.push((key.model_lower.clone(), vec![b])),
                }
                self.bucket_of.insert(key.clone(), b);
                self.buckets.push(Bucket {
                    key,
                    ..Bucket::default()
                });
                b
            }
        };
        let entry = Entry {
            pen: offer.penalties(),
            bucket,
            offer,
        };
        let b = &mut self.buckets[bucket as usize];
        b.max_vram = b.max_vram.max(entry.offer.vram_mib());
        b.max_cpu = b.max_cpu.max(entry.offer.hardware.cpu_cores);
        b.max_ram = b.max_ram.max(entry.offer.hardware.ram_gib);
        for (list, (k, _)) in b.lists.iter_mut().zip(keys(&entry)) {
            if sorted {
                let pos = list.partition_point(|x| *x < (k, slot));
                list.insert(pos, (k, slot));
            } else {
                list.push((k, slot));
            }
        }
        self.by_id.insert(entry.offer.provider, slot);
        self.slots[slot as usize] = Some(entry);
        Ok(())
    }

    fn unlink(&mut self, slot: u32) -> Option<Offer> {
        let entry = self.slots[slot as usize].take()?;
        let b = &mut self.buckets[entry.bucket as usize];
        for (list, (k, _)) in b.lists.iter_mut().zip(keys(&entry)) {
            if let Ok(pos) = list.binary_search(&(k, slot)) {
                list.remove(pos);
            }
        }
        self.by_id.remove(&entry.offer.provider);
        self.free.push(slot);
        Some(entry.offer)
    }

    /// Checks the invariants in the module docs; `Err` describes the first broken one.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut listed = 0usize;
        for (bi, b) in self.buckets.iter().enumerate() {
            for (li, list) in b.lists.iter().enumerate() {
                if list.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(format!("bucket {bi} list {li} is not strictly sorted"));
                }
                for &(k, slot) in list {
                    let Some(Some(e)) = self.slots.get(slot as usize) else {
                        return Err(format!("bucket {bi} lists empty slot {slot}"));
                    };
                    if e.bucket as usize != bi || keys(e)[li].0 != k {
                        return Err(format!("slot {slot} is listed with a stale key"));
                    }
                }
            }
            listed += b.lists[PRICE].len();
            if b.lists.iter().any(|l| l.len() != b.lists[PRICE].len()) {
                return Err(format!("bucket {bi} lists differ in length"));
            }
        }
        let occupied = self.slots.iter().flatten().count();
        if listed != occupied || occupied != self.by_id.len() {
            return Err(format!(
                "{occupied} occupied slots, {listed} listed, {} ids",
                self.by_id.len()
            ));
        }
        for (id, &slot) in &self.by_id {
            match &self.slots[slot as usize] {
                Some(e) if e.offer.provider == *id => {}
                _ => return Err(format!("id {id} points at the wrong slot")),
            }
        }
        Ok(())
    }

    /// Buckets whose key (model, region, GPU count) matches, with their region penalty, and
    /// whether their maxima of VRAM, cores and RAM can satisfy the query. The median price in
    /// explanations is taken over the first set, which depends only on the offers held (not on
    /// the update history the conservative maxima remember); the search opens the second.
    fn candidate_buckets(&self, q: &Query<'_>) -> Vec<(u32, f64, bool)> {
        let req = q.req;
        let mut out = Vec::new();
        for (model, buckets) in &self.models {
            if let Some(m) = &q.model_lower
                && !model.contains(m.as_str())
            {
                continue;
            }
            for &bi in buckets {
                let b = &self.buckets[bi as usize];
                if b.lists[PRICE].is_empty() || b.key.gpu_count < req.resources.gpus {
                    continue;
                }
                // The cheapest listed price of a bucket is the head of its list.
                let over = |li: usize, cap: Option<Amount>| {
                    cap.is_some_and(|c| u128::from(b.lists[li][0].0) > c.units())
                };
                if over(GPU_HOUR, req.max_gpu_hour) || over(MEGA_UNIT, req.max_mega_unit) {
                    continue;
                }
                let fits = b.max_vram >= req.min_vram_mib
                    && b.max_cpu >= req.resources.cpu_cores
                    && b.max_ram >= req.resources.ram_gib;
                if let RegionPreference::Require(r) = &req.region
                    && !r.eq_ignore_ascii_case(&b.key.region)
                {
                    continue;
                }
                out.push((bi, req.region_penalty(&b.key.region), fits));
            }
        }
        out
    }

    /// Median listed GPU-hour price over the candidate buckets, from each bucket's own median
    /// weighted by its size (exact when one bucket matches, close otherwise). For explanations
    /// only; ranking does not read it.
    fn median_gpu_hour(&self, buckets: &[(u32, f64, bool)]) -> Option<Amount> {
        let mut medians: Vec<(u128, usize)> = buckets
            .iter()
            .map(|&(bi, _, _)| {
                let l = &self.buckets[bi as usize].lists[PRICE];
                (u128::from(l[l.len() / 2].0), l.len())
            })
            .collect();
        medians.sort_unstable();
        let total: usize = medians.iter().map(|m| m.1).sum();
        let mut seen = 0;
        for (price, n) in medians {
            seen += n;
            if seen * 2 >= total {
                return Some(Amount(price));
            }
        }
        None
    }

    /// Ranks offers for `req`. See the module docs for the search and [`crate::router`] for
    /// the score; the answer always equals [`OfferIndex::rank_linear`]'s.
    pub fn rank(
        &self,
        req: &Requirements,
        weights: &RouterWeights,
        params: &Params,
    ) -> Result<Routing, RouteError> {
        self.search(req, weights, params, false)
    }

    /// The same answer as [`OfferIndex::rank`], found by evaluating every offer: the baseline
    /// for tests and the benchmark.
    pub fn rank_linear(
        &self,
        req: &Requirements,
        weights: &RouterWeights,
        params: &Params,
    ) -> Result<Routing, RouteError> {
        self.search(req, weights, params, true)
    }

    fn search(
        &self,
        req: &Requirements,
        weights: &RouterWeights,
        params: &Params,
        linear: bool,
    ) -> Result<Routing, RouteError> {
        weights.validate(req)?;
        let q = Query {
            req,
            weights,
            params,
            model_lower: req.model_lower(),
        };
        let k = req.result_count();
        let mut top = TopK::new(k);
        let buckets = self.candidate_buckets(&q);
        let evaluated = if linear {
            self.scan_all(&q, &mut top)
        } else {
            self.scan_buckets(&q, &buckets, &mut top)
        };
        if top.items.is_empty() {
            return Err(diagnose(self.offers(), req, params));
        }
        if let Verification::Redundant { k } = req.verification
            && top.items.len() < usize::from(k)
        {
            return Err(RouteError::TooFewForRedundancy {
                need: usize::from(k),
                found: top.items.len(),
            });
        }
        let median = self.median_gpu_hour(&buckets);
        let cheapest = top.items.iter().map(|c| c.cost).min();
        let ranked = top
            .items
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let offer = &self.entry(c.slot).offer;
                build_ranked(
                    i + 1,
                    offer,
                    c.cost,
                    c.effective,
                    &q,
                    median,
                    Some(c.cost) == cheapest,
                )
            })
            .collect();
        Ok(Routing { ranked, evaluated })
    }

    fn entry(&self, slot: u32) -> &Entry {
        match &self.slots[slot as usize] {
            Some(e) => e,
            // Lists only name occupied slots (`check_invariants`).
            None => unreachable!("list names empty slot {slot}"),
        }
    }

    fn consider(&self, q: &Query<'_>, slot: u32, region_pen: f64, top: &mut TopK) {
        let e = self.entry(slot);
        let model = &self.buckets[e.bucket as usize].key.model_lower;
        if let Some((cost, eff)) = evaluate(&e.offer, model, &e.pen, q, region_pen) {
            top.offer(Candidate {
                effective: eff,
                provider: e.offer.provider,
                slot,
                cost,
            });
        }
    }

    fn scan_all(&self, q: &Query<'_>, top: &mut TopK) -> usize {
        let mut n = 0;
        for (slot, e) in self.slots.iter().enumerate() {
            if let Some(e) = e {
                n += 1;
                self.consider(q, slot as u32, q.req.region_penalty(&e.offer.region), top);
            }
        }
        n
    }

    /// Lower bound on the effective cost of any offer in `b` not read yet, given the cursors.
    fn threshold(
        &self,
        q: &Query<'_>,
        b: &Bucket,
        cursor: &[usize; LISTS],
        region_pen: f64,
    ) -> f64 {
        let at = |li: usize| b.lists[li].get(cursor[li]).map(|x| x.0);
        if default_static_weights(q) {
            // effective = (cost + 1)·(m + w_region·r) where m is the static multiplier; cost + 1
            // exceeds Σ coefficient·price − 1 (two floors), and m + w_region·r ≥ m·(1 +
            // w_region·r / m_max). Keys are price·m, so Σ coefficient·key bounds the rest; the
            // slack terms absorb float rounding.
            let (r, u) = (&q.req.resources, &q.req.usage);
            let hours = u.seconds as f64 / SECONDS_PER_HOUR as f64;
            let key = |li: usize| at(li).map_or(f64::INFINITY, f64::from_bits);
            let mut sum = 0.0;
            for (coeff, li) in [
                (f64::from(r.gpus) * hours, GPU_EFF),
                (f64::from(r.cpu_cores) * hours, CPU_EFF),
                (f64::from(r.ram_gib) * hours, RAM_EFF),
                (u.units as f64 / UNITS_PER_MEGA_UNIT as f64, MEGA_EFF),
            ] {
                if coeff > 0.0 {
                    sum += coeff * key(li);
                }
            }
            let region = 1.0 + q.weights.region * region_pen / max_static_multiplier();
            let mult_max = max_static_multiplier() + q.weights.region * region_pen;
            return sum * region * (1.0 - 1e-12) - 2.0 * mult_max;
        }
        let price = |li: usize| Amount(u128::from(at(li).unwrap_or(u64::MAX)));
        let floor = PriceList {
            gpu_hour: price(GPU_HOUR),
            cpu_core_hour: price(CPU_HOUR),
            ram_gib_hour: price(RAM_HOUR),
            mega_unit: price(MEGA_UNIT),
        };
        let cost_lb = floor
            .cost(&q.req.resources, &q.req.usage)
            .unwrap_or(Amount(u128::MAX));
        let pen = |li: usize| at(li).map_or(1.0, f64::from_bits);
        let pen = StaticPenalties {
            reputation: pen(REPUTATION),
            benchmark: pen(BENCHMARK),
            latency: pen(LATENCY),
        };
        effective(cost_lb, q.weights.multiplier(&pen, region_pen))
    }

    /// The lists worth walking for `q`: each price whose quantity in the job is non-zero (at
    /// least one), each penalty whose weight is non-zero.
    fn active_lists(q: &Query<'_>) -> Vec<usize> {
        let (r, u, w) = (&q.req.resources, &q.req.usage, q.weights);
        let timed = u.seconds > 0;
        let mut active = Vec::with_capacity(LISTS);
        if default_static_weights(q) {
            for (li, on) in [
                (GPU_EFF, timed && r.gpus > 0),
                (CPU_EFF, timed && r.cpu_cores > 0),
                (RAM_EFF, timed && r.ram_gib > 0),
                (MEGA_EFF, u.units > 0),
            ] {
                if on {
                    active.push(li);
                }
            }
            if active.is_empty() {
                // A job that costs nothing: no price bounds it; walk one list to the end.
                active.push(GPU_EFF);
            }
            return active;
        }
        for (li, on) in [
            (GPU_HOUR, timed && r.gpus > 0),
            (CPU_HOUR, timed && r.cpu_cores > 0),
            (RAM_HOUR, timed && r.ram_gib > 0),
            (MEGA_UNIT, u.units > 0),
        ] {
            if on {
                active.push(li);
            }
        }
        if active.is_empty() {
            active.push(GPU_HOUR);
        }
        for (li, weight) in [
            (REPUTATION, w.reputation),
            (BENCHMARK, w.benchmark),
            (LATENCY, w.latency),
        ] {
            if weight > 0.0 {
                active.push(li);
            }
        }
        active
    }

    fn scan_buckets(&self, q: &Query<'_>, buckets: &[(u32, f64, bool)], top: &mut TopK) -> usize {
        let active = Self::active_lists(q);
        let mut order: Vec<(f64, u32, f64)> = buckets
            .iter()
            .filter(|b| b.2)
            .map(|&(bi, rp, _)| {
                (
                    self.threshold(q, &self.buckets[bi as usize], &[0; LISTS], rp),
                    bi,
                    rp,
                )
            })
            .collect();
        order.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let max_price = q.req.max_gpu_hour.map(|a| a.units());
        let mut evaluated = 0;
        for (lb, bi, rp) in order {
            if top.bar().is_some_and(|bar| lb > bar) {
                break;
            }
            let b = &self.buckets[bi as usize];
            let mut cursor = [0usize; LISTS];
            'bucket: loop {
                for &li in &active {
                    let Some(&(key, slot)) = b.lists[li].get(cursor[li]) else {
                        break 'bucket; // every offer of the bucket was read
                    };
                    if li == GPU_HOUR && max_price.is_some_and(|m| u128::from(key) > m) {
                        break 'bucket; // the rest are over the price cap
                    }
                    cursor[li] += 1;
                    evaluated += 1;
                    self.consider(q, slot, rp, top);
                }
                if top
                    .bar()
                    .is_some_and(|bar| self.threshold(q, b, &cursor, rp) > bar)
                {
                    break;
                }
            }
        }
        evaluated
    }
}
