//! The reference cloud prices the explorer's overview and the simulator (`orrery sim`) set the
//! network's prices beside. One catalog, read by both.
//!
//! Source: public on-demand list prices of large cloud providers, per GPU-hour (or per
//! vCPU-hour), as of 2026, rounded to the cent. They are a *reference* for orientation — not a
//! quote, not a live feed, and not what any particular customer pays (reserved and spot
//! capacity is cheaper). Where several clouds list a model, the figure is a typical one among
//! them. `docs/explorer.md` repeats the table.

/// One catalog entry.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReferencePrice {
    /// Name shown beside the network's price.
    pub name: &'static str,
    /// Lower-case substrings that must all appear in a provider's reported GPU model.
    pub needles: &'static [&'static str],
    /// USD per GPU-hour (per vCPU-hour for the CPU entry).
    pub usd_per_hour: f64,
}

/// GPU models, most specific first (the first entry whose needles all match wins).
pub const GPU_REFERENCE_PRICES: &[ReferencePrice] = &[
    ReferencePrice {
        name: "H200 141GB",
        needles: &["h200"],
        usd_per_hour: 10.60,
    },
    ReferencePrice {
        name: "H100 80GB",
        needles: &["h100"],
        usd_per_hour: 6.90,
    },
    ReferencePrice {
        name: "A100 80GB",
        needles: &["a100", "80"],
        usd_per_hour: 4.10,
    },
    ReferencePrice {
        name: "A100 40GB",
        needles: &["a100"],
        usd_per_hour: 3.67,
    },
    ReferencePrice {
        name: "L40S 48GB",
        needles: &["l40s"],
        usd_per_hour: 1.86,
    },
    ReferencePrice {
        name: "A10G 24GB",
        needles: &["a10g"],
        usd_per_hour: 1.01,
    },
    ReferencePrice {
        name: "L4 24GB",
        needles: &["l4"],
        usd_per_hour: 0.71,
    },
    ReferencePrice {
        name: "V100 16GB",
        needles: &["v100"],
        usd_per_hour: 2.48,
    },
    ReferencePrice {
        name: "RTX 4090 24GB",
        needles: &["4090"],
        usd_per_hour: 0.69,
    },
    ReferencePrice {
        name: "T4 16GB",
        needles: &["t4"],
        usd_per_hour: 0.35,
    },
];

/// A general-purpose vCPU-hour (x86, on demand), beside the network's CPU core-hour.
pub const CPU_REFERENCE_PRICE: ReferencePrice = ReferencePrice {
    name: "general-purpose vCPU",
    needles: &[],
    usd_per_hour: 0.048,
};

/// A public API's list price per million tokens, beside the network's inference prices.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TokenReferencePrice {
    /// Who sells it.
    pub provider: &'static str,
    /// The model.
    pub model: &'static str,
    /// What kind of model it is.
    pub kind: orrery_types::inference::ModelKind,
    /// USD per million input tokens.
    pub usd_in: f64,
    /// USD per million output tokens (`None` for embeddings, which have no output tokens).
    pub usd_out: Option<f64>,
}

/// Public per-token list prices (2026), the anchors the design brief names: io.net's
/// Llama-3.3-70B and Hyperbolic's DeepSeek-V3 for generation, OpenAI's smallest embedding model
/// for embeddings. A reference for orientation, not a quote.
pub const TOKEN_REFERENCE_PRICES: &[TokenReferencePrice] = &[
    TokenReferencePrice {
        provider: "io.net",
        model: "Llama-3.3-70B",
        kind: orrery_types::inference::ModelKind::Generation,
        usd_in: 0.13,
        usd_out: Some(0.38),
    },
    TokenReferencePrice {
        provider: "Hyperbolic",
        model: "DeepSeek-V3",
        kind: orrery_types::inference::ModelKind::Generation,
        usd_in: 0.25,
        usd_out: Some(0.25),
    },
    TokenReferencePrice {
        provider: "OpenAI",
        model: "text-embedding-3-small",
        kind: orrery_types::inference::ModelKind::Embedding,
        usd_in: 0.02,
        usd_out: None,
    },
];

/// USD per ORR the comparison assumes. ORR has no market price on chain, so the explorer
/// values one ORR at one US dollar and says so beside every comparison.
pub const REFERENCE_USD_PER_ORR: f64 = 1.0;

/// The catalog entry for a GPU model as a provider reports it, if any.
pub fn gpu_reference(model: &str) -> Option<&'static ReferencePrice> {
    let m = model.to_ascii_lowercase();
    GPU_REFERENCE_PRICES
        .iter()
        .find(|r| r.needles.iter().all(|n| contains_token(&m, n)))
}

/// Whether `needle` occurs in `hay` not as part of a longer alphanumeric word — so that
/// "l4" matches "NVIDIA L4" but not "L40S", and "t4" not "RTX 4090".
fn contains_token(hay: &str, needle: &str) -> bool {
    hay.match_indices(needle).any(|(i, _)| {
        let before = hay[..i].chars().next_back();
        let after = hay[i + needle.len()..].chars().next();
        let starts_word = before.is_none_or(|c| !c.is_ascii_alphanumeric());
        // A needle ending in a digit must not run on into more digits ("l4" vs "l40s");
        // one ending in a letter must not run on into letters.
        let ends_word = after.is_none_or(|c| {
            if needle.ends_with(|d: char| d.is_ascii_digit()) {
                !c.is_ascii_digit()
            } else {
                !c.is_ascii_alphabetic()
            }
        });
        (starts_word || needle.chars().all(|c| c.is_ascii_digit())) && ends_word
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_match_their_entry_and_only_it() {
        let name = |m: &str| gpu_reference(m).map(|r| r.name);
        assert_eq!(name("NVIDIA H100 80GB HBM3"), Some("H100 80GB"));
        assert_eq!(name("NVIDIA A100-SXM4-80GB"), Some("A100 80GB"));
        assert_eq!(name("NVIDIA A100-PCIE-40GB"), Some("A100 40GB"));
        assert_eq!(name("NVIDIA L4"), Some("L4 24GB"));
        assert_eq!(name("NVIDIA L40S"), Some("L40S 48GB"));
        assert_eq!(name("NVIDIA GeForce RTX 4090"), Some("RTX 4090 24GB"));
        assert_eq!(name("Tesla T4"), Some("T4 16GB"));
        assert_eq!(name("Some Future GPU"), None);
    }
}
