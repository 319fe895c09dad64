//! Transfers finalized per second and finality latency on 4 local validators.
//!
//! Four validators run in one process on commonware's tokio runtime, talking over loopback
//! TCP through the authenticated (encrypted) p2p network: everything production runs, on one
//! machine. `TXS` transfers from `SENDERS` funded accounts are signed up front (not timed), then
//! submitted round robin to the four validators as fast as admission allows; the clock stops
//! when validator 0 has finalized the last one.
//!
//! Printed: throughput (transfers finalized per second of wall time from the first submission),
//! finality latency per block (validator 0's finalization time minus the proposer's block
//! timestamp, p50/p99), and per transfer (submission to finalization on validator 0, p50/p99).
//!
//! Beside it, the machine's ceiling, measured in the same run before the validators start: the
//! ledger's single-core rate of batch-verifying the signatures of, and applying, blocks of the
//! same transfers (`verify_block_signatures` then `apply_block`, blocks of `max_block_txs`, no
//! consensus, no storage), × the machine's cores ÷ the 4 validators — each validator verifies
//! and applies every transfer, and here all four share this machine's cores. The ratio of the
//! throughput to that ceiling is what consensus, networking, storage and the mempool leave.
//!
//! `cargo bench -p orrery-chain --bench throughput` (set `ORRERY_BENCH_TXS` to change the load).

use commonware_runtime::{Clock, Runner as _, Spawner as _, Supervisor as _, tokio};
use orrery_chain::devnet::{self, DevnetSpec};
use orrery_ledger::{
    Genesis, GenesisAccount, Signatures, State, apply_block, verify_block_signatures,
};
use orrery_types::amount::Amount;
use orrery_types::block::{Block, BlockTxs};
use orrery_types::crypto::Keypair;
use orrery_types::tx::{ChainId, SignedTx, Tx, TxBody};
use std::collections::HashMap;
use std::time::{Duration, Instant, UNIX_EPOCH};

const SENDERS: u64 = 2_000;
/// Validators in the benchmark's committee.
const VALIDATORS: usize = 4;

/// The ledger's single-core rate (transfers per second) of batch-verifying and applying `txs`
/// in blocks of `block_txs`, on a fresh state from `genesis`.
fn verify_and_apply_rate(genesis: &Genesis, txs: &[SignedTx], block_txs: usize) -> f64 {
    let mut state = State::genesis(genesis).expect("genesis");
    let start = Instant::now();
    for chunk in txs.chunks(block_txs) {
        let g = state.globals();
        let block = Block {
            height: g.height + 1,
            time_ms: g.time_ms,
            seed: orrery_types::hash::Hash::ZERO,
            parent: g.last_block,
            txs: BlockTxs::new(chunk.to_vec()).expect("a block's worth of transfers"),
        };
        verify_block_signatures(&block).expect("every transfer is signed");
        let out = apply_block(&mut state, &block, Signatures::PreVerified).expect("block applies");
        assert!(
            out.receipts.iter().all(|r| r.is_ok()),
            "a transfer was refused"
        );
    }
    txs.len() as f64 / start.elapsed().as_secs_f64()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let txs_total: u64 = std::env::var("ORRERY_BENCH_TXS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40_000);
    let per_sender = txs_total.div_ceil(SENDERS);
    let dir = tempfile::tempdir().expect("temp dir");
    let senders: Vec<Keypair> = (0..SENDERS)
        .map(|i| Keypair::from_seed(900_000 + i))
        .collect();
    let receiver = Keypair::from_seed(1);
    let now_ms = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64;
    let port = 40_000 + (std::process::id() % 10_000) as u16;
    let net = devnet::generate(&DevnetSpec {
        validators: VALIDATORS,
        seed: 7,
        chain_id: "orrery-bench".into(),
        genesis_time_ms: now_ms,
        data_root: dir.path().join("validators"),
        first_port: port,
        accounts: senders
            .iter()
            .map(|k| GenesisAccount {
                account: k.account(),
                balance: Amount::orr(1_000_000),
            })
            .collect(),
        validator_balance: Amount::orr(1),
    })
    .expect("devnet");

    // Sign everything before the clock starts.
    let chain = ChainId::new("orrery-bench").expect("chain id");
    let mut txs: Vec<SignedTx> = Vec::with_capacity((SENDERS * per_sender) as usize);
    for nonce in 0..per_sender {
        for s in &senders {
            txs.push(
                Tx {
                    chain_id: chain.clone(),
                    nonce,
                    body: TxBody::Transfer {
                        to: receiver.account(),
                        amount: Amount::orr(1),
                    },
                }
                .sign(s),
            );
        }
    }
    txs.truncate(txs_total as usize);
    let n = txs.len();
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let single_core = verify_and_apply_rate(&net.genesis, &txs, net.configs[0].max_block_txs);
    let ceiling = single_core * cores as f64 / VALIDATORS as f64;

    let cfg = tokio::Config::new().with_storage_directory(dir.path().join("consensus"));
    tokio::Runner::new(cfg).start(|context| async move {
        let mut handles = Vec::new();
        for c in &net.configs {
            let ctx = context.child("validator").with_attribute("port", c.listen.port());
            handles.push(orrery_chain::start(ctx, c.clone()).await.expect("validator starts"));
        }
        // Wait until the committee is connected and finalizing.
        while handles.iter().any(|h| h.status().height < 2) {
            context.sleep(Duration::from_millis(50)).await;
        }
        let mut finalized = handles[0].subscribe();
        let start = Instant::now();
        let mut submitted_at: HashMap<orrery_types::hash::Hash, Instant> = HashMap::with_capacity(n);
        let hashes: Vec<_> = txs.iter().map(|t| t.hash()).collect();
        // Submit from a separate task so admission and consensus share the CPU as in a node.
        let submitter_handles = handles.clone();
        let submitter = context.child("submitter").spawn(move |ctx| async move {
            let mut times = Vec::with_capacity(txs.len());
            for (i, tx) in txs.into_iter().enumerate() {
                let h = &submitter_handles[i % submitter_handles.len()];
                loop {
                    match h.submit(tx.clone()) {
                        Ok(_) => break,
                        Err(e) if e.is_overload() => ctx.sleep(Duration::from_millis(5)).await,
                        Err(e) => panic!("refused: {e}"),
                    }
                }
                times.push(Instant::now());
                if i % 500 == 499 {
                    // Let consensus tasks run between batches.
                    ctx.sleep(Duration::from_millis(1)).await;
                }
            }
            times
        });
        let mut block_latency_ms = Vec::new();
        let mut tx_finalized: HashMap<orrery_types::hash::Hash, Instant> = HashMap::with_capacity(n);
        let mut blocks = 0u64;
        let mut max_block = 0usize;
        while tx_finalized.len() < n {
            let f = match finalized.recv().await {
                Ok(f) => f,
                Err(e) => panic!("subscription: {e}"),
            };
            let at = Instant::now();
            let wall_ms = std::time::SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("clock")
                .as_millis() as u64;
            block_latency_ms.push(wall_ms.saturating_sub(f.block.time_ms) as f64);
            blocks += 1;
            max_block = max_block.max(f.block.txs.len());
            for (r, _) in f.receipts.iter().zip(f.block.txs.as_slice()) {
                assert!(r.is_ok(), "transfer refused: {:?}", r.outcome);
                tx_finalized.insert(r.tx, at);
            }
        }
        let elapsed = start.elapsed();
        let times = submitter.await.expect("submitter");
        for (h, t) in hashes.iter().zip(times) {
            submitted_at.insert(*h, t);
        }
        let mut tx_latency_ms: Vec<f64> = hashes
            .iter()
            .map(|h| (tx_finalized[h] - submitted_at[h]).as_secs_f64() * 1e3)
            .collect();
        tx_latency_ms.sort_by(f64::total_cmp);
        block_latency_ms.sort_by(f64::total_cmp);
        let roots: Vec<_> = handles.iter().map(|h| h.status()).collect();
        println!("orrery-chain throughput: 4 validators, tokio runtime, authenticated p2p over loopback");
        println!("  transfers finalized      {n}");
        println!("  wall time                {:.2} s", elapsed.as_secs_f64());
        let throughput = n as f64 / elapsed.as_secs_f64();
        println!("  throughput               {throughput:.0} transfers/s");
        println!(
            "  machine ceiling          {ceiling:.0} transfers/s (ledger verify+apply {single_core:.0}/s on one core × {cores} cores ÷ {VALIDATORS} validators)"
        );
        println!("  ratio to the ceiling     {:.2}", throughput / ceiling);
        println!("  blocks                   {blocks} (largest {max_block} transfers)");
        println!(
            "  block finality latency   p50 {:.0} ms, p99 {:.0} ms (proposer timestamp to finalized on validator 0)",
            percentile(&block_latency_ms, 0.5),
            percentile(&block_latency_ms, 0.99)
        );
        println!(
            "  transfer latency         p50 {:.0} ms, p99 {:.0} ms (submission to finalized; includes queueing behind the backlog)",
            percentile(&tx_latency_ms, 0.5),
            percentile(&tx_latency_ms, 0.99)
        );
        println!(
            "  heights at end           {:?}",
            roots.iter().map(|s| s.height).collect::<Vec<_>>()
        );
    });
}
