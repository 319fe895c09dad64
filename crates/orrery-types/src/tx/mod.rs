//! Transactions: what a user can ask the chain to do.
//!
//! A [`SignedTx`] is `signer public key || signature || tx`. The signature covers the
//! canonical encoding of [`Tx`], which carries the chain id and the signer's next nonce:
//! - the **chain id** stops a transaction signed for one chain (a devnet) from being replayed on
//!   another (mainnet);
//! - the **nonce** must equal the account's current nonce and is bumped when the transaction
//!   applies, so the same transaction can never apply twice on one chain.
//!
//! The signature is made under [`crate::crypto::NAMESPACE_TX`], so no other signed message of
//! the protocol can be passed off as a transaction.
//!
//! Every variable-length field is bounded by its type; a whole encoded transaction is at most
//! [`MAX_TX_BYTES`].

use crate::amount::Amount;
use crate::challenge::{ChallengeRows, MAX_CHALLENGE_OPEN_BYTES};
use crate::cluster::{ClusterMembers, LossBits};
use crate::codec::{self, Blob, BoundedVec, DecodeError, Text};
use crate::codec_struct;
use crate::crypto::{self, AccountId, Keypair, NAMESPACE_TX, PublicKey, Signature};
use crate::hash::{Hash, HashWriter};
use crate::inference::{MAX_MODELS_PER_PROVIDER, ModelOffer, ResponseCommitment, SignedVoucher};
use crate::merkle::MerkleProof;
use crate::resources::{Endpoint, Hardware, PriceList, Region, ResourceRequest, Usage};
use crate::workload::{FailedAt, JobFailure, output_ending};
use bytes::BufMut;
use commonware_codec::{EncodeSize, Error as CodecError, Read, ReadExt as _, Write};

/// Longest chain id.
pub const MAX_CHAIN_ID_LEN: usize = 64;
/// Largest encoded signed transaction. Bounds mempool memory and block size; the biggest
/// legitimate transaction (a provider registration with a long endpoint) is well under 1 KiB.
pub const MAX_TX_BYTES: usize = 4096;

/// Largest job bundle an [`TxBody::Adjudicate`] may carry. The referee runs on every validator
/// inside block execution, so what it loads is bounded; 2 MiB holds every example job (the
/// biggest, the ML corpus, is 0.2 MB) and a wasm module of realistic size.
pub const MAX_REFEREE_BUNDLE_BYTES: usize = 2 << 20;
/// Largest workload state an [`TxBody::Adjudicate`] may carry (the agreed state before the
/// disputed step). 2 MiB holds the example ML models with their optimizer state.
pub const MAX_REFEREE_STATE_BYTES: usize = 2 << 20;
/// Largest encoded adjudication transaction: its bundle and state plus a proof and headers.
pub const MAX_ADJUDICATE_TX_BYTES: usize =
    MAX_REFEREE_BUNDLE_BYTES + MAX_REFEREE_STATE_BYTES + MAX_TX_BYTES;
/// Most providers a `Redundant { k }` lease may ask for (the primary and `k - 1` verifiers).
pub const MAX_REDUNDANCY: u8 = 5;

/// A chain's name, e.g. `orrery-devnet-1`.
pub type ChainId = Text<MAX_CHAIN_ID_LEN>;

/// A lease's number, assigned by the ledger in order of opening.
pub type LeaseId = u64;

/// An inference batch's number, assigned by the ledger in order of settlement.
pub type BatchId = u64;

/// The models one provider offers.
pub type ModelOffers = BoundedVec<ModelOffer, MAX_MODELS_PER_PROVIDER>;

/// How a lease's result is checked. See `docs/protocol.md`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verification {
    /// Reputation only: the result is paid after the challenge window.
    None,
    /// Re-executed by a random verifier with a probability set by the protocol.
    Sampled,
    /// Run by `k` independent providers; the majority wins.
    Redundant {
        /// Number of providers (the ledger accepts `2..=MAX_REDUNDANCY`).
        #[cfg_attr(feature = "openapi", schema(minimum = 2, maximum = 5))]
        k: u8,
    },
}

impl Write for Verification {
    fn write(&self, buf: &mut impl BufMut) {
        match self {
            Verification::None => 0u8.write(buf),
            Verification::Sampled => 1u8.write(buf),
            Verification::Redundant { k } => {
                2u8.write(buf);
                k.write(buf);
            }
        }
    }
}
impl EncodeSize for Verification {
    fn encode_size(&self) -> usize {
        match self {
            Verification::Redundant { .. } => 2,
            _ => 1,
        }
    }
}
impl Read for Verification {
    type Cfg = ();
    fn read_cfg(buf: &mut impl commonware_codec::Buf, _: &()) -> Result<Self, CodecError> {
        match u8::read(buf)? {
            0 => Ok(Verification::None),
            1 => Ok(Verification::Sampled),
            2 => Ok(Verification::Redundant { k: u8::read(buf)? }),
            t => Err(CodecError::InvalidEnum(t)),
        }
    }
}

/// What a provider offers the market.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProviderOffer {
    /// The machine.
    pub hardware: Hardware,
    /// Where it is.
    #[cfg_attr(feature = "openapi", schema(value_type = String, max_length = 32))]
    pub region: Region,
    /// Where requesters and verifiers reach the provider's agent.
    #[cfg_attr(feature = "openapi", schema(value_type = String, max_length = 256))]
    pub endpoint: Endpoint,
    /// Listed prices; a lease may agree on these or less.
    pub prices: PriceList,
}
codec_struct!(ProviderOffer {
    hardware: Hardware,
    region: Region,
    endpoint: Endpoint,
    prices: PriceList,
});

/// What a lease reserves and at what price.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LeaseTerms {
    /// Resources held for the job.
    pub resources: ResourceRequest,
    /// Agreed prices: every component at most the provider's listed price.
    pub prices: PriceList,
    /// Most seconds the requester pays for.
    pub max_seconds: u64,
    /// Most compute units the requester pays for.
    pub max_units: u64,
}
codec_struct!(LeaseTerms {
    resources: ResourceRequest,
    prices: PriceList,
    max_seconds: u64,
    max_units: u64,
});

impl LeaseTerms {
    /// The most this lease can cost: the amount locked in escrow.
    pub fn max_cost(&self) -> Option<Amount> {
        self.prices.cost(
            &self.resources,
            &Usage {
                seconds: self.max_seconds,
                units: self.max_units,
            },
        )
    }
}

/// The action a transaction performs.
// The inference variants (a signed voucher, an opened commitment) are a few hundred bytes
// inline. Transactions live in blocks of bounded count and are decoded once; boxing them would
// change the shape every gateway, provider and test constructs, for no measurable gain.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TxBody {
    /// Move tokens to another account.
    Transfer {
        /// Recipient.
        to: AccountId,
        /// How much.
        amount: Amount,
    },
    /// Offer the signer's machine to the market.
    RegisterProvider(ProviderOffer),
    /// Change a registered provider's offer.
    UpdateProvider(ProviderOffer),
    /// Lock tokens as the signer's provider stake.
    Bond {
        /// How much.
        amount: Amount,
    },
    /// Start releasing stake; it returns to the balance after the unbonding delay.
    Unbond {
        /// How much.
        amount: Amount,
    },
    /// Rent a provider for a job; the maximum cost is locked in escrow.
    OpenLease {
        /// The provider.
        provider: AccountId,
        /// Content hash of the job bundle.
        job: Hash,
        /// Resources, prices and limits.
        terms: LeaseTerms,
        /// Height by which the result must be committed.
        deadline: u64,
        /// How the result is checked.
        verification: Verification,
    },
    /// The provider has fetched the job and started it.
    StartLease {
        /// Which lease.
        lease: LeaseId,
    },
    /// The provider's result, sealed: `seal = result_seal(lease, provider, claim)`. The claim
    /// itself is revealed with [`TxBody::RevealResult`] once every check has sealed its own, so
    /// nobody can copy it (see `docs/protocol.md`).
    CommitResult {
        /// Which lease.
        lease: LeaseId,
        /// [`result_seal`] of the provider's claim.
        seal: Hash,
        /// Metered usage.
        usage: Usage,
    },
    /// A verifier's result for a lease it was drawn to check, sealed like the provider's.
    CommitCheck {
        /// Which lease.
        lease: LeaseId,
        /// [`result_seal`] of the verifier's claim.
        seal: Hash,
    },
    /// Open a sealed claim (provider or verifier).
    RevealResult {
        /// Which lease.
        lease: LeaseId,
        /// The claim; must match the sender's seal.
        claim: ResultClaim,
        /// For a failure claim, the runtime's message for the requester (not sealed, not
        /// compared); empty otherwise.
        note: FailureNote,
    },
    /// One move of a bisection dispute: the two children of the sender's current node.
    DisputeMove {
        /// Which lease.
        lease: LeaseId,
        /// Left child hash.
        left: Hash,
        /// Right child hash.
        right: Hash,
    },
    /// Give the referee what it needs to execute the disputed step: the job bundle (hashed
    /// against the lease's job) and the agreed state before the step with its Merkle proof.
    Adjudicate {
        /// Which lease.
        lease: LeaseId,
        /// The job bundle's bytes.
        bundle: Blob<MAX_REFEREE_BUNDLE_BYTES>,
        /// The agreed state before the disputed step (empty when the dispute is over init).
        state: Blob<MAX_REFEREE_STATE_BYTES>,
        /// Proof that `checkpoint(state)` is the agreed leaf (unused for init).
        proof: MerkleProof,
    },
    /// The requester accepts a committed result before the challenge window ends.
    SettleLease {
        /// Which lease.
        lease: LeaseId,
    },
    /// Replace the models the signer (a registered provider) serves. An empty list stops
    /// serving.
    OfferModels {
        /// The models, each by its weights hash, with prices and sampling rate.
        models: ModelOffers,
    },
    /// Create an API key owned by the signer: `deposit` moves from the signer's balance to the
    /// key, which may pay providers at most `limit` over its life.
    CreateInferenceKey {
        /// The key's id: the account id of its public key.
        key: AccountId,
        /// Most the key may ever pay.
        limit: Amount,
        /// Tokens locked for it now.
        deposit: Amount,
    },
    /// Add to a key's deposit (its owner only).
    FundInferenceKey {
        /// Which key.
        key: AccountId,
        /// How much.
        amount: Amount,
    },
    /// Revoke a key (its owner only): vouchers it signed may still settle for
    /// `voucher_grace_blocks`, then what is left of its deposit returns to the owner.
    RevokeInferenceKey {
        /// Which key.
        key: AccountId,
    },
    /// A provider settles a channel's latest voucher for one batch of responses from one
    /// model: the ledger holds the difference since the channel's last settlement until the
    /// batch's checks end.
    SettleInference {
        /// The key's cumulative voucher for this channel.
        voucher: SignedVoucher,
        /// The weights hash of the model that answered every response of the batch.
        model: Hash,
        /// Merkle root over the batch's response commitment leaves, in order.
        root: Hash,
        /// Content hash of the published batch file (requests and leaves).
        batch: Hash,
    },
    /// A drawn checker seals its re-execution of one response of a batch.
    SealInferenceCheck {
        /// Which batch.
        batch: BatchId,
        /// Which response (its leaf index).
        index: u64,
        /// `check_seal(batch, index, checker, request, output)`.
        seal: Hash,
    },
    /// A checker reveals what it sealed.
    RevealInferenceCheck {
        /// Which batch.
        batch: BatchId,
        /// Which response.
        index: u64,
        /// `request_hash` of the request it ran; zero if the batch file was unavailable.
        request: Hash,
        /// `output_digest` of its answer; zero if the batch file was unavailable.
        output: Hash,
    },
    /// The provider opens its commitment to a drawn response, with its Merkle proof.
    OpenInferenceResponse {
        /// Which batch.
        batch: BatchId,
        /// Which response.
        index: u64,
        /// The commitment whose leaf is at `index`.
        commitment: ResponseCommitment,
        /// Proof of the leaf under the batch's root.
        proof: MerkleProof,
    },
    /// A drawn provider answers its open challenge: the Merkle root over the rows of `C = A·B`
    /// (see [`crate::challenge`]). Accepted only from the challenged provider, for the
    /// challenge drawn at `drawn_at`, before its deadline, once.
    AnswerChallenge {
        /// Height at which the challenge was drawn.
        drawn_at: u64,
        /// Rows of `A` the provider solved; must equal the challenge's.
        rows: u64,
        /// Merkle root over `row_leaf(i, C[i])` for every row `i`.
        root: Hash,
    },
    /// The provider opens the rows of its answered challenge that the seed of the block after
    /// the answer drew, each with its Merkle proof; the chain checks them with Freivalds' test.
    /// Bigger than [`MAX_TX_BYTES`]: held to [`MAX_CHALLENGE_OPEN_BYTES`].
    OpenChallenge {
        /// Height at which the challenge was drawn.
        drawn_at: u64,
        /// The drawn rows, in ascending index order.
        rows: ChallengeRows,
    },
    /// A bonded provider without an open challenge asks for one at the next block: how an
    /// offline provider comes back without waiting to be drawn.
    RequestChallenge {},
    /// Rent a cluster of providers for one training job run in rounds (see
    /// [`crate::cluster`]): one lease, one escrow. `terms` are one worker-round's: its
    /// resources, prices within every member's offer, and the seconds and units a round may
    /// take; a completed worker-round is paid `terms.max_cost()`.
    OpenClusterLease {
        /// The member providers, in worker order.
        members: ClusterMembers,
        /// Content hash of the cluster job bundle (model, data and `[cluster]` spec).
        job: Hash,
        /// One worker-round's resources, prices and limits.
        terms: LeaseTerms,
        /// Number of rounds.
        rounds: u32,
        /// Inner steps each worker trains per round (H); must match the bundle's spec.
        inner_steps: u32,
        /// Blocks each round has before members that have not committed are dropped.
        round_blocks: u64,
        /// Probability, in basis points, that a committed (worker, round) is re-executed.
        check_bps: u16,
    },
    /// A member commits its work for one round: one transaction per worker per round.
    CommitClusterRound {
        /// Which cluster lease.
        lease: LeaseId,
        /// Which round (the lease's open round).
        round: u32,
        /// Hash of the weights the worker started the round from.
        start: Hash,
        /// [`crate::cluster::cluster_delta_commitment`] of the worker's delta hash
        /// (`Delta::hash`, over its canonical bytes).
        delta: Hash,
        /// The worker's mean inner loss over the round.
        loss: LossBits,
    },
    /// A drawn verifier seals the delta hash it computed for a worker's round.
    SealClusterCheck {
        /// Which cluster lease.
        lease: LeaseId,
        /// Which round.
        round: u32,
        /// Whose work.
        worker: AccountId,
        /// [`crate::cluster::cluster_check_seal`] of the verifier's delta hash.
        seal: Hash,
    },
    /// A verifier reveals the delta hash it sealed.
    RevealClusterCheck {
        /// Which cluster lease.
        lease: LeaseId,
        /// Which round.
        round: u32,
        /// Whose work.
        worker: AccountId,
        /// The delta hash the verifier computed.
        delta: Hash,
    },
}

impl TxBody {
    /// Short name of the kind of transaction, for logs, receipts and the explorer.
    pub fn kind(&self) -> &'static str {
        match self {
            TxBody::Transfer { .. } => "transfer",
            TxBody::RegisterProvider(_) => "register_provider",
            TxBody::UpdateProvider(_) => "update_provider",
            TxBody::Bond { .. } => "bond",
            TxBody::Unbond { .. } => "unbond",
            TxBody::OpenLease { .. } => "open_lease",
            TxBody::StartLease { .. } => "start_lease",
            TxBody::CommitResult { .. } => "commit_result",
            TxBody::SettleLease { .. } => "settle_lease",
            TxBody::CommitCheck { .. } => "commit_check",
            TxBody::RevealResult { .. } => "reveal_result",
            TxBody::DisputeMove { .. } => "dispute_move",
            TxBody::Adjudicate { .. } => "adjudicate",
            TxBody::OfferModels { .. } => "offer_models",
            TxBody::CreateInferenceKey { .. } => "create_inference_key",
            TxBody::FundInferenceKey { .. } => "fund_inference_key",
            TxBody::RevokeInferenceKey { .. } => "revoke_inference_key",
            TxBody::AnswerChallenge { .. } => "answer_challenge",
            TxBody::OpenChallenge { .. } => "open_challenge",
            TxBody::RequestChallenge {} => "request_challenge",
            TxBody::SettleInference { .. } => "settle_inference",
            TxBody::SealInferenceCheck { .. } => "seal_inference_check",
            TxBody::RevealInferenceCheck { .. } => "reveal_inference_check",
            TxBody::OpenInferenceResponse { .. } => "open_inference_response",
            TxBody::OpenClusterLease { .. } => "open_cluster_lease",
            TxBody::CommitClusterRound { .. } => "commit_cluster_round",
            TxBody::SealClusterCheck { .. } => "seal_cluster_check",
            TxBody::RevealClusterCheck { .. } => "reveal_cluster_check",
        }
    }
}

impl Write for TxBody {
    fn write(&self, buf: &mut impl BufMut) {
        match self {
            TxBody::Transfer { to, amount } => {
                0u8.write(buf);
                to.write(buf);
                amount.write(buf);
            }
            TxBody::RegisterProvider(offer) => {
                1u8.write(buf);
                offer.write(buf);
            }
            TxBody::UpdateProvider(offer) => {
                2u8.write(buf);
                offer.write(buf);
            }
            TxBody::Bond { amount } => {
                3u8.write(buf);
                amount.write(buf);
            }
            TxBody::Unbond { amount } => {
                4u8.write(buf);
                amount.write(buf);
            }
            TxBody::OpenLease {
                provider,
                job,
                terms,
                deadline,
                verification,
            } => {
                5u8.write(buf);
                provider.write(buf);
                job.write(buf);
                terms.write(buf);
                deadline.write(buf);
                verification.write(buf);
            }
            TxBody::StartLease { lease } => {
                6u8.write(buf);
                lease.write(buf);
            }
            TxBody::CommitResult { lease, seal, usage } => {
                7u8.write(buf);
                lease.write(buf);
                seal.write(buf);
                usage.write(buf);
            }
            TxBody::SettleLease { lease } => {
                8u8.write(buf);
                lease.write(buf);
            }
            TxBody::CommitCheck { lease, seal } => {
                9u8.write(buf);
                lease.write(buf);
                seal.write(buf);
            }
            TxBody::RevealResult { lease, claim, note } => {
                10u8.write(buf);
                lease.write(buf);
                claim.write(buf);
                note.write(buf);
            }
            TxBody::DisputeMove { lease, left, right } => {
                11u8.write(buf);
                lease.write(buf);
                left.write(buf);
                right.write(buf);
            }
            TxBody::Adjudicate {
                lease,
                bundle,
                state,
                proof,
            } => {
                12u8.write(buf);
                lease.write(buf);
                bundle.write(buf);
                state.write(buf);
                proof.write(buf);
            }
            TxBody::OfferModels { models } => {
                13u8.write(buf);
                models.write(buf);
            }
            TxBody::CreateInferenceKey {
                key,
                limit,
                deposit,
            } => {
                14u8.write(buf);
                key.write(buf);
                limit.write(buf);
                deposit.write(buf);
            }
            TxBody::FundInferenceKey { key, amount } => {
                15u8.write(buf);
                key.write(buf);
                amount.write(buf);
            }
            TxBody::RevokeInferenceKey { key } => {
                16u8.write(buf);
                key.write(buf);
            }
            TxBody::SettleInference {
                voucher,
                model,
                root,
                batch,
            } => {
                17u8.write(buf);
                voucher.write(buf);
                model.write(buf);
                root.write(buf);
                batch.write(buf);
            }
            TxBody::SealInferenceCheck { batch, index, seal } => {
                18u8.write(buf);
                batch.write(buf);
                index.write(buf);
                seal.write(buf);
            }
            TxBody::RevealInferenceCheck {
                batch,
                index,
                request,
                output,
            } => {
                19u8.write(buf);
                batch.write(buf);
                index.write(buf);
                request.write(buf);
                output.write(buf);
            }
            TxBody::OpenInferenceResponse {
                batch,
                index,
                commitment,
                proof,
            } => {
                20u8.write(buf);
                batch.write(buf);
                index.write(buf);
                commitment.write(buf);
                proof.write(buf);
            }
            TxBody::AnswerChallenge {
                drawn_at,
                rows,
                root,
            } => {
                21u8.write(buf);
                drawn_at.write(buf);
                rows.write(buf);
                root.write(buf);
            }
            TxBody::OpenChallenge { drawn_at, rows } => {
                22u8.write(buf);
                drawn_at.write(buf);
                rows.write(buf);
            }
            TxBody::RequestChallenge {} => 23u8.write(buf),
            TxBody::OpenClusterLease {
                members,
                job,
                terms,
                rounds,
                inner_steps,
                round_blocks,
                check_bps,
            } => {
                24u8.write(buf);
                members.write(buf);
                job.write(buf);
                terms.write(buf);
                rounds.write(buf);
                inner_steps.write(buf);
                round_blocks.write(buf);
                check_bps.write(buf);
            }
            TxBody::CommitClusterRound {
                lease,
                round,
                start,
                delta,
                loss,
            } => {
                25u8.write(buf);
                lease.write(buf);
                round.write(buf);
                start.write(buf);
                delta.write(buf);
                loss.write(buf);
            }
            TxBody::SealClusterCheck {
                lease,
                round,
                worker,
                seal,
            } => {
                26u8.write(buf);
                lease.write(buf);
                round.write(buf);
                worker.write(buf);
                seal.write(buf);
            }
            TxBody::RevealClusterCheck {
                lease,
                round,
                worker,
                delta,
            } => {
                27u8.write(buf);
                lease.write(buf);
                round.write(buf);
                worker.write(buf);
                delta.write(buf);
            }
        }
    }
}

impl EncodeSize for TxBody {
    fn encode_size(&self) -> usize {
        1 + match self {
            TxBody::Transfer { to, amount } => to.encode_size() + amount.encode_size(),
            TxBody::RegisterProvider(o) | TxBody::UpdateProvider(o) => o.encode_size(),
            TxBody::Bond { amount } | TxBody::Unbond { amount } => amount.encode_size(),
            TxBody::OpenLease {
                provider,
                job,
                terms,
                deadline,
                verification,
            } => {
                provider.encode_size()
                    + job.encode_size()
                    + terms.encode_size()
                    + deadline.encode_size()
                    + verification.encode_size()
            }
            TxBody::StartLease { lease } | TxBody::SettleLease { lease } => lease.encode_size(),
            TxBody::CommitResult { lease, seal, usage } => {
                lease.encode_size() + seal.encode_size() + usage.encode_size()
            }
            TxBody::CommitCheck { lease, seal } => lease.encode_size() + seal.encode_size(),
            TxBody::RevealResult { lease, claim, note } => {
                lease.encode_size() + claim.encode_size() + note.encode_size()
            }
            TxBody::DisputeMove { lease, left, right } => {
                lease.encode_size() + left.encode_size() + right.encode_size()
            }
            TxBody::Adjudicate {
                lease,
                bundle,
                state,
                proof,
            } => {
                lease.encode_size()
                    + bundle.encode_size()
                    + state.encode_size()
                    + proof.encode_size()
            }
            TxBody::OfferModels { models } => models.encode_size(),
            TxBody::CreateInferenceKey {
                key,
                limit,
                deposit,
            } => key.encode_size() + limit.encode_size() + deposit.encode_size(),
            TxBody::FundInferenceKey { key, amount } => key.encode_size() + amount.encode_size(),
            TxBody::RevokeInferenceKey { key } => key.encode_size(),
            TxBody::SettleInference {
                voucher,
                model,
                root,
                batch,
            } => {
                voucher.encode_size()
                    + model.encode_size()
                    + root.encode_size()
                    + batch.encode_size()
            }
            TxBody::SealInferenceCheck { batch, index, seal } => {
                batch.encode_size() + index.encode_size() + seal.encode_size()
            }
            TxBody::RevealInferenceCheck {
                batch,
                index,
                request,
                output,
            } => {
                batch.encode_size()
                    + index.encode_size()
                    + request.encode_size()
                    + output.encode_size()
            }
            TxBody::OpenInferenceResponse {
                batch,
                index,
                commitment,
                proof,
            } => {
                batch.encode_size()
                    + index.encode_size()
                    + commitment.encode_size()
                    + proof.encode_size()
            }
            TxBody::AnswerChallenge {
                drawn_at,
                rows,
                root,
            } => drawn_at.encode_size() + rows.encode_size() + root.encode_size(),
            TxBody::OpenChallenge { drawn_at, rows } => drawn_at.encode_size() + rows.encode_size(),
            TxBody::RequestChallenge {} => 0,
            TxBody::OpenClusterLease {
                members,
                job,
                terms,
                rounds,
                inner_steps,
                round_blocks,
                check_bps,
            } => {
                members.encode_size()
                    + job.encode_size()
                    + terms.encode_size()
                    + rounds.encode_size()
                    + inner_steps.encode_size()
                    + round_blocks.encode_size()
                    + check_bps.encode_size()
            }
            TxBody::CommitClusterRound {
                lease,
                round,
                start,
                delta,
                loss,
            } => {
                lease.encode_size()
                    + round.encode_size()
                    + start.encode_size()
                    + delta.encode_size()
                    + loss.encode_size()
            }
            TxBody::SealClusterCheck {
                lease,
                round,
                worker,
                seal: hash,
            }
            | TxBody::RevealClusterCheck {
                lease,
                round,
                worker,
                delta: hash,
            } => {
                lease.encode_size()
                    + round.encode_size()
                    + worker.encode_size()
                    + hash.encode_size()
            }
        }
    }
}

impl Read for TxBody {
    type Cfg = ();
    fn read_cfg(buf: &mut impl commonware_codec::Buf, _: &()) -> Result<Self, CodecError> {
        Ok(match u8::read(buf)? {
            0 => TxBody::Transfer {
                to: AccountId::read(buf)?,
                amount: Amount::read(buf)?,
            },
            1 => TxBody::RegisterProvider(ProviderOffer::read(buf)?),
            2 => TxBody::UpdateProvider(ProviderOffer::read(buf)?),
            3 => TxBody::Bond {
                amount: Amount::read(buf)?,
            },
            4 => TxBody::Unbond {
                amount: Amount::read(buf)?,
            },
            5 => TxBody::OpenLease {
                provider: AccountId::read(buf)?,
                job: Hash::read(buf)?,
                terms: LeaseTerms::read(buf)?,
                deadline: u64::read(buf)?,
                verification: Verification::read(buf)?,
            },
            6 => TxBody::StartLease {
                lease: u64::read(buf)?,
            },
            7 => TxBody::CommitResult {
                lease: u64::read(buf)?,
                seal: Hash::read(buf)?,
                usage: Usage::read(buf)?,
            },
            8 => TxBody::SettleLease {
                lease: u64::read(buf)?,
            },
            9 => TxBody::CommitCheck {
                lease: u64::read(buf)?,
                seal: Hash::read(buf)?,
            },
            10 => TxBody::RevealResult {
                lease: u64::read(buf)?,
                claim: ResultClaim::read(buf)?,
                note: FailureNote::read(buf)?,
            },
            11 => TxBody::DisputeMove {
                lease: u64::read(buf)?,
                left: Hash::read(buf)?,
                right: Hash::read(buf)?,
            },
            12 => TxBody::Adjudicate {
                lease: u64::read(buf)?,
                bundle: Blob::read(buf)?,
                state: Blob::read(buf)?,
                proof: MerkleProof::read(buf)?,
            },
            13 => TxBody::OfferModels {
                models: ModelOffers::read(buf)?,
            },
            14 => TxBody::CreateInferenceKey {
                key: AccountId::read(buf)?,
                limit: Amount::read(buf)?,
                deposit: Amount::read(buf)?,
            },
            15 => TxBody::FundInferenceKey {
                key: AccountId::read(buf)?,
                amount: Amount::read(buf)?,
            },
            16 => TxBody::RevokeInferenceKey {
                key: AccountId::read(buf)?,
            },
            17 => TxBody::SettleInference {
                voucher: SignedVoucher::read(buf)?,
                model: Hash::read(buf)?,
                root: Hash::read(buf)?,
                batch: Hash::read(buf)?,
            },
            18 => TxBody::SealInferenceCheck {
                batch: u64::read(buf)?,
                index: u64::read(buf)?,
                seal: Hash::read(buf)?,
            },
            19 => TxBody::RevealInferenceCheck {
                batch: u64::read(buf)?,
                index: u64::read(buf)?,
                request: Hash::read(buf)?,
                output: Hash::read(buf)?,
            },
            20 => TxBody::OpenInferenceResponse {
                batch: u64::read(buf)?,
                index: u64::read(buf)?,
                commitment: ResponseCommitment::read(buf)?,
                proof: MerkleProof::read(buf)?,
            },
            21 => TxBody::AnswerChallenge {
                drawn_at: u64::read(buf)?,
                rows: u64::read(buf)?,
                root: Hash::read(buf)?,
            },
            22 => TxBody::OpenChallenge {
                drawn_at: u64::read(buf)?,
                rows: ChallengeRows::read(buf)?,
            },
            23 => TxBody::RequestChallenge {},
            24 => TxBody::OpenClusterLease {
                members: ClusterMembers::read(buf)?,
                job: Hash::read(buf)?,
                terms: LeaseTerms::read(buf)?,
                rounds: u32::read(buf)?,
                inner_steps: u32::read(buf)?,
                round_blocks: u64::read(buf)?,
                check_bps: u16::read(buf)?,
            },
            25 => TxBody::CommitClusterRound {
                lease: u64::read(buf)?,
                round: u32::read(buf)?,
                start: Hash::read(buf)?,
                delta: Hash::read(buf)?,
                loss: LossBits::read(buf)?,
            },
            26 => TxBody::SealClusterCheck {
                lease: u64::read(buf)?,
                round: u32::read(buf)?,
                worker: AccountId::read(buf)?,
                seal: Hash::read(buf)?,
            },
            27 => TxBody::RevealClusterCheck {
                lease: u64::read(buf)?,
                round: u32::read(buf)?,
                worker: AccountId::read(buf)?,
                delta: Hash::read(buf)?,
            },
            t => return Err(CodecError::InvalidEnum(t)),
        })
    }
}

/// What a party claims a job produced: the output's hash, the Merkle root over its checkpoints,
/// the number of steps (the tree has `steps + 1` leaves) and the metered units, or — a **failure claim** — where
/// and why the job failed deterministically, with the checkpoints up to the failure and the
/// failure's marker after it (see [`crate::workload`], "Runs that fail").
///
/// A failure claim has no output: its `output` is [`Hash::ZERO`] (so two parties that saw the
/// same failure make byte-identical claims); [`ResultClaim::malformed`] says what the ledger
/// refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResultClaim {
    /// `Hash::of(output bytes)`: the output blob's content address; zero for a failure claim.
    pub output: Hash,
    /// `checkpoint_root` over `[checkpoint(state_0), …, checkpoint(state_n)]`, with failure
    /// markers in place of the states a failed run never reached.
    pub checkpoint_root: Hash,
    /// `n`, the number of steps after init (the job's, also when it failed earlier).
    pub steps: u64,
    /// Where and why the job failed, for a failure claim.
    #[serde(default)]
    pub failure: Option<JobFailure>,
    /// The metered compute units of the whole run (wasm fuel, ML operations; for a failure
    /// claim, those burned up to the failure). Deterministic like the output, so it is sealed
    /// and compared with the verifiers' like the output: an overbilling provider mismatches.
    /// The ledger bills exactly these (they must equal the `CommitResult` usage's units).
    #[serde(default)]
    pub units: u64,
}
codec_struct!(ResultClaim {
    output: Hash,
    checkpoint_root: Hash,
    steps: u64,
    failure: Option<JobFailure>,
    units: u64,
});

impl ResultClaim {
    /// A claim that the job produced an output.
    pub fn succeeded(output: Hash, checkpoint_root: Hash, steps: u64) -> ResultClaim {
        ResultClaim {
            output,
            checkpoint_root,
            steps,
            failure: None,
            units: 0,
        }
    }

    /// A claim that the job failed deterministically.
    pub fn failed(failure: JobFailure, checkpoint_root: Hash, steps: u64) -> ResultClaim {
        ResultClaim {
            output: Hash::ZERO,
            checkpoint_root,
            steps,
            failure: Some(failure),
            units: 0,
        }
    }

    /// The same claim with its metered units.
    pub fn with_units(self, units: u64) -> ResultClaim {
        ResultClaim { units, ..self }
    }

    /// What an output dispute compares: [`output_ending`] of the output hash, or the failure's
    /// marker. Different tags keep the two apart.
    pub fn ending(&self) -> Hash {
        match &self.failure {
            Some(f) => f.marker(),
            None => output_ending(&self.output),
        }
    }

    /// Why the ledger refuses this claim, if it does: a failure claim must name no output and
    /// a step within its step count.
    pub fn malformed(&self) -> Option<String> {
        let f = self.failure?;
        if self.output != Hash::ZERO {
            return Some(format!(
                "a failure claim has no output: its output hash must be zero, not {}",
                self.output
            ));
        }
        match f.at {
            FailedAt::Step(k) if k >= self.steps => Some(format!(
                "the claim fails at step {k}, but a job of {} steps has steps 0..{}",
                self.steps, self.steps
            )),
            _ => None,
        }
    }
}

/// Longest note a party may attach to a revealed failure claim: the runtime's own words for
/// the failure ("wasm trap: integer divide by zero; stderr: …"), for the requester. A line or
/// two is enough to act on, and the reveal stays far below [`MAX_TX_BYTES`].
pub const MAX_FAILURE_NOTE_BYTES: usize = 240;

/// The note a party attaches to a revealed failure claim (empty for a claim of success). It is
/// shown to the requester but neither sealed nor compared: only the claim is.
pub type FailureNote = Text<MAX_FAILURE_NOTE_BYTES>;

/// Cut `message` to at most [`MAX_FAILURE_NOTE_BYTES`] bytes on a character boundary.
pub fn failure_note(message: &str) -> FailureNote {
    let mut end = message.len().min(MAX_FAILURE_NOTE_BYTES);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    // Within the limit by construction.
    Text::new(&message[..end]).unwrap_or_default()
}

/// The seal over a claim, bound to the lease and to the party making it. Two parties who
/// computed the same result produce different seals, so a seal reveals nothing a lazy verifier
/// could copy, and a copied seal fails its owner's reveal.
pub fn result_seal(lease: LeaseId, party: &AccountId, claim: &ResultClaim) -> Hash {
    let mut h = HashWriter::new();
    h.update(b"orrery/result-seal/v3")
        .update(&lease.to_be_bytes())
        .update(&party.0)
        .update(&codec::encode(claim));
    h.finish()
}

/// The signed content of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Tx {
    /// The chain this transaction is for.
    pub chain_id: ChainId,
    /// The signer's nonce: must equal the account's current nonce.
    pub nonce: u64,
    /// What to do.
    pub body: TxBody,
}
codec_struct!(Tx {
    chain_id: ChainId,
    nonce: u64,
    body: TxBody,
});

/// A transaction with its signer and signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedTx {
    /// The signer's public key; the account is derived from it.
    pub signer: PublicKey,
    /// Signature over the encoding of `tx` under [`NAMESPACE_TX`].
    pub signature: Signature,
    /// The transaction.
    pub tx: Tx,
}
codec_struct!(SignedTx {
    signer: PublicKey,
    signature: Signature,
    tx: Tx,
});

impl Tx {
    /// Sign with `key`.
    pub fn sign(self, key: &Keypair) -> SignedTx {
        let msg = codec::encode(&self);
        SignedTx {
            signer: key.public_key().clone(),
            signature: key.sign(NAMESPACE_TX, &msg),
            tx: self,
        }
    }
}

impl SignedTx {
    /// The account that signed.
    pub fn sender(&self) -> AccountId {
        AccountId::from_public_key(&self.signer)
    }

    /// Whether the signature is valid for the transaction.
    pub fn verify_signature(&self) -> bool {
        crypto::verify(
            &self.signer,
            NAMESPACE_TX,
            &codec::encode(&self.tx),
            &self.signature,
        )
    }

    /// The transaction's id: the hash of its full encoding.
    pub fn hash(&self) -> Hash {
        Hash::tagged(b"orrery/tx", &codec::encode(self))
    }

    /// The largest encoding allowed for this transaction's kind: [`MAX_TX_BYTES`], or
    /// [`MAX_ADJUDICATE_TX_BYTES`] for an adjudication, or [`MAX_CHALLENGE_OPEN_BYTES`] for a
    /// challenge opening.
    pub fn max_bytes(&self) -> usize {
        match self.tx.body {
            TxBody::Adjudicate { .. } => MAX_ADJUDICATE_TX_BYTES,
            TxBody::OpenChallenge { .. } => MAX_CHALLENGE_OPEN_BYTES,
            _ => MAX_TX_BYTES,
        }
    }

    /// Decode from bytes received from outside: at most [`MAX_TX_BYTES`], or
    /// [`MAX_ADJUDICATE_TX_BYTES`] for an adjudication (the only kind that carries a bundle),
    /// or [`MAX_CHALLENGE_OPEN_BYTES`] for a challenge opening.
    pub fn decode(bytes: &[u8]) -> Result<SignedTx, DecodeError> {
        let too_long = || DecodeError {
            what: "transaction",
            source: CodecError::InvalidLength(bytes.len()),
        };
        if bytes.len() > MAX_ADJUDICATE_TX_BYTES {
            return Err(too_long());
        }
        let tx: SignedTx = codec::decode("transaction", bytes)?;
        if bytes.len() > tx.max_bytes() {
            return Err(too_long());
        }
        Ok(tx)
    }
}

#[cfg(test)]
mod tests;
