//! A [`Chain`] backed by a real ledger `State`: submitted transactions wait in a mempool until
//! the test makes a block, exactly as on a node (minus consensus).

use orrery_exec::Bundle;
use orrery_ledger::entries::ChallengePhase;
use orrery_ledger::{
    BlockOutcome, Event, Genesis, GenesisAccount, Params, Signatures, State, apply_block,
};
use orrery_provider::chain::{
    Chain, ChainError, ChainHead, ChallengeStatus, ChallengeTask, ChallengeTaskPhase, CheckPhase,
    CheckRole, InferenceCheck, ProviderRecord, TxOutcome,
};
use orrery_provider::decide::{Head, LeaseInfo};
use orrery_types::amount::Amount;
use orrery_types::block::{Block, BlockTxs};
use orrery_types::crypto::{AccountId, Keypair};
use orrery_types::hash::Hash;
use orrery_types::inference::ModelOffer;
use orrery_types::tx::{ChainId, LeaseId, SignedTx, Tx, TxBody};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub const CHAIN: &str = "orrery-provider-test";
pub const START_BALANCE: Amount = Amount::orr(1_000_000);

pub struct Net {
    pub state: State,
    pub mempool: Vec<SignedTx>,
    pub blobs: BTreeMap<Hash, Vec<u8>>,
    pub events: Vec<Event>,
    pub refused: Vec<String>,
    /// Every included transaction's outcome, by hash (what a node's `/txs/{hash}` serves).
    pub receipts: BTreeMap<Hash, Option<String>>,
}

/// A shared handle: every agent and the test see the same chain.
#[derive(Clone)]
pub struct LedgerChain(pub Arc<Mutex<Net>>);

impl LedgerChain {
    /// A chain whose genesis funds accounts `Keypair::from_seed(0..accounts)`, with the
    /// challenge draw off: these agents claim 16 cores they do not have, and the lease tests
    /// count stakes to the unit. Challenge tests use [`LedgerChain::with_challenges`].
    pub fn new(accounts: u64, params: Params) -> LedgerChain {
        LedgerChain::with_challenges(
            accounts,
            Params {
                challenges_per_block: 0,
                ..params
            },
        )
    }

    /// [`LedgerChain::new`] with `params` as given, challenges included.
    pub fn with_challenges(accounts: u64, params: Params) -> LedgerChain {
        let genesis = Genesis {
            chain_id: ChainId::new(CHAIN).unwrap(),
            genesis_time_ms: 1_700_000_000_000,
            params,
            accounts: (0..accounts)
                .map(|i| GenesisAccount {
                    account: Keypair::from_seed(i).account(),
                    balance: START_BALANCE,
                })
                .collect(),
            validators: vec![Keypair::from_seed(1000).account()],
        };
        LedgerChain(Arc::new(Mutex::new(Net {
            state: State::genesis(&genesis).unwrap(),
            mempool: Vec::new(),
            blobs: BTreeMap::new(),
            events: Vec::new(),
            refused: Vec::new(),
            receipts: BTreeMap::new(),
        })))
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut Net) -> R) -> R {
        f(&mut self.0.lock().unwrap())
    }

    /// Make a block of the mempool (by sender, then nonce); returns its outcome.
    pub fn block(&self) -> BlockOutcome {
        self.block_with(true)
    }

    /// Make a block that includes nothing, the mempool left waiting: what an agent sees when
    /// its transactions have not reached a proposer yet (a loaded network).
    pub fn idle_block(&self) -> BlockOutcome {
        self.block_with(false)
    }

    fn block_with(&self, include: bool) -> BlockOutcome {
        self.with(|net| {
            let mut txs = if include {
                std::mem::take(&mut net.mempool)
            } else {
                Vec::new()
            };
            txs.sort_by_key(|t| (t.sender(), t.tx.nonce));
            let g = net.state.globals();
            let block = Block {
                height: g.height + 1,
                time_ms: g.time_ms + 1_000,
                seed: Hash::of(&(g.height + 1).to_be_bytes()),
                parent: g.last_block,
                txs: BlockTxs::new(txs).unwrap(),
            };
            let out =
                apply_block(&mut net.state, &block, Signatures::Verify).expect("block applies");
            net.state.audit().expect("invariants hold");
            for r in &out.receipts {
                net.receipts
                    .insert(r.tx, r.outcome.as_ref().err().map(|e| e.to_string()));
                match &r.outcome {
                    Ok(events) => net.events.extend(events.iter().cloned()),
                    Err(e) => net.refused.push(format!("{e:?}")),
                }
            }
            net.events.extend(out.events.iter().cloned());
            out
        })
    }

    /// Send a transaction from `key` straight into the mempool.
    pub fn submit_from(&self, key: &Keypair, body: TxBody) {
        self.with(|net| {
            let nonce = net.state.account(&key.account()).nonce
                + net
                    .mempool
                    .iter()
                    .filter(|t| t.sender() == key.account())
                    .count() as u64;
            let tx = Tx {
                chain_id: ChainId::new(CHAIN).unwrap(),
                nonce,
                body,
            }
            .sign(key);
            net.mempool.push(tx);
        })
    }

    pub fn put_bundle(&self, bundle: &Bundle) {
        self.with(|net| net.blobs.insert(bundle.hash(), bundle.bytes().to_vec()));
    }

    pub fn slashed(&self) -> Vec<AccountId> {
        self.with(|net| {
            net.events
                .iter()
                .filter_map(|e| match e {
                    Event::Slashed { party, .. } => Some(*party),
                    _ => None,
                })
                .collect()
        })
    }

    pub fn count_events(&self, pred: impl Fn(&Event) -> bool) -> usize {
        self.with(|net| net.events.iter().filter(|e| pred(e)).count())
    }
}

impl Chain for LedgerChain {
    fn head(&self) -> Result<ChainHead, ChainError> {
        Ok(self.with(|net| ChainHead {
            chain_id: ChainId::new(CHAIN).unwrap(),
            head: Head {
                height: net.state.height(),
                time_ms: net.state.globals().time_ms,
            },
        }))
    }

    fn account(&self, id: &AccountId) -> Result<(Amount, u64), ChainError> {
        Ok(self.with(|net| {
            let a = net.state.account(id);
            (a.balance, a.nonce)
        }))
    }

    fn provider(&self, id: &AccountId) -> Result<Option<ProviderRecord>, ChainError> {
        Ok(self.with(|net| {
            net.state.provider(id).map(|p| ProviderRecord {
                offer: p.offer.clone(),
                stake: p.stake,
                active_leases: p.active_leases,
                reputation: p.reputation,
                earned: p.earned,
            })
        }))
    }

    fn active_leases(&self, party: &AccountId) -> Result<Vec<LeaseInfo>, ChainError> {
        Ok(self.with(|net| {
            net.state
                .leases()
                .values()
                .filter(|l| l.state.is_active() && l.involves(party))
                .map(LeaseInfo::from)
                .collect()
        }))
    }

    fn provider_leases(&self, id: &AccountId) -> Result<Vec<LeaseInfo>, ChainError> {
        Ok(self.with(|net| {
            net.state
                .leases()
                .values()
                .filter(|l| l.provider == *id)
                .map(LeaseInfo::from)
                .collect()
        }))
    }

    fn lease(&self, id: LeaseId) -> Result<Option<LeaseInfo>, ChainError> {
        Ok(self.with(|net| net.state.lease(id).map(LeaseInfo::from)))
    }

    fn bundle(&self, job: &Hash) -> Result<Option<Vec<u8>>, ChainError> {
        Ok(self.with(|net| net.blobs.get(job).cloned()))
    }

    fn put_output(&self, bytes: &[u8]) -> Result<(), ChainError> {
        self.with(|net| net.blobs.insert(Hash::of(bytes), bytes.to_vec()));
        Ok(())
    }

    fn submit(&self, tx: &SignedTx) -> Result<Hash, ChainError> {
        self.with(|net| {
            let nonce = net.state.account(&tx.sender()).nonce;
            if tx.tx.nonce < nonce {
                return Err(ChainError::StaleNonce(format!("next nonce is {nonce}")));
            }
            // As a node's mempool: the same transaction again is no error and not queued
            // twice; another one with a waiting nonce is refused.
            let same_sender =
                |t: &&SignedTx| t.sender() == tx.sender() && t.tx.nonce == tx.tx.nonce;
            match net.mempool.iter().find(same_sender) {
                Some(t) if t == tx => return Ok(tx.hash()),
                Some(_) => {
                    return Err(ChainError::NonceTaken(format!(
                        "nonce {} waits",
                        tx.tx.nonce
                    )));
                }
                None => {}
            }
            net.mempool.push(tx.clone());
            Ok(tx.hash())
        })
    }

    fn model_offers(&self, id: &AccountId) -> Result<Option<Vec<ModelOffer>>, ChainError> {
        Ok(Some(self.with(|net| net.state.model_offers(id).to_vec())))
    }

    /// As a node serves them: open checks of the current round where `party` is a drawn
    /// checker (not out for a missed deadline) or the batch's provider. A transaction sent at
    /// height `h` lands at `h + 1`, so the seal phase is over once `h` reaches its deadline.
    fn inference_checks(&self, party: &AccountId) -> Result<Vec<InferenceCheck>, ChainError> {
        Ok(self.with(|net| {
            let height = net.state.height();
            let mut out = Vec::new();
            for (id, b) in net.state.inference_batches() {
                for c in b.checks.iter().filter(|c| c.outcome.is_none()) {
                    let phase = if height < c.seal_deadline {
                        CheckPhase::Seal
                    } else if height < c.reveal_deadline {
                        CheckPhase::Reveal
                    } else {
                        continue;
                    };
                    let view = |role, sealed, revealed| InferenceCheck {
                        batch: *id,
                        index: c.index,
                        round: u32::from(c.round),
                        role,
                        phase,
                        seal_deadline: c.seal_deadline,
                        reveal_deadline: c.reveal_deadline,
                        batch_file: b.file,
                        model: b.model,
                        sealed,
                        revealed,
                        opened: c.opened.is_some(),
                    };
                    if b.provider == *party {
                        out.push(view(CheckRole::Provider, false, false));
                    }
                    for e in c
                        .round_checkers()
                        .filter(|e| e.checker == *party && !e.missed)
                    {
                        out.push(view(
                            CheckRole::Checker,
                            e.seal.is_some(),
                            e.revealed.is_some(),
                        ));
                    }
                }
            }
            out
        }))
    }

    fn challenges(&self, id: &AccountId) -> Result<Option<ChallengeStatus>, ChainError> {
        Ok(self.with(|net| {
            let p = net.state.provider(id)?;
            let params = net.state.params();
            let open = net.state.challenge(id).map(|c| ChallengeTask {
                drawn_at: c.drawn_at,
                seed: c.seed,
                dim: c.dim,
                rows: c.rows,
                phase: match c.phase {
                    ChallengePhase::Requested { .. } => ChallengeTaskPhase::Requested,
                    ChallengePhase::Drawn => ChallengeTaskPhase::Drawn,
                    ChallengePhase::Answered { .. } => ChallengeTaskPhase::Answered,
                    ChallengePhase::Opening { open_seed, .. } => ChallengeTaskPhase::Opening {
                        rows: orrery_types::challenge::open_indices(
                            &c.seed,
                            &open_seed,
                            c.rows,
                            u64::from(params.challenge_open_rows),
                        ),
                    },
                },
            });
            Some(ChallengeStatus {
                online: p.proof.online,
                open,
            })
        }))
    }

    fn tx_outcome(&self, hash: &Hash) -> Result<TxOutcome, ChainError> {
        Ok(self.with(|net| match net.receipts.get(hash) {
            None => TxOutcome::Unknown,
            Some(None) => TxOutcome::Applied,
            Some(Some(reason)) => TxOutcome::Refused(reason.clone()),
        }))
    }
}
