//! [`InferenceChain`] over the node's chain backend: the last finalized ledger state.

use super::chain::{InferenceChain, KeyState};
use crate::backend::{self, Backend};
use orrery_ledger::State;
use orrery_market::ModelCandidate;
use orrery_types::amount::Amount;
use orrery_types::crypto::AccountId;
use std::sync::Arc;

/// The chain as the gateway reads it, from a [`Backend`].
pub struct LedgerChain {
    backend: Arc<dyn Backend>,
}

impl LedgerChain {
    /// Read through `backend`.
    pub fn new(backend: Arc<dyn Backend>) -> LedgerChain {
        LedgerChain { backend }
    }
}

/// Every model offer of a provider whose stake reaches the ledger's minimum for its hardware
/// (the providers the ledger would also draw as checkers) and that the chain counts online (a
/// missed or failed challenge takes its offers out of routing until it answers one), with its
/// endpoint and reputation.
pub fn bonded_candidates(st: &State) -> Vec<ModelCandidate> {
    let params = st.params();
    st.all_model_offers()
        .filter_map(|(id, offer)| {
            let p = st.provider(id)?;
            let need = params.min_stake(&p.offer.hardware)?;
            (p.stake >= need && p.proof.online).then(|| ModelCandidate {
                provider: *id,
                // Without the cluster contact an offer may publish as the URL's fragment.
                endpoint: orrery_types::cluster::endpoint_base(p.offer.endpoint.as_str())
                    .to_owned(),
                reputation: p.reputation,
                offer: offer.clone(),
            })
        })
        .collect()
}

impl InferenceChain for LedgerChain {
    fn chain_id(&self) -> String {
        self.backend.status().chain_id
    }

    fn height(&self) -> u64 {
        self.backend.status().height
    }

    fn key(&self, id: &AccountId) -> Option<KeyState> {
        backend::read(&*self.backend, |st| {
            st.inference_key(id).map(|k| KeyState {
                owner: k.owner,
                limit: k.limit,
                spent: k.spent,
                deposit: k.deposit,
                revoked_at: k.revoked_at,
            })
        })
        .flatten()
    }

    fn channel_paid(&self, key: &AccountId, provider: &AccountId, channel: u64) -> Amount {
        backend::read(&*self.backend, |st| {
            st.inference_channel(key, provider, channel)
                .map(|c| c.paid_total)
        })
        .flatten()
        .unwrap_or_default()
    }

    fn candidates(&self) -> Vec<ModelCandidate> {
        backend::read(&*self.backend, bonded_candidates).unwrap_or_default()
    }
}
