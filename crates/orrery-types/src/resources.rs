//! Hardware, regions and prices: what a provider offers and what a lease reserves.
//!
//! Prices are per resource-hour, plus a price per million compute units (wasm fuel or the ML
//! runtime's metered operations), so a lease can bill reserved time, measured work, or both.

use crate::amount::Amount;
use crate::codec::Text;
use crate::codec_struct;

/// Longest GPU model name, e.g. "NVIDIA H100 80GB HBM3".
pub const MAX_GPU_MODEL_LEN: usize = 64;
/// Longest region name, e.g. "eu-west".
pub const MAX_REGION_LEN: usize = 32;
/// Longest endpoint URL a provider may publish.
pub const MAX_ENDPOINT_LEN: usize = 256;
/// Compute units per priced "mega-unit".
pub const UNITS_PER_MEGA_UNIT: u128 = 1_000_000;
/// Seconds in the priced hour.
pub const SECONDS_PER_HOUR: u128 = 3_600;

/// A GPU model name.
pub type GpuModel = Text<MAX_GPU_MODEL_LEN>;
/// A region name.
pub type Region = Text<MAX_REGION_LEN>;
/// A provider's public endpoint.
pub type Endpoint = Text<MAX_ENDPOINT_LEN>;

/// The GPUs in a machine (all of one model).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GpuSpec {
    /// Marketing name as the driver reports it.
    #[cfg_attr(feature = "openapi", schema(value_type = String, max_length = 64))]
    pub model: GpuModel,
    /// Memory per GPU in MiB.
    pub vram_mib: u32,
    /// Number of GPUs.
    pub count: u16,
}
codec_struct!(GpuSpec {
    model: GpuModel,
    vram_mib: u32,
    count: u16
});

/// What a machine has.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Hardware {
    /// GPUs, if any.
    pub gpu: Option<GpuSpec>,
    /// Logical CPU cores.
    pub cpu_cores: u16,
    /// Memory in GiB.
    pub ram_gib: u32,
}
codec_struct!(Hardware { gpu: Option<GpuSpec>, cpu_cores: u16, ram_gib: u32 });

impl Hardware {
    /// Number of GPUs (0 without any).
    pub fn gpu_count(&self) -> u16 {
        self.gpu.as_ref().map_or(0, |g| g.count)
    }

    /// Whether a request fits on this machine.
    pub fn fits(&self, req: &ResourceRequest) -> bool {
        req.gpus <= self.gpu_count()
            && req.cpu_cores <= self.cpu_cores
            && req.ram_gib <= self.ram_gib
    }
}

/// The resources a lease reserves.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct ResourceRequest {
    /// GPUs.
    pub gpus: u16,
    /// CPU cores.
    pub cpu_cores: u16,
    /// Memory in GiB.
    pub ram_gib: u32,
}
codec_struct!(ResourceRequest {
    gpus: u16,
    cpu_cores: u16,
    ram_gib: u32
});

/// Prices a provider lists (or a lease agrees on).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct PriceList {
    /// Per GPU per hour.
    pub gpu_hour: Amount,
    /// Per CPU core per hour.
    pub cpu_core_hour: Amount,
    /// Per GiB of memory per hour.
    pub ram_gib_hour: Amount,
    /// Per million compute units (wasm fuel or ML operations).
    pub mega_unit: Amount,
}
codec_struct!(PriceList {
    gpu_hour: Amount,
    cpu_core_hour: Amount,
    ram_gib_hour: Amount,
    mega_unit: Amount,
});

impl PriceList {
    /// Whether every component of `self` is at most the same component of `listed`.
    pub fn within(&self, listed: &PriceList) -> bool {
        self.gpu_hour <= listed.gpu_hour
            && self.cpu_core_hour <= listed.cpu_core_hour
            && self.ram_gib_hour <= listed.ram_gib_hour
            && self.mega_unit <= listed.mega_unit
    }

    /// What `usage` of `resources` costs at these prices, rounded down to the base unit, or
    /// `None` on overflow.
    pub fn cost(&self, resources: &ResourceRequest, usage: &Usage) -> Option<Amount> {
        let per_hour = self
            .gpu_hour
            .checked_mul(resources.gpus as u128)?
            .checked_add(
                self.cpu_core_hour
                    .checked_mul(resources.cpu_cores as u128)?,
            )?
            .checked_add(self.ram_gib_hour.checked_mul(resources.ram_gib as u128)?)?;
        let time = per_hour.mul_div(usage.seconds as u128, SECONDS_PER_HOUR)?;
        let work = self
            .mega_unit
            .mul_div(usage.units as u128, UNITS_PER_MEGA_UNIT)?;
        time.checked_add(work)
    }
}

/// Metered usage of a lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    /// Wall-clock seconds the resources were held.
    pub seconds: u64,
    /// Deterministic compute units consumed (wasm fuel, ML operations).
    pub units: u64,
}
codec_struct!(Usage {
    seconds: u64,
    units: u64
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_adds_time_and_work() {
        let prices = PriceList {
            gpu_hour: Amount::orr(2),
            cpu_core_hour: Amount::orr(0),
            ram_gib_hour: Amount::ZERO,
            mega_unit: Amount(1_000),
        };
        let req = ResourceRequest {
            gpus: 2,
            cpu_cores: 4,
            ram_gib: 16,
        };
        // 2 GPUs × 2 ORR × half an hour = 2 ORR; 3M units × 1000 = 3000 base units.
        let cost = prices
            .cost(
                &req,
                &Usage {
                    seconds: 1800,
                    units: 3_000_000,
                },
            )
            .unwrap();
        assert_eq!(cost, Amount(2 * crate::amount::UNITS_PER_ORR + 3_000));
    }

    #[test]
    fn cost_overflow_is_none() {
        let prices = PriceList {
            gpu_hour: Amount(u128::MAX),
            ..Default::default()
        };
        let req = ResourceRequest {
            gpus: 2,
            ..Default::default()
        };
        assert_eq!(
            prices.cost(
                &req,
                &Usage {
                    seconds: 1,
                    units: 0
                }
            ),
            None
        );
    }

    #[test]
    fn within_checks_every_component() {
        let listed = PriceList {
            gpu_hour: Amount(10),
            cpu_core_hour: Amount(5),
            ..Default::default()
        };
        let mut agreed = listed;
        assert!(agreed.within(&listed));
        agreed.cpu_core_hour = Amount(6);
        assert!(!agreed.within(&listed));
    }
}
