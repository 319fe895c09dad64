use super::*;
use commonware_codec::{DecodeExt, Encode};
use proptest::prelude::*;

fn leaves(n: usize) -> Vec<Hash> {
    (0..n as u64).map(|i| Hash::of(&i.to_be_bytes())).collect()
}

#[test]
fn empty_tree_has_the_empty_root() {
    assert_eq!(MerkleTree::new(&[]).root(), empty_root());
    assert_eq!(merkle_root(&[]), empty_root());
    assert!(MerkleTree::new(&[]).proof(0).is_none());
}

#[test]
fn single_leaf_root_is_its_leaf_hash() {
    let l = leaves(1);
    assert_eq!(merkle_root(&l), leaf_hash(&l[0]));
}

#[test]
fn matches_rfc6962_recursive_definition() {
    // MTH(D[n]) = H(1 || MTH(D[0:k]) || MTH(D[k:n])), k the largest power of two < n.
    fn mth(d: &[Hash]) -> Hash {
        match d.len() {
            0 => empty_root(),
            1 => leaf_hash(&d[0]),
            n => {
                let k = (n - 1).next_power_of_two() / if (n - 1).is_power_of_two() { 1 } else { 2 };
                let k = if k >= n { k / 2 } else { k };
                node_hash(&mth(&d[..k]), &mth(&d[k..]))
            }
        }
    }
    for n in 0..70 {
        let l = leaves(n);
        assert_eq!(merkle_root(&l), mth(&l), "n = {n}");
        assert_eq!(MerkleTree::new(&l).root(), mth(&l), "n = {n}");
    }
}

#[test]
fn duplicating_the_last_leaf_changes_the_root() {
    let mut l = leaves(3);
    let r3 = merkle_root(&l);
    l.push(l[2]);
    assert_ne!(r3, merkle_root(&l));
}

#[test]
fn every_proof_verifies_and_no_other_leaf_or_index_does() {
    for n in 1..40 {
        let l = leaves(n);
        let t = MerkleTree::new(&l);
        for (i, leaf) in l.iter().enumerate() {
            let p = t.proof(i as u64).unwrap();
            assert!(p.verify(&t.root(), leaf), "n={n} i={i}");
            let wrong = Hash::of(b"not a leaf");
            assert!(!p.verify(&t.root(), &wrong));
            if n > 1 {
                let mut moved = p.clone();
                moved.index = ((i + 1) % n) as u64;
                assert!(
                    !moved.verify(&t.root(), &l[i]),
                    "n={n} i={i} replayed at another index"
                );
            }
        }
    }
}

#[test]
fn proof_with_wrong_size_or_extra_siblings_is_rejected() {
    let l = leaves(5);
    let t = MerkleTree::new(&l);
    let mut p = t.proof(4).unwrap();
    p.siblings.push(Hash::ZERO);
    assert!(p.root_for(&l[4]).is_none());
    // A proof for a promoted leaf claimed against a larger tree needs siblings it lacks.
    let mut p = t.proof(4).unwrap();
    p.leaf_count = 8;
    assert!(!p.verify(&t.root(), &l[4]));
    let mut p = t.proof(1).unwrap();
    p.index = 9;
    assert!(p.root_for(&l[1]).is_none());
}

#[test]
fn proof_roundtrips_through_the_codec() {
    let t = MerkleTree::new(&leaves(1000));
    let p = t.proof(777).unwrap();
    let bytes = p.encode();
    assert_eq!(MerkleProof::decode(bytes).unwrap(), p);
}

proptest! {
    #[test]
    fn proof_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = MerkleProof::decode(commonware_codec::Copying(bytes.as_slice()));
    }

    #[test]
    fn random_trees_prove_every_leaf(n in 1usize..300, pick in any::<u64>()) {
        let l = leaves(n);
        let t = MerkleTree::new(&l);
        let i = (pick % n as u64) as usize;
        prop_assert!(t.proof(i as u64).unwrap().verify(&t.root(), &l[i]));
        prop_assert_eq!(t.root(), merkle_root(&l));
    }
}
