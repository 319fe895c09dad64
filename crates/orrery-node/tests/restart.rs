//! The index survives a restart and catches up on blocks finalized while the node was down.

mod common;

use common::{TestChain, TestNode, config, keys, sign};
use orrery_types::amount::Amount;
use orrery_types::tx::TxBody;
use std::sync::atomic::Ordering;

#[test]
fn index_survives_restart_and_catches_up_from_chain_storage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = keys(2);
    let transfer = |n: u64| TxBody::Transfer {
        to: k[1].account(),
        amount: Amount::orr(n),
    };
    let node = TestNode::start(config(dir.path()), TestChain::new(&k));
    let live = node
        .client
        .submit(&sign(&k[0], 0, transfer(1)))
        .expect("submit");
    node.block();
    let chain = node.stop();

    // While the node is down: two blocks; the chain no longer has the first one's outcome.
    chain.submit_direct(sign(&k[0], 1, transfer(2)));
    let lost = chain.produce_block().block.txs.as_slice()[0].hash();
    chain.submit_direct(sign(&k[0], 2, transfer(3)));
    let kept = chain.produce_block().block.txs.as_slice()[0].hash();
    chain.outcomes_from.store(3, Ordering::Relaxed);

    let node = TestNode::start(config(dir.path()), chain);
    node.wait_indexed(3);
    let c = &node.client;
    let rec = c
        .tx(&live)
        .expect("query")
        .expect("indexed before the restart");
    assert!(rec.receipt.expect("outcome").ok);
    // Height 2's outcome is gone: indexed from the stored block alone, found without a
    // receipt, and nothing invented.
    let rec = c
        .tx(&lost)
        .expect("query")
        .expect("indexed while catching up");
    assert!(rec.receipt.is_none());
    assert!(
        !c.block_receipts(2)
            .expect("query")
            .expect("indexed")
            .outcome_known
    );
    // Height 3's outcome was still there: full receipt.
    let rec = c
        .tx(&kept)
        .expect("query")
        .expect("indexed while catching up");
    assert!(rec.receipt.expect("outcome").ok);
    assert!(
        c.block_receipts(3)
            .expect("query")
            .expect("indexed")
            .outcome_known
    );
    assert_eq!(
        c.account_txs(&k[0].account(), None, None)
            .expect("list")
            .items
            .len(),
        3
    );

    // Live indexing continues after the catch-up, with outcomes.
    chain_transfer(&node, &k, 3);
    node.stop();
}

fn chain_transfer(node: &TestNode, k: &[orrery_types::Keypair], nonce: u64) {
    let tx = sign(
        &k[0],
        nonce,
        TxBody::Transfer {
            to: k[1].account(),
            amount: Amount::orr(1),
        },
    );
    let h = node.client.submit(&tx).expect("submit");
    node.block();
    let rec = node.client.tx(&h).expect("query").expect("indexed live");
    assert!(rec.receipt.expect("live blocks have outcomes").ok);
}
