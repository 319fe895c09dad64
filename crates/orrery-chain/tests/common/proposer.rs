//! A Byzantine proposer, as a mock actor in test code (after commonware's `simplex/mocks/`):
//! it wraps a validator's honest block builder, [`orrery_chain::application::App`], and
//! corrupts every block the builder returns before consensus broadcasts it. It votes and
//! applies finalized blocks like an honest validator; only its proposals lie.
//!
//! Every corrupted block's hash is written to a [`Lies`] log, so a test can assert that no
//! honest validator ever finalizes one of them.

use commonware_consensus::Application;
use commonware_consensus::Handoff;
use commonware_consensus::marshal::ancestry::Ancestry;
use commonware_consensus::simplex::types::Context;
use commonware_cryptography::{Digested, Digestible as _, ed25519};
use commonware_runtime::Clock;
use futures::StreamExt as _;
use orrery_chain::application::App;
use orrery_chain::block::{BlockDigest, ChainBlock};
use orrery_chain::engine::Scheme;
use orrery_types::block::{Block, BlockTxs};
use orrery_types::crypto::Keypair;
use orrery_types::hash::Hash;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// How a Byzantine proposer breaks the blocks it builds. Each breaks a different rule of
/// `App::check`, so an honest validator must refuse every one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Corruption {
    /// A seed of the proposer's choosing instead of the threshold seed's hash.
    ChosenSeed,
    /// One more transaction whose signature does not cover its nonce.
    ForgedTx,
    /// A time before the parent's (or, on a parent at time 0, an hour past the drift allowed).
    BackInTime,
    /// A parent hash that is not the certified parent.
    WrongParent,
    /// A height that skips one.
    WrongHeight,
}

impl Corruption {
    pub const ALL: [Corruption; 5] = [
        Corruption::ChosenSeed,
        Corruption::ForgedTx,
        Corruption::BackInTime,
        Corruption::WrongParent,
        Corruption::WrongHeight,
    ];

    /// Break `block`, built on a parent of time `parent_time_ms`, this way.
    pub fn apply(self, block: &mut Block, parent_time_ms: u64) {
        match self {
            Corruption::ChosenSeed => block.seed = chosen_seed(),
            Corruption::ForgedTx => {
                let mut txs = block.txs.as_slice().to_vec();
                txs.push(forged());
                // One more than the builder's limit can exceed the codec's bound only in a
                // full block; then the lie is the seed instead.
                match BlockTxs::new(txs) {
                    Ok(txs) => block.txs = txs,
                    Err(_) => block.seed = chosen_seed(),
                }
            }
            // A parent at time 0 (genesis in tests) leaves no earlier time: go too far ahead.
            Corruption::BackInTime => match parent_time_ms.checked_sub(1) {
                Some(before) => block.time_ms = before,
                None => block.time_ms = block.time_ms.saturating_add(3_600_000),
            },
            Corruption::WrongParent => block.parent = Hash::of(b"elsewhere"),
            Corruption::WrongHeight => block.height += 1,
        }
    }
}

/// The seed [`Corruption::ChosenSeed`] writes.
pub fn chosen_seed() -> Hash {
    Hash::of(b"the proposer's favourite seed")
}

/// A transfer signed over nonce 0 but carrying nonce 1,000.
pub fn forged() -> orrery_types::tx::SignedTx {
    let mut tx = super::transfer(&super::users(1)[0], 0, &Keypair::from_seed(1), 1_000);
    tx.tx.nonce = 1_000;
    tx
}

/// What a Byzantine proposer did: the hashes of the blocks it corrupted.
#[derive(Clone, Default)]
pub struct Lies(Arc<Mutex<BTreeSet<Hash>>>);

impl Lies {
    /// Blocks corrupted so far.
    pub fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// Whether `block` is one of the corrupted blocks.
    pub fn told(&self, block: &Hash) -> bool {
        self.0.lock().unwrap().contains(block)
    }
}

/// The mock: the honest builder, then `corruption`.
#[derive(Clone)]
pub struct Proposer {
    pub honest: App,
    pub corruption: Corruption,
    pub lies: Lies,
}

impl<E: Clock + Send + Sync + 'static> Application<E> for Proposer {
    type SigningScheme = Scheme;
    type Context = Context<BlockDigest, ed25519::PublicKey>;
    type Block = ChainBlock;
    type Input = ();

    async fn prepare(
        &mut self,
        context: (E, Self::Context),
        ancestry: impl Ancestry<Self::Block>,
        input: (),
    ) -> Handoff<Digested<Self::Block>> {
        // The honest builder never builds on an uncertified parent; forward its answer.
        Application::<E>::prepare(&mut self.honest, context, ancestry, input).await
    }

    async fn propose(
        &mut self,
        context: (E, Self::Context),
        ancestry: impl Ancestry<Self::Block>,
        input: (),
    ) -> Option<Digested<Self::Block>> {
        let parent_time_ms = ancestry.clone().next().await?.inner().block.time_ms;
        let honest = Application::<E>::propose(&mut self.honest, context, ancestry, input).await?;
        let mut block = honest.inner().block.clone();
        self.corruption.apply(&mut block, parent_time_ms);
        let lie = ChainBlock::new(block, honest.inner().seed_proof.clone());
        self.lies.0.lock().unwrap().insert(lie.hash());
        let digest = lie.digest();
        Some(Digested::precomputed(lie, digest))
    }

    async fn verify(
        &mut self,
        context: (E, Self::Context),
        ancestry: impl Ancestry<Self::Block>,
    ) -> bool {
        Application::<E>::verify(&mut self.honest, context, ancestry).await
    }
}
