use super::*;
use crate::codec;

#[test]
fn check_seal_binds_the_verifier_and_the_delta() {
    let (w, a, b) = (AccountId([1; 20]), AccountId([2; 20]), AccountId([3; 20]));
    let d = Hash::of(b"delta");
    let sa = cluster_check_seal(7, 3, &w, &a, &d);
    assert_ne!(sa, cluster_check_seal(7, 3, &w, &b, &d), "another verifier");
    assert_ne!(
        sa,
        cluster_check_seal(7, 3, &w, &a, &Hash::of(b"x")),
        "another delta"
    );
    assert_ne!(sa, cluster_check_seal(7, 4, &w, &a, &d), "another round");
    assert_eq!(sa, cluster_check_seal(7, 3, &w, &a, &d));
}

#[test]
fn loss_bits_round_trip_exactly() {
    let l = LossBits::of(2.718_281_7);
    let back: LossBits = codec::decode("loss", &codec::encode(&l)).unwrap();
    assert_eq!(back, l);
    assert_eq!(back.value().to_bits(), 2.718_281_7f32.to_bits());
}

#[test]
fn delta_commitment_is_bound_to_its_worker_and_round() {
    let (a, b) = (AccountId([1; 20]), AccountId([2; 20]));
    let d = Hash::of(b"delta");
    let c = cluster_delta_commitment(1, 0, &a, &d);
    assert_ne!(c, d, "the commitment does not show the delta's hash");
    assert_ne!(c, cluster_delta_commitment(1, 0, &b, &d));
    assert_ne!(c, cluster_delta_commitment(1, 1, &a, &d));
    assert_eq!(c, cluster_delta_commitment(1, 0, &a, &d));
}
