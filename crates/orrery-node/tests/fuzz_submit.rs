//! Fuzzing the HTTP submission path, `POST /api/v1/txs`, through a running node: bodies of
//! random bytes, valid transactions with random edits, and both as hex text, under each
//! content type.
//!
//! Properties: every answer is one the API documents (200 with the hash, or a 400, 409, 413,
//! 422 or 503 JSON error with its stable code) — never a 5xx of the node's own making, never a
//! dropped connection — and the node still serves afterwards.
//!
//! CI runs [`DEFAULT_CASES`] requests; `PROPTEST_CASES=100000` runs more by hand.

mod common;

use common::{TestChain, TestNode, config, keys, sign};
use orrery_types::amount::Amount;
use orrery_types::tx::TxBody;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Requests in CI: about a millisecond each.
const DEFAULT_CASES: u32 = 500;

/// Every code the submission route documents, by status.
const DOCUMENTED: &[(u16, &[&str])] = &[
    (400, &["malformed_tx", "bad_body"]),
    (409, &["stale_nonce", "duplicate_tx"]),
    (413, &["tx_too_large"]),
    (422, &["bad_signature", "wrong_chain", "invalid_tx"]),
    (503, &["overloaded"]),
];

#[derive(Clone, Debug)]
enum Body {
    Bytes(Vec<u8>),
    /// A valid transaction with bytes overwritten and possibly cut.
    Edited(Vec<(usize, u8)>, Option<usize>),
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300).prop_map(Body::Bytes),
        (
            prop::collection::vec((any::<usize>(), any::<u8>()), 0..3),
            prop::option::of(any::<usize>())
        )
            .prop_map(|(sets, cut)| Body::Edited(sets, cut)),
    ]
}

#[test]
fn any_submission_gets_a_documented_answer() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(3);
    let node = TestNode::start(config(dir.path()), TestChain::new(&k));
    let url = format!("{}/api/v1/txs", node.base);
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    let mut runner = TestRunner::new(Config::with_cases(cases));
    let accepted = std::cell::Cell::new(0u32);
    let strategy = (body(), 0u8..3, any::<bool>(), 0u64..4);
    runner
        .run(&strategy, |(body, content, as_hex, nonce)| {
            let valid = orrery_types::codec::encode(&sign(
                &k[(nonce % 3) as usize],
                nonce,
                TxBody::Transfer {
                    to: k[0].account(),
                    amount: Amount::orr(1),
                },
            ));
            let mut bytes = match body {
                Body::Bytes(b) => b,
                Body::Edited(sets, cut) => {
                    let mut b = valid;
                    for (i, v) in sets {
                        let n = b.len();
                        b[i % n] = v;
                    }
                    if let Some(c) = cut {
                        let n = b.len();
                        b.truncate(c % n);
                    }
                    b
                }
            };
            if as_hex {
                bytes = format!(" 0x{}\n", hex::encode(&bytes)).into_bytes();
            }
            let request = ureq::post(&url)
                .config()
                .http_status_as_error(false)
                .build();
            let request = match content {
                0 => request.header("content-type", "application/octet-stream"),
                1 => request.header("content-type", "text/plain"),
                _ => request,
            };
            let mut resp = request.send(&bytes[..]).expect("the node answers");
            let status = resp.status().as_u16();
            let json: serde_json::Value = resp.body_mut().read_json().expect("a JSON answer");
            if status == 200 {
                prop_assert!(json["hash"].is_string(), "{json}");
                accepted.set(accepted.get() + 1);
            } else {
                let code = json["code"].as_str().unwrap_or("");
                prop_assert!(
                    DOCUMENTED
                        .iter()
                        .any(|(s, codes)| *s == status && codes.contains(&code)),
                    "undocumented answer {status} {json}"
                );
            }
            Ok(())
        })
        .unwrap();
    // The edits leave some transactions whole: the path to the mempool was reached.
    assert!(accepted.get() > 0, "no submission was accepted");
    node.client.status().expect("the node still serves");
}
