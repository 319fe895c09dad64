//! Every GPU kernel against its CPU reference, bit for bit. The tests carry `gpu` in their names
//! (`cargo test -p orrery-ml -- gpu`). Without an adapter they say "skipped" and pass, unless
//! `ORRERY_GPU_TESTS=1` (as CI sets after installing lavapipe), where no adapter is a failure.

use super::*;
use crate::rng::Rng;
use std::sync::OnceLock;

/// The GPU device shared by the tests (opening one costs ~100 ms on lavapipe), or `None` with
/// a printed reason.
pub(crate) fn gpu_or_skip(test: &str) -> Option<Device> {
    static GPU: OnceLock<std::result::Result<Device, String>> = OnceLock::new();
    let opened = GPU.get_or_init(|| {
        GpuContext::open()
            .map(|g| Device::Gpu(Arc::new(g)))
            .map_err(|e| e.to_string())
    });
    match opened {
        Ok(d) => Some(d.clone()),
        Err(e) if std::env::var("ORRERY_GPU_TESTS").as_deref() == Ok("1") => {
            panic!("{test}: ORRERY_GPU_TESTS=1 but {e} (install mesa-vulkan-drivers)")
        }
        Err(e) => {
            eprintln!("{test}: skipped, {e} (set ORRERY_GPU_TESTS=1 to make this a failure)");
            None
        }
    }
}

fn randn(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..n).map(|_| r.normal() * scale).collect()
}

/// Count the elements whose bits differ and the largest difference in units in the last place;
/// fail naming the first one.
#[track_caller]
fn assert_bitwise(op: &str, gpu: &[f32], cpu: &[f32]) {
    assert_eq!(gpu.len(), cpu.len(), "{op}: length");
    let mut differ = 0usize;
    let mut max_ulp = 0i64;
    let mut first = None;
    for (i, (g, c)) in gpu.iter().zip(cpu).enumerate() {
        if g.to_bits() != c.to_bits() {
            differ += 1;
            let ulp = (g.to_bits() as i32 as i64 - c.to_bits() as i32 as i64).abs();
            max_ulp = max_ulp.max(ulp);
            first.get_or_insert((i, *g, *c));
        }
    }
    eprintln!(
        "{op}: {} elements, {differ} differ (max {max_ulp} ulp)",
        cpu.len()
    );
    if let Some((i, g, c)) = first {
        panic!(
            "{op}: {differ} of {} elements differ from the CPU reference (max {max_ulp} ulp); first at {i}: gpu {g:e} ({:#010x}) cpu {c:e} ({:#010x})",
            cpu.len(),
            g.to_bits(),
            c.to_bits()
        );
    }
}

#[test]
fn gpu_matmul_equals_cpu_bitwise() {
    let Some(dev) = gpu_or_skip("gpu_matmul_equals_cpu_bitwise") else {
        return;
    };
    for (m, k, n) in [
        (1, 1, 1),
        (7, 13, 5),
        (33, 300, 17),
        (64, 64, 64),
        (5, 520, 3),
    ] {
        for ta in [Trans::No, Trans::Yes] {
            for tb in [Trans::No, Trans::Yes] {
                let a = randn(m * k, 1 + m as u64, 1.0);
                let b = randn(k * n, 2 + n as u64, 1.0);
                let mut cpu = vec![0.0; m * n];
                let mut gpu = vec![0.0; m * n];
                ops::matmul(&a, ta, &b, tb, m, k, n, &mut cpu, 2);
                dev.matmul(&a, ta, &b, tb, (m, k, n), &mut gpu, 1).unwrap();
                assert_bitwise(&format!("matmul {m}x{k}x{n} {ta:?} {tb:?}"), &gpu, &cpu);
            }
        }
    }
}

/// Inputs that sweep every branch of `tanhf`/`expm1f`/`expf`: tiny, around the thresholds,
/// large, and both signs.
fn sweep() -> Vec<f32> {
    let mut x = randn(20_000, 5, 3.0);
    x.extend(randn(5_000, 6, 0.1));
    x.extend(randn(2_000, 7, 30.0));
    for i in -2000..=2000 {
        x.push(i as f32 * 0.01);
    }
    x.extend([
        0.0, -0.0, 1e-30, -1e-30, 1e-8, 0.2554, 0.5493, 10.0, 10.5, -10.5, 88.0, -88.0, 200.0,
        -200.0,
    ]);
    x
}

#[test]
fn gpu_gelu_equals_cpu_bitwise() {
    let Some(dev) = gpu_or_skip("gpu_gelu_equals_cpu_bitwise") else {
        return;
    };
    let x = sweep();
    let dy = randn(x.len(), 8, 1.0);
    assert_bitwise("gelu", &dev.gelu(&x).unwrap(), &ops::gelu(&x));
    assert_bitwise(
        "gelu backward",
        &dev.gelu_backward(&x, &dy).unwrap(),
        &ops::gelu_backward(&x, &dy),
    );
}

#[test]
fn gpu_softmax_and_cross_entropy_equal_cpu_bitwise() {
    let Some(dev) = gpu_or_skip("gpu_softmax_and_cross_entropy_equal_cpu_bitwise") else {
        return;
    };
    for (rows, cols, scale) in [(1, 1, 1.0), (37, 96, 3.0), (64, 10, 20.0), (3, 1000, 8.0)] {
        let x = randn(rows * cols, rows as u64, scale);
        assert_bitwise(
            &format!("softmax {rows}x{cols}"),
            &dev.softmax_rows(&x, cols).unwrap(),
            &ops::softmax_rows(&x, cols),
        );
        let mut r = Rng::new(9);
        let t: Vec<u32> = (0..rows).map(|_| r.below(cols as u64) as u32).collect();
        let (gl, gd) = dev.cross_entropy(&x, &t, cols).unwrap();
        let (cl, cd) = ops::cross_entropy(&x, &t, cols);
        assert_bitwise(&format!("cross-entropy loss {rows}x{cols}"), &[gl], &[cl]);
        assert_bitwise(&format!("cross-entropy grad {rows}x{cols}"), &gd, &cd);
    }
}

#[test]
fn gpu_layer_norm_equals_cpu_bitwise() {
    let Some(dev) = gpu_or_skip("gpu_layer_norm_equals_cpu_bitwise") else {
        return;
    };
    for (rows, dim) in [(1, 1), (13, 64), (100, 96), (4, 384)] {
        let x = randn(rows * dim, dim as u64, 2.0);
        let gamma = randn(dim, 3, 1.0);
        let beta = randn(dim, 4, 1.0);
        let (gy, gc) = dev.layer_norm(&x, &gamma, &beta, 1e-5).unwrap();
        let (cy, cc) = ops::layer_norm(&x, &gamma, &beta, 1e-5);
        assert_bitwise("layer norm y", &gy, &cy);
        assert_bitwise("layer norm xhat", &gc.xhat, &cc.xhat);
        assert_bitwise("layer norm rstd", &gc.rstd, &cc.rstd);
        let dy = randn(rows * dim, 11, 1.0);
        let (mut gg, mut gb) = (randn(dim, 12, 1.0), randn(dim, 13, 1.0));
        let (mut cg, mut cb) = (gg.clone(), gb.clone());
        let gdx = dev
            .layer_norm_backward(&cc, &gamma, &dy, &mut gg, &mut gb)
            .unwrap();
        let cdx = ops::layer_norm_backward(&cc, &gamma, &dy, &mut cg, &mut cb);
        assert_bitwise("layer norm dx", &gdx, &cdx);
        assert_bitwise("layer norm dgamma", &gg, &cg);
        assert_bitwise("layer norm dbeta", &gb, &cb);
    }
}

#[test]
fn gpu_embedding_equals_cpu_bitwise() {
    let Some(dev) = gpu_or_skip("gpu_embedding_equals_cpu_bitwise") else {
        return;
    };
    let (vocab, dim, n) = (96, 24, 300);
    let table = randn(vocab * dim, 1, 1.0);
    let mut r = Rng::new(2);
    // Repeated ids: the gradient adds several rows into one, in order.
    let ids: Vec<u32> = (0..n).map(|_| r.below(20) as u32).collect();
    assert_bitwise(
        "embedding",
        &dev.embedding(&ids, &table, dim).unwrap(),
        &ops::embedding(&ids, &table, dim),
    );
    let dy = randn(n * dim, 3, 1.0);
    let mut g = randn(vocab * dim, 4, 0.1);
    let mut c = g.clone();
    dev.embedding_backward(&ids, &dy, dim, &mut g).unwrap();
    ops::embedding_backward(&ids, &dy, dim, &mut c);
    assert_bitwise("embedding backward", &g, &c);
}

#[test]
fn gpu_attention_equals_cpu_bitwise() {
    let Some(dev) = gpu_or_skip("gpu_attention_equals_cpu_bitwise") else {
        return;
    };
    for s in [
        AttnShape {
            batch: 1,
            seq: 1,
            heads: 1,
            head_dim: 1,
        },
        AttnShape {
            batch: 2,
            seq: 17,
            heads: 3,
            head_dim: 8,
        },
        AttnShape {
            batch: 3,
            seq: 64,
            heads: 4,
            head_dim: 16,
        },
    ] {
        let d = s.heads * s.head_dim;
        let qkv = randn(s.batch * s.seq * 3 * d, s.seq as u64, 1.5);
        let (go, gp) = dev.attention_forward(&qkv, s, 1).unwrap();
        let (co, cp) = ops::attention_forward(&qkv, s, 2);
        assert_bitwise("attention out", &go, &co);
        assert_bitwise("attention probs", &gp, &cp);
        let dout = randn(s.batch * s.seq * d, 77, 1.0);
        assert_bitwise(
            "attention backward",
            &dev.attention_backward(&qkv, &cp, &dout, s, 1).unwrap(),
            &ops::attention_backward(&qkv, &cp, &dout, s, 2),
        );
    }
}

#[test]
fn gpu_adamw_equals_cpu_bitwise() {
    let Some(dev) = gpu_or_skip("gpu_adamw_equals_cpu_bitwise") else {
        return;
    };
    use crate::optim::OptimizerConfig;
    use crate::tensor::{ParamSet, Tensor};
    let set = |seed: u64, scale: f32| ParamSet {
        tensors: vec![
            (
                "w".into(),
                Tensor {
                    shape: vec![50, 40],
                    data: randn(2000, seed, scale),
                },
            ),
            (
                "b".into(),
                Tensor {
                    shape: vec![40],
                    data: randn(40, seed + 1, scale),
                },
            ),
        ],
    };
    let opt = OptimizerConfig::Adamw {
        lr: 3e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.01,
    };
    let (mut gp, mut cp) = (set(1, 1.0), set(1, 1.0));
    let mut gs = opt.init_slots(&gp);
    let mut cs = opt.init_slots(&cp);
    for t in 1..=5 {
        let grads = set(10 + t, 0.1);
        opt.apply_on(&dev, t, &mut gp, &grads, &mut gs).unwrap();
        opt.apply(t, &mut cp, &grads, &mut cs);
    }
    for i in 0..2 {
        assert_bitwise("adamw params", &gp.get(i).data, &cp.get(i).data);
        assert_bitwise("adamw m", &gs[0].get(i).data, &cs[0].get(i).data);
        assert_bitwise("adamw v", &gs[1].get(i).data, &cs[1].get(i).data);
    }
}

#[test]
fn gpu_out_of_memory_is_an_error_naming_the_size() {
    let Some(dev) = gpu_or_skip("gpu_out_of_memory_is_an_error_naming_the_size") else {
        return;
    };
    let Device::Gpu(g) = &dev else { unreachable!() };
    let too_big = g.max_buffer_bytes() + 4;
    let err = dev.probe_allocation(too_big).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, MlError::DeviceOutOfMemory { bytes, .. } if bytes == too_big),
        "{msg}"
    );
    assert!(msg.contains(&too_big.to_string()), "{msg}");
    assert_eq!(
        err.failure_reason(),
        None,
        "a device fault is not a job result"
    );
    // The device still works afterwards.
    let mut c = vec![0.0; 4];
    dev.matmul(
        &[1.0; 4],
        Trans::No,
        &[2.0; 4],
        Trans::No,
        (2, 2, 2),
        &mut c,
        1,
    )
    .unwrap();
    assert_eq!(c, vec![4.0; 4]);
}

#[test]
fn gpu_device_class_names_backend_and_driver() {
    assert_eq!(Device::Cpu.class(), CPU_CLASS);
    let Some(dev) = gpu_or_skip("gpu_device_class_names_backend_and_driver") else {
        return;
    };
    let class = dev.class();
    eprintln!("adapter {}, class {class}", dev.name());
    assert!(class.starts_with("gpu:"), "{class}");
    assert_ne!(class, CPU_CLASS);
}

#[test]
fn gpu_self_check_passes_and_the_cpu_path_needs_none() {
    Device::Cpu.self_check().unwrap();
    let Some(dev) = gpu_or_skip("gpu_self_check_passes_and_the_cpu_path_needs_none") else {
        return;
    };
    dev.self_check().unwrap();
}
