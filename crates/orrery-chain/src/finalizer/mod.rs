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
//! A finalized block that the ledger refuses means consensus and the ledger disagree (a bug or
//! a corrupted database): the finalizer logs it and stops acknowledging, which halts this node
//! rather than letting it diverge from the others.

mod actor;
mod ingress;

pub(crate) use actor::Actor;
pub(crate) use ingress::Mailbox;
