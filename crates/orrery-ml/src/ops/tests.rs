//! Operator tests: matmul equals its naive definition bit for bit, and every operator's
//! gradient matches central finite differences of `L = Σ y ⊙ r` for a random `r`.

use super::matmul::{Isa, Tile, matmul_with};
use super::*;
use crate::rng::Rng;

fn randn(n: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..n).map(|_| r.normal()).collect()
}

fn weighted_sum(y: &[f32], r: &[f32]) -> f64 {
    y.iter().zip(r).map(|(a, b)| *a as f64 * *b as f64).sum()
}

/// Compare `analytic` with central differences of `loss` around `x`, coordinate by coordinate.
fn check_grad(name: &str, x: &[f32], analytic: &[f32], loss: impl Fn(&[f32]) -> f64) {
    assert_eq!(x.len(), analytic.len(), "{name}: gradient length");
    let eps = 1e-2f32;
    let mut worst = 0.0f64;
    for i in 0..x.len() {
        let mut xp = x.to_vec();
        xp[i] += eps;
        let mut xm = x.to_vec();
        xm[i] -= eps;
        let numeric = (loss(&xp) - loss(&xm)) / (2.0 * eps as f64);
        let a = analytic[i] as f64;
        let err = (numeric - a).abs() / (1.0 + numeric.abs().max(a.abs()));
        worst = worst.max(err);
        assert!(
            err < 2e-2,
            "{name}: d/dx[{i}] analytic {a} vs numeric {numeric} (rel err {err})"
        );
    }
    assert!(worst.is_finite(), "{name}: non-finite gradient");
}

#[test]
fn matmul_is_bitwise_the_naive_loop_for_every_layout_size_and_thread_count() {
    let shapes = [
        (1, 1, 1),
        (3, 5, 7),
        (17, 33, 19),
        (64, 300, 40),
        (70, 257, 33),
        (5, 600, 129),
    ];
    for &(m, k, n) in &shapes {
        for ta in [Trans::No, Trans::Yes] {
            for tb in [Trans::No, Trans::Yes] {
                let a = randn(m * k, 1 + m as u64);
                let b = randn(k * n, 2 + n as u64);
                let mut want = vec![0.0; m * n];
                matmul_naive(&a, ta, &b, tb, m, k, n, &mut want);
                for threads in [1, 2, 3, 4] {
                    let mut got = vec![f32::NAN; m * n];
                    matmul(&a, ta, &b, tb, m, k, n, &mut got, threads);
                    let same = want
                        .iter()
                        .zip(&got)
                        .all(|(x, y)| x.to_bits() == y.to_bits());
                    assert!(
                        same,
                        "matmul {m}x{k}x{n} {ta:?}/{tb:?} on {threads} threads differs from the naive loop"
                    );
                }
                // Every tile shape, compiled for this CPU's best instruction set and for the
                // portable baseline: all equal to the naive loop.
                for tile in [Tile::Small, Tile::Medium, Tile::Large] {
                    for isa in [Isa::Best, Isa::Portable] {
                        let mut got = vec![f32::NAN; m * n];
                        matmul_with(&a, ta, &b, tb, (m, k, n), &mut got, 2, tile, isa);
                        assert!(
                            want.iter()
                                .zip(&got)
                                .all(|(x, y)| x.to_bits() == y.to_bits()),
                            "matmul {m}x{k}x{n} {ta:?}/{tb:?} with {tile:?} tile, {isa:?} code differs"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn matmul_gradients() {
    let (m, k, n) = (3, 4, 5);
    let a = randn(m * k, 1);
    let b = randn(k * n, 2);
    let r = randn(m * n, 3);
    let mm = |a: &[f32], b: &[f32]| {
        let mut c = vec![0.0; m * n];
        matmul(a, Trans::No, b, Trans::No, m, k, n, &mut c, 1);
        c
    };
    // dA = dY · Bᵀ, dB = Aᵀ · dY: exactly how the models call it.
    let mut da = vec![0.0; m * k];
    matmul(&r, Trans::No, &b, Trans::Yes, m, n, k, &mut da, 1);
    let mut db = vec![0.0; k * n];
    matmul(&a, Trans::Yes, &r, Trans::No, k, m, n, &mut db, 1);
    check_grad("matmul dA", &a, &da, |a| weighted_sum(&mm(a, &b), &r));
    check_grad("matmul dB", &b, &db, |b| weighted_sum(&mm(&a, b), &r));
}

#[test]
fn add_and_mul_gradients() {
    let a = randn(12, 1);
    let b = randn(12, 2);
    let r = randn(12, 3);
    check_grad("add da", &a, &r, |a| weighted_sum(&add(a, &b), &r));
    check_grad("add db", &b, &r, |b| weighted_sum(&add(&a, b), &r));
    let (da, db) = mul_backward(&a, &b, &r);
    check_grad("mul da", &a, &da, |a| weighted_sum(&mul(a, &b), &r));
    check_grad("mul db", &b, &db, |b| weighted_sum(&mul(&a, b), &r));
}

#[test]
fn broadcast_gradients() {
    let (rows, cols) = (4, 5);
    let x = randn(rows * cols, 1);
    let row = randn(cols, 2);
    let r = randn(rows * cols, 3);
    // Bias add: d bias = column sums of dy.
    let mut dbias = vec![0.0; cols];
    sum_rows_into(&r, cols, &mut dbias);
    check_grad("add_row_broadcast d row", &row, &dbias, |row| {
        let mut y = x.clone();
        add_row_broadcast(&mut y, row);
        weighted_sum(&y, &r)
    });
    let (dx, drow) = mul_row_broadcast_backward(&x, &row, &r);
    check_grad("mul_row_broadcast dx", &x, &dx, |x| {
        weighted_sum(&mul_row_broadcast(x, &row), &r)
    });
    check_grad("mul_row_broadcast d row", &row, &drow, |row| {
        weighted_sum(&mul_row_broadcast(&x, row), &r)
    });
}

#[test]
fn activation_gradients() {
    // Keep relu's inputs away from the kink at 0, where it has no derivative.
    let x: Vec<f32> = randn(20, 1)
        .into_iter()
        .map(|v| if v.abs() < 0.05 { v + 0.2 } else { v })
        .collect();
    let r = randn(20, 2);
    check_grad("relu", &x, &relu_backward(&x, &r), |x| {
        weighted_sum(&relu(x), &r)
    });
    check_grad("gelu", &x, &gelu_backward(&x, &r), |x| {
        weighted_sum(&gelu(x), &r)
    });
    check_grad("gelu_erf", &x, &gelu_erf_backward(&x, &r), |x| {
        weighted_sum(&gelu_erf(x), &r)
    });
}

#[test]
fn gelu_erf_matches_its_definition_in_f64() {
    for &v in &[-6.0f32, -1.5, -0.3, 0.0, 0.2, 1.0, 3.7] {
        let y = gelu_erf(&[v])[0] as f64;
        let x = v as f64;
        let want = 0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2));
        assert!(
            (y - want).abs() <= 1e-6 * (1.0 + want.abs()),
            "gelu_erf({v}) = {y}, want {want}"
        );
    }
    // The tanh form differs from the exact one by up to ~1e-3 around |x| ≈ 2.
    assert_ne!(gelu_erf(&[2.0])[0], gelu(&[2.0])[0]);
}

#[test]
fn softmax_gradient() {
    let cols = 6;
    let x = randn(3 * cols, 1);
    let r = randn(3 * cols, 2);
    let y = softmax_rows(&x, cols);
    let dx = softmax_rows_backward(&y, &r, cols);
    check_grad("softmax", &x, &dx, |x| {
        weighted_sum(&softmax_rows(x, cols), &r)
    });
    for row in y.chunks(cols) {
        let s: f32 = row.iter().sum();
        assert!((s - 1.0).abs() < 1e-5, "softmax rows sum to 1, got {s}");
    }
}

#[test]
fn layer_norm_gradients() {
    let dim = 6;
    let x = randn(4 * dim, 1);
    let gamma: Vec<f32> = randn(dim, 2).iter().map(|v| 1.0 + 0.3 * v).collect();
    let beta = randn(dim, 3);
    let r = randn(4 * dim, 4);
    let (_, cache) = layer_norm(&x, &gamma, &beta, 1e-5);
    let mut dgamma = vec![0.0; dim];
    let mut dbeta = vec![0.0; dim];
    let dx = layer_norm_backward(&cache, &gamma, &r, &mut dgamma, &mut dbeta);
    check_grad("layer_norm dx", &x, &dx, |x| {
        weighted_sum(&layer_norm(x, &gamma, &beta, 1e-5).0, &r)
    });
    check_grad("layer_norm dgamma", &gamma, &dgamma, |g| {
        weighted_sum(&layer_norm(&x, g, &beta, 1e-5).0, &r)
    });
    check_grad("layer_norm dbeta", &beta, &dbeta, |b| {
        weighted_sum(&layer_norm(&x, &gamma, b, 1e-5).0, &r)
    });
}

#[test]
fn embedding_gradient() {
    let (vocab, dim) = (5, 3);
    let table = randn(vocab * dim, 1);
    let ids = [2u32, 0, 2, 4];
    let r = randn(ids.len() * dim, 2);
    let mut dtable = vec![0.0; vocab * dim];
    embedding_backward(&ids, &r, dim, &mut dtable);
    check_grad("embedding", &table, &dtable, |t| {
        weighted_sum(&embedding(&ids, t, dim), &r)
    });
}

#[test]
fn cross_entropy_gradient_and_value() {
    let classes = 5;
    let x = randn(3 * classes, 1);
    let targets = [1u32, 4, 0];
    let (loss, dx) = cross_entropy(&x, &targets, classes);
    check_grad("cross_entropy", &x, &dx, |x| {
        cross_entropy(x, &targets, classes).0 as f64
    });
    // Uniform logits: the loss is ln(classes).
    let (uniform, _) = cross_entropy(&[0.0; 10], &[0, 1], 5);
    assert!((uniform - 5f32.ln()).abs() < 1e-6);
    assert!(loss > 0.0);
}

#[test]
fn attention_gradient_and_causality() {
    let s = AttnShape {
        batch: 2,
        seq: 4,
        heads: 2,
        head_dim: 3,
    };
    let d = s.heads * s.head_dim;
    let qkv = randn(s.batch * s.seq * 3 * d, 1);
    let r = randn(s.batch * s.seq * d, 2);
    let (out, probs) = attention_forward(&qkv, s, 1);
    let dqkv = attention_backward(&qkv, &probs, &r, s, 1);
    check_grad("attention", &qkv, &dqkv, |q| {
        weighted_sum(&attention_forward(q, s, 1).0, &r)
    });
    // Causal: changing the last token's k and v leaves earlier outputs alone.
    let mut changed = qkv.clone();
    let last = (s.seq - 1) * 3 * d;
    for v in &mut changed[last + d..last + 3 * d] {
        *v += 1.0;
    }
    let (out2, _) = attention_forward(&changed, s, 1);
    assert_eq!(out[..(s.seq - 1) * d], out2[..(s.seq - 1) * d]);
    // Threads change nothing.
    for threads in [2, 4] {
        let (o, p) = attention_forward(&qkv, s, threads);
        assert_eq!(o, out);
        assert_eq!(p, probs);
        assert_eq!(attention_backward(&qkv, &probs, &r, s, threads), dqkv);
    }
}
