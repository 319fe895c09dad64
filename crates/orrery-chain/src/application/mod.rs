//! Block building and verification: the [`commonware_consensus::Application`] that marshal's
//! inline wrapper drives.
//!
//! # Proposing (the leader of view `v`, building on a parent certified in view `p`)
//! 1. Seed: `seed(p)` is the threshold seed of view `p`, carried by the certificate the leader
//!    builds on; `block.seed = H("orrery/block-seed", seed(p))` and the block carries `seed(p)`
//!    as its proof. A block built on genesis uses [`crate::block::genesis_seed`].
//! 2. Time: `max(local clock, parent.time_ms)`, after waiting until `parent.time_ms +
//!    block_interval` so that a block collects transactions for at least one interval.
//! 3. Transactions: from the mempool in round-robin order (see [`crate::mempool`]), skipping
//!    what not-yet-finalized ancestors already carry, at most `max_block_txs` transactions and
//!    `max_block_bytes` bytes.
//!
//! # Verifying (every validator, before voting to notarize)
//! A block is refused (the validator votes to skip the view instead) if any of these fail:
//! height is the parent's plus one; `parent` is the parent's hash; time is not below the
//! parent's nor more than [`MAX_FUTURE_DRIFT_MS`] ahead of the local clock; the block holds at
//! most `max_block_txs` transactions (bytes were bounded when it decoded); the seed proof is
//! the threshold seed of exactly the parent's view, verifies under the group identity, and
//! hashes to `block.seed`; every transaction signature verifies. Transaction *semantics*
//! (nonces, balances) are not a block-validity rule: the ledger refuses a bad transaction
//! individually with a receipt, exactly as on every other node.

use crate::block::{BlockDigest, ChainBlock, genesis_seed, seed_from};
use crate::config::{MAX_FUTURE_DRIFT_MS, SEED_WAIT};
use crate::engine::Scheme;
use crate::mempool::Mempool;
use crate::seeds::Seeds;
use commonware_consensus::Application;
use commonware_consensus::marshal::ancestry::Ancestry;
use commonware_consensus::simplex::types::Context;
use commonware_consensus::types::View;
use commonware_cryptography::{Digested, Digestible as _, ed25519};
use commonware_macros::select;
use commonware_runtime::Clock;
use futures::StreamExt as _;
use orrery_store::Ledger;
use orrery_types::block::Block;
use orrery_types::hash::Hash;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, UNIX_EPOCH};

/// Why a proposed block is invalid.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidBlock {
    /// Height does not follow the parent.
    #[error("height {got} does not follow parent height {parent}")]
    Height {
        /// Parent's height.
        parent: u64,
        /// The block's.
        got: u64,
    },
    /// Parent hash mismatch.
    #[error("parent {got} is not the certified parent {expected}")]
    Parent {
        /// The certified parent.
        expected: Hash,
        /// The block's.
        got: Hash,
    },
    /// Time before the parent's.
    #[error("time {got} ms is before the parent's {parent} ms")]
    TimeBackwards {
        /// Parent's time.
        parent: u64,
        /// The block's.
        got: u64,
    },
    /// Time too far ahead.
    #[error(
        "time {got} ms is more than {MAX_FUTURE_DRIFT_MS} ms ahead of the local clock {now} ms"
    )]
    TimeAhead {
        /// Local clock.
        now: u64,
        /// The block's.
        got: u64,
    },
    /// Too many transactions.
    #[error("{got} transactions exceed the limit of {max}")]
    TooManyTxs {
        /// Limit.
        max: usize,
        /// The block's.
        got: usize,
    },
    /// The seed or its proof is wrong.
    #[error("bad seed: {0}")]
    Seed(&'static str),
    /// A transaction signature is bad.
    #[error("transaction {0} has a bad signature")]
    Signature(usize),
}

/// Limits and identity the application needs.
#[derive(Clone)]
pub struct AppConfig {
    /// Group identity bytes (for the genesis seed).
    pub identity: Vec<u8>,
    /// Verifies seeds against the group identity.
    pub seed_verifier: Scheme,
    /// Wait after the parent's time before proposing.
    pub block_interval: Duration,
    /// Most transactions per block.
    pub max_block_txs: usize,
    /// Most ledger-block bytes per block (transactions' encoded bytes).
    pub max_block_bytes: usize,
}

/// The application: shared by clones.
#[derive(Clone)]
pub struct App {
    pub(crate) config: Arc<AppConfig>,
    pub(crate) ledger: Arc<RwLock<Ledger>>,
    pub(crate) mempool: Arc<Mutex<Mempool>>,
    pub(crate) seeds: Seeds,
    /// Blocks whose signatures this node verified (by digest), so the finalizer can skip a
    /// second check. Entries are removed when the block is finalized or pruned below it.
    pub(crate) verified: Arc<Mutex<HashMap<BlockDigest, u64>>>,
}

/// Milliseconds since the Unix epoch on `clock`.
pub fn now_ms(clock: &impl Clock) -> u64 {
    clock
        .current()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl App {
    /// Check everything about `block` that does not depend on ledger state (see module docs).
    pub fn check(
        &self,
        block: &ChainBlock,
        parent: &ChainBlock,
        parent_view: View,
        now_ms: u64,
    ) -> Result<(), InvalidBlock> {
        let b = &block.block;
        let p = &parent.block;
        if b.height != p.height + 1 {
            return Err(InvalidBlock::Height {
                parent: p.height,
                got: b.height,
            });
        }
        if b.parent != parent.hash() {
            return Err(InvalidBlock::Parent {
                expected: parent.hash(),
                got: b.parent,
            });
        }
        if b.time_ms < p.time_ms {
            return Err(InvalidBlock::TimeBackwards {
                parent: p.time_ms,
                got: b.time_ms,
            });
        }
        if b.time_ms > now_ms.saturating_add(MAX_FUTURE_DRIFT_MS) {
            return Err(InvalidBlock::TimeAhead {
                now: now_ms,
                got: b.time_ms,
            });
        }
        if b.txs.len() > self.config.max_block_txs {
            return Err(InvalidBlock::TooManyTxs {
                max: self.config.max_block_txs,
                got: b.txs.len(),
            });
        }
        match (&block.seed_proof, p.height) {
            (None, 0) => {
                if b.seed != genesis_seed(&self.config.identity) {
                    return Err(InvalidBlock::Seed(
                        "a block on genesis must use the genesis seed",
                    ));
                }
            }
            (None, _) => return Err(InvalidBlock::Seed("missing seed proof")),
            (Some(_), 0) => return Err(InvalidBlock::Seed("a block on genesis has no seed proof")),
            (Some(proof), _) => {
                if proof.round.view() != parent_view {
                    return Err(InvalidBlock::Seed(
                        "seed proof is not for the parent's view",
                    ));
                }
                if !proof.verify(&self.config.seed_verifier) {
                    return Err(InvalidBlock::Seed(
                        "seed proof does not verify under the group key",
                    ));
                }
                if b.seed != seed_from(proof) {
                    return Err(InvalidBlock::Seed("seed is not the hash of its proof"));
                }
            }
        }
        orrery_ledger::verify_block_signatures(b).map_err(InvalidBlock::Signature)?;
        Ok(())
    }

    /// Build the block for a leader (see module docs). `pending` are the ancestors above the
    /// finalized height, newest first.
    pub fn build(
        &self,
        parent: &ChainBlock,
        pending: &[Digested<ChainBlock>],
        proof: Option<crate::block::ViewSeed>,
        now_ms: u64,
    ) -> ChainBlock {
        let seed = match &proof {
            Some(p) => seed_from(p),
            None => genesis_seed(&self.config.identity),
        };
        // Nonces the parent state will expect, and what the ancestors already carry.
        let mut next: HashMap<orrery_types::crypto::AccountId, u64> = HashMap::new();
        let mut skip = HashSet::new();
        for b in pending.iter().rev() {
            for tx in b.inner().block.txs.as_slice() {
                skip.insert(tx.hash());
                let n = next.entry(tx.sender()).or_insert(0);
                *n = (*n).max(tx.tx.nonce + 1);
            }
        }
        let txs = {
            let ledger = crate::lock::read(&self.ledger);
            let state = ledger.state();
            let mut pool = crate::lock::lock(&self.mempool);
            pool.select(
                |a| {
                    let finalized = state.account(a).nonce;
                    next.get(a).map_or(finalized, |n| (*n).max(finalized))
                },
                &skip,
                self.config.max_block_txs,
                // Leave room for the header and length prefixes.
                self.config.max_block_bytes.saturating_sub(1024),
            )
        };
        let block = Block {
            height: parent.block.height + 1,
            time_ms: now_ms.max(parent.block.time_ms),
            seed,
            parent: parent.hash(),
            // `select` never returns more than `max_block_txs` ≤ MAX_BLOCK_TXS.
            txs: orrery_types::block::BlockTxs::new(txs).unwrap_or_default(),
        };
        ChainBlock::new(block, proof)
    }
}

impl<E: Clock + Send + Sync + 'static> Application<E> for App {
    type SigningScheme = Scheme;
    type Context = Context<BlockDigest, ed25519::PublicKey>;
    type Block = ChainBlock;
    type Input = ();

    async fn propose(
        &mut self,
        (clock, context): (E, Self::Context),
        mut ancestry: impl Ancestry<Self::Block>,
        _input: (),
    ) -> Option<Digested<Self::Block>> {
        let parent = ancestry.next().await?;
        let (parent_view, _) = context.parent;
        let proof = if parent.inner().block.height == 0 {
            None
        } else {
            let seeds = self.seeds.clone();
            select! {
                seed = seeds.wait(parent_view) => Some(seed),
                _ = clock.sleep(SEED_WAIT) => {
                    tracing::warn!(view = parent_view.get(), "no seed for the parent's view; not proposing");
                    return None;
                },
            }
        };
        // Let transactions collect for one interval after the parent.
        let due = parent
            .inner()
            .block
            .time_ms
            .saturating_add(self.config.block_interval.as_millis() as u64);
        let now = now_ms(&clock);
        if now < due {
            clock.sleep(Duration::from_millis(due - now)).await;
        }
        // Ancestors that are not finalized yet: their transactions are in flight.
        let finalized = crate::lock::read(&self.ledger).state().height();
        let mut pending = Vec::new();
        let mut cursor = parent.clone();
        while cursor.inner().block.height > finalized {
            pending.push(cursor);
            match ancestry.next().await {
                Some(b) => cursor = b,
                None => break,
            }
        }
        let block = self.build(parent.inner(), &pending, proof, now_ms(&clock));
        tracing::debug!(
            height = block.block.height,
            txs = block.block.txs.len(),
            view = context.round.view().get(),
            "proposing"
        );
        let digest = block.digest();
        crate::lock::lock(&self.verified).insert(digest, block.block.height);
        Some(Digested::precomputed(block, digest))
    }

    async fn verify(
        &mut self,
        (clock, context): (E, Self::Context),
        mut ancestry: impl Ancestry<Self::Block>,
    ) -> bool {
        let Some(block) = ancestry.next().await else {
            return false;
        };
        let Some(parent) = ancestry.next().await else {
            return false;
        };
        match self.check(
            block.inner(),
            parent.inner(),
            context.parent.0,
            now_ms(&clock),
        ) {
            Ok(()) => {
                crate::lock::lock(&self.verified)
                    .insert(block.digest(), block.inner().block.height);
                true
            }
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    height = block.inner().block.height,
                    view = context.round.view().get(),
                    leader = %context.leader,
                    "refusing proposed block"
                );
                false
            }
        }
    }
}
