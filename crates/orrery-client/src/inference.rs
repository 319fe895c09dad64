//! Inference state as the node's read API shows it (`/api/v1/inference/…`): the model
//! catalog, API keys, settled batches, open response checks and served receipts.
//!
//! The provider agent polls [`Client::inference_checks`] for its check duties (responses it
//! must re-execute, seal and reveal as a drawn checker, or open as the batch's provider); the
//! CLI and the explorer read the rest. Shapes are the node's own (it serializes these types).

use crate::{Client, Error};
use orrery_types::amount::Amount;
use orrery_types::crypto::AccountId;
use orrery_types::hash::Hash;
use orrery_types::inference::{ModelKind, ResponseCommitment};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One model name in the catalog: every bonded provider's offer under that name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InferenceModelView {
    /// The readable name clients ask for (`all-minilm-l6-v2`).
    pub name: String,
    /// Embedding or generation.
    pub kind: ModelKind,
    /// Longest sequence in tokens (the smallest any provider of this name offers).
    pub context: u32,
    /// The weights hash most offers under this name serve (ties: the smallest hash).
    pub weights: Hash,
    /// Providers offering this name.
    pub providers: u32,
    /// Cheapest price per million input tokens.
    pub min_price_in: Amount,
    /// Cheapest price per million output tokens.
    pub min_price_out: Amount,
    /// Median price per million input tokens.
    pub median_price_in: Amount,
    /// Median price per million output tokens.
    pub median_price_out: Amount,
}

/// An API key's state on chain, and what this node's gateway has signed for it but not seen
/// settled yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InferenceKeyView {
    /// The key's id (the account id of its public key).
    pub id: AccountId,
    /// Who created it and may fund or revoke it.
    pub owner: AccountId,
    /// Most the key may ever pay.
    pub limit: Amount,
    /// What it has paid so far.
    pub spent: Amount,
    /// Tokens locked for it now.
    pub deposit: Amount,
    /// Height it was revoked at, if it was.
    #[serde(default)]
    pub revoked_at: Option<u64>,
    /// Vouchers this node's gateway signed for the key that no settlement has paid yet.
    pub outstanding: Amount,
}

/// One checker of a response check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CheckerView {
    /// The checker's account.
    pub checker: AccountId,
    /// The round that drew it: 1, or 2 for a tie-breaker (as the ledger numbers rounds).
    pub round: u32,
    /// Whether it has sealed its re-execution.
    pub sealed: bool,
    /// Whether it has revealed.
    pub revealed: bool,
    /// Whether it missed a deadline.
    pub missed: bool,
}

/// One response of a batch drawn for a check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ResponseCheckView {
    /// The response's leaf index in the batch.
    pub index: u64,
    /// The current round: 1, or 2 once round 1 disagreed.
    pub round: u32,
    /// The drawn checkers.
    pub checkers: Vec<CheckerView>,
    /// Height by which checkers must seal.
    pub seal_deadline: u64,
    /// Height by which checkers must reveal (and the provider open).
    pub reveal_deadline: u64,
    /// Whether the provider has opened its commitment.
    pub opened: bool,
    /// The outcome, once decided (as the ledger names it), else `None`.
    #[serde(default)]
    pub outcome: Option<String>,
}

/// A settled batch of inference responses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InferenceBatchView {
    /// The batch's number.
    pub id: u64,
    /// The provider that served it.
    pub provider: AccountId,
    /// The paying key.
    pub key: AccountId,
    /// The gateway channel whose voucher settled it.
    pub channel: u64,
    /// The model's weights hash.
    pub model: Hash,
    /// Merkle root over the responses' commitment leaves.
    pub root: Hash,
    /// Content hash of the published batch file (a blob).
    pub file: Hash,
    /// Responses in the batch.
    pub responses: u64,
    /// Payment held until the checks end.
    pub held: Amount,
    /// Height of the settlement.
    pub settled_at: u64,
    /// The share of responses drawn for checks, in basis points.
    pub sample_bps: u16,
    /// Where the batch stands (as the ledger names it: e.g. `checking`, `paid`).
    pub phase: String,
    /// The drawn responses and their checks.
    pub checks: Vec<ResponseCheckView>,
    /// Returned to the key's deposit after lost checks.
    pub refunded: Amount,
    /// Paid to the provider.
    pub paid: Amount,
}

/// What a party does in an open response check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckRole {
    /// A drawn checker: re-execute the request, seal, then reveal.
    Checker,
    /// The batch's provider: open the commitment with its Merkle proof.
    Provider,
}

/// An open response check in which a party has a duty.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InferenceCheckView {
    /// The batch.
    pub batch: u64,
    /// The response's leaf index.
    pub index: u64,
    /// The check's current round.
    pub round: u32,
    /// The party's role.
    pub role: CheckRole,
    /// `seal` (checkers seal), `reveal` (checkers reveal, the provider opens) or `decided`
    /// (as far as this party is concerned there is nothing left to do).
    pub phase: String,
    /// Height by which checkers must seal.
    pub seal_deadline: u64,
    /// Height by which checkers must reveal and the provider open.
    pub reveal_deadline: u64,
    /// Content hash of the batch file (the requests to re-execute).
    pub file: Hash,
    /// The model's weights hash.
    pub model: Hash,
    /// The batch's provider.
    pub provider: AccountId,
    /// Whether the party (as a checker) has sealed.
    pub sealed: bool,
    /// Whether the party (as a checker) has revealed.
    pub revealed: bool,
    /// Whether the provider has opened the response.
    pub opened: bool,
}

/// A response this node's gateway served and paid for: the provider's signed commitment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InferenceReceiptView {
    /// The commitment's leaf: the receipt's id.
    pub leaf: Hash,
    /// What the provider committed to.
    #[schema(value_type = Object)]
    pub commitment: ResponseCommitment,
    /// The provider's signature over the commitment (hex).
    pub signature: String,
    /// The provider.
    pub provider: AccountId,
    /// The model's name as the client asked for it.
    pub model_name: String,
    /// The paying key.
    pub key: AccountId,
    /// The gateway channel that paid.
    pub channel: u64,
    /// The `responses` count of the voucher that paid it: the batch of the channel whose
    /// settled range covers this number holds the response.
    #[serde(default)]
    pub voucher_responses: u64,
    /// When the gateway served it (milliseconds since the Unix epoch).
    pub time_ms: u64,
    /// The batch that settled it, once this node has seen it settled.
    #[serde(default)]
    pub batch: Option<u64>,
}

impl Client {
    /// The model catalog: every name bonded providers offer, with prices.
    pub fn inference_models(&self) -> Result<Vec<InferenceModelView>, Error> {
        self.get("/inference/models")
    }

    /// An API key's state, or `None` if no such key exists.
    pub fn inference_key(&self, id: &AccountId) -> Result<Option<InferenceKeyView>, Error> {
        self.get_opt(&format!("/inference/keys/{id}"))
    }

    /// A settled batch, or `None` if no batch has that number.
    pub fn inference_batch(&self, id: u64) -> Result<Option<InferenceBatchView>, Error> {
        self.get_opt(&format!("/inference/batches/{id}"))
    }

    /// The open response checks in which `party` is a drawn checker or the batch's provider.
    pub fn inference_checks(&self, party: &AccountId) -> Result<Vec<InferenceCheckView>, Error> {
        self.get(&format!("/inference/checks?party={party}"))
    }

    /// A receipt this node's gateway served, or `None` if it served no response with that
    /// leaf.
    pub fn inference_receipt(&self, leaf: &Hash) -> Result<Option<InferenceReceiptView>, Error> {
        self.get_opt(&format!("/inference/receipts/{leaf}"))
    }
}
