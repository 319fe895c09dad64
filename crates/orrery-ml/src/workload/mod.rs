//! The ML runtime's workloads, in the shape every Orrery runtime shares
//! ([`orrery_types::workload::Workload`]).
//!
//! - [`TrainWorkload`] — `train` (weights from the spec's seed) and `finetune` (weights given).
//!   `state_k` is a [`TrainState`]; step `k` is one optimizer step on batch `k`; the output is
//!   the final weights as safetensors.
//! - [`GenerateWorkload`] — `infer` for a language model: step `k` samples token `k` with a
//!   generator seeded by `(seed, k)`; the output is the prompt and its continuation as text.
//! - [`ClassifyWorkload`] — `infer` for a classifier: step `k` labels rows of batch `k`; the
//!   output is one label per line.
//!
//! Every step is a pure function of (spec, data, weights given at start, `k`, `state_k`); the
//! thread count is a speed knob that never changes a bit of any state.

use crate::data::{self, Dataset, VOCAB_SIZE};
use crate::device::Device;
use crate::error::{MlError, Result};
use crate::model::{Batch, MlpConfig, ModelConfig, TransformerConfig};
use crate::ops;
use crate::rng::Rng;
use crate::spec::{GenerateConfig, JobSpec};
use crate::state::TrainState;
use crate::tensor::ParamSet;
use crate::weights;
use orrery_types::workload::{OutputResult, StepResult, Workload};

/// Validation batches used by [`TrainWorkload::evaluate`] for a language model.
const EVAL_MAX_BATCHES: usize = 8;

/// Loss (and accuracy, for classifiers) on the validation split.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean cross-entropy in nats.
    pub loss: f32,
    /// Fraction of validation rows classified correctly (classifiers only).
    pub accuracy: Option<f32>,
}

/// Training or fine-tuning as a workload.
#[derive(Clone, Debug)]
pub struct TrainWorkload {
    spec: JobSpec,
    data: Dataset,
    initial: Option<ParamSet>,
    threads: usize,
    device: Device,
    /// Cost of the last step that diverged: it computed a whole step before the check failed.
    failed_cost: u64,
}

fn check_fit(spec: &JobSpec, data: &Dataset) -> Result<()> {
    match (&spec.model, data) {
        (
            ModelConfig::Mlp(c),
            Dataset::Classification {
                features,
                classes,
                train_y,
                ..
            },
        ) => {
            if c.inputs != *features {
                return Err(MlError::BadData(format!(
                    "the data set has {features} features but the model has inputs = {}",
                    c.inputs
                )));
            }
            if c.classes != *classes {
                return Err(MlError::BadData(format!(
                    "the data set has {classes} classes but the model has classes = {}",
                    c.classes
                )));
            }
            if train_y.is_empty() {
                return Err(MlError::BadData("the training split is empty".into()));
            }
            Ok(())
        }
        (ModelConfig::Transformer(c), Dataset::Text { train, .. }) => {
            if c.vocab_size != VOCAB_SIZE {
                return Err(MlError::BadData(format!(
                    "the character vocabulary has {VOCAB_SIZE} tokens but the model has vocab_size = {}",
                    c.vocab_size
                )));
            }
            let seq = spec.seq();
            if train.len() <= seq {
                return Err(MlError::BadData(format!(
                    "the training text has {} tokens; a sequence needs at least seq_len + 1 = {}",
                    train.len(),
                    seq + 1
                )));
            }
            Ok(())
        }
        (ModelConfig::Mlp(_), Dataset::Text { .. }) => Err(MlError::BadData(
            "an MLP classifier needs a classification data set (spirals or blobs), not a corpus"
                .into(),
        )),
        (ModelConfig::Transformer(_), Dataset::Classification { .. }) => Err(MlError::BadData(
            "a transformer language model needs a text corpus (data.kind = \"corpus\")".into(),
        )),
    }
}

impl TrainWorkload {
    /// Train from scratch: `state_0` holds weights initialised from `spec.seed`.
    pub fn new(spec: JobSpec, threads: usize) -> Result<Self> {
        spec.validate()?;
        let data = spec.data.load()?;
        check_fit(&spec, &data)?;
        Ok(TrainWorkload {
            spec,
            data,
            initial: None,
            threads: threads.max(1),
            device: Device::Cpu,
            failed_cost: 0,
        })
    }

    /// Run the operators on `device` (the CPU path unless set). A speed knob like the
    /// thread count where the device reproduces the CPU reference (see [`crate::device`]).
    pub fn on_device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }

    /// Fine-tune: `state_0` holds `weights`, which must match the spec's model exactly.
    pub fn finetune(spec: JobSpec, weights: ParamSet, threads: usize) -> Result<Self> {
        let mut w = Self::new(spec, threads)?;
        let weights = weights.conform_to(&w.spec.model.template())?;
        if let Some(name) = weights.first_non_finite() {
            return Err(MlError::WeightsMismatch(format!(
                "tensor `{name}` holds NaN or infinity"
            )));
        }
        w.initial = Some(weights);
        Ok(w)
    }

    /// The job spec.
    pub fn spec(&self) -> &JobSpec {
        &self.spec
    }

    /// The loaded data set.
    pub fn data(&self) -> &Dataset {
        &self.data
    }

    /// Change the thread count (results do not change).
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = threads.max(1);
    }

    /// Decode a state and check it belongs to this job's model and optimizer.
    pub fn decode_state(&self, bytes: &[u8]) -> Result<TrainState> {
        let st = TrainState::decode(bytes)?;
        let template = self.spec.model.template();
        let params = st
            .params
            .conform_to(&template)
            .map_err(|e| MlError::BadState(format!("parameters: {e}")))?;
        let want_slots = self.spec.optimizer.init_slots(&template).len();
        if st.slots.len() != want_slots {
            return Err(MlError::BadState(format!(
                "{} optimizer slots, this optimizer keeps {want_slots}",
                st.slots.len()
            )));
        }
        let mut slots = Vec::with_capacity(want_slots);
        for s in st.slots {
            slots.push(
                s.conform_to(&template)
                    .map_err(|e| MlError::BadState(format!("optimizer slot: {e}")))?,
            );
        }
        Ok(TrainState {
            step: st.step,
            last_loss: st.last_loss,
            params,
            slots,
        })
    }

    /// The cost of any one step (it depends on shapes only).
    pub fn step_cost(&self) -> u64 {
        let batch = self
            .data
            .train_batch(self.spec.seed, 0, self.spec.batch_size, self.spec.seq());
        self.spec.model.step_cost(&batch)
    }

    /// Tokens (or examples) consumed per step.
    pub fn rows_per_step(&self) -> usize {
        self.spec.batch_size * self.spec.seq()
    }

    /// Loss and accuracy of `params` on the validation split.
    pub fn evaluate(&self, params: &ParamSet) -> Result<Evaluation> {
        let batches =
            self.data
                .validation_batches(self.spec.batch_size, self.spec.seq(), EVAL_MAX_BATCHES);
        if batches.is_empty() {
            return Err(MlError::BadData(
                "the validation split is too short to evaluate on".into(),
            ));
        }
        let mut loss_sum = 0.0f64;
        let mut rows = 0usize;
        let mut correct = 0usize;
        for b in &batches {
            let l = self
                .spec
                .model
                .loss_on(&self.device, params, b, self.threads)?;
            loss_sum += l as f64 * b.rows() as f64;
            rows += b.rows();
            if let (ModelConfig::Mlp(c), Batch::Classify { x, y }) = (&self.spec.model, b) {
                let logits = c.logits_on(&self.device, params, x, self.threads)?;
                correct += argmax_rows(&logits, c.classes)
                    .iter()
                    .zip(y)
                    .filter(|(a, b)| a == b)
                    .count();
            }
        }
        Ok(Evaluation {
            loss: (loss_sum / rows as f64) as f32,
            accuracy: matches!(self.spec.model, ModelConfig::Mlp(_))
                .then(|| correct as f32 / rows as f32),
        })
    }

    /// The final weights of a state as safetensors bytes.
    pub fn weights_of(&self, state: &[u8]) -> Result<Vec<u8>> {
        let st = self.decode_state(state)?;
        weights::to_safetensors(&self.spec.model, &st.params)
    }
}

fn argmax_rows(logits: &[f32], cols: usize) -> Vec<u32> {
    logits
        .chunks_exact(cols)
        .map(|r| {
            let mut best = 0;
            for (i, &v) in r.iter().enumerate() {
                if v > r[best] {
                    best = i;
                }
            }
            best as u32
        })
        .collect()
}

impl TrainWorkload {
    /// Optimizer step `k` on `batch`: forward and backward on the workload's device, the
    /// divergence checks, gradient clipping and the update of `params` and `slots`. Returns
    /// the batch's loss. One definition for a training step and a cluster worker's inner step.
    pub(crate) fn optimizer_step(
        &self,
        k: u64,
        batch: &Batch,
        params: &mut ParamSet,
        slots: &mut [ParamSet],
    ) -> Result<f32> {
        let (loss, mut grads) =
            self.spec
                .model
                .loss_and_grads_on(&self.device, params, batch, self.threads)?;
        if !loss.is_finite() {
            return Err(MlError::NonFinite {
                step: k,
                what: "the training loss".into(),
            });
        }
        if let Some(name) = grads.first_non_finite() {
            return Err(MlError::NonFinite {
                step: k,
                what: format!("the gradient of `{name}`"),
            });
        }
        if let Some(clip) = self.spec.grad_clip {
            crate::optim::clip_grad_norm(&mut grads, clip);
        }
        self.spec
            .optimizer
            .apply_on(&self.device, k + 1, params, &grads, slots)?;
        if let Some(name) = params.first_non_finite() {
            return Err(MlError::NonFinite {
                step: k,
                what: format!("parameter `{name}` after the update"),
            });
        }
        Ok(loss)
    }
}

impl Workload for TrainWorkload {
    type Error = MlError;

    fn step_count(&self) -> u64 {
        self.spec.steps
    }

    fn init(&mut self) -> Result<StepResult> {
        let params = match &self.initial {
            Some(p) => p.clone(),
            None => self.spec.model.init_params(self.spec.seed),
        };
        let slots = self.spec.optimizer.init_slots(&params);
        let st = TrainState {
            step: 0,
            last_loss: None,
            params,
            slots,
        };
        Ok(StepResult {
            state: st.encode(),
            cost: 0,
        })
    }

    fn step(&mut self, k: u64, state: &[u8]) -> Result<StepResult> {
        let mut st = self.decode_state(state)?;
        if st.step != k {
            return Err(MlError::StepMismatch {
                k,
                state_step: st.step,
            });
        }
        let batch = self
            .data
            .train_batch(self.spec.seed, k, self.spec.batch_size, self.spec.seq());
        // Set before any divergence check: a diverged step did the whole step's work.
        self.failed_cost = self.spec.model.step_cost(&batch);
        let loss = self.optimizer_step(k, &batch, &mut st.params, &mut st.slots)?;
        st.step = k + 1;
        st.last_loss = Some(loss);
        Ok(StepResult {
            state: st.encode(),
            cost: self.spec.model.step_cost(&batch),
        })
    }

    /// Serializing the weights is bookkeeping, not compute: it costs nothing.
    fn output(&mut self, state: &[u8]) -> Result<OutputResult> {
        Ok(OutputResult {
            output: self.weights_of(state)?,
            cost: 0,
        })
    }

    /// A step that diverged is billed as the step it computed; other failures cost nothing
    /// (they happen before the step's work).
    fn failed_call_cost(&self) -> u64 {
        self.failed_cost
    }
}

// ---------------------------------------------------------------------------------------------
// Inference.

/// Encode `(k, values)` for the inference workloads: magic, `k: u64`, `len: u32`, `u32 × len`.
fn encode_u32s(magic: &[u8; 4], k: u64, values: &[u32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 4 * values.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&k.to_le_bytes());
    out.extend_from_slice(&(values.len() as u32).to_le_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

fn decode_u32s(magic: &[u8; 4], bytes: &[u8]) -> Result<(u64, Vec<u32>)> {
    let bad = |why: &str| MlError::BadState(why.to_string());
    if bytes.len() < 16 || &bytes[..4] != magic {
        return Err(bad("not an inference state of this kind"));
    }
    let k = u64::from_le_bytes(bytes[4..12].try_into().map_err(|_| bad("truncated"))?);
    let len = u32::from_le_bytes(bytes[12..16].try_into().map_err(|_| bad("truncated"))?) as usize;
    if bytes.len() - 16 != len.saturating_mul(4) {
        return Err(bad("length does not match the data"));
    }
    let values = bytes[16..]
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((k, values))
}

/// Text generation from a transformer language model.
#[derive(Clone, Debug)]
pub struct GenerateWorkload {
    config: TransformerConfig,
    params: ParamSet,
    prompt: Vec<u32>,
    generate: GenerateConfig,
    threads: usize,
    device: Device,
}

impl GenerateWorkload {
    /// Generate with `params` for `config` (checked to match) as `generate` says.
    pub fn new(
        config: TransformerConfig,
        params: ParamSet,
        generate: GenerateConfig,
        threads: usize,
    ) -> Result<Self> {
        let model = ModelConfig::Transformer(config.clone());
        model.validate()?;
        let params = params.conform_to(&model.template())?;
        if config.vocab_size != VOCAB_SIZE {
            return Err(MlError::BadConfig(format!(
                "text generation uses the {VOCAB_SIZE}-character vocabulary; the model has vocab_size = {}",
                config.vocab_size
            )));
        }
        let mut prompt = data::encode(&generate.prompt)?;
        if prompt.is_empty() {
            // An empty prompt starts a new line.
            prompt.push(0);
        }
        Ok(GenerateWorkload {
            config,
            params,
            prompt,
            generate,
            threads: threads.max(1),
            device: Device::Cpu,
        })
    }

    /// Run the forward passes on `device` (see [`TrainWorkload::on_device`]).
    pub fn on_device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }
}

/// Sample a token from `logits` at `temperature` with one uniform draw; the cumulative sum
/// runs in token order. Temperature 0 picks the first most likely token.
pub fn sample_token(logits: &[f32], temperature: f32, rng: &mut Rng) -> u32 {
    if temperature == 0.0 {
        return argmax_rows(logits, logits.len())[0];
    }
    let scaled: Vec<f32> = logits.iter().map(|&l| l / temperature).collect();
    let probs = ops::softmax_rows(&scaled, scaled.len());
    let u = rng.uniform();
    let mut cum = 0.0f32;
    for (i, &p) in probs.iter().enumerate() {
        cum += p;
        if u < cum {
            return i as u32;
        }
    }
    (probs.len() - 1) as u32
}

impl Workload for GenerateWorkload {
    type Error = MlError;

    fn step_count(&self) -> u64 {
        self.generate.tokens
    }

    fn init(&mut self) -> Result<StepResult> {
        Ok(StepResult {
            state: encode_u32s(b"ORGN", 0, &[]),
            cost: 0,
        })
    }

    fn step(&mut self, k: u64, state: &[u8]) -> Result<StepResult> {
        let (sk, mut generated) = decode_u32s(b"ORGN", state)?;
        if sk != k || generated.len() as u64 != k {
            return Err(MlError::StepMismatch { k, state_step: sk });
        }
        if let Some(&bad) = generated.iter().find(|&&t| t as usize >= VOCAB_SIZE) {
            return Err(MlError::BadState(format!(
                "token {bad} outside the vocabulary"
            )));
        }
        let mut context = self.prompt.clone();
        context.extend_from_slice(&generated);
        let logits =
            self.config
                .next_token_logits_on(&self.device, &self.params, &context, self.threads)?;
        if logits.iter().any(|v| !v.is_finite()) {
            return Err(MlError::NonFinite {
                step: k,
                what: "the logits".into(),
            });
        }
        let mut rng = Rng::derive(self.generate.seed, k);
        generated.push(sample_token(&logits, self.generate.temperature, &mut rng));
        let window = context.len().min(self.config.context);
        let cost = ModelConfig::Transformer(self.config.clone()).forward_flops(&Batch::Tokens {
            ids: vec![],
            targets: vec![],
            batch: 1,
            seq: window,
        });
        Ok(StepResult {
            state: encode_u32s(b"ORGN", k + 1, &generated),
            cost,
        })
    }

    /// Decoding tokens to text is bookkeeping, not compute: it costs nothing.
    fn output(&mut self, state: &[u8]) -> Result<OutputResult> {
        let (_, generated) = decode_u32s(b"ORGN", state)?;
        let mut all = self.prompt.clone();
        all.extend_from_slice(&generated);
        Ok(OutputResult {
            output: data::decode(&all).into_bytes(),
            cost: 0,
        })
    }
}

/// Classification of feature rows with an MLP.
#[derive(Clone, Debug)]
pub struct ClassifyWorkload {
    config: MlpConfig,
    params: ParamSet,
    x: Vec<f32>,
    batch_size: usize,
    threads: usize,
    device: Device,
}

impl ClassifyWorkload {
    /// Classify the rows of `x` (`rows × inputs`), `batch_size` rows per step.
    pub fn new(
        config: MlpConfig,
        params: ParamSet,
        x: Vec<f32>,
        batch_size: usize,
        threads: usize,
    ) -> Result<Self> {
        let model = ModelConfig::Mlp(config.clone());
        model.validate()?;
        let params = params.conform_to(&model.template())?;
        if x.is_empty() || !x.len().is_multiple_of(config.inputs) {
            return Err(MlError::BadData(format!(
                "{} input values is not a whole, non-zero number of rows of {} features",
                x.len(),
                config.inputs
            )));
        }
        if batch_size == 0 {
            return Err(MlError::BadSpec("batch_size must be at least 1".into()));
        }
        Ok(ClassifyWorkload {
            config,
            params,
            x,
            batch_size,
            threads: threads.max(1),
            device: Device::Cpu,
        })
    }

    /// Run the forward passes on `device` (see [`TrainWorkload::on_device`]).
    pub fn on_device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }

    fn rows(&self) -> usize {
        self.x.len() / self.config.inputs
    }

    /// Parse this workload's output: one label per line.
    pub fn parse_output(output: &[u8]) -> Vec<u32> {
        String::from_utf8_lossy(output)
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }
}

impl Workload for ClassifyWorkload {
    type Error = MlError;

    fn step_count(&self) -> u64 {
        self.rows().div_ceil(self.batch_size) as u64
    }

    fn init(&mut self) -> Result<StepResult> {
        Ok(StepResult {
            state: encode_u32s(b"ORCL", 0, &[]),
            cost: 0,
        })
    }

    fn step(&mut self, k: u64, state: &[u8]) -> Result<StepResult> {
        let (sk, mut labels) = decode_u32s(b"ORCL", state)?;
        let start = (k as usize).saturating_mul(self.batch_size);
        if sk != k || labels.len() != start || start >= self.rows() {
            return Err(MlError::StepMismatch { k, state_step: sk });
        }
        let end = (start + self.batch_size).min(self.rows());
        let f = self.config.inputs;
        let logits = self.config.logits_on(
            &self.device,
            &self.params,
            &self.x[start * f..end * f],
            self.threads,
        )?;
        labels.extend(argmax_rows(&logits, self.config.classes));
        let cost = ModelConfig::Mlp(self.config.clone()).forward_flops(&Batch::Classify {
            x: vec![],
            y: vec![0; end - start],
        });
        Ok(StepResult {
            state: encode_u32s(b"ORCL", k + 1, &labels),
            cost,
        })
    }

    /// Formatting labels is bookkeeping, not compute: it costs nothing.
    fn output(&mut self, state: &[u8]) -> Result<OutputResult> {
        let (_, labels) = decode_u32s(b"ORCL", state)?;
        let output = labels
            .iter()
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            .into_bytes();
        Ok(OutputResult { output, cost: 0 })
    }
}
