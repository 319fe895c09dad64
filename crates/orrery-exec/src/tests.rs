//! Unit tests: the bundle encoding, manifest checks, limits and what their errors advise.

use std::collections::BTreeMap;

use crate::bundle::{BUNDLE_MAGIC, Bundle, BundleError, EntryStyle, Manifest};
use crate::limits::{Limits, MAX_BUNDLE_BYTES, MAX_FUEL_PER_STEP, MAX_INPUTS};

fn sample() -> Bundle {
    let mut manifest = Manifest::wasm(EntryStyle::Stepper, 3, Some("params"));
    manifest.inputs.push("extra".into());
    manifest.name = Some("sample".into());
    let mut inputs = BTreeMap::new();
    inputs.insert("params".to_string(), b"1 2 3".to_vec());
    inputs.insert("extra".to_string(), vec![0xff; 10]);
    Bundle::new(manifest, b"\0asm\x01\0\0\0".to_vec(), inputs).unwrap()
}

#[test]
fn a_bundle_round_trips_with_a_stable_hash() {
    let bundle = sample();
    let decoded = Bundle::decode(bundle.bytes()).unwrap();
    assert_eq!(decoded.hash(), bundle.hash());
    assert_eq!(decoded.manifest(), bundle.manifest());
    assert_eq!(decoded.program(), bundle.program());
    assert_eq!(decoded.input("params"), Some(&b"1 2 3"[..]));
    assert_eq!(decoded.inputs().len(), 2);
    // Building the same bundle again gives the same bytes.
    assert_eq!(sample().bytes(), bundle.bytes());
    assert!(bundle.bytes().starts_with(&BUNDLE_MAGIC));
}

#[test]
fn the_bundle_hash_is_pinned() {
    // Changing the encoding or the hash tag changes every job's identity: it must be a
    // deliberate, versioned change. (Update this value only together with BUNDLE_MAGIC.)
    let manifest = Manifest::wasm(EntryStyle::Command, 1, None);
    let bundle = Bundle::new(manifest, b"\0asm\x01\0\0\0".to_vec(), BTreeMap::new()).unwrap();
    let expected_manifest = "runtime = \"wasm\"\nsteps = 1\ninputs = []\n\n[wasm]\nentry = \"command\"\n\n[limits]\nfuel_per_step = 2000000000\nmemory_bytes = 268435456\nmax_state_bytes = 16777216\nmax_output_bytes = 16777216\nwall_time_ms = 60000\n";
    assert_eq!(bundle.manifest().to_toml().unwrap(), expected_manifest);
    let mut bytes = BUNDLE_MAGIC.to_vec();
    bytes.extend_from_slice(&(expected_manifest.len() as u32).to_le_bytes());
    bytes.extend_from_slice(expected_manifest.as_bytes());
    bytes.extend_from_slice(&8u32.to_le_bytes());
    bytes.extend_from_slice(b"\0asm\x01\0\0\0");
    bytes.extend_from_slice(&0u32.to_le_bytes());
    assert_eq!(bundle.bytes(), &bytes[..]);
    // The identity is the blob store's content address.
    assert_eq!(bundle.hash(), orrery_types::Hash::of(&bytes));
}

#[test]
fn every_truncation_is_rejected_without_panicking() {
    let bytes = sample().bytes().to_vec();
    for len in 0..bytes.len() {
        assert!(
            Bundle::decode(&bytes[..len]).is_err(),
            "prefix of {len} bytes"
        );
    }
}

#[test]
fn every_single_byte_corruption_is_rejected_or_decodes_to_a_different_hash() {
    let original = sample();
    let bytes = original.bytes().to_vec();
    for i in 0..bytes.len() {
        let mut corrupt = bytes.clone();
        corrupt[i] ^= 0x5a;
        if let Ok(b) = Bundle::decode(&corrupt) {
            assert_ne!(b.hash(), original.hash());
        }
    }
}

#[test]
fn trailing_bytes_and_bad_magic_are_rejected() {
    let mut bytes = sample().bytes().to_vec();
    bytes.push(0);
    assert_eq!(
        Bundle::decode(&bytes).unwrap_err(),
        BundleError::TrailingBytes(1)
    );
    let mut bytes = sample().bytes().to_vec();
    bytes[0] = b'X';
    assert_eq!(Bundle::decode(&bytes).unwrap_err(), BundleError::BadMagic);
}

#[test]
fn a_huge_length_prefix_is_refused_before_allocating() {
    let mut bytes = BUNDLE_MAGIC.to_vec();
    bytes.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        Bundle::decode(&bytes).unwrap_err(),
        BundleError::SectionTooLarge {
            what: "manifest",
            ..
        }
    ));
    // A valid manifest followed by a program length far past the end.
    let manifest = Manifest::wasm(EntryStyle::Command, 1, None)
        .to_toml()
        .unwrap();
    let mut bytes = BUNDLE_MAGIC.to_vec();
    bytes.extend_from_slice(&(manifest.len() as u32).to_le_bytes());
    bytes.extend_from_slice(manifest.as_bytes());
    bytes.extend_from_slice(&(1_000_000u32).to_le_bytes());
    assert_eq!(
        Bundle::decode(&bytes).unwrap_err(),
        BundleError::Truncated("program")
    );
    // Too many inputs.
    let mut bytes = BUNDLE_MAGIC.to_vec();
    bytes.extend_from_slice(&(manifest.len() as u32).to_le_bytes());
    bytes.extend_from_slice(manifest.as_bytes());
    bytes.extend_from_slice(&0u32.to_le_bytes());
    bytes.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        Bundle::decode(&bytes).unwrap_err(),
        BundleError::Inputs(_)
    ));
}

#[test]
fn a_file_over_the_bundle_limit_is_refused() {
    let big = vec![0u8; MAX_BUNDLE_BYTES + 1];
    assert!(matches!(
        Bundle::decode(&big).unwrap_err(),
        BundleError::TooLarge { .. }
    ));
    let manifest = Manifest::wasm(EntryStyle::Command, 1, Some("data"));
    let mut inputs = BTreeMap::new();
    inputs.insert("data".to_string(), vec![0u8; MAX_BUNDLE_BYTES]);
    assert!(matches!(
        Bundle::new(manifest, Vec::new(), inputs).unwrap_err(),
        BundleError::TooLarge { .. }
    ));
}

#[test]
fn inputs_must_be_sorted_unique_and_match_the_manifest() {
    // Swap the order of the two inputs by hand: decoding must refuse.
    let bundle = sample();
    let bytes = bundle.bytes();
    let manifest_len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
    let after_manifest = 12 + manifest_len;
    let program_len = u32::from_le_bytes(
        bytes[after_manifest..after_manifest + 4]
            .try_into()
            .unwrap(),
    ) as usize;
    let inputs_at = after_manifest + 4 + program_len + 4;
    let first_len = 4 + 5 + 4 + 10; // "extra" + 10 bytes
    let mut swapped = bytes[..inputs_at].to_vec();
    swapped.extend_from_slice(&bytes[inputs_at + first_len..]);
    swapped.extend_from_slice(&bytes[inputs_at..inputs_at + first_len]);
    assert!(matches!(
        Bundle::decode(&swapped).unwrap_err(),
        BundleError::Inputs(_)
    ));

    // An input the manifest does not list.
    let manifest = Manifest::wasm(EntryStyle::Command, 1, None);
    let mut inputs = BTreeMap::new();
    inputs.insert("stray".to_string(), vec![1]);
    assert!(matches!(
        Bundle::new(manifest, Vec::new(), inputs).unwrap_err(),
        BundleError::Inputs(_)
    ));
}

#[test]
fn manifests_that_ask_for_the_impossible_are_refused() {
    let parse = |text: &str| Manifest::from_toml(text).unwrap_err().to_string();
    assert!(
        parse("runtime = \"wasm\"\nsteps = 4\n[wasm]\nentry = \"command\"\n")
            .contains("exactly one step")
    );
    assert!(parse("runtime = \"wasm\"\n").contains("[wasm] table"));
    assert!(parse("runtime = \"python\"\n[wasm]\nentry = \"command\"\n").contains("runtime"));
    assert!(
        parse("runtime = \"wasm\"\nsurprise = 1\n[wasm]\nentry = \"command\"\n")
            .contains("surprise")
    );
    assert!(
        parse("runtime = \"wasm\"\n[wasm]\nentry = \"command\"\n[limits]\nfuel_per_step = 1000000000000000\n")
            .contains("fuel_per_step")
    );
    assert!(
        parse("runtime = \"wasm\"\ninputs = [\"a\", \"a\"]\n[wasm]\nentry = \"command\"\n")
            .contains("twice")
    );
    assert!(
        parse("runtime = \"wasm\"\ninputs = [\"../etc\"]\n[wasm]\nentry = \"command\"\n")
            .contains("input name")
    );
    assert!(
        parse("runtime = \"wasm\"\n[wasm]\nentry = \"command\"\ninput = \"nope\"\n")
            .contains("nope")
    );
    let too_many: Vec<String> = (0..=MAX_INPUTS).map(|i| format!("\"i{i}\"")).collect();
    assert!(
        parse(&format!(
            "runtime = \"wasm\"\ninputs = [{}]\n[wasm]\nentry = \"command\"\n",
            too_many.join(",")
        ))
        .contains("inputs")
    );
}

#[test]
fn an_ml_manifest_passes_its_table_through() {
    let text = "runtime = \"ml\"\nsteps = 10\n[ml]\nmodel = \"mlp\"\nlr = 0.01\n";
    let manifest = Manifest::from_toml(text).unwrap();
    let ml = manifest.ml.as_ref().unwrap();
    assert_eq!(ml.get("model").and_then(|v| v.as_str()), Some("mlp"));
    let again = Manifest::from_toml(&manifest.to_toml().unwrap()).unwrap();
    assert_eq!(again, manifest);
}

#[test]
fn limits_are_checked_against_their_caps() {
    assert!(Limits::default().validate().is_ok());
    let over = Limits {
        fuel_per_step: MAX_FUEL_PER_STEP + 1,
        ..Limits::default()
    };
    assert_eq!(over.validate().unwrap_err().field, "fuel_per_step");
    let tiny_memory = Limits {
        memory_bytes: 100,
        ..Limits::default()
    };
    assert_eq!(tiny_memory.validate().unwrap_err().field, "memory_bytes");
}

#[test]
fn runtime_and_jobs_can_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<crate::Runtime>();
    send::<crate::WasmJob>();
    send_sync::<Bundle>();
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    /// Decoding arbitrary bytes never panics.
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
        let _ = Bundle::decode(&bytes);
        let mut with_magic = BUNDLE_MAGIC.to_vec();
        with_magic.extend_from_slice(&bytes);
        let _ = Bundle::decode(&with_magic);
    }
}

#[test]
fn a_memory_error_suggests_raising_the_limit_only_below_the_cap() {
    use crate::error::{ExecError, Phase};
    use crate::limits::{DEFAULT_MEMORY_BYTES, MAX_MEMORY_BYTES};
    let below = ExecError::MemoryLimit {
        phase: Phase::Step(3),
        requested: DEFAULT_MEMORY_BYTES + 65_536,
        limit: DEFAULT_MEMORY_BYTES,
    }
    .to_string();
    assert!(
        below.contains("Raise limits.memory_bytes (at most 4294967296)"),
        "{below}"
    );
    let at_cap = ExecError::MemoryLimit {
        phase: Phase::Step(3),
        requested: MAX_MEMORY_BYTES + 65_536,
        limit: MAX_MEMORY_BYTES,
    }
    .to_string();
    assert!(!at_cap.contains("Raise"), "{at_cap}");
    assert!(
        at_cap.contains("already the cap of 4294967296 bytes")
            && at_cap.contains("use less memory"),
        "{at_cap}"
    );
}
