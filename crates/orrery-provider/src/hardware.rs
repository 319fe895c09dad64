//! What this machine has: NVIDIA GPUs through NVML, CPU cores and memory through `sysinfo`.
//!
//! NVML is loaded at run time. A machine without NVIDIA's driver (or without a GPU) fails
//! `Nvml::init()`; that means "no GPU", never an error. A machine with GPUs of several models
//! reports the most common model and how many of it it has (the offer format is one model per
//! machine; the others are not offered). The detected values are what the agent *claims*: the
//! network must not take them on faith (see `docs/architecture.md`).

use nvml_wrapper::Nvml;
use orrery_types::codec::Text;
use orrery_types::resources::{GpuSpec, Hardware};
use std::collections::BTreeMap;

/// Bytes in a GiB.
const GIB: u64 = 1 << 30;
/// Bytes in a MiB.
const MIB: u64 = 1 << 20;

/// Detect this machine's hardware. Never fails: what cannot be read counts as absent, and at
/// least one core and 1 GiB are reported (the ledger's floor for an offer).
pub fn detect() -> Hardware {
    let mut sys = sysinfo::System::new();
    sys.refresh_memory();
    sys.refresh_cpu_list(sysinfo::CpuRefreshKind::nothing());
    let cores = sys.cpus().len().max(1);
    let ram_gib = (sys.total_memory() / GIB).max(1);
    Hardware {
        gpu: detect_gpus(),
        cpu_cores: u16::try_from(cores).unwrap_or(u16::MAX),
        ram_gib: u32::try_from(ram_gib).unwrap_or(u32::MAX),
    }
}

/// NVIDIA GPUs through NVML, or `None` when there is no driver or no device.
pub fn detect_gpus() -> Option<GpuSpec> {
    let nvml = match Nvml::init() {
        Ok(n) => n,
        Err(e) => {
            tracing::debug!(error = %e, "NVML not available: no NVIDIA GPU offered");
            return None;
        }
    };
    let count = nvml.device_count().ok()?;
    // (model, VRAM MiB) -> how many devices.
    let mut models: BTreeMap<(String, u32), u16> = BTreeMap::new();
    for i in 0..count {
        let Ok(device) = nvml.device_by_index(i) else {
            continue;
        };
        let (Ok(name), Ok(mem)) = (device.name(), device.memory_info()) else {
            continue;
        };
        let vram = u32::try_from(mem.total / MIB).unwrap_or(u32::MAX);
        *models.entry((name, vram)).or_default() += 1;
    }
    gpu_spec_from(models)
}

/// The offered GPU entry from per-model device counts: the most numerous model (ties: the
/// larger memory, then the name), its name cut to the offer format's limit.
pub fn gpu_spec_from(models: BTreeMap<(String, u32), u16>) -> Option<GpuSpec> {
    let ((name, vram_mib), count) = models
        .into_iter()
        .max_by(|(a, ca), (b, cb)| ca.cmp(cb).then(a.1.cmp(&b.1)).then(b.0.cmp(&a.0)))?;
    let name: String = name
        .chars()
        .scan(0usize, |len, c| {
            *len += c.len_utf8();
            (*len <= orrery_types::resources::MAX_GPU_MODEL_LEN).then_some(c)
        })
        .collect();
    Some(GpuSpec {
        model: Text::new(name).ok()?,
        vram_mib,
        count,
    })
}
