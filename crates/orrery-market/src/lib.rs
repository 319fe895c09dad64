//! The offer index and the router: which providers should run a job, and why.
//!
//! # What it does
//!
//! - [`OfferIndex`] holds every live [`Offer`]: what the chain records about a provider
//!   (hardware, region, prices, stake, reputation — [`OfferIndex::from_providers`] reads them
//!   from `orrery_ledger::State::providers()`) plus what only the caller measures (benchmark
//!   score, last-seen time, latency — [`OfferIndex::observe`]). [`OfferIndex::upsert`] and
//!   [`OfferIndex::remove`] keep it current block by block.
//! - [`OfferIndex::rank`] returns the best offers for a job's [`Requirements`], each a
//!   [`Ranked`] carrying its cost, its score [`Breakdown`] and a sentence explaining it. When
//!   nothing qualifies, the [`RouteError`] names the requirement that no provider meets, found
//!   by relaxing the requirements one at a time.
//! - [`select_cluster`] picks `N` distinct providers for one job: one region if possible, else
//!   the nearest regions, else the cheapest mix.
//! - [`format_table`] renders ranked offers for a terminal.
//! - [`ModelRouter`] ranks the providers of an inference model name (see [`models`]).
//! - [`reference`] is the one catalog of public cloud prices (per GPU-hour, vCPU-hour and
//!   million tokens) that the explorer and the simulator set the network's prices beside.
//!
//! The filters and the score (an *effective cost*: the job's price times one plus weighted
//! penalties, see [`RouterWeights`]) are specified in [`router`]; the search, and why it returns
//! exactly what a linear scan returns, in [`index`]; clusters in [`cluster`].
//!
//! # What it never does
//!
//! It decides nothing on chain: the ledger checks stake, prices and verification again when a
//! lease is opened, so a wrong ranking costs a requester a worse deal, never a broken rule. It
//! does no I/O, reads no clock and draws no randomness: every time, latency and benchmark comes
//! from the caller, so results are a pure function of the index and the query.

pub mod cluster;
pub mod index;
pub mod models;
pub mod offer;
pub mod reference;
pub mod router;
pub mod table;

pub use cluster::{Cluster, RegionLatency, select_cluster};
pub use index::{IndexFull, OfferIndex, Routing};
pub use models::{
    ModelCandidate, ModelQuery, ModelRouteError, ModelRouter, ModelWeights, ProviderLoad,
    RankedModel,
};
pub use offer::{Offer, StaticPenalties};
pub use router::{
    Breakdown, Ranked, RegionPreference, Requirement, Requirements, RouteError, RouterWeights,
    Unmet,
};
pub use table::format_table;
