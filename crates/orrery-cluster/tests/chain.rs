//! The chain as the round oracle: real workers over loopback p2p commit every round to the
//! real ledger (`CommitClusterRound` in blocks), and each round's set is what the ledger closed
//! the round with. Every worker holds the same weights after every round, the ledger pays each
//! worker exactly for the rounds it completed, and a worker killed mid-run is dropped from the
//! lease, docked, and not billed for its lost work while the others go on.

mod common;

use common::{config, job, members, reference};
use commonware_runtime::{Clock, Runner as _, Spawner, Supervisor as _};
use orrery_cluster::{RoundCommit, RoundOracle, WorkerConfig, WorkerReport, run_worker};
use orrery_ledger::entries::{ClusterPhase, CommitStatus, MemberStatus};
use orrery_ledger::{Event, Genesis, GenesisAccount, Params, Signatures, State, apply_block};
use orrery_types::amount::Amount;
use orrery_types::block::{Block, BlockTxs};
use orrery_types::cluster::{LossBits, cluster_delta_commitment};
use orrery_types::codec::{BoundedVec, Text};
use orrery_types::crypto::{AccountId, Keypair};
use orrery_types::hash::Hash;
use orrery_types::resources::{Hardware, PriceList, ResourceRequest};
use orrery_types::tx::{ChainId, LeaseId, LeaseTerms, ProviderOffer, SignedTx, Tx, TxBody};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CHAIN: &str = "orrery-cluster-test";
/// Blocks a round has before missing members are dropped; at one block per 20 ms of the
/// producer (plus one per commit) that is about 3 s.
const ROUND_BLOCKS: u64 = 150;

/// An in-process chain: the ledger state and the keys of its accounts (0 the requester,
/// `1..=n` the members).
struct Chain {
    state: State,
    keys: Vec<Keypair>,
    lease: LeaseId,
}

impl Chain {
    fn tx(&self, i: usize, body: TxBody) -> SignedTx {
        let nonce = self.state.account(&self.keys[i].account()).nonce;
        Tx {
            chain_id: ChainId::new(CHAIN).unwrap(),
            nonce,
            body,
        }
        .sign(&self.keys[i])
    }

    fn apply(&mut self, txs: Vec<SignedTx>) -> orrery_ledger::BlockOutcome {
        let g = self.state.globals();
        let block = Block {
            height: g.height + 1,
            time_ms: g.time_ms + 200,
            seed: Hash::of(&(g.height + 1).to_be_bytes()),
            parent: g.last_block,
            txs: BlockTxs::new(txs).unwrap(),
        };
        // Debug builds audit the whole state after every block (`execute_block`).
        apply_block(&mut self.state, &block, Signatures::Verify).unwrap()
    }

    fn run(&mut self, i: usize, body: TxBody) {
        let tx = self.tx(i, body);
        let r = self.apply(vec![tx]).receipts.remove(0);
        assert!(r.is_ok(), "{r:?}");
    }

    fn member(&self, worker: u32) -> AccountId {
        self.keys[worker as usize + 1].account()
    }
}

fn terms() -> LeaseTerms {
    LeaseTerms {
        resources: ResourceRequest {
            gpus: 0,
            cpu_cores: 1,
            ram_gib: 1,
        },
        prices: PriceList {
            gpu_hour: Amount::ZERO,
            cpu_core_hour: Amount::orr(1),
            ram_gib_hour: Amount::ZERO,
            mega_unit: Amount::ZERO,
        },
        max_seconds: 3_600,
        max_units: 0,
    }
}

/// A chain with `n` bonded CPU providers and a cluster lease of `rounds` rounds over them.
fn chain(n: usize, rounds: u32) -> Chain {
    let keys: Vec<Keypair> = (0..=n as u64)
        .map(|i| Keypair::from_seed(500 + i))
        .collect();
    let genesis = Genesis {
        chain_id: ChainId::new(CHAIN).unwrap(),
        genesis_time_ms: 1_700_000_000_000,
        params: Params {
            challenges_per_block: 0,
            epoch_blocks: 1_000_000,
            ..Params::default()
        },
        accounts: keys
            .iter()
            .map(|k| GenesisAccount {
                account: k.account(),
                balance: Amount::orr(100_000),
            })
            .collect(),
        validators: vec![Keypair::from_seed(9_999).account()],
    };
    let mut c = Chain {
        state: State::genesis(&genesis).unwrap(),
        keys,
        lease: 0,
    };
    let offer = ProviderOffer {
        hardware: Hardware {
            gpu: None,
            cpu_cores: 2,
            ram_gib: 4,
        },
        region: Text::new("eu-west").unwrap(),
        endpoint: Text::new("127.0.0.1:0").unwrap(),
        prices: terms().prices,
    };
    for i in 1..=n {
        // Each publishes its cluster contact: the ledger names only providers that do.
        let mut offer = offer.clone();
        let contact = orrery_types::cluster::cluster_endpoint(
            "http://127.0.0.1:7100",
            7300,
            c.keys[i].public_key(),
        )
        .unwrap();
        offer.endpoint = Text::new(contact).unwrap();
        c.run(i, TxBody::RegisterProvider(offer.clone()));
        let stake = c.state.params().min_stake(&offer.hardware).unwrap();
        c.run(i, TxBody::Bond { amount: stake });
    }
    let members = (1..=n).map(|i| c.keys[i].account()).collect();
    let open = c.tx(
        0,
        TxBody::OpenClusterLease {
            members: BoundedVec::new(members).unwrap(),
            job: Hash::of(b"the cluster job"),
            terms: terms(),
            rounds,
            inner_steps: 2,
            round_blocks: ROUND_BLOCKS,
            check_bps: 0,
        },
    );
    let out = c.apply(vec![open]);
    c.lease = match &out.receipts[0].outcome.as_ref().unwrap()[0] {
        Event::ClusterLeaseOpened { lease, .. } => *lease,
        e => panic!("unexpected {e:?}"),
    };
    c
}

/// The ledger as the round oracle: a commit is a `CommitClusterRound` in its own block, and a
/// round's set is what the ledger closed it with (less excluded commits), each delta named by
/// the hash the caller holds that matches the on-chain commitment.
#[derive(Clone)]
struct LedgerOracle(Arc<Mutex<Chain>>);

impl RoundOracle for LedgerOracle {
    async fn commit(&self, round: u64, worker: u32, commit: RoundCommit) -> Result<(), String> {
        let mut c = self.0.lock().unwrap();
        let (lease, me) = (c.lease, c.member(worker));
        let body = TxBody::CommitClusterRound {
            lease,
            round: round as u32,
            start: commit.start,
            delta: cluster_delta_commitment(lease, round as u32, &me, &commit.delta),
            loss: LossBits::of(commit.loss),
        };
        let tx = c.tx(worker as usize + 1, body);
        let r = c.apply(vec![tx]).receipts.remove(0);
        r.outcome.map(|_| ()).map_err(|e| e.to_string())
    }

    async fn settle<C: Clock>(
        &self,
        clock: &C,
        round: u64,
        _worker: u32,
        _held: BTreeMap<u32, Hash>,
    ) -> Result<BTreeMap<u32, Hash>, String> {
        loop {
            if let Some(set) = self.closed_set(round as u32) {
                return Ok(set);
            }
            clock.sleep(Duration::from_millis(10)).await;
        }
    }

    fn names(&self, round: u64, worker: u32, delta: &Hash, named: &Hash) -> bool {
        let c = self.0.lock().unwrap();
        cluster_delta_commitment(c.lease, round as u32, &c.member(worker), delta) == *named
    }
}

impl LedgerOracle {
    /// The round's set once the ledger closed it: each kept commit's worker and commitment.
    fn closed_set(&self, round: u32) -> Option<BTreeMap<u32, Hash>> {
        let c = self.0.lock().unwrap();
        let rec = c.state.cluster_round(c.lease, round)?;
        rec.closed_at?;
        let set = rec
            .commits
            .as_slice()
            .iter()
            .filter(|x| x.status != CommitStatus::Excluded)
            .filter_map(|x| {
                let w = (0..c.keys.len() as u32 - 1).find(|w| c.member(*w) == x.worker)?;
                Some((w, x.delta))
            })
            .collect();
        Some(set)
    }
}

/// Produce an empty block every 20 ms until `stop`: the chain's clock, so deadlines pass.
fn producer(c: Arc<Mutex<Chain>>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            c.lock().unwrap().apply(vec![]);
            std::thread::sleep(Duration::from_millis(20));
        }
    })
}

/// Run `n` workers against the ledger oracle; `kill_after` aborts the last worker once the
/// ledger closed that round. Returns the survivors' reports and the chain.
fn run(n: u32, rounds: u32, slot: u16, kill_after: Option<u32>) -> (Vec<WorkerReport>, Chain) {
    let job = job(n, rounds);
    let all = members(n, slot);
    let chain = Arc::new(Mutex::new(chain(n as usize, rounds)));
    let oracle = LedgerOracle(chain.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let blocks = producer(chain.clone(), stop.clone());
    let reports = commonware_runtime::tokio::Runner::default().start(|context| async move {
        let mut handles: Vec<_> = (0..n as usize)
            .map(|i| {
                let cfg = WorkerConfig {
                    // The chain settles a round without waiting for every report.
                    linger: Duration::from_secs(3),
                    ..config(&all, i, Duration::from_secs(3))
                };
                let (job, oracle) = (job.clone(), oracle.clone());
                context
                    .child("worker")
                    .spawn(move |ctx| async move { run_worker(ctx, cfg, job, oracle).await })
            })
            .collect();
        if let Some(round) = kill_after {
            while oracle.closed_set(round).is_none() {
                context.sleep(Duration::from_millis(5)).await;
            }
            handles.pop().unwrap().abort();
        }
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await.unwrap().unwrap());
        }
        out
    });
    // Let the ledger draw (and pay) the last round, then stop the chain.
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    blocks.join().unwrap();
    let chain = Arc::try_unwrap(chain).ok().unwrap().into_inner().unwrap();
    (reports, chain)
}

#[test]
fn workers_committing_to_the_ledger_stay_bitwise_equal_and_are_paid_per_round() {
    let (reports, chain) = run(3, 3, 0, None);
    let job = job(3, 3);
    let want = reference(&job, None);
    let mut start = job.initial().hash();
    for r in 0..3usize {
        let hashes: Vec<Hash> = reports.iter().map(|rep| rep.rounds[r].state_hash).collect();
        assert!(
            hashes.windows(2).all(|p| p[0] == p[1]),
            "round {r}: {hashes:?}"
        );
        // The chain recorded the state every worker started the round from, and its loss.
        let rec = chain.state.cluster_round(chain.lease, r as u32).unwrap();
        assert_eq!(rec.commits.len(), 3);
        for c in rec.commits.as_slice() {
            assert_eq!(c.start, start, "round {r}");
            assert!(c.loss.value().is_finite() && c.loss.value() > 0.0);
        }
        start = hashes[0];
    }
    for rep in &reports {
        assert_eq!(rep.final_state.hash(), want.hash());
    }
    let l = chain.state.cluster_lease(chain.lease).unwrap();
    assert_eq!(l.phase, ClusterPhase::Finished);
    assert_eq!(l.refunded, Amount::ZERO);
    for m in l.members.as_slice() {
        assert_eq!(m.rounds_paid, 3, "{m:?}");
    }
}

#[test]
fn a_worker_killed_mid_run_is_dropped_by_the_ledger_docked_and_not_billed() {
    let (reports, chain) = run(3, 4, 1, Some(1));
    let l = chain.state.cluster_lease(chain.lease).unwrap();
    let dead = chain.member(2);
    let m = l.member(&dead).unwrap();
    assert_eq!(m.status, MemberStatus::Dropped);
    assert!(!m.docked.is_zero(), "docked for the round it missed");
    // It is paid exactly for the rounds the ledger holds its commit for, and no other.
    let completed = (0..4)
        .filter(|r| {
            let rec = chain.state.cluster_round(chain.lease, *r).unwrap();
            rec.commit_of(&dead).is_some()
        })
        .count() as u32;
    assert!(completed >= 2, "alive through round 1");
    assert!(completed < 4, "dead before the end");
    assert_eq!(m.rounds_paid, completed);
    // The others went on through every round, with the same weights.
    for rep in &reports {
        assert_eq!(rep.rounds.len(), 4);
    }
    for r in 0..4 {
        assert_eq!(
            reports[0].rounds[r].state_hash,
            reports[1].rounds[r].state_hash
        );
    }
    assert_eq!(
        reports[0].final_state.hash(),
        reference(&job(3, 4), Some((2, u64::from(completed)))).hash(),
        "the rounds without worker 2 are the reference rounds without its delta"
    );
    assert_eq!(l.phase, ClusterPhase::Finished);
    // The requester got back exactly the worker-rounds nobody completed.
    let cost = terms().max_cost().unwrap();
    let unpaid = 4 * 3 - (8 + completed);
    assert_eq!(l.refunded, cost.checked_mul(u128::from(unpaid)).unwrap());
}
