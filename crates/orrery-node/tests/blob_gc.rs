//! The collector, wired to the chain: blobs named by a live lease stay; unreferenced uploads go
//! after their grace period; a lease's blobs go a retention period after it is final.

mod common;

use common::{TestChain, TestNode, config, keys, open_lease, register_and_bond, sign};
use orrery_types::hash::Hash;
use std::time::{Duration, Instant};

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn collector_keeps_live_lease_blobs_and_removes_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.blobs.gc_interval_secs = 1;
    cfg.blobs.retention_blocks = 3;
    cfg.blobs.unreferenced_grace_secs = 0;
    let k = keys(2);
    let node = TestNode::start(cfg, TestChain::new(&k));
    let c = &node.client;

    register_and_bond(c, &k[..1]);
    node.block();
    let job = b"a job bundle".to_vec();
    let job_hash = Hash::of(&job);
    c.submit(&sign(&k[1], 0, open_lease(k[0].account(), job_hash, 50)))
        .expect("open lease");
    node.block();
    c.put_blob(&job).expect("job uploaded");
    let stray = c
        .put_blob(b"nobody needs this")
        .expect("stray uploaded")
        .hash;

    // The next passes remove the unreferenced upload and keep the live lease's job.
    wait_until("stray blob collected", || {
        !c.has_blob(&stray).expect("head")
    });
    assert!(c.has_blob(&job_hash).expect("head"));

    // The provider never starts: the lease times out, and retention blocks later its job goes.
    let lease = c.leases(&Default::default()).expect("leases").items[0].id;
    while c.lease(lease).expect("lease").expect("exists").active {
        node.block();
    }
    assert_eq!(
        c.lease(lease).expect("lease").expect("exists").state,
        "timed_out"
    );
    std::thread::sleep(Duration::from_millis(2_100));
    assert!(
        c.has_blob(&job_hash).expect("head"),
        "kept during retention"
    );
    for _ in 0..3 {
        node.block();
    }
    wait_until("job blob collected", || {
        !c.has_blob(&job_hash).expect("head")
    });
    node.stop();
}
