//! The wasm engine, its module cache and the execution of one call under limits.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orrery_types::Hash;
use wasmtime::{
    Config, Engine, ExternType, InstancePre, Linker, Module, OptLevel, ResourceLimiter, Store,
    StoreLimits, StoreLimitsBuilder, Strategy, Trap,
};

use crate::error::{ExecError, Phase};
use crate::limits::{
    EPOCH_TICK_MS, Limits, MAX_CACHED_MODULES, MAX_MODULE_BYTES, MAX_TABLE_ELEMENTS,
    MAX_WASM_STACK_BYTES,
};
use crate::wasi::{self, GRANTED_WASI_IMPORTS, HostStop, WASI_MODULE};

/// The wasmtime configuration every Orrery machine uses. Each knob is set explicitly, because
/// defaults move between wasmtime versions and two providers must execute a module identically.
pub fn deterministic_config() -> Config {
    let mut config = Config::new();
    // Cranelift, optimizing for speed: the billed unit is fuel, not time, but providers want
    // fast code. Code generation does not change results, only speed.
    config.strategy(Strategy::Cranelift);
    config.cranelift_opt_level(OptLevel::Speed);
    // NaN bit patterns are the one place float results differ between CPUs; canonicalizing
    // every NaN makes float code bit-for-bit reproducible.
    config.cranelift_nan_canonicalization(true);
    // Fuel: the deterministic meter and stop. Fuel per instruction is fixed by the pinned
    // wasmtime version, so two machines count the same usage.
    config.consume_fuel(true);
    // Epoch interruption: the wall-clock limit. Not deterministic, so a trap from it only ever
    // means "timed out, no result".
    config.epoch_interruption(true);
    // Bounded wasm stack: deep recursion traps instead of crashing the host thread.
    config.max_wasm_stack(MAX_WASM_STACK_BYTES);
    // Threads and shared memory would make results depend on scheduling; the GC proposals
    // involve a collector; the component model is a different entry ABI. All three are
    // compiled out of wasmtime (its `threads`, `gc` and `component-model` features are off), so
    // modules using them fail validation.
    // SIMD is deterministic (with NaN canonicalization); relaxed SIMD is not, unless forced
    // into its deterministic lowering: we switch it off *and* pin the lowering.
    config.wasm_simd(true);
    config.wasm_relaxed_simd(false);
    config.relaxed_simd_deterministic(true);
    // One 32-bit memory: memory64 and multiple memories would escape the memory limit's
    // accounting and the stepper ABI's 32-bit pointers.
    config.wasm_memory64(false);
    config.wasm_multi_memory(false);
    // Stack switching lets a module juggle native stacks: off.
    config.wasm_stack_switching(false);
    // Standard, deterministic proposals that compilers emit by default.
    config.wasm_bulk_memory(true);
    config.wasm_multi_value(true);
    config.wasm_tail_call(true);
    config.wasm_extended_const(true);
    // Debug info is irrelevant to results and costs compile time.
    config.debug_info(false);
    config
}

/// State the host keeps for one store (one call).
pub(crate) struct HostState {
    limiter: Limiter,
    pub(crate) stdin: Vec<u8>,
    pub(crate) stdin_pos: usize,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stdout_limit: u64,
    pub(crate) stderr: Vec<u8>,
    pub(crate) random_counter: u64,
}

/// wasmtime's [`StoreLimits`] (with `trap_on_grow_failure`), plus a record of the size that
/// was refused, so the error can say "memory limit" rather than a generic trap.
struct Limiter {
    inner: StoreLimits,
    /// The size refused, and the module's own declared maximum.
    refused_memory: Option<(u64, Option<u64>)>,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let result = self.inner.memory_growing(current, desired, maximum);
        if !matches!(result, Ok(true)) {
            self.refused_memory = Some((desired as u64, maximum.map(|m| m as u64)));
        }
        result
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// A compiled module, ready to instantiate.
pub(crate) struct Compiled {
    pub(crate) pre: InstancePre<HostState>,
    pub(crate) module: Module,
}

struct ModuleCache {
    entries: HashMap<Hash, Arc<Compiled>>,
    order: VecDeque<Hash>,
}

/// Counters of the module cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Modules compiled (cache misses).
    pub compiled: u64,
    /// Loads served from the cache.
    pub hits: u64,
    /// Modules held now.
    pub entries: usize,
}

struct Inner {
    engine: Engine,
    linker: Linker<HostState>,
    cache: Mutex<ModuleCache>,
    compiled: AtomicU64,
    hits: AtomicU64,
    ticker_stop: Arc<AtomicBool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// A wasm engine with the deterministic configuration, the sandbox's host functions, a cache
/// of compiled modules keyed by module hash, and a ticker thread for wall-clock limits.
/// Cheap to clone (shared); create one per process.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

impl Runtime {
    /// A runtime with the deterministic configuration and fuel metering.
    pub fn new() -> Result<Self, ExecError> {
        Self::with_config(deterministic_config())
    }

    fn with_config(config: Config) -> Result<Self, ExecError> {
        let engine = Engine::new(&config).map_err(|e| ExecError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasi::add_to_linker(&mut linker).map_err(|e| ExecError::Engine(format!("{e:#}")))?;
        let ticker_stop = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&ticker_stop);
        let ticking = engine.clone();
        std::thread::Builder::new()
            .name("orrery-exec-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(EPOCH_TICK_MS));
                    ticking.increment_epoch();
                }
            })
            .map_err(|e| ExecError::Engine(format!("cannot start the epoch ticker: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                linker,
                cache: Mutex::new(ModuleCache {
                    entries: HashMap::new(),
                    order: VecDeque::new(),
                }),
                compiled: AtomicU64::new(0),
                hits: AtomicU64::new(0),
                ticker_stop,
            }),
        })
    }

    /// The wasmtime engine (for tools that inspect modules).
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Cache counters.
    pub fn cache_stats(&self) -> CacheStats {
        let entries = self
            .inner
            .cache
            .lock()
            .map(|c| c.entries.len())
            .unwrap_or(0);
        CacheStats {
            compiled: self.inner.compiled.load(Ordering::Relaxed),
            hits: self.inner.hits.load(Ordering::Relaxed),
            entries,
        }
    }

    /// Validate, check the imports of, and compile a module, or return the cached compilation
    /// of the same bytes.
    pub(crate) fn compile(&self, wasm: &[u8]) -> Result<Arc<Compiled>, ExecError> {
        let key = Hash::of(wasm);
        if let Ok(cache) = self.inner.cache.lock()
            && let Some(hit) = cache.entries.get(&key)
        {
            self.inner.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Arc::clone(hit));
        }
        if wasm.len() > MAX_MODULE_BYTES {
            return Err(ExecError::InvalidModule(format!(
                "the module is {} bytes, over the limit of {MAX_MODULE_BYTES}",
                wasm.len()
            )));
        }
        let module = Module::from_binary(&self.inner.engine, wasm)
            .map_err(|e| ExecError::InvalidModule(format!("{e:#}")))?;
        check_imports(&module)?;
        let pre = self
            .inner
            .linker
            .instantiate_pre(&module)
            .map_err(|e| ExecError::InvalidModule(format!("{e:#}")))?;
        let compiled = Arc::new(Compiled { pre, module });
        self.inner.compiled.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(module = %key, bytes = wasm.len(), "compiled wasm module");
        if let Ok(mut cache) = self.inner.cache.lock() {
            if cache.entries.len() >= MAX_CACHED_MODULES
                && let Some(oldest) = cache.order.pop_front()
            {
                cache.entries.remove(&oldest);
            }
            cache.entries.insert(key, Arc::clone(&compiled));
            cache.order.push_back(key);
        }
        Ok(compiled)
    }

    /// Run `body` in a fresh store and instance of `compiled`, under `limits` and `fuel`.
    /// Returns the body's value, the fuel used and the captured stdout, or the error with the
    /// fuel used before it.
    pub(crate) fn call<R>(
        &self,
        compiled: &Compiled,
        phase: Phase,
        limits: &Limits,
        fuel: u64,
        stdin: Vec<u8>,
        body: impl FnOnce(&mut Store<HostState>, wasmtime::Instance) -> Result<R, CallError>,
    ) -> Result<Called<R>, Failed> {
        let store_limits = StoreLimitsBuilder::new()
            .memory_size(usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX))
            .table_elements(MAX_TABLE_ELEMENTS)
            .instances(1)
            .memories(1)
            .tables(4)
            .trap_on_grow_failure(true)
            .build();
        let host = HostState {
            limiter: Limiter {
                inner: store_limits,
                refused_memory: None,
            },
            stdin,
            stdin_pos: 0,
            stdout: Vec::new(),
            stdout_limit: limits.max_output_bytes,
            stderr: Vec::new(),
            random_counter: 0,
        };
        let mut store = Store::new(&self.inner.engine, host);
        store.limiter(|h| &mut h.limiter);
        store.set_fuel(fuel).map_err(|e| Failed {
            error: ExecError::Engine(format!("{e:#}")),
            fuel_used: 0,
        })?;
        // +1: the deadline counts ticks from the current one, which has partly elapsed.
        store.set_epoch_deadline(limits.wall_time_ms.div_ceil(EPOCH_TICK_MS) + 1);
        store.epoch_deadline_trap();

        let outcome = compiled
            .pre
            .instantiate(&mut store)
            .map_err(CallError::Wasm)
            .and_then(|instance| body(&mut store, instance));
        let fuel_used = fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        tracing::debug!(%phase, fuel_used, ok = outcome.is_ok(), "wasm call finished");
        match outcome {
            Ok(value) => {
                let host = store.into_data();
                Ok(Called {
                    value,
                    fuel_used,
                    stdout: host.stdout,
                })
            }
            Err(CallError::Exec(error)) => Err(Failed { error, fuel_used }),
            Err(CallError::Wasm(err)) => {
                let host = store.into_data();
                Err(Failed {
                    error: classify(phase, limits, fuel, &host, err),
                    fuel_used,
                })
            }
        }
    }
}

/// A call that failed, and the fuel it burned before it did (deterministic like any fuel
/// count: a failed run is billed for it).
pub(crate) struct Failed {
    pub(crate) error: ExecError,
    pub(crate) fuel_used: u64,
}

/// What a call produced.
pub(crate) struct Called<R> {
    pub(crate) value: R,
    pub(crate) fuel_used: u64,
    pub(crate) stdout: Vec<u8>,
}

/// A failure inside a call body: either already classified, or a wasmtime error to classify.
pub(crate) enum CallError {
    Exec(ExecError),
    Wasm(wasmtime::Error),
}

impl From<wasmtime::Error> for CallError {
    fn from(e: wasmtime::Error) -> Self {
        CallError::Wasm(e)
    }
}

impl From<ExecError> for CallError {
    fn from(e: ExecError) -> Self {
        CallError::Exec(e)
    }
}

fn stderr_text(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr).into_owned()
}

/// Turn a wasmtime error into the error a user can act on.
fn classify(
    phase: Phase,
    limits: &Limits,
    fuel: u64,
    host: &HostState,
    err: wasmtime::Error,
) -> ExecError {
    let stderr = stderr_text(&host.stderr);
    if let Some((requested, declared_max)) = host.limiter.refused_memory {
        return match declared_max {
            // Within the job's limit, so the module's own declared maximum refused it: growth
            // failure is a trap here (trap_on_grow_failure), not a -1 the program could see.
            Some(max) if requested <= limits.memory_bytes => ExecError::Trap {
                phase,
                trap: format!(
                    "memory grew past the module's own declared maximum of {max} bytes \
                     (link with a larger --max-memory)"
                ),
                stderr,
            },
            _ => ExecError::MemoryLimit {
                phase,
                requested,
                limit: limits.memory_bytes,
            },
        };
    }
    if let Some(stop) = err.downcast_ref::<HostStop>() {
        return match stop {
            HostStop::Exit(code) => ExecError::Exit {
                phase,
                code: *code,
                stderr,
            },
            HostStop::OutputTooLarge { attempted } => ExecError::OutputTooLarge {
                phase,
                size: *attempted,
                limit: limits.max_output_bytes,
            },
            HostStop::NoMemory => ExecError::Abi {
                style: "WASI",
                detail: stop.to_string(),
            },
        };
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => ExecError::FuelExhausted { phase, limit: fuel },
        Some(Trap::Interrupt) => ExecError::TimedOut {
            phase,
            limit_ms: limits.wall_time_ms,
        },
        Some(Trap::StackOverflow) => ExecError::StackOverflow { phase },
        Some(trap) => ExecError::Trap {
            phase,
            trap: trap.to_string(),
            stderr,
        },
        None => ExecError::Trap {
            phase,
            trap: format!("{err:#}"),
            stderr,
        },
    }
}

/// Reject any import outside the granted WASI subset, before anything runs.
fn check_imports(module: &Module) -> Result<(), ExecError> {
    for import in module.imports() {
        let granted = import.module() == WASI_MODULE
            && GRANTED_WASI_IMPORTS.contains(&import.name())
            && matches!(import.ty(), ExternType::Func(_));
        if !granted {
            return Err(ExecError::ImportNotGranted {
                module: import.module().to_string(),
                name: import.name().to_string(),
            });
        }
    }
    Ok(())
}
