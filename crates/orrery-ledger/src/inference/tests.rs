//! Inference on the ledger, driven through real blocks: honest and cheating providers, honest,
//! lying and absent checkers, keys, limits and refusals. Every block is audited (supply
//! conservation and the full recount).

use crate::entries::{BatchPhase, CheckOutcome, InferenceBatch};
use crate::{
    BlockOutcome, Event, Genesis, GenesisAccount, Params, Receipt, Signatures, State, TxError,
    apply_block,
};
use orrery_types::amount::Amount;
use orrery_types::block::{Block, BlockTxs};
use orrery_types::codec::{BoundedVec, Text};
use orrery_types::crypto::{AccountId, Keypair};
use orrery_types::hash::Hash;
use orrery_types::inference::{
    ApiKey, MAX_BATCH_RESPONSES, ModelKind, ModelOffer, ResponseCommitment, Voucher, check_seal,
};
use orrery_types::merkle::MerkleTree;
use orrery_types::resources::{GpuSpec, Hardware, PriceList};
use orrery_types::tx::{BatchId, ChainId, ProviderOffer, SignedTx, Tx, TxBody};
use std::collections::BTreeMap;

const CHAIN: &str = "infer-test";
const START: Amount = Amount::orr(1_000_000);
const STAKE: Amount = Amount::orr(2_000);
/// Account 0 owns the key; 1 is the provider under test; 2.. are other providers (checkers).
const OWNER: usize = 0;
const PROVIDER: usize = 1;
const PROVIDERS: usize = 6;
const PRICE: Amount = Amount::orr(1);

fn weights() -> Hash {
    Hash::of(b"weights of the test model")
}

fn request(i: u64) -> Hash {
    Hash::of_parts(&[b"request", &i.to_be_bytes()])
}

/// What running request `i` on the real weights gives.
fn honest_output(i: u64) -> Hash {
    Hash::of_parts(&[b"output", &i.to_be_bytes()])
}

fn hardware_offer() -> ProviderOffer {
    ProviderOffer {
        hardware: Hardware {
            gpu: Some(GpuSpec {
                model: Text::new("NVIDIA RTX 4090").unwrap(),
                vram_mib: 24_576,
                count: 1,
            }),
            cpu_cores: 16,
            ram_gib: 64,
        },
        region: Text::new("eu-west").unwrap(),
        endpoint: Text::new("http://127.0.0.1:7100").unwrap(),
        prices: PriceList {
            gpu_hour: Amount::orr(2),
            cpu_core_hour: Amount::ZERO,
            ram_gib_hour: Amount::ZERO,
            mega_unit: Amount::orr(1),
        },
    }
}

fn model_offer(name: &str, weights: Hash, sample_bps: u16) -> ModelOffer {
    ModelOffer {
        name: Text::new(name).unwrap(),
        weights,
        kind: ModelKind::Generation,
        context: 2_048,
        price_in: Amount::orr(1),
        price_out: Amount::orr(2),
        sample_bps,
    }
}

fn offers(list: Vec<ModelOffer>) -> TxBody {
    TxBody::OfferModels {
        models: BoundedVec::new(list).unwrap(),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CheckerMode {
    Honest,
    /// Reveals an output that is not the model's.
    Liar,
    /// Never seals.
    Absent,
    /// Could not fetch the batch file: reveals zeros.
    NoFile,
}

/// A chain with a key owner, the provider under test and `PROVIDERS − 2` other providers that
/// serve the same model, all bonded; plus the agents' behaviour.
struct World {
    state: State,
    keys: Vec<Keypair>,
    salt: u64,
    api: ApiKey,
    /// The provider's commitments for the batch being played.
    commitments: Vec<ResponseCommitment>,
    /// The global response number of that batch's first response.
    first: u64,
    /// Responses served so far on the channel.
    served: u64,
    provider_opens: bool,
    checkers: BTreeMap<AccountId, CheckerMode>,
    events: Vec<Event>,
}

impl World {
    fn new(params: Params, salt: u64, sample_bps: u16) -> World {
        let keys: Vec<Keypair> = (0..PROVIDERS as u64 + 1).map(Keypair::from_seed).collect();
        let validators: Vec<AccountId> = (500..502)
            .map(|s| Keypair::from_seed(s).account())
            .collect();
        let genesis = Genesis {
            chain_id: ChainId::new(CHAIN).unwrap(),
            genesis_time_ms: 1_700_000_000_000,
            params,
            accounts: keys
                .iter()
                .map(|k| GenesisAccount {
                    account: k.account(),
                    balance: START,
                })
                .collect(),
            validators,
        };
        let mut w = World {
            state: State::genesis(&genesis).unwrap(),
            keys,
            salt,
            api: ApiKey::from_secret(&[7u8; 32]).unwrap(),
            commitments: Vec::new(),
            first: 0,
            served: 0,
            provider_opens: true,
            checkers: BTreeMap::new(),
            events: Vec::new(),
        };
        let mut txs = Vec::new();
        for i in PROVIDER..PROVIDERS {
            txs.push(w.tx_at(i, 0, TxBody::RegisterProvider(hardware_offer())));
            txs.push(w.tx_at(i, 1, TxBody::Bond { amount: STAKE }));
            let offer = model_offer("test-model", weights(), sample_bps);
            txs.push(w.tx_at(i, 2, offers(vec![offer])));
        }
        let out = w.apply(txs);
        assert!(
            out.receipts.iter().all(Receipt::is_ok),
            "{:?}",
            out.receipts
        );
        w
    }

    fn id(&self, i: usize) -> AccountId {
        self.keys[i].account()
    }

    fn index_of(&self, who: &AccountId) -> usize {
        self.keys.iter().position(|k| k.account() == *who).unwrap()
    }

    fn key_id(&self) -> AccountId {
        self.api.id()
    }

    fn balance(&self, i: usize) -> Amount {
        self.state.account(&self.id(i)).balance
    }

    fn stake(&self, i: usize) -> Amount {
        self.state.provider(&self.id(i)).unwrap().stake
    }

    fn tx_at(&self, i: usize, offset: u64, body: TxBody) -> SignedTx {
        Tx {
            chain_id: ChainId::new(CHAIN).unwrap(),
            nonce: self.state.account(&self.id(i)).nonce + offset,
            body,
        }
        .sign(&self.keys[i])
    }

    fn apply(&mut self, txs: Vec<SignedTx>) -> BlockOutcome {
        let g = *self.state.globals();
        let height = g.height + 1;
        let block = Block {
            height,
            time_ms: g.time_ms + 1_000,
            seed: Hash::of_parts(&[&self.salt.to_be_bytes(), &height.to_be_bytes()]),
            parent: g.last_block,
            txs: BlockTxs::new(txs).unwrap(),
        };
        let out = apply_block(&mut self.state, &block, Signatures::Verify).expect("block applies");
        self.state.audit().expect("invariants hold");
        assert_eq!(self.state.totals().sum(), self.state.globals().supply());
        for r in &out.receipts {
            if let Ok(e) = &r.outcome {
                self.events.extend(e.iter().cloned());
            }
        }
        self.events.extend(out.events.iter().cloned());
        out
    }

    fn run(&mut self, i: usize, body: TxBody) -> Receipt {
        let tx = self.tx_at(i, 0, body);
        self.apply(vec![tx]).receipts.remove(0)
    }

    fn create_key(&mut self, limit: Amount, deposit: Amount) {
        let key = self.key_id();
        let r = self.run(
            OWNER,
            TxBody::CreateInferenceKey {
                key,
                limit,
                deposit,
            },
        );
        assert!(r.is_ok(), "{r:?}");
    }

    /// The provider answers `n` more responses on channel 0, `output(i)` being what it
    /// commits to for response `i`; returns the voucher for the channel's new total.
    fn serve(&mut self, n: u64, output: impl Fn(u64) -> Hash) -> Voucher {
        let start = self.served;
        self.first = start;
        self.served += n;
        self.commitments = (start..start + n)
            .map(|i| ResponseCommitment {
                model: weights(),
                key: self.key_id(),
                request: request(i),
                seed: 0,
                output: output(i),
                tokens_in: 10,
                tokens_out: 20,
                charged: PRICE,
            })
            .collect();
        let pos = self
            .state
            .inference_channel(&self.key_id(), &self.id(PROVIDER), 0)
            .copied()
            .unwrap_or_default();
        Voucher {
            chain_id: ChainId::new(CHAIN).unwrap(),
            key: self.api.keypair().public_key().clone(),
            provider: self.id(PROVIDER),
            channel: 0,
            total: pos
                .paid_total
                .checked_add(PRICE.checked_mul(n.into()).unwrap())
                .unwrap(),
            responses: pos.paid_responses + n,
        }
    }

    fn root(&self) -> Hash {
        let leaves: Vec<Hash> = self.commitments.iter().map(|c| c.leaf()).collect();
        MerkleTree::new(&leaves).root()
    }

    fn settle_body(&self, voucher: Voucher) -> TxBody {
        TxBody::SettleInference {
            voucher: voucher.sign(self.api.keypair()),
            model: weights(),
            root: self.root(),
            batch: Hash::of(b"batch file"),
        }
    }

    /// Settle `voucher` and return the new batch's id.
    fn settle(&mut self, voucher: Voucher) -> BatchId {
        let body = self.settle_body(voucher);
        let r = self.run(PROVIDER, body);
        match r.outcome.as_deref() {
            Ok([Event::InferenceSettled { batch, .. }]) => *batch,
            other => panic!("settlement refused: {other:?}"),
        }
    }

    fn batch(&self, id: BatchId) -> &InferenceBatch {
        self.state.inference_batch(id).unwrap()
    }

    fn mode(&self, who: &AccountId) -> CheckerMode {
        self.checkers
            .get(who)
            .copied()
            .unwrap_or(CheckerMode::Honest)
    }

    /// The claim a checker in `mode` makes about response `index` (batch-local).
    fn claim(&self, mode: CheckerMode, index: u64) -> (Hash, Hash) {
        let i = self.commitments[index as usize].request;
        let real = self.first + index;
        match mode {
            CheckerMode::Liar => (i, Hash::of(b"a made-up output")),
            CheckerMode::NoFile => (Hash::ZERO, Hash::ZERO),
            CheckerMode::Honest | CheckerMode::Absent => (i, honest_output(real)),
        }
    }

    /// Every move the agents make in the next block for batch `id`.
    fn moves(&self, id: BatchId) -> Vec<(usize, TxBody)> {
        let b = self.batch(id);
        let height = self.state.height() + 1;
        let mut moves = Vec::new();
        for c in b
            .checks
            .iter()
            .filter(|c| c.outcome.is_none() && c.draw_at.is_none())
        {
            for e in c.round_checkers().filter(|e| !e.missed) {
                let mode = self.mode(&e.checker);
                let (req, out) = self.claim(mode, c.index);
                let who = self.index_of(&e.checker);
                if mode == CheckerMode::Absent {
                    continue;
                }
                if e.seal.is_none() && height <= c.seal_deadline {
                    let seal = check_seal(id, c.index, &e.checker, &req, &out);
                    moves.push((
                        who,
                        TxBody::SealInferenceCheck {
                            batch: id,
                            index: c.index,
                            seal,
                        },
                    ));
                } else if e.seal.is_some() && c.sealing_closed() && e.revealed.is_none() {
                    let body = TxBody::RevealInferenceCheck {
                        batch: id,
                        index: c.index,
                        request: req,
                        output: out,
                    };
                    moves.push((who, body));
                }
            }
            if self.provider_opens && c.sealing_closed() && c.opened.is_none() {
                moves.push((PROVIDER, self.open_body(id, c.index)));
            }
        }
        moves
    }

    fn open_body(&self, id: BatchId, index: u64) -> TxBody {
        let leaves: Vec<Hash> = self.commitments.iter().map(|c| c.leaf()).collect();
        TxBody::OpenInferenceResponse {
            batch: id,
            index,
            commitment: self.commitments[index as usize].clone(),
            proof: MerkleTree::new(&leaves).proof(index).unwrap(),
        }
    }

    /// Play blocks until batch `id` is released; every move must be accepted.
    fn play(&mut self, id: BatchId) {
        for _ in 0..200 {
            if self.batch(id).phase == BatchPhase::Released {
                return;
            }
            let mut offsets: BTreeMap<usize, u64> = BTreeMap::new();
            let txs: Vec<SignedTx> = self
                .moves(id)
                .into_iter()
                .map(|(who, body)| {
                    let off = offsets.entry(who).or_default();
                    *off += 1;
                    self.tx_at(who, *off - 1, body)
                })
                .collect();
            let out = self.apply(txs);
            for r in &out.receipts {
                assert!(r.is_ok(), "a move was refused: {r:?}");
            }
        }
        panic!("batch {id} was not released in 200 blocks");
    }

    fn outcomes(&self, id: BatchId) -> Vec<CheckOutcome> {
        self.batch(id)
            .checks
            .iter()
            .filter_map(|c| c.outcome)
            .collect()
    }

    fn slashed(&self) -> Vec<AccountId> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::InferenceSlashed { party, .. } => Some(*party),
                _ => None,
            })
            .collect()
    }
}

fn params_one_check() -> Params {
    Params {
        max_inference_checks_per_batch: 1,
        ..Params::default()
    }
}

fn fee_of(gross: Amount) -> Amount {
    gross.bps(Params::default().fee_bps).unwrap()
}

#[test]
fn an_honest_batch_is_checked_agreed_and_paid_to_the_unit() {
    let mut w = World::new(params_one_check(), 1, 10_000);
    w.create_key(Amount::orr(100), Amount::orr(50));
    let provider_before = w.balance(PROVIDER);
    let voucher = w.serve(4, honest_output);
    let id = w.settle(voucher);
    assert_eq!(w.batch(id).held, Amount::orr(4));
    w.apply(vec![]); // the draw
    let b = w.batch(id).clone();
    assert_eq!(b.phase, BatchPhase::Checking);
    assert_eq!(b.checks.len(), 1, "the cap of one check holds");
    let checker = w.index_of(&b.checks[0].checkers[0].checker);
    assert!(checker > PROVIDER, "the checker is another provider");
    let checker_before = w.balance(checker);
    w.play(id);

    let b = w.batch(id);
    assert_eq!(w.outcomes(id), vec![CheckOutcome::Agreed]);
    assert_eq!(
        b.checker_fees, PRICE,
        "the checker is paid the response's price"
    );
    let gross = Amount::orr(3);
    let fee = fee_of(gross);
    assert_eq!(b.fee, fee);
    assert_eq!(b.paid, gross.checked_sub(fee).unwrap());
    assert_eq!(b.held, Amount::ZERO);
    assert_eq!(
        w.balance(PROVIDER),
        provider_before.checked_add(b.paid).unwrap()
    );
    assert_eq!(
        w.balance(checker),
        checker_before.checked_add(PRICE).unwrap()
    );
    let key = w.state.inference_key(&w.key_id()).unwrap();
    assert_eq!(key.spent, Amount::orr(4));
    assert_eq!(key.deposit, Amount::orr(46));
    assert!(w.slashed().is_empty());
    assert_eq!(w.stake(PROVIDER), STAKE);
    assert_eq!(w.stake(checker), STAKE);
}

/// A provider that commits to `lie(i)` instead of the model's answer on every response.
fn caught_with(lie: fn(u64) -> Hash) {
    let mut w = World::new(params_one_check(), 2, 10_000);
    w.create_key(Amount::orr(100), Amount::orr(50));
    let voucher = w.serve(4, lie);
    let id = w.settle(voucher);
    let owner_before = w.balance(OWNER);
    w.play(id);

    let b = w.batch(id).clone();
    assert_eq!(w.outcomes(id), vec![CheckOutcome::ProviderCaught]);
    let check = &b.checks[0];
    assert_eq!(check.round, 2, "caught by the tie-breakers' majority");
    let winners: Vec<AccountId> = check.checkers.iter().map(|c| c.checker).collect();
    assert_eq!(winners.len(), 3, "the round-1 checker and two tie-breakers");
    assert_eq!(
        w.slashed(),
        vec![w.id(PROVIDER)],
        "only the provider is slashed"
    );
    let slash = STAKE.bps(Params::default().slash_bps).unwrap();
    assert_eq!(w.stake(PROVIDER), STAKE.checked_sub(slash).unwrap());
    let reward = slash.bps(Params::default().slash_reward_bps).unwrap();
    let each = Amount(reward.units() / 3);
    for c in &winners {
        let i = w.index_of(c);
        assert_eq!(
            w.balance(i),
            START.checked_sub(STAKE).unwrap().checked_add(each).unwrap()
        );
    }
    // The checked response returns to the key to the unit; the three unchecked are paid.
    assert_eq!(b.refunded, PRICE);
    let key = w.state.inference_key(&w.key_id()).unwrap();
    assert_eq!(key.spent, Amount::orr(3));
    assert_eq!(key.deposit, Amount::orr(47));
    assert_eq!(
        w.balance(OWNER),
        owner_before,
        "refunds go to the deposit, not the owner"
    );
    let gross = Amount::orr(3);
    assert_eq!(b.paid, gross.checked_sub(fee_of(gross)).unwrap());
}

#[test]
fn a_provider_answering_with_another_model_is_caught_and_the_response_refunded() {
    caught_with(|i| Hash::of_parts(&[b"output of a cheaper model", &i.to_be_bytes()]));
}

#[test]
fn a_provider_truncating_its_answers_is_caught() {
    caught_with(|i| Hash::of_parts(&[b"the first half of output", &i.to_be_bytes()]));
}

#[test]
fn a_provider_answering_with_another_requests_output_is_caught() {
    caught_with(|i| honest_output(i + 1));
}

#[test]
fn a_lying_checker_is_slashed_and_the_provider_kept_whole() {
    let mut w = World::new(params_one_check(), 3, 10_000);
    w.create_key(Amount::orr(100), Amount::orr(50));
    let voucher = w.serve(4, honest_output);
    let id = w.settle(voucher);
    let provider_before = w.balance(PROVIDER);
    w.apply(vec![]); // the draw
    let liar = w.batch(id).checks[0].checkers[0].checker;
    w.checkers.insert(liar, CheckerMode::Liar);
    w.play(id);

    let b = w.batch(id).clone();
    assert_eq!(w.outcomes(id), vec![CheckOutcome::CheckerWrong]);
    assert_eq!(w.slashed(), vec![liar]);
    assert_eq!(
        w.stake(PROVIDER),
        STAKE,
        "the honest provider keeps its stake"
    );
    let slash = STAKE.bps(Params::default().slash_bps).unwrap();
    let reward = slash.bps(Params::default().slash_reward_bps).unwrap();
    // The two tie-breakers who agreed with the provider are paid the response's price each.
    assert_eq!(b.checker_fees, Amount::orr(2));
    assert_eq!(b.refunded, Amount::ZERO);
    let gross = Amount::orr(2);
    assert_eq!(b.paid, gross.checked_sub(fee_of(gross)).unwrap());
    assert_eq!(
        w.balance(PROVIDER),
        provider_before
            .checked_add(b.paid)
            .unwrap()
            .checked_add(reward)
            .unwrap()
    );
    let key = w.state.inference_key(&w.key_id()).unwrap();
    assert_eq!(
        key.spent,
        Amount::orr(4),
        "the key paid for four honest responses"
    );
}

#[test]
fn a_provider_that_never_opens_forfeits_the_whole_batch() {
    let mut w = World::new(Params::default(), 4, 10_000);
    w.create_key(Amount::orr(100), Amount::orr(50));
    let voucher = w.serve(3, honest_output);
    let id = w.settle(voucher);
    w.provider_opens = false;
    w.play(id);

    let b = w.batch(id).clone();
    assert!(
        b.checks
            .iter()
            .any(|c| c.outcome == Some(CheckOutcome::ProviderCaught))
    );
    assert_eq!(
        b.refunded,
        Amount::orr(3),
        "the whole hold returns to the key"
    );
    assert_eq!(b.paid, Amount::ZERO);
    assert_eq!(b.checker_fees, Amount::ZERO);
    assert_eq!(w.slashed(), vec![w.id(PROVIDER)]);
    let key = w.state.inference_key(&w.key_id()).unwrap();
    assert_eq!(key.spent, Amount::ZERO);
    assert_eq!(key.deposit, Amount::orr(50));
}

#[test]
fn a_checker_that_never_seals_is_docked_and_the_response_goes_unchecked() {
    let mut w = World::new(params_one_check(), 5, 10_000);
    w.create_key(Amount::orr(100), Amount::orr(50));
    let voucher = w.serve(2, honest_output);
    let id = w.settle(voucher);
    w.apply(vec![]);
    let absent = w.batch(id).checks[0].checkers[0].checker;
    w.checkers.insert(absent, CheckerMode::Absent);
    w.play(id);
    assert_eq!(w.outcomes(id), vec![CheckOutcome::Unchecked]);
    let docked = STAKE.bps(Params::default().timeout_penalty_bps).unwrap();
    let i = w.index_of(&absent);
    assert_eq!(w.stake(i), STAKE.checked_sub(docked).unwrap());
    assert!(w.batch(id).checks[0].checkers[0].missed);
    let gross = Amount::orr(2);
    assert_eq!(w.batch(id).paid, gross.checked_sub(fee_of(gross)).unwrap());
}

#[test]
fn a_liar_facing_absent_tie_breakers_ends_without_a_majority_and_the_key_is_refunded() {
    let mut w = World::new(params_one_check(), 13, 10_000);
    w.create_key(Amount::orr(100), Amount::orr(50));
    let voucher = w.serve(2, honest_output);
    let id = w.settle(voucher);
    w.apply(vec![]);
    let liar = w.batch(id).checks[0].checkers[0].checker;
    for i in 2..PROVIDERS {
        let who = w.id(i);
        let mode = if who == liar {
            CheckerMode::Liar
        } else {
            CheckerMode::Absent
        };
        w.checkers.insert(who, mode);
    }
    w.play(id);
    let b = w.batch(id).clone();
    assert_eq!(w.outcomes(id), vec![CheckOutcome::NoMajority]);
    assert!(
        w.slashed().is_empty(),
        "one claim against one: nobody is slashed"
    );
    assert_eq!(
        b.refunded, PRICE,
        "the disputed response returns to the key"
    );
    let missed: Vec<_> = b.checks[0].checkers.iter().filter(|c| c.missed).collect();
    assert_eq!(missed.len(), 2, "both tie-breakers were docked");
    assert_eq!(w.stake(PROVIDER), STAKE);
    let key = w.state.inference_key(&w.key_id()).unwrap();
    assert_eq!(key.spent, Amount::orr(1));
}

#[test]
fn a_batch_file_nobody_can_fetch_is_caught_by_every_checker_saying_so() {
    let mut w = World::new(params_one_check(), 14, 10_000);
    w.create_key(Amount::orr(100), Amount::orr(50));
    for i in 2..PROVIDERS {
        let who = w.id(i);
        w.checkers.insert(who, CheckerMode::NoFile);
    }
    let voucher = w.serve(2, honest_output);
    let id = w.settle(voucher);
    w.play(id);
    assert_eq!(w.outcomes(id), vec![CheckOutcome::ProviderCaught]);
    assert_eq!(w.slashed(), vec![w.id(PROVIDER)]);
    assert_eq!(w.batch(id).refunded, PRICE);
}

#[test]
fn a_key_never_pays_past_its_limit() {
    let mut w = World::new(Params::default(), 6, 100);
    w.create_key(Amount::orr(3), Amount::orr(10));
    let voucher = w.serve(5, honest_output);
    let id = w.settle(voucher);
    assert_eq!(w.batch(id).held, Amount::orr(3));
    let shortfall = w.events.iter().find_map(|e| match e {
        Event::InferenceSettled { shortfall, .. } => Some(*shortfall),
        _ => None,
    });
    assert_eq!(shortfall, Some(Amount::orr(2)));
    let key = *w.state.inference_key(&w.key_id()).unwrap();
    assert_eq!((key.spent, key.deposit), (Amount::orr(3), Amount::orr(7)));
    // The channel moved past the unfunded voucher; a later one pays nothing more.
    let voucher = w.serve(1, honest_output);
    let id2 = w.settle(voucher);
    assert_eq!(w.batch(id2).held, Amount::ZERO);
    let key = *w.state.inference_key(&w.key_id()).unwrap();
    assert_eq!(key.spent, key.limit);
    assert_eq!(key.deposit, Amount::orr(7));
}

#[test]
fn a_deposit_caps_payment_when_it_is_below_the_limit() {
    let mut w = World::new(Params::default(), 7, 100);
    w.create_key(Amount::orr(100), Amount::orr(2));
    let voucher = w.serve(5, honest_output);
    let id = w.settle(voucher);
    assert_eq!(w.batch(id).held, Amount::orr(2));
    let key = *w.state.inference_key(&w.key_id()).unwrap();
    assert_eq!((key.spent, key.deposit), (Amount::orr(2), Amount::ZERO));
}

#[test]
fn a_revoked_key_settles_during_its_grace_then_returns_the_rest() {
    let grace = Params::default().voucher_grace_blocks;
    let mut w = World::new(Params::default(), 8, 100);
    w.create_key(Amount::orr(100), Amount::orr(10));
    let owner_start = w.balance(OWNER);
    let key = w.key_id();
    let r = w.run(OWNER, TxBody::RevokeInferenceKey { key });
    assert!(r.is_ok());
    let revoked_at = w.state.height();
    // Funding or revoking again is refused.
    let r = w.run(
        OWNER,
        TxBody::FundInferenceKey {
            key,
            amount: Amount::orr(1),
        },
    );
    assert!(
        matches!(r.outcome, Err(TxError::KeyRevoked { .. })),
        "{r:?}"
    );
    // A voucher signed before the revocation still settles within the grace.
    let voucher = w.serve(4, honest_output);
    let id = w.settle(voucher);
    w.play(id);
    while w.state.height() < revoked_at + grace - 1 {
        w.apply(vec![]);
    }
    let late = w.serve(1, honest_output);
    let body = w.settle_body(late.clone());
    let tx = w.tx_at(PROVIDER, 0, body);
    let out = w.apply(vec![tx]); // height revoked_at + grace: the last settlement allowed
    assert!(out.receipts[0].is_ok(), "{:?}", out.receipts[0]);
    let closed = out.events.iter().find_map(|e| match e {
        Event::InferenceKeyClosed { returned, .. } => Some(*returned),
        _ => None,
    });
    assert_eq!(closed, Some(Amount::orr(5)), "10 deposited, 4 + 1 paid");
    let k = *w.state.inference_key(&key).unwrap();
    assert_eq!(k.deposit, Amount::ZERO);
    assert_eq!(
        w.balance(OWNER),
        owner_start.checked_add(Amount::orr(5)).unwrap()
    );
    let mut later = late;
    later.total = later.total.checked_add(PRICE).unwrap();
    later.responses += 1;
    let body = w.settle_body(later);
    let r = w.run(PROVIDER, body);
    assert!(
        matches!(r.outcome, Err(TxError::VoucherExpired { .. })),
        "{r:?}"
    );
}

/// What a refused transaction must leave as it was: everything but the sender's nonce.
fn snapshot(w: &World) -> String {
    let s = &w.state;
    let keys: Vec<_> = s.inference_keys().collect();
    let batches: Vec<_> = s.inference_batches().collect();
    let balances: Vec<_> = s.accounts().iter().map(|(a, x)| (*a, x.balance)).collect();
    format!(
        "{:?}{keys:?}{batches:?}{balances:?}{:?}",
        s.totals(),
        s.inference_channel(&w.key_id(), &w.id(PROVIDER), 0)
    )
}

fn refused(w: &mut World, sender: usize, body: TxBody, expect: impl Fn(&TxError) -> bool) {
    let before = snapshot(w);
    let r = w.run(sender, body);
    match &r.outcome {
        Err(e) if expect(e) => {}
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(snapshot(w), before, "a refused transaction changed state");
}

#[test]
fn replayed_and_older_vouchers_are_refused_and_change_nothing() {
    let (mut w, voucher) = settled_once(9);
    let signed_first = w.settle_body(voucher.clone());

    // Replayed, and older than the channel.
    refused(&mut w, PROVIDER, signed_first, |e| {
        matches!(e, TxError::StaleVoucher { .. })
    });
    let mut older = voucher.clone();
    older.responses = 1;
    older.total = PRICE;
    let body = w.settle_body(older);
    refused(&mut w, PROVIDER, body, |e| {
        matches!(e, TxError::StaleVoucher { .. })
    });
    // Fewer total tokens than already settled, even with more responses.
    let mut lower = voucher.clone();
    lower.responses += 1;
    lower.total = PRICE;
    let body = w.settle_body(lower);
    refused(&mut w, PROVIDER, body, |e| {
        matches!(e, TxError::StaleVoucher { .. })
    });
}

/// A world whose provider settled one batch of two responses, played to its release (so that
/// later blocks change nothing by themselves); and that batch's voucher.
fn settled_once(seed: u64) -> (World, Voucher) {
    let mut w = World::new(Params::default(), seed, 100);
    w.create_key(Amount::orr(100), Amount::orr(50));
    let voucher = w.serve(2, honest_output);
    let id = w.settle(voucher.clone());
    w.play(id);
    (w, voucher)
}

#[test]
fn bad_vouchers_are_refused_and_change_nothing() {
    let (mut w, voucher) = settled_once(19);
    let next = w.serve(1, honest_output);
    let mut other_chain = next.clone();
    other_chain.chain_id = ChainId::new("another-chain").unwrap();
    let body = w.settle_body(other_chain);
    refused(&mut w, PROVIDER, body, |e| {
        matches!(e, TxError::VoucherWrongChain { .. })
    });

    let forged = TxBody::SettleInference {
        voucher: next.clone().sign(&Keypair::from_seed(99)),
        model: weights(),
        root: w.root(),
        batch: Hash::ZERO,
    };
    refused(&mut w, PROVIDER, forged, |e| {
        *e == TxError::BadVoucherSignature
    });

    let stranger = ApiKey::from_secret(&[9u8; 32]).unwrap();
    let mut unknown = next.clone();
    unknown.key = stranger.keypair().public_key().clone();
    let body = TxBody::SettleInference {
        voucher: unknown.sign(stranger.keypair()),
        model: weights(),
        root: w.root(),
        batch: Hash::ZERO,
    };
    refused(&mut w, PROVIDER, body, |e| {
        matches!(e, TxError::UnknownInferenceKey(_))
    });

    let mut to_owner = next.clone();
    to_owner.provider = w.id(OWNER);
    let body = w.settle_body(to_owner);
    refused(&mut w, OWNER, body, |e| {
        matches!(e, TxError::NotAProvider(_))
    });
    let body = w.settle_body(next.clone());
    refused(&mut w, 2, body, |e| {
        matches!(e, TxError::VoucherNotYours { .. })
    });

    let mut huge = next.clone();
    huge.responses = voucher.responses + MAX_BATCH_RESPONSES + 1;
    let body = w.settle_body(huge);
    refused(&mut w, PROVIDER, body, |e| {
        matches!(e, TxError::BatchTooLarge { .. })
    });

    let TxBody::SettleInference {
        voucher: signed,
        root,
        batch,
        ..
    } = w.settle_body(next)
    else {
        unreachable!()
    };
    let body = TxBody::SettleInference {
        voucher: signed,
        model: Hash::of(b"unoffered"),
        root,
        batch,
    };
    refused(&mut w, PROVIDER, body, |e| {
        matches!(e, TxError::ModelNotOffered { .. })
    });
}

#[test]
fn bad_offers_and_keys_are_refused_and_change_nothing() {
    let mut w = World::new(params_one_check(), 10, 10_000);
    let floor = Params::default().min_inference_sample_bps;
    let invalid = |e: &TxError| matches!(e, TxError::InvalidModelOffer { .. });
    refused(&mut w, OWNER, offers(vec![]), |e| {
        matches!(e, TxError::NotAProvider(_))
    });
    for bad in [
        vec![model_offer("", weights(), 100)],
        vec![model_offer("m", weights(), floor - 1)],
        vec![model_offer("m", weights(), 10_001)],
        vec![ModelOffer {
            context: 0,
            ..model_offer("m", weights(), 100)
        }],
        vec![
            model_offer("m", weights(), 100),
            model_offer("m", Hash::of(b"x"), 100),
        ],
        vec![
            model_offer("a", weights(), 100),
            model_offer("b", weights(), 100),
        ],
    ] {
        refused(&mut w, PROVIDER, offers(bad), invalid);
    }
    let key = w.key_id();
    let create = |limit, deposit| TxBody::CreateInferenceKey {
        key,
        limit,
        deposit,
    };
    refused(&mut w, OWNER, create(Amount::ZERO, Amount::ZERO), |e| {
        *e == TxError::ZeroLimit
    });
    let too_much = START.checked_add(Amount(1)).unwrap();
    refused(&mut w, OWNER, create(Amount::orr(1), too_much), |e| {
        matches!(e, TxError::InsufficientFunds { .. })
    });
    w.create_key(Amount::orr(100), Amount::ZERO);
    refused(&mut w, 2, create(Amount::orr(1), Amount::ZERO), |e| {
        matches!(e, TxError::InferenceKeyExists(_))
    });
    refused(
        &mut w,
        2,
        TxBody::FundInferenceKey {
            key,
            amount: Amount::orr(1),
        },
        |e| matches!(e, TxError::NotKeyOwner { .. }),
    );
    refused(
        &mut w,
        OWNER,
        TxBody::FundInferenceKey {
            key,
            amount: Amount::ZERO,
        },
        |e| *e == TxError::ZeroAmount,
    );
    let r = w.run(
        OWNER,
        TxBody::FundInferenceKey {
            key,
            amount: Amount::orr(10),
        },
    );
    assert!(r.is_ok());

    assert_eq!(
        w.state.inference_key(&key).unwrap().deposit,
        Amount::orr(10)
    );
}

#[test]
fn check_moves_out_of_turn_or_by_strangers_are_refused_and_change_nothing() {
    let mut w = World::new(params_one_check(), 10, 10_000);
    w.create_key(Amount::orr(100), Amount::orr(10));
    let voucher = w.serve(2, honest_output);
    let id = w.settle(voucher);
    w.apply(vec![]);
    let c = w.batch(id).checks[0].clone();
    let checker = w.index_of(&c.checkers[0].checker);
    let outsider = (2..PROVIDERS).find(|i| *i != checker).unwrap();
    let (req, out) = w.claim(CheckerMode::Honest, c.index);
    let seal = check_seal(id, c.index, &w.id(checker), &req, &out);
    let seal_body = |index| TxBody::SealInferenceCheck {
        batch: id,
        index,
        seal,
    };
    refused(&mut w, outsider, seal_body(c.index), |e| {
        matches!(e, TxError::NotInCheck { .. })
    });
    let other = (c.index + 1) % 2;
    refused(&mut w, checker, seal_body(other), |e| {
        matches!(e, TxError::NoOpenCheck { .. })
    });
    // The provider may not open before sealing closed, nor reveal.
    let open = w.open_body(id, c.index);
    refused(&mut w, PROVIDER, open.clone(), |e| {
        matches!(e, TxError::CheckStep { .. })
    });
    let reveal = TxBody::RevealInferenceCheck {
        batch: id,
        index: c.index,
        request: req,
        output: out,
    };
    refused(&mut w, checker, reveal.clone(), |e| {
        matches!(e, TxError::CheckStep { .. })
    });
    assert!(w.run(checker, seal_body(c.index)).is_ok());
    refused(&mut w, checker, seal_body(c.index), |e| {
        matches!(e, TxError::CheckStep { .. })
    });
    let lie = TxBody::RevealInferenceCheck {
        batch: id,
        index: c.index,
        request: req,
        output: Hash::ZERO,
    };
    refused(&mut w, checker, lie, |e| {
        matches!(e, TxError::CheckSealMismatch { .. })
    });
    // A proof for another index, or a commitment that is not the leaf, is refused.
    let TxBody::OpenInferenceResponse {
        commitment, proof, ..
    } = open.clone()
    else {
        unreachable!()
    };
    let wrong_index = TxBody::OpenInferenceResponse {
        batch: id,
        index: other,
        commitment: commitment.clone(),
        proof: proof.clone(),
    };
    refused(&mut w, PROVIDER, wrong_index, |e| {
        matches!(
            e,
            TxError::NoOpenCheck { .. } | TxError::BadResponseProof { .. }
        )
    });
    let mut forged = commitment;
    forged.output = Hash::of(b"something else");
    let forged = TxBody::OpenInferenceResponse {
        batch: id,
        index: c.index,
        commitment: forged,
        proof,
    };
    refused(&mut w, PROVIDER, forged, |e| {
        matches!(e, TxError::BadResponseProof { .. })
    });
    refused(&mut w, checker, open, |e| {
        matches!(e, TxError::NotInCheck { .. })
    });
    assert!(w.run(checker, reveal.clone()).is_ok());
    refused(&mut w, checker, reveal, |e| {
        matches!(e, TxError::CheckStep { .. })
    });
}

#[test]
fn an_opened_commitment_for_another_model_forfeits_the_batch() {
    let mut w = World::new(params_one_check(), 11, 10_000);
    w.create_key(Amount::orr(100), Amount::orr(50));
    let voucher = w.serve(2, honest_output);
    for c in &mut w.commitments {
        c.model = Hash::of(b"a cheaper model");
    }
    let id = w.settle(voucher);
    w.play(id);
    assert_eq!(w.outcomes(id), vec![CheckOutcome::ProviderCaught]);
    assert_eq!(w.batch(id).refunded, Amount::orr(2));
    assert_eq!(w.slashed(), vec![w.id(PROVIDER)]);
}

/// One batch of `n` responses at `sample_bps`, the provider cheating on each when `cheat`;
/// returns whether it was caught at least once, and asserts nobody honest was slashed.
fn one_batch(seed: u64, n: u64, sample_bps: u16, cheat: bool) -> bool {
    let mut w = World::new(Params::default(), seed, sample_bps);
    w.create_key(Amount::orr(1_000), Amount::orr(1_000));
    let voucher = if cheat {
        w.serve(n, |i| Hash::of_parts(&[b"cheap", &i.to_be_bytes()]))
    } else {
        w.serve(n, honest_output)
    };
    let id = w.settle(voucher);
    w.play(id);
    let slashed = w.slashed();
    let provider = w.id(PROVIDER);
    assert!(
        slashed.iter().all(|p| *p == provider),
        "an honest checker was slashed (seed {seed})"
    );
    let caught = w.outcomes(id).contains(&CheckOutcome::ProviderCaught);
    assert_eq!(caught, !slashed.is_empty());
    assert!(
        cheat || !caught,
        "an honest provider was slashed (seed {seed})"
    );
    // Refunds never exceed the checked responses, and everything is accounted for.
    let b = w.batch(id);
    let caught_checks = b
        .checks
        .iter()
        .filter(|c| c.outcome == Some(CheckOutcome::ProviderCaught))
        .count();
    assert_eq!(
        b.refunded,
        PRICE.checked_mul(caught_checks as u128).unwrap()
    );
    caught
}

#[test]
fn a_cheater_is_caught_at_the_promised_rate_and_an_honest_provider_never_is() {
    let (seeds, n, p_bps) = (400u64, 20u64, 500u16);
    let p = f64::from(p_bps) / 10_000.0;
    let promised = 1.0 - (1.0 - p).powi(n as i32);
    let caught = (0..seeds)
        .filter(|s| one_batch(1_000 + s, n, p_bps, true))
        .count();
    let rate = caught as f64 / seeds as f64;
    let sigma = (promised * (1.0 - promised) / seeds as f64).sqrt();
    assert!(
        (rate - promised).abs() < 4.0 * sigma,
        "caught in {rate:.3} of batches; the protocol promises {promised:.3}"
    );
    for s in 0..seeds {
        assert!(!one_batch(5_000 + s, n, p_bps, false));
    }
}

#[test]
fn inference_records_roundtrip_through_the_stored_entries() {
    let mut w = World::new(params_one_check(), 12, 10_000);
    w.create_key(Amount::orr(100), Amount::orr(50));
    let voucher = w.serve(3, honest_output);
    let id = w.settle(voucher);
    w.apply(vec![]);
    w.apply(vec![]);
    let reloaded = State::from_entries(w.state.entries()).unwrap();
    assert_eq!(reloaded.root(), w.state.root());
    assert_eq!(reloaded.inference_batch(id), w.state.inference_batch(id));
    assert_eq!(reloaded.root(), reloaded.root_from_scratch());
    assert_eq!(
        reloaded.model_servers(&weights()).count(),
        PROVIDERS - PROVIDER
    );
    let json = serde_json::to_string(w.batch(id)).unwrap();
    assert!(json.contains("\"phase\":\"checking\""), "{json}");
    // Stopping to serve removes the provider from the index.
    let r = w.run(PROVIDER, offers(vec![]));
    assert!(r.is_ok());
    assert!(w.state.model_offers(&w.id(PROVIDER)).is_empty());
    assert!(
        !w.state
            .model_servers(&weights())
            .any(|p| *p == w.id(PROVIDER))
    );
}
