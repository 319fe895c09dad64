//! The wgpu side of the GPU backend: adapter discovery, one compute pipeline per kernel
//! (compiled on first use), and a synchronous `run` that uploads a call's inputs, dispatches
//! one invocation per output element (or row), and reads the outputs back.
//!
//! Tensors are staged through host memory around every call: the models keep their
//! `Vec<f32>` activations, and the GPU computes the operators. That costs transfers but keeps
//! the CPU path the one definition of every model, and lets each operator be checked against
//! its CPU reference in isolation.

use crate::error::{MlError, Result};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Invocations per workgroup in every kernel (`@workgroup_size(64)`).
const WORKGROUP: u32 = 64;
/// Workgroups along x before a dispatch wraps onto y (the WebGPU minimum limit per dimension).
const MAX_GROUPS_X: u32 = 65_535;

const PRELUDE: &str = include_str!("shaders/prelude.wgsl");

/// Every kernel, by name, with its WGSL source (the prelude is prepended).
const KERNELS: &[(&str, &str)] = &[
    ("matmul", include_str!("shaders/matmul.wgsl")),
    ("gelu", include_str!("shaders/gelu.wgsl")),
    ("softmax", include_str!("shaders/softmax.wgsl")),
    ("cross_entropy", include_str!("shaders/cross_entropy.wgsl")),
    ("layer_norm", include_str!("shaders/layer_norm.wgsl")),
    ("layer_norm_dx", include_str!("shaders/layer_norm_dx.wgsl")),
    (
        "layer_norm_dparams",
        include_str!("shaders/layer_norm_dparams.wgsl"),
    ),
    ("embedding", include_str!("shaders/embedding.wgsl")),
    (
        "embedding_backward",
        include_str!("shaders/embedding_backward.wgsl"),
    ),
    ("attention", include_str!("shaders/attention.wgsl")),
    ("attention_ds", include_str!("shaders/attention_ds.wgsl")),
    (
        "attention_dqkv",
        include_str!("shaders/attention_dqkv.wgsl"),
    ),
    ("adamw", include_str!("shaders/adamw.wgsl")),
];

/// What a kernel call writes: a fresh zeroed buffer of `len` f32s, or one initialised from the
/// host (read back after the call either way).
pub(crate) enum Out<'a> {
    /// A zeroed output of this many 32-bit words.
    Zeroed(usize),
    /// An in-out buffer, uploaded before the call.
    Init(&'a [f32]),
}

/// What a kernel call reads: bytes uploaded for this call, or a buffer uploaded once and kept
/// on the device (a model's weights).
pub(crate) enum In<'a> {
    /// Uploaded before the call, dropped after it.
    Bytes(&'a [u8]),
    /// Already on the device.
    Resident(&'a Resident),
}

/// A read-only tensor kept on the GPU across calls: a model's weights, uploaded once at load
/// instead of on every call.
pub(crate) struct Resident {
    buffer: wgpu::Buffer,
    len: usize,
}

impl std::fmt::Debug for Resident {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resident").field("len", &self.len).finish()
    }
}

impl Resident {
    /// Its length in `f32`s.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

/// An opened GPU: the wgpu device and queue, what the adapter is, and the compiled kernels.
pub struct GpuContext {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    pipelines: Mutex<HashMap<&'static str, wgpu::ComputePipeline>>,
    dispatches: AtomicU64,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext")
            .field("adapter", &self.info.name)
            .field("backend", &self.info.backend)
            .finish()
    }
}

impl GpuContext {
    /// Open the first usable adapter of the Vulkan, Metal or DX12 backends (as narrowed by
    /// `WGPU_BACKEND`, e.g. `vulkan`), preferring a discrete GPU. Software adapters (lavapipe)
    /// are accepted: they compute the same bits, slowly. `Err` names why none could be opened.
    pub fn open() -> Result<GpuContext> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12;
        let desc = desc.with_env();
        let instance = wgpu::Instance::new(desc);
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            force_fallback_adapter: false,
            compatible_surface: None,
            apply_limit_buckets: false,
        }))
        .map_err(|e| MlError::Device(format!("no GPU adapter: {e}")))?;
        let info = adapter.get_info();
        // Ask for the adapter's own limits: the defaults cap storage buffers at 128 MiB.
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("orrery-ml"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| MlError::Device(format!("cannot open {}: {e}", info.name)))?;
        Ok(GpuContext {
            device,
            queue,
            info,
            limits,
            pipelines: Mutex::new(HashMap::new()),
            dispatches: AtomicU64::new(0),
        })
    }

    /// The adapter's name (e.g. "NVIDIA GeForce RTX 4090", "llvmpipe (LLVM 15.0.6, 256 bits)").
    pub fn adapter_name(&self) -> &str {
        &self.info.name
    }

    /// The adapter's description: backend, vendor and driver.
    pub fn info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    /// Kernel calls run on this device so far (tests check that the GPU did the work).
    pub fn dispatches(&self) -> u64 {
        self.dispatches.load(Ordering::Relaxed)
    }

    /// Whether the adapter is a software rasterizer (lavapipe, WARP, SwiftShader).
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// The largest buffer one operand may occupy, in bytes.
    pub fn max_buffer_bytes(&self) -> u64 {
        self.limits
            .max_buffer_size
            .min(self.limits.max_storage_buffer_binding_size)
    }

    fn pipeline(&self, kernel: &'static str) -> Result<wgpu::ComputePipeline> {
        let mut cache = self
            .pipelines
            .lock()
            .map_err(|_| MlError::Device("pipeline cache poisoned".into()))?;
        if let Some(p) = cache.get(kernel) {
            return Ok(p.clone());
        }
        let src = KERNELS
            .iter()
            .find(|(n, _)| *n == kernel)
            .map(|(_, s)| *s)
            .ok_or_else(|| MlError::Device(format!("no kernel `{kernel}`")))?;
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(kernel),
                source: wgpu::ShaderSource::Wgsl(format!("{PRELUDE}\n{src}").into()),
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(kernel),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(MlError::Device(format!(
                "kernel `{kernel}` does not compile: {e}"
            )));
        }
        cache.insert(kernel, pipeline.clone());
        Ok(pipeline)
    }

    /// A storage buffer of `bytes` (at least 4), checked against the device's limits first
    /// and under an out-of-memory error scope, so that a too-large tensor is an error that
    /// names its size, never a crash.
    fn buffer(&self, what: &str, bytes: u64, usage: wgpu::BufferUsages) -> Result<wgpu::Buffer> {
        let limit = self.max_buffer_bytes();
        if bytes > limit {
            return Err(MlError::DeviceOutOfMemory {
                what: what.to_string(),
                bytes,
                limit,
            });
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buf = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: bytes.max(4).next_multiple_of(4),
            usage,
            mapped_at_creation: false,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(MlError::DeviceOutOfMemory {
                what: format!("{what} ({e})"),
                bytes,
                limit,
            });
        }
        Ok(buf)
    }

    /// Allocate (and drop) a storage buffer of `bytes`: `Err(DeviceOutOfMemory)` naming the
    /// size when the device cannot hold it.
    pub(crate) fn probe(&self, bytes: u64) -> Result<()> {
        self.buffer("probe", bytes, wgpu::BufferUsages::STORAGE)
            .map(drop)
    }

    /// Upload `data` once into a buffer that stays on the device (see [`Resident`]); a tensor
    /// the device cannot hold is `Err(DeviceOutOfMemory)` naming its size.
    pub(crate) fn resident(&self, what: &str, data: &[f32]) -> Result<Resident> {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        let buffer = self.buffer(
            what,
            bytes.len() as u64,
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        )?;
        if !bytes.is_empty() {
            self.queue.write_buffer(&buffer, 0, bytes);
        }
        Ok(Resident {
            buffer,
            len: data.len(),
        })
    }

    /// Run `kernel` over `invocations` invocations. Binding 0 gets `[0, invocations,
    /// params...]`, bindings `1..` the `inputs` (read-only) and then the `outputs`
    /// (read-write), whose contents are returned in order.
    pub(crate) fn run(
        &self,
        kernel: &'static str,
        invocations: usize,
        params: &[u32],
        inputs: &[&[u8]],
        outputs: &[Out<'_>],
    ) -> Result<Vec<Vec<f32>>> {
        let inputs: Vec<In<'_>> = inputs.iter().map(|b| In::Bytes(b)).collect();
        self.run_with(kernel, invocations, params, &inputs, outputs)
    }

    /// [`GpuContext::run`] with inputs that may already be on the device.
    pub(crate) fn run_with(
        &self,
        kernel: &'static str,
        invocations: usize,
        params: &[u32],
        inputs: &[In<'_>],
        outputs: &[Out<'_>],
    ) -> Result<Vec<Vec<f32>>> {
        let pipeline = self.pipeline(kernel)?;
        let invocations_u32 = u32::try_from(invocations).map_err(|_| {
            MlError::Device(format!("{kernel}: {invocations} invocations is too many"))
        })?;
        let mut words = vec![0u32, invocations_u32];
        words.extend_from_slice(params);
        let storage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
        let pbuf = self.buffer("parameters", (words.len() * 4) as u64, storage)?;
        self.queue
            .write_buffer(&pbuf, 0, bytemuck::cast_slice(&words));
        // Per-call buffers are owned here; resident ones are borrowed from their owner.
        let mut owned = Vec::with_capacity(inputs.len());
        for (i, input) in inputs.iter().enumerate() {
            if let In::Bytes(data) = input {
                let b = self.buffer(&format!("{kernel} input {i}"), data.len() as u64, storage)?;
                if !data.is_empty() {
                    self.queue.write_buffer(&b, 0, data);
                }
                owned.push(b);
            }
        }
        let mut owned_inputs = owned.iter();
        let mut input_buffers: Vec<&wgpu::Buffer> = Vec::with_capacity(inputs.len());
        for input in inputs {
            input_buffers.push(match input {
                In::Resident(r) => &r.buffer,
                In::Bytes(_) => owned_inputs.next().ok_or_else(|| {
                    MlError::Device(format!("{kernel}: input buffers out of step"))
                })?,
            });
        }
        let mut out_buffers = Vec::with_capacity(outputs.len());
        let mut out_bytes = Vec::with_capacity(outputs.len());
        for (i, o) in outputs.iter().enumerate() {
            let (len, init) = match o {
                Out::Zeroed(n) => (*n * 4, None),
                Out::Init(d) => (d.len() * 4, Some(*d)),
            };
            let what = format!("{kernel} output {i}");
            let b = self.buffer(&what, len as u64, storage | wgpu::BufferUsages::COPY_SRC)?;
            if let Some(d) = init.filter(|d| !d.is_empty()) {
                self.queue.write_buffer(&b, 0, bytemuck::cast_slice(d));
            }
            out_buffers.push(b);
            out_bytes.push(len as u64);
        }
        let entries: Vec<_> = std::iter::once(&pbuf)
            .chain(input_buffers.iter().copied())
            .chain(out_buffers.iter())
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let total_out: u64 = out_bytes.iter().sum();
        let staging = self.buffer(
            &format!("{kernel} read-back"),
            total_out,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        )?;
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some(kernel),
            });
        if invocations_u32 > 0 {
            let groups = invocations_u32.div_ceil(WORKGROUP);
            let (gx, gy) = if groups <= MAX_GROUPS_X {
                (groups, 1)
            } else {
                (MAX_GROUPS_X, groups.div_ceil(MAX_GROUPS_X))
            };
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(kernel),
                timestamp_writes: None,
            });
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(gx, gy, 1);
        }
        let mut offset = 0;
        for (b, &len) in out_buffers.iter().zip(&out_bytes) {
            if len > 0 {
                encoder.copy_buffer_to_buffer(b, 0, &staging, offset, len);
            }
            offset += len;
        }
        self.queue.submit([encoder.finish()]);
        self.dispatches.fetch_add(1, Ordering::Relaxed);
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(MlError::Device(format!("{kernel}: {e}")));
        }
        let mut results = Vec::with_capacity(outputs.len());
        if total_out == 0 {
            results.resize(outputs.len(), Vec::new());
            return Ok(results);
        }
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| MlError::Device(format!("{kernel}: device lost while waiting: {e}")))?;
        rx.recv()
            .map_err(|_| MlError::Device(format!("{kernel}: read-back never completed")))?
            .map_err(|e| MlError::Device(format!("{kernel}: cannot read results back: {e}")))?;
        {
            let view = staging
                .get_mapped_range(..)
                .map_err(|e| MlError::Device(format!("{kernel}: {e:?}")))?;
            let all: &[f32] = bytemuck::cast_slice(&view[..total_out as usize]);
            let mut at = 0;
            for &len in &out_bytes {
                let n = (len / 4) as usize;
                results.push(all[at..at + n].to_vec());
                at += n;
            }
        }
        staging.unmap();
        Ok(results)
    }
}
