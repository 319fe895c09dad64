//! What the agent needs from the chain, as a trait: a node over HTTP ([`NodeChain`], through
//! `orrery-client`) in production, a ledger `State` driven block by block in tests.
//!
//! Every call is bounded: lease listings stop after [`MAX_LEASE_PAGES`] pages.

use crate::decide::{Head, LeaseInfo};
use orrery_client::api::{ClusterLeaseView, ClusterRoundView};
use orrery_client::{Client, Error as ClientError, LeaseQuery};
use orrery_ledger::entries::{LeaseState, Reputation};
use orrery_types::amount::Amount;
use orrery_types::crypto::AccountId;
use orrery_types::hash::Hash;
use orrery_types::inference::ModelOffer;
use orrery_types::tx::{BatchId, ChainId, LeaseId, ProviderOffer, SignedTx};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Most pages of leases read in one listing (a page is the node's page size, ~100).
pub const MAX_LEASE_PAGES: usize = 100;

/// Most running cluster leases read for one member: one page of the node's listing. A machine
/// runs one worker per lease, each with a core's work, so no honest provider is in more.
pub const MAX_CLUSTER_LEASES: usize = 50;

/// Why a chain call failed.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The transaction's nonce was already used.
    #[error("stale nonce: {0}")]
    StaleNonce(String),
    /// The node refused the request.
    #[error("refused: {0}")]
    Refused(String),
    /// The node could not be reached or answered nonsense.
    #[error("node unavailable: {0}")]
    Unavailable(String),
    /// Another transaction of this account with the same nonce waits in the mempool (one
    /// signed before the agent restarted, say): this one was not taken.
    #[error("nonce taken: {0}")]
    NonceTaken(String),
}

/// A registered provider, as the agent reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderRecord {
    /// What it offers.
    pub offer: ProviderOffer,
    /// Bonded stake.
    pub stake: Amount,
    /// Leases not yet final.
    pub active_leases: u32,
    /// Track record.
    pub reputation: Reputation,
    /// Paid to it over its life, after fees.
    pub earned: Amount,
}

/// The chain's head and identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainHead {
    /// The chain id transactions are signed for.
    pub chain_id: ChainId,
    /// The latest block.
    pub head: Head,
}

/// What the agent reads from and sends to the chain.
pub trait Chain {
    /// Chain id, height and time.
    fn head(&self) -> Result<ChainHead, ChainError>;
    /// Balance and next nonce of an account.
    fn account(&self, id: &AccountId) -> Result<(Amount, u64), ChainError>;
    /// A provider's record, if registered.
    fn provider(&self, id: &AccountId) -> Result<Option<ProviderRecord>, ChainError>;
    /// Every lease still holding escrow in which `party` has a part (provider, drawn
    /// verifier or tie-breaker). The node filters them, so an agent's poll grows with its own
    /// work, not with the network's.
    fn active_leases(&self, party: &AccountId) -> Result<Vec<LeaseInfo>, ChainError>;
    /// Every lease of a provider, final ones included.
    fn provider_leases(&self, id: &AccountId) -> Result<Vec<LeaseInfo>, ChainError>;
    /// One lease.
    fn lease(&self, id: LeaseId) -> Result<Option<LeaseInfo>, ChainError>;
    /// The job bundle named by a lease.
    fn bundle(&self, job: &Hash) -> Result<Option<Vec<u8>>, ChainError>;
    /// Publish an output (content-addressed by `Hash::of`).
    fn put_output(&self, bytes: &[u8]) -> Result<(), ChainError>;
    /// Submit a signed transaction to the mempool. Submitting a transaction the node already
    /// holds is not an error; another transaction holding the same nonce is
    /// ([`ChainError::NonceTaken`]).
    fn submit(&self, tx: &SignedTx) -> Result<Hash, ChainError>;
    /// The models `id` offers, as the chain holds them; `None` when the node cannot say (the
    /// agent then offers its models once per run).
    /// The running cluster leases that name `member`, at most [`MAX_CLUSTER_LEASES`] (a chain
    /// without cluster leases has none).
    fn member_cluster_leases(
        &self,
        member: &AccountId,
    ) -> Result<Vec<ClusterLeaseView>, ChainError> {
        let _ = member;
        Ok(Vec::new())
    }

    /// One round of a cluster lease; `None` before it opened.
    fn cluster_round(
        &self,
        id: LeaseId,
        round: u32,
    ) -> Result<Option<ClusterRoundView>, ChainError> {
        let _ = (id, round);
        Ok(None)
    }

    fn model_offers(&self, id: &AccountId) -> Result<Option<Vec<ModelOffer>>, ChainError> {
        let _ = id;
        Ok(None)
    }
    /// Open inference checks in which `party` is the drawn checker or the batch's provider.
    /// Chains without inference answer none.
    fn inference_checks(&self, party: &AccountId) -> Result<Vec<InferenceCheck>, ChainError> {
        let _ = party;
        Ok(Vec::new())
    }
    /// What the chain made of an included transaction: its receipt, if the node has it.
    /// Chains that keep no receipts answer [`TxOutcome::Unknown`].
    fn tx_outcome(&self, hash: &Hash) -> Result<TxOutcome, ChainError> {
        let _ = hash;
        Ok(TxOutcome::Unknown)
    }
    /// `id`'s standing in the chain's challenges and its open challenge; `None` when the chain
    /// has no challenges (or the provider is not registered).
    fn challenges(&self, id: &AccountId) -> Result<Option<ChallengeStatus>, ChainError> {
        let _ = id;
        Ok(None)
    }
}

/// A provider's standing in the chain's challenges, as the agent reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChallengeStatus {
    /// Whether the chain routes its offers (false after a miss, until an answer).
    pub online: bool,
    /// Its open challenge, if any.
    pub open: Option<ChallengeTask>,
}

/// An open challenge: what to compute and send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChallengeTask {
    /// Height of the draw (0 while only requested); the transactions name it.
    pub drawn_at: u64,
    /// The challenge seed that generates `A` and `B`.
    pub seed: Hash,
    /// Side `n` of `B`.
    pub dim: u64,
    /// Rows of `A`.
    pub rows: u64,
    /// Where it is.
    pub phase: ChallengeTaskPhase,
}

/// Where an open challenge is, from the provider's side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChallengeTaskPhase {
    /// Asked for; the next block draws it.
    Requested,
    /// Drawn: compute and answer.
    Drawn,
    /// Answered; the next block draws the rows to open.
    Answered,
    /// Open these rows (ascending).
    Opening {
        /// The drawn row indices.
        rows: Vec<u64>,
    },
}

/// The agent's view of the API's challenge record.
pub fn challenge_status(v: &orrery_client::api::ChallengeRecordView) -> ChallengeStatus {
    let open = v.open.as_ref().map(|o| ChallengeTask {
        drawn_at: o.drawn_at,
        seed: o.seed,
        dim: o.dim,
        rows: o.rows,
        phase: match o.phase.as_str() {
            "drawn" => ChallengeTaskPhase::Drawn,
            "answered" => ChallengeTaskPhase::Answered,
            "opening" => ChallengeTaskPhase::Opening {
                rows: o.open_rows.clone(),
            },
            _ => ChallengeTaskPhase::Requested,
        },
    });
    ChallengeStatus {
        online: v.online,
        open,
    }
}

/// This account's part in a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckRole {
    /// Drawn to re-execute the response.
    Checker,
    /// The batch's provider, who opens its commitment.
    Provider,
}

/// Where a check stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckPhase {
    /// Checkers seal (until `seal_deadline`).
    Seal,
    /// The seal phase closed: checkers reveal and the provider opens (until
    /// `reveal_deadline`).
    Reveal,
}

/// One open check of one response of a settled inference batch, as the agent reads it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InferenceCheck {
    /// The batch.
    pub batch: BatchId,
    /// The response's leaf index.
    pub index: u64,
    /// The round (0 for the first draw, then tie-break rounds).
    pub round: u32,
    /// This account's part.
    pub role: CheckRole,
    /// The phase.
    pub phase: CheckPhase,
    /// Last height to seal.
    pub seal_deadline: u64,
    /// Last height to reveal or open.
    pub reveal_deadline: u64,
    /// Content hash of the batch file (a blob on the nodes).
    pub batch_file: Hash,
    /// The weights hash of the model that answered.
    pub model: Hash,
    /// Whether this account (as checker) has sealed.
    pub sealed: bool,
    /// Whether this account (as checker) has revealed.
    pub revealed: bool,
    /// Whether the provider has opened its commitment.
    pub opened: bool,
}

/// What became of a transaction in a finalized block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxOutcome {
    /// It applied.
    Applied,
    /// The ledger refused it, for this reason (its nonce is spent all the same).
    Refused(String),
    /// No receipt (not found, or indexed without its outcome).
    Unknown,
}

/// A node's HTTP API, with other nodes of the same chain to fail over to.
///
/// Every call goes to the current node; when it cannot be reached (no answer at all, not an
/// error it answered with), the same call goes to the next node in turn, which becomes the
/// current one. A validator that restarts then costs the agent one failed request, not its
/// deadlines.
#[derive(Clone, Debug)]
pub struct NodeChain {
    clients: Vec<Client>,
    current: Arc<AtomicUsize>,
}

impl NodeChain {
    /// Use `client`.
    pub fn new(client: Client) -> Self {
        Self::with_fallbacks(client, Vec::new())
    }

    /// Use `primary`, and `fallbacks` in turn while it cannot be reached.
    pub fn with_fallbacks(primary: Client, fallbacks: Vec<Client>) -> Self {
        let mut clients = vec![primary];
        clients.extend(fallbacks);
        NodeChain {
            clients,
            current: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The client of the node in use.
    pub fn client(&self) -> &Client {
        &self.clients[self.current.load(Ordering::Relaxed) % self.clients.len()]
    }

    /// Run `f` against the current node, failing over to the next ones while a node cannot
    /// be reached.
    fn call<T>(&self, f: impl Fn(&Client) -> Result<T, ClientError>) -> Result<T, ClientError> {
        let n = self.clients.len();
        let first = self.current.load(Ordering::Relaxed) % n;
        let mut last = None;
        for k in 0..n {
            let i = (first + k) % n;
            match f(&self.clients[i]) {
                Err(e) if e.code().is_none() && e.status().is_none() => last = Some(e),
                other => {
                    if i != first {
                        tracing::warn!(
                            from = self.clients[first].base_url(),
                            to = self.clients[i].base_url(),
                            "node unreachable: switched to the next one"
                        );
                        self.current.store(i, Ordering::Relaxed);
                    }
                    return other;
                }
            }
        }
        Err(last.expect("at least one node was tried"))
    }

    fn list(&self, mut query: LeaseQuery) -> Result<Vec<LeaseInfo>, ChainError> {
        let mut out = Vec::new();
        for _ in 0..MAX_LEASE_PAGES {
            let page = self.call(|c| c.leases(&query)).map_err(map_err)?;
            for view in page.items {
                out.push(lease_info(view)?);
            }
            match page.next_cursor {
                Some(c) => query.cursor = Some(c),
                None => break,
            }
        }
        Ok(out)
    }
}

fn map_err(e: ClientError) -> ChainError {
    match e.code() {
        Some("stale_nonce") => ChainError::StaleNonce(e.to_string()),
        Some(_) => ChainError::Refused(e.to_string()),
        None => ChainError::Unavailable(e.to_string()),
    }
}

/// A lease as the node serves it, with its state parsed back into the ledger's type.
pub fn lease_info(view: orrery_client::api::LeaseView) -> Result<LeaseInfo, ChainError> {
    let state: LeaseState = serde_json::from_value(view.state_detail).map_err(|e| {
        ChainError::Unavailable(format!("lease {}: unreadable state: {e}", view.id))
    })?;
    Ok(LeaseInfo {
        id: view.id,
        requester: view.requester,
        provider: view.provider,
        job: view.job,
        terms: view.terms,
        verification: view.verification,
        start_by: view.start_by,
        deadline: view.deadline,
        state,
    })
}

/// A check as the node serves it; `None` once it is decided (nothing left to do).
pub fn inference_check(v: orrery_client::inference::InferenceCheckView) -> Option<InferenceCheck> {
    use orrery_client::inference::CheckRole as View;
    let phase = match v.phase.as_str() {
        "seal" => CheckPhase::Seal,
        "reveal" => CheckPhase::Reveal,
        _ => return None,
    };
    Some(InferenceCheck {
        batch: v.batch,
        index: v.index,
        round: v.round,
        role: match v.role {
            View::Checker => CheckRole::Checker,
            View::Provider => CheckRole::Provider,
        },
        phase,
        seal_deadline: v.seal_deadline,
        reveal_deadline: v.reveal_deadline,
        batch_file: v.file,
        model: v.model,
        sealed: v.sealed,
        revealed: v.revealed,
        opened: v.opened,
    })
}

impl Chain for NodeChain {
    fn head(&self) -> Result<ChainHead, ChainError> {
        let s = self.call(|c| c.status()).map_err(map_err)?;
        Ok(ChainHead {
            chain_id: ChainId::new(s.chain.chain_id)
                .map_err(|_| ChainError::Unavailable("chain id too long".into()))?,
            head: Head {
                height: s.chain.height,
                time_ms: s.chain.last_block_time_ms,
            },
        })
    }

    fn account(&self, id: &AccountId) -> Result<(Amount, u64), ChainError> {
        let a = self.call(|c| c.account(id)).map_err(map_err)?;
        Ok((a.balance, a.nonce))
    }

    fn provider(&self, id: &AccountId) -> Result<Option<ProviderRecord>, ChainError> {
        Ok(self.call(|c| c.provider(id)).map_err(map_err)?.map(|p| {
            let r = p.reputation;
            ProviderRecord {
                offer: p.offer,
                stake: p.stake,
                active_leases: p.active_leases,
                reputation: Reputation {
                    settled: r.settled,
                    checked: r.checked,
                    failed: r.failed,
                    slashed: r.slashed,
                    timed_out: r.timed_out,
                },
                earned: p.earned,
            }
        }))
    }

    fn active_leases(&self, party: &AccountId) -> Result<Vec<LeaseInfo>, ChainError> {
        self.list(LeaseQuery {
            party: Some(*party),
            state: Some("active".into()),
            ..LeaseQuery::default()
        })
    }

    fn provider_leases(&self, id: &AccountId) -> Result<Vec<LeaseInfo>, ChainError> {
        self.list(LeaseQuery {
            provider: Some(*id),
            ..LeaseQuery::default()
        })
    }

    fn lease(&self, id: LeaseId) -> Result<Option<LeaseInfo>, ChainError> {
        self.call(|c| c.lease(id))
            .map_err(map_err)?
            .map(lease_info)
            .transpose()
    }

    fn bundle(&self, job: &Hash) -> Result<Option<Vec<u8>>, ChainError> {
        self.call(|c| c.get_blob(job)).map_err(map_err)
    }

    fn put_output(&self, bytes: &[u8]) -> Result<(), ChainError> {
        self.call(|c| c.put_blob(bytes))
            .map_err(map_err)
            .map(|_| ())
    }

    fn submit(&self, tx: &SignedTx) -> Result<Hash, ChainError> {
        let hash = tx.hash();
        match self.call(|c| c.submit(tx)) {
            // The node names the waiting transaction: this one (a re-send of a transaction
            // that was not lost), or another with the same nonce.
            Err(e) if e.code() == Some("duplicate_tx") => {
                if e.to_string().contains(&hash.to_string()) {
                    Ok(hash)
                } else {
                    Err(ChainError::NonceTaken(e.to_string()))
                }
            }
            other => other.map_err(map_err),
        }
    }

    fn challenges(&self, id: &AccountId) -> Result<Option<ChallengeStatus>, ChainError> {
        Ok(self
            .call(|c| c.provider(id))
            .map_err(map_err)?
            .and_then(|p| p.challenges.as_ref().map(challenge_status)))
    }

    fn member_cluster_leases(
        &self,
        member: &AccountId,
    ) -> Result<Vec<ClusterLeaseView>, ChainError> {
        let page = self
            .call(|c| c.member_cluster_leases(member, true, None))
            .map_err(map_err)?;
        let mut leases = page.items;
        leases.truncate(MAX_CLUSTER_LEASES);
        Ok(leases)
    }

    fn cluster_round(
        &self,
        id: LeaseId,
        round: u32,
    ) -> Result<Option<ClusterRoundView>, ChainError> {
        self.call(|c| c.cluster_round(id, round)).map_err(map_err)
    }

    fn inference_checks(&self, party: &AccountId) -> Result<Vec<InferenceCheck>, ChainError> {
        let views = self.call(|c| c.inference_checks(party)).map_err(map_err)?;
        Ok(views.into_iter().filter_map(inference_check).collect())
    }

    fn tx_outcome(&self, hash: &Hash) -> Result<TxOutcome, ChainError> {
        let Some(record) = self.call(|c| c.tx(hash)).map_err(map_err)? else {
            return Ok(TxOutcome::Unknown);
        };
        Ok(match record.receipt {
            None => TxOutcome::Unknown,
            Some(r) if r.ok => TxOutcome::Applied,
            Some(r) => TxOutcome::Refused(
                r.message
                    .or_else(|| r.error.map(|e| e.to_string()))
                    .unwrap_or_else(|| "no reason given".into()),
            ),
        })
    }
}
