//! Why a job could not be loaded or a call could not finish.

use crate::bundle::BundleError;
use orrery_types::workload::FailureReason;

/// Which call of the workload shape failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// `init(input)`.
    Init,
    /// `step(k, state_k)`.
    Step(u64),
    /// `output(state_n)`.
    Output,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Phase::Init => write!(f, "init"),
            Phase::Step(k) => write!(f, "step {k}"),
            Phase::Output => write!(f, "output"),
        }
    }
}

/// Everything that can go wrong loading or running a wasm job. Every variant except
/// [`ExecError::TimedOut`] and [`ExecError::Engine`] is deterministic: any honest machine
/// running the same bundle from the same state fails the same way, so a failure is itself a
/// checkable result.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The bundle could not be decoded or its manifest is invalid.
    #[error(transparent)]
    Bundle(#[from] BundleError),

    /// The manifest names a runtime this crate does not run.
    #[error(
        "this bundle is for the `{0}` runtime, which orrery-exec does not run; use the runtime \
         that matches the manifest's `runtime` field"
    )]
    WrongRuntime(String),

    /// The module is not valid WebAssembly, or uses a feature the deterministic sandbox
    /// disables (threads, memory64, multiple memories, GC…).
    #[error(
        "the module is not valid WebAssembly for this sandbox: {0}. Build it for wasm32 \
         (e.g. `clang --target=wasm32-wasi`) without threads or memory64"
    )]
    InvalidModule(String),

    /// The module imports something the sandbox does not grant.
    #[error(
        "the module imports `{module}::{name}`, which the sandbox does not grant. Allowed \
         imports are the fixed WASI preview1 subset listed in docs/workloads.md (stdin, stdout, \
         stderr, args, environ, a frozen clock, a fixed random stream, proc_exit); remove \
         filesystem, socket and other host calls from the program"
    )]
    ImportNotGranted {
        /// Import module name.
        module: String,
        /// Import field name.
        name: String,
    },

    /// The module lacks an export the entry style needs, or it has the wrong type.
    #[error("the module does not follow the {style} ABI: {detail}. See docs/workloads.md")]
    Abi {
        /// `stepper` or `command`.
        style: &'static str,
        /// What is wrong.
        detail: String,
    },

    /// The call used all the fuel it was given.
    #[error(
        "{phase} ran out of fuel after {limit} units: the job does more work per call than its \
         limit allows. Raise limits.fuel_per_step (at most {max}) or split the work into more \
         steps",
        max = crate::limits::MAX_FUEL_PER_STEP
    )]
    FuelExhausted {
        /// Where.
        phase: Phase,
        /// The fuel bound of the call.
        limit: u64,
    },

    /// Linear memory (or a table) would have grown past the job's limit.
    #[error(
        "{phase} tried to grow memory to {requested} bytes, past the job's limit of {limit} \
         bytes. {}",
        memory_advice(*.limit)
    )]
    MemoryLimit {
        /// Where.
        phase: Phase,
        /// The size asked for.
        requested: u64,
        /// The job's limit.
        limit: u64,
    },

    /// The wasm stack overflowed (usually unbounded recursion).
    #[error(
        "{phase} overflowed the wasm stack ({max} bytes): the program recurses too deeply. \
         Make the recursion iterative or bounded",
        max = crate::limits::MAX_WASM_STACK_BYTES
    )]
    StackOverflow {
        /// Where.
        phase: Phase,
    },

    /// The program trapped: `unreachable`, out-of-bounds access, division by zero, abort()…
    #[error("{phase} trapped: {trap}{}", stderr_suffix(.stderr))]
    Trap {
        /// Where.
        phase: Phase,
        /// wasmtime's description of the trap.
        trap: String,
        /// The start of what the program wrote to stderr, for diagnosis.
        stderr: String,
    },

    /// A WASI program exited with a nonzero status.
    #[error("{phase}: the program exited with status {code}{}", stderr_suffix(.stderr))]
    Exit {
        /// Where.
        phase: Phase,
        /// The exit status.
        code: i32,
        /// The start of what the program wrote to stderr.
        stderr: String,
    },

    /// A step returned a state larger than the job's limit.
    #[error(
        "{phase} produced a state of {size} bytes, over the job's limit of {limit} bytes. \
         Raise limits.max_state_bytes (at most {max}) or keep less in the state",
        max = crate::limits::MAX_STATE_BYTES
    )]
    StateTooLarge {
        /// Where.
        phase: Phase,
        /// Bytes produced (or asked for).
        size: u64,
        /// The job's limit.
        limit: u64,
    },

    /// The output (stepper `output`, or a command's stdout) exceeded the job's limit.
    #[error(
        "{phase} produced more than {limit} bytes of output (at least {size}). Raise \
         limits.max_output_bytes (at most {max}) or write less",
        max = crate::limits::MAX_OUTPUT_BYTES
    )]
    OutputTooLarge {
        /// Where.
        phase: Phase,
        /// Bytes produced, or attempted, so far.
        size: u64,
        /// The job's limit.
        limit: u64,
    },

    /// The call ran past its wall-clock limit. Not deterministic: it means "no result", never
    /// a wrong one, and is not grounds for a dispute.
    #[error(
        "{phase} timed out after {limit_ms} ms of wall-clock time; no result. Raise \
         limits.wall_time_ms, or run on a less loaded machine"
    )]
    TimedOut {
        /// Where.
        phase: Phase,
        /// The wall-clock limit.
        limit_ms: u64,
    },

    /// The caller asked for something that does not fit the job (a step past the last one).
    #[error("{0}")]
    BadRequest(String),

    /// The host itself failed (engine construction, an OS allocation failure). Not the job's
    /// fault and not deterministic.
    #[error("the wasm engine failed on this host: {0}")]
    Engine(String),
}

/// What to do about a job that outgrew its memory limit: raise the limit, unless it already is
/// the runtime's cap, which no manifest can go past.
fn memory_advice(limit: u64) -> String {
    use crate::limits::MAX_MEMORY_BYTES;
    if limit >= MAX_MEMORY_BYTES {
        format!(
            "That limit is already the cap of {MAX_MEMORY_BYTES} bytes (4 GiB, all that wasm32 \
             can address), so it cannot be raised: make the program use less memory"
        )
    } else {
        format!("Raise limits.memory_bytes (at most {MAX_MEMORY_BYTES}) or use less memory")
    }
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!("; stderr: {}", stderr.trim_end())
    }
}

impl ExecError {
    /// Whether the same call would fail the same way on any honest machine. Deterministic
    /// failures are results that can be committed and checked; the others mean "no result".
    pub fn is_deterministic(&self) -> bool {
        !matches!(self, ExecError::TimedOut { .. } | ExecError::Engine(_))
    }

    /// The code a failure claim carries for this error, when it is the job's own deterministic
    /// failure (see `orrery_types::workload`, "Runs that fail"). `None` for what is not the
    /// job's doing or not deterministic: a wall-clock timeout, a host failure, a caller asking
    /// for a step that does not exist, or a bundle handed to the wrong runtime. The mapping is
    /// by variant alone: it is what two providers and the referee must agree on.
    pub fn failure_reason(&self) -> Option<FailureReason> {
        let reason = match self {
            ExecError::Bundle(_)
            | ExecError::InvalidModule(_)
            | ExecError::ImportNotGranted { .. }
            | ExecError::Abi { .. } => FailureReason::InvalidJob,
            ExecError::FuelExhausted { .. } => FailureReason::OutOfFuel,
            ExecError::MemoryLimit { .. } => FailureReason::MemoryLimit,
            ExecError::StackOverflow { .. } => FailureReason::StackOverflow,
            ExecError::Trap { .. } => FailureReason::Trap,
            ExecError::Exit { .. } => FailureReason::Exit,
            ExecError::StateTooLarge { .. } => FailureReason::StateTooLarge,
            ExecError::OutputTooLarge { .. } => FailureReason::OutputTooLarge,
            ExecError::WrongRuntime(_)
            | ExecError::TimedOut { .. }
            | ExecError::BadRequest(_)
            | ExecError::Engine(_) => return None,
        };
        debug_assert!(self.is_deterministic());
        Some(reason)
    }
}
