// C (m×n) = op(A) (m×k) · op(B) (k×n); one invocation per element of C, p in increasing order:
// acc = acc + round(A[i,p] * B[p,j]), exactly ops::matmul_naive.
// P: [2] m, [3] k, [4] n, [5] A transposed, [6] B transposed.
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = flat_index(gid, nwg);
    if (idx >= P[1]) { return; }
    let m = P[2];
    let k = P[3];
    let n = P[4];
    let i = idx / n;
    let j = idx % n;
    var a_at = i * k;
    var a_step = 1u;
    if (P[5] != 0u) { a_at = i; a_step = m; }
    var b_at = j;
    var b_step = n;
    if (P[6] != 0u) { b_at = j * k; b_step = 1u; }
    var acc = 0.0f;
    for (var p = 0u; p < k; p++) {
        acc = acc + pm(A[a_at], B[b_at]);
        a_at += a_step;
        b_at += b_step;
    }
    C[idx] = acc;
}
