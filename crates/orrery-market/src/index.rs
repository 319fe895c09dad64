//! The offer index: every live offer, bucketed and kept in small trees so that a routing query
//! reads a few hundred compact records instead of a million offers.
//!
//! # Layout
//!
//! Offers live in a slab (`Vec` of slots with a free list) addressed by `u32`; a map finds a
//! provider's slot. Each offer belongs to exactly one *bucket*, keyed by (GPU model lower-cased,
//! region, GPU count). A bucket holds
//!
//! - a compact *hot record* per offer (the four listed prices as floats, the three static
//!   penalties, the static multiplier under the default weights, VRAM, cores, RAM, reputation
//!   score, last-seen time, slot): everything the search reads before it decides that an offer
//!   is worth a full evaluation;
//! - a k-d tree over those records: the first `built` records are in tree order, each node
//!   covering a contiguous range and leaves at most [`LEAF`] records; nodes split at the median
//!   of the price dimension (price × static multiplier) with the widest spread. Each node keeps
//!   the minima of the prices, of price × static multiplier and of the penalties, and the maxima
//!   of VRAM, cores, RAM, reputation score and last-seen time over its range;
//! - a *tail*: records added since the tree was built, scanned as one more leaf, with bounds
//!   widened on every insert;
//! - sorted lists of the listed GPU-hour and mega-unit prices (the cheapest decides whether a
//!   price cap excludes the bucket, the median goes into explanations), and conservative maxima
//!   of VRAM, cores and RAM (raised on insert, never lowered).
//!
//! Removing an offer marks its record dead (its slot becomes [`DEAD`]); node bounds are left
//! as they were, so they may understate minima and overstate maxima but never the reverse.
//! A bucket is rebuilt (dead records dropped, the tail merged into a new tree) when its tail
//! or its dead records grow past a fraction of it, so updates cost `O(log b)` amortized for a
//! bucket of `b` offers; bulk loads go through [`OfferIndex::from_offers`], which builds each
//! tree once.
//!
//! # Search (best-first branch and bound)
//!
//! A query keeps the buckets whose key and maxima can satisfy it and puts each one's tree root
//! and tail on a heap, keyed by a lower bound on the effective cost of any qualifying offer
//! below them. It pops the smallest bound; a node whose filter maxima cannot satisfy the query
//! (too little VRAM, too few cores, a cheapest price over a cap, a best reputation or latest
//! sighting below the minimum) is dropped, an inner node pushes its two children, a leaf is
//! scanned. The search stops when the smallest bound left exceeds the current k-th result
//! (strictly: ties break by id). Scanning a leaf checks each live record's filters, computes a
//! lower bound on its effective cost from its own prices and penalties, and only when that
//! bound does not exceed the k-th result evaluates the offer in full (the same
//! [`crate::router`] code the linear scan runs) and offers it to the top k.
//!
//! The bounds hold because the effective cost is `(cost + 1) × multiplier` with `cost` at
//! least `Σ coefficient × price − 2` (two floored divisions), every coefficient and penalty
//! non-negative, and the multiplier monotone in each penalty: the minima of a node give a lower
//! bound for all of it. With the default reputation, benchmark and latency weights a second,
//! tighter node bound uses the minima of price × static multiplier. Every bound is shrunk by a
//! relative [`SLACK`] far larger than the rounding of the few float operations behind it.
//!
//! # Invariants
//!
//! - Every occupied slot has exactly one live record, in its bucket, at the position its entry
//!   names, equal to the record its offer would get now; the bucket's price lists hold exactly
//!   its live offers' prices; every node bounds the records in its range (dead ones included)
//!   and its children partition that range. [`OfferIndex::check_invariants`] verifies it.
//! - [`OfferIndex::rank`] returns exactly what [`OfferIndex::rank_linear`] (a scan of every
//!   offer) returns: same offers, same order, same explanations.

use crate::offer::{Offer, StaticPenalties};
use crate::router::{
    Candidate, Query, RegionPreference, Requirements, RouteError, RouterWeights, TopK,
    build_ranked, diagnose, evaluate,
};
use orrery_ledger::Params;
use orrery_ledger::entries::Provider;
use orrery_types::resources::{SECONDS_PER_HOUR, UNITS_PER_MEGA_UNIT};
use orrery_types::{AccountId, Amount, Verification};
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

/// Most offers one index holds. Slots are `u32`; this leaves headroom and bounds memory
/// (about 400 bytes an offer).
pub const MAX_OFFERS: usize = 16_000_000;

/// Most records in a leaf of a bucket's tree.
pub const LEAF: usize = 16;
/// The slot of a removed offer's record, until its bucket is rebuilt.
pub const DEAD: u32 = u32::MAX;
/// Relative amount every float bound is lowered by, to absorb rounding (a handful of float
/// operations err by about 1e-15 relative each).
pub const SLACK: f64 = 1e-9;

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
    /// Position of its record in the bucket's `hot`.
    pos: u32,
}

/// Price dimensions, in [`Hot::price`] order.
const DIMS: usize = 4;
const GPU: usize = 0;
const CPU: usize = 1;
const RAM: usize = 2;
const MEGA: usize = 3;

/// What the search reads of an offer before deciding to evaluate it in full.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Hot {
    /// Listed GPU-hour, CPU-core-hour, GiB-hour and mega-unit prices in base units (saturated
    /// at `u64::MAX`, so never above the true price), as floats.
    price: [f64; DIMS],
    /// Reputation, benchmark and latency penalties.
    pen: [f64; 3],
    /// [`static_multiplier`] of the penalties.
    mult: f64,
    /// Last seen (ms), 0 when never.
    last_seen: u64,
    reputation: i64,
    vram: u32,
    ram: u32,
    cpu: u16,
    /// Whether the chain counts it online (offline offers never qualify).
    online: bool,
    /// The offer's slot, or [`DEAD`].
    slot: u32,
}

impl Hot {
    fn new(offer: &Offer, pen: &StaticPenalties, slot: u32) -> Hot {
        let p = &offer.prices;
        Hot {
            price: [
                price_f(p.gpu_hour),
                price_f(p.cpu_core_hour),
                price_f(p.ram_gib_hour),
                price_f(p.mega_unit),
            ],
            pen: [pen.reputation, pen.benchmark, pen.latency],
            mult: static_multiplier(pen),
            last_seen: offer.last_seen_ms.unwrap_or(0),
            reputation: offer.reputation_score(),
            vram: offer.vram_mib(),
            ram: offer.hardware.ram_gib,
            cpu: offer.hardware.cpu_cores,
            online: offer.online,
            slot,
        }
    }

    fn penalties(&self) -> StaticPenalties {
        StaticPenalties {
            reputation: self.pen[0],
            benchmark: self.pen[1],
            latency: self.pen[2],
        }
    }
}

/// A price in base units as a float, saturated at `u64::MAX` first: never above the price, and
/// monotone, so comparing converted values never reverses a strict order.
fn price_f(a: Amount) -> f64 {
    price_key(a) as f64
}

fn price_key(a: Amount) -> u64 {
    u64::try_from(a.units()).unwrap_or(u64::MAX)
}

/// `1 + Σ w·p` over the static penalties with [`RouterWeights::default`].
fn static_multiplier(pen: &StaticPenalties) -> f64 {
    RouterWeights::default().multiplier(pen, 0.0)
}

/// Largest [`static_multiplier`] (every penalty 1).
fn max_static_multiplier() -> f64 {
    let w = RouterWeights::default();
    1.0 + w.reputation + w.benchmark + w.latency
}

/// Bounds over a range of records: minima of what lowers the effective cost, maxima of what
/// the filters ask for.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Node {
    lo_price: [f64; DIMS],
    /// Minima of price × static multiplier.
    lo_eff: [f64; DIMS],
    lo_pen: [f64; 3],
    max_last_seen: u64,
    max_reputation: i64,
    max_vram: u32,
    max_ram: u32,
    max_cpu: u16,
    /// The range of `hot` covered.
    start: u32,
    end: u32,
    /// Index of the first child (the second follows it), or [`NO_KIDS`] for a leaf.
    kids: u32,
}

const NO_KIDS: u32 = u32::MAX;
/// Heap item naming a bucket's tail rather than one of its nodes.
const TAIL: u32 = u32::MAX;
/// Heap item naming a whole bucket (its tree and tail), bounded by its [`Summary`].
const WHOLE: u32 = u32::MAX - 1;

impl Default for Node {
    fn default() -> Node {
        Node::empty(0)
    }
}

impl Node {
    fn empty(start: usize) -> Node {
        Node {
            lo_price: [f64::INFINITY; DIMS],
            lo_eff: [f64::INFINITY; DIMS],
            lo_pen: [f64::INFINITY; 3],
            max_last_seen: 0,
            max_reputation: i64::MIN,
            max_vram: 0,
            max_ram: 0,
            max_cpu: 0,
            start: start as u32,
            end: start as u32,
            kids: NO_KIDS,
        }
    }

    fn add(&mut self, h: &Hot) {
        for d in 0..DIMS {
            self.lo_price[d] = self.lo_price[d].min(h.price[d]);
            self.lo_eff[d] = self.lo_eff[d].min(h.price[d] * h.mult);
        }
        for j in 0..3 {
            self.lo_pen[j] = self.lo_pen[j].min(h.pen[j]);
        }
        self.max_last_seen = self.max_last_seen.max(h.last_seen);
        self.max_reputation = self.max_reputation.max(h.reputation);
        self.max_vram = self.max_vram.max(h.vram);
        self.max_ram = self.max_ram.max(h.ram);
        self.max_cpu = self.max_cpu.max(h.cpu);
    }

    /// Widens the bounds to cover `other`'s too.
    fn union(&mut self, other: &Node) {
        for d in 0..DIMS {
            self.lo_price[d] = self.lo_price[d].min(other.lo_price[d]);
            self.lo_eff[d] = self.lo_eff[d].min(other.lo_eff[d]);
        }
        for j in 0..3 {
            self.lo_pen[j] = self.lo_pen[j].min(other.lo_pen[j]);
        }
        self.max_last_seen = self.max_last_seen.max(other.max_last_seen);
        self.max_reputation = self.max_reputation.max(other.max_reputation);
        self.max_vram = self.max_vram.max(other.max_vram);
        self.max_ram = self.max_ram.max(other.max_ram);
        self.max_cpu = self.max_cpu.max(other.max_cpu);
    }

    fn covers(&self, h: &Hot) -> bool {
        (0..DIMS).all(|d| self.lo_price[d] <= h.price[d] && self.lo_eff[d] <= h.price[d] * h.mult)
            && (0..3).all(|j| self.lo_pen[j] <= h.pen[j])
            && self.max_last_seen >= h.last_seen
            && self.max_reputation >= h.reputation
            && self.max_vram >= h.vram
            && self.max_ram >= h.ram
            && self.max_cpu >= h.cpu
    }

    fn range(&self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// Builds the subtree over `hot[range]` into `nodes[at]`, reordering the records.
fn build_node(hot: &mut [Hot], start: usize, end: usize, nodes: &mut Vec<Node>, at: usize) {
    let mut node = Node::empty(start);
    node.end = end as u32;
    let mut hi_eff = [0.0f64; DIMS];
    for h in &hot[start..end] {
        node.add(h);
        for (d, hi) in hi_eff.iter_mut().enumerate() {
            *hi = hi.max(h.price[d] * h.mult);
        }
    }
    if end - start > LEAF {
        // Split the dimension whose values spread widest relative to their size.
        let spread = |d: usize| {
            if hi_eff[d] > 0.0 {
                (hi_eff[d] - node.lo_eff[d]) / hi_eff[d]
            } else {
                0.0
            }
        };
        let dim = (0..DIMS)
            .max_by(|&a, &b| spread(a).total_cmp(&spread(b)))
            .unwrap_or(GPU);
        let mid = start + (end - start) / 2;
        hot[start..end].select_nth_unstable_by(mid - start, |a, b| {
            (a.price[dim] * a.mult).total_cmp(&(b.price[dim] * b.mult))
        });
        let kids = nodes.len();
        node.kids = kids as u32;
        nodes.push(Node::empty(start));
        nodes.push(Node::empty(mid));
        build_node(hot, start, mid, nodes, kids);
        build_node(hot, mid, end, nodes, kids + 1);
    }
    nodes[at] = node;
}

/// What a query asks of a record and how its coefficients weigh prices: prepared once.
struct Ctx {
    /// Price coefficients of the job's cost: GPUs, cores and GiB times hours, mega-units.
    coeff: [f64; DIMS],
    default_static: bool,
    min_vram: u32,
    min_cpu: u16,
    min_ram: u32,
    max_gpu_hour: f64,
    max_mega_unit: f64,
    min_reputation: i64,
    seen_since: u64,
}

impl Ctx {
    fn new(q: &Query<'_>) -> Ctx {
        let (r, u) = (&q.req.resources, &q.req.usage);
        let hours = u.seconds as f64 / SECONDS_PER_HOUR as f64;
        let (w, d) = (q.weights, RouterWeights::default());
        let cap = |a: Option<Amount>| a.map_or(f64::INFINITY, |a| a.units() as f64);
        Ctx {
            coeff: [
                f64::from(r.gpus) * hours,
                f64::from(r.cpu_cores) * hours,
                f64::from(r.ram_gib) * hours,
                u.units as f64 / UNITS_PER_MEGA_UNIT as f64,
            ],
            default_static: w.reputation == d.reputation
                && w.benchmark == d.benchmark
                && w.latency == d.latency,
            min_vram: q.req.min_vram_mib,
            min_cpu: r.cpu_cores,
            min_ram: r.ram_gib,
            max_gpu_hour: cap(q.req.max_gpu_hour),
            max_mega_unit: cap(q.req.max_mega_unit),
            min_reputation: q.req.min_reputation.unwrap_or(i64::MIN),
            seen_since: q.req.seen_since_ms.unwrap_or(0),
        }
    }

    /// Whether some record under `n` may pass the filters `n` keeps bounds for.
    #[inline]
    fn node_may_pass(&self, n: &Node) -> bool {
        n.max_vram >= self.min_vram
            && n.max_cpu >= self.min_cpu
            && n.max_ram >= self.min_ram
            && n.lo_price[GPU] <= self.max_gpu_hour
            && n.lo_price[MEGA] <= self.max_mega_unit
            && n.max_reputation >= self.min_reputation
            && n.max_last_seen >= self.seen_since
    }

    /// Whether the record may pass those filters (a dead record never does).
    #[inline]
    fn may_pass(&self, h: &Hot) -> bool {
        h.slot != DEAD
            && h.online
            && h.vram >= self.min_vram
            && h.cpu >= self.min_cpu
            && h.ram >= self.min_ram
            && h.price[GPU] <= self.max_gpu_hour
            && h.price[MEGA] <= self.max_mega_unit
            && h.reputation >= self.min_reputation
            && h.last_seen >= self.seen_since
    }

    #[inline]
    fn dot(&self, v: &[f64; DIMS]) -> f64 {
        self.coeff[GPU] * v[GPU]
            + self.coeff[CPU] * v[CPU]
            + self.coeff[RAM] * v[RAM]
            + self.coeff[MEGA] * v[MEGA]
    }

    /// Lower bound on `cost + 1` from `Σ coefficient × price` (cost ≥ that − 2: two floors).
    #[inline]
    fn cost_plus_one_lb(&self, prices: &[f64; DIMS]) -> f64 {
        (self.dot(prices) * (1.0 - SLACK) - 1.0).max(0.0)
    }

    /// Lower bound on the effective cost of any qualifying offer under `n`.
    fn node_bound(&self, q: &Query<'_>, n: &Node, region_pen: f64) -> f64 {
        let pen = StaticPenalties {
            reputation: n.lo_pen[0],
            benchmark: n.lo_pen[1],
            latency: n.lo_pen[2],
        };
        let generic = self.cost_plus_one_lb(&n.lo_price) * q.weights.multiplier(&pen, region_pen);
        if !self.default_static {
            return generic * (1.0 - SLACK);
        }
        // With the default static weights the multiplier is m + w_region·r, m the static one:
        // (S − 1)(m + w_region·r) ≥ S·m·(1 + w_region·r / m_max) − (m_max + w_region·r),
        // and Σ coefficient × (price × m) over the node's minima bounds S·m.
        let (m_max, wr) = (max_static_multiplier(), q.weights.region * region_pen);
        let tight = self.dot(&n.lo_eff) * (1.0 - SLACK) * (1.0 + wr / m_max) - (m_max + wr);
        generic.max(tight) * (1.0 - SLACK)
    }

    /// Lower bound on the effective cost of the record's offer, if it qualifies.
    #[inline]
    fn bound(&self, q: &Query<'_>, h: &Hot, region_pen: f64) -> f64 {
        self.cost_plus_one_lb(&h.price)
            * q.weights.multiplier(&h.penalties(), region_pen)
            * (1.0 - SLACK)
    }
}

/// Heap item: a node (or tail) of a bucket and its bound, smallest bound first.
struct Pending {
    bound: f64,
    bucket: u32,
    node: u32,
    region_pen: f64,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: `BinaryHeap` pops the largest.
        other
            .bound
            .total_cmp(&self.bound)
            .then_with(|| other.bucket.cmp(&self.bucket))
            .then_with(|| other.node.cmp(&self.node))
    }
}

#[derive(Clone, Debug, Default)]
struct Bucket {
    key: BucketKey,
    max_vram: u32,
    max_cpu: u16,
    max_ram: u32,
    /// Listed GPU-hour prices of its live offers (saturated), sorted.
    gpu_hours: Vec<u64>,
    /// Listed mega-unit prices of its live offers (saturated), sorted.
    mega_units: Vec<u64>,
    /// Records: `[..built]` in tree order, then the tail.
    hot: Vec<Hot>,
    built: usize,
    /// The tree over `hot[..built]`; empty when `built` is 0.
    nodes: Vec<Node>,
    /// Bounds of `hot[built..]`.
    tail: Node,
    /// Dead records in `hot`.
    dead: usize,
}

impl Bucket {
    fn live(&self) -> usize {
        self.hot.len() - self.dead
    }

    /// Whether updates have piled up enough to rebuild.
    fn needs_rebuild(&self) -> bool {
        let slack = 4 * LEAF + self.hot.len() / 8;
        self.hot.len() - self.built > slack || self.dead > slack
    }

    /// Drops dead records and builds the tree over all the others; `slots` learn their new
    /// positions.
    fn rebuild(&mut self, slots: &mut [Option<Entry>]) {
        self.hot.retain(|h| h.slot != DEAD);
        self.dead = 0;
        self.nodes.clear();
        self.built = self.hot.len();
        if !self.hot.is_empty() {
            self.nodes.push(Node::empty(0));
            build_node(&mut self.hot, 0, self.built, &mut self.nodes, 0);
        }
        self.tail = Node::empty(self.built);
        for (pos, h) in self.hot.iter().enumerate() {
            if let Some(Some(e)) = slots.get_mut(h.slot as usize) {
                e.pos = pos as u32;
            }
        }
    }

    fn node(&self, id: u32) -> &Node {
        if id == TAIL {
            &self.tail
        } else {
            &self.nodes[id as usize]
        }
    }
}

fn sorted_insert(v: &mut Vec<u64>, x: u64) {
    let pos = v.partition_point(|y| *y < x);
    v.insert(pos, x);
}

fn sorted_remove(v: &mut Vec<u64>, x: u64) {
    if let Ok(pos) = v.binary_search(&x) {
        v.remove(pos);
    }
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
    /// Per bucket, what a query checks before opening it, in one compact array.
    summaries: Vec<Summary>,
    /// Distinct regions of the buckets (as registered), indexed by [`Summary::region`].
    region_names: Vec<String>,
}

/// What deciding whether to open a bucket reads, kept apart from the bucket so that a query
/// scans one small array instead of touching every bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Summary {
    /// Live offers.
    live: u32,
    /// Index into `OfferIndex::region_names`.
    region: u32,
    gpu_count: u16,
    max_cpu: u16,
    max_vram: u32,
    max_ram: u32,
    /// Cheapest and median listed GPU-hour price, cheapest mega-unit price (0 when empty).
    min_gpu_hour: u64,
    median_gpu_hour: u64,
    min_mega_unit: u64,
    /// The bounds of the bucket's tree root and tail together (range fields unused).
    bounds: Node,
}

impl Summary {
    fn of(b: &Bucket, region: u32) -> Summary {
        Summary {
            live: b.gpu_hours.len() as u32,
            region,
            gpu_count: b.key.gpu_count,
            max_cpu: b.max_cpu,
            max_vram: b.max_vram,
            max_ram: b.max_ram,
            min_gpu_hour: b.gpu_hours.first().copied().unwrap_or(0),
            median_gpu_hour: b.gpu_hours.get(b.gpu_hours.len() / 2).copied().unwrap_or(0),
            min_mega_unit: b.mega_units.first().copied().unwrap_or(0),
            bounds: {
                let mut n = b.tail;
                if let Some(root) = b.nodes.first() {
                    n.union(root);
                }
                n
            },
        }
    }
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
        let OfferIndex { buckets, slots, .. } = &mut index;
        for b in buckets {
            b.gpu_hours.sort_unstable();
            b.mega_units.sort_unstable();
            b.rebuild(slots);
        }
        for bi in 0..index.buckets.len() {
            index.refresh(bi);
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
            .summaries
            .iter()
            .filter(|s| s.live > 0)
            .map(|s| self.region_names[s.region as usize].clone())
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
                let region = match self.region_names.iter().position(|r| *r == key.region) {
                    Some(r) => r,
                    None => {
                        self.region_names.push(key.region.clone());
                        self.region_names.len() - 1
                    }
                };
                self.bucket_of.insert(key.clone(), b);
                self.buckets.push(Bucket {
                    key,
                    ..Bucket::default()
                });
                self.summaries.push(Summary {
                    region: region as u32,
                    ..Summary::default()
                });
                b
            }
        };
        let pen = offer.penalties();
        let b = &mut self.buckets[bucket as usize];
        b.max_vram = b.max_vram.max(offer.vram_mib());
        b.max_cpu = b.max_cpu.max(offer.hardware.cpu_cores);
        b.max_ram = b.max_ram.max(offer.hardware.ram_gib);
        let (gpu_hour, mega_unit) = (
            price_key(offer.prices.gpu_hour),
            price_key(offer.prices.mega_unit),
        );
        if sorted {
            sorted_insert(&mut b.gpu_hours, gpu_hour);
            sorted_insert(&mut b.mega_units, mega_unit);
        } else {
            b.gpu_hours.push(gpu_hour);
            b.mega_units.push(mega_unit);
        }
        let hot = Hot::new(&offer, &pen, slot);
        b.tail.add(&hot);
        b.hot.push(hot);
        b.tail.end = b.hot.len() as u32;
        let pos = (b.hot.len() - 1) as u32;
        self.by_id.insert(offer.provider, slot);
        self.slots[slot as usize] = Some(Entry {
            offer,
            pen,
            bucket,
            pos,
        });
        let b = &mut self.buckets[bucket as usize];
        if sorted {
            if b.needs_rebuild() {
                b.rebuild(&mut self.slots);
            }
            self.refresh(bucket as usize);
        }
        Ok(())
    }

    /// Recomputes a bucket's summary after it changed.
    fn refresh(&mut self, bi: usize) {
        self.summaries[bi] = Summary::of(&self.buckets[bi], self.summaries[bi].region);
    }

    fn unlink(&mut self, slot: u32) -> Option<Offer> {
        let entry = self.slots[slot as usize].take()?;
        let b = &mut self.buckets[entry.bucket as usize];
        sorted_remove(&mut b.gpu_hours, price_key(entry.offer.prices.gpu_hour));
        sorted_remove(&mut b.mega_units, price_key(entry.offer.prices.mega_unit));
        b.hot[entry.pos as usize].slot = DEAD;
        b.dead += 1;
        if b.needs_rebuild() {
            b.rebuild(&mut self.slots);
        }
        self.refresh(entry.bucket as usize);
        self.by_id.remove(&entry.offer.provider);
        self.free.push(slot);
        Some(entry.offer)
    }

    /// Checks the invariants in the module docs; `Err` describes the first broken one.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut listed = 0usize;
        for (bi, b) in self.buckets.iter().enumerate() {
            let mut gpu_hours = Vec::new();
            let mut mega_units = Vec::new();
            let mut dead = 0;
            for (pos, h) in b.hot.iter().enumerate() {
                if h.slot == DEAD {
                    dead += 1;
                    continue;
                }
                let Some(Some(e)) = self.slots.get(h.slot as usize) else {
                    return Err(format!("bucket {bi} lists empty slot {}", h.slot));
                };
                if e.bucket as usize != bi || e.pos as usize != pos {
                    return Err(format!("slot {} is listed at the wrong place", h.slot));
                }
                if *h != Hot::new(&e.offer, &e.pen, h.slot) || e.pen != e.offer.penalties() {
                    return Err(format!("slot {} has a stale record", h.slot));
                }
                if e.offer.vram_mib() > b.max_vram
                    || e.offer.hardware.cpu_cores > b.max_cpu
                    || e.offer.hardware.ram_gib > b.max_ram
                {
                    return Err(format!("bucket {bi} maxima understate slot {}", h.slot));
                }
                gpu_hours.push(price_key(e.offer.prices.gpu_hour));
                mega_units.push(price_key(e.offer.prices.mega_unit));
            }
            if dead != b.dead {
                return Err(format!(
                    "bucket {bi} counts {} dead records, holds {dead}",
                    b.dead
                ));
            }
            gpu_hours.sort_unstable();
            mega_units.sort_unstable();
            if gpu_hours != b.gpu_hours || mega_units != b.mega_units {
                return Err(format!("bucket {bi} price lists differ from its offers"));
            }
            listed += b.live();
            let region = self.summaries[bi].region;
            if self.region_names.get(region as usize) != Some(&b.key.region)
                || self.summaries[bi] != Summary::of(b, region)
            {
                return Err(format!("bucket {bi} has a stale summary"));
            }
            // The tree covers `[..built]`, leaves at most LEAF records, children partition
            // their parent, every node bounds its records.
            let mut stack = Vec::new();
            if b.built > 0 {
                stack.push((0u32, 0usize, b.built));
            } else if !b.nodes.is_empty() {
                return Err(format!("bucket {bi} has a tree over nothing"));
            }
            while let Some((id, start, end)) = stack.pop() {
                let Some(n) = b.nodes.get(id as usize) else {
                    return Err(format!("bucket {bi} names a missing node {id}"));
                };
                if n.range() != (start..end) {
                    return Err(format!("bucket {bi} node {id} covers the wrong range"));
                }
                if let Some(h) = b.hot[start..end].iter().find(|h| !n.covers(h)) {
                    return Err(format!(
                        "bucket {bi} node {id} does not bound slot {}",
                        h.slot
                    ));
                }
                if n.kids == NO_KIDS {
                    if end - start > LEAF {
                        return Err(format!(
                            "bucket {bi} leaf {id} holds {} records",
                            end - start
                        ));
                    }
                } else {
                    let l = b.nodes.get(n.kids as usize).map(|k| k.end as usize);
                    let Some(mid) = l.filter(|m| (start..end).contains(m) && *m > start) else {
                        return Err(format!("bucket {bi} node {id} has bad children"));
                    };
                    stack.push((n.kids, start, mid));
                    stack.push((n.kids + 1, mid, end));
                }
            }
            if b.tail.range() != (b.built..b.hot.len()) {
                return Err(format!("bucket {bi} tail covers the wrong range"));
            }
            if let Some(h) = b.hot[b.built..].iter().find(|h| !b.tail.covers(h)) {
                return Err(format!("bucket {bi} tail does not bound slot {}", h.slot));
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
        // Per region: whether a required region admits it, and its penalty.
        let regions: Vec<(bool, f64)> = self
            .region_names
            .iter()
            .map(|name| {
                let admitted = match &req.region {
                    RegionPreference::Require(r) => r.eq_ignore_ascii_case(name),
                    _ => true,
                };
                (admitted, req.region_penalty(name))
            })
            .collect();
        // The cheapest listed price of a bucket is the head of its sorted list.
        let over = |cheapest: u64, cap: Option<Amount>| {
            cap.is_some_and(|c| u128::from(cheapest) > c.units())
        };
        let mut out = Vec::new();
        for (model, buckets) in &self.models {
            if let Some(m) = &q.model_lower
                && !model.contains(m.as_str())
            {
                continue;
            }
            for &bi in buckets {
                let s = &self.summaries[bi as usize];
                if s.live == 0
                    || s.gpu_count < req.resources.gpus
                    || over(s.min_gpu_hour, req.max_gpu_hour)
                    || over(s.min_mega_unit, req.max_mega_unit)
                {
                    continue;
                }
                let (admitted, region_pen) = regions[s.region as usize];
                if !admitted {
                    continue;
                }
                let fits = s.max_vram >= req.min_vram_mib
                    && s.max_cpu >= req.resources.cpu_cores
                    && s.max_ram >= req.resources.ram_gib;
                out.push((bi, region_pen, fits));
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
                let s = &self.summaries[bi as usize];
                (u128::from(s.median_gpu_hour), s.live as usize)
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
            self.scan_trees(&q, &buckets, &mut top)
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

    /// Best-first search over the trees of the candidate buckets (see the module docs).
    fn scan_trees(&self, q: &Query<'_>, buckets: &[(u32, f64, bool)], top: &mut TopK) -> usize {
        let ctx = Ctx::new(q);
        let mut heap = BinaryHeap::with_capacity(4 * buckets.len() + 64);
        let push = |heap: &mut BinaryHeap<Pending>, bar: Option<f64>, bi: u32, id: u32, rp| {
            let n = match id {
                WHOLE => &self.summaries[bi as usize].bounds,
                _ => self.buckets[bi as usize].node(id),
            };
            if (id != WHOLE && n.start == n.end) || !ctx.node_may_pass(n) {
                return;
            }
            let bound = ctx.node_bound(q, n, rp);
            if bar.is_some_and(|bar| bound > bar) {
                return;
            }
            heap.push(Pending {
                bound,
                bucket: bi,
                node: id,
                region_pen: rp,
            });
        };
        for &(bi, rp, fits) in buckets {
            if fits {
                push(&mut heap, None, bi, WHOLE, rp);
            }
        }
        let mut evaluated = 0;
        while let Some(p) = heap.pop() {
            if top.bar().is_some_and(|bar| p.bound > bar) {
                break; // every bound left is at least this one
            }
            let b = &self.buckets[p.bucket as usize];
            if p.node == WHOLE {
                if !b.nodes.is_empty() {
                    push(&mut heap, top.bar(), p.bucket, 0, p.region_pen);
                }
                push(&mut heap, top.bar(), p.bucket, TAIL, p.region_pen);
                continue;
            }
            let n = b.node(p.node);
            if n.kids != NO_KIDS {
                push(&mut heap, top.bar(), p.bucket, n.kids, p.region_pen);
                push(&mut heap, top.bar(), p.bucket, n.kids + 1, p.region_pen);
                continue;
            }
            for h in &b.hot[n.range()] {
                if !ctx.may_pass(h) {
                    continue;
                }
                if top
                    .bar()
                    .is_some_and(|bar| ctx.bound(q, h, p.region_pen) > bar)
                {
                    continue;
                }
                evaluated += 1;
                self.consider(q, h.slot, p.region_pen, top);
            }
        }
        evaluated
    }
}
