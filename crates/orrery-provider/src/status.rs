//! `orrery provider status`: what a provider has earned and where its leases are, read from
//! the chain (no agent needs to be running).

use crate::chain::{Chain, ChainError, NodeChain};
use orrery_ledger::entries::Reputation;
use orrery_types::amount::Amount;
use orrery_types::crypto::AccountId;
use std::collections::BTreeMap;

/// A provider's standing.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ProviderStatus {
    /// The account.
    pub account: AccountId,
    /// Whether it is registered as a provider.
    pub registered: bool,
    /// Spendable balance.
    pub balance: Amount,
    /// Bonded stake.
    pub stake: Amount,
    /// Paid to it over its life, after fees.
    pub earned: Amount,
    /// Track record.
    pub reputation: Reputation,
    /// Leases it serves (final ones included), counted by state name.
    pub leases_by_state: BTreeMap<String, u64>,
}

/// The standing of provider `id` on `chain`.
pub fn status_of(chain: &impl Chain, id: &AccountId) -> Result<ProviderStatus, ChainError> {
    let (balance, _) = chain.account(id)?;
    let record = chain.provider(id)?;
    let mut leases_by_state = BTreeMap::new();
    if record.is_some() {
        for lease in chain.provider_leases(id)? {
            *leases_by_state
                .entry(lease.state.name().to_string())
                .or_insert(0) += 1;
        }
    }
    Ok(ProviderStatus {
        account: *id,
        registered: record.is_some(),
        balance,
        stake: record.as_ref().map_or(Amount::ZERO, |p| p.stake),
        earned: record.as_ref().map_or(Amount::ZERO, |p| p.earned),
        reputation: record.map(|p| p.reputation).unwrap_or_default(),
        leases_by_state,
    })
}

/// [`status_of`] through a node's HTTP API.
pub fn status(
    client: &orrery_client::Client,
    id: &AccountId,
) -> Result<ProviderStatus, ChainError> {
    status_of(&NodeChain::new(client.clone()), id)
}
