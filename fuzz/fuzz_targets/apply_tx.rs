//! Any bytes that decode as a transaction: applying it (signatures skipped, so the fuzzer
//! reaches the handlers) never panics and never breaks the ledger's invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;
use orrery_ledger::{Genesis, GenesisAccount, Signatures, State, apply_block};
use orrery_types::amount::Amount;
use orrery_types::block::{Block, BlockTxs};
use orrery_types::crypto::Keypair;
use orrery_types::hash::Hash;
use orrery_types::tx::{ChainId, SignedTx};

fuzz_target!(|data: &[u8]| {
    let Ok(tx) = SignedTx::decode(data) else { return };
    let genesis = Genesis {
        chain_id: ChainId::new("orrery-fuzz").unwrap(),
        genesis_time_ms: 0,
        params: Default::default(),
        accounts: vec![GenesisAccount { account: tx.sender(), balance: Amount::orr(1_000_000) },
                       GenesisAccount { account: Keypair::from_seed(1).account(), balance: Amount::orr(1) }],
        validators: vec![],
    };
    let mut state = State::genesis(&genesis).unwrap();
    let block = Block { height: 1, time_ms: 1_000, seed: Hash::ZERO, parent: Hash::ZERO, txs: BlockTxs::new(vec![tx]).unwrap() };
    apply_block(&mut state, &block, Signatures::PreVerified).unwrap();
    state.audit().unwrap();
});
