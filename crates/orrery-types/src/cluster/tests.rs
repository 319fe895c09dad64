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

#[test]
fn a_cluster_contact_round_trips_and_is_bound_to_its_account() {
    let k = crate::crypto::Keypair::from_seed(3);
    let e = cluster_endpoint("http://127.0.0.1:7100", 7300, k.public_key()).unwrap();
    assert_eq!(endpoint_base(&e), "http://127.0.0.1:7100");
    let c = cluster_contact(&e, &k.account()).unwrap();
    assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 7300));
    assert_eq!(&c.key, k.public_key());
    // Another account cannot claim this key.
    let other = crate::crypto::Keypair::from_seed(4).account();
    assert_eq!(
        cluster_contact(&e, &other),
        Err(ContactError::WrongKey(other))
    );
    assert_eq!(
        cluster_contact("http://127.0.0.1:7100", &k.account()),
        Err(ContactError::Missing)
    );
    assert!(matches!(
        cluster_contact("http://127.0.0.1:7100#cluster=0&key=00", &k.account()),
        Err(ContactError::BadFragment(_))
    ));
    assert!(matches!(
        cluster_endpoint("not a url", 7300, k.public_key()),
        Err(ContactError::BadUrl(_))
    ));
    let v6 = cluster_endpoint("http://[::1]:7100/x", 9, k.public_key()).unwrap();
    assert_eq!(cluster_contact(&v6, &k.account()).unwrap().host, "::1");
}
