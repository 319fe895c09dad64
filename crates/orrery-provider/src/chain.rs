//! What the agent needs from the chain, as a trait: a node over HTTP ([`NodeChain`], through
//! `orrery-client`) in production, a ledger `State` driven block by block in tests.
//!
//! Every call is bounded: lease listings stop after [`MAX_LEASE_PAGES`] pages.

use crate::decide::{Head, LeaseInfo};
use orrery_client::{Client, Error as ClientError, LeaseQuery};
use orrery_ledger::entries::{LeaseState, Reputation};
use orrery_types::amount::Amount;
use orrery_types::crypto::AccountId;
use orrery_types::hash::Hash;
use orrery_types::tx::{ChainId, LeaseId, ProviderOffer, SignedTx};

/// Most pages of leases read in one listing (a page is the node's page size, ~100).
pub const MAX_LEASE_PAGES: usize = 100;

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
    /// Submit a signed transaction to the mempool.
    fn submit(&self, tx: &SignedTx) -> Result<Hash, ChainError>;
}

/// A node's HTTP API.
#[derive(Clone, Debug)]
pub struct NodeChain {
    client: Client,
}

impl NodeChain {
    /// Use `client`.
    pub fn new(client: Client) -> Self {
        NodeChain { client }
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn list(&self, mut query: LeaseQuery) -> Result<Vec<LeaseInfo>, ChainError> {
        let mut out = Vec::new();
        for _ in 0..MAX_LEASE_PAGES {
            let page = self.client.leases(&query).map_err(map_err)?;
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

impl Chain for NodeChain {
    fn head(&self) -> Result<ChainHead, ChainError> {
        let s = self.client.status().map_err(map_err)?;
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
        let a = self.client.account(id).map_err(map_err)?;
        Ok((a.balance, a.nonce))
    }

    fn provider(&self, id: &AccountId) -> Result<Option<ProviderRecord>, ChainError> {
        Ok(self.client.provider(id).map_err(map_err)?.map(|p| {
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
        self.client
            .lease(id)
            .map_err(map_err)?
            .map(lease_info)
            .transpose()
    }

    fn bundle(&self, job: &Hash) -> Result<Option<Vec<u8>>, ChainError> {
        self.client.get_blob(job).map_err(map_err)
    }

    fn put_output(&self, bytes: &[u8]) -> Result<(), ChainError> {
        self.client.put_blob(bytes).map_err(map_err).map(|_| ())
    }

    fn submit(&self, tx: &SignedTx) -> Result<Hash, ChainError> {
        match self.client.submit(tx) {
            // Already in the mempool: a re-send of a transaction that was not lost.
            Err(e) if e.code() == Some("duplicate_tx") => Ok(tx.hash()),
            other => other.map_err(map_err),
        }
    }
}
