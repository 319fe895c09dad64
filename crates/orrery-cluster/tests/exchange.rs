//! Workers on real loopback sockets, over commonware's authenticated p2p: the cluster's
//! weights equal the in-process reference bit for bit, a worker killed mid-run is left out and
//! the others go on, and a peer's bad messages are refused and reported.

use commonware_cryptography::Signer as _;
use commonware_cryptography::ed25519::{PrivateKey, PublicKey};
use commonware_p2p::authenticated::lookup;
use commonware_p2p::{Address, AddressableManager as _, Recipients, Sender as _};
use commonware_runtime::{Clock, Metrics, Quota, Runner as _, Spawner, Supervisor as _};
use commonware_stream::cups::{self, Cups};
use commonware_stream::sake::{self, Sake};
use commonware_utils::ordered::Map;
use commonware_utils::{NZU32, NZUsize};
use orrery_cluster::{
    CHANNEL_DELTAS, CLUSTER_NAMESPACE, DeltaMessage, Kind, LocalOracle, WorkerReport,
    max_message_bytes, run_worker,
};
use orrery_ml::cluster::ClusterJob;
use std::net::SocketAddr;
use std::time::Duration;

mod common;
use common::{config, job, members, reference};

#[test]
fn workers_over_p2p_end_bitwise_equal_to_the_reference_and_send_their_deltas_only() {
    let job = job(3, 3);
    let all = members(3, 0);
    let oracle = LocalOracle::new(3, Duration::from_secs(20), Duration::from_secs(20));
    let reports: Vec<WorkerReport> =
        commonware_runtime::tokio::Runner::default().start(|context| {
            let (job, all, oracle) = (job.clone(), all.clone(), oracle.clone());
            async move {
                let handles: Vec<_> = (0..3)
                    .map(|i| {
                        let (job, cfg, oracle) = (
                            job.clone(),
                            config(&all, i, Duration::from_secs(20)),
                            oracle.clone(),
                        );
                        context.child("worker").spawn(move |ctx| async move {
                            run_worker(ctx, cfg, job, oracle).await
                        })
                    })
                    .collect();
                let mut out = Vec::new();
                for h in handles {
                    out.push(h.await.unwrap().unwrap());
                }
                out
            }
        });
    let want = reference(&job, None);
    for rep in &reports {
        for r in &rep.rounds {
            eprintln!(
                "round {} applied {:?} sent {} received {}",
                r.round, r.applied, r.bytes_sent, r.bytes_received
            );
        }
    }
    for (i, rep) in reports.iter().enumerate() {
        assert_eq!(rep.final_state.hash(), want.hash(), "worker {i}");
        assert!(rep.refused.is_empty(), "{:?}", rep.refused);
        for r in &rep.rounds {
            assert_eq!(r.applied, vec![0, 1, 2]);
        }
    }
    // After every round, every worker holds the same weights hash.
    for r in 0..3 {
        let h: Vec<_> = reports.iter().map(|rep| rep.rounds[r].state_hash).collect();
        assert!(h.windows(2).all(|p| p[0] == p[1]), "round {r}: {h:?}");
    }
    // What each worker sent is its int8 deltas to two peers, and nothing else.
    let template = job.spec().job.model.template();
    let delta_bytes = (max_message_bytes(&template) - 13 - 25) / 4; // ≈ one int8 delta
    for rep in &reports {
        let per_round = rep.bytes_sent() as f64 / 3.0;
        assert!(per_round >= 2.0 * delta_bytes as f64 * 0.9, "{per_round}");
        assert!(
            per_round <= 2.0 * (delta_bytes as f64 + 2048.0) * 1.5,
            "{per_round}"
        );
    }
}

#[test]
fn a_worker_killed_mid_run_is_left_out_and_the_others_go_on() {
    let job = job(3, 4);
    let all = members(3, 1);
    // Deadlines well above a round's compute even on a loaded 2-core machine (at 3 s, worker 2
    // once missed round 0 while the whole suite ran): only its death may leave it out.
    let deadline = Duration::from_secs(10);
    let oracle = LocalOracle::new(3, deadline, deadline);
    let o2 = oracle.clone();
    let reports: Vec<WorkerReport> =
        commonware_runtime::tokio::Runner::default().start(|context| {
            let (job, all) = (job.clone(), all.clone());
            async move {
                let mut handles: Vec<_> = (0..3)
                    .map(|i| {
                        let (job, cfg, oracle) =
                            (job.clone(), config(&all, i, deadline), o2.clone());
                        context.child("worker").spawn(move |ctx| async move {
                            run_worker(ctx, cfg, job, oracle).await
                        })
                    })
                    .collect();
                // Kill worker 2 once round 1 has settled: it never commits round 2.
                while o2.settled(1).is_none() {
                    context.sleep(Duration::from_millis(5)).await;
                }
                handles.pop().unwrap().abort();
                let mut out = Vec::new();
                for h in handles {
                    out.push(h.await.unwrap().unwrap());
                }
                out
            }
        });
    // Worker 2 is in every round up to its death (it may have committed the round after the
    // one the test waited for) and in none after.
    let dead_from = (0..4u64)
        .find(|&r| !oracle.settled(r).unwrap().contains_key(&2))
        .expect("worker 2 is left out once dead");
    assert!(dead_from >= 2, "alive through round 1");
    for rep in &reports {
        for r in &rep.rounds {
            let want: Vec<u32> = if r.round < dead_from {
                vec![0, 1, 2]
            } else {
                vec![0, 1]
            };
            assert_eq!(r.applied, want, "round {}", r.round);
        }
    }
    assert_eq!(reports[0].final_state.hash(), reports[1].final_state.hash());
    assert_eq!(
        reports[0].final_state.hash(),
        reference(&job, Some((2, dead_from))).hash(),
        "the rounds without worker 2 are the reference rounds without its delta"
    );
    assert_eq!(oracle.settled(3).unwrap().len(), 2);
}

#[test]
fn a_peers_bad_deltas_are_refused_and_reported() {
    let job = job(3, 2);
    let all = members(3, 2);
    let oracle = LocalOracle::new(3, Duration::from_secs(3), Duration::from_secs(3));
    let reports: Vec<WorkerReport> =
        commonware_runtime::tokio::Runner::default().start(|context| {
            let (job, all) = (job.clone(), all.clone());
            async move {
                let handles: Vec<_> = (0..2)
                    .map(|i| {
                        let (job, cfg, oracle) = (
                            job.clone(),
                            config(&all, i, Duration::from_secs(3)),
                            oracle.clone(),
                        );
                        context.child("worker").spawn(move |ctx| async move {
                            run_worker(ctx, cfg, job, oracle).await
                        })
                    })
                    .collect();
                // Worker 2 is a mock peer: it sends a truncated delta in its own name, then a
                // delta in worker 0's name, and never commits.
                let peers: Vec<PublicKey> = all.iter().map(|(k, _)| k.public_key()).collect();
                let bad = context.child("byzantine").spawn({
                    let (all, job) = (all.clone(), job.clone());
                    move |ctx| async move { byzantine(ctx, &all, &job, peers).await }
                });
                let mut out = Vec::new();
                for h in handles {
                    out.push(h.await.unwrap().unwrap());
                }
                bad.abort();
                out
            }
        });
    // Every message from the mock that reached an honest worker was refused, and reported
    // with the mock's index. (Which worker a given copy reaches depends on connection timing:
    // a message sent while a connection is being replaced can be lost.)
    let why: Vec<&str> = reports
        .iter()
        .flat_map(|rep| rep.refused.iter())
        .filter(|(_, p, _)| *p == 2)
        .map(|(_, _, w)| w.as_str())
        .collect();
    assert!(why.iter().any(|w| w.contains("truncated")), "{why:?}");
    assert!(
        why.iter().any(|w| w.contains("in worker 0's name")),
        "{why:?}"
    );
    assert!(
        reports
            .iter()
            .flat_map(|rep| rep.refused.iter())
            .all(|(_, p, _)| *p == 2),
        "only the mock is reported"
    );
    for rep in &reports {
        assert!(rep.rounds.iter().all(|r| r.applied == vec![0, 1]));
    }
    assert_eq!(reports[0].final_state.hash(), reports[1].final_state.hash());
}

async fn byzantine<E>(
    context: E,
    all: &[(PrivateKey, SocketAddr)],
    job: &ClusterJob,
    peers: Vec<PublicKey>,
) where
    E: Spawner
        + Metrics
        + Clock
        + commonware_runtime::Network
        + commonware_runtime::Resolver
        + rand_core::CryptoRng,
{
    let template = job.spec().job.model.template();
    let mut p2p = lookup::Config::recommended(
        Cups::<_, commonware_cryptography::ChaCha20Poly1305>::new(
            Sake {
                signer: all[2].0.clone(),
                synchrony_bound: Duration::from_secs(5),
                max_handshake_age: Duration::from_secs(10),
                version: sake::Version::V1,
            },
            cups::Version::V1,
        ),
        CLUSTER_NAMESPACE,
        all[2].1,
        NZUsize!(3),
        max_message_bytes(&template) as u32,
        NZUsize!(64),
    );
    p2p.allow_private_ips = true;
    p2p.allowed_handshake_rate_per_ip = Quota::per_second(NZU32!(16));
    p2p.dial_frequency = Duration::from_millis(200);
    p2p.peer_connection_cooldown = Duration::from_secs(1);
    let (mut network, mut book) = lookup::Network::new(context.child("p2p"), p2p);
    let map: Map<_, Address> = all
        .iter()
        .map(|(k, a)| (k.public_key(), Address::from(*a)))
        .collect::<Vec<_>>()
        .try_into()
        .unwrap();
    let _ = book.track(0, map);
    let (mut sender, _receiver) = network.register(CHANNEL_DELTAS, Quota::per_second(NZU32!(100)));
    let _net = network.start();
    let honest = job
        .worker_round(0, 0, &job.initial().weights, &job.worker_initial())
        .unwrap();
    let own = job
        .worker_round(0, 2, &job.initial().weights, &job.worker_initial())
        .unwrap();
    let truncated = DeltaMessage {
        round: 0,
        worker: 2,
        kind: Kind::Delta,
        delta: own.delta.bytes()[..40].to_vec(),
    }
    .encode();
    let impersonating = DeltaMessage {
        round: 0,
        worker: 0,
        kind: Kind::Delta,
        delta: honest.delta.bytes().to_vec(),
    }
    .encode();
    let targets = vec![peers[0].clone(), peers[1].clone()];
    // A message sent while a connection is being replaced can be lost: keep sending
    // (bounded), as a real attacker would.
    for _ in 0..100 {
        for msg in [&truncated, &impersonating] {
            sender.send(Recipients::Some(targets.clone()), msg.clone(), false);
        }
        context.sleep(Duration::from_millis(100)).await;
    }
    context.sleep(Duration::from_secs(60)).await;
}
