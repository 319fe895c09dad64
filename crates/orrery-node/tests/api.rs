//! The API end to end: a real node on a loopback port over a test chain, driven by the real
//! client.

mod common;

use common::{TestChain, TestNode, config, keys, open_lease, register_and_bond, sign};
use orrery_client::{Error, LeaseQuery};
use orrery_types::amount::Amount;
use orrery_types::hash::Hash;
use orrery_types::tx::{ChainId, Tx, TxBody};
use std::time::Duration;

fn api_error(r: Result<impl std::fmt::Debug, Error>) -> (u16, String, Option<u64>) {
    match r {
        Err(Error::Api {
            status,
            code,
            retry_after,
            ..
        }) => (status, code, retry_after),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[test]
fn transfer_is_submitted_included_and_readable_everywhere() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = keys(2);
    let node = TestNode::start(config(dir.path()), TestChain::new(&k));
    let c = &node.client;

    let body = TxBody::Transfer {
        to: k[1].account(),
        amount: Amount::orr(5),
    };
    let tx = sign(&k[0], 0, body);
    let hash = c.submit(&tx).expect("accepted");
    assert_eq!(hash, tx.hash());
    assert!(c.tx(&hash).expect("query").is_none(), "not final yet");
    node.chain.produce_block();
    let rec = c
        .wait_for_tx(&hash, Duration::from_secs(5))
        .expect("included");
    assert_eq!((rec.height, rec.index), (1, 0));
    assert_eq!(rec.tx.sender, k[0].account());
    assert_eq!(rec.tx.body["type"], "transfer");
    let receipt = rec.receipt.expect("outcome known");
    assert!(receipt.ok, "{receipt:?}");
    assert_eq!(receipt.kind, "transfer");
    assert_eq!(receipt.events[0]["event"], "transferred");

    let a = c.account(&k[0].account()).expect("account");
    assert_eq!(a.nonce, 1);
    assert_eq!(a.balance, Amount::orr(1_000_000 - 5));
    assert_eq!(
        c.account(&k[1].account()).expect("account").balance,
        Amount::orr(1_000_005)
    );

    // The recipient's list has it too (found through the body and the event).
    let sent = c.account_txs(&k[0].account(), None, None).expect("list");
    let got = c.account_txs(&k[1].account(), None, None).expect("list");
    assert_eq!(sent.items.len(), 1);
    assert_eq!(got.items[0].tx.hash, hash);

    let status = c.status().expect("status");
    assert_eq!(status.chain.chain_id, common::CHAIN);
    assert_eq!(status.chain.height, 1);
    assert_eq!(status.indexed_height, 1);

    let block = c.block(1).expect("block").expect("exists");
    assert_eq!(block.summary.tx_count, 1);
    assert_eq!(block.txs[0].hash, hash);
    assert_eq!(c.latest_block().expect("latest").expect("exists"), block);
    assert!(c.block(2).expect("query").is_none());
    let receipts = c.block_receipts(1).expect("receipts").expect("indexed");
    assert!(receipts.outcome_known);
    assert_eq!(receipts.receipts[0].tx, hash);

    // A refused transaction is included with its reason.
    let too_much = sign(
        &k[0],
        1,
        TxBody::Transfer {
            to: k[1].account(),
            amount: Amount::orr(10_000_000),
        },
    );
    let h2 = c.submit(&too_much).expect("accepted into the mempool");
    node.chain.produce_block();
    let rec = c
        .wait_for_tx(&h2, Duration::from_secs(5))
        .expect("included");
    let r = rec.receipt.expect("outcome");
    assert!(!r.ok);
    assert_eq!(r.error.expect("reason")["error"], "insufficient_funds");
    assert!(r.message.expect("message").contains("insufficient funds"));

    // Block pages, newest first.
    for _ in 0..3 {
        node.chain.produce_block();
    }
    node.wait_indexed(5);
    let p1 = c.blocks(Some(2), None).expect("page");
    assert_eq!(
        p1.items.iter().map(|b| b.height).collect::<Vec<_>>(),
        [5, 4]
    );
    let p2 = c.blocks(Some(10), p1.next_cursor.as_deref()).expect("page");
    assert_eq!(
        p2.items.iter().map(|b| b.height).collect::<Vec<_>>(),
        [3, 2, 1]
    );
    assert!(p2.next_cursor.is_none());

    // Waiting for a transaction that never comes times out.
    let never = Hash::of(b"never submitted");
    assert!(matches!(
        c.wait_for_tx(&never, Duration::from_millis(300)),
        Err(Error::Timeout { .. })
    ));
    node.stop();
}

#[test]
fn bad_transactions_get_clear_errors_and_the_node_stays_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = keys(2);
    let mut chain = TestChain::new(&k);
    chain.mempool_cap = 2;
    let node = TestNode::start(config(dir.path()), chain);
    let c = &node.client;
    let transfer = |n: u64| TxBody::Transfer {
        to: k[1].account(),
        amount: Amount::orr(n),
    };

    // Not a transaction.
    assert_eq!(api_error(c.submit_raw(b"hello")).1, "malformed_tx");
    assert_eq!(api_error(c.submit_raw(&[])).0, 400);
    // Too large, before decoding.
    let (status, code, _) = api_error(c.submit_raw(&vec![0u8; 5000]));
    assert_eq!((status, code.as_str()), (413, "tx_too_large"));
    // Much larger: the node reads and discards it so the client still gets the answer.
    for size in [100_000, 2 * 1024 * 1024] {
        let (status, code, _) = api_error(c.submit_raw(&vec![0u8; size]));
        assert_eq!((status, code.as_str()), (413, "tx_too_large"));
    }

    // Signed by one key, claiming another signer.
    let mut forged = sign(&k[0], 0, transfer(1));
    forged.signer = k[1].public_key().clone();
    let (status, code, _) = api_error(c.submit(&forged));
    assert_eq!((status, code.as_str()), (422, "bad_signature"));
    // Altered after signing.
    let mut altered = sign(&k[0], 0, transfer(1));
    altered.tx.body = transfer(1000);
    assert_eq!(api_error(c.submit(&altered)).1, "bad_signature");

    // Signed for another chain.
    let other = Tx {
        chain_id: ChainId::new("another-chain").expect("id"),
        nonce: 0,
        body: transfer(1),
    }
    .sign(&k[0]);
    let (status, code, _) = api_error(c.submit(&other));
    assert_eq!((status, code.as_str()), (422, "wrong_chain"));

    // Accepted once; the same again while waiting is a duplicate.
    let tx = sign(&k[0], 0, transfer(1));
    c.submit(&tx).expect("accepted");
    let (status, code, _) = api_error(c.submit(&tx));
    assert_eq!((status, code.as_str()), (409, "duplicate_tx"));
    node.block();
    // Replayed after inclusion: its nonce is used.
    let (status, code, _) = api_error(c.submit(&tx));
    assert_eq!((status, code.as_str()), (409, "stale_nonce"));

    // Hex bodies work too.
    let tx1 = sign(&k[0], 1, transfer(2));
    let hex_body = format!("0x{}\n", hex::encode(orrery_types::codec::encode(&tx1)));
    let resp = ureq::post(format!("{}/api/v1/txs", node.base))
        .header("content-type", "text/plain")
        .send(hex_body.as_bytes())
        .expect("hex submit");
    assert_eq!(resp.status(), 200);

    // Mempool full: 503 with Retry-After.
    c.submit(&sign(&k[0], 2, transfer(3)))
        .expect("second waiting tx");
    let (status, code, retry) = api_error(c.submit(&sign(&k[0], 3, transfer(4))));
    assert_eq!((status, code.as_str(), retry), (503, "overloaded", Some(1)));

    // Still serving.
    node.block();
    assert_eq!(c.account(&k[0].account()).expect("account").nonce, 3);
    let metrics = ureq::get(format!("{}/metrics", node.base))
        .call()
        .expect("metrics")
        .body_mut()
        .read_to_string()
        .expect("text");
    assert!(
        metrics.contains("orrery_node_txs_submitted_total 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"orrery_node_tx_rejects_total{reason="bad_signature"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"route="/api/v1/txs",method="POST",status="409""#),
        "{metrics}"
    );
    assert!(metrics.contains("orrery_node_chain_height 2"), "{metrics}");
    node.stop();
}

#[test]
fn providers_and_leases_are_listed_filtered_and_paged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = keys(4);
    let node = TestNode::start(config(dir.path()), TestChain::new(&k));
    let c = &node.client;
    // Accounts 0 and 1 become providers; 2 and 3 rent them.
    register_and_bond(c, &k[..2]);
    node.block();
    let job = Hash::of(b"job bundle");
    c.submit(&sign(&k[2], 0, open_lease(k[0].account(), job, 50)))
        .expect("lease 0");
    c.submit(&sign(&k[3], 0, open_lease(k[1].account(), job, 50)))
        .expect("lease 1");
    c.submit(&sign(&k[2], 1, open_lease(k[1].account(), job, 50)))
        .expect("lease 2");
    node.block();

    let all = c.providers(None, None).expect("providers");
    assert_eq!(all.items.len(), 2);
    let first = c.providers(Some(1), None).expect("page 1");
    assert_eq!(first.items.len(), 1);
    let second = c
        .providers(Some(1), first.next_cursor.as_deref())
        .expect("page 2");
    assert_eq!(second.items.len(), 1);
    assert!(second.next_cursor.is_none());
    assert_ne!(first.items[0].id, second.items[0].id);
    let p = c
        .provider(&k[0].account())
        .expect("query")
        .expect("registered");
    assert_eq!(p.stake, Amount::orr(2_000));
    assert_eq!(p.offer.region.as_str(), "eu-west");
    assert!(c.provider(&k[3].account()).expect("query").is_none());

    let leases = c.leases(&LeaseQuery::default()).expect("leases");
    assert_eq!(leases.items.len(), 3);
    let of_provider_1 = c
        .leases(&LeaseQuery {
            provider: Some(k[1].account()),
            ..LeaseQuery::default()
        })
        .expect("filtered");
    assert_eq!(of_provider_1.items.len(), 2);
    let by_2 = c
        .leases(&LeaseQuery {
            requester: Some(k[2].account()),
            state: Some("awaiting_start".into()),
            ..LeaseQuery::default()
        })
        .expect("filtered");
    assert_eq!(by_2.items.len(), 2);
    assert!(
        by_2.items
            .iter()
            .all(|l| l.requester == k[2].account() && l.active)
    );
    // A party is a lease's provider (or a verifier of its check), never its requester.
    let of_party_0 = c
        .leases(&LeaseQuery {
            party: Some(k[0].account()),
            state: Some("active".into()),
            ..LeaseQuery::default()
        })
        .expect("filtered");
    assert_eq!(of_party_0.items.len(), 1);
    assert_eq!(of_party_0.items[0].provider, k[0].account());
    let requester_as_party = c
        .leases(&LeaseQuery {
            party: Some(k[2].account()),
            ..LeaseQuery::default()
        })
        .expect("filtered");
    assert!(requester_as_party.items.is_empty());
    let none = c
        .leases(&LeaseQuery {
            state: Some("settled".into()),
            ..LeaseQuery::default()
        })
        .expect("filtered");
    assert!(none.items.is_empty());
    let paged = c
        .leases(&LeaseQuery {
            limit: Some(2),
            ..LeaseQuery::default()
        })
        .expect("page");
    assert_eq!(paged.items.len(), 2);
    let rest = c
        .leases(&LeaseQuery {
            limit: Some(2),
            cursor: paged.next_cursor.clone(),
            ..LeaseQuery::default()
        })
        .expect("page");
    assert_eq!(rest.items.len(), 1);
    assert!(rest.next_cursor.is_none());

    let id = leases.items[0].id;
    let lease = c.lease(id).expect("query").expect("exists");
    assert_eq!(lease.job, job);
    assert_eq!(lease.state, "awaiting_start");
    assert_eq!(lease.state_detail["state"], "awaiting_start");
    assert!(c.lease(999).expect("query").is_none());
    let txs = c.lease_txs(id, None, None).expect("lease txs");
    assert_eq!(txs.items.len(), 1);
    assert_eq!(
        txs.items[0].receipt.as_ref().expect("outcome").kind,
        "open_lease"
    );

    // Bad parameters are 400s with codes, not crashes.
    let answer = |path: &str| {
        let mut resp = ureq::get(format!("{}{path}", node.base))
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .expect("answer");
        let body: orrery_client::api::ErrorBody = resp.body_mut().read_json().expect("JSON error");
        (resp.status().as_u16(), body.code, body.error)
    };
    let bad = |path: &str| {
        let (status, code, _) = answer(path);
        (status, code)
    };
    // Page sizes and sample counts out of range are refused naming the bounds, on every list
    // alike; none is clamped.
    for (path, what, bounds) in [
        ("/api/v1/leases?limit=0", "limit", "1 to 500"),
        ("/api/v1/blocks?limit=501", "limit", "1 to 500"),
        ("/api/v1/blocks?limit=2147483648", "limit", "1 to 500"),
        ("/api/v1/providers?limit=0", "limit", "1 to 500"),
        ("/api/v1/leases/0/txs?limit=0", "limit", "1 to 500"),
        ("/api/v1/series?points=0", "points", "1 to 500"),
        ("/api/v1/series?points=2147483648", "points", "1 to 500"),
    ] {
        let (status, code, message) = answer(path);
        assert_eq!(
            (status, code.as_str()),
            (400, "bad_query"),
            "{path}: {message}"
        );
        assert!(
            message.starts_with(what) && message.contains(bounds),
            "{path}: {message}"
        );
    }
    assert_eq!(
        bad("/api/v1/leases?state=setled"),
        (400, "bad_query".into())
    );
    assert_eq!(bad("/api/v1/blocks?cursor="), (400, "bad_number".into()));
    assert_eq!(bad("/api/v1/leases?cursor=+1"), (400, "bad_number".into()));
    assert_eq!(
        bad("/api/v1/leases?provider=nobody"),
        (400, "bad_account".into())
    );
    assert_eq!(bad("/api/v1/leases?limit=minus"), (400, "bad_query".into()));
    assert_eq!(bad("/api/v1/leases/abc"), (400, "bad_number".into()));
    assert_eq!(bad("/api/v1/txs/1234"), (400, "bad_hash".into()));
    assert_eq!(
        bad("/api/v1/accounts/orr12/txs?cursor=x"),
        (400, "bad_account".into())
    );
    assert_eq!(bad("/api/v1/nothing"), (404, "no_such_route".into()));
    assert_eq!(bad("/api/v1/txs"), (405, "method_not_allowed".into()));
    node.stop();
}

#[test]
fn blobs_are_checked_stored_and_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = TestNode::start(config(dir.path()), TestChain::new(&keys(1)));
    let c = &node.client;
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let hash = Hash::of(&data);
    assert!(!c.has_blob(&hash).expect("head"));
    assert!(c.get_blob(&hash).expect("get").is_none());
    let stored = c.put_blob(&data).expect("put");
    assert_eq!(
        (stored.hash, stored.size, stored.created),
        (hash, 300_000, true)
    );
    assert!(!c.put_blob(&data).expect("again").created);
    assert!(c.has_blob(&hash).expect("head"));
    assert_eq!(c.get_blob(&hash).expect("get").expect("present"), data);

    // Wrong hash: 422 naming both hashes, nothing stored.
    let claimed = Hash::of(b"other");
    match c.put_blob_as(&claimed, &data) {
        Err(Error::Api {
            status: 422,
            code,
            message,
            ..
        }) => {
            assert_eq!(code, "hash_mismatch");
            assert!(message.contains(&claimed.to_hex()) && message.contains(&hash.to_hex()));
        }
        other => panic!("expected a mismatch, got {other:?}"),
    }
    assert!(!c.has_blob(&claimed).expect("head"));

    // Too large (the test node allows 1 MiB).
    let big = vec![1u8; 1024 * 1024 + 1];
    let (status, code, _) = api_error(c.put_blob(&big));
    assert_eq!((status, code.as_str()), (413, "blob_too_large"));
    assert!(!c.has_blob(&Hash::of(&big)).expect("head"));
    node.stop();
}

#[test]
fn event_stream_delivers_each_finalized_block() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = keys(2);
    let node = TestNode::start(config(dir.path()), TestChain::new(&k));
    let mut events = node.client.events().expect("stream");
    let tx = sign(
        &k[0],
        0,
        TxBody::Transfer {
            to: k[1].account(),
            amount: Amount::orr(1),
        },
    );
    node.client.submit(&tx).expect("submit");
    let b1 = node.block();
    let b2 = node.block();
    let e1 = events.next().expect("first").expect("decodes");
    assert_eq!((e1.height, e1.hash, e1.tx_count), (1, b1.block_hash, 1));
    assert_eq!(e1.events[0]["event"], "transferred");
    let e2 = events.next().expect("second").expect("decodes");
    assert_eq!((e2.height, e2.hash, e2.tx_count), (2, b2.block_hash, 0));
    assert_eq!(e2.state_root, b2.state_root);
    drop(events);
    node.stop();
}

#[test]
fn openapi_document_describes_the_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = TestNode::start(config(dir.path()), TestChain::new(&keys(1)));
    let doc = node.client.openapi().expect("document");
    let paths = doc["paths"].as_object().expect("paths");
    for p in [
        "/api/v1/txs",
        "/api/v1/txs/{hash}",
        "/api/v1/status",
        "/api/v1/leases",
        "/api/v1/blobs/{hash}",
        "/api/v1/events",
    ] {
        assert!(paths.contains_key(p), "missing {p}");
    }
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for s in ["ErrorBody", "AccountView", "LeaseView", "TxRecord"] {
        assert!(schemas.contains_key(s), "missing schema {s}");
    }
    node.stop();
}
