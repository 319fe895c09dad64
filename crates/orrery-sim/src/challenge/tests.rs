use super::*;
use orrery_types::challenge::{FreivaldsCheck, check_row_shape};
use orrery_types::merkle::MerkleTree;

/// The sparse tree is the tree: the same root and proofs as `MerkleTree` over every leaf (the
/// opened rows' real leaves, the filler elsewhere), for widths with and without lone nodes.
#[test]
fn sparse_answer_matches_the_full_tree() {
    let cseed = Hash::tagged(b"test/cseed", &[]);
    let open_seed = Hash::tagged(b"test/open", &[]);
    let n = 16;
    let filler = Hash::tagged(b"orrery-sim/challenge/filler", &[]);
    for rows in [1u64, 2, 3, 5, 16, 17, 37, 64, 100, 1_023] {
        let a = answer(&cseed, n, rows, &open_seed, 16).expect("an answer");
        let b = b_matrix(&cseed, n);
        let mut leaves = vec![filler; rows as usize];
        for r in a.rows.as_slice().iter() {
            leaves[r.index as usize] =
                row_leaf(r.index, &solve_row(&b, &a_row(&cseed, n, r.index)));
        }
        let tree = MerkleTree::new(&leaves);
        assert_eq!(a.root, tree.root(), "root for {rows} rows");
        let expected = open_indices(&cseed, &open_seed, rows, 16);
        let got: Vec<u64> = a.rows.as_slice().iter().map(|r| r.index).collect();
        assert_eq!(got, expected, "the opened rows are the drawn ones");
        let check = FreivaldsCheck::new(&cseed, &open_seed, n);
        for r in a.rows.as_slice().iter() {
            assert_eq!(
                Some(&r.proof),
                tree.proof(r.index).as_ref(),
                "proof of row {}",
                r.index
            );
            assert!(
                r.proof
                    .verify(&a.root, &row_leaf(r.index, r.values.as_slice()))
            );
            check_row_shape(r.index, r.values.as_slice(), n).expect("shape");
            check
                .check_row(r.index, r.values.as_slice())
                .expect("Freivalds");
        }
    }
}

/// Another opening seed opens other rows, which the answer does not prove.
#[test]
fn an_answer_opens_only_for_its_seed() {
    let cseed = Hash::tagged(b"test/cseed", &[]);
    let a = answer(&cseed, 16, 1 << 20, &Hash::tagged(b"one", &[]), 16).expect("an answer");
    let other = open_indices(&cseed, &Hash::tagged(b"two", &[]), 1 << 20, 16);
    let mine: Vec<u64> = a.rows.as_slice().iter().map(|r| r.index).collect();
    assert_ne!(mine, other);
    assert_eq!(a.rows.as_slice().len(), 16);
}
