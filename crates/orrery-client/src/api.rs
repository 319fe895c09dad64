//! The JSON shapes of the node's HTTP API (`/api/v1`), shared by the node (which serializes
//! them) and this SDK (which deserializes them), so the two can never drift apart.
//!
//! Conventions:
//! - hashes are 64 lower-case hex characters, account ids `orr` + 40 hex, amounts decimal
//!   strings in ORR with the ticker (`"12.5 ORR"`): the `orrery-types` serde forms, whose JSON
//!   Schemas (feature `openapi`, `orrery_types::openapi`) the node's OpenAPI document uses;
//! - ledger records whose shape belongs to the ledger (a transaction body, a lease state, an
//!   event, a refusal reason) are carried as JSON values exactly as the ledger serializes them,
//!   so new transaction kinds and events pass through without a change here;
//! - lists are pages: `items` plus `next_cursor`, which is passed back as `?cursor=` to get the
//!   next page and is absent on the last page.

use orrery_types::amount::Amount;
use orrery_types::crypto::AccountId;
use orrery_types::hash::Hash;
use orrery_types::tx::{LeaseTerms, ProviderOffer, Verification};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Largest page any list endpoint returns: bounds the work and the answer of one request. The
/// node refuses a `?limit=` outside `1..=MAX_PAGE_LIMIT` with 400 `bad_query`; this SDK caps
/// the page sizes it is given to that range, and a page's `next_cursor` leads to the rest.
pub const MAX_PAGE_LIMIT: u32 = 500;

/// Page size when `?limit=` is absent.
pub const DEFAULT_PAGE_LIMIT: u32 = 50;

/// Every error the node answers with: a stable machine-readable `code` and a message for humans.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong and, where possible, what to do about it.
    pub error: String,
    /// Stable code, e.g. `malformed_tx`, `stale_nonce`, `rate_limited` (see `docs/api.md`).
    pub code: String,
}

/// Answer to a transaction submission: the transaction's id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SubmitResponse {
    /// The transaction's hash; poll `GET /api/v1/txs/{hash}` for its receipt.
    pub hash: Hash,
}

/// The chain as the validator sees it (one definition, in `orrery-types`).
pub use orrery_types::status::ChainStatus;

/// `GET /api/v1/status`: the chain and this node's own view of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StatusResponse {
    /// The chain.
    pub chain: ChainStatus,
    /// Highest height the node's local index has caught up to.
    pub indexed_height: u64,
    /// This node's software version.
    pub version: String,
    /// Where every token sits and whether they add up, at the last finalized block.
    pub supply: SupplyView,
}

/// The token supply: `genesis + minted − burned`, and where it sits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SupplyView {
    /// Created at genesis.
    pub genesis: Amount,
    /// Minted by emissions since genesis.
    pub minted: Amount,
    /// Burned (fees, penalties, slashes) since genesis.
    pub burned: Amount,
    /// Spendable balances.
    pub balances: Amount,
    /// Provider stakes.
    pub stakes: Amount,
    /// Stake being unbonded.
    pub unbonding: Amount,
    /// Locked in lease escrow.
    pub escrow: Amount,
    /// Whether balances + stakes + unbonding + escrow = genesis + minted − burned.
    pub invariant_holds: bool,
}

/// An account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccountView {
    /// Its id.
    pub id: AccountId,
    /// Spendable balance.
    pub balance: Amount,
    /// Nonce the next transaction from this account must carry.
    pub nonce: u64,
}

/// A provider's track record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReputationView {
    /// Leases settled and paid.
    pub settled: u64,
    /// Results checked and found correct.
    pub checked: u64,
    /// Results found wrong.
    pub failed: u64,
    /// Times slashed.
    pub slashed: u64,
    /// Leases that timed out on the provider's side.
    pub timed_out: u64,
}

/// A registered provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProviderView {
    /// Its account.
    pub id: AccountId,
    /// Hardware, region, endpoint and prices.
    pub offer: ProviderOffer,
    /// Bonded stake.
    pub stake: Amount,
    /// Leases not yet settled or timed out.
    pub active_leases: u32,
    /// Height of registration.
    pub registered_at: u64,
    /// Track record.
    pub reputation: ReputationView,
    /// Paid to it over its life, after fees.
    pub earned: Amount,
    /// What the node's index saw of it (liveness, slashes, delivery rate); absent from nodes
    /// older than the explorer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity: Option<ProviderActivity>,
    /// What the chain has proven of it through challenges: uptime, proven throughput, and
    /// the challenge it must answer now, if any. Absent from nodes older than challenges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenges: Option<ChallengeRecordView>,
}

/// A provider's challenge record (see `docs/economics.md`, "Provider challenges").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChallengeRecordView {
    /// Challenges drawn for it (by the seed or on its request).
    pub drawn: u64,
    /// Challenges it answered and opened correctly in time (below-claim answers included:
    /// the machine was alive).
    pub answered: u64,
    /// Challenges missed: not answered or opened in time, or answered wrongly.
    pub missed: u64,
    /// Of the missed, answers whose opened rows failed Freivalds' test.
    pub wrong: u64,
    /// Answers that proved less than the chain's minimum share of the claim.
    pub below_claim: u64,
    /// Whether the chain routes its offers: false after a miss or a below-claim answer, true
    /// again after a passing answer. A new provider starts online.
    pub online: bool,
    /// `answered ÷ (answered + missed)` in basis points; `None` before the first is decided.
    pub uptime_bps: Option<u32>,
    /// Throughput its last correct answer proved, FLOP/s; `None` before the first.
    pub proven_flops: Option<u64>,
    /// Proven ÷ claimed throughput in basis points (capped at 10000, a moving average over
    /// answers); `None` before the first.
    pub proven_score_bps: Option<u32>,
    /// The throughput its hardware claim stands for, FLOP/s (`cpu_cores × 8 GFLOP/s + gpus ×
    /// 50 GFLOP/s`).
    pub claimed_flops: u64,
    /// Height of its last passing answer; `None` before the first.
    pub last_answered_at: Option<u64>,
    /// Its open challenge, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open: Option<OpenChallengeView>,
}

/// An open challenge: what the provider must compute and send, and by when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OpenChallengeView {
    /// `requested` (drawn at the next block), `drawn` (answer due), `answered` (the next
    /// block draws the rows to open) or `opening` (the rows in `open_rows` are due).
    pub phase: String,
    /// Height of the draw (0 while only requested); `AnswerChallenge` and `OpenChallenge`
    /// name it.
    pub drawn_at: u64,
    /// The challenge seed that generates `A` and `B`.
    pub seed: Hash,
    /// Side `n` of `B`.
    pub dim: u64,
    /// Rows of `A`, sized from the claim.
    pub rows: u64,
    /// Last height at which the answer is accepted (the deadline in block time may end it
    /// sooner); `None` while only requested.
    pub answer_by: Option<u64>,
    /// The answer's Merkle root, once answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<Hash>,
    /// Rows to open, ascending, once drawn (phase `opening`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub open_rows: Vec<u64>,
    /// Last height at which the opening is accepted (phase `opening`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_by: Option<u64>,
}

/// A provider's activity as the node's index recorded it from finalized blocks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProviderActivity {
    /// Height of the last transaction it signed (registration, bond, lease moves, checks).
    pub last_seen: Option<u64>,
    /// Bonded at least the ledger's minimum stake for its hardware, seen within
    /// `online_window_blocks` of the head, and not taken offline by a missed or failed
    /// challenge (see `docs/explorer.md`).
    pub online: bool,
    /// Times it was slashed.
    pub slashes: u64,
    /// Stake taken from it by slashes and missed deadlines.
    pub slashed: Amount,
    /// Challenges answered ÷ decided, in basis points (`None` before the first is decided): the
    /// chain's seed-drawn challenges are its measure of availability (the same figure as
    /// `challenges.uptime_bps`).
    pub uptime_bps: Option<u32>,
    /// 0–10000 from its track record: settled and checked results against failed, slashed
    /// and timed-out ones (`None` without history).
    pub reputation_bps: Option<u32>,
    /// Leases it was named provider of.
    pub leases: u64,
}

/// A lease.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LeaseView {
    /// Its number.
    pub id: u64,
    /// Who pays.
    pub requester: AccountId,
    /// Who works.
    pub provider: AccountId,
    /// Content hash of the job bundle (a blob).
    pub job: Hash,
    /// Resources, agreed prices and limits.
    pub terms: LeaseTerms,
    /// How the result is checked: `"none"`, `"sampled"` or `{"redundant": {"k": n}}`.
    pub verification: Verification,
    /// Tokens locked.
    pub escrow: Amount,
    /// Height of opening.
    pub opened_at: u64,
    /// Last height to start.
    pub start_by: u64,
    /// Last height to commit a result.
    pub deadline: u64,
    /// Short state name: `awaiting_start`, `running`, `committed`, `settled`, `timed_out`, ...
    pub state: String,
    /// The state with its fields, as the ledger serializes it.
    #[schema(value_type = Object)]
    pub state_detail: serde_json::Value,
    /// Whether the lease still holds escrow.
    pub active: bool,
}

/// A cluster lease as `GET /cluster-leases` lists it: the fields of the ledger's
/// `ClusterLease` record a worker needs (the node sends the whole record).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterLeaseView {
    /// Its id.
    pub id: u64,
    /// Who pays.
    pub requester: AccountId,
    /// The cluster job bundle's hash.
    pub job: Hash,
    /// One worker-round's terms.
    pub terms: LeaseTerms,
    /// Rounds the lease runs.
    pub rounds: u32,
    /// Inner steps per round (H).
    pub inner_steps: u32,
    /// Blocks each round has.
    pub round_blocks: u64,
    /// The members, in worker order.
    pub members: Vec<ClusterMemberView>,
    /// The round members are committing now (`rounds` once every round closed).
    pub round: u32,
    /// Last height at which `round` may be committed.
    pub round_deadline: u64,
    /// `running` or `finished`.
    pub phase: String,
    /// Returned to the requester when it finished.
    pub refunded: Amount,
}

/// One member of a cluster lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMemberView {
    /// The provider.
    pub provider: AccountId,
    /// `live` or `dropped`.
    pub status: String,
    /// Rounds it was paid for.
    pub rounds_paid: u32,
    /// What it was paid, after fees.
    pub paid: Amount,
    /// What it was docked.
    pub docked: Amount,
}

/// One round of a cluster lease (`GET /cluster-leases/{id}/rounds/{round}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterRoundView {
    /// The round.
    pub round: u32,
    /// Height at which it closed; `None` while it takes commits.
    pub closed_at: Option<u64>,
    /// Mean of the commits' losses.
    pub mean_loss: Option<f32>,
    /// Each worker's commit.
    pub commits: Vec<ClusterCommitView>,
    /// Members dropped for missing it.
    pub missed: Vec<AccountId>,
}

/// One worker's commit of a round.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterCommitView {
    /// The worker's account.
    pub worker: AccountId,
    /// Its mean inner loss.
    pub loss: f32,
    /// The hash of the weights it started from.
    pub start: Hash,
    /// Its delta's bound commitment (`cluster_delta_commitment`).
    pub delta: Hash,
    /// `committed`, `paid` or `excluded` (a check found the delta wrong).
    pub status: String,
}

/// A page of a list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    /// The items, in the list's order.
    pub items: Vec<T>,
    /// Pass as `?cursor=` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A transaction as it appears in a block.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TxView {
    /// Its id.
    pub hash: Hash,
    /// The signer's account.
    pub sender: AccountId,
    /// The signer's nonce.
    pub nonce: u64,
    /// The chain it was signed for.
    pub chain_id: String,
    /// The action, as the ledger serializes `TxBody` (`{"type": "transfer", ...}`).
    #[schema(value_type = Object)]
    pub body: serde_json::Value,
}

/// What applying a transaction produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReceiptView {
    /// The transaction's id.
    pub tx: Hash,
    /// The sender.
    pub sender: AccountId,
    /// Kind of transaction (`transfer`, `open_lease`, ...).
    pub kind: String,
    /// Whether it applied. A transaction refused by its action spent its nonce and changed
    /// nothing else; one refused for its signature, chain id or nonce changed nothing.
    pub ok: bool,
    /// Events, when it applied.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<serde_json::Value>,
    /// Why it was refused (the ledger's `TxError` as JSON), when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub error: Option<serde_json::Value>,
    /// The refusal as a sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A transaction found in a finalized block, with its receipt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TxRecord {
    /// Height of the block.
    pub height: u64,
    /// Position in the block.
    pub index: u32,
    /// The block's hash.
    pub block_hash: Hash,
    /// The transaction.
    pub tx: TxView,
    /// Its receipt; absent when the node indexed the block from storage without its outcome
    /// (see `docs/api.md`, "Index").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<ReceiptView>,
}

/// A block without its transactions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BlockSummary {
    /// Height.
    pub height: u64,
    /// Its id.
    pub hash: Hash,
    /// The previous block's id.
    pub parent: Hash,
    /// Block time, milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Number of transactions.
    pub tx_count: u32,
}

/// A block with its transactions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BlockView {
    /// Header fields.
    #[serde(flatten)]
    pub summary: BlockSummary,
    /// The block's randomness.
    pub seed: Hash,
    /// Transactions in order.
    pub txs: Vec<TxView>,
}

/// The outcome of a block: one receipt per transaction and the end-of-block events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BlockReceipts {
    /// Height.
    pub height: u64,
    /// Receipts in transaction order; empty when the outcome is unknown to this node.
    pub receipts: Vec<ReceiptView>,
    /// End-of-block events (timeouts, settlements, unbonding releases, emissions).
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<serde_json::Value>,
    /// Whether the node saw this block's outcome (false if indexed from storage only).
    pub outcome_known: bool,
}

/// One message of the live event stream (`GET /api/v1/events`, SSE event `block`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BlockEvent {
    /// Height.
    pub height: u64,
    /// The block's id.
    pub hash: Hash,
    /// Block time.
    pub time_ms: u64,
    /// Number of transactions.
    pub tx_count: u32,
    /// State root after the block.
    pub state_root: Hash,
    /// Events of the applied transactions, in order, then the end-of-block events.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<serde_json::Value>,
}

/// Answer to a blob upload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BlobStored {
    /// The blob's hash (the address it was stored under).
    pub hash: Hash,
    /// Its size.
    pub size: u64,
    /// False if the node already had it.
    pub created: bool,
    /// How many of the blob's home peers hold it after this upload (the node pushes a
    /// client's upload to them before answering, so other nodes find it); 0 from a node that
    /// lists no peers, or for an upload another node pushed.
    #[serde(default)]
    pub replicas: u32,
}

/// `GET /api/v1/overview`: the network at a glance, from counters the index keeps per block
/// and a per-block summary of the providers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OverviewView {
    /// The chain's name.
    pub chain_id: String,
    /// Last finalized height.
    pub height: u64,
    /// Its block time (ms since the Unix epoch).
    pub last_block_time_ms: u64,
    /// Mean time between the last blocks (up to 100), in milliseconds.
    pub block_interval_ms: Option<f64>,
    /// Validators in the committee.
    pub validators: u64,
    /// Whether the validator is catching up.
    pub syncing: bool,
    /// Highest height in this node's index.
    pub indexed_height: u64,
    /// Blocks the index holds without their outcome (counters then undercount).
    pub blocks_without_outcome: u64,
    /// Providers.
    pub providers: ProvidersOverview,
    /// GPUs online by model.
    pub gpus_online: Vec<GpuModelCount>,
    /// CPU cores offered by online providers.
    pub cpu_cores_online: u64,
    /// Median listed prices of online providers beside a reference cloud price.
    pub prices: Vec<PriceComparison>,
    /// The exchange rate the comparison assumes (no market price exists on chain).
    pub usd_per_orr: f64,
    /// Jobs (leases).
    pub jobs: JobCounts,
    /// Verification: checks, disputes, slashes.
    pub verification: VerificationCounts,
    /// The supply now.
    pub supply: SupplyView,
}

/// Provider counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProvidersOverview {
    /// Registered.
    pub registered: u64,
    /// Online (see `ProviderActivity::online`).
    pub online: u64,
    /// The liveness window, in blocks.
    pub online_window_blocks: u64,
}

/// GPUs of one model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GpuModelCount {
    /// Model as providers report it.
    pub model: String,
    /// GPUs.
    pub gpus: u64,
    /// Machines.
    pub providers: u64,
}

/// One resource's median price beside a reference cloud price.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PriceComparison {
    /// GPU model, or `CPU core`.
    pub resource: String,
    /// `GPU-hour` or `core-hour`.
    pub unit: String,
    /// Median listed price among online providers, ORR.
    pub median: Amount,
    /// Offers the median is over.
    pub offers: u64,
    /// The median in USD at `usd_per_orr`.
    pub median_usd: f64,
    /// The catalog entry it was matched with.
    pub reference: Option<String>,
    /// The catalog's USD price.
    pub reference_usd: Option<f64>,
    /// `(reference − median) / reference`, in percent (negative: dearer than the cloud).
    pub saving_pct: Option<f64>,
}

/// Jobs by outcome (cumulative since genesis).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobCounts {
    /// Leases opened.
    pub opened: u64,
    /// Opened and not final.
    pub running: u64,
    /// Paid out.
    pub settled: u64,
    /// Provider shown wrong; requester refunded.
    pub failed: u64,
    /// Not started or finished in time.
    pub timed_out: u64,
}

/// Verification counters (cumulative since genesis).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VerificationCounts {
    /// Results drawn for re-execution by at least one verifier.
    pub checks: u64,
    /// Checks where every verifier agreed.
    pub checks_passed: u64,
    /// Disputes opened.
    pub disputes: u64,
    /// Steps the referee executed.
    pub referee_rulings: u64,
    /// Disputes sent to tie-breaking verifiers.
    pub tiebreaks: u64,
    /// Slashes.
    pub slashes: u64,
    /// Stake slashed in total.
    pub slashed: Amount,
}

/// `GET /api/v1/series`: cumulative counters sampled at up to `points` heights, as columns.
/// Amounts are ORR as floating point, for charts only (exact values are in `/status`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SeriesView {
    /// Heights sampled.
    pub heights: Vec<u64>,
    /// Their block times (ms).
    pub times_ms: Vec<u64>,
    /// Total supply (genesis + minted − burned).
    pub supply: Vec<f64>,
    /// Minted so far.
    pub minted: Vec<f64>,
    /// Burned so far.
    pub burned: Vec<f64>,
    /// Jobs settled so far.
    pub settled: Vec<u64>,
    /// Jobs failed so far.
    pub failed: Vec<u64>,
    /// Checks so far.
    pub checks: Vec<u64>,
    /// Disputes so far.
    pub disputes: Vec<u64>,
    /// Slashes so far.
    pub slashes: Vec<u64>,
}

/// One moment in a lease's life.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TimelineEntry {
    /// Block height.
    pub height: u64,
    /// Block time (ms), when the block is indexed.
    pub time_ms: Option<u64>,
    /// The transaction, or `None` for what the chain did at the end of the block (draws,
    /// deadlines, settlements).
    pub tx: Option<Hash>,
    /// Who signed it.
    pub sender: Option<AccountId>,
    /// Transaction kind (`open_lease`, `dispute_move`, ...) or event name (`check_drawn`).
    pub kind: String,
    /// Whether the transaction applied (always true for block events).
    pub ok: bool,
    /// The refusal, when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The transaction body (large byte fields shortened), when a transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub body: Option<serde_json::Value>,
    /// The events about this lease.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<serde_json::Value>,
}

/// One bisection round of a dispute.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BisectionRound {
    /// Round number as the ledger counts it.
    pub round: u32,
    /// The moves made in it.
    pub moves: Vec<BisectionMove>,
    /// What the round narrowed the dispute to: first leaf and leaves.
    pub narrowed_to: Option<(u64, u64)>,
}

/// One party's move.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BisectionMove {
    /// Who.
    pub party: AccountId,
    /// `provider` or `challenger`.
    pub role: String,
    /// Left child hash.
    pub left: Hash,
    /// Right child hash.
    pub right: Hash,
    /// Height.
    pub height: u64,
    /// The transaction.
    pub tx: Hash,
}

/// Tokens that moved because of a lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TransferView {
    /// `escrow_locked`, `provider_paid`, `verifiers_paid`, `fee`, `fee_burned`, `refunded`,
    /// `slashed`, `slash_reward`, `slash_burned`, `docked`.
    pub kind: String,
    /// Account, or `escrow`, `stake` for pools.
    pub from: String,
    /// Account, or `escrow`, `burn`, `verifiers`, `validators`.
    pub to: String,
    /// How much.
    pub amount: Amount,
    /// Height.
    pub height: u64,
    /// The transaction that caused it, if not the end of the block.
    pub tx: Option<Hash>,
}

/// `GET /api/v1/leases/{id}/evidence`: a lease's whole story from the index.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LeaseEvidence {
    /// The lease as the ledger holds it now.
    pub lease: LeaseView,
    /// Everything that happened to it, oldest first.
    pub timeline: Vec<TimelineEntry>,
    /// Dispute rounds, if it was disputed.
    pub rounds: Vec<BisectionRound>,
    /// The referee's ruling or the tie-break draw (the ledger's event JSON).
    #[schema(value_type = Option<Object>)]
    pub verdict: Option<serde_json::Value>,
    /// Token movements.
    pub transfers: Vec<TransferView>,
    /// Verifiers drawn to check it.
    pub verifiers: Vec<AccountId>,
    /// False if some of its blocks were indexed without their outcome, or the timeline was
    /// cut at the entry limit.
    pub complete: bool,
}

/// `GET /api/v1/search`: what an id or hash names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SearchResult {
    /// The query, trimmed.
    pub query: String,
    /// What it names (a number can name a block and a lease).
    pub matches: Vec<SearchMatch>,
}

/// One thing a search found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SearchMatch {
    /// `block`, `tx`, `lease`, `provider` or `account`.
    pub kind: String,
    /// Its id as the API spells it (height, hash, lease number, account id).
    pub id: String,
    /// The explorer route that shows it (`#/blocks/12`).
    pub route: String,
}
