//! Wiring: the ledger, the mempool, marshal (block dissemination, backfill, ordered delivery
//! of finalized blocks), threshold simplex and the finalizer, over any commonware runtime and
//! any p2p network that provides the five channels below.
//!
//! # Channels
//! | id | carries | who |
//! |---|---|---|
//! | [`CHANNEL_VOTES`] | votes (notarize, nullify, finalize) | simplex |
//! | [`CHANNEL_CERTIFICATES`] | certificates | simplex |
//! | [`CHANNEL_RESOLVER`] | certificate fetches for missed views | simplex |
//! | [`CHANNEL_BACKFILL`] | finalized blocks and certificates for nodes catching up | marshal |
//! | [`CHANNEL_BLOCKS`] | proposed blocks | marshal's buffered broadcast |
//! | [`CHANNEL_TXS`] | batches of submitted transactions | [`crate::gossip`] |
//!
//! # Task lifetime
//! Every task is a child of the `context` passed in: they run while the task that called
//! [`start_with`] (or [`crate::start`]) lives, and stop with it.

use crate::api::{ChainError, Handle, Live};
use crate::application::{App, AppConfig};
use crate::block::{BlockDigest, ChainBlock, Variant};
use crate::config::{CONSENSUS_NAMESPACE, FINALIZED_CHANNEL_CAPACITY, Validator};
use crate::finalizer;
use crate::liveness::HeardReceiver;
use crate::mempool::Mempool;
use crate::seeds::{SeedReporter, Seeds};
use commonware_broadcast::buffered;
use commonware_codec::Encode as _;
use commonware_consensus::Application;
use commonware_consensus::marshal::core::Actor as MarshalActor;
use commonware_consensus::marshal::resolver::p2p as marshal_resolver;
use commonware_consensus::marshal::standard::{Inline, Standard};
use commonware_consensus::marshal::{Config as MarshalConfig, Start};
use commonware_consensus::simplex;
use commonware_consensus::simplex::config::{ForwardPolicy, SkipBudget, SkipPolicy};
use commonware_consensus::simplex::elector::RoundRobin;
use commonware_consensus::simplex::types::Context;
use commonware_consensus::types::{Epoch, FixedEpocher, ViewDelta};
use commonware_cryptography::certificate::ConstantProvider;
use commonware_cryptography::sha256::Sha256;
use commonware_cryptography::{Digested, Digestible as _, Signer as _, ed25519};
use commonware_p2p::{Blocker, Provider, Receiver, Sender};
use commonware_parallel::Sequential;
use commonware_runtime::buffer::paged::CacheRef;
use commonware_runtime::{Clock, Metrics, Spawner, Storage};
use commonware_storage::archive::immutable;
use commonware_utils::ordered::{Quorum as _, Set};
use commonware_utils::{NZDuration, NZU16, NZU64, NZUsize};
use orrery_store::Ledger;
use std::num::{NonZeroU64, NonZeroUsize};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// The consensus signing scheme: BLS12-381 threshold signatures with a per-view VRF seed.
pub type Scheme = simplex::scheme::bls12381_threshold::vrf::Scheme<ed25519::PublicKey, Variant>;

/// Simplex votes.
pub const CHANNEL_VOTES: u64 = 0;
/// Simplex certificates.
pub const CHANNEL_CERTIFICATES: u64 = 1;
/// Simplex certificate fetches.
pub const CHANNEL_RESOLVER: u64 = 2;
/// Marshal backfill.
pub const CHANNEL_BACKFILL: u64 = 3;
/// Proposed blocks.
pub const CHANNEL_BLOCKS: u64 = 4;
/// Transaction gossip.
pub const CHANNEL_TXS: u64 = 5;

/// Mailbox capacity of every consensus actor: enough for a few views of votes from a 100-node
/// committee without backpressure on the network.
const MAILBOX_SIZE: NonZeroUsize = NZUsize!(1_024);
/// Views of consensus state kept after finalization, for peers that lag slightly.
const VIEW_RETENTION: ViewDelta = ViewDelta::new(256);
/// Pages of storage cached per journal (4 KiB each): 4 MiB.
const PAGE_SIZE: u16 = 4_096;
const PAGE_CACHE_PAGES: NonZeroUsize = NZUsize!(1_024);
/// Finalized blocks awaiting the ledger: apply is fast, a small backlog suffices.
const MAX_PENDING_ACKS: NonZeroUsize = NZUsize!(16);
/// Finalized heights fetched in parallel by a node catching up.
const MAX_REPAIR: NonZeroUsize = NZUsize!(32);

/// The p2p channels the engine runs on, each a (sender, receiver) pair.
pub struct Channels<S, R> {
    /// [`CHANNEL_VOTES`].
    pub votes: (S, R),
    /// [`CHANNEL_CERTIFICATES`].
    pub certificates: (S, R),
    /// [`CHANNEL_RESOLVER`].
    pub resolver: (S, R),
    /// [`CHANNEL_BACKFILL`].
    pub backfill: (S, R),
    /// [`CHANNEL_BLOCKS`].
    pub blocks: (S, R),
    /// [`CHANNEL_TXS`].
    pub txs: (S, R),
}

/// Start a validator on `context` with the given network. Opens (or creates) the ledger at
/// `validator.data_dir/ledger.redb`; consensus journals go to the runtime's storage under
/// partitions prefixed by this validator's public key.
pub async fn start_with<E, S, R, B, P>(
    context: E,
    validator: Validator,
    channels: Channels<S, R>,
    blocker: B,
    peer_provider: P,
) -> Result<Handle, ChainError>
where
    E: Spawner + Metrics + Clock + Storage + rand_core::CryptoRng,
    S: Sender<PublicKey = ed25519::PublicKey>,
    R: Receiver<PublicKey = ed25519::PublicKey>,
    B: Blocker<PublicKey = ed25519::PublicKey> + Clone,
    P: Provider<PublicKey = ed25519::PublicKey> + Clone,
{
    std::fs::create_dir_all(&validator.data_dir).map_err(|e| ChainError::Start {
        component: "data directory",
        reason: format!("{}: {e}", validator.data_dir.display()),
    })?;
    let ledger = Ledger::open(&validator.data_dir.join("ledger.redb"), &validator.genesis)?;
    start_with_ledger(context, validator, ledger, channels, blocker, peer_provider).await
}

/// [`start_with`] on a ledger the caller opened: the simulation tests open it on a disk they
/// can fault (`orrery_store::Ledger::open_with_backend`). `ledger` must have been opened from
/// `validator.genesis`.
pub async fn start_with_ledger<E, S, R, B, P>(
    context: E,
    validator: Validator,
    ledger: Ledger,
    channels: Channels<S, R>,
    blocker: B,
    peer_provider: P,
) -> Result<Handle, ChainError>
where
    E: Spawner + Metrics + Clock + Storage + rand_core::CryptoRng,
    S: Sender<PublicKey = ed25519::PublicKey>,
    R: Receiver<PublicKey = ed25519::PublicKey>,
    B: Blocker<PublicKey = ed25519::PublicKey> + Clone,
    P: Provider<PublicKey = ed25519::PublicKey> + Clone,
{
    start_with_application(
        context,
        validator,
        ledger,
        channels,
        blocker,
        peer_provider,
        |app| app,
    )
    .await
}

/// The application consensus can drive in place of [`App`]: same block, context and scheme.
pub trait ChainApplication<E>:
    Application<
        E,
        SigningScheme = Scheme,
        Context = Context<BlockDigest, ed25519::PublicKey>,
        Block = ChainBlock,
        Input = (),
    >
{
}

impl<E, A> ChainApplication<E> for A where
    A: Application<
            E,
            SigningScheme = Scheme,
            Context = Context<BlockDigest, ed25519::PublicKey>,
            Block = ChainBlock,
            Input = (),
        >
{
}

/// [`start_with_ledger`], with consensus driving `wrap(app)` instead of this validator's
/// honest [`App`]. This is the seam for test mocks (a Byzantine proposer wraps the honest
/// builder and corrupts what it returns, as commonware's simplex mocks replace an honest
/// actor); production code passes the identity, through [`start_with_ledger`].
pub async fn start_with_application<E, S, R, B, P, A>(
    context: E,
    validator: Validator,
    ledger: Ledger,
    channels: Channels<S, R>,
    blocker: B,
    peer_provider: P,
    wrap: impl FnOnce(App) -> A,
) -> Result<Handle, ChainError>
where
    E: Spawner + Metrics + Clock + Storage + rand_core::CryptoRng,
    S: Sender<PublicKey = ed25519::PublicKey>,
    R: Receiver<PublicKey = ed25519::PublicKey>,
    B: Blocker<PublicKey = ed25519::PublicKey> + Clone,
    P: Provider<PublicKey = ed25519::PublicKey> + Clone,
    A: ChainApplication<E>,
{
    let me = validator.key.public_key();
    let prefix = hex::encode(me.encode());
    let chain_id = ledger.state().chain_id().to_string();
    let committee = ledger.state().validators().len();
    tracing::info!(
        validator = %me,
        height = ledger.state().height(),
        chain_id = %chain_id,
        "starting validator"
    );
    let ledger = Arc::new(RwLock::new(ledger));
    let mempool = Arc::new(Mutex::new(Mempool::new(
        chain_id.clone(),
        validator.mempool,
    )));
    let (finalized_tx, _) = tokio::sync::broadcast::channel(FINALIZED_CHANNEL_CAPACITY);
    let live = Arc::new(Live::default());

    // The committee and this validator's signing scheme.
    let participants = Set::try_from(
        validator
            .peers
            .iter()
            .map(|(pk, _)| pk.clone())
            .collect::<Vec<_>>(),
    )
    .map_err(|_| ChainError::Config("a peer is listed twice".into()))?;
    let me_index = participants.index(&me).map(|p| p.get());
    if me_index != Some(validator.share.index.get()) {
        return Err(ChainError::Config(
            "bls_share is not the share dealt to this p2p_key (its index is another validator's)"
                .into(),
        ));
    }
    let identity = *validator.polynomial.public();
    let scheme = Scheme::signer(
        CONSENSUS_NAMESPACE,
        participants,
        validator.polynomial.clone(),
        validator.share.clone(),
    )
    .ok_or_else(|| {
        ChainError::Config(
            "bls_share does not belong to p2p_key's position in the committee under group_polynomial".into(),
        )
    })?;
    let seed_verifier = Scheme::certificate_verifier(CONSENSUS_NAMESPACE, identity);

    // Marshal: archives, backfill resolver, block broadcast.
    let page_cache = CacheRef::new(NZU16!(PAGE_SIZE), PAGE_CACHE_PAGES);
    let genesis_block = ChainBlock::genesis(validator.genesis.genesis_time_ms);
    let genesis_digest = genesis_block.digest();
    let marshal_config = MarshalConfig {
        provider: ConstantProvider::new(scheme.clone()),
        epocher: FixedEpocher::new(NonZeroU64::MAX),
        start: Start::Genesis(Digested::precomputed(genesis_block, genesis_digest)),
        partition_prefix: format!("{prefix}-marshal"),
        mailbox_size: MAILBOX_SIZE,
        view_retention: VIEW_RETENTION,
        prunable_items_per_section: NZU64!(4_096),
        page_cache: page_cache.clone(),
        replay_buffer: NZUsize!(1 << 20),
        key_write_buffer: NZUsize!(1 << 20),
        value_write_buffer: NZUsize!(1 << 20),
        block_codec_config: validator.max_block_bytes,
        max_repair: MAX_REPAIR,
        max_pending_acks: MAX_PENDING_ACKS,
        strategy: Sequential,
    };
    let resolver = marshal_resolver::init(
        context.child("marshal_resolver"),
        marshal_resolver::Config {
            public_key: me.clone(),
            peer_provider: peer_provider.clone(),
            blocker: blocker.clone(),
            mailbox_size: MAILBOX_SIZE,
            fetch_timeout: NZDuration!(Duration::from_secs(2)),
            fetch_retry_delay: Duration::from_millis(100),
            priority_requests: false,
            priority_responses: false,
        },
        channels.backfill,
    );
    let (broadcast_engine, buffer) = buffered::Engine::new(
        context.child("broadcast"),
        buffered::Config {
            public_key: me.clone(),
            mailbox_size: MAILBOX_SIZE,
            deque_size: 16,
            priority: false,
            codec_config: validator.max_block_bytes,
            peer_provider: peer_provider.clone(),
            strategy: Sequential,
        },
    );
    broadcast_engine.start(channels.blocks);
    let finalizations_by_height = immutable::Archive::init(
        context.child("finalizations_by_height"),
        archive_config(&format!("{prefix}-finalizations"), &page_cache, ()),
    )
    .await
    .map_err(|e| ChainError::Start {
        component: "finalization archive",
        reason: e.to_string(),
    })?;
    let finalized_blocks = immutable::Archive::init(
        context.child("finalized_blocks"),
        archive_config(
            &format!("{prefix}-blocks"),
            &page_cache,
            validator.max_block_bytes,
        ),
    )
    .await
    .map_err(|e| ChainError::Start {
        component: "block archive",
        reason: e.to_string(),
    })?;
    let (marshal_actor, marshal, _floor) =
        MarshalActor::<_, Standard<ChainBlock>, _, _, _, _, _, _>::init(
            context.child("marshal"),
            finalizations_by_height,
            finalized_blocks,
            marshal_config,
        )
        .await;

    // The finalizer applies what marshal delivers.
    let (updates_tx, updates_rx) = futures::channel::mpsc::unbounded();
    let verified = Arc::new(Mutex::new(std::collections::HashMap::new()));
    let finalizer = finalizer::Actor {
        context: context.child("finalizer_apply"),
        ledger: ledger.clone(),
        mempool: mempool.clone(),
        verified: verified.clone(),
        finalized: finalized_tx.clone(),
        live: live.clone(),
        receiver: updates_rx,
        tip: 0,
    };
    context.child("finalizer").spawn(move |_| finalizer.run());
    marshal_actor.start(finalizer::Mailbox { sender: updates_tx }, buffer, resolver);

    // The application and consensus.
    let seeds = Seeds::default();
    let app = App {
        config: Arc::new(AppConfig {
            identity: identity.encode().to_vec(),
            seed_verifier,
            block_interval: validator.block_interval,
            max_block_txs: validator.max_block_txs,
            max_block_bytes: validator.max_block_bytes,
        }),
        ledger: ledger.clone(),
        mempool: mempool.clone(),
        seeds: seeds.clone(),
        verified,
    };
    let inline = Inline::new(
        context.child("application"),
        wrap(app),
        marshal.clone(),
        FixedEpocher::new(NonZeroU64::MAX),
    );
    let engine = simplex::Engine::new(
        context.child("simplex"),
        simplex::config::Config {
            scheme,
            elector: RoundRobin::<Sha256>::default(),
            blocker,
            automaton: inline.clone(),
            relay: inline.clone(),
            reporter: SeedReporter {
                seeds,
                inner: inline,
            },
            strategy: Sequential,
            partition: format!("{prefix}-simplex"),
            mailbox_size: MAILBOX_SIZE,
            epoch: Epoch::zero(),
            floor: simplex::config::Floor::Genesis(genesis_digest as BlockDigest),
            replay_buffer: NZUsize!(1 << 20),
            write_buffer: NZUsize!(1 << 20),
            page_cache,
            leader_timeout: validator.leader_timeout,
            certification_timeout: validator.certification_timeout,
            timeout_retry: validator.certification_timeout,
            view_retention: VIEW_RETENTION,
            skip: SkipPolicy::Enabled {
                timeout: validator.certification_timeout * 3,
                budget: SkipBudget::Participants,
            },
            fetch_timeout: NZDuration!(Duration::from_secs(1)),
            fetch_retry_delay: Duration::from_millis(100),
            forward: ForwardPolicy::Disabled,
            track_historical_votes: false,
        },
    );
    let (vote_sender, vote_receiver) = channels.votes;
    let vote_receiver = HeardReceiver::new(vote_receiver, me.clone(), live.clone());
    engine.start(
        (vote_sender, vote_receiver),
        channels.certificates,
        channels.resolver,
    );

    // Transaction gossip.
    let (outbox_tx, outbox_rx) = futures::channel::mpsc::channel(crate::gossip::OUTBOX_CAPACITY);
    let (txs_sender, txs_receiver) = channels.txs;
    context
        .child("gossip_out")
        .spawn(move |_| crate::gossip::outbound(txs_sender, outbox_rx));
    let (gossip_ledger, gossip_pool) = (ledger.clone(), mempool.clone());
    context
        .child("gossip_in")
        .spawn(move |_| crate::gossip::inbound(txs_receiver, gossip_ledger, gossip_pool));

    Ok(Handle {
        outbox: Arc::new(Mutex::new(outbox_tx)),
        chain_id,
        validators: committee,
        ledger,
        mempool,
        finalized: finalized_tx,
        live,
    })
}

fn archive_config<C>(prefix: &str, page_cache: &CacheRef, codec_config: C) -> immutable::Config<C> {
    immutable::Config {
        metadata_partition: format!("{prefix}-metadata"),
        freezer_table_partition: format!("{prefix}-freezer-table"),
        freezer_table_initial_size: 1_024,
        freezer_table_resize_frequency: 4,
        freezer_table_resize_chunk_size: 1_024,
        freezer_key_partition: format!("{prefix}-freezer-key"),
        freezer_key_page_cache: page_cache.clone(),
        freezer_value_partition: format!("{prefix}-freezer-value"),
        freezer_value_target_size: 64 * 1024 * 1024,
        freezer_value_compression: None,
        ordinal_partition: format!("{prefix}-ordinal"),
        items_per_section: NZU64!(4_096),
        codec_config,
        replay_buffer: NZUsize!(1 << 20),
        freezer_key_write_buffer: NZUsize!(1 << 20),
        freezer_value_write_buffer: NZUsize!(1 << 20),
        ordinal_write_buffer: NZUsize!(1 << 20),
    }
}
