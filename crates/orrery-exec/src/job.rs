//! A loaded wasm job: the [`Workload`] implementation, and single-step execution under an
//! explicit fuel bound for referees.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use orrery_types::Hash;
use orrery_types::workload::{OutputResult, StepResult, Workload};
use wasmtime::{ExternType, Instance, Store};

use crate::bundle::{Bundle, EntryStyle, RuntimeKind};
use crate::error::{ExecError, Phase};
use crate::limits::{Limits, MAX_BUNDLE_BYTES, MAX_FUEL_PER_STEP};
use crate::runtime::{CallError, Compiled, Failed, HostState, Runtime};
use crate::wasi::HostStop;

/// A bundle's module compiled and ready, with its limits and input. Every call (init, each
/// step, output) runs in a **fresh instance**, so a call is a pure function of the module, the
/// step index and the state passed in: nothing a module keeps in globals or memory survives
/// from one call to the next. That is what makes re-executing step `k` alone from `state_k`
/// equal to step `k` of a full run.
pub struct WasmJob {
    runtime: Runtime,
    compiled: Arc<Compiled>,
    bundle_hash: Hash,
    style: EntryStyle,
    steps: u64,
    limits: Limits,
    input: Vec<u8>,
    output_fuel: u64,
    /// Fuel the last call burned before it failed (0 when it failed before running).
    failed_fuel: AtomicU64,
}

impl Runtime {
    /// Compile (or fetch from the cache) a bundle's module and check that it exports what its
    /// entry style needs.
    pub fn load(&self, bundle: &Bundle) -> Result<WasmJob, ExecError> {
        let manifest = bundle.manifest();
        let wasm = match (manifest.runtime, &manifest.wasm) {
            (RuntimeKind::Wasm, Some(wasm)) => wasm,
            (RuntimeKind::Wasm, None) => {
                return Err(ExecError::Bundle(
                    crate::bundle::BundleError::InvalidManifest(
                        "runtime = \"wasm\" needs a [wasm] table".into(),
                    ),
                ));
            }
            (other, _) => return Err(ExecError::WrongRuntime(other.to_string())),
        };
        let compiled = self.compile(bundle.program())?;
        check_exports(&compiled, wasm.entry)?;
        let input = wasm
            .input
            .as_deref()
            .and_then(|name| bundle.input(name))
            .unwrap_or_default()
            .to_vec();
        Ok(WasmJob {
            runtime: self.clone(),
            compiled,
            bundle_hash: bundle.hash(),
            style: wasm.entry,
            steps: manifest.steps,
            limits: manifest.limits,
            input,
            output_fuel: 0,
            failed_fuel: AtomicU64::new(0),
        })
    }
}

/// The exports an entry style needs, with their wasm types as `(params, results)`.
fn required_exports(
    style: EntryStyle,
) -> &'static [(
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
)] {
    match style {
        EntryStyle::Stepper => &[
            ("alloc", &["i32"], &["i32"]),
            ("init", &["i32", "i32"], &["i64"]),
            ("step", &["i64", "i32", "i32"], &["i64"]),
            ("output", &["i32", "i32"], &["i64"]),
        ],
        EntryStyle::Command => &[("_start", &[], &[])],
    }
}

fn check_exports(compiled: &Compiled, style: EntryStyle) -> Result<(), ExecError> {
    let style_name = match style {
        EntryStyle::Stepper => "stepper",
        EntryStyle::Command => "command",
    };
    let wrong = |detail: String| ExecError::Abi {
        style: style_name,
        detail,
    };
    let signature = |params: &[&str], results: &[&str]| {
        format!("({}) -> ({})", params.join(", "), results.join(", "))
    };
    let mut checks = required_exports(style).to_vec();
    // Optional, but if present it is called with no arguments.
    if compiled.module.get_export("_initialize").is_some() {
        checks.push(("_initialize", &[], &[]));
    }
    for (name, params, results) in checks {
        let Some(ExternType::Func(ty)) = compiled.module.get_export(name) else {
            return Err(wrong(format!(
                "it must export a function `{name}` of type {}",
                signature(params, results)
            )));
        };
        let has: Vec<String> = ty.params().map(|v| v.to_string()).collect();
        let gives: Vec<String> = ty.results().map(|v| v.to_string()).collect();
        if has != params || gives != results {
            return Err(wrong(format!(
                "`{name}` has type ({}) -> ({}), but must be {}",
                has.join(", "),
                gives.join(", "),
                signature(params, results)
            )));
        }
    }
    match compiled.module.get_export("memory") {
        Some(ExternType::Memory(_)) => Ok(()),
        _ => Err(wrong("it must export its linear memory as `memory`".into())),
    }
}

fn abi(detail: impl Into<String>) -> CallError {
    CallError::Exec(ExecError::Abi {
        style: "stepper",
        detail: detail.into(),
    })
}

impl WasmJob {
    /// The hash of the bundle this job came from.
    pub fn bundle_hash(&self) -> Hash {
        self.bundle_hash
    }

    /// The entry style.
    pub fn style(&self) -> EntryStyle {
        self.style
    }

    /// The limits every call runs under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Fuel used by the most recent [`Workload::output`] call (not part of a step's cost).
    pub fn last_output_fuel(&self) -> u64 {
        self.output_fuel
    }

    /// Fuel the most recent call that failed burned before it failed: its whole bound when it
    /// ran out, what it used up to a trap, 0 when it was refused before running.
    pub fn last_failed_fuel(&self) -> u64 {
        self.failed_fuel.load(Ordering::Relaxed)
    }

    /// Record a failed call's fuel and return its error.
    fn failed(&self, f: Failed) -> ExecError {
        self.failed_fuel.store(f.fuel_used, Ordering::Relaxed);
        f.error
    }

    /// `init(input) -> state_0` under an explicit fuel bound (capped at `MAX_FUEL_PER_STEP`).
    pub fn init_with_fuel(&self, fuel: u64) -> Result<StepResult, ExecError> {
        self.failed_fuel.store(0, Ordering::Relaxed);
        match self.style {
            EntryStyle::Command => Ok(StepResult {
                state: self.input.clone(),
                cost: 0,
            }),
            EntryStyle::Stepper => {
                let (state, cost) = self.stepper_call(
                    Phase::Init,
                    fuel,
                    &self.input,
                    |e| e,
                    |store, instance, ptr, len| {
                        let init =
                            instance.get_typed_func::<(i32, i32), i64>(&mut *store, "init")?;
                        init.call(&mut *store, (ptr, len))
                    },
                )?;
                Ok(StepResult { state, cost })
            }
        }
    }

    /// Execute exactly one step, `state_k -> state_(k+1)`, under an explicit fuel bound (capped
    /// at `MAX_FUEL_PER_STEP`). This is what a referee calls on a disputed step; it does not
    /// depend on any earlier call.
    pub fn step_with_fuel(&self, k: u64, state: &[u8], fuel: u64) -> Result<StepResult, ExecError> {
        self.failed_fuel.store(0, Ordering::Relaxed);
        if k >= self.steps {
            return Err(ExecError::BadRequest(format!(
                "step {k} does not exist: this job has steps 0..{}",
                self.steps
            )));
        }
        let phase = Phase::Step(k);
        match self.style {
            EntryStyle::Command => {
                if state.len() > MAX_BUNDLE_BYTES {
                    return Err(ExecError::StateTooLarge {
                        phase,
                        size: state.len() as u64,
                        limit: MAX_BUNDLE_BYTES as u64,
                    });
                }
                let fuel = fuel.min(MAX_FUEL_PER_STEP);
                let called = self
                    .runtime
                    .call(
                        &self.compiled,
                        phase,
                        &self.limits,
                        fuel,
                        state.to_vec(),
                        |store, instance| {
                            let start = instance
                                .get_typed_func::<(), ()>(&mut *store, "_start")
                                .map_err(|e| {
                                    abi(format!("`_start` must take and return nothing: {e}"))
                                })?;
                            match start.call(&mut *store, ()) {
                                Ok(()) => Ok(()),
                                Err(e)
                                    if matches!(
                                        e.downcast_ref::<HostStop>(),
                                        Some(HostStop::Exit(0))
                                    ) =>
                                {
                                    Ok(())
                                }
                                Err(e) => Err(CallError::Wasm(e)),
                            }
                        },
                    )
                    .map_err(|f| self.failed(f))?;
                Ok(StepResult {
                    state: called.stdout,
                    cost: called.fuel_used,
                })
            }
            EntryStyle::Stepper => {
                let (state, cost) = self.stepper_call(
                    phase,
                    fuel,
                    state,
                    |e| e,
                    |store, instance, ptr, len| {
                        let step =
                            instance.get_typed_func::<(i64, i32, i32), i64>(&mut *store, "step")?;
                        step.call(&mut *store, (k as i64, ptr, len))
                    },
                )?;
                Ok(StepResult { state, cost })
            }
        }
    }

    /// `output(state_n) -> bytes` under an explicit fuel bound; returns the output and the
    /// fuel used.
    pub fn output_with_fuel(&self, state: &[u8], fuel: u64) -> Result<(Vec<u8>, u64), ExecError> {
        self.failed_fuel.store(0, Ordering::Relaxed);
        match self.style {
            EntryStyle::Command => {
                if state.len() as u64 > self.limits.max_output_bytes {
                    return Err(ExecError::OutputTooLarge {
                        phase: Phase::Output,
                        size: state.len() as u64,
                        limit: self.limits.max_output_bytes,
                    });
                }
                Ok((state.to_vec(), 0))
            }
            EntryStyle::Stepper => self.stepper_call(
                Phase::Output,
                fuel,
                state,
                |e| match e {
                    ExecError::StateTooLarge { phase, size, .. } => ExecError::OutputTooLarge {
                        phase,
                        size,
                        limit: self.limits.max_output_bytes,
                    },
                    other => other,
                },
                |store, instance, ptr, len| {
                    let output =
                        instance.get_typed_func::<(i32, i32), i64>(&mut *store, "output")?;
                    output.call(&mut *store, (ptr, len))
                },
            ),
        }
    }

    /// One stepper call: fresh instance, `_initialize` if exported, copy `data` in through
    /// `alloc`, run `invoke`, copy the packed `(ptr << 32) | len` result out.
    fn stepper_call(
        &self,
        phase: Phase,
        fuel: u64,
        data: &[u8],
        map_size_error: impl Fn(ExecError) -> ExecError,
        invoke: impl FnOnce(&mut Store<HostState>, &Instance, i32, i32) -> wasmtime::Result<i64>,
    ) -> Result<(Vec<u8>, u64), ExecError> {
        let limits = &self.limits;
        let max_result = if phase == Phase::Output {
            limits.max_output_bytes
        } else {
            limits.max_state_bytes
        };
        // The data going in is a state (or, for init, the job's input, bounded by the bundle).
        let max_in = if phase == Phase::Init {
            MAX_BUNDLE_BYTES as u64
        } else {
            limits.max_state_bytes
        };
        if data.len() as u64 > max_in {
            return Err(ExecError::StateTooLarge {
                phase,
                size: data.len() as u64,
                limit: max_in,
            });
        }
        let fuel = fuel.min(MAX_FUEL_PER_STEP);
        let called = self
            .runtime
            .call(
                &self.compiled,
                phase,
                limits,
                fuel,
                Vec::new(),
                |store, instance| {
                    if let Ok(initialize) =
                        instance.get_typed_func::<(), ()>(&mut *store, "_initialize")
                    {
                        initialize.call(&mut *store, ())?;
                    }
                    let memory = instance
                        .get_memory(&mut *store, "memory")
                        .ok_or_else(|| abi("it must export its linear memory as `memory`"))?;
                    let alloc = instance
                        .get_typed_func::<i32, i32>(&mut *store, "alloc")
                        .map_err(|e| abi(format!("`alloc` must have type (i32) -> i32: {e}")))?;
                    // Fits: data.len() ≤ MAX_BUNDLE_BYTES < 2^31.
                    let len = data.len() as i32;
                    let ptr = alloc.call(&mut *store, len)?;
                    memory
                        .write(&mut *store, ptr as u32 as usize, data)
                        .map_err(|_| {
                            abi(format!("alloc({len}) returned {ptr:#x}, outside memory"))
                        })?;
                    let packed = invoke(store, &instance, ptr, len)? as u64;
                    let (out_ptr, out_len) = (packed >> 32, packed & 0xffff_ffff);
                    if out_len > max_result {
                        return Err(CallError::Exec(map_size_error(ExecError::StateTooLarge {
                            phase,
                            size: out_len,
                            limit: max_result,
                        })));
                    }
                    let mut out = vec![0u8; out_len as usize];
                    memory
                        .read(&*store, out_ptr as usize, &mut out)
                        .map_err(|_| {
                            abi(format!(
                                "{phase} returned {out_len} bytes at {out_ptr:#x}, outside memory"
                            ))
                        })?;
                    Ok(out)
                },
            )
            .map_err(|f| self.failed(f))?;
        Ok((called.value, called.fuel_used))
    }
}

impl Workload for WasmJob {
    type Error = ExecError;

    fn step_count(&self) -> u64 {
        self.steps
    }

    fn init(&mut self) -> Result<StepResult, ExecError> {
        self.init_with_fuel(self.limits.fuel_per_step)
    }

    fn step(&mut self, k: u64, state: &[u8]) -> Result<StepResult, ExecError> {
        self.step_with_fuel(k, state, self.limits.fuel_per_step)
    }

    fn output(&mut self, state: &[u8]) -> Result<OutputResult, ExecError> {
        let (output, fuel) = self.output_with_fuel(state, self.limits.fuel_per_step)?;
        self.output_fuel = fuel;
        Ok(OutputResult { output, cost: fuel })
    }

    fn failed_call_cost(&self) -> u64 {
        self.last_failed_fuel()
    }
}
