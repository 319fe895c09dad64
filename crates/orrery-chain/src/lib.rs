//! Orrery's validators: commonware threshold-simplex consensus ordering Orrery blocks, a
//! mempool, block building and verification, and finalized blocks applied to the ledger.
//!
//! # Flow
//! ```text
//! Handle::submit ──▶ mempool ──▶ App::propose (leader) ──▶ marshal broadcast ──▶ App::verify (all)
//!                                                                                   │ votes
//!     subscribers ◀── finalizer (Ledger::apply, persist) ◀── marshal (ordered) ◀── simplex finalization
//! ```
//!
//! # Invariants
//! - Only finalized blocks touch the ledger, each exactly once and in height order.
//! - Every validator applies the same blocks with the same pure function, so all reach the
//!   same state root at each height; the supply invariant is checked after every block.
//! - A block's seed is the hash of the threshold seed of the view its parent was certified in
//!   (see `docs/protocol.md`, "Consensus and randomness").
//!
//! Start with [`api`] (what the node uses), then [`application`] (the block rules) and
//! [`engine`] (the wiring).

pub mod api;
pub mod application;
pub mod block;
pub mod config;
pub mod devnet;
pub mod engine;
mod finalizer;
pub mod gossip;
pub mod mempool;
pub mod network;
pub mod seeds;

mod liveness;
mod lock;

pub use api::{ChainError, ChainStatus, Finalized, Handle, SubmitError};
pub use config::{PeerConfig, Validator, ValidatorConfig};
pub use engine::{Channels, start_with, start_with_application, start_with_ledger};
pub use mempool::{Mempool, MempoolLimits};
pub use network::start;
