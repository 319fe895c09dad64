use super::*;

#[test]
fn toml_fills_defaults_and_refuses_unknown_or_bad_values() {
    let c = NodeConfig::from_toml(
        "data_dir = \"/var/lib/orrery\"\n[limits]\nburst_per_ip = 10\n[blobs]\nretention_blocks = 5\n",
    )
    .expect("valid");
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/orrery"));
    assert_eq!(c.limits.burst_per_ip, 10);
    assert_eq!(
        c.limits.max_concurrent_requests,
        Limits::default().max_concurrent_requests
    );
    assert_eq!(c.blobs.retention_blocks, 5);
    assert!(matches!(
        NodeConfig::from_toml("data_dri = \"x\""),
        Err(ConfigError::Toml(_))
    ));
    assert!(matches!(
        NodeConfig::from_toml("[blobs]\nmax_blob_bytes = 2000000000"),
        Err(ConfigError::Invalid(_))
    ));
    assert!(matches!(
        NodeConfig::from_toml("[limits]\nrate_per_ip_per_sec = 0.0"),
        Err(ConfigError::Invalid(_))
    ));
}

#[test]
fn peers_are_checked_urls_within_bounds() {
    let c = NodeConfig::from_toml(
        "[peers]\nurls = [\"http://127.0.0.1:7421\", \"http://127.0.0.1:7422/\"]\nask = 2\n",
    )
    .expect("valid");
    assert_eq!(c.peers.urls.len(), 2);
    assert_eq!(c.peers.replicas, PeerConfig::default().replicas);
    let invalid = |toml: &str| match NodeConfig::from_toml(toml) {
        Err(ConfigError::Invalid(m)) => m,
        other => panic!("{toml}: expected a refusal, got {other:?}"),
    };
    assert!(invalid("[peers]\nurls = [\"127.0.0.1:7421\"]").contains("http://host:port"));
    assert!(invalid("[peers]\nurls = [\"https://10.0.0.1\"]").contains("plain HTTP"));
    assert!(invalid("[peers]\nask = 0").contains("peers.ask"));
    assert!(invalid("[peers]\nask = 17").contains("peers.ask"));
    assert!(invalid("[peers]\nask = 2\nreplicas = 3").contains("peers.replicas"));
    // A deadline must leave the request that waits for it time to answer.
    assert!(
        invalid(
            "[limits]\nrequest_timeout_secs = 10\n[peers]\nurls = [\"http://10.0.0.1\"]\n\
             fetch_deadline_secs = 10"
        )
        .contains("fetch_deadline_secs")
    );
    // Without peers the deadlines are unused, and a short request timeout is fine.
    assert!(NodeConfig::from_toml("[limits]\nrequest_timeout_secs = 1").is_ok());
    let many: Vec<String> = (0..=MAX_PEERS)
        .map(|i| format!("\"http://10.1.{}.{}\"", i / 250, i % 250))
        .collect();
    assert!(invalid(&format!("[peers]\nurls = [{}]", many.join(","))).contains("at most"));
}
