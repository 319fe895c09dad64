//! Inference: models on offer, API keys, payment vouchers and response commitments.
//!
//! # The scheme (see `docs/protocol.md`, "Inference")
//!
//! - **Models.** A registered provider lists the models it serves with
//!   [`TxBody::OfferModels`](crate::tx::TxBody::OfferModels): each by the hash of its weights
//!   file, a readable name, a price per million input and per million output tokens, and the
//!   share of its responses it asks the network to re-execute ([`ModelOffer::sample_bps`]).
//! - **Keys.** A requester creates an API key: an ed25519 key pair whose secret is the
//!   `sk-…` string the client sends as a bearer token ([`ApiKey`]). The chain holds the key's
//!   id (the account id of its public key), its owner, a spending limit and a deposit.
//! - **Vouchers.** Whoever holds the key (the gateway the client called) pays a provider by
//!   signing a cumulative [`Voucher`] after each finished response: "on channel `c`, this key
//!   owes this provider `total` for `responses` responses". Each gateway signs its own
//!   channels, so two gateways never race one counter. The provider settles the latest voucher
//!   of a channel on chain in one transaction per batch
//!   ([`TxBody::SettleInference`](crate::tx::TxBody::SettleInference)); the ledger pays the
//!   difference since the channel's last settlement out of the key's deposit, never past its
//!   limit.
//! - **Commitments.** For each response the provider signs a [`ResponseCommitment`] binding
//!   the model, the request, the seed, the output and the price. The settlement carries the
//!   Merkle root over the batch's commitment leaves ([`ResponseCommitment::leaf`]) and the
//!   content hash of the batch's published [`BatchFile`] (requests and leaves, no outputs).
//! - **Checks.** Chain randomness drawn after the settlement picks responses at the
//!   provider's sampling rate; another provider serving the same weights re-executes each
//!   picked request and seals, then reveals, its own [`output_digest`]. The provider opens its
//!   commitment for that response with a Merkle proof. Disagreement draws tie-breakers; the
//!   majority wins, the loser is slashed and, when the provider loses, the response's price
//!   returns to the key's deposit.

use crate::amount::Amount;
use crate::codec::{self, Text};
use crate::codec_struct;
use crate::crypto::{self, AccountId, Keypair, PublicKey, Signature};
use crate::hash::{Hash, HashWriter};
use crate::tx::ChainId;
use bytes::BufMut;
use commonware_codec::{EncodeSize, Error as CodecError, Read, ReadExt as _, Write};

/// Longest model name (`all-minilm-l6-v2`, `genesis-gpt2`).
pub const MAX_MODEL_NAME_LEN: usize = 64;
/// Most models one provider may offer at once.
pub const MAX_MODELS_PER_PROVIDER: usize = 8;
/// Most responses one settlement may cover: bounds the per-block draw and the batch file.
pub const MAX_BATCH_RESPONSES: u64 = 4096;
/// Tokens per priced unit: prices are per million tokens, as public APIs quote them.
pub const TOKENS_PER_PRICE_UNIT: u128 = 1_000_000;
/// Namespace of voucher signatures.
pub const NAMESPACE_VOUCHER: &[u8] = b"orrery/voucher/v1";
/// Namespace of a provider's signature over a response commitment.
pub const NAMESPACE_RESPONSE: &[u8] = b"orrery/response/v1";
/// Prefix of an API key's text form, as OpenAI's keys have.
pub const API_KEY_PREFIX: &str = "sk-orr-";

/// A model's readable name.
pub type ModelName = Text<MAX_MODEL_NAME_LEN>;

/// What a model does.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Sentence embeddings (`/v1/embeddings`).
    Embedding,
    /// Text generation (`/v1/completions`, `/v1/chat/completions`).
    Generation,
}

impl Write for ModelKind {
    fn write(&self, buf: &mut impl BufMut) {
        match self {
            ModelKind::Embedding => 0u8.write(buf),
            ModelKind::Generation => 1u8.write(buf),
        }
    }
}
impl EncodeSize for ModelKind {
    fn encode_size(&self) -> usize {
        1
    }
}
impl Read for ModelKind {
    type Cfg = ();
    fn read_cfg(buf: &mut impl commonware_codec::Buf, _: &()) -> Result<Self, CodecError> {
        match u8::read(buf)? {
            0 => Ok(ModelKind::Embedding),
            1 => Ok(ModelKind::Generation),
            t => Err(CodecError::InvalidEnum(t)),
        }
    }
}

/// One model a provider serves, at its prices.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ModelOffer {
    /// Readable name clients ask for (`all-minilm-l6-v2`).
    #[cfg_attr(feature = "openapi", schema(value_type = String, max_length = 64))]
    pub name: ModelName,
    /// `Hash::of` the model's safetensors file: what the provider actually runs.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub weights: Hash,
    /// Embedding or generation.
    pub kind: ModelKind,
    /// Longest sequence in tokens (prompt plus generated tokens).
    pub context: u32,
    /// Price per million input tokens.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub price_in: Amount,
    /// Price per million output tokens.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub price_out: Amount,
    /// Share of responses, in basis points, re-executed by another provider. The ledger
    /// enforces a floor (`Params::min_inference_sample_bps`).
    pub sample_bps: u16,
}
codec_struct!(ModelOffer {
    name: ModelName,
    weights: Hash,
    kind: ModelKind,
    context: u32,
    price_in: Amount,
    price_out: Amount,
    sample_bps: u16,
});

impl ModelOffer {
    /// The price of a response: `ceil((in·price_in + out·price_out) / 1M)`, or `None` on
    /// overflow.
    pub fn cost(&self, tokens_in: u32, tokens_out: u32) -> Option<Amount> {
        let a = self.price_in.units().checked_mul(u128::from(tokens_in))?;
        let b = self.price_out.units().checked_mul(u128::from(tokens_out))?;
        let sum = a.checked_add(b)?;
        Some(Amount(sum.div_ceil(TOKENS_PER_PRICE_UNIT)))
    }
}

/// A cumulative promise to pay, signed by an API key.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Voucher {
    /// The chain the voucher pays on (no replay across chains).
    pub chain_id: ChainId,
    /// The paying key's public key; its account id names the key on chain.
    #[serde(with = "crate::crypto::public_key_hex")]
    pub key: PublicKey,
    /// The provider paid.
    pub provider: AccountId,
    /// The signer's channel: each gateway numbers its own, one per (key, provider, model).
    pub channel: u64,
    /// Everything this channel owes the provider so far.
    pub total: Amount,
    /// Responses this channel has paid for so far.
    pub responses: u64,
}
codec_struct!(Voucher {
    chain_id: ChainId,
    key: PublicKey,
    provider: AccountId,
    channel: u64,
    total: Amount,
    responses: u64,
});

/// A voucher with the key's signature.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SignedVoucher {
    /// The promise.
    pub voucher: Voucher,
    /// The key's signature over the voucher's encoding under [`NAMESPACE_VOUCHER`].
    #[serde(with = "crate::crypto::signature_hex")]
    pub signature: Signature,
}
codec_struct!(SignedVoucher {
    voucher: Voucher,
    signature: Signature,
});

impl Voucher {
    /// Sign with the API key's key pair.
    pub fn sign(self, key: &Keypair) -> SignedVoucher {
        let signature = key.sign(NAMESPACE_VOUCHER, &codec::encode(&self));
        SignedVoucher {
            voucher: self,
            signature,
        }
    }

    /// The key's id on chain.
    pub fn key_id(&self) -> AccountId {
        AccountId::from_public_key(&self.key)
    }
}

impl SignedVoucher {
    /// Whether the signature is the voucher's key's.
    pub fn verify(&self) -> bool {
        crypto::verify(
            &self.voucher.key,
            NAMESPACE_VOUCHER,
            &codec::encode(&self.voucher),
            &self.signature,
        )
    }
}

/// What a provider commits to for one response.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResponseCommitment {
    /// The weights hash of the model that answered.
    pub model: Hash,
    /// The paying key's id.
    pub key: AccountId,
    /// [`request_hash`] of the request as the provider received it.
    pub request: Hash,
    /// The sampling seed (0 for greedy decoding and embeddings).
    pub seed: u64,
    /// [`output_digest`] of the answer.
    pub output: Hash,
    /// Input tokens billed.
    pub tokens_in: u32,
    /// Output tokens billed.
    pub tokens_out: u32,
    /// What the response cost the key.
    pub charged: Amount,
}
codec_struct!(ResponseCommitment {
    model: Hash,
    key: AccountId,
    request: Hash,
    seed: u64,
    output: Hash,
    tokens_in: u32,
    tokens_out: u32,
    charged: Amount,
});

impl ResponseCommitment {
    /// The commitment's leaf in its batch's Merkle tree; also the response's receipt id.
    pub fn leaf(&self) -> Hash {
        Hash::tagged(b"orrery/inference/response/v1", &codec::encode(self))
    }

    /// The provider's signature over the commitment.
    pub fn sign(&self, provider: &Keypair) -> Signature {
        provider.sign(NAMESPACE_RESPONSE, &codec::encode(self))
    }

    /// Whether `signature` is `provider`'s over this commitment.
    pub fn verify(&self, provider: &PublicKey, signature: &Signature) -> bool {
        crypto::verify(
            provider,
            NAMESPACE_RESPONSE,
            &codec::encode(self),
            signature,
        )
    }
}

/// The content hash of a request's canonical bytes (the JSON the provider received, as the
/// gateway serialized it).
pub fn request_hash(canonical: &[u8]) -> Hash {
    Hash::tagged(b"orrery/inference/request/v1", canonical)
}

/// The digest of an answer that a check compares: the token counts and the output bytes
/// (UTF-8 text for a generation; each embedding's f32 values, little-endian, in order).
pub fn output_digest(tokens_in: u32, tokens_out: u32, output: &[u8]) -> Hash {
    let mut h = HashWriter::new();
    h.update(b"orrery/inference/output/v1")
        .update(&tokens_in.to_le_bytes())
        .update(&tokens_out.to_le_bytes())
        .update(output);
    h.finish()
}

/// The seal a checker posts before revealing its re-execution: binds the request it ran and
/// the digest it got to the batch, the response and the checker, so a copied seal fails its
/// owner's reveal.
pub fn check_seal(
    batch: u64,
    index: u64,
    checker: &AccountId,
    request: &Hash,
    output: &Hash,
) -> Hash {
    let mut h = HashWriter::new();
    h.update(b"orrery/inference/check-seal/v1")
        .update(&batch.to_be_bytes())
        .update(&index.to_be_bytes())
        .update(&checker.0)
        .update(request.as_bytes())
        .update(output.as_bytes());
    h.finish()
}

/// One response in a published batch file: the request and its commitment's leaf, but not
/// the output, so a checker cannot copy the provider's answer.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BatchEntry {
    /// The canonical request bytes, as JSON text.
    pub request: String,
    /// The response's commitment leaf.
    pub leaf: Hash,
}

/// What a provider publishes (as a blob) for each settlement: its entries in leaf order. The
/// settlement's root is the Merkle root over the leaves.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BatchFile {
    /// The model that answered every response of the batch.
    pub model: Hash,
    /// The entries.
    pub entries: Vec<BatchEntry>,
}

/// Longest canonical request a provider accepts or a batch file holds (bytes of JSON).
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// Most inputs one embeddings request may carry.
pub const MAX_EMBEDDING_INPUTS: usize = 64;
/// Most stop strings a generation may name.
pub const MAX_STOP_STRINGS: usize = 4;

/// A request as the gateway forwards it to a provider. Its canonical bytes are
/// `serde_json::to_vec(&request)`; [`request_hash`] of them is what the commitment names and
/// what a checker recomputes from the batch file.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferenceRequest {
    /// The weights hash of the model asked for.
    pub model: Hash,
    /// The paying key.
    pub key: AccountId,
    /// The gateway's channel that will pay.
    pub channel: u64,
    /// A number the gateway makes unique per request, so equal prompts get distinct receipts.
    pub nonce: u64,
    /// What to compute.
    pub task: InferenceTask,
}

impl InferenceRequest {
    /// The canonical bytes.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// [`request_hash`] of the canonical bytes.
    pub fn hash(&self) -> Hash {
        request_hash(&self.canonical_bytes())
    }

    /// The sampling seed the commitment names.
    pub fn seed(&self) -> u64 {
        match &self.task {
            InferenceTask::Embeddings { .. } => 0,
            InferenceTask::Completion { sampling, .. } | InferenceTask::Chat { sampling, .. } => {
                sampling.seed
            }
        }
    }
}

/// How a generation samples. Equal parameters on equal weights give equal tokens, bit for bit.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sampling {
    /// Most tokens to generate (at least 1).
    pub max_tokens: u32,
    /// 0 decodes greedily; above 0 samples with `seed`.
    pub temperature: f32,
    /// Nucleus sampling mass in (0, 1].
    pub top_p: f32,
    /// The sampling seed (the gateway draws one when the client gives none).
    pub seed: u64,
    /// Strings that end the generation (not included in the output).
    pub stop: Vec<String>,
}

/// One chat message.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

/// What an inference request computes.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum InferenceTask {
    /// One embedding per input.
    Embeddings {
        /// The texts.
        inputs: Vec<String>,
    },
    /// Continue a prompt.
    Completion {
        /// The prompt.
        prompt: String,
        /// Sampling.
        sampling: Sampling,
    },
    /// Answer a conversation (the provider applies the model's chat template).
    Chat {
        /// The conversation.
        messages: Vec<ChatMessage>,
        /// Sampling.
        sampling: Sampling,
    },
}

/// What the provider computed, as it streams back to the gateway.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InferenceOutput {
    /// One vector per input, in order.
    Embeddings {
        /// The vectors.
        vectors: Vec<Vec<f32>>,
    },
    /// Generated text.
    Text {
        /// The text.
        text: String,
        /// `stop` (a stop string or end of text) or `length` (`max_tokens` reached).
        finish_reason: String,
    },
}

impl InferenceOutput {
    /// The bytes [`output_digest`] covers: the text's UTF-8 bytes, or every vector's f32
    /// values little-endian, in order.
    pub fn digest_bytes(&self) -> Vec<u8> {
        match self {
            InferenceOutput::Text { text, .. } => text.as_bytes().to_vec(),
            InferenceOutput::Embeddings { vectors } => vectors
                .iter()
                .flat_map(|v| v.iter().flat_map(|x| x.to_le_bytes()))
                .collect(),
        }
    }
}

/// A provider's finished answer with its signed commitment: the last message of every
/// response, streamed or not.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SignedResponse {
    /// The answer.
    pub output: InferenceOutput,
    /// What the provider commits to.
    pub commitment: ResponseCommitment,
    /// The provider's account.
    pub provider: AccountId,
    /// The provider's public key (its account id derives from it).
    #[serde(with = "crate::crypto::public_key_hex")]
    pub provider_key: PublicKey,
    /// The provider's signature over the commitment under [`NAMESPACE_RESPONSE`].
    #[serde(with = "crate::crypto::signature_hex")]
    pub signature: Signature,
}

impl SignedResponse {
    /// Whether the response is internally consistent: signed by the provider it names, and
    /// its commitment's output digest is the output's.
    pub fn verify(&self) -> bool {
        AccountId::from_public_key(&self.provider_key) == self.provider
            && self.commitment.verify(&self.provider_key, &self.signature)
            && self.commitment.output
                == output_digest(
                    self.commitment.tokens_in,
                    self.commitment.tokens_out,
                    &self.output.digest_bytes(),
                )
    }
}

/// One server-sent event of a streamed generation from a provider (`data: <json>`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    /// New text (one or more tokens' worth).
    Delta {
        /// The text since the previous event.
        text: String,
    },
    /// The end: the whole answer and its commitment.
    Done(Box<SignedResponse>),
    /// The provider failed; nothing is owed.
    Error {
        /// Why.
        message: String,
    },
}

/// What a gateway sends a provider after a response finished: the voucher that pays it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VoucherDelivery {
    /// The voucher, whose `responses` is one more than the channel's previous voucher's.
    pub voucher: SignedVoucher,
    /// The leaf of the response it pays for.
    pub leaf: Hash,
}

/// An API key: a key pair whose secret travels as `sk-orr-<64 hex>`.
#[derive(Clone)]
pub struct ApiKey(Keypair);

/// Why a string is not an API key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not an Orrery API key: expected `{API_KEY_PREFIX}` followed by 64 hex digits")]
pub struct ParseApiKeyError;

impl ApiKey {
    /// A key from 32 secret bytes.
    pub fn from_secret(bytes: &[u8; 32]) -> Result<ApiKey, ParseApiKeyError> {
        Keypair::from_secret_bytes(bytes)
            .map(ApiKey)
            .map_err(|_| ParseApiKeyError)
    }

    /// Parse the text form.
    pub fn parse(text: &str) -> Result<ApiKey, ParseApiKeyError> {
        let hexpart = text
            .trim()
            .strip_prefix(API_KEY_PREFIX)
            .ok_or(ParseApiKeyError)?;
        let mut secret = [0u8; 32];
        hex::decode_to_slice(hexpart, &mut secret).map_err(|_| ParseApiKeyError)?;
        Self::from_secret(&secret)
    }

    /// The text form a client sends as its bearer token.
    pub fn to_text(&self) -> String {
        format!("{API_KEY_PREFIX}{}", hex::encode(self.0.secret_bytes()))
    }

    /// The key pair that signs vouchers.
    pub fn keypair(&self) -> &Keypair {
        &self.0
    }

    /// The key's id on chain.
    pub fn id(&self) -> AccountId {
        self.0.account()
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKey({})", self.id().short())
    }
}

#[cfg(test)]
mod tests;
