// Layer norm backward, dgamma and dbeta, one invocation per column: starting from the
// gradients given (they accumulate), rows added in increasing order (ops::layer_norm_backward).
// P: [2] dim, [3] rows.
@group(0) @binding(1) var<storage, read> XHAT: array<f32>;
@group(0) @binding(2) var<storage, read> DY: array<f32>;
@group(0) @binding(3) var<storage, read> DG_IN: array<f32>;
@group(0) @binding(4) var<storage, read> DB_IN: array<f32>;
@group(0) @binding(5) var<storage, read_write> DG: array<f32>;
@group(0) @binding(6) var<storage, read_write> DB: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = flat_index(gid, nwg);
    if (idx >= P[1]) { return; }
    let dim = P[2];
    let rows = P[3];
    var g = DG_IN[idx];
    var b = DB_IN[idx];
    for (var r = 0u; r < rows; r++) {
        let d = DY[r * dim + idx];
        g = g + pm(d, XHAT[r * dim + idx]);
        b = b + d;
    }
    DG[idx] = g;
    DB[idx] = b;
}
