//! The finalizer's run loop. See the module docs.

use crate::api::{Finalized, Live};
use crate::block::{BlockDigest, ChainBlock};
use crate::mempool::Mempool;
use commonware_consensus::marshal::Update;
use commonware_cryptography::Digestible as _;
use commonware_runtime::{Clock, Spawner};
use commonware_utils::Acknowledgement as _;
use futures::StreamExt as _;
use futures::channel::mpsc;
use orrery_ledger::Signatures;
use orrery_store::Ledger;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::broadcast;

/// The finalizer actor.
pub(crate) struct Actor<E> {
    /// Spawns each block's apply-and-persist as a blocking task, off the async executor.
    pub(crate) context: E,
    pub(crate) ledger: Arc<RwLock<Ledger>>,
    pub(crate) mempool: Arc<Mutex<Mempool>>,
    pub(crate) verified: Arc<Mutex<HashMap<BlockDigest, u64>>>,
    pub(crate) finalized: broadcast::Sender<Arc<Finalized>>,
    pub(crate) live: Arc<Live>,
    pub(crate) receiver: mpsc::UnboundedReceiver<Update<ChainBlock>>,
    /// Highest finalized height marshal has reported (it may not be applied yet).
    pub(crate) tip: u64,
}

impl<E: Spawner + Clock + Send + 'static> Actor<E> {
    /// Run until marshal goes away or a finalized block cannot be applied.
    pub(crate) async fn run(mut self) {
        while let Some(update) = self.receiver.next().await {
            match update {
                Update::Tip(_, height, _) => {
                    self.tip = self.tip.max(height.get());
                    let applied = crate::lock::read(&self.ledger).state().height();
                    self.mark_syncing(applied);
                }
                Update::Block(block, ack) => {
                    let height = block.inner().block.height;
                    let digest = block.digest();
                    let mut attempt = 0u32;
                    let mut block = block;
                    let result = loop {
                        // Applying runs the ledger and waits for an fsync: a blocking task, so
                        // the consensus tasks sharing this executor keep running meanwhile.
                        let context = self.context.child("apply").shared(true);
                        let applied = context
                            .spawn(move |_| async move {
                                let result = self.apply(block.inner());
                                (self, block, result)
                            })
                            .await;
                        let Ok((actor, returned, result)) = applied else {
                            // The apply task was aborted: this validator is shutting down.
                            return;
                        };
                        self = actor;
                        block = returned;
                        match result {
                            Err(e) if is_host_failure(&e) => {
                                // The host failed (the referee's runtime, memory, the disk),
                                // not the block: the ledger went back to its stored state, so
                                // the same block is retried, never skipped or ruled on.
                                let wait = retry_wait(attempt);
                                attempt = attempt.saturating_add(1);
                                tracing::warn!(
                                    error = %e,
                                    height,
                                    attempt,
                                    wait_ms = wait.as_millis() as u64,
                                    "a finalized block failed on this host; retrying it"
                                );
                                self.context.sleep(wait).await;
                            }
                            other => break other,
                        }
                    };
                    if let Err(e) = result {
                        tracing::error!(
                            error = %e,
                            height,
                            digest = %digest,
                            "a finalized block does not apply to the ledger; halting this node's chain (restore the database or resync)"
                        );
                        // Holding the acknowledgement stalls marshal: this node stops rather
                        // than diverging from the committee.
                        std::future::pending::<()>().await;
                    }
                    ack.acknowledge();
                }
            }
        }
    }

    fn apply(&mut self, chain_block: &ChainBlock) -> Result<(), orrery_store::StoreError> {
        let block = &chain_block.block;
        let digest = chain_block.digest();
        let checked = crate::lock::lock(&self.verified).remove(&digest).is_some();
        let ledger = crate::lock::write(&self.ledger);
        let height = ledger.state().height();
        if block.height <= height {
            tracing::debug!(height = block.height, "already applied");
            return Ok(());
        }
        // Signatures are checked here (batch) unless this node verified the block before
        // voting; `apply` then skips them.
        if !checked && let Err(index) = orrery_ledger::verify_block_signatures(block) {
            // A finalized block with a forged transaction: apply it with per-transaction
            // verification, so the forged transaction is refused by the ledger like any other.
            tracing::warn!(
                height = block.height,
                index,
                "finalized block carries a bad signature"
            );
            return self.finish(ledger, chain_block, Signatures::Verify);
        }
        self.finish(ledger, chain_block, Signatures::PreVerified)
    }

    /// Syncing while more than one finalized block is known but not yet applied (one is the
    /// normal in-flight block).
    fn mark_syncing(&self, applied: u64) {
        self.live
            .syncing
            .store(self.tip > applied + 1, Ordering::Relaxed);
    }

    fn finish(
        &self,
        mut ledger: std::sync::RwLockWriteGuard<'_, Ledger>,
        chain_block: &ChainBlock,
        signatures: Signatures,
    ) -> Result<(), orrery_store::StoreError> {
        let block = &chain_block.block;
        let outcome = ledger.apply(block, signatures)?;
        // The ledger checked the supply invariant before accepting the block; check it again on
        // what was persisted so a ledger bug is loud here too.
        if let Err(e) = ledger.state().check_supply() {
            tracing::error!(error = %e, height = block.height, "supply invariant broken after apply");
        }
        crate::lock::lock(&self.mempool).finalized(ledger.state(), block.txs.as_slice());
        drop(ledger);
        {
            // Forget verification marks for blocks that can no longer finalize.
            let mut verified = crate::lock::lock(&self.verified);
            verified.retain(|_, h| *h > block.height);
        }
        self.mark_syncing(block.height);
        tracing::info!(
            height = block.height,
            txs = block.txs.len(),
            root = %outcome.state_root,
            "finalized"
        );
        // No subscribers is fine.
        let _ = self.finalized.send(Arc::new(Finalized {
            block: block.clone(),
            block_hash: chain_block.hash(),
            receipts: outcome.receipts,
            events: outcome.events,
            state_root: outcome.state_root,
        }));
        Ok(())
    }
}

/// Whether `e` came from this host rather than from the block: the referee's runtime could not
/// run (or ran out of host memory), or the database could not be written. Every other
/// validator applies the block; this one retries it until the host recovers.
fn is_host_failure(e: &orrery_store::StoreError) -> bool {
    matches!(
        e,
        orrery_store::StoreError::Block(orrery_ledger::BlockError::RefereeHost { .. })
            | orrery_store::StoreError::Db { .. }
    )
}

/// The wait before retry `attempt` (0-based) of a block that failed on this host: 100 ms,
/// doubling, at most 30 s.
fn retry_wait(attempt: u32) -> std::time::Duration {
    let ms = 100u64.saturating_mul(1u64 << attempt.min(16));
    std::time::Duration::from_millis(ms.min(30_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_failures_are_retried_with_a_capped_backoff_and_ledger_refusals_are_not() {
        assert_eq!(retry_wait(0).as_millis(), 100);
        assert_eq!(retry_wait(3).as_millis(), 800);
        assert_eq!(retry_wait(40).as_secs(), 30);
        let host = orrery_store::StoreError::Block(orrery_ledger::BlockError::RefereeHost {
            index: 0,
            reason: "out of memory".into(),
        });
        assert!(is_host_failure(&host));
        let corrupt = orrery_store::StoreError::CorruptBlock(3);
        assert!(!is_host_failure(&corrupt));
    }
}
