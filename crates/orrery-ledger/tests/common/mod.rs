//! A tiny single-node chain for tests: genesis, keys, and blocks built from transactions.
#![allow(dead_code)]

use orrery_ledger::{
    BlockOutcome, Genesis, GenesisAccount, Params, Receipt, Signatures, State, apply_block,
};
use orrery_types::amount::Amount;
use orrery_types::block::{Block, BlockTxs};
use orrery_types::codec::Text;
use orrery_types::crypto::{AccountId, Keypair};
use orrery_types::hash::Hash;
use orrery_types::resources::{GpuSpec, Hardware, PriceList, ResourceRequest, Usage};
use orrery_types::tx::{
    ChainId, LeaseTerms, ProviderOffer, ResultClaim, SignedTx, Tx, TxBody, Verification,
    result_seal,
};

pub const CHAIN: &str = "orrery-test";
pub const START_BALANCE: Amount = Amount::orr(1_000_000);

pub struct Net {
    pub state: State,
    pub keys: Vec<Keypair>,
    pub validators: Vec<Keypair>,
    pub blocks: Vec<Block>,
    /// Mixed into every block seed, so seeded runs draw differently.
    pub seed_salt: u64,
}

pub fn genesis(keys: &[Keypair], validators: &[Keypair], params: Params) -> Genesis {
    Genesis {
        chain_id: ChainId::new(CHAIN).unwrap(),
        genesis_time_ms: 1_700_000_000_000,
        params,
        accounts: keys
            .iter()
            .map(|k| GenesisAccount {
                account: k.account(),
                balance: START_BALANCE,
            })
            .collect(),
        validators: validators.iter().map(|k| k.account()).collect(),
    }
}

impl Net {
    pub fn new(accounts: usize) -> Net {
        Self::with_params(accounts, Params::default())
    }

    /// A chain with `params`, provider challenges off (`challenges_per_block = 0`): the
    /// other tests count every unit of stake, and nobody answers challenges there.
    pub fn with_params(accounts: usize, params: Params) -> Net {
        Self::with_challenges(
            accounts,
            Params {
                challenges_per_block: 0,
                ..params
            },
        )
    }

    /// A chain with `params` exactly as given, challenges included.
    pub fn with_challenges(accounts: usize, params: Params) -> Net {
        let keys: Vec<Keypair> = (0..accounts as u64).map(Keypair::from_seed).collect();
        let validators: Vec<Keypair> = (1000..1002).map(Keypair::from_seed).collect();
        let state = State::genesis(&genesis(&keys, &validators, params)).unwrap();
        Net {
            state,
            keys,
            validators,
            blocks: Vec::new(),
            seed_salt: 0,
        }
    }

    pub fn id(&self, i: usize) -> AccountId {
        self.keys[i].account()
    }

    /// A transaction from account `i` with its current nonce plus `offset`.
    pub fn tx_at(&self, i: usize, offset: u64, body: TxBody) -> SignedTx {
        let nonce = self.state.account(&self.id(i)).nonce + offset;
        Tx {
            chain_id: ChainId::new(CHAIN).unwrap(),
            nonce,
            body,
        }
        .sign(&self.keys[i])
    }

    pub fn tx(&self, i: usize, body: TxBody) -> SignedTx {
        self.tx_at(i, 0, body)
    }

    pub fn next_block(&self, txs: Vec<SignedTx>) -> Block {
        let g = self.state.globals();
        Block {
            height: g.height + 1,
            time_ms: g.time_ms + 1_000,
            seed: Hash::of_parts(&[&self.seed_salt.to_be_bytes(), &(g.height + 1).to_be_bytes()]),
            parent: g.last_block,
            txs: BlockTxs::new(txs).unwrap(),
        }
    }

    pub fn apply(&mut self, txs: Vec<SignedTx>) -> BlockOutcome {
        let block = self.next_block(txs);
        let out = apply_block(&mut self.state, &block, Signatures::Verify).expect("block applies");
        self.state.audit().expect("invariants hold");
        self.blocks.push(block);
        out
    }

    /// Apply one transaction in its own block and return its receipt.
    pub fn run(&mut self, i: usize, body: TxBody) -> Receipt {
        let tx = self.tx(i, body);
        self.apply(vec![tx]).receipts.remove(0)
    }

    pub fn empty_blocks(&mut self, n: u64) -> Vec<BlockOutcome> {
        (0..n).map(|_| self.apply(vec![])).collect()
    }

    pub fn balance(&self, i: usize) -> Amount {
        self.state.account(&self.id(i)).balance
    }
}

pub fn offer(gpus: u16, prices: PriceList) -> ProviderOffer {
    ProviderOffer {
        hardware: Hardware {
            gpu: (gpus > 0).then(|| GpuSpec {
                model: Text::new("NVIDIA RTX 4090").unwrap(),
                vram_mib: 24_576,
                count: gpus,
            }),
            cpu_cores: 16,
            ram_gib: 64,
        },
        region: Text::new("eu-west").unwrap(),
        endpoint: Text::new("http://127.0.0.1:7100").unwrap(),
        prices,
    }
}

pub fn prices() -> PriceList {
    PriceList {
        gpu_hour: Amount::orr(2),
        cpu_core_hour: Amount::orr(0),
        ram_gib_hour: Amount::ZERO,
        mega_unit: Amount::orr(1),
    }
}

pub fn terms(max_units: u64) -> LeaseTerms {
    LeaseTerms {
        resources: ResourceRequest {
            gpus: 1,
            cpu_cores: 2,
            ram_gib: 8,
        },
        prices: prices(),
        max_seconds: 3_600,
        max_units,
    }
}

pub fn open(
    net: &Net,
    requester: usize,
    provider: usize,
    max_units: u64,
    deadline_in: u64,
) -> SignedTx {
    net.tx(
        requester,
        TxBody::OpenLease {
            provider: net.id(provider),
            job: Hash::of(b"job bundle"),
            terms: terms(max_units),
            deadline: net.state.height() + 1 + deadline_in,
            verification: Verification::None,
        },
    )
}

/// The claim every test provider makes unless it says otherwise.
pub fn claim() -> ResultClaim {
    ResultClaim::succeeded(Hash::of(b"output"), Hash::of(b"root"), 1)
}

/// `RevealResult` of `claim` with no note.
pub fn reveal_body(lease: u64, claim: ResultClaim) -> TxBody {
    TxBody::RevealResult {
        lease,
        claim,
        note: Default::default(),
    }
}

/// `CommitResult` with the seal of `claim` by account `i`, its units set to the usage's (the
/// ledger bills exactly the sealed units): reveal `claim.with_units(usage.units)`.
pub fn commit_body(net: &Net, i: usize, lease: u64, usage: Usage, claim: &ResultClaim) -> TxBody {
    TxBody::CommitResult {
        lease,
        seal: result_seal(lease, &net.id(i), &claim.with_units(usage.units)),
        usage,
    }
}

/// Commit and reveal `claim()` in one block (an unchecked lease needs no draw); returns the
/// commitment's receipt.
pub fn commit_and_reveal(net: &mut Net, i: usize, lease: u64, usage: Usage) -> Receipt {
    let c = claim().with_units(usage.units);
    let commit = net.tx(i, commit_body(net, i, lease, usage, &c));
    let reveal = net.tx_at(i, 1, reveal_body(lease, c));
    let mut out = net.apply(vec![commit, reveal]);
    let r = out.receipts.remove(0);
    if r.is_ok() {
        assert!(out.receipts[0].is_ok(), "{:?}", out.receipts[0]);
    }
    r
}

/// Register and bond provider `i` with `gpus` GPUs and enough stake.
pub fn make_provider(net: &mut Net, i: usize, gpus: u16) {
    assert!(
        net.run(i, TxBody::RegisterProvider(offer(gpus, prices())))
            .is_ok()
    );
    let need = net
        .state
        .params()
        .min_stake(&offer(gpus, prices()).hardware)
        .unwrap();
    let r = net.run(i, TxBody::Bond { amount: need });
    assert!(r.is_ok(), "{r:?}");
}
