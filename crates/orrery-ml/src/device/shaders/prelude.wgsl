// Shared by every orrery-ml kernel (prepended to each shader).
//
// Binding 0 holds the call's parameters as u32 words: P[0] is always 0 (see `pm`), P[1] the
// number of invocations, P[2..] the kernel's own parameters (f32 values as their bits).
//
// Bitwise equality with the CPU reference (crates/orrery-ml/src/ops) rests on three rules:
// - every output element is computed by one invocation, reducing in the CPU's index order;
// - no multiply is fused with the add that consumes it: every product that feeds an add or a
//   subtract goes through `pm`, which XORs its bits with P[0]. The compiler cannot know that
//   P[0] is zero, so the product is rounded to f32 before the add on every driver (SPIR-V
//   without NoContraction, Metal and DXIL all permit contraction otherwise);
// - exp, expm1, tanh and log are the pure-f32 algorithms the CPU path takes from the `libm`
//   crate (FreeBSD msun), ported line by line below, with constants written as bit patterns.
@group(0) @binding(0) var<storage, read> P: array<u32>;

var<private> ZERO: u32;

// `x`, made opaque to the optimizer (see above).
fn opq(x: f32) -> f32 {
    return bitcast<f32>(bitcast<u32>(x) ^ ZERO);
}

// `a * b`, rounded to f32 before whatever consumes it.
fn pm(a: f32, b: f32) -> f32 {
    return opq(a * b);
}

fn pf(i: u32) -> f32 {
    return bitcast<f32>(P[i]);
}

fn fb(bits: u32) -> f32 {
    return bitcast<f32>(bits);
}

// The flat invocation index over a 2-D grid of 64-wide workgroups.
fn flat_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    ZERO = P[0];
    return gid.x + gid.y * nwg.x * 64u;
}

// libm scalbnf (generic scalbn for f32): x * 2^n, prescaling out-of-range exponents.
fn scalbnf(x_in: f32, n_in: i32) -> f32 {
    var x = x_in;
    var n = n_in;
    if (n > 127) {
        x = x * fb(0x7f000000u);
        n = n - 127;
        if (n > 127) {
            x = x * fb(0x7f000000u);
            n = n - 127;
            if (n > 127) { n = 127; }
        }
    } else if (n < -126) {
        // 2^-126 * 2^24 = 2^-102
        x = x * fb(0x0c800000u);
        n = n + 102;
        if (n < -126) {
            x = x * fb(0x0c800000u);
            n = n + 102;
            if (n < -126) { n = -126; }
        }
    }
    return x * bitcast<f32>(u32(127 + n) << 23u);
}

// libm expf (FreeBSD e_expf.c).
fn expf(x_in: f32) -> f32 {
    var x = x_in;
    var hx = bitcast<u32>(x);
    let sign = i32(hx >> 31u);
    let signb = sign != 0;
    hx = hx & 0x7fffffffu;
    if (hx >= 0x42aeac50u) {
        if (hx > 0x7f800000u) { return x; }
        if (hx >= 0x42b17218u && !signb) { return x * fb(0x7f000000u); }
        if (signb && hx >= 0x42cff1b5u) { return 0.0f; }
    }
    var k: i32;
    var hi: f32;
    var lo: f32;
    if (hx > 0x3eb17218u) {
        if (hx > 0x3f851592u) {
            var half = 0.5f;
            if (signb) { half = -0.5f; }
            k = i32(pm(fb(0x3fb8aa3bu), x) + half);
        } else {
            k = 1 - sign - sign;
        }
        let kf = f32(k);
        hi = x - pm(kf, fb(0x3f317200u));
        lo = pm(kf, fb(0x35bfbe8eu));
        x = hi - lo;
    } else if (hx > 0x39000000u) {
        k = 0;
        hi = x;
        lo = 0.0f;
    } else {
        return 1.0f + x;
    }
    let xx = x * x;
    let c = x - pm(xx, fb(0x3e2aaa8fu) + pm(xx, fb(0xbb355215u)));
    let y = 1.0f + ((opq(x * c / (2.0f - c)) - lo) + hi);
    if (k == 0) { return y; }
    return scalbnf(y, k);
}

// libm expm1f (FreeBSD s_expm1f.c).
fn expm1f(x_in: f32) -> f32 {
    var x = x_in;
    var hx = bitcast<u32>(x);
    let sign = (hx >> 31u) != 0u;
    hx = hx & 0x7fffffffu;
    let ln2_hi = fb(0x3f317180u);
    let ln2_lo = fb(0x3717f7d1u);
    if (hx >= 0x4195b844u) {
        if (hx > 0x7f800000u) { return x; }
        if (sign) { return -1.0f; }
        if (hx > 0x42b17217u) { return x * fb(0x7f000000u); }
    }
    var k: i32;
    var hi: f32;
    var lo: f32;
    var c = 0.0f;
    if (hx > 0x3eb17218u) {
        if (hx < 0x3f851592u) {
            if (!sign) {
                hi = x - ln2_hi;
                lo = ln2_lo;
                k = 1;
            } else {
                hi = x + ln2_hi;
                lo = -ln2_lo;
                k = -1;
            }
        } else {
            var half = 0.5f;
            if (sign) { half = -0.5f; }
            k = i32(pm(fb(0x3fb8aa3bu), x) + half);
            let t = f32(k);
            hi = x - pm(t, ln2_hi);
            lo = pm(t, ln2_lo);
        }
        x = hi - lo;
        c = (hi - x) - lo;
    } else if (hx < 0x33000000u) {
        return x;
    } else {
        k = 0;
    }
    let hfx = 0.5f * x;
    let hxs = pm(x, hfx);
    let r1 = 1.0f + pm(hxs, fb(0xbd088868u) + pm(hxs, fb(0x3acf3010u)));
    let t = 3.0f - pm(r1, hfx);
    var e = hxs * ((r1 - t) / (6.0f - pm(x, t)));
    if (k == 0) {
        return x - (pm(x, e) - hxs);
    }
    e = pm(x, e - c) - c;
    e = e - hxs;
    if (k == -1) {
        return pm(0.5f, x - e) - 0.5f;
    }
    if (k == 1) {
        if (x < -0.25f) {
            return -2.0f * (e - (x + 0.5f));
        }
        return 1.0f + pm(2.0f, x - e);
    }
    let twopk = bitcast<f32>(u32(127 + k) << 23u);
    if (k < 0 || k > 56) {
        var y = x - e + 1.0f;
        if (k == 128) {
            y = y * 2.0f * fb(0x7f000000u);
        } else {
            y = y * twopk;
        }
        return y - 1.0f;
    }
    let uf = bitcast<f32>(u32(127 - k) << 23u);
    if (k < 23) {
        return (x - e + (1.0f - uf)) * twopk;
    }
    return (x - (e + uf) + 1.0f) * twopk;
}

// libm tanhf (musl/FreeBSD s_tanhf.c).
fn tanhf(x_in: f32) -> f32 {
    var ix = bitcast<u32>(x_in);
    let sign = (ix >> 31u) != 0u;
    ix = ix & 0x7fffffffu;
    let x = bitcast<f32>(ix);
    let w = ix;
    var tt: f32;
    if (w > 0x3f0c9f54u) {
        if (w > 0x41200000u) {
            tt = 1.0f + 0.0f / x;
        } else {
            let t = expm1f(2.0f * x);
            tt = 1.0f - opq(2.0f / (t + 2.0f));
        }
    } else if (w > 0x3e82c578u) {
        let t = expm1f(2.0f * x);
        tt = t / (t + 2.0f);
    } else if (w >= 0x00800000u) {
        let t = expm1f(-2.0f * x);
        tt = -t / (t + 2.0f);
    } else {
        tt = x;
    }
    if (sign) { return -tt; }
    return tt;
}

// libm logf (FreeBSD e_logf.c), for finite positive arguments (a sum of exponentials >= 1).
fn logf(x_in: f32) -> f32 {
    var x = x_in;
    var ix = bitcast<u32>(x);
    var k = 0;
    if (ix < 0x00800000u || (ix >> 31u) != 0u) {
        if ((ix << 1u) == 0u) { return -1.0f / (x * x); }
        if ((ix >> 31u) != 0u) { return (x - x) / 0.0f; }
        k = k - 25;
        x = x * fb(0x4c000000u);
        ix = bitcast<u32>(x);
    } else if (ix >= 0x7f800000u) {
        return x;
    } else if (ix == 0x3f800000u) {
        return 0.0f;
    }
    ix = ix + (0x3f800000u - 0x3f3504f3u);
    k = k + i32(ix >> 23u) - 0x7f;
    ix = (ix & 0x007fffffu) + 0x3f3504f3u;
    x = bitcast<f32>(ix);
    let f = x - 1.0f;
    let s = f / (2.0f + f);
    let z = s * s;
    let w = z * z;
    let t1 = pm(w, fb(0x3eccce13u) + pm(w, fb(0x3e789e26u)));
    let t2 = pm(z, fb(0x3f2aaaaau) + pm(w, fb(0x3e91e9eeu)));
    let r = t2 + t1;
    let hfsq = pm(0.5f * f, f);
    let dk = f32(k);
    return pm(s, hfsq + r) + pm(dk, fb(0x3717f7d1u)) - hfsq + f + pm(dk, fb(0x3f317180u));
}
