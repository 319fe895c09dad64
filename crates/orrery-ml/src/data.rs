//! Data sets: synthetic classification sets generated from a seed, and a built-in public-domain
//! text corpus with a fixed character vocabulary. Nothing is ever downloaded.
//!
//! Batch `k` of a run is drawn by a generator seeded with `(seed, k)` alone, so any step can be
//! recomputed without replaying the ones before it.

use crate::error::{MlError, Result};
use crate::model::Batch;
use crate::rng::Rng;
use serde::{Deserialize, Serialize};

/// The built-in corpus: the Book of Genesis, King James Version (1611, public domain), one
/// verse per line, from Debian's `bible-kjv-text` package. See `docs/ml.md` for provenance.
pub const GENESIS_KJV: &str = include_str!("../data/genesis-kjv.txt");

/// Size of the character vocabulary: `'\n'` and the 95 printable ASCII characters.
pub const VOCAB_SIZE: usize = 96;

/// Most points a synthetic data set may have (keeps memory bounded for hostile specs).
pub const MAX_POINTS: usize = 1 << 22;

/// Token id of a character: `'\n'` → 0, `' '..='~'` → 1..=95.
pub fn encode_char(c: char) -> Option<u32> {
    match c {
        '\n' => Some(0),
        ' '..='~' => Some(c as u32 - ' ' as u32 + 1),
        _ => None,
    }
}

/// The character of a token id (`None` outside the vocabulary).
pub fn decode_token(t: u32) -> Option<char> {
    match t {
        0 => Some('\n'),
        1..=95 => char::from_u32(t - 1 + ' ' as u32),
        _ => None,
    }
}

/// Encode text, rejecting characters outside the vocabulary with their position.
pub fn encode(text: &str) -> Result<Vec<u32>> {
    text.chars()
        .enumerate()
        .filter(|(_, c)| *c != '\r')
        .map(|(i, c)| {
            encode_char(c).ok_or_else(|| {
                MlError::BadData(format!(
                    "character {c:?} at position {i} is outside the vocabulary (newline and printable ASCII)"
                ))
            })
        })
        .collect()
}

/// Decode token ids to text (ids outside the vocabulary become `'?'`).
pub fn decode(tokens: &[u32]) -> String {
    tokens
        .iter()
        .map(|&t| decode_token(t).unwrap_or('?'))
        .collect()
}

/// Which data set a job trains on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum DataConfig {
    /// Interleaved 2-D spirals, one arm per class, with Gaussian noise.
    Spirals {
        /// Number of arms (classes).
        classes: usize,
        /// Training points per class (a quarter as many again are drawn for validation).
        points_per_class: usize,
        /// Standard deviation of the noise added to each coordinate.
        #[serde(default = "default_noise")]
        noise: f32,
        /// Generator seed.
        seed: u64,
    },
    /// Gaussian blobs around random centres in `features` dimensions.
    Blobs {
        /// Number of blobs (classes).
        classes: usize,
        /// Dimensions.
        features: usize,
        /// Training points per class.
        points_per_class: usize,
        /// Standard deviation of each blob.
        #[serde(default = "default_spread")]
        spread: f32,
        /// Generator seed.
        seed: u64,
    },
    /// A character-level text corpus: the built-in one, or inline text.
    Corpus {
        /// Inline text to use instead of the built-in corpus.
        #[serde(default)]
        text: Option<String>,
        /// Fraction of the corpus (its end) held out for validation.
        #[serde(default = "default_validation_fraction")]
        validation_fraction: f32,
    },
}

fn default_noise() -> f32 {
    0.1
}
fn default_spread() -> f32 {
    1.0
}
fn default_validation_fraction() -> f32 {
    0.1
}

/// A loaded data set, split into training and validation parts.
#[derive(Clone, Debug)]
pub enum Dataset {
    /// Labelled feature rows.
    Classification {
        /// Features per row.
        features: usize,
        /// Number of classes.
        classes: usize,
        /// Training rows.
        train_x: Vec<f32>,
        /// Training labels.
        train_y: Vec<u32>,
        /// Validation rows.
        val_x: Vec<f32>,
        /// Validation labels.
        val_y: Vec<u32>,
    },
    /// Token streams.
    Text {
        /// Training tokens.
        train: Vec<u32>,
        /// Validation tokens.
        val: Vec<u32>,
    },
}

fn spirals(classes: usize, per_class: usize, noise: f32, rng: &mut Rng) -> (Vec<f32>, Vec<u32>) {
    let mut x = Vec::with_capacity(classes * per_class * 2);
    let mut y = Vec::with_capacity(classes * per_class);
    for c in 0..classes {
        for i in 0..per_class {
            let r = (i as f32 + 0.5) / per_class as f32;
            let theta = (c as f32) * 2.0 * std::f32::consts::PI / classes as f32 + 4.0 * r;
            x.push(r * libm::cosf(theta) + noise * rng.normal());
            x.push(r * libm::sinf(theta) + noise * rng.normal());
            y.push(c as u32);
        }
    }
    (x, y)
}

impl DataConfig {
    /// Generate or load the data set, rejecting empty or unusable ones.
    pub fn load(&self) -> Result<Dataset> {
        match *self {
            DataConfig::Spirals {
                classes,
                points_per_class,
                noise,
                seed,
            } => {
                check_points(classes, points_per_class)?;
                if !(noise >= 0.0 && noise.is_finite()) {
                    return Err(MlError::BadData(format!("noise must be >= 0, got {noise}")));
                }
                let (train_x, train_y) =
                    spirals(classes, points_per_class, noise, &mut Rng::derive(seed, 0));
                let (val_x, val_y) = spirals(
                    classes,
                    points_per_class.div_ceil(4),
                    noise,
                    &mut Rng::derive(seed, 1),
                );
                Ok(Dataset::Classification {
                    features: 2,
                    classes,
                    train_x,
                    train_y,
                    val_x,
                    val_y,
                })
            }
            DataConfig::Blobs {
                classes,
                features,
                points_per_class,
                spread,
                seed,
            } => {
                check_points(classes, points_per_class)?;
                if features == 0 || features > 4096 {
                    return Err(MlError::BadData(format!(
                        "blobs features must be between 1 and 4096, got {features}"
                    )));
                }
                let mut rng = Rng::derive(seed, 0);
                let centres: Vec<f32> = (0..classes * features)
                    .map(|_| rng.uniform_sym(4.0))
                    .collect();
                let draw = |n: usize, rng: &mut Rng| {
                    let mut x = Vec::with_capacity(classes * n * features);
                    let mut y = Vec::with_capacity(classes * n);
                    for c in 0..classes {
                        for _ in 0..n {
                            for f in 0..features {
                                x.push(centres[c * features + f] + spread * rng.normal());
                            }
                            y.push(c as u32);
                        }
                    }
                    (x, y)
                };
                let (train_x, train_y) = draw(points_per_class, &mut Rng::derive(seed, 1));
                let (val_x, val_y) = draw(points_per_class.div_ceil(4), &mut Rng::derive(seed, 2));
                Ok(Dataset::Classification {
                    features,
                    classes,
                    train_x,
                    train_y,
                    val_x,
                    val_y,
                })
            }
            DataConfig::Corpus {
                ref text,
                validation_fraction,
            } => {
                if !(0.0..1.0).contains(&validation_fraction) {
                    return Err(MlError::BadData(format!(
                        "validation_fraction must be in [0, 1), got {validation_fraction}"
                    )));
                }
                let tokens = encode(text.as_deref().unwrap_or(GENESIS_KJV))?;
                if tokens.is_empty() {
                    return Err(MlError::BadData("the corpus is empty".into()));
                }
                let n_val = (tokens.len() as f64 * validation_fraction as f64) as usize;
                let split = tokens.len() - n_val;
                Ok(Dataset::Text {
                    train: tokens[..split].to_vec(),
                    val: tokens[split..].to_vec(),
                })
            }
        }
    }
}

fn check_points(classes: usize, per_class: usize) -> Result<()> {
    if classes < 2 {
        return Err(MlError::BadData(format!(
            "a classification data set needs at least 2 classes, got {classes}"
        )));
    }
    if per_class == 0 {
        return Err(MlError::BadData(
            "the data set is empty: points_per_class is 0".into(),
        ));
    }
    if classes.saturating_mul(per_class) > MAX_POINTS {
        return Err(MlError::BadData(format!(
            "{classes} × {per_class} points is more than the limit of {MAX_POINTS}"
        )));
    }
    Ok(())
}

impl Dataset {
    /// Training batch `k`: `batch_size` rows (or sequences of `seq` tokens plus their next-token
    /// targets) drawn uniformly with replacement by a generator seeded with `(seed, k)`.
    pub fn train_batch(&self, seed: u64, k: u64, batch_size: usize, seq: usize) -> Batch {
        self.train_batch_in(seed, k, batch_size, seq, Shard::WHOLE)
    }

    /// Like [`Dataset::train_batch`], drawing only from `shard`: a contiguous slice of the
    /// training rows (or of the sequence start positions). `Shard::WHOLE` draws exactly what
    /// `train_batch` draws. Callers check [`Dataset::shard_len`] first: an empty shard panics.
    pub fn train_batch_in(
        &self,
        seed: u64,
        k: u64,
        batch_size: usize,
        seq: usize,
        shard: Shard,
    ) -> Batch {
        let mut rng = Rng::derive(seed ^ 0xBA7C_4000_0000_0000, k);
        match self {
            Dataset::Classification {
                features,
                train_x,
                train_y,
                ..
            } => {
                let mut x = Vec::with_capacity(batch_size * features);
                let mut y = Vec::with_capacity(batch_size);
                for _ in 0..batch_size {
                    let i = shard.draw(&mut rng, train_y.len() as u64) as usize;
                    x.extend_from_slice(&train_x[i * features..(i + 1) * features]);
                    y.push(train_y[i]);
                }
                Batch::Classify { x, y }
            }
            Dataset::Text { train, .. } => {
                let mut ids = Vec::with_capacity(batch_size * seq);
                let mut targets = Vec::with_capacity(batch_size * seq);
                let starts = (train.len() - seq) as u64;
                for _ in 0..batch_size {
                    let s = shard.draw(&mut rng, starts) as usize;
                    ids.extend_from_slice(&train[s..s + seq]);
                    targets.extend_from_slice(&train[s + 1..s + seq + 1]);
                }
                Batch::Tokens {
                    ids,
                    targets,
                    batch: batch_size,
                    seq,
                }
            }
        }
    }

    /// How many rows (classification) or sequence start positions (text, sequences of `seq`
    /// tokens) `shard` holds: what [`Dataset::train_batch_in`] draws from.
    pub fn shard_len(&self, seq: usize, shard: Shard) -> u64 {
        let total = match self {
            Dataset::Classification { train_y, .. } => train_y.len() as u64,
            Dataset::Text { train, .. } => train.len().saturating_sub(seq) as u64,
        };
        shard.len(total)
    }

    /// The validation set as batches: all rows at once for classification; for text,
    /// consecutive non-overlapping windows of `seq` tokens, `batch_size` windows per batch, at
    /// most `max_batches` batches.
    pub fn validation_batches(
        &self,
        batch_size: usize,
        seq: usize,
        max_batches: usize,
    ) -> Vec<Batch> {
        match self {
            Dataset::Classification { val_x, val_y, .. } => vec![Batch::Classify {
                x: val_x.clone(),
                y: val_y.clone(),
            }],
            Dataset::Text { val, .. } => {
                let windows = val.len().saturating_sub(1) / seq.max(1);
                let mut out = Vec::new();
                let mut w = 0;
                while w < windows && out.len() < max_batches {
                    let n = batch_size.min(windows - w);
                    let mut ids = Vec::with_capacity(n * seq);
                    let mut targets = Vec::with_capacity(n * seq);
                    for i in w..w + n {
                        ids.extend_from_slice(&val[i * seq..(i + 1) * seq]);
                        targets.extend_from_slice(&val[i * seq + 1..(i + 1) * seq + 1]);
                    }
                    out.push(Batch::Tokens {
                        ids,
                        targets,
                        batch: n,
                        seq,
                    });
                    w += n;
                }
                out
            }
        }
    }

    /// Cross-entropy (nats per token) of the validation text under the training text's
    /// character frequencies (add-one smoothed): the loss a model that ignores context gets.
    pub fn unigram_baseline(&self) -> Option<f64> {
        let Dataset::Text { train, val } = self else {
            return None;
        };
        let mut counts = [1u64; VOCAB_SIZE];
        for &t in train {
            counts[t as usize] += 1;
        }
        let total: u64 = counts.iter().sum();
        if val.len() < 2 {
            return None;
        }
        let nll: f64 = val[1..]
            .iter()
            .map(|&t| -((counts[t as usize] as f64) / total as f64).ln())
            .sum();
        Some(nll / (val.len() - 1) as f64)
    }
}

/// One of `count` disjoint slices of a training split that together cover it: what one worker
/// of a cluster job trains on. The split's rows (or sequence start positions) are cut into
/// blocks of [`SHARD_BLOCK`]; block `b` belongs to slice `b mod count`. Interleaving blocks keeps
/// every slice a sample of the whole text (a book's chapters differ), while each block stays
/// contiguous.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// Which slice, `0..count`.
    pub index: u32,
    /// How many slices.
    pub count: u32,
}

/// Rows (or start positions) per block of a [`Shard`].
pub const SHARD_BLOCK: u64 = 512;

impl Shard {
    /// The whole split.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// How many of `0..total` belong to this slice.
    pub fn len(self, total: u64) -> u64 {
        debug_assert!(self.index < self.count);
        let cycle = SHARD_BLOCK * self.count as u64;
        let rem = total % cycle;
        let mine = rem
            .saturating_sub(self.index as u64 * SHARD_BLOCK)
            .min(SHARD_BLOCK);
        total / cycle * SHARD_BLOCK + mine
    }

    /// Whether the slice holds nothing of `0..total`.
    pub fn is_empty(self, total: u64) -> bool {
        self.len(total) == 0
    }

    /// The `x`-th member (`x < len(total)`) of this slice of `0..total`, in increasing order.
    pub fn nth(self, x: u64) -> u64 {
        let (block, off) = (x / SHARD_BLOCK, x % SHARD_BLOCK);
        (block * self.count as u64 + self.index as u64) * SHARD_BLOCK + off
    }

    /// Draw a member of this slice of `0..total` uniformly. `Shard::WHOLE` draws exactly
    /// `rng.below(total)`.
    pub(crate) fn draw(self, rng: &mut Rng, total: u64) -> u64 {
        let n = self.len(total);
        assert!(n > 0, "empty shard {self:?} of {total}");
        self.nth(rng.below(n))
    }
}
