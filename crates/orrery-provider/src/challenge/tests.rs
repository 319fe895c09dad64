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

/// A provider with a GPU backend solves on it beside its threads: the same root as the
/// reference, with the GPU having done blocks of rows. Skips without an adapter unless
/// `ORRERY_GPU_TESTS=1`.
#[test]
fn gpu_and_threads_together_solve_to_the_reference_root() {
    let Some(device) =
        crate::gpu::gpu_or_skip("gpu_and_threads_together_solve_to_the_reference_root")
    else {
        return;
    };
    let orrery_ml::Device::Gpu(ctx) = &device else {
        unreachable!("Device::gpu opens a GPU")
    };
    // More rows than one GPU block and a ragged tail, so both parties take blocks.
    let (cseed, n, rows) = (seed(7), 64, (GPU_BLOCK + 2 * ROW_BLOCK + 5) as u64);
    let reference = challenge::solve(&cseed, n, rows).root();
    let before = ctx.dispatches();
    let cancel = std::sync::atomic::AtomicBool::new(false);
    let tree = solve_until(&cseed, n, rows, 1, Some(&device), &cancel).unwrap();
    assert_eq!(tree.root(), reference);
    assert!(ctx.dispatches() > before, "the GPU did no rows");
    // The CPU path given as the device solves on the threads alone.
    let cpu = orrery_ml::Device::Cpu;
    let tree = solve_until(&cseed, n, rows, 2, Some(&cpu), &cancel).unwrap();
    assert_eq!(tree.root(), reference);
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
fn a_cancelled_solve_stops_without_an_answer() {
    let cancel = std::sync::atomic::AtomicBool::new(true);
    assert_eq!(
        solve_until(&seed(5), 64, 1_000, 2, None, &cancel).unwrap_err(),
        SolveError::Cancelled
    );
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

/// Prints the solver's throughput against the reference kernel's, single- and multi-threaded:
/// `cargo test -p orrery-provider --release -- --ignored solver_speed --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn solver_speed() {
    let (cseed, n, rows) = (seed(9), 512, 2_048);
    let flop = orrery_types::challenge::challenge_flops(rows, n as u64) as f64;
    let t = std::time::Instant::now();
    let reference = challenge::solve(&cseed, n, rows).root();
    let reference_s = t.elapsed().as_secs_f64();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    for th in [1, threads] {
        let t = std::time::Instant::now();
        assert_eq!(solve(&cseed, n, rows, th).unwrap().root(), reference);
        let s = t.elapsed().as_secs_f64();
        println!(
            "n={n} rows={rows}: solver on {th} thread(s) {:.1} GFLOP/s ({:.2}x the reference kernel's {:.1} GFLOP/s)",
            flop / s / 1e9,
            reference_s / s,
            flop / reference_s / 1e9
        );
    }
}
