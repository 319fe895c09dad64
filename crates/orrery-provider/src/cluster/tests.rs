use super::*;
use orrery_client::api::{ClusterCommitView, ClusterMemberView};
use orrery_types::amount::Amount;

fn spec(workers: u32, rounds: u32) -> String {
    orrery_ml::cluster::example_spec(workers, 2, rounds, "int8")
}

fn lease(members: &[AccountId], rounds: u32, inner_steps: u32) -> ClusterLeaseView {
    ClusterLeaseView {
        id: 7,
        requester: AccountId([9; 20]),
        job: Hash::ZERO,
        terms: serde_json::from_value(serde_json::json!({
            "resources": {"gpus": 0, "cpu_cores": 1, "ram_gib": 1},
            "prices": {"gpu_hour": "0 ORR", "cpu_core_hour": "1 ORR", "ram_gib_hour": "0 ORR", "mega_unit": "0 ORR"},
            "max_seconds": 60, "max_units": 0
        }))
        .unwrap(),
        rounds,
        inner_steps,
        round_blocks: 50,
        members: members
            .iter()
            .map(|m| ClusterMemberView {
                provider: *m,
                status: "live".into(),
                rounds_paid: 0,
                paid: Amount::ZERO,
                docked: Amount::ZERO,
            })
            .collect(),
        round: 0,
        round_deadline: 50,
        phase: "running".into(),
        refunded: Amount::ZERO,
    }
}

#[test]
fn a_cluster_bundle_carries_its_spec_and_must_match_the_lease() {
    let b = cluster_bundle("lm", &spec(3, 4)).unwrap();
    let back = cluster_spec(&Bundle::decode(b.bytes()).unwrap()).unwrap();
    assert_eq!(back.cluster.workers, 3);
    assert_eq!(back.cluster.rounds, 4);
    let members = [AccountId([1; 20]), AccountId([2; 20]), AccountId([3; 20])];
    check_spec(&back, &lease(&members, 4, 2)).unwrap();
    let e = check_spec(&back, &lease(&members[..2], 4, 2)).unwrap_err();
    assert!(
        e.to_string()
            .contains("workers: the spec says 3, the lease 2"),
        "{e}"
    );
    let e = check_spec(&back, &lease(&members, 5, 2)).unwrap_err();
    assert!(e.to_string().contains("rounds"), "{e}");
    let e = check_spec(&back, &lease(&members, 4, 3)).unwrap_err();
    assert!(e.to_string().contains("inner steps"), "{e}");
}

#[test]
fn a_single_machine_ml_bundle_is_not_a_cluster_job() {
    let mut ml = toml::Table::new();
    ml.insert("task".into(), toml::Value::String("train".into()));
    let manifest = Manifest {
        runtime: RuntimeKind::Ml,
        name: None,
        steps: 1,
        inputs: vec![],
        wasm: None,
        ml: Some(ml),
        limits: orrery_exec::Limits::default(),
    };
    let b = Bundle::new(manifest, Vec::new(), BTreeMap::new()).unwrap();
    let e = cluster_spec(&b).unwrap_err();
    assert!(e.to_string().contains("task is not \"cluster\""), "{e}");
}

#[test]
fn a_closed_round_names_workers_by_index_without_excluded_commits() {
    let members = [AccountId([1; 20]), AccountId([2; 20]), AccountId([3; 20])];
    let commit = |w: usize, status: &str| ClusterCommitView {
        worker: members[w],
        loss: 1.0,
        start: Hash::ZERO,
        delta: Hash::of(&[w as u8]),
        status: status.into(),
    };
    let round = ClusterRoundView {
        round: 0,
        closed_at: Some(9),
        mean_loss: Some(1.0),
        commits: vec![
            commit(2, "paid"),
            commit(0, "committed"),
            commit(1, "excluded"),
        ],
        missed: vec![],
    };
    let set = closed_set(&round, &members);
    assert_eq!(
        set.into_iter().collect::<Vec<_>>(),
        vec![(0, Hash::of(&[0])), (2, Hash::of(&[2]))]
    );
}

#[test]
fn a_peer_is_reached_at_its_offers_host_and_cluster_port_with_its_accounts_key() {
    let k = Keypair::from_seed(11);
    let e = orrery_types::cluster::cluster_endpoint("http://127.0.0.1:7100", 7301, k.public_key())
        .unwrap();
    let (key, addr) = peer_address(&k.account(), &e).unwrap();
    assert_eq!(&key, k.public_key());
    assert_eq!(addr, SocketAddr::from(([127, 0, 0, 1], 7301)));
    // An offer without a cluster contact, or with another account's key, is refused by name.
    let other = Keypair::from_seed(12).account();
    let err = peer_address(&other, &e).unwrap_err().to_string();
    assert!(
        err.contains(&other.to_string()) && err.contains("not the key"),
        "{err}"
    );
    let err = peer_address(&k.account(), "http://127.0.0.1:7100")
        .unwrap_err()
        .to_string();
    assert!(err.contains("publishes no cluster port"), "{err}");
}

#[test]
fn the_commitment_sent_is_bound_to_the_lease_round_and_worker() {
    let c = RoundCommit {
        delta: Hash::of(b"delta"),
        start: Hash::of(b"start"),
        loss: 2.5,
    };
    let me = AccountId([4; 20]);
    match commit_body(7, 3, &me, &c) {
        TxBody::CommitClusterRound {
            lease,
            round,
            start,
            delta,
            loss,
        } => {
            assert_eq!((lease, round, start), (7, 3, c.start));
            assert_eq!(delta, cluster_delta_commitment(7, 3, &me, &c.delta));
            assert_eq!(loss.value(), 2.5);
        }
        other => panic!("{other:?}"),
    }
}

fn config(cluster: &str, endpoint: &str) -> crate::ProviderConfig {
    crate::ProviderConfig::from_toml(&format!(
        "node = \"http://127.0.0.1:9\"\nkey_seed = 21\ndata_dir = \"d\"\nregion = \"eu-west\"\n\
         stake = \"500\"\nendpoint = \"{endpoint}\"\n\
         [prices]\ngpu_hour = \"0\"\ncpu_core_hour = \"0.05\"\nram_gib_hour = \"0\"\nmega_unit = \"0\"\n\
         {cluster}"
    ))
    .unwrap()
}

#[test]
fn the_offer_publishes_the_cluster_contact_and_bad_cluster_configs_are_refused_by_name() {
    let hw = orrery_types::resources::Hardware {
        gpu: None,
        cpu_cores: 2,
        ram_gib: 4,
    };
    let params = orrery_ledger::Params::default();
    // No [cluster]: the endpoint as configured, no contact.
    let plain = config("", "http://203.0.113.7:7100");
    plain.validate(&hw, &params).unwrap();
    assert_eq!(
        plain.offer(hw.clone()).unwrap().endpoint.as_str(),
        "http://203.0.113.7:7100"
    );
    // With it: peers find this agent's host, port and key, bound to its account.
    let c = config("[cluster]\nport = 7300\n", "http://203.0.113.7:7100");
    c.validate(&hw, &params).unwrap();
    let offer = c.offer(hw.clone()).unwrap();
    let me = Keypair::from_seed(21);
    let contact =
        orrery_types::cluster::cluster_contact(offer.endpoint.as_str(), &me.account()).unwrap();
    assert_eq!((contact.host.as_str(), contact.port), ("203.0.113.7", 7300));
    assert_eq!(&contact.key, me.public_key());
    for (table, endpoint, expect) in [
        (
            "[cluster]\nport = 0\n",
            "http://203.0.113.7:7100",
            "port must be 1 to 65535",
        ),
        (
            "[cluster]\nport = 7300\nround_timeout_ms = 99\n",
            "http://203.0.113.7:7100",
            "round_timeout_ms must be 100 to 600000",
        ),
        (
            "[cluster]\nport = 7300\n",
            "203.0.113.7:7100",
            "whose host peers can dial",
        ),
        (
            "[cluster]\nport = 7300\n",
            "http://203.0.113.7:7100#x",
            "whose host peers can dial",
        ),
    ] {
        let err = config(table, endpoint)
            .validate(&hw, &params)
            .unwrap_err()
            .to_string();
        assert!(err.contains(expect), "{table} {endpoint}: {err}");
    }
}

/// A worker's oracle and the loop's side of it, without a thread: what the worker commits is
/// sent bound to its account; the round it waits on is read by the loop and answered once
/// closed; a lease that ended fails the wait instead of hanging it.
#[test]
fn the_oracle_hands_commitments_to_the_loop_and_settles_what_the_loop_read() {
    use commonware_runtime::{Clock as _, Runner as _, Spawner as _, Supervisor as _};
    let members = vec![AccountId([1; 20]), AccountId([2; 20]), AccountId([3; 20])];
    let shared = Arc::new(Mutex::new(Exchange::default()));
    let mut duties = ClusterDuties::default();
    duties.running.insert(
        7,
        Running {
            index: 1,
            members: members.clone(),
            shared: shared.clone(),
            stop: Arc::default(),
            thread: None,
        },
    );
    let oracle = NodeOracle {
        lease: 7,
        members: Arc::new(members.clone()),
        shared,
        wake: None,
    };
    let c = RoundCommit {
        delta: Hash::of(b"delta"),
        start: Hash::of(b"start"),
        loss: 3.0,
    };
    commonware_runtime::deterministic::Runner::default().start(|context| async move {
        oracle.commit(0, 1, c).await.unwrap();
        let out = duties.outgoing();
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].0, out[0].1), (7, 0));
        assert_eq!(out[0].3, commit_body(7, 0, &members[1], &c));
        assert!(duties.outgoing().is_empty(), "taken once");
        // One the loop could not send goes back, first.
        duties.requeue(7, 0, c);
        assert_eq!(duties.outgoing().len(), 1);
        // Commitments waiting for a stalled loop are bounded.
        for _ in 0..MAX_PENDING_COMMITS {
            oracle.commit(1, 1, c).await.unwrap();
        }
        assert!(oracle.commit(1, 1, c).await.is_err());

        // The worker waits on round 0; the loop sees it, reads the round, and answers.
        let waiting = context.child("settle").spawn({
            let oracle = oracle.clone();
            move |ctx| async move { oracle.settle(&ctx, 0, 1, BTreeMap::new()).await }
        });
        context.sleep(Duration::from_millis(200)).await;
        assert_eq!(duties.waited(), vec![(7, 0)]);
        let mut round = ClusterRoundView {
            round: 0,
            closed_at: None,
            mean_loss: None,
            commits: vec![],
            missed: vec![],
        };
        duties.heard(7, 0, Some(&round));
        context.sleep(Duration::from_millis(200)).await;
        assert_eq!(duties.waited(), vec![(7, 0)], "still open: still waited on");
        let named = cluster_delta_commitment(7, 0, &members[2], &Hash::of(b"d2"));
        round.closed_at = Some(40);
        round.commits = vec![ClusterCommitView {
            worker: members[2],
            loss: 2.0,
            start: c.start,
            delta: named,
            status: "committed".into(),
        }];
        duties.heard(7, 0, Some(&round));
        let set = waiting.await.unwrap().unwrap();
        assert_eq!(set.into_iter().collect::<Vec<_>>(), vec![(2, named)]);
        assert!(oracle.names(0, 2, &Hash::of(b"d2"), &named));
        assert!(
            !oracle.names(0, 1, &Hash::of(b"d2"), &named),
            "bound to the worker"
        );

        // The lease ended before round 1 closed: the wait fails, it does not hang.
        let waiting = context.child("settle").spawn({
            let oracle = oracle.clone();
            move |ctx| async move { oracle.settle(&ctx, 1, 1, BTreeMap::new()).await }
        });
        context.sleep(Duration::from_millis(200)).await;
        duties.lease_over(7);
        let err = waiting.await.unwrap().unwrap_err();
        assert!(err.contains("no longer running"), "{err}");
    });
}
