//! The ledger: Orrery's deterministic state machine.
//!
//! It holds every balance, provider stake, unbonding entry and lease escrow, and changes them
//! only by applying blocks ([`apply_block`]). It never does I/O, never reads a clock, and uses no
//! randomness but the seed a block carries, so every node that applies the same blocks from the
//! same [`Genesis`] reaches the same state and the same [`State::root`].
//!
//! Where to start reading: [`apply`] (the rules of each transaction and of the end of a block),
//! then [`verify`] (sealed results, random checks, bisection disputes and slashing) and
//! [`referee`] (the one-step re-execution that ends a dispute), then [`state`] (the state root
//! and the supply invariant), then [`entries`] (the records). [`inference`] specifies model
//! offers, API keys, voucher settlement and the sampled checks of inference responses;
//! [`cluster`] specifies cluster training leases (one escrow, N members, checkable rounds).
//! The protocol is specified in `docs/protocol.md`; the parameters in `docs/economics.md`.

pub mod apply;
pub mod challenge;
pub mod cluster;
pub mod entries;
pub mod inference;
pub mod params;
pub mod receipt;
pub mod referee;
pub mod state;
pub mod verify;

pub use apply::{
    Signatures, apply_block, apply_block_with, execute_block, execute_block_with,
    verify_block_signatures,
};
pub use params::{Genesis, GenesisAccount, GenesisError, Params};
pub use receipt::{BlockError, BlockOutcome, Event, MissReason, Receipt, TxError};
pub use state::{InvariantError, LoadError, State, StateChange, StateKey, StateProof};

#[cfg(test)]
mod tests;
