//! Packing a job from files on disk: a *job file* is a manifest plus two packing-only keys.
//!
//! ```toml
//! module = "heat.wasm"          # the program: a .wasm binary or a .wat text module
//! runtime = "wasm"
//! steps = 32
//! [wasm]
//! entry = "stepper"
//! input = "params"
//! [input_files]                 # input name = file, relative to the job file
//! params = "params.bin"
//! ```
//!
//! The manifest's `inputs` list is filled in from `[input_files]`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::bundle::{Bundle, BundleError, Manifest};
use crate::limits::{MAX_BUNDLE_BYTES, MAX_MANIFEST_BYTES};

/// Why a job file could not be packed.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The job file is not valid.
    #[error("{path}: {detail}")]
    JobFile {
        /// The job file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A `.wat` module does not parse.
    #[error("{path} is not a valid WebAssembly text module: {detail}")]
    Wat {
        /// The module file.
        path: PathBuf,
        /// The parser's message.
        detail: String,
    },
    /// The assembled bundle is invalid.
    #[error(transparent)]
    Bundle(#[from] BundleError),
}

fn read_bounded(path: &Path, max: usize) -> Result<Vec<u8>, PackError> {
    let read_err = |source| PackError::Read {
        path: path.to_path_buf(),
        source,
    };
    let len = std::fs::metadata(path).map_err(read_err)?.len();
    if len > max as u64 {
        return Err(PackError::Bundle(BundleError::TooLarge {
            size: usize::try_from(len).unwrap_or(usize::MAX),
            max,
        }));
    }
    std::fs::read(path).map_err(read_err)
}

/// Read a job file and everything it names, and build the bundle.
pub fn pack_job_file(job_file: &Path) -> Result<Bundle, PackError> {
    let job_err = |detail: String| PackError::JobFile {
        path: job_file.to_path_buf(),
        detail,
    };
    let text = read_bounded(job_file, MAX_MANIFEST_BYTES)?;
    let text = String::from_utf8(text).map_err(|_| job_err("not UTF-8".into()))?;
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| job_err(e.to_string()))?;
    let dir = job_file.parent().unwrap_or(Path::new("."));

    let module_path = match table.remove("module") {
        Some(toml::Value::String(p)) => dir.join(p),
        _ => {
            return Err(job_err(
                "needs `module = \"file.wasm\"` (or a .wat file)".into(),
            ));
        }
    };
    let module_bytes = read_bounded(&module_path, MAX_BUNDLE_BYTES)?;
    let program = wat::parse_bytes(&module_bytes)
        .map_err(|e| PackError::Wat {
            path: module_path.clone(),
            detail: e.to_string(),
        })?
        .into_owned();

    let mut inputs = BTreeMap::new();
    match table.remove("input_files") {
        None => {}
        Some(toml::Value::Table(files)) => {
            for (name, file) in files {
                let toml::Value::String(file) = file else {
                    return Err(job_err(format!("input_files.{name} must be a file path")));
                };
                inputs.insert(name, read_bounded(&dir.join(file), MAX_BUNDLE_BYTES)?);
            }
        }
        Some(_) => {
            return Err(job_err(
                "[input_files] must be a table of name = path".into(),
            ));
        }
    }
    if !table.contains_key("inputs") {
        let names = inputs.keys().cloned().map(toml::Value::String).collect();
        table.insert("inputs".into(), toml::Value::Array(names));
    }
    let manifest: Manifest = toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| job_err(e.to_string()))?;
    Ok(Bundle::new(manifest, program, inputs)?)
}
