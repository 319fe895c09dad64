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
