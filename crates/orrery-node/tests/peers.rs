//! Blobs across nodes (`orrery_node::peers`): a blob held by one node is served by another,
//! checked against its hash; an upload is pushed to its home peers so that bounded asks find
//! it; lying, endless, oversized and silent peers are survived; a missing blob is a 404 in
//! bounded time, with no node asking on a peer's behalf.

mod common;

use common::{TestChain, TestNode, config, keys};
use orrery_client::api::ErrorBody;
use orrery_node::metrics::{OutcomeLabels, RequestLabels};
use orrery_node::peers::{PEER_HEADER, rank};
use orrery_node::{NodeConfig, RunningNode};
use orrery_types::hash::Hash;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A free loopback port for a node whose URL other nodes must list before it starts.
fn reserve_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

fn url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

fn node_config(dir: &Path, listen: SocketAddr, peers: &[String]) -> NodeConfig {
    let mut c = config(dir);
    c.api_listen = listen;
    c.peers.urls = peers.to_vec();
    c
}

fn start(dir: &Path, listen: SocketAddr, peers: &[String]) -> TestNode {
    TestNode::start(node_config(dir, listen, peers), TestChain::new(&keys(1)))
}

fn running(node: &TestNode) -> &RunningNode {
    node.node.as_ref().expect("running")
}

fn fetches(node: &TestNode, outcome: &str) -> u64 {
    running(node)
        .metrics()
        .blob_fetches
        .get_or_create(&OutcomeLabels {
            outcome: outcome.into(),
        })
        .get()
}

fn all_fetches(node: &TestNode) -> u64 {
    ["found", "not_found", "error", "remembered_miss", "busy"]
        .iter()
        .map(|o| fetches(node, o))
        .sum()
}

/// Blob requests the node answered with `status`.
fn blob_requests(node: &TestNode, method: &str, status: u16) -> u64 {
    running(node)
        .metrics()
        .requests
        .get_or_create(&RequestLabels {
            route: "/api/v1/blobs/{hash}".into(),
            method: method.into(),
            status,
        })
        .get()
}

/// A raw GET of a blob: status, and the error body if any.
fn raw_get(base: &str, hash: &Hash) -> (u16, Option<ErrorBody>) {
    let mut resp = ureq::get(format!("{base}/api/v1/blobs/{hash}"))
        .config()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(15)))
        .build()
        .call()
        .expect("an answer before the client's timeout");
    let status = resp.status().as_u16();
    let body = (status != 200).then(|| resp.body_mut().read_json().expect("JSON error"));
    (status, body)
}

fn stored_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for d in std::fs::read_dir(dir.join("blobs"))
        .expect("blobs dir")
        .flatten()
    {
        for f in std::fs::read_dir(d.path()).expect("subdir").flatten() {
            out.push(f.path().display().to_string());
        }
    }
    out
}

#[test]
fn a_blob_on_one_node_is_served_by_another_by_get_and_head() {
    let (da, db) = (
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    );
    let a = start(da.path(), reserve_port(), &[]);
    let b = start(db.path(), reserve_port(), std::slice::from_ref(&a.base));

    let bundle = b"a job bundle uploaded to node A only".repeat(100);
    let output = b"a job output, also on A only".to_vec();
    let stored = a.client.put_blob(&bundle).expect("upload to A");
    assert_eq!(stored.replicas, 0, "A lists no peers");
    a.client.put_blob(&output).expect("upload to A");
    let (bundle_hash, output_hash) = (Hash::of(&bundle), Hash::of(&output));

    // HEAD on B: fetched from A, then answered with the size.
    let head = ureq::head(format!("{}/api/v1/blobs/{bundle_hash}", b.base))
        .call()
        .expect("HEAD");
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok()),
        Some(bundle.len().to_string().as_str())
    );
    // GET on B of the other blob: fetched, and the client checks the hash.
    assert_eq!(
        b.client.get_blob(&output_hash).expect("GET").as_deref(),
        Some(&output[..])
    );
    assert_eq!(fetches(&b, "found"), 2);

    // Both are stored on B now: served with A gone, and B's peer requests are local-only.
    a.stop();
    assert_eq!(
        b.client.get_blob(&bundle_hash).expect("GET").as_deref(),
        Some(&bundle[..])
    );
    assert!(b.client.has_blob(&output_hash).expect("HEAD"));
    assert_eq!(fetches(&b, "found"), 2, "no second fetch");
    let peer_head = ureq::head(format!("{}/api/v1/blobs/{}", b.base, Hash::of(b"x")))
        .header(PEER_HEADER, "1")
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .expect("HEAD");
    assert_eq!(peer_head.status(), 404);
    assert_eq!(all_fetches(&b), 2, "a peer's request is answered locally");
    b.stop();
}

/// Five nodes, each listing the four others, asking one peer and pushing to one home: an
/// upload to any node is found from every other node with a single ask.
#[test]
fn an_upload_is_pushed_to_its_home_so_one_ask_finds_it_anywhere() {
    let addrs: Vec<SocketAddr> = (0..5).map(|_| reserve_port()).collect();
    let dirs: Vec<_> = (0..5).map(|_| tempfile::tempdir().expect("dir")).collect();
    let nodes: Vec<TestNode> = (0..5)
        .map(|i| {
            let peers: Vec<String> = (0..5).filter(|j| *j != i).map(|j| url(addrs[j])).collect();
            let mut c = node_config(dirs[i].path(), addrs[i], &peers);
            c.peers.ask = 1;
            c.peers.replicas = 1;
            TestNode::start(c, TestChain::new(&keys(1)))
        })
        .collect();
    for (n, uploader) in [0usize, 3].into_iter().enumerate() {
        let blob = format!("bundle {n} uploaded to node {uploader}").into_bytes();
        let stored = nodes[uploader].client.put_blob(&blob).expect("upload");
        assert_eq!(stored.replicas, 1, "pushed to its home");
        for (i, node) in nodes.iter().enumerate() {
            assert_eq!(
                node.client
                    .get_blob(&Hash::of(&blob))
                    .expect("GET")
                    .as_deref(),
                Some(&blob[..]),
                "node {i}"
            );
        }
    }
    for node in &nodes {
        assert_eq!(fetches(node, "not_found"), 0);
        // Every peer request was one GET or one push (HEAD + PUT) on the asked/pushed node.
        assert_eq!(blob_requests(node, "GET", 404), 0, "asked only holders");
    }
    for node in nodes {
        node.stop();
    }
}

/// A stand-in peer that misbehaves on every blob request, counting them.
struct BadPeer {
    rt: tokio::runtime::Runtime,
    url: String,
    hits: Arc<AtomicU64>,
}

#[derive(Clone)]
enum Misbehaviour {
    /// 200 with these bytes, whatever was asked.
    WrongBytes(Vec<u8>),
    /// 200 with a body that never ends (no Content-Length).
    Endless,
    /// Accept the request and never answer.
    Silent,
}

impl BadPeer {
    fn start(how: Misbehaviour) -> BadPeer {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let hits = Arc::new(AtomicU64::new(0));
        let counter = hits.clone();
        let app = axum::Router::new().route(
            "/api/v1/blobs/{hash}",
            axum::routing::get(move || {
                let how = how.clone();
                counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    use axum::response::IntoResponse as _;
                    match how {
                        Misbehaviour::WrongBytes(b) => b.into_response(),
                        Misbehaviour::Endless => {
                            let chunk = bytes::Bytes::from(vec![7u8; 4096]);
                            let s = futures::stream::repeat_with(move || {
                                Ok::<_, std::io::Error>(chunk.clone())
                            });
                            axum::body::Body::from_stream(s).into_response()
                        }
                        Misbehaviour::Silent => {
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                            ().into_response()
                        }
                    }
                }
            }),
        );
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        rt.spawn(async move { axum::serve(listener, app).await });
        BadPeer { rt, url, hits }
    }

    fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for BadPeer {
    fn drop(&mut self) {
        // The silent handler never returns: do not wait for it.
        let rt = std::mem::replace(
            &mut self.rt,
            tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("rt"),
        );
        rt.shutdown_background();
    }
}

#[test]
fn a_peer_serving_wrong_bytes_is_skipped_and_the_next_one_asked() {
    let liar = BadPeer::start(Misbehaviour::WrongBytes(b"not what you asked for".to_vec()));
    let (da, db) = (
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    );
    let a = start(da.path(), reserve_port(), &[]);
    let peers = vec![liar.url.clone(), a.base.clone()];
    let b = start(db.path(), reserve_port(), &peers);
    // A blob for which B asks the liar first.
    let blob = (0u32..)
        .map(|n| format!("bundle #{n}").into_bytes())
        .find(|b| rank(&Hash::of(b), &peers)[0] == liar.url)
        .expect("some blob ranks the liar first");
    a.client.put_blob(&blob).expect("upload to A");

    assert_eq!(
        b.client.get_blob(&Hash::of(&blob)).expect("GET").as_deref(),
        Some(&blob[..])
    );
    assert_eq!(liar.hits(), 1, "the liar was asked first");
    let metrics = running(&b).metrics();
    assert_eq!(metrics.blob_peer_bad_bytes.get(), 1);
    assert_eq!(fetches(&b, "found"), 1);
    // What B stored under the hash is the blob, not the liar's bytes.
    let files = stored_files(db.path());
    let on_disk: Vec<Vec<u8>> = files
        .iter()
        .filter(|f| f.ends_with(&Hash::of(&blob).to_hex()))
        .map(|f| std::fs::read(f).expect("read"))
        .collect();
    assert_eq!(on_disk, vec![blob.clone()]);
    b.stop();
    a.stop();
}

#[test]
fn a_missing_blob_is_404_in_bounded_time_and_no_node_asks_for_a_peer() {
    // Three nodes, each listing the other two: the shape in which a careless design loops.
    let addrs: Vec<SocketAddr> = (0..3).map(|_| reserve_port()).collect();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
    let nodes: Vec<TestNode> = (0..3)
        .map(|i| {
            let peers: Vec<String> = (0..3).filter(|j| *j != i).map(|j| url(addrs[j])).collect();
            let mut c = node_config(dirs[i].path(), addrs[i], &peers);
            c.peers.miss_ttl_secs = 3600;
            TestNode::start(c, TestChain::new(&keys(1)))
        })
        .collect();
    let nobody = Hash::of(b"a blob nobody ever uploaded");
    let (status, body) = raw_get(&nodes[0].base, &nobody);
    assert_eq!(status, 404);
    let body = body.expect("error body");
    assert_eq!(body.code, "blob_not_found");
    assert!(body.error.contains("does not have it"), "{}", body.error);
    assert_eq!(fetches(&nodes[0], "not_found"), 1);
    for peer in &nodes[1..] {
        assert_eq!(blob_requests(peer, "GET", 404), 1, "asked once");
        assert_eq!(all_fetches(peer), 0, "and did not ask its own peers");
    }
    // Asked again: answered from the remembered miss, the peers are not asked again.
    assert!(nodes[0].client.get_blob(&nobody).expect("GET").is_none());
    assert!(!nodes[0].client.has_blob(&nobody).expect("HEAD"));
    assert_eq!(fetches(&nodes[0], "remembered_miss"), 2);
    for peer in &nodes[1..] {
        assert_eq!(blob_requests(peer, "GET", 404), 1);
    }
    for node in nodes {
        node.stop();
    }

    // A peer that never answers costs one per-peer timeout, and the fetch ends by its
    // deadline: the client gets its 404 (ureq would error after 15 s otherwise).
    let silent = BadPeer::start(Misbehaviour::Silent);
    let dir = tempfile::tempdir().expect("dir");
    let mut c = node_config(
        dir.path(),
        reserve_port(),
        std::slice::from_ref(&silent.url),
    );
    c.peers.peer_timeout_secs = 1;
    c.peers.fetch_deadline_secs = 2;
    let node = TestNode::start(c, TestChain::new(&keys(1)));
    let (status, body) = raw_get(&node.base, &nobody);
    assert_eq!(status, 404);
    let body = body.expect("error body");
    assert!(body.error.contains("no answer within"), "{}", body.error);
    assert_eq!(silent.hits(), 1);
    node.stop();
}

#[test]
fn concurrent_requests_share_one_fetch_and_fetches_are_capped() {
    let silent = BadPeer::start(Misbehaviour::Silent);
    let dir = tempfile::tempdir().expect("dir");
    let mut c = node_config(
        dir.path(),
        reserve_port(),
        std::slice::from_ref(&silent.url),
    );
    c.peers.peer_timeout_secs = 3;
    c.peers.fetch_deadline_secs = 4;
    c.peers.max_concurrent_fetches = 1;
    let node = TestNode::start(c, TestChain::new(&keys(1)));
    let waiting = Hash::of(b"asked three times at once");
    let base = node.base.clone();
    let askers: Vec<_> = (0..3)
        .map(|_| {
            let base = base.clone();
            std::thread::spawn(move || raw_get(&base, &waiting).0)
        })
        .collect();
    // Once the one fetch is under way, a fetch of another blob finds no free slot.
    let start = std::time::Instant::now();
    while silent.hits() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no fetch started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let (status, body) = raw_get(&base, &Hash::of(b"another blob"));
    assert_eq!(status, 503);
    assert_eq!(body.expect("error body").code, "overloaded");
    for a in askers {
        assert_eq!(a.join().expect("asker"), 404);
    }
    assert_eq!(silent.hits(), 1, "three requests, one fetch");
    assert_eq!(fetches(&node, "not_found"), 1);
    assert_eq!(fetches(&node, "busy"), 1);
    node.stop();
}

#[test]
fn a_blob_over_the_node_limit_is_never_stored_from_a_peer() {
    // A holds a 2 KiB blob within its own limit; B's limit is 1 KiB.
    let (da, db) = (
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    );
    let a = start(da.path(), reserve_port(), &[]);
    let big = vec![42u8; 2048];
    a.client.put_blob(&big).expect("upload to A");
    let endless = BadPeer::start(Misbehaviour::Endless);
    let mut c = node_config(
        db.path(),
        reserve_port(),
        &[a.base.clone(), endless.url.clone()],
    );
    c.blobs.max_blob_bytes = 1024;
    c.peers.ask = 2;
    let b = TestNode::start(c, TestChain::new(&keys(1)));

    // A declares the size: skipped before reading. The endless peer declares nothing: cut
    // off at the limit while streaming.
    let (status, body) = raw_get(&b.base, &Hash::of(&big));
    assert_eq!(status, 404);
    let error = body.expect("error body").error;
    assert!(
        error.contains(&format!(
            "{} offered 2048 bytes, over this node's limit of 1024",
            a.base
        )),
        "{error}"
    );
    assert!(
        error.contains(&format!(
            "{} sent more than this node's limit of 1024 bytes",
            endless.url
        )),
        "{error}"
    );
    assert_eq!(endless.hits(), 1);
    assert!(
        stored_files(db.path()).is_empty(),
        "nothing stored, no temp file left"
    );
    b.stop();
    a.stop();
}
