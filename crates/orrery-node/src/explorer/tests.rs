use super::*;

#[test]
fn median_of_odd_and_even_lists() {
    assert_eq!(median(vec![]), None);
    assert_eq!(
        median(vec![Amount(3), Amount(1), Amount(2)]),
        Some(Amount(2))
    );
    assert_eq!(
        median(vec![Amount(4), Amount(1), Amount(2), Amount(3)]),
        Some(Amount(2))
    );
}

#[test]
fn long_byte_fields_are_shortened() {
    let v = serde_json::json!({"type": "adjudicate", "bundle": vec![1u8; 1000], "lease": 3});
    let s = shorten(&v);
    assert_eq!(s["bundle"], "<1000 bytes>");
    assert_eq!(s["lease"], 3);
}
