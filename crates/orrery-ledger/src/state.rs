//! The ledger's state, its commitment (the state root) and its conservation invariant.
//!
//! # The state root
//!
//! Every record is an entry `key -> value` ([`StateKey`], canonical encodings from
//! [`crate::entries`]). An entry's leaf is `H("orrery/state" || key || value)`. Entries are
//! spread over [`NUM_BUCKETS`] buckets by `H(key)`; a bucket's root is the Merkle root of its
//! leaves sorted by key, and the state root is the Merkle root of the bucket roots. Only the
//! buckets touched by a block are recomputed, so the cost per block grows with what the block
//! changed, not with the size of the state: the tree over the bucket roots is kept, and each
//! changed bucket rehashes its path of `log2(NUM_BUCKETS)` = 16 nodes. A changed bucket's own root
//! is recomputed from its leaves, so buckets must stay small: 65,536 of them hold about 15
//! entries each at a million providers (4,096 held 244, which made the root 2× dearer per
//! block at 1M providers than at 1k; `benches/challenges.rs` measures it).
//!
//! # Conservation
//!
//! Every token unit sits in exactly one place: an account balance, a provider stake, an
//! unbonding entry, a lease's escrow, an inference key's deposit or an inference batch's hold.
//! The state keeps running totals of each, updated by the only functions that move tokens, and
//! checks after every block that
//! `balances + stakes + unbonding + escrow + deposits + holds == genesis + minted − burned`. [`State::audit`]
//! recounts everything from scratch to check the running totals themselves.

use crate::entries::{
    Account, BatchPhase, ChainConfig, Challenge, ClusterLease, ClusterPhase, ClusterRound, Globals,
    InferenceBatch, InferenceChannel, InferenceKey, Lease, MemberStatus, Provider,
};
use crate::params::{Genesis, Params};
use orrery_types::amount::Amount;
use orrery_types::codec::{self, BoundedVec, DecodeError};
use orrery_types::crypto::AccountId;
use orrery_types::hash::{Hash, HashWriter};
use orrery_types::inference::ModelOffer;
use orrery_types::merkle::{MerkleProof, MerkleTree, leaf_hash, merkle_root, node_hash};
use orrery_types::tx::{BatchId, LeaseId, ModelOffers};
use std::collections::{BTreeMap, BTreeSet};

/// Number of buckets the state root spreads entries over. A power of two (the tree over the
/// bucket roots is perfect, so a changed bucket updates one path); 65,536 keeps a bucket small up
/// to millions of entries.
pub const NUM_BUCKETS: usize = 65_536;
const _: () = assert!(NUM_BUCKETS.is_power_of_two());

/// The round number a cluster lease's own timer carries in [`State`]'s cluster timers (a
/// round's timers carry the round).
pub(crate) const LEASE_TIMER: u32 = u32::MAX;

/// The key of one state entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StateKey {
    /// Chain id, parameters and validators.
    Config,
    /// Height, time, counters, supply.
    Globals,
    /// An account.
    Account(AccountId),
    /// A provider.
    Provider(AccountId),
    /// A lease.
    Lease(LeaseId),
    /// Stake being released at a height to an account.
    Unbonding(u64, AccountId),
    /// Settled work of a provider in the current epoch.
    EpochWork(AccountId),
    /// The models a provider offers.
    ModelOffers(AccountId),
    /// An inference API key.
    InferenceKey(AccountId),
    /// A payment channel: (key, provider, channel number).
    InferenceChannel(AccountId, AccountId, u64),
    /// A settled inference batch.
    InferenceBatch(BatchId),
    /// A provider's open challenge.
    Challenge(AccountId),
    /// A cluster lease.
    ClusterLease(LeaseId),
    /// One round of a cluster lease.
    ClusterRound(LeaseId, u32),
}

impl StateKey {
    /// The key's canonical bytes: a tag, then the id fields big-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 8 + 20);
        match self {
            StateKey::Config => out.push(0x00),
            StateKey::Globals => out.push(0x01),
            StateKey::Account(a) => {
                out.push(0x10);
                out.extend_from_slice(&a.0);
            }
            StateKey::Provider(a) => {
                out.push(0x11);
                out.extend_from_slice(&a.0);
            }
            StateKey::Lease(id) => {
                out.push(0x12);
                out.extend_from_slice(&id.to_be_bytes());
            }
            StateKey::Unbonding(h, a) => {
                out.push(0x13);
                out.extend_from_slice(&h.to_be_bytes());
                out.extend_from_slice(&a.0);
            }
            StateKey::EpochWork(a) => {
                out.push(0x14);
                out.extend_from_slice(&a.0);
            }
            StateKey::ModelOffers(a) => {
                out.push(0x15);
                out.extend_from_slice(&a.0);
            }
            StateKey::InferenceKey(a) => {
                out.push(0x16);
                out.extend_from_slice(&a.0);
            }
            StateKey::InferenceChannel(key, provider, channel) => {
                out.push(0x17);
                out.extend_from_slice(&key.0);
                out.extend_from_slice(&provider.0);
                out.extend_from_slice(&channel.to_be_bytes());
            }
            StateKey::InferenceBatch(id) => {
                out.push(0x18);
                out.extend_from_slice(&id.to_be_bytes());
            }
            StateKey::Challenge(a) => {
                out.push(0x19);
                out.extend_from_slice(&a.0);
            }
            StateKey::ClusterLease(id) => {
                out.push(0x1a);
                out.extend_from_slice(&id.to_be_bytes());
            }
            StateKey::ClusterRound(id, round) => {
                out.push(0x1b);
                out.extend_from_slice(&id.to_be_bytes());
                out.extend_from_slice(&round.to_be_bytes());
            }
        }
        out
    }

    /// Parse key bytes written by [`StateKey::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Option<StateKey> {
        let (&tag, rest) = bytes.split_first()?;
        let account = |b: &[u8]| -> Option<AccountId> { Some(AccountId(b.try_into().ok()?)) };
        let u64_at = |b: &[u8]| -> Option<u64> { Some(u64::from_be_bytes(b.try_into().ok()?)) };
        match tag {
            0x00 if rest.is_empty() => Some(StateKey::Config),
            0x01 if rest.is_empty() => Some(StateKey::Globals),
            0x10 => Some(StateKey::Account(account(rest)?)),
            0x11 => Some(StateKey::Provider(account(rest)?)),
            0x12 => Some(StateKey::Lease(u64_at(rest)?)),
            0x13 if rest.len() == 28 => Some(StateKey::Unbonding(
                u64_at(&rest[..8])?,
                account(&rest[8..])?,
            )),
            0x14 => Some(StateKey::EpochWork(account(rest)?)),
            0x15 => Some(StateKey::ModelOffers(account(rest)?)),
            0x16 => Some(StateKey::InferenceKey(account(rest)?)),
            0x17 if rest.len() == 48 => Some(StateKey::InferenceChannel(
                account(&rest[..20])?,
                account(&rest[20..40])?,
                u64_at(&rest[40..])?,
            )),
            0x18 => Some(StateKey::InferenceBatch(u64_at(rest)?)),
            0x19 => Some(StateKey::Challenge(account(rest)?)),
            0x1a => Some(StateKey::ClusterLease(u64_at(rest)?)),
            0x1b if rest.len() == 12 => Some(StateKey::ClusterRound(
                u64_at(&rest[..8])?,
                u32::from_be_bytes(rest[8..].try_into().ok()?),
            )),
            _ => None,
        }
    }
}

/// One entry written by a block: the new value, or `None` when the entry was removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateChange {
    /// [`StateKey::to_bytes`].
    pub key: Vec<u8>,
    /// Canonical encoding of the value, or `None` for a deletion.
    pub value: Option<Vec<u8>>,
}

/// Running totals of where tokens sit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    /// Sum of account balances.
    pub balances: Amount,
    /// Sum of provider stakes.
    pub stakes: Amount,
    /// Sum of unbonding entries.
    pub unbonding: Amount,
    /// Sum of lease escrows, single-provider and cluster.
    pub escrow: Amount,
    /// Sum of inference key deposits.
    pub deposits: Amount,
    /// Sum of inference batch holds.
    pub holds: Amount,
}

impl Totals {
    /// Sum of all six, or `None` on overflow.
    pub fn sum(&self) -> Option<Amount> {
        self.balances
            .checked_add(self.stakes)?
            .checked_add(self.unbonding)?
            .checked_add(self.escrow)?
            .checked_add(self.deposits)?
            .checked_add(self.holds)
    }
}

/// A violated invariant. Reaching one is a bug in the ledger, never the fault of a
/// transaction; the block that caused it is rejected.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvariantError {
    /// Tokens appeared or vanished.
    #[error(
        "supply invariant broken: balances + stakes + unbonding + escrow + key deposits + batch holds = {held:?}, genesis + minted - burned = {supply:?}"
    )]
    Supply {
        /// What the six places hold.
        held: Option<Amount>,
        /// What the supply should be.
        supply: Option<Amount>,
    },
    /// The running totals disagree with a recount.
    #[error("running totals {running:?} disagree with a recount {recount:?}")]
    Totals {
        /// Running totals.
        running: Box<Totals>,
        /// Recounted totals.
        recount: Box<Totals>,
    },
    /// A lease's escrow does not match its state.
    #[error("lease {0} holds escrow {1} in a final state, or none while active")]
    Escrow(LeaseId, Amount),
    /// A provider's active lease count disagrees with its leases.
    #[error("provider {0} counts {1} active leases but has {2}")]
    ActiveLeases(AccountId, u32, u32),
    /// A timer is missing or stale.
    #[error("lease timers do not match lease states")]
    Timers,
    /// An inference record breaks its own rules (a key over its limit, a released batch
    /// still holding tokens, a stale timer or model index).
    #[error("inference records inconsistent: {0}")]
    Inference(&'static str),
    /// The challenge records break their rules (a draw list that is not exactly the bonded
    /// providers, a stale timer, a challenge for no provider).
    #[error("challenge records inconsistent: {0}")]
    Challenges(&'static str),
    /// The cluster records break their rules.
    #[error("cluster records inconsistent: {0}")]
    Clusters(&'static str),
}

/// The leaf committed for one entry.
fn entry_leaf(key: &[u8], value: &[u8]) -> Hash {
    let mut h = HashWriter::new();
    h.update(b"orrery/state")
        .update(&(key.len() as u32).to_be_bytes())
        .update(key)
        .update(value);
    h.finish()
}

/// Proof that an entry with this key and value is part of the state with a given root.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StateProof {
    /// [`StateKey::to_bytes`].
    pub key: Vec<u8>,
    /// The entry's canonical value.
    pub value: Vec<u8>,
    /// The entry's leaf among its bucket's leaves.
    pub in_bucket: MerkleProof,
    /// The bucket's root among the bucket roots.
    pub bucket_in_root: MerkleProof,
}

impl StateProof {
    /// Whether the proof shows `key = value` under `root`.
    pub fn verify(&self, root: &Hash) -> bool {
        let Some(bucket_root) = self.in_bucket.root_for(&entry_leaf(&self.key, &self.value)) else {
            return false;
        };
        self.bucket_in_root.index == Commitment::bucket_of(&self.key) as u64
            && self.bucket_in_root.leaf_count == NUM_BUCKETS as u64
            && self.bucket_in_root.verify(root, &bucket_root)
    }
}

#[derive(Clone, Debug, Default)]
struct Commitment {
    buckets: Vec<BTreeMap<Vec<u8>, Hash>>,
    roots: Vec<Hash>,
    /// The tree over the bucket roots, level by level (`top[0]` = leaf hashes of `roots`, the
    /// last level = the state root). `NUM_BUCKETS` is a power of two, so the tree is perfect
    /// and a changed bucket updates one path of `log2(NUM_BUCKETS)` nodes.
    top: Vec<Vec<Hash>>,
    dirty: BTreeSet<usize>,
    root: Hash,
}

impl Commitment {
    /// The commitment of the empty state. Built once per process (65,536 bucket leaves and
    /// their tree) and cloned.
    fn new() -> Self {
        static EMPTY: std::sync::OnceLock<Commitment> = std::sync::OnceLock::new();
        EMPTY.get_or_init(Self::build_empty).clone()
    }

    fn build_empty() -> Self {
        let empty = merkle_root(&[]);
        let roots = vec![empty; NUM_BUCKETS];
        let mut top = vec![roots.iter().map(leaf_hash).collect::<Vec<_>>()];
        while top.last().map_or(0, Vec::len) > 1 {
            let below = top.last().map(Vec::as_slice).unwrap_or_default();
            let level = below.chunks(2).map(|p| node_hash(&p[0], &p[1])).collect();
            top.push(level);
        }
        let root = top.last().map_or(Hash::ZERO, |l| l[0]);
        debug_assert_eq!(root, merkle_root(&roots));
        Commitment {
            buckets: vec![BTreeMap::new(); NUM_BUCKETS],
            roots,
            top,
            dirty: BTreeSet::new(),
            root,
        }
    }

    fn bucket_of(key: &[u8]) -> usize {
        let h = Hash::of(key);
        (u16::from_be_bytes([h.0[0], h.0[1]]) as usize) % NUM_BUCKETS
    }

    fn set(&mut self, key: &[u8], value: Option<&[u8]>) {
        let b = Self::bucket_of(key);
        match value {
            Some(v) => {
                self.buckets[b].insert(key.to_vec(), entry_leaf(key, v));
            }
            None => {
                self.buckets[b].remove(key);
            }
        }
        self.dirty.insert(b);
    }

    fn prove(&self, key: &[u8], value: Vec<u8>) -> Option<StateProof> {
        let b = Self::bucket_of(key);
        let bucket = &self.buckets[b];
        let index = bucket.keys().position(|k| k.as_slice() == key)?;
        let leaves: Vec<Hash> = bucket.values().copied().collect();
        Some(StateProof {
            key: key.to_vec(),
            value,
            in_bucket: MerkleTree::new(&leaves).proof(index as u64)?,
            bucket_in_root: self.bucket_proof(b),
        })
    }

    /// The proof of bucket `b`'s root among the bucket roots, read off the kept tree (it is
    /// perfect: one sibling per level).
    fn bucket_proof(&self, b: usize) -> MerkleProof {
        let mut i = b;
        let mut siblings = Vec::with_capacity(self.top.len());
        for level in &self.top[..self.top.len() - 1] {
            siblings.push(level[i ^ 1]);
            i /= 2;
        }
        MerkleProof {
            index: b as u64,
            leaf_count: NUM_BUCKETS as u64,
            siblings,
        }
    }

    fn recompute(&mut self) -> Hash {
        if self.dirty.is_empty() {
            return self.root;
        }
        let mut changed: BTreeSet<usize> = std::mem::take(&mut self.dirty);
        for &b in &changed {
            let leaves: Vec<Hash> = self.buckets[b].values().copied().collect();
            self.roots[b] = merkle_root(&leaves);
            self.top[0][b] = leaf_hash(&self.roots[b]);
        }
        // Recompute only the paths above the changed buckets.
        for level in 1..self.top.len() {
            changed = changed.into_iter().map(|i| i / 2).collect();
            for &i in &changed {
                let node = node_hash(&self.top[level - 1][2 * i], &self.top[level - 1][2 * i + 1]);
                self.top[level][i] = node;
            }
        }
        self.root = self.top.last().map_or(Hash::ZERO, |l| l[0]);
        self.root
    }
}

/// The whole ledger state at one height.
#[derive(Clone, Debug)]
pub struct State {
    pub(crate) config: ChainConfig,
    pub(crate) globals: Globals,
    pub(crate) accounts: BTreeMap<AccountId, Account>,
    pub(crate) providers: BTreeMap<AccountId, Provider>,
    pub(crate) leases: BTreeMap<LeaseId, Lease>,
    pub(crate) unbonding: BTreeMap<(u64, AccountId), Amount>,
    pub(crate) epoch_work: BTreeMap<AccountId, Amount>,
    pub(crate) model_offers: BTreeMap<AccountId, ModelOffers>,
    pub(crate) inference_keys: BTreeMap<AccountId, InferenceKey>,
    pub(crate) inference_channels: BTreeMap<(AccountId, AccountId, u64), InferenceChannel>,
    pub(crate) inference_batches: BTreeMap<BatchId, InferenceBatch>,
    pub(crate) challenges: BTreeMap<AccountId, Challenge>,
    pub(crate) cluster_leases: BTreeMap<LeaseId, ClusterLease>,
    pub(crate) cluster_rounds: BTreeMap<(LeaseId, u32), ClusterRound>,
    /// Derived: `(fire_at, lease, round)` for every cluster lease with a timer (round
    /// [`LEASE_TIMER`]) and every round with an open check.
    pub(crate) cluster_timers: BTreeSet<(u64, LeaseId, u32)>,
    /// Derived: `(fire_at, provider)` for every open challenge.
    pub(crate) challenge_timers: BTreeSet<(u64, AccountId)>,
    /// Derived: the bonded providers, each at its `draw_slot` (the challenge draw indexes it
    /// in O(1); committed through the providers' slots).
    pub(crate) draw_list: Vec<AccountId>,
    /// Derived: `(fire_at, lease)` for every lease with a timer.
    pub(crate) timers: BTreeSet<(u64, LeaseId)>,
    /// Derived: weights hash → providers offering them (the checker draw reads it).
    model_index: BTreeMap<Hash, BTreeSet<AccountId>>,
    /// Derived: `(fire_at, batch)` for every batch with a timer.
    pub(crate) batch_timers: BTreeSet<(u64, BatchId)>,
    /// Derived: `(fire_at, key)` for every revoked key with a deposit to return.
    pub(crate) key_timers: BTreeSet<(u64, AccountId)>,
    /// Derived: running totals.
    pub(crate) totals: Totals,
    touched: BTreeSet<StateKey>,
    commitment: Commitment,
    /// The seed of the block being executed (not part of the state; set by `execute_block`).
    pub(crate) block_seed: Hash,
}

/// Why stored entries cannot be turned back into a state.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A key that is not a state key.
    #[error("unknown state key {0}")]
    UnknownKey(String),
    /// A value that does not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// No config or globals entry.
    #[error("stored state lacks its {0} entry")]
    Missing(&'static str),
    /// The loaded state breaks an invariant.
    #[error(transparent)]
    Invariant(#[from] InvariantError),
    /// Totals overflowed.
    #[error("stored amounts overflow")]
    Overflow,
}

impl State {
    /// The state at height 0.
    pub fn genesis(genesis: &Genesis) -> Result<State, crate::params::GenesisError> {
        genesis.validate()?;
        let mut validators = genesis.validators.clone();
        validators.sort();
        let config = ChainConfig {
            chain_id: genesis.chain_id.clone(),
            params: genesis.params.clone(),
            validators: BoundedVec::new(validators)
                .map_err(|_| crate::params::GenesisError::Param("at most 1024 validators"))?,
        };
        let mut state = State::empty(config);
        let mut supply = Amount::ZERO;
        for a in &genesis.accounts {
            supply = supply
                .checked_add(a.balance)
                .ok_or(crate::params::GenesisError::SupplyOverflow)?;
            state.accounts.insert(
                a.account,
                Account {
                    balance: a.balance,
                    nonce: 0,
                },
            );
            state.touch(StateKey::Account(a.account));
        }
        state.totals.balances = supply;
        state.globals = Globals {
            time_ms: genesis.genesis_time_ms,
            genesis_supply: supply,
            ..Globals::default()
        };
        state.touch(StateKey::Config);
        state.touch(StateKey::Globals);
        state.commit();
        Ok(state)
    }

    fn empty(config: ChainConfig) -> State {
        State {
            config,
            globals: Globals::default(),
            accounts: BTreeMap::new(),
            providers: BTreeMap::new(),
            leases: BTreeMap::new(),
            unbonding: BTreeMap::new(),
            epoch_work: BTreeMap::new(),
            model_offers: BTreeMap::new(),
            inference_keys: BTreeMap::new(),
            inference_channels: BTreeMap::new(),
            inference_batches: BTreeMap::new(),
            challenges: BTreeMap::new(),
            cluster_leases: BTreeMap::new(),
            cluster_rounds: BTreeMap::new(),
            cluster_timers: BTreeSet::new(),
            challenge_timers: BTreeSet::new(),
            draw_list: Vec::new(),
            timers: BTreeSet::new(),
            model_index: BTreeMap::new(),
            batch_timers: BTreeSet::new(),
            key_timers: BTreeSet::new(),
            totals: Totals::default(),
            touched: BTreeSet::new(),
            commitment: Commitment::new(),
            block_seed: Hash::ZERO,
        }
    }

    // ----- reads -----

    /// Chain id.
    pub fn chain_id(&self) -> &str {
        self.config.chain_id.as_str()
    }
    /// Protocol parameters.
    pub fn params(&self) -> &Params {
        &self.config.params
    }
    /// Validators, sorted.
    pub fn validators(&self) -> &[AccountId] {
        self.config.validators.as_slice()
    }
    /// Height of the last applied block.
    pub fn height(&self) -> u64 {
        self.globals.height
    }
    /// Chain-wide counters.
    pub fn globals(&self) -> &Globals {
        &self.globals
    }
    /// Where tokens sit.
    pub fn totals(&self) -> &Totals {
        &self.totals
    }
    /// An account (a never-seen account is empty with nonce 0).
    pub fn account(&self, id: &AccountId) -> Account {
        self.accounts.get(id).copied().unwrap_or_default()
    }
    /// All accounts.
    pub fn accounts(&self) -> &BTreeMap<AccountId, Account> {
        &self.accounts
    }
    /// A provider.
    pub fn provider(&self, id: &AccountId) -> Option<&Provider> {
        self.providers.get(id)
    }
    /// All providers.
    pub fn providers(&self) -> &BTreeMap<AccountId, Provider> {
        &self.providers
    }
    /// A lease.
    pub fn lease(&self, id: LeaseId) -> Option<&Lease> {
        self.leases.get(&id)
    }
    /// All leases.
    pub fn leases(&self) -> &BTreeMap<LeaseId, Lease> {
        &self.leases
    }
    /// Stake being released: `(release height, account) -> amount`.
    pub fn unbonding(&self) -> &BTreeMap<(u64, AccountId), Amount> {
        &self.unbonding
    }
    /// Settled work per provider in the current epoch.
    pub fn epoch_work(&self) -> &BTreeMap<AccountId, Amount> {
        &self.epoch_work
    }
    /// An inference API key.
    pub fn inference_key(&self, key: &AccountId) -> Option<&InferenceKey> {
        self.inference_keys.get(key)
    }
    /// All inference API keys, by id.
    pub fn inference_keys(&self) -> impl Iterator<Item = (&AccountId, &InferenceKey)> {
        self.inference_keys.iter()
    }
    /// The models `provider` offers (empty if none).
    pub fn model_offers(&self, provider: &AccountId) -> &[ModelOffer] {
        self.model_offers
            .get(provider)
            .map_or(&[][..], ModelOffers::as_slice)
    }
    /// Every model offer, with its provider, in provider order.
    pub fn all_model_offers(&self) -> impl Iterator<Item = (&AccountId, &ModelOffer)> {
        self.model_offers
            .iter()
            .flat_map(|(p, offers)| offers.as_slice().iter().map(move |o| (p, o)))
    }
    /// The providers offering the model with these weights, in account order.
    pub fn model_servers(&self, weights: &Hash) -> impl Iterator<Item = &AccountId> {
        self.model_index.get(weights).into_iter().flatten()
    }
    /// What a channel has settled so far.
    pub fn inference_channel(
        &self,
        key: &AccountId,
        provider: &AccountId,
        channel: u64,
    ) -> Option<&InferenceChannel> {
        self.inference_channels.get(&(*key, *provider, channel))
    }
    /// A settled inference batch.
    pub fn inference_batch(&self, id: BatchId) -> Option<&InferenceBatch> {
        self.inference_batches.get(&id)
    }
    /// All inference batches, by id.
    pub fn inference_batches(
        &self,
    ) -> impl DoubleEndedIterator<Item = (&BatchId, &InferenceBatch)> {
        self.inference_batches.iter()
    }
    /// The state root as of the last applied block.
    pub fn root(&self) -> Hash {
        self.commitment.root
    }

    /// The root computed from every entry, ignoring every cache (for tests of the incremental
    /// computation).
    #[cfg(test)]
    pub(crate) fn root_from_scratch(&self) -> Hash {
        let roots: Vec<Hash> = self
            .commitment
            .buckets
            .iter()
            .map(|b| merkle_root(&b.values().copied().collect::<Vec<_>>()))
            .collect();
        merkle_root(&roots)
    }

    // ----- change tracking -----

    pub(crate) fn touch(&mut self, key: StateKey) {
        self.touched.insert(key);
    }

    /// Encode the current value behind `key`, or `None` if absent.
    pub fn encode_entry(&self, key: &StateKey) -> Option<Vec<u8>> {
        match key {
            StateKey::Config => Some(codec::encode(&self.config)),
            StateKey::Globals => Some(codec::encode(&self.globals)),
            StateKey::Account(a) => self.accounts.get(a).map(codec::encode),
            StateKey::Provider(a) => self.providers.get(a).map(codec::encode),
            StateKey::Lease(id) => self.leases.get(id).map(codec::encode),
            StateKey::Unbonding(h, a) => self.unbonding.get(&(*h, *a)).map(codec::encode),
            StateKey::EpochWork(a) => self.epoch_work.get(a).map(codec::encode),
            StateKey::ModelOffers(a) => self.model_offers.get(a).map(codec::encode),
            StateKey::InferenceKey(a) => self.inference_keys.get(a).map(codec::encode),
            StateKey::InferenceChannel(k, p, c) => self
                .inference_channels
                .get(&(*k, *p, *c))
                .map(codec::encode),
            StateKey::InferenceBatch(id) => self.inference_batches.get(id).map(codec::encode),
            StateKey::Challenge(a) => self.challenges.get(a).map(codec::encode),
            StateKey::ClusterLease(id) => self.cluster_leases.get(id).map(codec::encode),
            StateKey::ClusterRound(id, r) => self.cluster_rounds.get(&(*id, *r)).map(codec::encode),
        }
    }

    /// Fold the entries touched since the last commit into the state root, and return them
    /// (for the store to persist atomically with the block).
    pub fn commit(&mut self) -> Vec<StateChange> {
        let touched = std::mem::take(&mut self.touched);
        let mut changes = Vec::with_capacity(touched.len());
        for key in touched {
            let key_bytes = key.to_bytes();
            let value = self.encode_entry(&key);
            self.commitment.set(&key_bytes, value.as_deref());
            changes.push(StateChange {
                key: key_bytes,
                value,
            });
        }
        self.commitment.recompute();
        changes
    }

    /// A proof of the entry behind `key` against [`State::root`], or `None` if the entry is
    /// absent or has changes not yet committed.
    pub fn prove(&self, key: &StateKey) -> Option<StateProof> {
        if self.touched.contains(key) {
            return None;
        }
        let value = self.encode_entry(key)?;
        self.commitment.prove(&key.to_bytes(), value)
    }

    /// Every entry, for a full snapshot.
    pub fn entries(&self) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
        let keys = [StateKey::Config, StateKey::Globals]
            .into_iter()
            .chain(self.accounts.keys().map(|a| StateKey::Account(*a)))
            .chain(self.providers.keys().map(|a| StateKey::Provider(*a)))
            .chain(self.leases.keys().map(|id| StateKey::Lease(*id)))
            .chain(
                self.unbonding
                    .keys()
                    .map(|(h, a)| StateKey::Unbonding(*h, *a)),
            )
            .chain(self.epoch_work.keys().map(|a| StateKey::EpochWork(*a)))
            .chain(self.model_offers.keys().map(|a| StateKey::ModelOffers(*a)))
            .chain(
                self.inference_keys
                    .keys()
                    .map(|a| StateKey::InferenceKey(*a)),
            )
            .chain(
                self.inference_channels
                    .keys()
                    .map(|(k, p, c)| StateKey::InferenceChannel(*k, *p, *c)),
            )
            .chain(
                self.inference_batches
                    .keys()
                    .map(|id| StateKey::InferenceBatch(*id)),
            )
            .chain(self.challenges.keys().map(|a| StateKey::Challenge(*a)))
            .chain(
                self.cluster_leases
                    .keys()
                    .map(|id| StateKey::ClusterLease(*id)),
            )
            .chain(
                self.cluster_rounds
                    .keys()
                    .map(|(id, r)| StateKey::ClusterRound(*id, *r)),
            );
        keys.filter_map(|k| Some((k.to_bytes(), self.encode_entry(&k)?)))
    }

    /// Rebuild a state from stored entries; derived indexes, totals and the root are recomputed
    /// and the invariants checked.
    pub fn from_entries(
        entries: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
    ) -> Result<State, LoadError> {
        let mut config = None;
        let mut globals = None;
        let mut rest = Vec::new();
        for (k, v) in entries {
            let key = StateKey::from_bytes(&k).ok_or_else(|| LoadError::UnknownKey(hex(&k)))?;
            match key {
                StateKey::Config => config = Some(codec::decode::<ChainConfig>("config", &v)?),
                StateKey::Globals => globals = Some(codec::decode::<Globals>("globals", &v)?),
                other => rest.push((other, v)),
            }
        }
        let mut state = State::empty(config.ok_or(LoadError::Missing("config"))?);
        state.globals = globals.ok_or(LoadError::Missing("globals"))?;
        for (key, v) in rest {
            state.load_entry(key, &v)?;
        }
        state.totals = state.recount().ok_or(LoadError::Overflow)?;
        state.timers = state.derive_timers();
        state.model_index = state.derive_model_index();
        state.batch_timers = state.derive_batch_timers();
        state.key_timers = state.derive_key_timers();
        state.challenge_timers = state.derive_challenge_timers();
        state.cluster_timers = state.derive_cluster_timers();
        state.draw_list = state.derive_draw_list().ok_or(InvariantError::Challenges(
            "stored draw slots are not a permutation of the bonded providers",
        ))?;
        let all: Vec<StateKey> = state
            .entries()
            .filter_map(|(k, _)| StateKey::from_bytes(&k))
            .collect();
        for k in all {
            state.touch(k);
        }
        state.commit();
        state.audit()?;
        Ok(state)
    }

    /// Decode one stored entry (not config or globals) into its map.
    fn load_entry(&mut self, key: StateKey, v: &[u8]) -> Result<(), LoadError> {
        match key {
            StateKey::Config | StateKey::Globals => {}
            StateKey::Account(a) => {
                self.accounts.insert(a, codec::decode("account", v)?);
            }
            StateKey::Provider(a) => {
                self.providers.insert(a, codec::decode("provider", v)?);
            }
            StateKey::Lease(id) => {
                self.leases.insert(id, codec::decode("lease", v)?);
            }
            StateKey::Unbonding(h, a) => {
                self.unbonding
                    .insert((h, a), codec::decode("unbonding", v)?);
            }
            StateKey::EpochWork(a) => {
                self.epoch_work.insert(a, codec::decode("epoch work", v)?);
            }
            StateKey::ModelOffers(a) => {
                self.model_offers
                    .insert(a, codec::decode("model offers", v)?);
            }
            StateKey::InferenceKey(a) => {
                self.inference_keys
                    .insert(a, codec::decode("inference key", v)?);
            }
            StateKey::InferenceChannel(k, p, c) => {
                self.inference_channels
                    .insert((k, p, c), codec::decode("inference channel", v)?);
            }
            StateKey::InferenceBatch(id) => {
                self.inference_batches
                    .insert(id, codec::decode("inference batch", v)?);
            }
            StateKey::Challenge(a) => {
                self.challenges.insert(a, codec::decode("challenge", v)?);
            }
            StateKey::ClusterLease(id) => {
                self.cluster_leases
                    .insert(id, codec::decode("cluster lease", v)?);
            }
            StateKey::ClusterRound(id, r) => {
                self.cluster_rounds
                    .insert((id, r), codec::decode("cluster round", v)?);
            }
        }
        Ok(())
    }

    fn derive_timers(&self) -> BTreeSet<(u64, LeaseId)> {
        self.leases
            .values()
            .filter_map(|l| l.timer().map(|t| (t, l.id)))
            .collect()
    }

    fn derive_cluster_timers(&self) -> BTreeSet<(u64, LeaseId, u32)> {
        let leases = self
            .cluster_leases
            .values()
            .filter_map(|l| l.timer().map(|t| (t, l.id, LEASE_TIMER)));
        let rounds = self
            .cluster_rounds
            .iter()
            .filter_map(|((id, r), rec)| rec.timer().map(|t| (t, *id, *r)));
        leases.chain(rounds).collect()
    }

    fn derive_model_index(&self) -> BTreeMap<Hash, BTreeSet<AccountId>> {
        let mut index: BTreeMap<Hash, BTreeSet<AccountId>> = BTreeMap::new();
        for (provider, offer) in self.all_model_offers() {
            index.entry(offer.weights).or_default().insert(*provider);
        }
        index
    }

    fn derive_batch_timers(&self) -> BTreeSet<(u64, BatchId)> {
        self.inference_batches
            .iter()
            .filter_map(|(id, b)| b.timer().map(|t| (t, *id)))
            .collect()
    }

    fn derive_key_timers(&self) -> BTreeSet<(u64, AccountId)> {
        let grace = self.params().voucher_grace_blocks;
        self.inference_keys
            .iter()
            .filter_map(|(id, k)| k.timer(grace).map(|t| (t, *id)))
            .collect()
    }

    fn derive_challenge_timers(&self) -> BTreeSet<(u64, AccountId)> {
        let params = self.params();
        self.challenges
            .iter()
            .map(|(id, c)| (c.timer(params), *id))
            .collect()
    }

    /// The draw list from the providers' slots, or `None` if the slots are not exactly
    /// `0..bonded` over the bonded providers.
    fn derive_draw_list(&self) -> Option<Vec<AccountId>> {
        let bonded = self
            .providers
            .values()
            .filter(|p| p.draw_slot.is_some())
            .count();
        let mut list = vec![None; bonded];
        for (id, p) in &self.providers {
            if p.draw_slot.is_some() == p.stake.is_zero() {
                return None;
            }
            if let Some(slot) = p.draw_slot {
                let cell = list.get_mut(usize::try_from(slot).ok()?)?;
                if cell.replace(*id).is_some() {
                    return None;
                }
            }
        }
        list.into_iter().collect()
    }

    fn recount(&self) -> Option<Totals> {
        use orrery_types::amount::checked_sum;
        Some(Totals {
            balances: checked_sum(self.accounts.values().map(|a| a.balance))?,
            stakes: checked_sum(self.providers.values().map(|p| p.stake))?,
            unbonding: checked_sum(self.unbonding.values().copied())?,
            escrow: checked_sum(
                self.leases
                    .values()
                    .map(|l| l.escrow)
                    .chain(self.cluster_leases.values().map(|l| l.escrow)),
            )?,
            deposits: checked_sum(self.inference_keys.values().map(|k| k.deposit))?,
            holds: checked_sum(self.inference_batches.values().map(|b| b.held))?,
        })
    }

    /// The cheap check run after every block: the running totals add up to the supply.
    pub fn check_supply(&self) -> Result<(), InvariantError> {
        let held = self.totals.sum();
        let supply = self.globals.supply();
        if held.is_none() || held != supply {
            return Err(InvariantError::Supply { held, supply });
        }
        Ok(())
    }

    /// The full check: recount every place tokens sit, check each lease's escrow against its
    /// state, each provider's active lease count, and the timers. O(size of state).
    pub fn audit(&self) -> Result<(), InvariantError> {
        self.check_supply()?;
        let recount = self.recount();
        if recount != Some(self.totals) {
            return Err(InvariantError::Totals {
                running: Box::new(self.totals),
                recount: Box::new(recount.unwrap_or_default()),
            });
        }
        let mut active: BTreeMap<AccountId, u32> = BTreeMap::new();
        for l in self.leases.values() {
            if l.state.is_active() == l.escrow.is_zero() {
                return Err(InvariantError::Escrow(l.id, l.escrow));
            }
            if l.state.is_active() {
                *active.entry(l.provider).or_default() += 1;
            }
        }
        for l in self.cluster_leases.values() {
            if l.phase == ClusterPhase::Running {
                for m in l.members.as_slice() {
                    if m.status == MemberStatus::Live {
                        *active.entry(m.provider).or_default() += 1;
                    }
                }
            }
        }
        for (id, p) in &self.providers {
            let n = active.get(id).copied().unwrap_or(0);
            if n != p.active_leases {
                return Err(InvariantError::ActiveLeases(*id, p.active_leases, n));
            }
        }
        if self.derive_timers() != self.timers {
            return Err(InvariantError::Timers);
        }
        self.audit_inference()?;
        self.audit_challenges()?;
        self.audit_clusters()
    }

    /// The cluster records' rules: a finished lease holds nothing, the check budget is part of
    /// the escrow, every round record belongs to a lease, and the timers match.
    fn audit_clusters(&self) -> Result<(), InvariantError> {
        let bad = |what| Err(InvariantError::Clusters(what));
        for l in self.cluster_leases.values() {
            if l.phase == ClusterPhase::Finished && !l.escrow.is_zero() {
                return bad("a finished cluster lease still holds escrow");
            }
            if l.check_budget > l.escrow {
                return bad("a cluster lease's check budget exceeds its escrow");
            }
        }
        if self
            .cluster_rounds
            .keys()
            .any(|(id, r)| self.cluster_leases.get(id).is_none_or(|l| *r >= l.rounds))
        {
            return bad("a round record for no lease, or past its lease's rounds");
        }
        if self.derive_cluster_timers() != self.cluster_timers {
            return bad("cluster timers do not match the records");
        }
        Ok(())
    }

    /// The challenge records' rules: the draw list is exactly the bonded providers at their
    /// slots, every challenge belongs to a provider, and the timers match.
    fn audit_challenges(&self) -> Result<(), InvariantError> {
        let bad = |what| Err(InvariantError::Challenges(what));
        if self.derive_draw_list().as_ref() != Some(&self.draw_list) {
            return bad("the draw list is not the bonded providers at their slots");
        }
        if self
            .challenges
            .keys()
            .any(|id| !self.providers.contains_key(id))
        {
            return bad("a challenge for an unregistered provider");
        }
        if self.derive_challenge_timers() != self.challenge_timers {
            return bad("challenge timers do not match the challenges");
        }
        Ok(())
    }

    /// The inference records' own rules: a key never spends past its limit, a released batch
    /// holds nothing, and the derived indexes match the records.
    fn audit_inference(&self) -> Result<(), InvariantError> {
        let bad = |what| Err(InvariantError::Inference(what));
        if self.inference_keys.values().any(|k| k.spent > k.limit) {
            return bad("a key spent past its limit");
        }
        for b in self.inference_batches.values() {
            if b.phase == BatchPhase::Released && !b.held.is_zero() {
                return bad("a released batch still holds tokens");
            }
            if b.held > b.amount {
                return bad("a batch holds more than its settlement moved");
            }
        }
        if self.derive_batch_timers() != self.batch_timers
            || self.derive_key_timers() != self.key_timers
        {
            return bad("inference timers do not match the records");
        }
        if self.derive_model_index() != self.model_index {
            return bad("the model index does not match the offers");
        }
        Ok(())
    }

    // ----- token movements: the only code that changes where tokens sit -----

    pub(crate) fn credit(&mut self, to: AccountId, amount: Amount) -> Option<()> {
        let acct = self.accounts.entry(to).or_default();
        acct.balance = acct.balance.checked_add(amount)?;
        self.totals.balances = self.totals.balances.checked_add(amount)?;
        self.touch(StateKey::Account(to));
        Some(())
    }

    /// Caller must have checked the balance covers `amount`.
    pub(crate) fn debit(&mut self, from: AccountId, amount: Amount) -> Option<()> {
        let acct = self.accounts.get_mut(&from)?;
        acct.balance = acct.balance.checked_sub(amount)?;
        self.totals.balances = self.totals.balances.checked_sub(amount)?;
        self.touch(StateKey::Account(from));
        Some(())
    }

    /// Add stake; a provider whose stake becomes positive joins the draw list.
    pub(crate) fn add_stake(&mut self, provider: AccountId, amount: Amount) -> Option<()> {
        let slot = self.draw_list.len() as u64;
        let p = self.providers.get_mut(&provider)?;
        p.stake = p.stake.checked_add(amount)?;
        self.totals.stakes = self.totals.stakes.checked_add(amount)?;
        if !p.stake.is_zero() && p.draw_slot.is_none() {
            p.draw_slot = Some(slot);
            self.draw_list.push(provider);
        }
        self.touch(StateKey::Provider(provider));
        Some(())
    }

    /// Remove stake; a provider left with none leaves the draw list (the last provider of the
    /// list takes its slot, so the list stays dense in O(1)).
    pub(crate) fn sub_stake(&mut self, provider: AccountId, amount: Amount) -> Option<()> {
        let p = self.providers.get_mut(&provider)?;
        p.stake = p.stake.checked_sub(amount)?;
        self.totals.stakes = self.totals.stakes.checked_sub(amount)?;
        let leaving = if p.stake.is_zero() {
            p.draw_slot.take()
        } else {
            None
        };
        self.touch(StateKey::Provider(provider));
        if let Some(slot) = leaving {
            let slot_index = usize::try_from(slot).ok()?;
            assert_eq!(
                self.draw_list.get(slot_index),
                Some(&provider),
                "draw list out of step"
            );
            self.draw_list.swap_remove(slot_index);
            if let Some(&moved) = self.draw_list.get(slot_index) {
                self.providers.get_mut(&moved)?.draw_slot = Some(slot);
                self.touch(StateKey::Provider(moved));
            }
        }
        Some(())
    }

    /// Write (or, with `None`, remove) a provider's challenge, keeping its timer in step: the
    /// only way a challenge changes.
    pub(crate) fn put_challenge(&mut self, provider: AccountId, challenge: Option<Challenge>) {
        let params = &self.config.params;
        if let Some(old) = self.challenges.get(&provider) {
            self.challenge_timers.remove(&(old.timer(params), provider));
        }
        match challenge {
            Some(c) => {
                self.challenge_timers.insert((c.timer(params), provider));
                self.challenges.insert(provider, c);
            }
            None => {
                self.challenges.remove(&provider);
            }
        }
        self.touch(StateKey::Challenge(provider));
    }

    /// A provider's open challenge.
    pub fn challenge(&self, provider: &AccountId) -> Option<&Challenge> {
        self.challenges.get(provider)
    }

    /// Every open challenge, by provider.
    pub fn challenges(&self) -> &BTreeMap<AccountId, Challenge> {
        &self.challenges
    }

    /// The bonded providers in draw order (each at its `draw_slot`).
    pub fn draw_list(&self) -> &[AccountId] {
        &self.draw_list
    }

    pub(crate) fn add_unbonding(&mut self, at: u64, who: AccountId, amount: Amount) -> Option<()> {
        let e = self.unbonding.entry((at, who)).or_default();
        *e = e.checked_add(amount)?;
        self.totals.unbonding = self.totals.unbonding.checked_add(amount)?;
        self.touch(StateKey::Unbonding(at, who));
        Some(())
    }

    pub(crate) fn take_unbonding(&mut self, at: u64, who: AccountId) -> Option<Amount> {
        let amount = self.unbonding.remove(&(at, who))?;
        self.totals.unbonding = self.totals.unbonding.checked_sub(amount)?;
        self.touch(StateKey::Unbonding(at, who));
        Some(amount)
    }

    pub(crate) fn set_escrow(&mut self, lease: LeaseId, amount: Amount) -> Option<()> {
        let l = self.leases.get_mut(&lease)?;
        let old = l.escrow;
        l.escrow = amount;
        self.totals.escrow = self.totals.escrow.checked_sub(old)?.checked_add(amount)?;
        self.touch(StateKey::Lease(lease));
        Some(())
    }

    pub(crate) fn burn(&mut self, amount: Amount) -> Option<()> {
        self.globals.burned = self.globals.burned.checked_add(amount)?;
        self.touch(StateKey::Globals);
        Some(())
    }

    pub(crate) fn mint(&mut self, amount: Amount) -> Option<()> {
        self.globals.minted = self.globals.minted.checked_add(amount)?;
        self.touch(StateKey::Globals);
        Some(())
    }

    /// Write an inference key, keeping the deposit total and its timer in step: the only way
    /// a key's deposit changes.
    pub(crate) fn put_key(&mut self, id: AccountId, key: InferenceKey) -> Option<()> {
        let grace = self.params().voucher_grace_blocks;
        let old = self.inference_keys.get(&id).copied();
        let old_deposit = old.map_or(Amount::ZERO, |k| k.deposit);
        let deposits = self
            .totals
            .deposits
            .checked_sub(old_deposit)?
            .checked_add(key.deposit)?;
        assert!(
            key.spent <= key.limit,
            "key {id} would spend past its limit"
        );
        if let Some(t) = old.and_then(|k| k.timer(grace)) {
            self.key_timers.remove(&(t, id));
        }
        if let Some(t) = key.timer(grace) {
            self.key_timers.insert((t, id));
        }
        self.totals.deposits = deposits;
        self.inference_keys.insert(id, key);
        self.touch(StateKey::InferenceKey(id));
        Some(())
    }

    /// Write an inference batch, keeping the hold total and its timer in step: the only way a
    /// batch's hold changes.
    pub(crate) fn put_batch(&mut self, id: BatchId, batch: InferenceBatch) -> Option<()> {
        let old = self.inference_batches.get(&id);
        let old_held = old.map_or(Amount::ZERO, |b| b.held);
        let old_timer = old.and_then(InferenceBatch::timer);
        let holds = self
            .totals
            .holds
            .checked_sub(old_held)?
            .checked_add(batch.held)?;
        assert!(
            batch.phase != BatchPhase::Released || batch.held.is_zero(),
            "batch {id} released while holding tokens"
        );
        if let Some(t) = old_timer {
            self.batch_timers.remove(&(t, id));
        }
        if let Some(t) = batch.timer() {
            self.batch_timers.insert((t, id));
        }
        self.totals.holds = holds;
        self.inference_batches.insert(id, batch);
        self.touch(StateKey::InferenceBatch(id));
        Some(())
    }

    /// Write a channel's settled position.
    pub(crate) fn put_channel(
        &mut self,
        key: AccountId,
        provider: AccountId,
        channel: u64,
        position: InferenceChannel,
    ) {
        self.inference_channels
            .insert((key, provider, channel), position);
        self.touch(StateKey::InferenceChannel(key, provider, channel));
    }

    /// Replace a provider's model offers (empty removes them), keeping the index in step.
    pub(crate) fn set_model_offers(&mut self, provider: AccountId, offers: ModelOffers) {
        for old in self.model_offers(&provider).to_vec() {
            if let Some(set) = self.model_index.get_mut(&old.weights) {
                set.remove(&provider);
                if set.is_empty() {
                    self.model_index.remove(&old.weights);
                }
            }
        }
        for o in offers.as_slice() {
            self.model_index
                .entry(o.weights)
                .or_default()
                .insert(provider);
        }
        if offers.is_empty() {
            self.model_offers.remove(&provider);
        } else {
            self.model_offers.insert(provider, offers);
        }
        self.touch(StateKey::ModelOffers(provider));
    }

    /// Write a cluster lease, keeping the escrow total and its timer in step: the only way a
    /// cluster lease changes.
    pub(crate) fn put_cluster_lease(&mut self, lease: ClusterLease) -> Option<()> {
        let id = lease.id;
        let old = self.cluster_leases.get(&id);
        let old_escrow = old.map_or(Amount::ZERO, |l| l.escrow);
        let old_timer = old.and_then(ClusterLease::timer);
        let escrow = self
            .totals
            .escrow
            .checked_sub(old_escrow)?
            .checked_add(lease.escrow)?;
        assert!(
            lease.check_budget <= lease.escrow,
            "cluster lease {id}: check budget above escrow"
        );
        assert!(
            lease.phase != ClusterPhase::Finished || lease.escrow.is_zero(),
            "cluster lease {id} finished while holding escrow"
        );
        if let Some(t) = old_timer {
            self.cluster_timers.remove(&(t, id, LEASE_TIMER));
        }
        if let Some(t) = lease.timer() {
            self.cluster_timers.insert((t, id, LEASE_TIMER));
        }
        self.totals.escrow = escrow;
        self.cluster_leases.insert(id, lease);
        self.touch(StateKey::ClusterLease(id));
        Some(())
    }

    /// Write one round's record, keeping its timer in step.
    pub(crate) fn put_cluster_round(&mut self, id: LeaseId, round: u32, rec: ClusterRound) {
        if let Some(t) = self
            .cluster_rounds
            .get(&(id, round))
            .and_then(ClusterRound::timer)
        {
            self.cluster_timers.remove(&(t, id, round));
        }
        if let Some(t) = rec.timer() {
            self.cluster_timers.insert((t, id, round));
        }
        self.cluster_rounds.insert((id, round), rec);
        self.touch(StateKey::ClusterRound(id, round));
    }

    /// A cluster lease.
    pub fn cluster_lease(&self, id: LeaseId) -> Option<&ClusterLease> {
        self.cluster_leases.get(&id)
    }

    /// All cluster leases, by id.
    pub fn cluster_leases(&self) -> &BTreeMap<LeaseId, ClusterLease> {
        &self.cluster_leases
    }

    /// One round's record of a cluster lease (absent until its first commit or its close).
    pub fn cluster_round(&self, id: LeaseId, round: u32) -> Option<&ClusterRound> {
        self.cluster_rounds.get(&(id, round))
    }

    /// The round records of a cluster lease, in round order.
    pub fn cluster_rounds(&self, id: LeaseId) -> impl Iterator<Item = (u32, &ClusterRound)> {
        self.cluster_rounds
            .range((id, 0)..=(id, u32::MAX))
            .map(|((_, r), rec)| (*r, rec))
    }

    /// Replace a lease's state, keeping its timer in step.
    pub(crate) fn set_lease_state(
        &mut self,
        id: LeaseId,
        new: crate::entries::LeaseState,
    ) -> Option<()> {
        let l = self.leases.get_mut(&id)?;
        if let Some(t) = l.timer() {
            self.timers.remove(&(t, id));
        }
        l.state = new;
        if let Some(t) = l.timer() {
            self.timers.insert((t, id));
        }
        self.touch(StateKey::Lease(id));
        Some(())
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
