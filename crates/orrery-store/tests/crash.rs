//! Kill -9 the process in the middle of applying and writing blocks, many times: every restart
//! recovers exactly the last fully committed block, with the same root a crash-free run has.

use orrery_ledger::{Genesis, GenesisAccount, Params, Signatures, State, apply_block};
use orrery_store::Ledger;
use orrery_types::amount::Amount;
use orrery_types::block::{Block, BlockTxs};
use orrery_types::crypto::Keypair;
use orrery_types::hash::Hash;
use orrery_types::tx::{ChainId, Tx, TxBody};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const ACCOUNTS: u64 = 16;
const TXS_PER_BLOCK: u64 = 64;
const CHILD_ENV: &str = "ORRERY_CRASH_CHILD_DB";

fn keys() -> Vec<Keypair> {
    (0..ACCOUNTS).map(Keypair::from_seed).collect()
}

fn genesis() -> Genesis {
    Genesis {
        chain_id: ChainId::new("orrery-crash").unwrap(),
        genesis_time_ms: 0,
        params: Params::default(),
        accounts: keys()
            .iter()
            .map(|k| GenesisAccount {
                account: k.account(),
                balance: Amount::orr(1_000_000),
            })
            .collect(),
        validators: vec![],
    }
}

/// The block at `state.height() + 1`: a deterministic function of the state, so a restarted
/// writer produces exactly the blocks a crash-free run would.
fn next_block(state: &State, keys: &[Keypair]) -> Block {
    let h = state.height() + 1;
    let mut txs = Vec::new();
    let mut offsets = vec![0u64; keys.len()];
    for i in 0..TXS_PER_BLOCK {
        let from = ((h * 7 + i) % ACCOUNTS) as usize;
        let to = ((h * 3 + i * 5 + 1) % ACCOUNTS) as usize;
        let nonce = state.account(&keys[from].account()).nonce + offsets[from];
        offsets[from] += 1;
        let body = TxBody::Transfer {
            to: keys[to].account(),
            amount: Amount(1 + ((h * 31 + i) % 1_000) as u128),
        };
        txs.push(
            Tx {
                chain_id: ChainId::new("orrery-crash").unwrap(),
                nonce,
                body,
            }
            .sign(&keys[from]),
        );
    }
    Block {
        height: h,
        time_ms: h * 1_000,
        seed: Hash::of(&h.to_be_bytes()),
        parent: state.globals().last_block,
        txs: BlockTxs::new(txs).unwrap(),
    }
}

/// The child: apply and persist blocks forever, printing each committed height. Run only by
/// the kill -9 test below, as a separate process.
#[test]
#[ignore = "helper process for kill_9_mid_write_recovers_the_last_committed_block"]
fn crash_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let keys = keys();
    let mut ledger = Ledger::open(path.as_ref(), &genesis()).unwrap();
    loop {
        let block = next_block(ledger.state(), &keys);
        ledger.apply(&block, Signatures::PreVerified).unwrap();
        println!("committed {}", block.height);
    }
}

#[test]
fn kill_9_mid_write_recovers_the_last_committed_block() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.redb");
    let keys = keys();
    // A crash-free reference run, to compare roots at every height.
    let mut reference = State::genesis(&genesis()).unwrap();
    let mut roots = vec![reference.root()];

    for round in 0..10u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &db)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        // Wait for a few commits, then kill at a varying moment mid-stream.
        let want = 3 + round * 2;
        let mut last = 0u64;
        while let Some(Ok(line)) = lines.next() {
            if let Some(h) = line.strip_prefix("committed ") {
                last = h.trim().parse().unwrap();
                if last >= want + round * 10 {
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_micros(300 * round));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let ledger = Ledger::open(&db, &genesis()).expect("reopens after kill -9");
        let height = ledger.state().height();
        assert!(
            height >= last,
            "round {round}: lost committed block {last}, recovered {height}"
        );
        while (roots.len() as u64) <= height {
            let b = next_block(&reference, &keys);
            apply_block(&mut reference, &b, Signatures::Verify).unwrap();
            roots.push(reference.root());
        }
        assert_eq!(
            ledger.state().root(),
            roots[height as usize],
            "round {round}: root at height {height}"
        );
        ledger.state().audit().unwrap();
        assert!(ledger.block(height).unwrap().is_some());
    }
}

#[test]
fn a_database_from_another_genesis_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.redb");
    drop(Ledger::open(&db, &genesis()).unwrap());
    let mut other = genesis();
    other.chain_id = ChainId::new("orrery-other").unwrap();
    let err = Ledger::open(&db, &other).err().expect("refused");
    assert!(err.to_string().contains("different genesis"), "{err}");
}

#[test]
fn restart_continues_from_disk_with_the_same_root() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.redb");
    let keys = keys();
    let root = {
        let mut ledger = Ledger::open(&db, &genesis()).unwrap();
        for _ in 0..5 {
            let b = next_block(ledger.state(), &keys);
            ledger.apply(&b, Signatures::Verify).unwrap();
        }
        ledger.state().root()
    };
    let mut ledger = Ledger::open(&db, &genesis()).unwrap();
    assert_eq!(ledger.state().height(), 5);
    assert_eq!(ledger.state().root(), root);
    // A refused block leaves memory and disk where they were.
    let mut bad = next_block(ledger.state(), &keys);
    bad.height = 99;
    assert!(ledger.apply(&bad, Signatures::Verify).is_err());
    assert_eq!(ledger.state().root(), root);
    let b = next_block(ledger.state(), &keys);
    ledger.apply(&b, Signatures::Verify).unwrap();
    assert_eq!(ledger.state().height(), 6);
}
