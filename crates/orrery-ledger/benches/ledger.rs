//! Ledger throughput on one core.
//!
//! Prints, for blocks of transfers between many accounts:
//! - transfers applied per second with signatures pre-verified (target ≥ 100,000/s),
//! - the same with per-transaction verification inside `apply_block` (the baseline),
//!   and with ed25519 batch verification before applying (what a node does),
//! - the cost of the incremental state root per block, beside the baseline of recomputing the
//!   root over every entry from scratch.
//!
//! Run: `cargo bench -p orrery-ledger` (set `ORRERY_BENCH_ACCOUNTS` / `ORRERY_BENCH_BLOCKS`).

use orrery_ledger::{
    Genesis, GenesisAccount, Params, Signatures, State, execute_block, verify_block_signatures,
};
use orrery_types::amount::Amount;
use orrery_types::block::{Block, BlockTxs};
use orrery_types::crypto::Keypair;
use orrery_types::hash::Hash;
use orrery_types::merkle::merkle_root;
use orrery_types::tx::{ChainId, Tx, TxBody};
use std::time::{Duration, Instant};

const TXS_PER_BLOCK: usize = 10_000;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let accounts = env("ORRERY_BENCH_ACCOUNTS", 100_000);
    let blocks = env("ORRERY_BENCH_BLOCKS", 5);
    eprintln!("setting up {accounts} accounts and {blocks} blocks of {TXS_PER_BLOCK} transfers…");
    let keys: Vec<Keypair> = (0..accounts as u64).map(Keypair::from_seed).collect();
    let chain = ChainId::new("orrery-bench").unwrap();
    let genesis = Genesis {
        chain_id: chain.clone(),
        genesis_time_ms: 0,
        params: Params::default(),
        accounts: keys
            .iter()
            .map(|k| GenesisAccount {
                account: k.account(),
                balance: Amount::orr(1_000),
            })
            .collect(),
        validators: vec![],
    };
    let base = State::genesis(&genesis).unwrap();

    // Pre-sign every block: block b's transaction i moves from account (b*T + i) mod n.
    let mut nonces = vec![0u64; accounts];
    let mut signed_blocks = Vec::new();
    let mut scratch = base.clone();
    for b in 0..blocks {
        let mut txs = Vec::with_capacity(TXS_PER_BLOCK);
        for i in 0..TXS_PER_BLOCK {
            let from = (b * TXS_PER_BLOCK + i) % accounts;
            let to = (from * 7919 + 1) % accounts;
            let body = TxBody::Transfer {
                to: keys[to].account(),
                amount: Amount(1 + i as u128),
            };
            txs.push(
                Tx {
                    chain_id: chain.clone(),
                    nonce: nonces[from],
                    body,
                }
                .sign(&keys[from]),
            );
            nonces[from] += 1;
        }
        let g = scratch.globals();
        let block = Block {
            height: g.height + 1,
            time_ms: g.time_ms + 1_000,
            seed: Hash::of(&(b as u64).to_be_bytes()),
            parent: g.last_block,
            txs: BlockTxs::new(txs).unwrap(),
        };
        orrery_ledger::apply_block(&mut scratch, &block, Signatures::PreVerified).unwrap();
        signed_blocks.push(block);
    }
    let total_txs = (blocks * TXS_PER_BLOCK) as f64;

    // 1. Pre-verified execution and incremental root, timed separately.
    let mut state = base.clone();
    let (mut exec, mut root) = (Duration::ZERO, Duration::ZERO);
    for block in &signed_blocks {
        let t = Instant::now();
        let (receipts, _) = execute_block(&mut state, block, Signatures::PreVerified).unwrap();
        exec += t.elapsed();
        assert!(receipts.iter().all(|r| r.is_ok()));
        let t = Instant::now();
        state.commit();
        root += t.elapsed();
    }
    assert_eq!(state.root(), scratch.root());
    let pre_tps = total_txs / (exec + root).as_secs_f64();

    // 2. Baseline: verify each signature inside apply.
    let mut state = base.clone();
    let t = Instant::now();
    for block in &signed_blocks {
        execute_block(&mut state, block, Signatures::Verify).unwrap();
        state.commit();
    }
    let verify_tps = total_txs / t.elapsed().as_secs_f64();

    // 3. Batch verification, then pre-verified apply.
    let mut state = base.clone();
    let t = Instant::now();
    for block in &signed_blocks {
        verify_block_signatures(block).unwrap();
        execute_block(&mut state, block, Signatures::PreVerified).unwrap();
        state.commit();
    }
    let batch_tps = total_txs / t.elapsed().as_secs_f64();

    // 4. Baseline for the root: hash every entry and build the tree from scratch.
    let t = Instant::now();
    let leaves: Vec<Hash> = state
        .entries()
        .map(|(k, v)| Hash::of_parts(&[b"orrery/state", &k, &v]))
        .collect();
    let full = merkle_root(&leaves);
    let full_root = t.elapsed();
    std::hint::black_box(full);

    // 5. A small block (100 transfers) on the same large state: the root cost follows the
    //    size of the change, not of the state.
    let small: Vec<_> = (0..100)
        .map(|i| {
            let from = (i * 13) % accounts;
            let body = TxBody::Transfer {
                to: keys[(from + 1) % accounts].account(),
                amount: Amount(1),
            };
            Tx {
                chain_id: chain.clone(),
                nonce: nonces[from],
                body,
            }
            .sign(&keys[from])
        })
        .collect();
    let g = state.globals();
    let small_block = Block {
        height: g.height + 1,
        time_ms: g.time_ms + 1_000,
        seed: Hash::ZERO,
        parent: g.last_block,
        txs: BlockTxs::new(small).unwrap(),
    };
    execute_block(&mut state, &small_block, Signatures::PreVerified).unwrap();
    let t = Instant::now();
    state.commit();
    let small_root = t.elapsed();

    let per_block_root = root / blocks as u32;
    println!(
        "ledger benchmark: {accounts} accounts, {blocks} blocks × {TXS_PER_BLOCK} transfers, one core"
    );
    println!(
        "  transfers/s, signatures pre-verified (exec + root): {pre_tps:>10.0}   target ≥ 100000"
    );
    println!("  transfers/s, per-tx signature verify (baseline)   : {verify_tps:>10.0}");
    println!(
        "  transfers/s, batch verify + apply                 : {batch_tps:>10.0}   ({:.2}× the baseline)",
        batch_tps / verify_tps
    );
    println!(
        "  pre-verified vs per-tx verify                     : {:.2}×",
        pre_tps / verify_tps
    );
    println!(
        "  execution per block                               : {:>8.2} ms",
        exec.as_secs_f64() * 1e3 / blocks as f64
    );
    println!(
        "  incremental state root per block                  : {:>8.2} ms",
        per_block_root.as_secs_f64() * 1e3
    );
    println!(
        "  full recomputation of the root (baseline)         : {:>8.2} ms   ({:.1}× the incremental cost)",
        full_root.as_secs_f64() * 1e3,
        full_root.as_secs_f64() / per_block_root.as_secs_f64()
    );
    println!(
        "  incremental root after a 100-transfer block       : {:>8.2} ms   ({:.0}× cheaper than the full recomputation)",
        small_root.as_secs_f64() * 1e3,
        full_root.as_secs_f64() / small_root.as_secs_f64()
    );
}
