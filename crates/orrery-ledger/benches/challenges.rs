//! Per-block cost of provider challenges as the network grows.
//!
//! For 1k, 100k and 1M registered, bonded providers it runs blocks in which the seed draws
//! `challenges_per_block` (4) providers, the providers drawn in the previous block answer, and
//! those that answered two blocks ago open their rows (Freivalds' test on chain, n = 512).
//! It prints the mean block execution time and state-root time per block at each size, and
//! the ratio 1M / 1k (target: within 2×, the cost per block flat in the number of providers).
//!
//! The providers are loaded as stored entries (`State::from_entries`), as a node restarts; they
//! claim no cores so each challenge is 16 rows (the chain's work per challenge does not depend
//! on the rows, only the provider's does).
//!
//! Run: `cargo bench -p orrery-ledger --bench challenges` (`ORRERY_BENCH_SIZES=1000,100000`,
//! `ORRERY_BENCH_BLOCKS=40`). Only a release build measures the ledger: a debug build also
//! runs the full O(state) audit after every block.

use orrery_ledger::entries::{ChallengePhase, Globals, ProvenRecord, Provider, Reputation};
use orrery_ledger::{Genesis, GenesisAccount, Params, Signatures, State, execute_block};
use orrery_types::amount::Amount;
use orrery_types::block::{Block, BlockTxs};
use orrery_types::challenge::{open, open_indices, solve};
use orrery_types::codec::{self, Text};
use orrery_types::crypto::{AccountId, Keypair};
use orrery_types::hash::Hash;
use orrery_types::resources::{Hardware, PriceList};
use orrery_types::tx::{ChainId, ProviderOffer, SignedTx, Tx, TxBody};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const STAKE: Amount = Amount::orr(1_000);

fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(name)
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

fn key_of(i: usize) -> Keypair {
    Keypair::from_seed(i as u64)
}

/// A state with `n` registered providers, each bonded, loaded from entries.
fn state_with(n: usize, chain: &ChainId) -> State {
    let genesis = Genesis {
        chain_id: chain.clone(),
        genesis_time_ms: 0,
        params: Params::default(),
        accounts: vec![GenesisAccount {
            account: AccountId([0xaa; 20]),
            balance: Amount::orr(1),
        }],
        validators: vec![],
    };
    let base = State::genesis(&genesis).unwrap();
    let offer = ProviderOffer {
        hardware: Hardware {
            gpu: None,
            cpu_cores: 0,
            ram_gib: 8,
        },
        region: Text::new("eu-west").unwrap(),
        endpoint: Text::new("http://127.0.0.1:7000").unwrap(),
        prices: PriceList::default(),
    };
    let mut entries: Vec<(Vec<u8>, Vec<u8>)> = base
        .entries()
        .filter(|(k, _)| k[0] != 0x01 && k[0] != 0x10)
        .collect();
    let supply = Amount(STAKE.units() * n as u128 + Amount::orr(1).units());
    let globals = Globals {
        genesis_supply: supply,
        ..*base.globals()
    };
    entries.push((vec![0x01], codec::encode(&globals)));
    let mut account = vec![0x10];
    account.extend_from_slice(&[0xaa; 20]);
    entries.push((
        account,
        codec::encode(&orrery_ledger::entries::Account {
            balance: Amount::orr(1),
            nonce: 0,
        }),
    ));
    for i in 0..n {
        let id = key_of(i).account();
        let p = Provider {
            offer: offer.clone(),
            stake: STAKE,
            active_leases: 0,
            registered_at: 0,
            reputation: Reputation::default(),
            earned: Amount::ZERO,
            proof: ProvenRecord::default(),
            draw_slot: Some(i as u64),
        };
        let mut key = vec![0x11];
        key.extend_from_slice(&id.0);
        entries.push((key, codec::encode(&p)));
    }
    State::from_entries(entries).expect("a consistent state")
}

struct Figures {
    exec: Duration,
    root: Duration,
    blocks: u32,
    challenges: usize,
}

/// Run `blocks` blocks on `state`, answering and opening every challenge.
fn run(state: &mut State, chain: &ChainId, blocks: u32) -> Figures {
    let mut figures = Figures {
        exec: Duration::ZERO,
        root: Duration::ZERO,
        blocks,
        challenges: 0,
    };
    // Provider accounts have no balance entry yet: nonces start at 0.
    let mut keys: BTreeMap<AccountId, Keypair> = BTreeMap::new();
    for _ in 0..blocks {
        let mut txs: Vec<SignedTx> = Vec::new();
        let open_challenges: Vec<(AccountId, orrery_ledger::entries::Challenge)> =
            state.challenges().iter().map(|(k, v)| (*k, *v)).collect();
        for (id, c) in open_challenges {
            let Some(key) = keys.get(&id) else {
                continue;
            };
            let tree = solve(&c.seed, c.dim as usize, c.rows);
            let body = match c.phase {
                ChallengePhase::Drawn => TxBody::AnswerChallenge {
                    drawn_at: c.drawn_at,
                    rows: c.rows,
                    root: tree.root(),
                },
                ChallengePhase::Opening { open_seed, .. } => {
                    let n = u64::from(state.params().challenge_open_rows);
                    let idx = open_indices(&c.seed, &open_seed, c.rows, n);
                    TxBody::OpenChallenge {
                        drawn_at: c.drawn_at,
                        rows: open(&c.seed, c.dim as usize, &tree, &idx).unwrap(),
                    }
                }
                _ => continue,
            };
            let tx = Tx {
                chain_id: chain.clone(),
                nonce: state.account(&id).nonce,
                body,
            };
            txs.push(tx.sign(key));
        }
        let g = *state.globals();
        let block = Block {
            height: g.height + 1,
            time_ms: g.time_ms + 200,
            seed: Hash::of(&(g.height + 1).to_be_bytes()),
            parent: g.last_block,
            txs: BlockTxs::new(txs).unwrap(),
        };
        let t = Instant::now();
        let (receipts, events) =
            execute_block(state, &block, Signatures::PreVerified).expect("block applies");
        figures.exec += t.elapsed();
        let t = Instant::now();
        state.commit();
        figures.root += t.elapsed();
        assert!(receipts.iter().all(|r| r.is_ok()), "{receipts:?}");
        for e in &events {
            if let orrery_ledger::Event::ChallengeDrawn { provider, .. } = e {
                figures.challenges += 1;
                // The drawn provider's key, found by its draw slot (= its index here).
                let slot = state.provider(provider).and_then(|p| p.draw_slot).unwrap();
                keys.entry(*provider)
                    .or_insert_with(|| key_of(slot as usize));
            }
        }
    }
    figures
}

fn main() {
    let sizes = env_list("ORRERY_BENCH_SIZES", &[1_000, 100_000, 1_000_000]);
    let blocks = env_list("ORRERY_BENCH_BLOCKS", &[40])[0] as u32;
    let chain = ChainId::new("orrery-bench").unwrap();
    let mut per_block = Vec::new();
    println!("providers | block exec (mean) | state root (mean) | challenges drawn");
    for &n in &sizes {
        let t = Instant::now();
        let mut state = state_with(n, &chain);
        eprintln!("{n} providers loaded in {:.1?}", t.elapsed());
        // Warm up (caches, first draws), then measure.
        run(&mut state, &chain, 5);
        let f = run(&mut state, &chain, blocks);
        let exec = f.exec / f.blocks;
        let root = f.root / f.blocks;
        println!(
            "{n:>9} | {:>14.3?} | {:>15.3?} | {}",
            exec, root, f.challenges
        );
        per_block.push((n, exec + root));
    }
    if let (Some(first), Some(last)) = (per_block.first(), per_block.last()) {
        println!(
            "per-block cost (exec + root) {} / {} providers: {:.2}×",
            last.0,
            first.0,
            last.1.as_secs_f64() / first.1.as_secs_f64()
        );
    }
}
