// Layer norm backward, dx, one invocation per row (ops::layer_norm_backward):
// g = dy * gamma, the sums of g and g * xhat in column order, then
// dx = rstd * ((g - mean(g)) - xhat * mean(g * xhat)). P: [2] dim, [3] 1/dim.
@group(0) @binding(1) var<storage, read> XHAT: array<f32>;
@group(0) @binding(2) var<storage, read> RSTD: array<f32>;
@group(0) @binding(3) var<storage, read> G: array<f32>;
@group(0) @binding(4) var<storage, read> DY: array<f32>;
@group(0) @binding(5) var<storage, read_write> DX: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = flat_index(gid, nwg);
    if (idx >= P[1]) { return; }
    let dim = P[2];
    let inv_dim = pf(3u);
    let base = idx * dim;
    var s1 = 0.0f;
    var s2 = 0.0f;
    for (var c = 0u; c < dim; c++) {
        let g = pm(DY[base + c], G[c]);
        s1 = s1 + g;
        s2 = s2 + pm(g, XHAT[base + c]);
    }
    let m1 = s1 * inv_dim;
    let m2 = s2 * inv_dim;
    let rs = RSTD[idx];
    for (var c = 0u; c < dim; c++) {
        let g = pm(DY[base + c], G[c]);
        DX[base + c] = rs * ((g - m1) - pm(XHAT[base + c], m2));
    }
}
