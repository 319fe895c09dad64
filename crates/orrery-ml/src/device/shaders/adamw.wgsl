// AdamW, one invocation per parameter (optim.rs, OptimizerConfig::apply):
// m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g²;
// p = p - lr (m/bc1 / (sqrt(v/bc2) + eps) + decay p).
// P: [2] lr, [3] beta1, [4] beta2, [5] eps, [6] 1 - beta1, [7] 1 - beta2, [8] bc1, [9] bc2,
// [10] decay (all f32 bits; the host computes them exactly as the CPU path does).
@group(0) @binding(1) var<storage, read> G: array<f32>;
@group(0) @binding(2) var<storage, read_write> PARAM: array<f32>;
@group(0) @binding(3) var<storage, read_write> M: array<f32>;
@group(0) @binding(4) var<storage, read_write> V: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = flat_index(gid, nwg);
    if (idx >= P[1]) { return; }
    let g = G[idx];
    let m = pm(pf(3u), M[idx]) + pm(pf(6u), g);
    let v = pm(pf(4u), V[idx]) + pm(pf(7u), g * g);
    M[idx] = m;
    V[idx] = v;
    let m_hat = m / pf(8u);
    let v_hat = v / pf(9u);
    let p = PARAM[idx];
    let upd = opq(m_hat / (sqrt(v_hat) + pf(5u))) + pm(pf(10u), p);
    PARAM[idx] = p - pm(pf(2u), upd);
}
