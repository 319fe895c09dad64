//! The Orrery node daemon's serving side: the HTTP API over a validator's finalized chain, the
//! node-local index, the content-addressed blob store, the live block stream and metrics.
//!
//! # What a node promises
//! - **Reads are of finalized state only.** State endpoints read the chain's last finalized
//!   [`orrery_ledger::State`]; history endpoints read the [`index`], which is fed only by
//!   finalized blocks, in height order, one atomic write per block.
//! - **Every input is adversarial.** Bodies are bounded per route before they are read;
//!   transactions are decoded with the protocol's bounds and checked (signature, chain, nonce)
//!   before they reach the mempool; blobs are hashed as they stream in and only stored under
//!   the hash they actually have. Every refusal is a JSON `{"error", "code"}` with the right
//!   status, and no request can panic the node.
//! - **Bounded resources.** Per-IP token buckets, a cap on requests in flight, a request
//!   timeout, a cap on stream clients and a bounded queue per client ([`config::Limits`]).
//! - **Any blob from any node.** A blob this node lacks is fetched from its peer nodes,
//!   checked against its hash and stored like an upload; a client's upload is pushed to the
//!   blob's home peers. Requests between nodes are never passed on ([`peers`]).
//! - **Restart-safe.** The index remembers its height and re-indexes missed blocks from the
//!   chain's storage on start; blob writes are atomic (temp file, fsync, rename).
//!
//! # Where to start
//! [`serve`] wires everything; [`backend::Backend`] is what it needs from the chain; [`api`]
//! holds the routes (also described by the OpenAPI document at `/openapi.json` and in
//! `docs/api.md`); [`blobs`] and [`index`] are the two stores; [`peers`] gets blobs from other
//! nodes.

pub mod api;
pub mod backend;
pub mod blobs;
#[cfg(feature = "chain")]
pub mod chain;
pub mod config;
pub mod error;
pub mod events;
pub mod explorer;
pub mod gateway;
pub mod index;
pub mod inference;
pub mod limits;
pub mod metrics;
pub mod params;
pub mod peers;
pub mod server;

pub use backend::{Backend, BackendError, Finalized, RejectKind, SubmitRejection};
#[cfg(feature = "chain")]
pub use chain::{run_node, start_node};
pub use config::{BlobConfig, GatewayConfig, Limits, NodeConfig, PeerConfig};
pub use server::{NodeError, RunningNode, serve};
