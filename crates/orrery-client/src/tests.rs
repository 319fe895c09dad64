use super::*;

#[test]
fn query_values_are_percent_encoded() {
    assert_eq!(encode_query_value("awaiting_start"), "awaiting_start");
    assert_eq!(encode_query_value("a b&c"), "a%20b%26c");
    assert_eq!(page_query(Some(5), Some("x y")), "?limit=5&cursor=x%20y");
    assert_eq!(page_query(None, None), "");
}

#[test]
fn page_sizes_are_capped_to_what_the_node_accepts() {
    assert_eq!(page_query(Some(1_000), None), "?limit=500");
    assert_eq!(page_query(Some(0), None), "?limit=1");
    assert_eq!(page_query(Some(500), None), "?limit=500");
}

#[test]
fn unreachable_node_is_a_transport_error() {
    // Port 1 on loopback: nothing listens there.
    let c = Client::with_timeout("http://127.0.0.1:1/", Duration::from_secs(2));
    assert_eq!(c.base_url(), "http://127.0.0.1:1");
    match c.status() {
        Err(Error::Transport { url, .. }) => assert!(url.ends_with("/api/v1/status")),
        other => panic!("expected a transport error, got {other:?}"),
    }
}

#[test]
fn inference_checks_round_trip_their_json_with_snake_case_roles() {
    let view = inference::InferenceCheckView {
        batch: 3,
        index: 7,
        round: 0,
        role: inference::CheckRole::Checker,
        phase: "seal".into(),
        seal_deadline: 10,
        reveal_deadline: 20,
        file: Hash::of(b"file"),
        model: Hash::of(b"model"),
        provider: orrery_types::crypto::Keypair::from_seed(1).account(),
        sealed: false,
        revealed: false,
        opened: false,
    };
    let json = serde_json::to_value(&view).unwrap();
    assert_eq!(json["role"], "checker");
    let back: inference::InferenceCheckView = serde_json::from_value(json).unwrap();
    assert_eq!(back, view);
}
