use super::*;
use orrery_types::block::BlockTxs;
use orrery_types::crypto::Keypair;

fn block(height: u64) -> Block {
    Block {
        height,
        time_ms: height * 1_000,
        seed: Hash::ZERO,
        parent: Hash::ZERO,
        txs: BlockTxs::new(Vec::new()).expect("empty"),
    }
}

#[test]
fn blocks_are_indexed_once_and_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = Index::open(&dir.path().join("index.redb")).expect("open");
    assert!(matches!(
        index.index_block(&block(2), Hash::ZERO, None),
        Err(IndexError::OutOfOrder { indexed: 0, got: 2 })
    ));
    assert!(
        index
            .index_block(&block(1), Hash::ZERO, None)
            .expect("first")
    );
    assert!(
        !index
            .index_block(&block(1), Hash::ZERO, None)
            .expect("again is a no-op")
    );
    assert_eq!(index.indexed_height().expect("height"), 1);
    drop(index);
    let index = Index::open(&dir.path().join("index.redb")).expect("reopen");
    assert_eq!(index.indexed_height().expect("height"), 1);
    let receipts = index.block_receipts(1).expect("read").expect("indexed");
    assert!(!receipts.outcome_known);
}

#[test]
fn account_and_lease_references_are_found_anywhere_in_json() {
    let a = Keypair::from_seed(1).account();
    let b = Keypair::from_seed(2).account();
    let json = serde_json::json!({
        "type": "future_kind",
        "nested": [{"party": a.to_string()}, {"lease": 7, "other": b.to_string()}],
        "note": "orr-not-an-account",
        "lease_count": 3,
    });
    let (mut accounts, mut leases) = (BTreeSet::new(), BTreeSet::new());
    collect_refs(&json, &mut accounts, &mut leases);
    assert_eq!(accounts, BTreeSet::from([a, b]));
    assert_eq!(leases, BTreeSet::from([7]));
}
