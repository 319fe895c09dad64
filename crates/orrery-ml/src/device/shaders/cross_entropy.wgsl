// Cross-entropy, one invocation per row (ops::cross_entropy): the row's softmax into DL, then
// its loss max + log(sum exp(x - max)) - x[t] into LOSS, then DL[t] -= 1 and DL *= 1/rows.
// The row losses are summed in row order on the host. P: [2] classes, [3] 1/rows (bits).
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> T: array<u32>;
@group(0) @binding(3) var<storage, read_write> DL: array<f32>;
@group(0) @binding(4) var<storage, read_write> LOSS: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = flat_index(gid, nwg);
    if (idx >= P[1]) { return; }
    let cols = P[2];
    let inv_rows = pf(3u);
    let base = idx * cols;
    var mx = bitcast<f32>(0xff800000u);
    for (var c = 0u; c < cols; c++) {
        if (X[base + c] > mx) { mx = X[base + c]; }
    }
    var sum = 0.0f;
    for (var c = 0u; c < cols; c++) {
        let e = expf(X[base + c] - mx);
        DL[base + c] = e;
        sum = sum + e;
    }
    let inv = 1.0f / sum;
    for (var c = 0u; c < cols; c++) {
        DL[base + c] = DL[base + c] * inv;
    }
    let t = T[idx];
    LOSS[idx] = mx + logf(sum) - X[base + t];
    DL[base + t] = DL[base + t] - 1.0f;
    for (var c = 0u; c < cols; c++) {
        DL[base + c] = DL[base + c] * inv_rows;
    }
}
