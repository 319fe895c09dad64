//! The simulation's own random numbers: SplitMix64, seeded from the run's seed and a stream
//! name, so that every draw is reproducible and independent of any crate's algorithm choices.

/// A SplitMix64 generator.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `stream` of the run seeded with `seed`.
    pub fn new(seed: u64, stream: &str) -> Rng {
        let mut s = seed ^ 0x9E37_79B9_7F4A_7C15;
        for b in stream.bytes() {
            s = (s ^ u64::from(b)).wrapping_mul(0x100_0000_01B3);
        }
        let mut r = Rng(s);
        r.next_u64();
        r
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// An index drawn with the given weights (which add up to about 1).
    pub fn pick(&mut self, weights: impl IntoIterator<Item = f64>) -> usize {
        let x = self.unit();
        let mut acc = 0.0;
        let mut last = 0;
        for (i, w) in weights.into_iter().enumerate() {
            acc += w;
            last = i;
            if x < acc {
                return i;
            }
        }
        last
    }

    /// Geometric number of whole steps with the given mean (at least 1).
    pub fn geometric(&mut self, mean: f64) -> u32 {
        if mean <= 1.0 {
            return 1;
        }
        let p = 1.0 / mean;
        let u = self.unit().max(f64::MIN_POSITIVE);
        (1.0 + (u.ln() / (1.0 - p).ln()).floor()).min(f64::from(u32::MAX / 2)) as u32
    }
}
