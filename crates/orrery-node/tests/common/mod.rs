//! A node over a test chain: a real ledger `State` that applies real blocks built from the
//! submitted transactions when the test says so, behind the node's `Backend` trait; the node
//! serves on 127.0.0.1 port 0 and the test talks to it with the real client.
#![allow(dead_code)]

use orrery_client::Client;
use orrery_client::api::ChainStatus;
use orrery_ledger::{Genesis, GenesisAccount, Params, Signatures, State, apply_block};
use orrery_node::backend::{Backend, BackendError, Finalized, RejectKind, SubmitRejection};
use orrery_node::{NodeConfig, RunningNode, serve};
use orrery_types::amount::Amount;
use orrery_types::block::{Block, BlockTxs};
use orrery_types::codec::Text;
use orrery_types::crypto::{AccountId, Keypair};
use orrery_types::hash::Hash;
use orrery_types::resources::{GpuSpec, Hardware, PriceList, ResourceRequest};
use orrery_types::tx::{ChainId, LeaseTerms, ProviderOffer, SignedTx, Tx, TxBody, Verification};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

pub const CHAIN: &str = "orrery-node-test";

struct Inner {
    state: State,
    blocks: Vec<Block>,
    outcomes: Vec<Arc<Finalized>>,
    mempool: Vec<SignedTx>,
}

/// A single-process chain: `produce_block` applies the mempool as the next block.
#[derive(Clone)]
pub struct TestChain {
    inner: Arc<Mutex<Inner>>,
    finalized: broadcast::Sender<Arc<Finalized>>,
    /// `outcome(h)` answers only for heights from this one on (older outcomes "forgotten",
    /// so the node must index those blocks from storage alone).
    pub outcomes_from: Arc<AtomicU64>,
    /// Milliseconds every state read sleeps (to make requests slow).
    pub read_delay_ms: Arc<AtomicU64>,
    /// Most transactions waiting before `submit` answers overloaded.
    pub mempool_cap: usize,
}

pub fn keys(n: u64) -> Vec<Keypair> {
    (0..n).map(Keypair::from_seed).collect()
}

impl TestChain {
    pub fn new(accounts: &[Keypair]) -> TestChain {
        let genesis = Genesis {
            chain_id: ChainId::new(CHAIN).expect("chain id"),
            genesis_time_ms: 1_700_000_000_000,
            params: Params::default(),
            accounts: accounts
                .iter()
                .map(|k| GenesisAccount {
                    account: k.account(),
                    balance: Amount::orr(1_000_000),
                })
                .collect(),
            validators: vec![Keypair::from_seed(999).account()],
        };
        let state = State::genesis(&genesis).expect("genesis");
        TestChain {
            inner: Arc::new(Mutex::new(Inner {
                state,
                blocks: Vec::new(),
                outcomes: Vec::new(),
                mempool: Vec::new(),
            })),
            finalized: broadcast::channel(256).0,
            outcomes_from: Arc::new(AtomicU64::new(0)),
            read_delay_ms: Arc::new(AtomicU64::new(0)),
            mempool_cap: 64,
        }
    }

    /// Apply the waiting transactions as the next block and announce it.
    pub fn produce_block(&self) -> Arc<Finalized> {
        let mut inner = self.inner.lock().expect("lock");
        let g = *inner.state.globals();
        let txs = std::mem::take(&mut inner.mempool);
        let block = Block {
            height: g.height + 1,
            time_ms: g.time_ms + 1_000,
            seed: Hash::of(&(g.height + 1).to_be_bytes()),
            parent: g.last_block,
            txs: BlockTxs::new(txs).expect("block size"),
        };
        let out = apply_block(&mut inner.state, &block, Signatures::Verify).expect("block applies");
        let f = Arc::new(Finalized {
            block_hash: block.hash(),
            block: block.clone(),
            receipts: out.receipts,
            events: out.events,
            state_root: out.state_root,
        });
        inner.blocks.push(block);
        inner.outcomes.push(f.clone());
        let _ = self.finalized.send(f.clone());
        f
    }

    /// Queue a transaction without a node (the node may be down).
    pub fn submit_direct(&self, tx: SignedTx) {
        self.inner.lock().expect("lock").mempool.push(tx);
    }

    pub fn height(&self) -> u64 {
        self.inner.lock().expect("lock").state.height()
    }

    pub fn nonce(&self, id: &AccountId) -> u64 {
        self.inner.lock().expect("lock").state.account(id).nonce
    }
}

impl Backend for TestChain {
    fn submit(&self, tx: SignedTx) -> Result<Hash, SubmitRejection> {
        let mut inner = self.inner.lock().expect("lock");
        let hash = tx.hash();
        if inner.mempool.iter().any(|t| t.hash() == hash) {
            return Err(SubmitRejection {
                kind: RejectKind::Duplicate,
                message: format!("{hash} is already waiting"),
            });
        }
        if inner.mempool.len() >= self.mempool_cap {
            return Err(SubmitRejection {
                kind: RejectKind::Overloaded,
                message: "the mempool is full".into(),
            });
        }
        inner.mempool.push(tx);
        Ok(hash)
    }

    fn status(&self) -> ChainStatus {
        let inner = self.inner.lock().expect("lock");
        let s = &inner.state;
        ChainStatus {
            chain_id: s.chain_id().to_string(),
            height: s.height(),
            state_root: s.root(),
            last_block_hash: s.globals().last_block,
            last_block_time_ms: s.globals().time_ms,
            validators: s.validators().len() as u64,
            peers_connected: 0,
            mempool_len: inner.mempool.len() as u64,
            syncing: false,
        }
    }

    fn read_state(&self, f: &mut dyn FnMut(&State)) {
        let delay = self.read_delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay));
        }
        f(&self.inner.lock().expect("lock").state)
    }

    fn block(&self, height: u64) -> Result<Option<Block>, BackendError> {
        let inner = self.inner.lock().expect("lock");
        Ok(height
            .checked_sub(1)
            .and_then(|i| inner.blocks.get(i as usize).cloned()))
    }

    fn outcome(&self, height: u64) -> Result<Option<Arc<Finalized>>, BackendError> {
        if height < self.outcomes_from.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let inner = self.inner.lock().expect("lock");
        Ok(height
            .checked_sub(1)
            .and_then(|i| inner.outcomes.get(i as usize).cloned()))
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<Finalized>> {
        self.finalized.subscribe()
    }
}

/// A node serving a test chain on a loopback port, with its own runtime.
pub struct TestNode {
    pub rt: tokio::runtime::Runtime,
    pub node: Option<RunningNode>,
    pub chain: TestChain,
    pub client: Client,
    pub base: String,
}

pub fn config(dir: &Path) -> NodeConfig {
    let mut c = NodeConfig {
        data_dir: dir.to_path_buf(),
        api_listen: "127.0.0.1:0".parse().expect("addr"),
        ..NodeConfig::default()
    };
    c.blobs.max_blob_bytes = 1024 * 1024;
    // Tests poll; only the rate-limit test wants the limiter to bite.
    c.limits.burst_per_ip = 100_000;
    c.limits.rate_per_ip_per_sec = 100_000.0;
    c
}

impl TestNode {
    pub fn start(config: NodeConfig, chain: TestChain) -> TestNode {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let node = rt
            .block_on(serve(config, chain.clone()))
            .expect("node starts");
        let base = format!("http://{}", node.local_addr());
        TestNode {
            client: Client::with_timeout(&base, Duration::from_secs(10)),
            rt,
            node: Some(node),
            chain,
            base,
        }
    }

    /// Produce a block and wait until the node has indexed it.
    pub fn block(&self) -> Arc<Finalized> {
        let f = self.chain.produce_block();
        self.wait_indexed(f.block.height);
        f
    }

    pub fn wait_indexed(&self, height: u64) {
        for _ in 0..500 {
            if self.client.status().expect("status").indexed_height >= height {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("node did not index height {height}");
    }

    pub fn stop(mut self) -> TestChain {
        if let Some(node) = self.node.take() {
            self.rt.block_on(node.shutdown()).expect("clean shutdown");
        }
        self.chain.clone()
    }
}

pub fn sign(key: &Keypair, nonce: u64, body: TxBody) -> SignedTx {
    Tx {
        chain_id: ChainId::new(CHAIN).expect("chain id"),
        nonce,
        body,
    }
    .sign(key)
}

/// Submit `RegisterProvider(offer())` and a bond of 2,000 ORR for each of `providers` (their
/// nonces 0 and 1); the caller makes the block.
pub fn register_and_bond(client: &Client, providers: &[Keypair]) {
    for p in providers {
        client
            .submit(&sign(p, 0, TxBody::RegisterProvider(offer())))
            .expect("register");
        client
            .submit(&sign(
                p,
                1,
                TxBody::Bond {
                    amount: Amount::orr(2_000),
                },
            ))
            .expect("bond");
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

pub fn offer() -> ProviderOffer {
    ProviderOffer {
        hardware: Hardware {
            gpu: Some(GpuSpec {
                model: Text::new("NVIDIA RTX 4090").expect("text"),
                vram_mib: 24_576,
                count: 1,
            }),
            cpu_cores: 16,
            ram_gib: 64,
        },
        region: Text::new("eu-west").expect("text"),
        endpoint: Text::new("http://127.0.0.1:7100").expect("text"),
        prices: prices(),
    }
}

pub fn open_lease(provider: AccountId, job: Hash, deadline: u64) -> TxBody {
    TxBody::OpenLease {
        provider,
        job,
        terms: LeaseTerms {
            resources: ResourceRequest {
                gpus: 1,
                cpu_cores: 2,
                ram_gib: 8,
            },
            prices: prices(),
            max_seconds: 3_600,
            max_units: 1_000_000,
        },
        deadline,
        verification: Verification::None,
    }
}
