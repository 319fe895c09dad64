//! The job bundle: one content-addressed file holding everything a machine needs to run a job.
//!
//! # Format (version 1)
//!
//! All integers are little-endian `u32`. Every length is checked against the bytes that remain
//! (and against its own cap) before anything is allocated, so decoding hostile bytes costs at
//! most one pass over them.
//!
//! ```text
//! magic          8 bytes  "ORRERY\0\x01"   (name, format version 1)
//! manifest_len   u32      ≤ MAX_MANIFEST_BYTES
//! manifest       UTF-8 TOML (see Manifest)
//! program_len    u32      ≤ MAX_MODULE_BYTES
//! program        the runtime's program: a wasm module for `runtime = "wasm"`
//! input_count    u32      ≤ MAX_INPUTS
//! input_count × { name_len u32 ≤ MAX_INPUT_NAME_BYTES, name UTF-8, data_len u32, data }
//! ```
//!
//! Inputs appear sorted by name, each name once, and exactly the names the manifest's `inputs`
//! lists; nothing may follow the last input; the whole file is at most `MAX_BUNDLE_BYTES`.
//!
//! The bundle's identity is [`Bundle::hash`] = `SHA-256(file bytes)`, the address a node's blob
//! store keeps it under: the same file has the same hash on every machine, a lease names a job
//! by it, and a provider fetches the job by it. (The file starts with [`BUNDLE_MAGIC`], so a
//! bundle cannot be mistaken for another kind of blob.)
//!
//! # Manifest
//!
//! ```toml
//! runtime = "wasm"            # "wasm" (this crate) or "ml" (orrery-ml)
//! name = "heat"               # optional label for people
//! steps = 32                  # n: the number of step calls after init
//! inputs = ["params"]         # the input sections, by name
//!
//! [wasm]
//! entry = "stepper"           # "stepper" (init/step/output exports) or "command" (WASI _start)
//! input = "params"            # the input given to init (stepper) or stdin (command); optional
//!
//! [limits]                    # optional; each field defaults, and is capped (see limits.rs)
//! fuel_per_step = 2000000000
//! memory_bytes = 268435456
//! max_state_bytes = 16777216
//! max_output_bytes = 16777216
//! wall_time_ms = 60000
//! ```
//!
//! `runtime = "ml"` bundles carry an `[ml]` table that this crate passes through untouched.

use std::collections::BTreeMap;

use orrery_types::Hash;
use serde::{Deserialize, Serialize};

use crate::limits::{
    Limits, MAX_BUNDLE_BYTES, MAX_INPUT_NAME_BYTES, MAX_INPUTS, MAX_MANIFEST_BYTES,
    MAX_MODULE_BYTES, MAX_STEPS,
};

/// The first bytes of every bundle: a name and the format version.
pub const BUNDLE_MAGIC: [u8; 8] = *b"ORRERY\x00\x01";

/// Which runtime runs a bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// WebAssembly, run by this crate.
    Wasm,
    /// Deterministic machine learning, run by `orrery-ml`.
    Ml,
}

impl std::fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RuntimeKind::Wasm => "wasm",
            RuntimeKind::Ml => "ml",
        })
    }
}

/// How a wasm module is entered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryStyle {
    /// Exports `init`, `step`, `output`, `alloc` and `memory` (see docs/workloads.md). Any
    /// number of steps; verified by bisection over the checkpoints.
    Stepper,
    /// A WASI command (`_start`): stdin in, stdout out, exactly one step; verified by
    /// re-execution.
    Command,
}

impl std::fmt::Display for EntryStyle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EntryStyle::Stepper => "stepper",
            EntryStyle::Command => "command",
        })
    }
}

/// The `[wasm]` table of a manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WasmEntry {
    /// How the module is entered.
    pub entry: EntryStyle,
    /// The input passed to `init` (stepper) or fed to stdin (command); none means empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
}

/// What a bundle asks for. Plain values come before tables so it serializes as TOML.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Which runtime runs the program.
    pub runtime: RuntimeKind,
    /// A label for people; not interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The number of steps `n` after init.
    #[serde(default = "one")]
    pub steps: u64,
    /// The names of the bundle's input sections.
    #[serde(default)]
    pub inputs: Vec<String>,
    /// Entry configuration for `runtime = "wasm"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasm: Option<WasmEntry>,
    /// Configuration for `runtime = "ml"`, passed through to orrery-ml.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ml: Option<toml::Table>,
    /// Resource limits for each call.
    #[serde(default)]
    pub limits: Limits,
}

fn one() -> u64 {
    1
}

impl Manifest {
    /// A wasm manifest with default limits.
    pub fn wasm(entry: EntryStyle, steps: u64, input: Option<&str>) -> Self {
        Self {
            runtime: RuntimeKind::Wasm,
            name: None,
            steps,
            inputs: input.map(|i| vec![i.to_string()]).unwrap_or_default(),
            wasm: Some(WasmEntry {
                entry,
                input: input.map(str::to_string),
            }),
            ml: None,
            limits: Limits::default(),
        }
    }

    /// Parse a manifest from TOML and check it.
    pub fn from_toml(text: &str) -> Result<Self, BundleError> {
        let manifest: Manifest =
            toml::from_str(text).map_err(|e| BundleError::Manifest(e.to_string()))?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// The manifest as TOML.
    pub fn to_toml(&self) -> Result<String, BundleError> {
        toml::to_string(self).map_err(|e| BundleError::Manifest(e.to_string()))
    }

    /// Check the manifest on its own (not against the bundle's sections).
    pub fn validate(&self) -> Result<(), BundleError> {
        let invalid = |msg: String| Err(BundleError::InvalidManifest(msg));
        if self.steps > MAX_STEPS {
            return invalid(format!(
                "steps = {} exceeds the maximum of {MAX_STEPS}",
                self.steps
            ));
        }
        self.limits
            .validate()
            .map_err(|e| BundleError::InvalidManifest(e.to_string()))?;
        if self.inputs.len() > MAX_INPUTS {
            return invalid(format!("more than {MAX_INPUTS} inputs"));
        }
        for (i, name) in self.inputs.iter().enumerate() {
            check_input_name(name)?;
            if self.inputs[..i].contains(name) {
                return invalid(format!("input `{name}` is listed twice"));
            }
        }
        match (self.runtime, &self.wasm) {
            (RuntimeKind::Wasm, None) => {
                return invalid(
                    "runtime = \"wasm\" needs a [wasm] table with `entry = \"stepper\"` or \
                     `entry = \"command\"`"
                        .into(),
                );
            }
            (RuntimeKind::Wasm, Some(wasm)) => {
                if wasm.entry == EntryStyle::Command && self.steps != 1 {
                    return invalid(format!(
                        "a WASI command runs as exactly one step, but steps = {}; set steps = 1 \
                         or write a stepper module",
                        self.steps
                    ));
                }
                if let Some(input) = &wasm.input
                    && !self.inputs.contains(input)
                {
                    return invalid(format!(
                        "[wasm] input = \"{input}\" is not one of the bundle's inputs {:?}",
                        self.inputs
                    ));
                }
            }
            (RuntimeKind::Ml, Some(_)) => {
                return invalid("runtime = \"ml\" must not have a [wasm] table".into());
            }
            (RuntimeKind::Ml, None) => {}
        }
        Ok(())
    }
}

fn check_input_name(name: &str) -> Result<(), BundleError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_INPUT_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(BundleError::InvalidManifest(format!(
            "input name `{}` must be 1 to {MAX_INPUT_NAME_BYTES} characters of a-z, A-Z, 0-9, \
             `_`, `-` or `.`",
            name.escape_debug()
        )))
    }
}

/// Why bytes are not a valid bundle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// Larger than [`MAX_BUNDLE_BYTES`].
    #[error(
        "the bundle is {size} bytes, over the limit of {max} bytes; move large data out of the \
         bundle or split the job"
    )]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Does not start with [`BUNDLE_MAGIC`].
    #[error(
        "not an orrery bundle (bad magic bytes); create one with `orrery run-local --pack job.toml`"
    )]
    BadMagic,
    /// A length runs past the end.
    #[error("the bundle is truncated: {0} runs past the end of the file")]
    Truncated(&'static str),
    /// A section is larger than its cap.
    #[error("the bundle's {what} is {size} bytes, over the limit of {max} bytes")]
    SectionTooLarge {
        /// Which section.
        what: &'static str,
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Bytes after the last input.
    #[error("the bundle has {0} unexpected bytes after its last input")]
    TrailingBytes(usize),
    /// The manifest is not valid TOML for a [`Manifest`].
    #[error("the bundle's manifest cannot be read: {0}")]
    Manifest(String),
    /// The manifest is well-formed but asks for something invalid.
    #[error("invalid manifest: {0}")]
    InvalidManifest(String),
    /// The input sections do not match the manifest.
    #[error("the bundle's inputs do not match its manifest: {0}")]
    Inputs(String),
}

/// A decoded, checked bundle together with its encoding and hash.
#[derive(Clone, Debug)]
pub struct Bundle {
    manifest: Manifest,
    program: Vec<u8>,
    inputs: BTreeMap<String, Vec<u8>>,
    bytes: Vec<u8>,
    hash: Hash,
}

impl Bundle {
    /// Build and encode a bundle. The manifest's `inputs` must name exactly the given inputs.
    pub fn new(
        manifest: Manifest,
        program: Vec<u8>,
        inputs: BTreeMap<String, Vec<u8>>,
    ) -> Result<Self, BundleError> {
        manifest.validate()?;
        check_inputs_match(&manifest, &inputs)?;
        let manifest_text = manifest.to_toml()?;
        if manifest_text.len() > MAX_MANIFEST_BYTES {
            return Err(BundleError::SectionTooLarge {
                what: "manifest",
                size: manifest_text.len(),
                max: MAX_MANIFEST_BYTES,
            });
        }
        if program.len() > MAX_MODULE_BYTES {
            return Err(BundleError::SectionTooLarge {
                what: "program",
                size: program.len(),
                max: MAX_MODULE_BYTES,
            });
        }
        let size = 8
            + 4
            + manifest_text.len()
            + 4
            + program.len()
            + 4
            + inputs
                .iter()
                .map(|(k, v)| 8 + k.len() + v.len())
                .sum::<usize>();
        if size > MAX_BUNDLE_BYTES {
            return Err(BundleError::TooLarge {
                size,
                max: MAX_BUNDLE_BYTES,
            });
        }
        let mut bytes = Vec::with_capacity(size);
        bytes.extend_from_slice(&BUNDLE_MAGIC);
        put_section(&mut bytes, manifest_text.as_bytes());
        put_section(&mut bytes, &program);
        put_len(&mut bytes, inputs.len());
        for (name, data) in &inputs {
            put_section(&mut bytes, name.as_bytes());
            put_section(&mut bytes, data);
        }
        let hash = Hash::of(&bytes);
        Ok(Self {
            manifest,
            program,
            inputs,
            bytes,
            hash,
        })
    }

    /// Decode and check a bundle file. Never panics and never allocates more than the input's
    /// own size, whatever the bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, BundleError> {
        if bytes.len() > MAX_BUNDLE_BYTES {
            return Err(BundleError::TooLarge {
                size: bytes.len(),
                max: MAX_BUNDLE_BYTES,
            });
        }
        let mut r = Reader { rest: bytes };
        if r.take(BUNDLE_MAGIC.len(), "magic").ok() != Some(&BUNDLE_MAGIC[..]) {
            return Err(BundleError::BadMagic);
        }
        let manifest_bytes = r.section("manifest", MAX_MANIFEST_BYTES)?;
        let manifest_text = std::str::from_utf8(manifest_bytes)
            .map_err(|_| BundleError::Manifest("the manifest is not UTF-8".into()))?;
        let manifest = Manifest::from_toml(manifest_text)?;
        let program = r.section("program", MAX_MODULE_BYTES)?.to_vec();
        let count = r.len("input count")?;
        if count > MAX_INPUTS {
            return Err(BundleError::Inputs(format!(
                "{count} inputs, more than the limit of {MAX_INPUTS}"
            )));
        }
        let mut inputs = BTreeMap::new();
        let mut previous: Option<&str> = None;
        for _ in 0..count {
            let name = r.section("input name", MAX_INPUT_NAME_BYTES)?;
            let name = std::str::from_utf8(name)
                .map_err(|_| BundleError::Inputs("an input name is not UTF-8".into()))?;
            check_input_name(name)?;
            if previous.is_some_and(|p| p >= name) {
                return Err(BundleError::Inputs(
                    "inputs must appear sorted by name, each once".into(),
                ));
            }
            previous = Some(name);
            let data = r.section("input data", MAX_BUNDLE_BYTES)?;
            inputs.insert(name.to_string(), data.to_vec());
        }
        if !r.rest.is_empty() {
            return Err(BundleError::TrailingBytes(r.rest.len()));
        }
        check_inputs_match(&manifest, &inputs)?;
        Ok(Self {
            manifest,
            program,
            inputs,
            bytes: bytes.to_vec(),
            hash: Hash::of(bytes),
        })
    }

    /// The content address of the bundle.
    pub fn hash(&self) -> Hash {
        self.hash
    }

    /// The encoded file.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The program section (a wasm module for `runtime = "wasm"`).
    pub fn program(&self) -> &[u8] {
        &self.program
    }

    /// One input by name.
    pub fn input(&self, name: &str) -> Option<&[u8]> {
        self.inputs.get(name).map(Vec::as_slice)
    }

    /// All inputs, sorted by name.
    pub fn inputs(&self) -> &BTreeMap<String, Vec<u8>> {
        &self.inputs
    }
}

fn check_inputs_match(
    manifest: &Manifest,
    inputs: &BTreeMap<String, Vec<u8>>,
) -> Result<(), BundleError> {
    let mut declared: Vec<&str> = manifest.inputs.iter().map(String::as_str).collect();
    declared.sort_unstable();
    let present: Vec<&str> = inputs.keys().map(String::as_str).collect();
    if declared != present {
        return Err(BundleError::Inputs(format!(
            "the manifest lists {declared:?} but the bundle holds {present:?}"
        )));
    }
    Ok(())
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    // Every length was checked against a cap far below u32::MAX before encoding.
    out.extend_from_slice(&(len as u32).to_le_bytes());
}

fn put_section(out: &mut Vec<u8>, data: &[u8]) {
    put_len(out, data.len());
    out.extend_from_slice(data);
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], BundleError> {
        if n > self.rest.len() {
            return Err(BundleError::Truncated(what));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn len(&mut self, what: &'static str) -> Result<usize, BundleError> {
        let raw = self.take(4, what)?;
        let mut le = [0u8; 4];
        le.copy_from_slice(raw);
        Ok(u32::from_le_bytes(le) as usize)
    }

    fn section(&mut self, what: &'static str, max: usize) -> Result<&'a [u8], BundleError> {
        let n = self.len(what)?;
        if n > max {
            return Err(BundleError::SectionTooLarge { what, size: n, max });
        }
        self.take(n, what)
    }
}
