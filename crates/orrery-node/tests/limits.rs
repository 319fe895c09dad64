//! Abuse: floods, slow requests and too many at once are refused with JSON errors while the
//! node keeps serving.

mod common;

use common::{TestChain, TestNode, config, keys};
use orrery_client::Error;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[test]
fn a_flood_from_one_address_is_rate_limited_with_retry_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.limits.burst_per_ip = 5;
    cfg.limits.rate_per_ip_per_sec = 1.0;
    let node = TestNode::start(cfg, TestChain::new(&keys(1)));
    let mut ok = 0;
    let mut limited = None;
    for _ in 0..20 {
        match node.client.status() {
            Ok(_) => ok += 1,
            Err(e) => {
                limited = Some(e);
                break;
            }
        }
    }
    assert_eq!(ok, 5, "the burst is allowed");
    match limited {
        Some(Error::Api {
            status: 429,
            code,
            retry_after: Some(secs),
            ..
        }) => {
            assert_eq!(code, "rate_limited");
            assert!((1..=2).contains(&secs));
            std::thread::sleep(Duration::from_secs(secs));
        }
        other => panic!("expected 429, got {other:?}"),
    }
    // The bucket refilled: served again.
    node.client.status().expect("served after waiting");
    node.stop();
}

#[test]
fn slow_requests_time_out_and_excess_concurrency_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.limits.request_timeout_secs = 1;
    cfg.limits.max_concurrent_requests = 1;
    let k = keys(1);
    let node = TestNode::start(cfg, TestChain::new(&k));
    node.chain.read_delay_ms.store(1_500, Ordering::Relaxed);

    // One slow request holds the only slot; a second at the same time is refused.
    let slow = {
        let c = node.client.clone();
        let id = k[0].account();
        std::thread::spawn(move || c.account(&id))
    };
    std::thread::sleep(Duration::from_millis(300));
    match node.client.status() {
        Err(Error::Api {
            status: 503,
            code,
            retry_after: Some(1),
            ..
        }) => assert_eq!(code, "overloaded"),
        other => panic!("expected 503 overloaded, got {other:?}"),
    }
    match slow.join().expect("thread") {
        Err(Error::Api {
            status: 503, code, ..
        }) => assert_eq!(code, "timeout"),
        other => panic!("expected 503 timeout, got {other:?}"),
    }

    // Fast again: served.
    node.chain.read_delay_ms.store(0, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(1_600));
    assert_eq!(
        node.client.account(&k[0].account()).expect("served").nonce,
        0
    );
    node.stop();
}
