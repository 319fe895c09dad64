//! Job runtimes: a [`Bundle`] becomes one [`Workload`], run through
//! [`orrery_types::workload::run`] with every checkpoint recorded.
//!
//! # Runtimes
//!
//! - `runtime = "wasm"`: [`orrery_exec::Runtime::load`] (what [`orrery_exec::run_bundle`] runs).
//! - `runtime = "ml"`: the manifest's `[ml]` table ([`MlTable`]) names the task and carries the
//!   job spec of `orrery-ml` (the same fields as `workloads/ml/*.toml`):
//!
//! ```toml
//! runtime = "ml"
//! steps = 40                 # must equal the workload's step count
//! inputs = ["weights"]       # only for finetune / infer
//! [ml]
//! task = "train"             # "train" | "finetune" | "infer"
//! weights = "weights"        # finetune / infer: the input holding safetensors weights
//! [ml.spec]                  # an orrery-ml JobSpec
//! seed = 1
//! steps = 40
//! batch_size = 32
//! [ml.spec.model] ...
//! ```
//!
//! `infer` classifies the spec's validation rows with an MLP (one batch per step) or generates
//! `[ml.spec.generate]` tokens with a transformer (one token per step). The thread count is the
//! provider's own (speed only).
//!
//! # Failures
//!
//! [`JobError::failure_reason`] says whether an error is the job's own deterministic failure
//! (then the run ends in a failure claim, see [`crate::runner`]) or not (a wall-clock timeout,
//! a host fault: the run is tried again).
//!
//! # Misbehaviour (devnet)
//!
//! [`Cheat::SkipStep`] wraps the workload so that step `n / 2` returns its input state
//! unchanged at no cost; [`Cheat::WrongOutput`] changes the output bytes. Both are applied the
//! same way when the run is resumed or replayed for a dispute, so a cheater argues
//! consistently for its own (wrong) checkpoints, as a real one would.

use crate::config::Cheat;
use orrery_exec::{Bundle, ExecError, RuntimeKind, WasmJob};
use orrery_ml::MlError;
use orrery_ml::data::Dataset;
use orrery_ml::model::ModelConfig;
use orrery_ml::spec::JobSpec;
use orrery_ml::workload::{ClassifyWorkload, GenerateWorkload, TrainWorkload};
use orrery_types::workload::{FailureReason, OutputResult, StepResult, Workload};
use serde::{Deserialize, Serialize};

/// What an ML bundle asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MlTask {
    /// Train from the spec's initialisation.
    Train,
    /// Train starting from the bundle's weights.
    Finetune,
    /// Classify (MLP) or generate text (transformer) with the bundle's weights.
    Infer,
}

/// The `[ml]` table of a `runtime = "ml"` manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlTable {
    /// What to do.
    pub task: MlTask,
    /// The input holding safetensors weights (finetune, infer).
    #[serde(default)]
    pub weights: Option<String>,
    /// The orrery-ml job spec.
    pub spec: JobSpec,
}

/// Why a bundle cannot be run here.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The wasm runtime refused the bundle or failed.
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// The ML runtime refused the spec or failed.
    #[error(transparent)]
    Ml(#[from] MlError),
    /// The bundle's `[ml]` table or manifest does not describe a runnable job.
    #[error("bad ML bundle: {0}")]
    BadMlBundle(String),
}

impl JobError {
    /// The code a failure claim carries for this error, when it is the job's own deterministic
    /// failure; `None` when it is not (a timeout, a host fault): the run is then retried.
    pub fn failure_reason(&self) -> Option<FailureReason> {
        match self {
            JobError::Exec(e) => e.failure_reason(),
            JobError::Ml(e) => e.failure_reason(),
            JobError::BadMlBundle(_) => Some(FailureReason::InvalidJob),
        }
    }
}

/// A loaded job of any runtime.
pub enum LoadedJob {
    /// WebAssembly.
    Wasm(Box<WasmJob>),
    /// ML training or fine-tuning.
    Train(Box<TrainWorkload>),
    /// MLP classification.
    Classify(Box<ClassifyWorkload>),
    /// Transformer text generation.
    Generate(Box<GenerateWorkload>),
}

impl std::fmt::Debug for LoadedJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LoadedJob::Wasm(_) => "LoadedJob::Wasm",
            LoadedJob::Train(_) => "LoadedJob::Train",
            LoadedJob::Classify(_) => "LoadedJob::Classify",
            LoadedJob::Generate(_) => "LoadedJob::Generate",
        })
    }
}

/// Build the workload for `bundle`, ML on the CPU path.
pub fn load(
    runtime: &orrery_exec::Runtime,
    bundle: &Bundle,
    threads: usize,
) -> Result<LoadedJob, JobError> {
    load_on(runtime, bundle, threads, &orrery_ml::Device::Cpu)
}

/// [`load`], with ML operators on `device` (the same bits on every device that passed its
/// self-check; see `gpu.rs`).
pub fn load_on(
    runtime: &orrery_exec::Runtime,
    bundle: &Bundle,
    threads: usize,
    device: &orrery_ml::Device,
) -> Result<LoadedJob, JobError> {
    let manifest = bundle.manifest();
    match manifest.runtime {
        RuntimeKind::Wasm => Ok(LoadedJob::Wasm(Box::new(runtime.load(bundle)?))),
        RuntimeKind::Ml => {
            let table = manifest.ml.clone().ok_or_else(|| {
                JobError::BadMlBundle("runtime = \"ml\" needs an [ml] table".into())
            })?;
            let ml: MlTable = table
                .try_into()
                .map_err(|e: toml::de::Error| JobError::BadMlBundle(e.to_string()))?;
            ml.spec.validate()?;
            let weights = || -> Result<orrery_ml::ParamSet, JobError> {
                let name = ml.weights.as_deref().ok_or_else(|| {
                    JobError::BadMlBundle(format!(
                        "task = \"{:?}\" needs `weights = \"<input name>\"`",
                        ml.task
                    ))
                })?;
                let bytes = bundle.input(name).ok_or_else(|| {
                    JobError::BadMlBundle(format!("no input named `{name}` in the bundle"))
                })?;
                Ok(orrery_ml::weights::load_for(&ml.spec.model, bytes)?)
            };
            let job = match ml.task {
                MlTask::Train => LoadedJob::Train(Box::new(
                    TrainWorkload::new(ml.spec.clone(), threads)?.on_device(device.clone()),
                )),
                MlTask::Finetune => LoadedJob::Train(Box::new(
                    TrainWorkload::finetune(ml.spec.clone(), weights()?, threads)?
                        .on_device(device.clone()),
                )),
                MlTask::Infer => match &ml.spec.model {
                    ModelConfig::Mlp(cfg) => {
                        let Dataset::Classification { val_x, .. } = ml.spec.data.load()? else {
                            return Err(JobError::BadMlBundle(
                                "an MLP classifies feature rows; the spec's data is text".into(),
                            ));
                        };
                        LoadedJob::Classify(Box::new(
                            ClassifyWorkload::new(
                                cfg.clone(),
                                weights()?,
                                val_x,
                                ml.spec.batch_size,
                                threads,
                            )?
                            .on_device(device.clone()),
                        ))
                    }
                    ModelConfig::Transformer(cfg) => {
                        let generate = ml.spec.generate.clone().ok_or_else(|| {
                            JobError::BadMlBundle(
                                "transformer inference needs [ml.spec.generate]".into(),
                            )
                        })?;
                        LoadedJob::Generate(Box::new(
                            GenerateWorkload::new(cfg.clone(), weights()?, generate, threads)?
                                .on_device(device.clone()),
                        ))
                    }
                },
            };
            // The Steps-dispute referee reads the step count from the manifest: the two must
            // agree or an honest run could lose a dispute over the count.
            if job.step_count() != manifest.steps {
                return Err(JobError::BadMlBundle(format!(
                    "manifest steps = {} but the ML job has {} steps",
                    manifest.steps,
                    job.step_count()
                )));
            }
            Ok(job)
        }
    }
}

impl Workload for LoadedJob {
    type Error = JobError;

    fn step_count(&self) -> u64 {
        match self {
            LoadedJob::Wasm(w) => w.step_count(),
            LoadedJob::Train(w) => w.step_count(),
            LoadedJob::Classify(w) => w.step_count(),
            LoadedJob::Generate(w) => w.step_count(),
        }
    }

    fn init(&mut self) -> Result<StepResult, JobError> {
        Ok(match self {
            LoadedJob::Wasm(w) => w.init()?,
            LoadedJob::Train(w) => w.init()?,
            LoadedJob::Classify(w) => w.init()?,
            LoadedJob::Generate(w) => w.init()?,
        })
    }

    fn step(&mut self, k: u64, state: &[u8]) -> Result<StepResult, JobError> {
        Ok(match self {
            LoadedJob::Wasm(w) => w.step(k, state)?,
            LoadedJob::Train(w) => w.step(k, state)?,
            LoadedJob::Classify(w) => w.step(k, state)?,
            LoadedJob::Generate(w) => w.step(k, state)?,
        })
    }

    fn output(&mut self, state: &[u8]) -> Result<OutputResult, JobError> {
        Ok(match self {
            LoadedJob::Wasm(w) => w.output(state)?,
            LoadedJob::Train(w) => w.output(state)?,
            LoadedJob::Classify(w) => w.output(state)?,
            LoadedJob::Generate(w) => w.output(state)?,
        })
    }

    fn failed_call_cost(&self) -> u64 {
        match self {
            LoadedJob::Wasm(w) => w.failed_call_cost(),
            LoadedJob::Train(w) => w.failed_call_cost(),
            LoadedJob::Classify(w) => w.failed_call_cost(),
            LoadedJob::Generate(w) => w.failed_call_cost(),
        }
    }
}

/// A workload as a (possibly cheating) provider runs it.
#[derive(Debug)]
pub struct AsRun<W> {
    inner: W,
    cheat: Cheat,
}

impl<W: Workload> AsRun<W> {
    /// Wrap `inner`; `Cheat::None` changes nothing.
    pub fn new(inner: W, cheat: Cheat) -> Self {
        AsRun { inner, cheat }
    }

    /// The step a [`Cheat::SkipStep`] provider skips.
    pub fn skipped_step(&self) -> u64 {
        self.inner.step_count() / 2
    }
}

impl<W: Workload> Workload for AsRun<W> {
    type Error = W::Error;

    fn step_count(&self) -> u64 {
        self.inner.step_count()
    }

    fn init(&mut self) -> Result<StepResult, W::Error> {
        self.inner.init()
    }

    fn step(&mut self, k: u64, state: &[u8]) -> Result<StepResult, W::Error> {
        if self.cheat == Cheat::SkipStep && k == self.skipped_step() {
            return Ok(StepResult {
                state: state.to_vec(),
                cost: 0,
            });
        }
        self.inner.step(k, state)
    }

    fn failed_call_cost(&self) -> u64 {
        self.inner.failed_call_cost()
    }

    fn output(&mut self, state: &[u8]) -> Result<OutputResult, W::Error> {
        let mut out = self.inner.output(state)?;
        if self.cheat == Cheat::WrongOutput {
            out.output.extend_from_slice(b"\n(made up)");
        }
        Ok(out)
    }
}
