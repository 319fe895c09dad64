//! Orrery's validators: commonware threshold-simplex consensus ordering Orrery blocks, a
//! mempool, block building and verification, and finalized blocks applied to the ledger.
//!
//! Start with [`api`] (what the node uses) and the crate README.

pub mod api;
pub mod mempool;

mod lock;

pub use api::{ChainError, ChainStatus, Finalized, Handle, SubmitError};
pub use mempool::{Mempool, MempoolLimits};
