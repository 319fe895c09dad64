// Causal attention backward, first pass (ops::attention_backward), one invocation per query
// row (b, h, i): dp[j] = Σ_c go[c] v_j[c], Σ_j p[j] dp[j] (j increasing), then
// ds[j] = p[j] (dp[j] − Σ p·dp) · scale into DS (same layout as the probabilities).
// P: [2] batch, [3] seq, [4] heads, [5] head_dim, [6] scale (bits).
@group(0) @binding(1) var<storage, read> QKV: array<f32>;
@group(0) @binding(2) var<storage, read> PROBS: array<f32>;
@group(0) @binding(3) var<storage, read> DOUT: array<f32>;
@group(0) @binding(4) var<storage, read_write> DS: array<f32>;

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
    let p0 = task * t_len * t_len + i * t_len;
    let g0 = (b * t_len + i) * d + h * hd;
    var dot_pdp = 0.0f;
    for (var j = 0u; j <= i; j++) {
        let v0 = (b * t_len + j) * 3u * d + 2u * d + h * hd;
        var acc = 0.0f;
        for (var c = 0u; c < hd; c++) {
            acc = acc + pm(DOUT[g0 + c], QKV[v0 + c]);
        }
        DS[p0 + j] = acc;
        dot_pdp = dot_pdp + pm(PROBS[p0 + j], acc);
    }
    for (var j = 0u; j <= i; j++) {
        DS[p0 + j] = PROBS[p0 + j] * (DS[p0 + j] - dot_pdp) * scale;
    }
}
