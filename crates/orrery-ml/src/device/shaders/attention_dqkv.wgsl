// Causal attention backward, second pass, one invocation per element of dqkv (row (b, t),
// column x of 3d): with ds from the first pass,
//   dq[t][c] = Σ_{j ≤ t} ds[t][j] k_j[c]   (j increasing)
//   dk[t][c] = Σ_{i ≥ t} ds[i][t] q_i[c]   (i increasing)
//   dv[t][c] = Σ_{i ≥ t} p[i][t] go_i[c]   (i increasing)
// the order in which ops::attention_backward accumulates each of them.
// P: [2] batch, [3] seq, [4] heads, [5] head_dim.
@group(0) @binding(1) var<storage, read> QKV: array<f32>;
@group(0) @binding(2) var<storage, read> PROBS: array<f32>;
@group(0) @binding(3) var<storage, read> DOUT: array<f32>;
@group(0) @binding(4) var<storage, read> DS: array<f32>;
@group(0) @binding(5) var<storage, read_write> DQKV: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = flat_index(gid, nwg);
    if (idx >= P[1]) { return; }
    let t_len = P[3];
    let heads = P[4];
    let hd = P[5];
    let d = heads * hd;
    let row = idx / (3u * d);
    let x = idx % (3u * d);
    let part = x / d;
    let h = (x % d) / hd;
    let c = x % hd;
    let b = row / t_len;
    let t = row % t_len;
    let task = b * heads + h;
    let pbase = task * t_len * t_len;
    var acc = 0.0f;
    if (part == 0u) {
        for (var j = 0u; j <= t; j++) {
            let k0 = (b * t_len + j) * 3u * d + d + h * hd;
            acc = acc + pm(DS[pbase + t * t_len + j], QKV[k0 + c]);
        }
    } else if (part == 1u) {
        for (var i = t; i < t_len; i++) {
            let q0 = (b * t_len + i) * 3u * d + h * hd;
            acc = acc + pm(DS[pbase + i * t_len + t], QKV[q0 + c]);
        }
    } else {
        for (var i = t; i < t_len; i++) {
            let g0 = (b * t_len + i) * d + h * hd;
            acc = acc + pm(PROBS[pbase + i * t_len + t], DOUT[g0 + c]);
        }
    }
    DQKV[idx] = acc;
}
