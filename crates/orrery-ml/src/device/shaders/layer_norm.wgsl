// Layer norm forward, one invocation per row (ops::layer_norm): sum, mean = sum * (1/dim),
// biased variance in column order, rstd = 1 / sqrt(var * (1/dim) + eps), then per column
// xhat = (x - mean) * rstd and y = xhat * gamma + beta. P: [2] dim, [3] 1/dim, [4] eps.
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> G: array<f32>;
@group(0) @binding(3) var<storage, read> BETA: array<f32>;
@group(0) @binding(4) var<storage, read_write> Y: array<f32>;
@group(0) @binding(5) var<storage, read_write> XHAT: array<f32>;
@group(0) @binding(6) var<storage, read_write> RSTD: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = flat_index(gid, nwg);
    if (idx >= P[1]) { return; }
    let dim = P[2];
    let inv_dim = pf(3u);
    let eps = pf(4u);
    let base = idx * dim;
    var sum = 0.0f;
    for (var c = 0u; c < dim; c++) {
        sum = sum + X[base + c];
    }
    let mean = sum * inv_dim;
    var v = 0.0f;
    for (var c = 0u; c < dim; c++) {
        let d = X[base + c] - mean;
        v = v + pm(d, d);
    }
    let rs = 1.0f / sqrt(pm(v, inv_dim) + eps);
    RSTD[idx] = rs;
    for (var c = 0u; c < dim; c++) {
        let h = (X[base + c] - mean) * rs;
        XHAT[base + c] = h;
        Y[base + c] = pm(h, G[c]) + BETA[c];
    }
}
