//! GPUs for ML leases: which device runs a lease's job, and when a lease that reserves GPUs is
//! refused.
//!
//! # Rules
//!
//! - At start the agent opens the first usable wgpu adapter (`orrery_ml::Device::detect`) and
//!   runs `Device::self_check`: every GPU kernel against the CPU reference, bit for bit. A GPU
//!   that passes reproduces the `cpu-reference` device class, so any verifier (CPU or GPU)
//!   re-executes its runs to the same checkpoints. One that fails is not used: the agent logs
//!   why and runs ML on the CPU path (and refuses leases that reserve GPUs, below). No adapter:
//!   the CPU path, with a log line saying so.
//! - A lease whose terms reserve GPUs (`resources.gpus > 0`) runs its ML job on the GPU; a
//!   lease that reserves none runs on the CPU path. The results are the same bits either way.
//! - A lease that reserves more GPUs than the machine has *now* (recounted when the lease is
//!   about to start or run: the driver may have gone, a card may have been pulled) — or any
//!   GPU while no GPU backend is usable — is refused before it starts: never run on the CPU at
//!   GPU prices. The agent neither starts nor runs it; the chain cancels it at its `start_by`
//!   height and refunds the requester.

use orrery_ml::Device;

/// Whether a lease that reserves `requested` GPUs may run here, where `present` GPUs are
/// counted now and `backend` tells whether a self-checked GPU backend is open. `Err` is the
/// refusal's reason, for the log.
pub fn admit(requested: u16, present: u16, backend: bool) -> Result<(), String> {
    if requested == 0 {
        return Ok(());
    }
    if !backend {
        return Err(format!(
            "the lease reserves {requested} GPU(s) but no GPU backend is usable here; refusing rather than running it on the CPU at GPU prices"
        ));
    }
    if requested > present {
        return Err(format!(
            "the lease reserves {requested} GPU(s) but this machine has {present} now; refusing before it starts"
        ));
    }
    Ok(())
}

/// The GPU backend an agent found at start.
#[derive(Clone, Debug)]
pub struct MlGpu {
    /// The opened, self-checked device.
    pub device: Device,
    /// GPUs this machine has now (NVML's count, or the configured hardware's).
    pub count_now: fn(Option<u16>) -> u16,
    /// The configured GPU count, when the config declares the hardware.
    pub configured: Option<u16>,
}

impl MlGpu {
    /// GPUs present now.
    pub fn present(&self) -> u16 {
        (self.count_now)(self.configured)
    }
}

/// NVML's GPU count now, or the configured count when the config declares the hardware (for
/// GPUs NVML does not see: AMD, Intel, Apple).
pub fn count_now(configured: Option<u16>) -> u16 {
    configured.unwrap_or_else(|| crate::hardware::detect_gpus().map_or(0, |g| g.count))
}

/// Open and self-check a GPU backend, logging which device ML jobs will use and why.
pub fn open(configured: Option<u16>) -> Option<MlGpu> {
    let detected = Device::detect();
    if !detected.device.is_gpu() {
        tracing::info!("{}", detected.message);
        return None;
    }
    if let Err(e) = detected.device.self_check() {
        tracing::warn!(
            error = %e,
            "GPU backend {} does not reproduce the CPU reference; ML jobs run on the CPU path",
            detected.device.name()
        );
        return None;
    }
    tracing::info!(class = %detected.device.class(), "{}", detected.message);
    Some(MlGpu {
        device: detected.device,
        count_now,
        configured,
    })
}

/// The GPU for a unit test, or `None` with a printed reason; no adapter is a failure under
/// `ORRERY_GPU_TESTS=1` (as CI sets after installing lavapipe).
#[cfg(test)]
pub(crate) fn gpu_or_skip(test: &str) -> Option<Device> {
    match Device::gpu() {
        Ok(d) => Some(d),
        Err(e) if std::env::var("ORRERY_GPU_TESTS").as_deref() == Ok("1") => {
            panic!("{test}: ORRERY_GPU_TESTS=1 but {e}")
        }
        Err(e) => {
            eprintln!("{test}: skipped, {e}");
            None
        }
    }
}
