// Embedding gradient, one invocation per table element (row, c): starting from the gradient
// given, dy[i, c] is added for every i with ids[i] = row, i increasing
// (ops::embedding_backward adds rows in i order). No atomics. P: [2] dim, [3] ids.
@group(0) @binding(1) var<storage, read> IDS: array<u32>;
@group(0) @binding(2) var<storage, read> DY: array<f32>;
@group(0) @binding(3) var<storage, read> DT_IN: array<f32>;
@group(0) @binding(4) var<storage, read_write> DT: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = flat_index(gid, nwg);
    if (idx >= P[1]) { return; }
    let dim = P[2];
    let n = P[3];
    let row = idx / dim;
    let c = idx % dim;
    var g = DT_IN[idx];
    for (var i = 0u; i < n; i++) {
        if (IDS[i] == row) {
            g = g + DY[i * dim + c];
        }
    }
    DT[idx] = g;
}
