//! What the gateway needs from the chain, as a small trait: the model offers of bonded
//! providers, a key's state and what a channel has been paid. The node implements it over its
//! finalized ledger state; tests and benches implement it over plain data.

use orrery_market::ModelCandidate;
use orrery_types::amount::Amount;
use orrery_types::crypto::AccountId;

/// An API key's state on chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyState {
    /// Who created it.
    pub owner: AccountId,
    /// Most the key may ever pay.
    pub limit: Amount,
    /// What it has paid so far.
    pub spent: Amount,
    /// Tokens locked for it now.
    pub deposit: Amount,
    /// Height it was revoked at.
    pub revoked_at: Option<u64>,
}

impl KeyState {
    /// What the key can still pay: `min(deposit, limit − spent)`.
    pub fn spendable(&self) -> Amount {
        let left = Amount(self.limit.units().saturating_sub(self.spent.units()));
        left.min(self.deposit)
    }
}

/// The chain as the gateway reads it: the last finalized state. Object safe.
pub trait InferenceChain: Send + Sync + 'static {
    /// The chain's id (vouchers are signed for it).
    fn chain_id(&self) -> String;
    /// The finalized height: when it changes, the gateway reloads the offers.
    fn height(&self) -> u64;
    /// A key's state, `None` if no such key.
    fn key(&self, id: &AccountId) -> Option<KeyState>;
    /// What settlements have paid on a channel so far.
    fn channel_paid(&self, key: &AccountId, provider: &AccountId, channel: u64) -> Amount;
    /// Every model offer of a bonded provider, with its endpoint and reputation.
    fn candidates(&self) -> Vec<ModelCandidate>;
}
