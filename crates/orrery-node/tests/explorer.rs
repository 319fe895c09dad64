//! The explorer's endpoints and pages over a real ledger: a lease's whole story as evidence,
//! the overview's counters, search over every kind of id, the embedded pages; and, with a few
//! thousand leases, that every explorer endpoint pages correctly and answers from indexes
//! rather than scans.

mod common;

use common::{TestChain, TestNode, config, keys, offer, open_lease, register_and_bond, sign};
use orrery_types::amount::Amount;
use orrery_types::hash::Hash;
use orrery_types::resources::Usage;
use orrery_types::tx::{ResultClaim, TxBody, result_seal};
use serde_json::Value;
use std::time::{Duration, Instant};

/// GET a path; (status, JSON body or Null, headers we look at).
fn get(node: &TestNode, path: &str) -> (u16, Value) {
    let mut resp = ureq::get(format!("{}{path}", node.base))
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .expect("answer");
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_json().unwrap_or(Value::Null);
    (status, body)
}

fn ok(node: &TestNode, path: &str) -> Value {
    let (status, body) = get(node, path);
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// The ids of every item of a paged list, following `next_cursor` from `path` (which already
/// has a query string) to the end.
fn all_ids(node: &TestNode, path: &str) -> Vec<u64> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = match &cursor {
            Some(c) => ok(node, &format!("{path}&cursor={c}")),
            None => ok(node, path),
        };
        ids.extend(
            page["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|l| l["id"].as_u64().expect("id")),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return ids,
        }
    }
}

fn claim() -> ResultClaim {
    // The units the commitment below bills: the ledger bills the sealed units.
    ResultClaim::succeeded(Hash::of(b"output"), Hash::of(b"root"), 1).with_units(1_000)
}

#[test]
fn a_settled_lease_has_its_evidence_and_every_id_is_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = keys(4);
    let node = TestNode::start(config(dir.path()), TestChain::new(&k));
    let c = &node.client;
    register_and_bond(c, &k[..2]);
    node.block();
    let open = sign(&k[2], 0, open_lease(k[0].account(), Hash::of(b"job"), 50));
    c.submit(&open).expect("open");
    let opened = node.block();
    c.submit(&sign(&k[0], 2, TxBody::StartLease { lease: 0 }))
        .expect("start");
    node.block();
    let seal = result_seal(0, &k[0].account(), &claim());
    c.submit(&sign(
        &k[0],
        3,
        TxBody::CommitResult {
            lease: 0,
            seal,
            usage: Usage {
                seconds: 1,
                units: 1_000,
            },
        },
    ))
    .expect("commit");
    c.submit(&sign(
        &k[0],
        4,
        TxBody::RevealResult {
            lease: 0,
            claim: claim(),
            note: Default::default(),
        },
    ))
    .expect("reveal");
    node.block();
    c.submit(&sign(&k[2], 1, TxBody::SettleLease { lease: 0 }))
        .expect("settle");
    node.block();
    assert_eq!(c.lease(0).expect("read").expect("lease").state, "settled");

    // The evidence: every step, in order, with blocks, times, transactions and transfers.
    let ev = ok(&node, "/api/v1/leases/0/evidence");
    let kinds: Vec<&str> = ev["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|e| e["kind"].as_str().expect("kind"))
        .collect();
    for want in [
        "open_lease",
        "start_lease",
        "commit_result",
        "reveal_result",
        "settle_lease",
    ] {
        assert!(kinds.contains(&want), "{want} missing from {kinds:?}");
    }
    let first = &ev["timeline"][0];
    assert_eq!(first["kind"], "open_lease");
    assert_eq!(first["tx"], open.hash().to_string());
    assert_eq!(first["height"], opened.block.height);
    assert_eq!(first["time_ms"], opened.block.time_ms);
    let transfers: Vec<&str> = ev["transfers"]
        .as_array()
        .expect("transfers")
        .iter()
        .map(|t| t["kind"].as_str().expect("kind"))
        .collect();
    assert!(transfers.contains(&"escrow_locked"), "{transfers:?}");
    assert!(transfers.contains(&"provider_paid"), "{transfers:?}");
    assert_eq!(ev["complete"], true);
    assert!(ev["rounds"].as_array().expect("rounds").is_empty());
    let brief = ok(&node, "/api/v1/leases/0/txs?brief=true");
    let tx_entries = ev["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter(|e| !e["tx"].is_null())
        .count();
    assert_eq!(brief["items"].as_array().expect("items").len(), tx_entries);
    let (status, body) = get(&node, "/api/v1/leases/99/evidence");
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("lease_not_found"))
    );

    // The overview's counters and the provider figures.
    let o = ok(&node, "/api/v1/overview");
    assert_eq!(o["jobs"]["opened"], 1);
    assert_eq!(o["jobs"]["settled"], 1);
    assert_eq!(o["jobs"]["running"], 0);
    assert_eq!(o["providers"]["registered"], 2);
    assert_eq!(o["providers"]["online"], 2);
    assert_eq!(o["gpus_online"][0]["model"], "NVIDIA RTX 4090");
    assert_eq!(o["gpus_online"][0]["gpus"], 2);
    let gpu_price = &o["prices"][0];
    assert_eq!(gpu_price["reference"], "RTX 4090 24GB");
    assert_eq!(gpu_price["median"], "2 ORR");
    assert!(gpu_price["saving_pct"].as_f64().expect("saving") < 0.0);
    assert_eq!(o["supply"]["invariant_holds"], true);
    assert!(o["block_interval_ms"].as_f64().expect("interval") > 0.0);
    let burned: Amount = o["supply"]["burned"]
        .as_str()
        .expect("burned")
        .parse()
        .expect("amount");
    assert!(!burned.is_zero(), "the settlement burned part of its fee");

    // The series ends at the head with the same counters.
    let s = ok(&node, "/api/v1/series?points=3");
    assert_eq!(s["heights"].as_array().expect("heights").len(), 3);
    assert_eq!(s["heights"][2], node.chain.height());
    assert_eq!(s["settled"][2], 1);
    let last_burned = s["burned"][2].as_f64().expect("burned");
    assert!((last_burned - orr(burned)).abs() < 1e-9, "{last_burned}");

    // Params, providers sorted and searched, a provider's leases.
    assert_eq!(ok(&node, "/api/v1/params")["fee_bps"], 500);
    let p = ok(&node, "/api/v1/providers?sort=stake&q=EU-WEST");
    assert_eq!(p["items"].as_array().expect("items").len(), 2);
    assert_eq!(p["items"][0]["activity"]["online"], true);
    assert_eq!(
        ok(&node, "/api/v1/providers?q=h100")["items"],
        Value::Array(vec![])
    );
    let (status, body) = get(&node, "/api/v1/providers?sort=colour");
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_query")));
    let one = ok(&node, &format!("/api/v1/providers/{}", k[0].account()));
    // Uptime is the chain's challenge record (no agent answers here: drawn, not answered).
    let c = &one["challenges"];
    assert_eq!(one["activity"]["uptime_bps"], c["uptime_bps"], "{one}");
    assert!(c["claimed_flops"].as_u64().is_some_and(|f| f > 0), "{one}");
    // An open challenge counts for neither side: no uptime until the first is decided.
    let decided = c["answered"].as_u64().unwrap() + c["missed"].as_u64().unwrap();
    assert_eq!(
        c["uptime_bps"].is_null(),
        decided == 0,
        "no uptime before the first decided challenge: {one}"
    );
    let leases = ok(
        &node,
        &format!("/api/v1/providers/{}/leases", k[0].account()),
    );
    assert_eq!(leases["items"][0]["id"], 0);
    let none = ok(
        &node,
        &format!("/api/v1/providers/{}/leases", k[1].account()),
    );
    assert_eq!(none["items"], Value::Array(vec![]));

    // Search: every kind of id, and clear refusals.
    let kinds_of = |q: &str| -> Vec<String> {
        ok(&node, &format!("/api/v1/search?q={q}"))["matches"]
            .as_array()
            .expect("matches")
            .iter()
            .map(|m| m["kind"].as_str().expect("kind").to_string())
            .collect()
    };
    assert_eq!(kinds_of("0"), ["lease"]);
    assert_eq!(kinds_of("3"), ["block"]);
    assert_eq!(kinds_of(&open.hash().to_string()), ["tx"]);
    assert_eq!(kinds_of(&opened.block_hash.to_string()), ["block"]);
    assert_eq!(kinds_of(&k[0].account().to_string()), ["provider"]);
    assert_eq!(kinds_of(&k[3].account().to_string()), ["account"]);
    let refused = |q: &str| {
        let (status, body) = get(&node, &format!("/api/v1/search?q={q}"));
        (
            status,
            body["code"].as_str().unwrap_or("").to_string(),
            body["error"].as_str().unwrap_or("").to_string(),
        )
    };
    let (status, code, msg) = refused(&"ab".repeat(32));
    assert_eq!((status, code.as_str()), (404, "not_found"));
    assert!(msg.contains("no transaction or block"), "{msg}");
    let (status, code, msg) = refused("abc123");
    assert_eq!((status, code.as_str()), (400, "bad_hash"));
    assert!(msg.contains("64 hex characters"), "{msg}");
    assert_eq!(refused("999").0, 404);
    assert_eq!(refused("orr1234").0, 400);
    assert_eq!(refused("hello%20world").0, 400);
    assert_eq!(refused("").0, 400);

    // The OpenAPI document describes them.
    let doc = ok(&node, "/openapi.json");
    for path in [
        "/api/v1/params",
        "/api/v1/overview",
        "/api/v1/series",
        "/api/v1/providers/{id}/leases",
        "/api/v1/leases/{id}/evidence",
        "/api/v1/search",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from /openapi.json"
        );
    }

    // The pages themselves: embedded, typed, cacheable.
    let resp = ureq::get(format!("{}/", node.base)).call().expect("page");
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/html; charset=utf-8")
    );
    let etag = resp
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .expect("etag")
        .to_string();
    let again = ureq::get(format!("{}/", node.base))
        .header("if-none-match", &etag)
        .call()
        .expect("revalidate");
    assert_eq!(again.status(), 304);
    let js = ureq::get(format!("{}/explorer/vendor/uPlot.iife.min.js", node.base))
        .call()
        .expect("uPlot");
    assert_eq!(
        js.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(get(&node, "/explorer/nothing.js").0, 404);
    node.stop();
}

fn orr(a: Amount) -> f64 {
    a.0 as f64 / orrery_types::amount::UNITS_PER_ORR as f64
}

/// Thousands of leases: lists page through all of them without gaps or repeats, and each
/// explorer endpoint answers from indexes. The bound on each answer is loose (a debug build on
/// a shared two-core machine); it is there to catch an endpoint that starts scanning every
/// lease or block, which would take seconds at this size. Timings are printed.
#[test]
fn explorer_endpoints_page_and_stay_fast_over_thousands_of_leases() {
    const LEASES: u64 = 3_000;
    const PER_BLOCK: u64 = 500;
    const BOUND: Duration = Duration::from_millis(500);
    let dir = tempfile::tempdir().expect("tempdir");
    let k = keys(8);
    let mut chain = TestChain::new(&k);
    chain.mempool_cap = 100_000;
    let node = TestNode::start(config(dir.path()), chain);
    let providers = &k[..4];
    let requesters = &k[4..];
    for p in providers {
        node.chain
            .submit_direct(sign(p, 0, TxBody::RegisterProvider(offer())));
        node.chain.submit_direct(sign(
            p,
            1,
            TxBody::Bond {
                amount: Amount::orr(2_000),
            },
        ));
    }
    node.block();
    let mut nonces = vec![0u64; requesters.len()];
    let mut opened = 0u64;
    while opened < LEASES {
        for _ in 0..PER_BLOCK.min(LEASES - opened) {
            let r = (opened as usize) % requesters.len();
            let p = providers[(opened as usize) % providers.len()].account();
            node.chain.submit_direct(sign(
                &requesters[r],
                nonces[r],
                open_lease(p, Hash::of(&opened.to_be_bytes()), 5_000),
            ));
            nonces[r] += 1;
            opened += 1;
        }
        node.block();
    }
    // Start the newest 200 (the provider's nonce after register and bond is 2).
    let mut pn = vec![2u64; providers.len()];
    for id in LEASES - 200..LEASES {
        let i = (id as usize) % providers.len();
        node.chain
            .submit_direct(sign(&providers[i], pn[i], TxBody::StartLease { lease: id }));
        pn[i] += 1;
    }
    node.block();

    let mut timings = Vec::new();
    let mut timed = |path: &str| -> Value {
        let t = Instant::now();
        let v = ok(&node, path);
        let took = t.elapsed();
        timings.push((path.to_string(), took));
        v
    };
    let o = timed("/api/v1/overview");
    assert_eq!(o["jobs"]["opened"], LEASES);
    assert_eq!(o["jobs"]["running"], LEASES);
    timed("/api/v1/series?points=500");
    timed("/api/v1/params");
    timed("/api/v1/providers?sort=price&order=asc&limit=25");
    timed("/api/v1/providers?q=eu&sort=reputation");
    timed(&format!("/api/v1/providers/{}", providers[0].account()));
    timed(&format!(
        "/api/v1/providers/{}/leases?limit=25",
        providers[0].account()
    ));
    timed("/api/v1/leases?order=desc&limit=25");
    let running = timed("/api/v1/leases?order=desc&state=running&limit=25");
    assert_eq!(running["items"][0]["id"], LEASES - 1);
    timed(&format!("/api/v1/leases/{}/evidence", LEASES - 1));
    timed("/api/v1/blocks?limit=25");
    timed(&format!("/api/v1/search?q={}", LEASES / 2));
    timed(&format!(
        "/api/v1/accounts/{}/txs?limit=25",
        requesters[0].account()
    ));
    timed("/");
    for (path, took) in &timings {
        println!("{:>8.1} ms  {path}", took.as_secs_f64() * 1e3);
    }
    for (path, took) in &timings {
        assert!(*took < BOUND, "{path} took {took:?} over {LEASES} leases");
    }

    // Newest first, every lease exactly once.
    let seen = all_ids(&node, "/api/v1/leases?order=desc&limit=500");
    let want: Vec<u64> = (0..LEASES).rev().collect();
    assert_eq!(seen, want);

    // A provider's leases, newest first, every one once.
    let p = providers[1].account();
    let mine = all_ids(&node, &format!("/api/v1/providers/{p}/leases?limit=100"));
    let want: Vec<u64> = (0..LEASES).rev().filter(|id| id % 4 == 1).collect();
    assert_eq!(mine, want);

    // Sorted providers page by offset without repeats.
    let a = ok(&node, "/api/v1/providers?sort=stake&limit=3");
    let cursor = a["next_cursor"].as_str().expect("more").to_string();
    let b = ok(
        &node,
        &format!("/api/v1/providers?sort=stake&limit=3&cursor={cursor}"),
    );
    assert_eq!(a["items"].as_array().expect("a").len(), 3);
    assert_eq!(b["items"].as_array().expect("b").len(), 1);
    assert!(b["next_cursor"].is_null());
    node.stop();
}

#[test]
fn a_cluster_lease_page_shows_members_rounds_losses_and_checks() {
    use orrery_types::cluster::{LossBits, cluster_delta_commitment};
    use orrery_types::codec::BoundedVec;
    use orrery_types::resources::ResourceRequest;
    use orrery_types::tx::LeaseTerms;
    let dir = tempfile::tempdir().expect("tempdir");
    let k = keys(4);
    let node = TestNode::start(config(dir.path()), TestChain::new(&k));
    let c = &node.client;
    register_and_bond(c, &k[..2]);
    node.block();
    // Both publish their cluster contact: the ledger names only providers that run workers.
    for (i, key) in k[..2].iter().enumerate() {
        let mut offer = common::offer();
        let contact = orrery_types::cluster::cluster_endpoint(
            "http://127.0.0.1:7100",
            7300 + i as u16,
            key.public_key(),
        )
        .expect("contact");
        offer.endpoint = orrery_types::codec::Text::new(contact).expect("endpoint");
        c.submit(&sign(key, 2, TxBody::UpdateProvider(offer)))
            .expect("update");
    }
    node.block();
    let members = BoundedVec::new(vec![k[0].account(), k[1].account()]).expect("members");
    let open = TxBody::OpenClusterLease {
        members,
        job: Hash::of(b"cluster job"),
        terms: LeaseTerms {
            resources: ResourceRequest {
                gpus: 1,
                cpu_cores: 2,
                ram_gib: 8,
            },
            prices: common::prices(),
            max_seconds: 3_600,
            max_units: 0,
        },
        rounds: 2,
        inner_steps: 10,
        round_blocks: 20,
        check_bps: 0,
    };
    c.submit(&sign(&k[2], 0, open)).expect("open");
    node.block();
    for (i, key) in k[..2].iter().enumerate() {
        let body = TxBody::CommitClusterRound {
            lease: 0,
            round: 0,
            start: Hash::of(b"weights 0"),
            delta: cluster_delta_commitment(0, 0, &key.account(), &Hash::of(&[i as u8])),
            loss: LossBits::of(2.5 + i as f32),
        };
        c.submit(&sign(key, 3, body)).expect("commit");
    }
    let closed = node.block();
    node.block(); // the draw pays round 0
    let page = ok(&node, "/api/v1/cluster-leases/0");
    assert_eq!(
        page["lease"]["members"].as_array().expect("members").len(),
        2
    );
    assert_eq!(page["lease"]["round"], 1, "round 0 closed, round 1 open");
    let r0 = &page["rounds"][0];
    assert_eq!(r0["closed_at"], closed.block.height);
    assert_eq!(r0["mean_loss"].as_f64(), Some(3.0));
    assert_eq!(r0["commits"][1]["loss"].as_f64(), Some(3.5));
    assert_eq!(r0["commits"][0]["status"], "paid");
    assert_eq!(r0["checked"].as_array().expect("checked").len(), 0);
    for m in page["lease"]["members"].as_array().expect("members") {
        assert_eq!(m["rounds_paid"], 1);
    }
    // The index counts what the cluster lease burned (its fees' burned share) like the ledger.
    let o = ok(&node, "/api/v1/overview");
    let burned: Amount = o["supply"]["burned"]
        .as_str()
        .expect("burned")
        .parse()
        .expect("amount");
    assert!(!burned.is_zero(), "the round's pay burned part of its fee");
    let s = ok(&node, "/api/v1/series?points=2");
    let last_burned = s["burned"][1].as_f64().expect("burned");
    assert!((last_burned - orr(burned)).abs() < 1e-9, "{last_burned}");
    // A missing id is a clear 404.
    let (status, body) = get(&node, "/api/v1/cluster-leases/7");
    assert_eq!(status, 404);
    assert_eq!(body["code"], "cluster_lease_not_found", "{body}");

    // One round alone, as a worker's agent polls it (typed through the SDK): round 0 closed
    // with both commits, round 1 open and empty, round 2 not opened (the lease has 2 rounds).
    let r0 = c
        .cluster_round(0, 0)
        .expect("round 0")
        .expect("round 0 exists");
    assert_eq!(r0.closed_at, Some(closed.block.height));
    assert_eq!(r0.commits.len(), 2);
    assert_eq!(r0.commits[0].worker, k[0].account());
    assert_eq!(
        r0.commits[1].delta,
        cluster_delta_commitment(0, 0, &k[1].account(), &Hash::of(&[1]))
    );
    let r1 = c
        .cluster_round(0, 1)
        .expect("round 1")
        .expect("the open round");
    assert_eq!((r1.closed_at, r1.commits.len()), (None, 0));
    assert!(c.cluster_round(0, 2).expect("round 2").is_none());
    let (status, body) = get(&node, "/api/v1/cluster-leases/0/rounds/2");
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("cluster_round_not_found"))
    );
    let (status, body) = get(&node, "/api/v1/cluster-leases/0/rounds/x");
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_number")));

    // The cluster leases naming a member, as agents list them; a non-member sees none.
    let mine = c
        .member_cluster_leases(&k[1].account(), true, None)
        .expect("list");
    assert_eq!(mine.items.len(), 1);
    assert_eq!(mine.items[0].id, 0);
    assert_eq!(mine.items[0].members.len(), 2);
    assert_eq!(mine.items[0].round, 1);
    assert_eq!(mine.items[0].members[1].status, "live");
    let none = c
        .member_cluster_leases(&k[3].account(), false, None)
        .expect("list");
    assert!(none.items.is_empty());
    let finished = ok(&node, "/api/v1/cluster-leases?phase=finished");
    assert_eq!(finished["items"].as_array().map(Vec::len), Some(0));
    let (status, body) = get(&node, "/api/v1/cluster-leases?phase=sleeping");
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_query")));
}
