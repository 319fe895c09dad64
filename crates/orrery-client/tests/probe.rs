//! RTT probes against local servers with injected delays, and what the router makes of them.

use orrery_client::probe::RttProbe;
use orrery_ledger::Params;
use orrery_ledger::entries::Reputation;
use orrery_market::{Offer, OfferIndex, Requirements, RouterWeights};
use orrery_types::resources::{Hardware, PriceList, ResourceRequest};
use orrery_types::{AccountId, Amount};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

/// An HTTP server on loopback that answers every request with an empty 200 after `delay`.
fn server(delay: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                std::thread::sleep(delay);
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            });
        }
    });
    format!("http://{addr}")
}

/// A loopback address nothing listens on: bound, then released.
fn closed() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}

fn offer(n: u8) -> Offer {
    let mut id = [0u8; orrery_types::crypto::ACCOUNT_ID_LEN];
    id[0] = n;
    let hardware = Hardware {
        gpu: None,
        cpu_cores: 2,
        ram_gib: 4,
    };
    Offer {
        provider: AccountId(id),
        stake: Params::default().min_stake(&hardware).unwrap(),
        hardware,
        region: "local".into(),
        prices: PriceList {
            cpu_core_hour: Amount::orr(1),
            ..PriceList::default()
        },
        reputation: Reputation::default(),
        benchmark: None,
        last_seen_ms: None,
        latency_ms: None,
        online: true,
        uptime_bps: None,
        proven_score_bps: None,
    }
}

#[test]
fn unreachable_is_the_worst_latency_and_near_ranks_before_far() {
    let near = server(Duration::ZERO);
    let far = server(Duration::from_millis(150));
    let gone = closed();
    let mut probe = RttProbe::new(Duration::from_millis(400), 4, Duration::from_secs(60));
    let rtt = probe.measure([near.as_str(), far.as_str(), gone.as_str(), "not a url"]);
    assert_eq!(rtt.len(), 4, "{rtt:?}");
    assert!(rtt[&near] < 100, "{rtt:?}");
    assert!(rtt[&far] >= 150 && rtt[&far] < 400, "{rtt:?}");
    assert_eq!(rtt[&gone], probe.unreachable_ms());
    assert_eq!(rtt["not a url"], probe.unreachable_ms());

    // Equal prices and records: the router orders them by the measured round trip.
    let endpoints = [&gone, &far, &near];
    let offers = endpoints.iter().enumerate().map(|(i, e)| Offer {
        latency_ms: Some(rtt[e.as_str()]),
        ..offer(i as u8 + 1)
    });
    let index = OfferIndex::from_offers(offers).unwrap();
    let req = Requirements {
        resources: ResourceRequest {
            gpus: 0,
            cpu_cores: 1,
            ram_gib: 1,
        },
        ..Requirements::default()
    };
    let ranked = index
        .rank(&req, &RouterWeights::default(), &Params::default())
        .unwrap()
        .ranked;
    let order: Vec<u8> = ranked.iter().map(|r| r.offer.provider.0[0]).collect();
    assert_eq!(order, vec![3, 2, 1], "near, far, unreachable");
}

#[test]
fn measurements_are_cached_until_they_age() {
    let slow = server(Duration::from_millis(120));
    let mut probe = RttProbe::new(Duration::from_millis(400), 2, Duration::from_secs(60));
    let first = probe.measure([slow.as_str()])[&slow];
    let t = std::time::Instant::now();
    let again = probe.measure([slow.as_str()])[&slow];
    assert_eq!(first, again);
    assert!(
        t.elapsed() < Duration::from_millis(100),
        "the cache was not used"
    );

    let mut fresh = RttProbe::new(Duration::from_millis(400), 2, Duration::ZERO);
    fresh.measure([slow.as_str()]);
    std::thread::sleep(Duration::from_millis(5));
    let t = std::time::Instant::now();
    fresh.measure([slow.as_str()]);
    assert!(
        t.elapsed() >= Duration::from_millis(120),
        "an aged entry was not probed again"
    );
}
