//! Choosing the next token from logits: greedy, or seeded temperature / nucleus sampling.
//!
//! ```text
//! temperature == 0:  the index of the largest logit (the lowest index among equal maxima)
//! otherwise:         s[i] = logits[i] / temperature        (one division per logit)
//!                    p    = softmax(s)                      (crate::ops order)
//!                    top_p < 1: order tokens by p descending, ties by index ascending;
//!                               keep the shortest prefix whose running sum (in that order,
//!                               from 0.0) reaches top_p (at least one token)
//!                    top_p = 1: keep every token, in index order
//!                    u = rng.uniform() · (running sum of the kept p)
//!                    pick the first kept token whose running sum exceeds u (the last if none)
//! ```
//!
//! One `rng.uniform()` is drawn per sampled token (none when greedy), from a SplitMix64
//! seeded with `seed`, so a generation is a pure function of (weights, prompt, parameters).

use super::{InferError, Result};
use crate::ops;
use crate::rng::Rng;

/// Most stop sequences per request, and the longest one in bytes: bounds the text search
/// after every token.
pub const MAX_STOP_SEQUENCES: usize = 8;
/// See [`MAX_STOP_SEQUENCES`].
pub const MAX_STOP_BYTES: usize = 256;

/// How to pick tokens and when to stop.
#[derive(Clone, Debug, PartialEq)]
pub struct SampleParams {
    /// Most tokens to generate (at least 1; prompt + max_tokens must fit the context).
    pub max_tokens: u32,
    /// 0 for greedy decoding; otherwise the softmax temperature (finite, > 0).
    pub temperature: f32,
    /// Nucleus mass in `(0, 1]`; 1 samples from the whole distribution.
    pub top_p: f32,
    /// Seed of the sampler's random numbers.
    pub seed: u64,
    /// Stop as soon as the generated text contains one of these (non-empty) strings; the
    /// text returned ends before it.
    pub stop: Vec<String>,
}

impl Default for SampleParams {
    fn default() -> Self {
        SampleParams {
            max_tokens: 64,
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
            stop: Vec::new(),
        }
    }
}

impl SampleParams {
    /// Check every field's range.
    pub fn validate(&self) -> Result<()> {
        if self.max_tokens == 0 {
            return Err(InferError::NoTokensRequested);
        }
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(InferError::BadParams(format!(
                "temperature is {}; use 0 for greedy decoding or a finite positive value",
                self.temperature
            )));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(InferError::BadParams(format!(
                "top_p is {}; it must be in (0, 1] (1 disables nucleus sampling)",
                self.top_p
            )));
        }
        if self.stop.len() > MAX_STOP_SEQUENCES {
            return Err(InferError::BadParams(format!(
                "{} stop sequences; at most {MAX_STOP_SEQUENCES}",
                self.stop.len()
            )));
        }
        if let Some(s) = self
            .stop
            .iter()
            .find(|s| s.is_empty() || s.len() > MAX_STOP_BYTES)
        {
            return Err(InferError::BadParams(format!(
                "stop sequence {s:?} must be 1 to {MAX_STOP_BYTES} bytes long"
            )));
        }
        Ok(())
    }
}

/// The next token for `logits` (see the module documentation for the exact procedure).
pub fn sample(logits: &[f32], params: &SampleParams, rng: &mut Rng) -> Result<u32> {
    if logits.is_empty() || logits.iter().any(|v| !v.is_finite()) {
        return Err(InferError::NonFinite("the logits"));
    }
    if params.temperature == 0.0 {
        return Ok(argmax(logits));
    }
    let scaled: Vec<f32> = logits.iter().map(|&l| l / params.temperature).collect();
    let mut probs = vec![0.0f32; scaled.len()];
    ops::softmax_into(&scaled, &mut probs);
    let kept: Vec<u32> = if params.top_p < 1.0 {
        nucleus(&probs, params.top_p)
    } else {
        (0..probs.len() as u32).collect()
    };
    let mut total = 0.0f32;
    for &i in &kept {
        total += probs[i as usize];
    }
    let u = rng.uniform() * total;
    let mut cum = 0.0f32;
    for &i in &kept {
        cum += probs[i as usize];
        if u < cum {
            return Ok(i);
        }
    }
    Ok(kept[kept.len() - 1])
}

/// Index of the largest value, the lowest index among equal maxima.
pub fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

/// The shortest prefix of tokens by descending probability (ties by index) whose mass
/// reaches `top_p`.
fn nucleus(probs: &[f32], top_p: f32) -> Vec<u32> {
    let mut order: Vec<u32> = (0..probs.len() as u32).collect();
    // Stable sort on a total order: equal probabilities keep increasing index order.
    order.sort_by(|&a, &b| probs[b as usize].total_cmp(&probs[a as usize]));
    let mut cum = 0.0f32;
    let mut keep = order.len();
    for (n, &i) in order.iter().enumerate() {
        cum += probs[i as usize];
        if cum >= top_p {
            keep = n + 1;
            break;
        }
    }
    order.truncate(keep);
    order
}
