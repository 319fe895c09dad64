use super::*;
use orrery_types::challenge::{self, FreivaldsCheck, open_indices};
use orrery_types::merkle::MerkleProof;

fn seed(n: u8) -> Hash {
    Hash::of(&[n])
}

#[test]
fn the_threaded_solver_equals_the_reference_for_any_thread_count() {
    // 37 rows: uneven ranges and a last block shorter than ROW_BLOCK.
    let (cseed, n, rows) = (seed(1), 64, 37);
    let reference = challenge::solve(&cseed, n, rows).root();
    for threads in [1, 2, 3, 8, 64] {
        assert_eq!(solve(&cseed, n, rows, threads).unwrap().root(), reference);
    }
}

#[test]
fn an_opening_passes_the_chains_checks() {
    let (cseed, n, rows) = (seed(2), 128, 50);
    let tree = solve(&cseed, n, rows, 2).unwrap();
    let open_seed = seed(3);
    let indices = open_indices(&cseed, &open_seed, rows, 16);
    let opened = open(&cseed, n, &tree, &indices).unwrap();
    assert_eq!(
        opened,
        challenge::open(&cseed, n, &challenge::solve(&cseed, n, rows), &indices).unwrap()
    );
    let check = FreivaldsCheck::new(&cseed, &open_seed, n);
    for row in opened.as_slice() {
        check.check_row(row.index, row.values.as_slice()).unwrap();
        let leaf = challenge::row_leaf(row.index, row.values.as_slice());
        let proof: &MerkleProof = &row.proof;
        assert!(proof.verify(&tree.root(), &leaf), "row {}", row.index);
    }
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let tree = solve(&seed(4), 16, 3, 1).unwrap();
    assert_eq!(
        solve(&seed(4), 24, 3, 1).unwrap_err(),
        SolveError::BadDim(24)
    );
    assert_eq!(
        open(&seed(4), 16, &tree, &[3]).unwrap_err(),
        SolveError::NoSuchRow { index: 3, rows: 3 }
    );
}
