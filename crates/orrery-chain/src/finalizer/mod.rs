//! The finalizer: applies finalized blocks to the ledger, in order, exactly once.
//!
//! Marshal delivers each finalized block at least once, in height order, and waits for an
//! acknowledgement before counting it delivered. The finalizer:
//! 1. acknowledges at once a block at or below the ledger's height (a redelivery after a
//!    restart: it is already applied and persisted);
//! 2. otherwise checks every transaction signature (unless this node verified the block
//!    before voting), applies the block with `orrery_store::Ledger::apply` — which checks the
//!    header against the ledger, runs the transactions, checks the supply invariant and persists
//!    the block and its state changes in one atomic write — then prunes the mempool, publishes
//!    a [`crate::Finalized`] to subscribers and only then acknowledges.
//!
//! A block that fails on this host — the referee's runtime cannot start or runs out of host
//! memory (`BlockError::RefereeHost`), or the database cannot be written — is not the block's
//! fault: the store has gone back to its last persisted state, and the finalizer retries the
//! same block with a backoff (100 ms doubling to 30 s) until it applies, never acknowledging
//! it before. No other outcome is possible for it here, so no validator rules differently.
//!
//! A finalized block that the ledger refuses means consensus and the ledger disagree (a bug or
//! a corrupted database): the finalizer logs it and stops acknowledging, which halts this node
//! rather than letting it diverge from the others.

mod actor;
mod ingress;

pub(crate) use actor::Actor;
pub(crate) use ingress::Mailbox;
