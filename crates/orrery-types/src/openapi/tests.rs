use super::*;
use crate::amount::UNITS_PER_ORR;
use crate::crypto::Keypair;
use crate::resources::{GpuSpec, MAX_ENDPOINT_LEN, MAX_GPU_MODEL_LEN, MAX_REGION_LEN};
use crate::tx::{MAX_REDUNDANCY, ProviderOffer, Verification};
use serde_json::{Value, json};

fn json_string(v: impl serde::Serialize) -> String {
    match serde_json::to_value(v).expect("serializes") {
        Value::String(s) => s,
        other => panic!("not a JSON string: {other}"),
    }
}

fn schema_json<T: PartialSchema>() -> Value {
    serde_json::to_value(T::schema()).expect("schema serializes")
}

#[test]
fn amounts_as_the_api_writes_them_match_the_amount_pattern() {
    let pattern = regex::Regex::new(AMOUNT_PATTERN).expect("valid pattern");
    let samples = [
        Amount::ZERO,
        Amount(1),
        Amount(UNITS_PER_ORR / 2),
        Amount(UNITS_PER_ORR * 12 + UNITS_PER_ORR / 2),
        Amount::orr(10),
        Amount(UNITS_PER_ORR - 1),
        Amount(u128::MAX),
    ];
    for a in samples {
        let text = json_string(a);
        assert!(
            pattern.is_match(&text),
            "{text:?} does not match {AMOUNT_PATTERN}"
        );
    }
    for not_written in ["12", "0.50 ORR", "01 ORR", "1. ORR", "1.0000000001 ORR"] {
        assert!(!pattern.is_match(not_written), "{not_written:?} matched");
    }
}

#[test]
fn hashes_and_account_ids_as_the_api_writes_them_match_their_patterns() {
    let hash = regex::Regex::new(HASH_PATTERN).expect("valid pattern");
    let account = regex::Regex::new(ACCOUNT_ID_PATTERN).expect("valid pattern");
    for seed in 0..20u64 {
        let h = Hash::of(&seed.to_be_bytes());
        assert!(hash.is_match(&json_string(h)));
        let id = Keypair::from_seed(seed).account();
        assert!(account.is_match(&json_string(id)));
    }
    assert!(hash.is_match(&json_string(Hash::ZERO)));
    assert!(
        !hash.is_match(&"AB".repeat(32)),
        "upper case is never written"
    );
}

#[test]
fn verification_schema_describes_its_three_json_forms() {
    // The serde forms the node sends.
    assert_eq!(serde_json::to_value(Verification::None).unwrap(), "none");
    assert_eq!(
        serde_json::to_value(Verification::Sampled).unwrap(),
        "sampled"
    );
    assert_eq!(
        serde_json::to_value(Verification::Redundant { k: 3 }).unwrap(),
        json!({"redundant": {"k": 3}})
    );
    // The schema: one of the two strings, or an object with `redundant.k`.
    let schema = schema_json::<Verification>();
    let variants = schema["oneOf"].as_array().expect("oneOf");
    let strings: Vec<&Value> = variants
        .iter()
        .filter(|v| v["type"] == "string")
        .flat_map(|v| v["enum"].as_array().expect("enum"))
        .collect();
    assert_eq!(strings, [&json!("none"), &json!("sampled")], "{schema}");
    let object = variants
        .iter()
        .find(|v| v["type"] == "object")
        .expect("an object variant");
    assert_eq!(object["required"], json!(["redundant"]), "{schema}");
    let k = &object["properties"]["redundant"]["properties"]["k"];
    assert_eq!(k["type"], "integer", "{schema}");
    assert_eq!(k["minimum"], 2, "{schema}");
    assert_eq!(k["maximum"], MAX_REDUNDANCY, "{schema}");
}

#[test]
fn text_fields_declare_their_types_limits() {
    let offer = schema_json::<ProviderOffer>();
    assert_eq!(
        offer["properties"]["region"]["maxLength"], MAX_REGION_LEN,
        "{offer}"
    );
    assert_eq!(
        offer["properties"]["endpoint"]["maxLength"], MAX_ENDPOINT_LEN,
        "{offer}"
    );
    let gpu = schema_json::<GpuSpec>();
    assert_eq!(
        gpu["properties"]["model"]["maxLength"], MAX_GPU_MODEL_LEN,
        "{gpu}"
    );
}
