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
