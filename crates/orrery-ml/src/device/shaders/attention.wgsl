// Causal attention forward (ops::attention_forward), one invocation per query row (b, h, i):
// scores s[j] = (Σ_c q[c] k_j[c]) · scale for j ≤ i into PROBS, their softmax in place, then
// o[c] = Σ_j p[j] v_j[c] (j increasing) into OUT. PROBS must start zeroed (above the diagonal).
// P: [2] batch, [3] seq, [4] heads, [5] head_dim, [6] scale (bits).
@group(0) @binding(1) var<storage, read> QKV: array<f32>;
@group(0) @binding(2) var<storage, read_write> OUT: array<f32>;
@group(0) @binding(3) var<storage, read_write> PROBS: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = flat_index(gid, nwg);
    if (idx >= P[1]) { return; }
    let t_len = P[3];
    let heads = P[4];
    let hd = P[5];
    let scale = pf(6u);
    let d = heads * hd;
    let task = idx / t_len;
    let i = idx % t_len;
    let b = task / heads;
    let h = task % heads;
    let q0 = (b * t_len + i) * 3u * d + h * hd;
    let p0 = task * t_len * t_len + i * t_len;
    var mx = bitcast<f32>(0xff800000u);
    for (var j = 0u; j <= i; j++) {
        let k0 = (b * t_len + j) * 3u * d + d + h * hd;
        var dot = 0.0f;
        for (var c = 0u; c < hd; c++) {
            dot = dot + pm(QKV[q0 + c], QKV[k0 + c]);
        }
        let s = dot * scale;
        PROBS[p0 + j] = s;
        if (s > mx) { mx = s; }
    }
    var sum = 0.0f;
    for (var j = 0u; j <= i; j++) {
        let e = expf(PROBS[p0 + j] - mx);
        PROBS[p0 + j] = e;
        sum = sum + e;
    }
    let inv = 1.0f / sum;
    for (var j = 0u; j <= i; j++) {
        PROBS[p0 + j] = PROBS[p0 + j] * inv;
    }
    let o0 = (b * t_len + i) * d + h * hd;
    for (var c = 0u; c < hd; c++) {
        var acc = 0.0f;
        for (var j = 0u; j <= i; j++) {
            let v0 = (b * t_len + j) * 3u * d + 2u * d + h * hd;
            acc = acc + pm(PROBS[p0 + j], QKV[v0 + c]);
        }
        OUT[o0 + c] = acc;
    }
}
