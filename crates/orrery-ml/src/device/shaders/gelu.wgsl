// GELU (tanh form) and its gradient, one invocation per element, the operation order of
// ops::gelu / ops::gelu_backward. P: [2] 0 = forward, 1 = backward.
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> DY: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;

const GELU_C: f32 = 0.7978846f;
const GELU_A: f32 = 0.044715f;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = flat_index(gid, nwg);
    if (idx >= P[1]) { return; }
    let v = X[idx];
    let u = GELU_C * (v + pm(GELU_A * v * v, v));
    let t = tanhf(u);
    if (P[2] == 0u) {
        Y[idx] = 0.5f * v * (1.0f + t);
    } else {
        let du = GELU_C * (1.0f + pm(3.0f * GELU_A * v, v));
        let g = pm(0.5f, 1.0f + t) + pm(0.5f * v * (1.0f - pm(t, t)), du);
        Y[idx] = DY[idx] * g;
    }
}
