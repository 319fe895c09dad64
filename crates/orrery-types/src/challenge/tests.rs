use super::*;
use crate::crypto::Keypair;
use crate::resources::GpuSpec;

const N: usize = 64;

fn cseed(s: u64) -> Hash {
    challenge_seed(
        &Hash::of(&s.to_be_bytes()),
        &Keypair::from_seed(s).account(),
        10 + s,
    )
}

/// The product row computed naively in integers, independent of the f32 kernel.
fn naive_row(cseed: &Hash, n: usize, i: u64) -> Vec<u32> {
    let a = matrix_row(cseed, Matrix::A, n, i);
    let b: Vec<Vec<u8>> = (0..n as u64)
        .map(|k| matrix_row(cseed, Matrix::B, n, k))
        .collect();
    (0..n)
        .map(|j| (0..n).map(|k| u32::from(a[k]) * u32::from(b[k][j])).sum())
        .collect()
}

#[test]
fn generation_is_deterministic_row_addressable_and_seed_bound() {
    let s = cseed(1);
    let b = b_matrix(&s, N);
    assert_eq!(b, b_matrix(&s, N));
    assert_eq!(b.len(), N * N);
    // Any row of B on its own equals that row of the whole matrix.
    for k in [0usize, 7, N - 1] {
        let row: Vec<f32> = matrix_row(&s, Matrix::B, N, k as u64)
            .into_iter()
            .map(f32::from)
            .collect();
        assert_eq!(row, b[k * N..(k + 1) * N]);
    }
    // Rows of A far apart are generated without the ones before them, and differ.
    let far = a_row(&s, N, 1_000_000);
    assert_eq!(far, a_row(&s, N, 1_000_000));
    assert_ne!(far, a_row(&s, N, 1_000_001));
    assert!(far.iter().all(|&x| (0.0..16.0).contains(&x)));
    // Entries use the whole range.
    let all: std::collections::BTreeSet<u8> = matrix_row(&s, Matrix::A, N, 3).into_iter().collect();
    assert_eq!(all.len(), 16);
    // Another provider, height or block seed gives other matrices.
    let seed = Hash::of(b"block");
    let p = Keypair::from_seed(1).account();
    let q = Keypair::from_seed(2).account();
    let base = challenge_seed(&seed, &p, 5);
    for other in [
        challenge_seed(&seed, &q, 5),
        challenge_seed(&seed, &p, 6),
        challenge_seed(&Hash::of(b"other"), &p, 5),
    ] {
        assert_ne!(other, base);
        assert_ne!(a_row(&other, N, 0), a_row(&base, N, 0));
    }
    // A and B are distinct streams.
    assert_ne!(
        matrix_row(&s, Matrix::A, N, 0),
        matrix_row(&s, Matrix::B, N, 0)
    );
}

#[test]
fn the_f32_kernel_is_exact_up_to_the_largest_dimension() {
    let s = cseed(2);
    for n in [16, N, MAX_CHALLENGE_DIM] {
        let b = b_matrix(&s, n);
        for i in [0u64, 5] {
            assert_eq!(
                solve_row(&b, &a_row(&s, n, i)),
                naive_row(&s, n, i),
                "n={n}"
            );
        }
    }
    // The worst case, every entry 15, stays exact below 2^24.
    let n = MAX_CHALLENGE_DIM;
    let c = solve_row(&vec![15.0; n * n], &vec![15.0; n]);
    assert!(
        c.iter()
            .all(|&v| v == 225 * n as u32 && v < MAX_PRODUCT_VALUE)
    );
}

#[test]
fn an_honest_solution_passes_freivalds_and_one_flipped_entry_fails() {
    let s = cseed(3);
    let rows = 40;
    let tree = solve(&s, N, rows);
    let open_seed = Hash::of(b"next block");
    let idx = open_indices(&s, &open_seed, rows, 16);
    assert_eq!(idx.len(), 16);
    assert!(idx.windows(2).all(|w| w[0] < w[1]) && idx.iter().all(|&i| i < rows));
    let opened = open(&s, N, &tree, &idx).unwrap();
    let check = FreivaldsCheck::new(&s, &open_seed, N);
    for row in opened.as_slice() {
        assert!(
            row.proof
                .verify(&tree.root(), &row_leaf(row.index, row.values.as_slice()))
        );
        check.check_row(row.index, row.values.as_slice()).unwrap();
    }
    let pairs: Vec<(u64, &[u32])> = opened
        .as_slice()
        .iter()
        .map(|r| (r.index, r.values.as_slice()))
        .collect();
    freivalds_check(&s, &open_seed, N, &pairs).unwrap();

    // Any single entry off by one (or by anything) fails.
    let row = &opened.as_slice()[0];
    for column in [0, N / 2, N - 1] {
        for delta in [1u32, 1000] {
            let mut bad = row.values.as_slice().to_vec();
            bad[column] = bad[column].wrapping_add(delta) % MAX_PRODUCT_VALUE;
            assert_eq!(
                check.check_row(row.index, &bad),
                Err(ChallengeError::WrongProduct { row: row.index })
            );
        }
    }
    // A true row presented as another index fails too.
    let other = idx[1];
    assert!(check.check_row(other, row.values.as_slice()).is_err());
    // The same honest row fails against another challenge's matrices.
    let elsewhere = FreivaldsCheck::new(&cseed(4), &open_seed, N);
    assert!(
        elsewhere
            .check_row(row.index, row.values.as_slice())
            .is_err()
    );
}

#[test]
fn malformed_rows_are_refused_before_the_product_is_checked() {
    let s = cseed(5);
    let check = FreivaldsCheck::new(&s, &Hash::of(b"o"), N);
    let good = naive_row(&s, N, 2);
    check.check_row(2, &good).unwrap();
    assert_eq!(
        check.check_row(2, &good[..N - 1]),
        Err(ChallengeError::WrongLength {
            row: 2,
            got: N - 1,
            n: N
        })
    );
    let mut long = good.clone();
    long.push(0);
    assert!(matches!(
        check.check_row(2, &long),
        Err(ChallengeError::WrongLength { .. })
    ));
    let mut huge = good.clone();
    huge[9] = MAX_PRODUCT_VALUE;
    assert_eq!(
        check.check_row(2, &huge),
        Err(ChallengeError::ValueTooLarge {
            row: 2,
            column: 9,
            value: MAX_PRODUCT_VALUE
        })
    );
    let err = check.check_row(2, &huge).unwrap_err().to_string();
    assert!(err.contains("malformed matrix"), "{err}");
}

#[test]
fn rows_are_sized_from_the_claimed_hardware() {
    let cpu = |cores| Hardware {
        gpu: None,
        cpu_cores: cores,
        ram_gib: 8,
    };
    let gpus = |count| Hardware {
        gpu: Some(GpuSpec {
            model: crate::codec::Text::new("GPU").unwrap(),
            vram_mib: 24_000,
            count,
        }),
        cpu_cores: 8,
        ram_gib: 64,
    };
    assert_eq!(claimed_flops(&cpu(4)), 4 * CORE_FLOPS);
    assert_eq!(claimed_flops(&gpus(8)), 8 * GPU_FLOPS + 8 * CORE_FLOPS);
    let n = 512;
    let rows = |hw: &Hardware| challenge_rows(claimed_flops(hw), n, 2000, 16);
    // The product takes the target time at the claimed rate (to one row).
    let r = rows(&cpu(4));
    let ms = challenge_flops(r, n) as f64 / claimed_flops(&cpu(4)) as f64 * 1000.0;
    assert!((1999.0..2001.0).contains(&ms), "{ms} ms");
    // Throughput scales rows linearly.
    assert!(rows(&cpu(64)).abs_diff(16 * rows(&cpu(4))) <= 16);
    assert!(
        rows(&gpus(8)) > 14 * rows(&cpu(4)),
        "8 GPUs outweigh 4 cores"
    );
    // Clamped: at least the opened rows, at most the limit.
    assert_eq!(rows(&cpu(0)), 16);
    assert_eq!(challenge_rows(u64::MAX, n, 2000, 16), MAX_CHALLENGE_ROWS);
    // The default opening fits its carve-out.
    assert!(max_open_bytes(512, 16) <= MAX_CHALLENGE_OPEN_BYTES);
    assert!(max_open_bytes(1024, 16) > MAX_CHALLENGE_OPEN_BYTES);
}

#[test]
fn open_indices_are_distinct_in_range_and_cover_small_challenges() {
    let s = cseed(6);
    let all = open_indices(&s, &Hash::of(b"x"), 16, 16);
    assert_eq!(all, (0..16).collect::<Vec<_>>());
    let few = open_indices(&s, &Hash::of(b"x"), 5, 16);
    assert_eq!(few, (0..5).collect::<Vec<_>>());
    let a = open_indices(&s, &Hash::of(b"x"), 1 << 20, 16);
    let b = open_indices(&s, &Hash::of(b"y"), 1 << 20, 16);
    assert_ne!(a, b);
    assert_eq!(a, open_indices(&s, &Hash::of(b"x"), 1 << 20, 16));
}

/// Measures the reference kernel's single-core speed, the basis of [`CORE_FLOPS`]:
/// `cargo test -p orrery-types --release -- --ignored reference_kernel_speed --nocapture`.
#[test]
#[ignore = "a measurement, not a test: run in release"]
fn reference_kernel_speed() {
    let n = 512;
    let s = cseed(7);
    let b = b_matrix(&s, n);
    let rows: Vec<Vec<f32>> = (0..64).map(|i| a_row(&s, n, i)).collect();
    let start = std::time::Instant::now();
    let mut done = 0u64;
    let mut sink = 0u32;
    while start.elapsed().as_secs_f64() < 2.0 {
        for r in &rows {
            sink = sink.wrapping_add(solve_row(&b, r)[0]);
            done += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let gflops = challenge_flops(done, n as u64) as f64 / secs / 1e9;
    println!("reference kernel: {gflops:.2} GFLOP/s on one core (n = {n}, {done} rows; {sink})");
}
