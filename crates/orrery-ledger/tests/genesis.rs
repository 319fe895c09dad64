//! Genesis files: the shipped example parses to the documented defaults; bad files are refused
//! with a reason.

use orrery_ledger::{Genesis, GenesisError, Params, State};
use orrery_types::amount::Amount;

const EXAMPLE: &str = include_str!("../genesis.example.toml");

#[test]
fn the_example_genesis_parses_and_matches_the_defaults() {
    let g = Genesis::from_toml(EXAMPLE).unwrap();
    assert_eq!(
        g.params,
        Params::default(),
        "example and defaults drifted apart"
    );
    assert_eq!(g.accounts.len(), 2);
    assert_eq!(g.accounts[1].balance, "250000.5".parse::<Amount>().unwrap());
    let state = State::genesis(&g).unwrap();
    assert_eq!(
        state.globals().genesis_supply,
        "1250000.5".parse::<Amount>().unwrap()
    );
    assert_eq!(state.validators().len(), 2);
    // Writing and reading back gives the same genesis.
    assert_eq!(Genesis::from_toml(&g.to_toml()).unwrap(), g);
}

#[test]
fn omitted_params_take_the_defaults() {
    let g = Genesis::from_toml("chain_id = \"x\"\ngenesis_time_ms = 0\n").unwrap();
    assert_eq!(g.params, Params::default());
}

#[test]
fn bad_genesis_files_are_refused_with_a_reason() {
    let cases = [
        (
            EXAMPLE.replace("fee_bps = 500", "fee_bps = 20000"),
            "fee_bps",
        ),
        (
            EXAMPLE.replace("epoch_blocks = 100", "epoch_blocks = 0"),
            "epoch_blocks",
        ),
        (
            EXAMPLE.replace("fee_bps = 500", "fee_bps = 500\nsurprise = 1"),
            "surprise",
        ),
        (EXAMPLE.replace("00bb\"", "00aa\""), "listed twice"),
        (
            EXAMPLE.replace("balance = \"1000000\"", "balance = \"-5\""),
            "decimal number",
        ),
        (
            EXAMPLE.replace("chain_id = \"orrery-devnet-1\"", "chain_id = \"\""),
            "chain_id",
        ),
        (
            EXAMPLE.replace(
                "min_inference_sample_bps = 100",
                "min_inference_sample_bps = 10001",
            ),
            "min_inference_sample_bps",
        ),
        (
            EXAMPLE.replace(
                "max_inference_checks_per_batch = 16",
                "max_inference_checks_per_batch = 0",
            ),
            "max_inference_checks_per_batch",
        ),
        (
            EXAMPLE.replace("voucher_grace_blocks = 100", "voucher_grace_blocks = 0"),
            "voucher_grace_blocks",
        ),
    ];
    for (text, needle) in cases {
        let err = Genesis::from_toml(&text).expect_err(needle);
        assert!(
            err.to_string().contains(needle),
            "expected {needle:?} in: {err}"
        );
    }
    assert!(matches!(
        Genesis::from_toml("not toml ["),
        Err(GenesisError::Parse(_))
    ));
}
