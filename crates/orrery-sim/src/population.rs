//! Who takes part: providers (machine, region, listed price, honest or which cheater), the
//! requesters, the validators, and their keys.
//!
//! Everyone is drawn up front from the run's seed, joiners included (their accounts are funded
//! at genesis and they register on their join step), so the population never depends on what
//! the market does.

use crate::rng::Rng;
use crate::scenario::{HardwareClass, Scenario};
use orrery_ledger::Params;
use orrery_market::reference::{CPU_REFERENCE_PRICE, gpu_reference};
use orrery_types::amount::{Amount, UNITS_PER_ORR};
use orrery_types::codec::Text;
use orrery_types::crypto::{AccountId, Keypair, PublicKey};
use orrery_types::resources::{GpuSpec, Hardware, PriceList};
use orrery_types::tx::ProviderOffer;
use serde::Serialize;

/// How a provider behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Does the work and reports it truthfully.
    Honest,
    /// Runs a cheaper, wrong computation and commits its result.
    WrongOutput,
    /// Does no work and commits a made-up result.
    Lazy,
    /// Leases its own machine through a second account to farm the emission.
    WashTrader,
    /// Claims hardware it does not have (it registers its class's machine but owns only a
    /// small one): it cannot answer a challenge sized to its claim before the deadline, and it
    /// commits wrong results for the leases it cannot run.
    SpoofedHardware,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 5] = [
        Kind::Honest,
        Kind::WrongOutput,
        Kind::Lazy,
        Kind::WashTrader,
        Kind::SpoofedHardware,
    ];

    /// Whether a result it commits is wrong.
    pub fn commits_wrong_results(self) -> bool {
        matches!(self, Kind::WrongOutput | Kind::Lazy | Kind::SpoofedHardware)
    }

    /// Whether it answers the ledger's hardware challenges (it has the hardware it claims).
    pub fn answers_challenges(self) -> bool {
        self != Kind::SpoofedHardware
    }

    /// Name in outputs.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Honest => "honest",
            Kind::WrongOutput => "wrong_output",
            Kind::Lazy => "lazy",
            Kind::WashTrader => "wash_trader",
            Kind::SpoofedHardware => "spoofed_hardware",
        }
    }

    /// Index into per-kind arrays.
    pub fn idx(self) -> usize {
        self as usize
    }
}

/// One simulated provider.
#[derive(Clone, Debug)]
pub struct SimProvider {
    /// Index into `Scenario::hardware`.
    pub class: u8,
    /// Index into `Scenario::regions`.
    pub region: u8,
    /// Behaviour.
    pub kind: Kind,
    /// Listed price in base units per GPU-hour (per core-hour for a CPU machine).
    pub list_units: u128,
    /// Step at which it registers (0 for the starting population, registered before step 0).
    pub join_step: u32,
    /// Where it is in its life.
    pub status: Status,
    /// Holding a lease (out of the router until it commits).
    pub busy: bool,
}

/// A provider's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Not registered yet.
    Waiting,
    /// Registered and bonded; in the router when idle.
    Live,
    /// Unbonded and gone (churn), or out of money to re-bond after slashes.
    Gone,
}

/// Keys of everyone, by index: providers first, then wash traders' second accounts, then
/// requesters, then validators.
pub struct Keys {
    /// Public keys.
    pub public: Vec<PublicKey>,
    /// Accounts.
    pub accounts: Vec<AccountId>,
    /// Secret keys, only when transactions are signed.
    pub secret: Option<Vec<Keypair>>,
}

/// Everyone in a run.
pub struct Population {
    /// Providers, starting ones first.
    pub providers: Vec<SimProvider>,
    /// Starting providers (registered before step 0).
    pub initial: u32,
    /// For each wash trader provider, the key index of its requester account.
    pub wash_accounts: Vec<(u32, u32)>,
    /// Key index of the first requester.
    pub first_requester: u32,
    /// Number of requesters.
    pub requesters: u32,
    /// Key index of the first validator.
    pub first_validator: u32,
    /// Keys.
    pub keys: Keys,
}

/// Validators sharing the non-burned fee.
pub const VALIDATORS: u32 = 4;

/// Key seeds of each role are far apart so that no two roles share a key.
const ROLE_SPACING: u64 = 1 << 40;

impl Population {
    /// Draw the population of a run.
    pub fn draw(sc: &Scenario, providers: u32, steps: u32, seed: u64, sign: bool) -> Population {
        let mut rng = Rng::new(seed, "population");
        let steps_per_day = 24 / sc.step_hours;
        let joins_per_step =
            f64::from(providers) * sc.population.join_per_day / f64::from(steps_per_day);
        let mut all = Vec::new();
        for _ in 0..providers {
            all.push(draw_provider(sc, &mut rng, 0));
        }
        let mut carry = 0.0;
        for step in 1..steps {
            carry += joins_per_step;
            while carry >= 1.0 {
                carry -= 1.0;
                all.push(draw_provider(sc, &mut rng, step));
            }
        }
        let wash: Vec<u32> = (0..all.len() as u32)
            .filter(|&i| all[i as usize].kind == Kind::WashTrader)
            .collect();
        let n = all.len() as u64;
        let requesters = (providers / 1000 * sc.requesters_per_1000_providers).max(10);
        let mut seeds: Vec<u64> = (0..n).collect();
        seeds.extend(wash.iter().map(|&i| ROLE_SPACING + u64::from(i)));
        seeds.extend((0..u64::from(requesters)).map(|j| 2 * ROLE_SPACING + j));
        seeds.extend((0..u64::from(VALIDATORS)).map(|v| 3 * ROLE_SPACING + v));
        let keys = Keys::derive(&seeds, sign);
        let wash_accounts = wash
            .iter()
            .enumerate()
            .map(|(k, &p)| (p, (n as usize + k) as u32))
            .collect();
        let first_requester = (n as usize + wash.len()) as u32;
        Population {
            providers: all,
            initial: providers,
            wash_accounts,
            first_requester,
            requesters,
            first_validator: first_requester + requesters,
            keys,
        }
    }
}

impl Keys {
    fn derive(seeds: &[u64], sign: bool) -> Keys {
        let mut public = Vec::with_capacity(seeds.len());
        let mut accounts = Vec::with_capacity(seeds.len());
        let mut secret = Vec::new();
        for &s in seeds {
            let k = Keypair::from_seed(s);
            public.push(k.public_key().clone());
            accounts.push(k.account());
            if sign {
                secret.push(k);
            }
        }
        Keys {
            public,
            accounts,
            secret: sign.then_some(secret),
        }
    }
}

fn draw_provider(sc: &Scenario, rng: &mut Rng, join_step: u32) -> SimProvider {
    let class = rng.pick(sc.hardware.iter().map(|h| h.share)) as u8;
    let region = rng.pick(sc.regions.iter().map(|r| r.share)) as u8;
    let c = &sc.cheaters;
    let x = rng.unit();
    let kind = if x < c.wrong_output_share {
        Kind::WrongOutput
    } else if x < c.wrong_output_share + c.lazy_share {
        Kind::Lazy
    } else if x < c.wrong_output_share + c.lazy_share + c.wash_trader_share {
        Kind::WashTrader
    } else if x < c.wrong_output_share
        + c.lazy_share
        + c.wash_trader_share
        + c.spoofed_hardware_share
    {
        Kind::SpoofedHardware
    } else {
        Kind::Honest
    };
    let p = &sc.pricing;
    let list_share = p.list_share_min + rng.unit() * (p.list_share_max - p.list_share_min);
    let hw = &sc.hardware[usize::from(class)];
    let mut usd = reference_usd(hw) * list_share;
    if kind == Kind::WashTrader {
        // It self-deals at a multiple of its price, so it must list that price.
        usd *= c.wash_price_multiple;
    }
    SimProvider {
        class,
        region,
        kind,
        list_units: usd_to_units(usd, sc.usd_per_orr),
        join_step,
        status: Status::Waiting,
        busy: false,
    }
}

/// The cloud reference price of a machine kind's unit: per GPU-hour, or per core-hour for a
/// CPU machine (`orrery_market::reference`).
pub fn reference_usd(hw: &HardwareClass) -> f64 {
    if hw.gpus == 0 {
        CPU_REFERENCE_PRICE.usd_per_hour
    } else {
        // `Scenario::validate` refuses a model without a reference.
        gpu_reference(&hw.gpu_model).map_or(0.0, |r| r.usd_per_hour)
    }
}

/// Dollars to ORR base units.
pub fn usd_to_units(usd: f64, usd_per_orr: f64) -> u128 {
    (usd / usd_per_orr * UNITS_PER_ORR as f64).round().max(1.0) as u128
}

/// ORR base units to dollars.
pub fn units_to_usd(units: u128, usd_per_orr: f64) -> f64 {
    units as f64 / UNITS_PER_ORR as f64 * usd_per_orr
}

/// What a provider registers: its machine, region and listed prices. A GPU machine lists its
/// price per GPU-hour and no core price (cores come with the GPUs); a CPU machine lists per
/// core-hour and a GPU-hour price of zero, which is how CPU-only jobs find only CPU machines
/// (they cap the GPU-hour price at zero).
pub fn offer(sc: &Scenario, p: &SimProvider) -> ProviderOffer {
    let hw = &sc.hardware[usize::from(p.class)];
    let prices = if hw.gpus > 0 {
        PriceList {
            gpu_hour: Amount(p.list_units),
            cpu_core_hour: Amount::ZERO,
            ram_gib_hour: Amount::ZERO,
            mega_unit: Amount::ZERO,
        }
    } else {
        PriceList {
            gpu_hour: Amount::ZERO,
            cpu_core_hour: Amount(p.list_units),
            ram_gib_hour: Amount::ZERO,
            mega_unit: Amount::ZERO,
        }
    };
    ProviderOffer {
        hardware: hardware(hw),
        region: text(&sc.regions[usize::from(p.region)].name),
        endpoint: text("sim://provider"),
        prices,
    }
}

/// A machine kind as the ledger records it.
pub fn hardware(hw: &HardwareClass) -> Hardware {
    Hardware {
        gpu: (hw.gpus > 0).then(|| GpuSpec {
            model: text(&hw.gpu_model),
            vram_mib: hw.vram_mib,
            count: hw.gpus,
        }),
        cpu_cores: hw.cpu_cores,
        ram_gib: hw.ram_gib,
    }
}

/// `s` cut to `MAX` bytes (on a character boundary): a `Text` that always fits. The scenario
/// refuses names that would be cut.
fn text<const MAX: usize>(s: &str) -> Text<MAX> {
    let mut end = s.len().min(MAX);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Text::new(&s[..end]).expect("a string of at most MAX bytes fits Text<MAX>")
}

/// What a provider is funded with at genesis: its minimum stake times the funding multiple.
pub fn funding(sc: &Scenario, params: &Params, hw: &HardwareClass) -> Amount {
    let min = params.min_stake(&hardware(hw)).unwrap_or(Amount::ZERO);
    Amount((min.units() as f64 * sc.population.funding_stake_multiple) as u128)
}
