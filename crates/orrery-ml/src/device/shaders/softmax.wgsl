// Row-wise softmax, one invocation per row: max, then exp(x - max) and their sum in column
// order, then a multiply by 1/sum (ops::softmax_into). P: [2] cols.
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = flat_index(gid, nwg);
    if (idx >= P[1]) { return; }
    let cols = P[2];
    let base = idx * cols;
    var mx = bitcast<f32>(0xff800000u);
    for (var c = 0u; c < cols; c++) {
        if (X[base + c] > mx) { mx = X[base + c]; }
    }
    var sum = 0.0f;
    for (var c = 0u; c < cols; c++) {
        let e = expf(X[base + c] - mx);
        Y[base + c] = e;
        sum = sum + e;
    }
    let inv = 1.0f / sum;
    for (var c = 0u; c < cols; c++) {
        Y[base + c] = Y[base + c] * inv;
    }
}
