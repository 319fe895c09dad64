use super::*;
use orrery_types::crypto::Keypair;
use orrery_types::hash::Hash;
use orrery_types::inference::ModelName;

fn offer(name: &str, price_in: u128, price_out: u128, context: u32) -> ModelOffer {
    ModelOffer {
        name: ModelName::new(name).unwrap(),
        weights: Hash::of(name.as_bytes()),
        kind: ModelKind::Generation,
        context,
        price_in: Amount(price_in),
        price_out: Amount(price_out),
        sample_bps: 500,
    }
}

fn candidate(seed: u64, offer: ModelOffer) -> ModelCandidate {
    ModelCandidate {
        provider: Keypair::from_seed(seed).account(),
        endpoint: format!("http://127.0.0.1:{}", 9000 + seed),
        reputation: Reputation::default(),
        offer,
    }
}

fn query(name: &str) -> ModelQuery<'_> {
    ModelQuery {
        name,
        tokens_in: 1_000,
        tokens_out: 1_000,
        min_context: 0,
        limit: 10,
    }
}

#[test]
fn cheaper_offers_rank_first_and_every_rank_explains_itself() {
    let mut r = ModelRouter::new();
    r.insert(candidate(1, offer("gpt", 3_000_000, 3_000_000, 1024)));
    r.insert(candidate(2, offer("gpt", 1_000_000, 1_000_000, 1024)));
    r.insert(candidate(3, offer("other", 1, 1, 1024)));
    let ranked = r.rank(&query("gpt")).unwrap();
    assert_eq!(ranked.len(), 2);
    assert_eq!(
        ranked[0].candidate.provider,
        Keypair::from_seed(2).account()
    );
    assert_eq!(
        ranked[0].cost,
        Amount(2_000),
        "1000 tokens each way at 1/token"
    );
    assert_eq!(ranked[0].rank, 1);
    assert!(
        ranked[0].explanation.starts_with("cheapest: "),
        "{}",
        ranked[0].explanation
    );
    assert!(!ranked[1].explanation.starts_with("cheapest"));
    assert!(ranked[1].explanation.contains("latency not measured"));
}

#[test]
fn an_unknown_name_suggests_offered_names_and_a_short_context_says_how_long() {
    let mut r = ModelRouter::new();
    r.insert(candidate(1, offer("b-model", 1, 1, 128)));
    r.insert(candidate(2, offer("a-model", 1, 1, 256)));
    match r.rank(&query("nope")) {
        Err(ModelRouteError::UnknownModel { name, available }) => {
            assert_eq!(name, "nope");
            assert_eq!(available, vec!["a-model".to_owned(), "b-model".to_owned()]);
        }
        other => panic!("{other:?}"),
    }
    let long = ModelQuery {
        min_context: 300,
        ..query("a-model")
    };
    let e = r.rank(&long).unwrap_err();
    assert_eq!(
        e,
        ModelRouteError::ContextTooShort {
            name: "a-model".into(),
            needed: 300,
            largest: 256
        }
    );
    assert!(e.to_string().contains("at most 256 tokens"), "{e}");
}

#[test]
fn latency_load_and_reputation_move_an_equal_price_down() {
    let mut r = ModelRouter::new();
    for seed in 1..=3 {
        r.insert(candidate(seed, offer("m", 1_000_000, 1_000_000, 64)));
    }
    let [a, b, c] = [1, 2, 3].map(|s| Keypair::from_seed(s).account());
    // Ties break by provider id.
    let ids: Vec<AccountId> = r
        .rank(&query("m"))
        .unwrap()
        .iter()
        .map(|x| x.candidate.provider)
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);

    r.observe_latency(&a, 500.0);
    for _ in 0..8 {
        r.started(&b);
    }
    let top = r.rank(&query("m")).unwrap()[0].candidate.provider;
    assert_eq!(top, c, "the fast idle provider first");
    for _ in 0..8 {
        r.finished(&b);
    }
    assert_eq!(r.load(&b).in_flight, 0);

    let mut bad = candidate(4, offer("n", 1_000_000, 1_000_000, 64));
    bad.reputation.slashed = 10;
    let good = candidate(5, offer("n", 1_000_000, 1_000_000, 64));
    r.insert(bad);
    r.insert(good.clone());
    assert_eq!(
        r.rank(&query("n")).unwrap()[0].candidate.provider,
        good.provider
    );
}

#[test]
fn replacing_offers_keeps_measurements_and_the_ewma_moves_a_fifth_of_the_way() {
    let mut r = ModelRouter::new();
    let c = candidate(1, offer("m", 1, 1, 64));
    r.insert(c.clone());
    r.observe_latency(&c.provider, 100.0);
    r.observe_latency(&c.provider, 200.0);
    assert_eq!(r.load(&c.provider).latency_ms, Some(120.0));
    r.observe_latency(&c.provider, f64::NAN);
    assert_eq!(r.load(&c.provider).latency_ms, Some(120.0));
    r.replace(vec![c.clone()]);
    assert_eq!(r.len(), 1);
    assert_eq!(r.load(&c.provider).latency_ms, Some(120.0));
    r.replace(Vec::new());
    assert!(r.is_empty());
    assert!(r.candidates("m").is_empty());
}

#[test]
fn the_limit_returns_exactly_the_best_k_of_many() {
    let mut r = ModelRouter::new();
    for seed in 0..200u64 {
        r.insert(candidate(
            seed,
            offer("m", u128::from(seed) * 1_000_000, 0, 64),
        ));
    }
    let q = ModelQuery {
        limit: 5,
        ..query("m")
    };
    let ranked = r.rank(&q).unwrap();
    let costs: Vec<u128> = ranked.iter().map(|x| x.cost.units()).collect();
    assert_eq!(costs, vec![0, 1_000, 2_000, 3_000, 4_000]);
    let huge = ModelQuery {
        tokens_in: u32::MAX,
        ..query("x")
    };
    let mut r2 = ModelRouter::new();
    r2.insert(candidate(1, offer("x", u128::MAX, 0, 64)));
    assert!(matches!(
        r2.rank(&huge),
        Err(ModelRouteError::Unpriceable { .. })
    ));
}
