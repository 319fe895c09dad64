use super::*;

fn urls(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("http://10.0.{}.{}:7420", i / 250, i % 250))
        .collect()
}

#[test]
fn peer_urls_are_canonical_plain_http_base_urls() {
    assert_eq!(
        parse_peer_url("http://127.0.0.1:7421/").as_deref(),
        Ok("http://127.0.0.1:7421")
    );
    assert_eq!(
        parse_peer_url(" HTTP://Node-3.example:80 ").as_deref(),
        Ok("http://node-3.example")
    );
    assert_eq!(
        parse_peer_url("http://10.0.0.1:7420/orrery/").as_deref(),
        Ok("http://10.0.0.1:7420/orrery")
    );
    for bad in [
        "127.0.0.1:7420",
        "https://10.0.0.1",
        "http://10.0.0.1/?x=1",
        "http://user@10.0.0.1",
        "not a url",
    ] {
        let err = parse_peer_url(bad).expect_err(bad);
        assert!(err.contains("peers.urls"), "{err}");
    }
}

#[test]
fn ranking_is_a_permutation_that_depends_on_the_hash() {
    let peers = urls(10);
    let a = rank(&Hash::of(b"a"), &peers);
    let b = rank(&Hash::of(b"b"), &peers);
    let mut sorted: Vec<&str> = a.clone();
    sorted.sort_unstable();
    let mut all: Vec<&str> = peers.iter().map(String::as_str).collect();
    all.sort_unstable();
    assert_eq!(sorted, all);
    assert_ne!(a, b, "two hashes order ten peers alike (odds 1 in 10!)");
    assert_eq!(a, rank(&Hash::of(b"a"), &peers), "deterministic");
}

/// The property the placement relies on: a node's list is the network without itself, and
/// ranking that list gives the network's ranking without that node, in the same order. So an
/// uploader's homes and a fetcher's first asks overlap whichever two of a hundred nodes they
/// are.
#[test]
fn every_node_agrees_on_where_a_blob_lives() {
    let network = urls(100);
    let (replicas, ask) = (2, 3);
    for blob in 0..200u32 {
        let hash = Hash::of(&blob.to_be_bytes());
        let global = rank(&hash, &network);
        let without = |me: usize| -> Vec<String> {
            let mut l = network.clone();
            l.remove(me);
            l
        };
        for me in [0, 17, 42, 99] {
            let mine = without(me);
            let expected: Vec<&str> = global
                .iter()
                .copied()
                .filter(|u| *u != network[me])
                .collect();
            assert_eq!(rank(&hash, &mine), expected);
        }
        // An upload to node u, a fetch from node f: f's first `ask` peers include u or one of
        // the homes u pushed to (or f is a home and holds the blob already).
        for (u, f) in [(0, 1), (5, 77), (99, 3), (50, 51)] {
            let upload_list = without(u);
            let pushed: Vec<&str> = rank(&hash, &upload_list)
                .into_iter()
                .take(replicas)
                .collect();
            let holders: Vec<&str> = pushed
                .iter()
                .copied()
                .chain([network[u].as_str()])
                .collect();
            let fetch_list = without(f);
            let asked: Vec<&str> = rank(&hash, &fetch_list).into_iter().take(ask).collect();
            assert!(
                holders.contains(&network[f].as_str()) || asked.iter().any(|p| holders.contains(p)),
                "blob {blob}: uploaded to {u}, fetched by {f}"
            );
        }
    }
}

#[test]
fn misses_expire_and_stay_bounded() {
    let t0 = Instant::now();
    let ttl = Duration::from_secs(5);
    let mut m = Misses::new(ttl);
    let h = Hash::of(b"nobody has this");
    assert!(!m.contains(&h, t0));
    m.insert(h, t0);
    assert!(m.contains(&h, t0 + Duration::from_secs(4)));
    assert!(!m.contains(&h, t0 + ttl));

    // A flood of distinct hashes keeps the table at its bound, oldest out first.
    for i in 0..(MAX_REMEMBERED_MISSES as u64 + 10) {
        m.insert(Hash::of(&i.to_be_bytes()), t0 + Duration::from_millis(1));
    }
    assert_eq!(m.order.len(), MAX_REMEMBERED_MISSES);
    assert!(m.at.len() <= MAX_REMEMBERED_MISSES);
    assert!(!m.contains(&h, t0 + Duration::from_millis(1)), "evicted");
    assert!(!m.contains(
        &Hash::of(&0u64.to_be_bytes()),
        t0 + Duration::from_millis(1)
    ));
    let last = Hash::of(&(MAX_REMEMBERED_MISSES as u64 + 9).to_be_bytes());
    assert!(m.contains(&last, t0 + Duration::from_millis(1)));

    // Re-inserting a hash refreshes it; its stale older entry does not evict the new one.
    let mut m = Misses::new(ttl);
    m.insert(h, t0);
    m.insert(h, t0 + Duration::from_secs(4));
    m.insert(Hash::of(b"other"), t0 + Duration::from_secs(6));
    assert!(m.contains(&h, t0 + Duration::from_secs(8)));
    assert!(!m.contains(&h, t0 + Duration::from_secs(9)));
}
