// Embedding lookup, one invocation per output element: Y[i, c] = TABLE[ids[i], c].
// P: [2] dim.
@group(0) @binding(1) var<storage, read> IDS: array<u32>;
@group(0) @binding(2) var<storage, read> TABLE: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = flat_index(gid, nwg);
    if (idx >= P[1]) { return; }
    let dim = P[2];
    Y[idx] = TABLE[IDS[idx / dim] * dim + idx % dim];
}
