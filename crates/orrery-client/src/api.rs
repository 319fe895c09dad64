//! The JSON shapes of the node's HTTP API (`/api/v1`), shared by the node (which serializes
//! them) and this SDK (which deserializes them), so the two can never drift apart.
//!
//! Conventions:
//! - hashes are 64 lower-case hex characters, account ids `orr` + 40 hex, amounts decimal
//!   strings (the `orrery-types` serde forms);
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
    #[schema(value_type = String)]
    pub hash: Hash,
}

/// The chain as the validator sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChainStatus {
    /// The chain's name.
    pub chain_id: String,
    /// Height of the last finalized block.
    pub height: u64,
    /// State root after that block.
    #[schema(value_type = String)]
    pub state_root: Hash,
    /// Its hash.
    #[schema(value_type = String)]
    pub last_block_hash: Hash,
    /// Its time (milliseconds since the Unix epoch).
    pub last_block_time_ms: u64,
    /// Number of validators.
    pub validators: u64,
    /// Peers this validator is connected to.
    pub peers_connected: u64,
    /// Transactions waiting in the mempool.
    pub mempool_len: u64,
    /// Whether the validator is still catching up.
    pub syncing: bool,
}

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
    #[schema(value_type = String)]
    pub genesis: Amount,
    /// Minted by emissions since genesis.
    #[schema(value_type = String)]
    pub minted: Amount,
    /// Burned (fees, penalties, slashes) since genesis.
    #[schema(value_type = String)]
    pub burned: Amount,
    /// Spendable balances.
    #[schema(value_type = String)]
    pub balances: Amount,
    /// Provider stakes.
    #[schema(value_type = String)]
    pub stakes: Amount,
    /// Stake being unbonded.
    #[schema(value_type = String)]
    pub unbonding: Amount,
    /// Locked in lease escrow.
    #[schema(value_type = String)]
    pub escrow: Amount,
    /// Whether balances + stakes + unbonding + escrow = genesis + minted − burned.
    pub invariant_holds: bool,
}

/// An account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccountView {
    /// Its id.
    #[schema(value_type = String)]
    pub id: AccountId,
    /// Spendable balance.
    #[schema(value_type = String)]
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
    #[schema(value_type = String)]
    pub id: AccountId,
    /// Hardware, region, endpoint and prices.
    #[schema(value_type = Object)]
    pub offer: ProviderOffer,
    /// Bonded stake.
    #[schema(value_type = String)]
    pub stake: Amount,
    /// Leases not yet settled or timed out.
    pub active_leases: u32,
    /// Height of registration.
    pub registered_at: u64,
    /// Track record.
    pub reputation: ReputationView,
    /// Paid to it over its life, after fees.
    #[schema(value_type = String)]
    pub earned: Amount,
}

/// A lease.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LeaseView {
    /// Its number.
    pub id: u64,
    /// Who pays.
    #[schema(value_type = String)]
    pub requester: AccountId,
    /// Who works.
    #[schema(value_type = String)]
    pub provider: AccountId,
    /// Content hash of the job bundle (a blob).
    #[schema(value_type = String)]
    pub job: Hash,
    /// Resources, agreed prices and limits.
    #[schema(value_type = Object)]
    pub terms: LeaseTerms,
    /// How the result is checked.
    #[schema(value_type = Object)]
    pub verification: Verification,
    /// Tokens locked.
    #[schema(value_type = String)]
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
    #[schema(value_type = String)]
    pub hash: Hash,
    /// The signer's account.
    #[schema(value_type = String)]
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
    #[schema(value_type = String)]
    pub tx: Hash,
    /// The sender.
    #[schema(value_type = String)]
    pub sender: AccountId,
    /// Kind of transaction (`transfer`, `open_lease`, ...).
    pub kind: String,
    /// Whether it applied. A refused transaction changed nothing, not even the nonce.
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
    #[schema(value_type = String)]
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
    #[schema(value_type = String)]
    pub hash: Hash,
    /// The previous block's id.
    #[schema(value_type = String)]
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
    #[schema(value_type = String)]
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
    #[schema(value_type = String)]
    pub hash: Hash,
    /// Block time.
    pub time_ms: u64,
    /// Number of transactions.
    pub tx_count: u32,
    /// State root after the block.
    #[schema(value_type = String)]
    pub state_root: Hash,
    /// Events of the applied transactions, in order, then the end-of-block events.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<serde_json::Value>,
}

/// Answer to a blob upload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BlobStored {
    /// The blob's hash (the address it was stored under).
    #[schema(value_type = String)]
    pub hash: Hash,
    /// Its size.
    pub size: u64,
    /// False if the node already had it.
    pub created: bool,
}
