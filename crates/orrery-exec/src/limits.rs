//! Every limit the runtime enforces, as a named constant with the reason for its value.
//!
//! A job's manifest may ask for its own [`Limits`] (fuel per step, memory, state and output
//! size, wall time) up to the hard caps here; anything the manifest leaves out takes the
//! default. The caps protect the host that runs a stranger's code; the per-job limits are part
//! of the job's content-addressed bundle, so two providers always run it under the same ones.

use serde::{Deserialize, Serialize};

/// One WebAssembly page.
pub const WASM_PAGE_BYTES: u64 = 64 * 1024;

/// Largest bundle file accepted (manifest + module + inputs). A bundle is uploaded, stored by
/// nodes and fetched by every provider and verifier of the job; 64 MiB keeps a fetch to
/// seconds on a home connection. Larger data sets belong in several jobs.
pub const MAX_BUNDLE_BYTES: usize = 64 * 1024 * 1024;

/// Largest manifest. A manifest is a few hundred bytes of TOML; 64 KiB leaves room for long
/// input lists and runtime-specific tables while bounding the parser's work.
pub const MAX_MANIFEST_BYTES: usize = 64 * 1024;

/// Largest WebAssembly module. Compilation time grows with module size and compiling runs
/// unmetered on the host, so this bounds the work a job can make a provider do before any fuel
/// is charged. 16 MiB fits optimized C/Rust/Zig programs with their libc comfortably.
pub const MAX_MODULE_BYTES: usize = 16 * 1024 * 1024;

/// Most named inputs in a bundle; each is a section the decoder must walk.
pub const MAX_INPUTS: usize = 64;

/// Longest input name, in bytes.
pub const MAX_INPUT_NAME_BYTES: usize = 64;

/// Hard cap on fuel for one call (init, one step or output). Fuel is roughly one unit per wasm
/// instruction; 10^11 is on the order of a minute of CPU on a current core, which bounds what a
/// referee re-executing one disputed step can be made to spend.
pub const MAX_FUEL_PER_STEP: u64 = 100_000_000_000;

/// Default fuel per call when the manifest names none: about a second of CPU.
pub const DEFAULT_FUEL_PER_STEP: u64 = 2_000_000_000;

/// Hard cap on a job's linear memory. 4 GiB is all that wasm32 can address anyway; the cap
/// stops a job from asking a provider for more than the whole address space.
pub const MAX_MEMORY_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// Default linear memory limit: 256 MiB, enough for most numerical kernels, small enough that a
/// provider can run several jobs at once.
pub const DEFAULT_MEMORY_BYTES: u64 = 256 * 1024 * 1024;

/// Hard cap on one serialized state. Every state is hashed into a checkpoint, may be stored to
/// resume, and in a dispute is posted to the referee; 64 MiB bounds all three.
pub const MAX_STATE_BYTES: u64 = 64 * 1024 * 1024;

/// Default state size limit.
pub const DEFAULT_STATE_BYTES: u64 = 16 * 1024 * 1024;

/// Hard cap on a job's output (and on a WASI command's captured stdout, which is its output).
/// The output is uploaded and downloaded by the requester; 64 MiB, like a bundle.
pub const MAX_OUTPUT_BYTES: u64 = 64 * 1024 * 1024;

/// Default output size limit.
pub const DEFAULT_OUTPUT_BYTES: u64 = 16 * 1024 * 1024;

/// Hard cap on the wall-clock time of one call. Wall time is not deterministic, so it only
/// protects the host from a job that is slow for reasons fuel does not see (a provider under
/// load, huge memory copies); ten minutes is far beyond what `MAX_FUEL_PER_STEP` needs.
pub const MAX_WALL_TIME_MS: u64 = 10 * 60 * 1000;

/// Default wall-clock limit per call.
pub const DEFAULT_WALL_TIME_MS: u64 = 60 * 1000;

/// Most steps a job may declare. Checkpoints are kept in memory (32 bytes each) and a dispute
/// bisects over them in `log2(steps)` rounds: 2^20 steps keep the checkpoint list at 32 MiB and
/// a dispute to 20 rounds.
pub const MAX_STEPS: u64 = 1 << 20;

/// Native stack that wasm code may use. Deep recursion then traps as a stack overflow instead
/// of crashing the host; 512 KiB is well inside the 2 MiB of a default Rust thread, so the
/// host keeps room for its own frames and for host calls made from wasm.
pub const MAX_WASM_STACK_BYTES: usize = 512 * 1024;

/// Most table elements (function references) a job may hold; tables are host memory too.
pub const MAX_TABLE_ELEMENTS: usize = 1_000_000;

/// Captured stderr kept for error messages; the rest is dropped. Stderr is diagnostics only
/// and never part of a result.
pub const MAX_STDERR_BYTES: usize = 8 * 1024;

/// Compiled modules kept in a [`crate::Runtime`]'s cache. A compiled module holds its machine
/// code (a few times the module size); 64 entries bound the cache while letting a provider keep
/// every module of its recent jobs warm.
pub const MAX_CACHED_MODULES: usize = 64;

/// How often the wall-clock ticker advances the engine's epoch. The wall-clock limit is checked
/// at this granularity.
pub const EPOCH_TICK_MS: u64 = 10;

/// The limits one job runs under. They are part of the manifest, so every machine that runs
/// the job applies the same ones; each field is checked against its hard cap by
/// [`Limits::validate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Fuel for each call (init, each step, output). Running out is a deterministic failure.
    pub fuel_per_step: u64,
    /// Linear memory, in bytes. Growing past it traps deterministically.
    pub memory_bytes: u64,
    /// Largest serialized state a step may return.
    pub max_state_bytes: u64,
    /// Largest output (stepper `output`, or a command's stdout).
    pub max_output_bytes: u64,
    /// Wall-clock time for each call; exceeding it means "timed out, no result".
    pub wall_time_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel_per_step: DEFAULT_FUEL_PER_STEP,
            memory_bytes: DEFAULT_MEMORY_BYTES,
            max_state_bytes: DEFAULT_STATE_BYTES,
            max_output_bytes: DEFAULT_OUTPUT_BYTES,
            wall_time_ms: DEFAULT_WALL_TIME_MS,
        }
    }
}

/// A limit outside what the runtime accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("limits.{field} = {value} is out of range: it must be between {min} and {max}")]
pub struct LimitError {
    /// The manifest field.
    pub field: &'static str,
    /// The value asked for.
    pub value: u64,
    /// Smallest accepted value.
    pub min: u64,
    /// Largest accepted value.
    pub max: u64,
}

impl Limits {
    /// Check every field against its hard cap.
    pub fn validate(&self) -> Result<(), LimitError> {
        let checks: [(&'static str, u64, u64, u64); 5] = [
            ("fuel_per_step", self.fuel_per_step, 1, MAX_FUEL_PER_STEP),
            (
                "memory_bytes",
                self.memory_bytes,
                WASM_PAGE_BYTES,
                MAX_MEMORY_BYTES,
            ),
            ("max_state_bytes", self.max_state_bytes, 0, MAX_STATE_BYTES),
            (
                "max_output_bytes",
                self.max_output_bytes,
                0,
                MAX_OUTPUT_BYTES,
            ),
            ("wall_time_ms", self.wall_time_ms, 1, MAX_WALL_TIME_MS),
        ];
        for (field, value, min, max) in checks {
            if value < min || value > max {
                return Err(LimitError {
                    field,
                    value,
                    min,
                    max,
                });
            }
        }
        Ok(())
    }
}
