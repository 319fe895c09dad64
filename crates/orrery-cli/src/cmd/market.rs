//! `orrery provider run|status` and `orrery market offers`: the provider agent and the
//! requester's view of the market, over a node's API.

use crate::cmd::wallet::{NodeArg, load_key};
use anyhow::{Context, bail};
use clap::{Args as ClapArgs, Subcommand};
use orrery_client::Client;
use orrery_client::probe::RttProbe;
use orrery_ledger::entries::Reputation;
use orrery_market::{OfferIndex, RegionPreference, Requirements, RouterWeights, format_table};
use orrery_provider::{Agent, ProviderConfig};
use orrery_types::amount::Amount;
use orrery_types::crypto::AccountId;
use orrery_types::resources::{ResourceRequest, Usage};
use orrery_types::tx::Verification;
use std::path::PathBuf;

/// Sell this machine's compute: run the provider agent, or show its standing.
#[derive(ClapArgs, Debug)]
pub struct ProviderArgs {
    #[command(subcommand)]
    cmd: ProviderCmd,
}

#[derive(Subcommand, Debug)]
enum ProviderCmd {
    /// Detect the hardware, register and bond (if needed), then serve leases, checks and
    /// disputes until Ctrl-C.
    Run {
        /// The agent's configuration (see `crates/orrery-provider/README.md`).
        #[arg(long, default_value = "provider.toml")]
        config: PathBuf,
    },
    /// Earnings, stake, reputation and leases of a provider.
    Status {
        /// The provider's account; defaults to the key file's.
        account: Option<AccountId>,
        /// Key file whose account to show.
        #[arg(long, env = "ORRERY_KEY", default_value = "orrery.key")]
        key: PathBuf,
        #[command(flatten)]
        node: NodeArg,
        /// The running agent's serving address (its `[serve] listen`): also show its
        /// inference counters (served, tokens, vouchers, settlements, checks).
        #[arg(long)]
        agent: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run_provider(args: ProviderArgs) -> anyhow::Result<()> {
    match args.cmd {
        ProviderCmd::Run { config } => {
            let config = ProviderConfig::load(&config)
                .with_context(|| format!("cannot use {}", config.display()))?;
            let agent = Agent::start(config).context("the provider agent could not start")?;
            eprintln!("provider {} running; Ctrl-C to stop", agent.account());
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            crate::cmd::node::on_ctrl_c(stop.clone())?;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && !agent.is_finished() {
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            let clean = agent.stop();
            if !clean {
                bail!("the provider agent stopped with an error (see the log above)");
            }
        }
        ProviderCmd::Status {
            account,
            key,
            node,
            agent,
            json,
        } => {
            let report = agent
                .as_deref()
                .map(|a| crate::cmd::inference::agent_get(a, "/status"))
                .transpose()?;
            let id = match account {
                Some(a) => a,
                None => load_key(&key)?.account(),
            };
            let s = orrery_provider::status(&Client::new(&node.node), &id)
                .context("cannot read the provider's status")?;
            if json {
                let mut v = serde_json::to_value(&s)?;
                if let Some(r) = report {
                    v["inference"] = r;
                }
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("provider   {}", s.account);
                if !s.registered {
                    println!("           not registered (start `orrery provider run`)");
                }
                println!("balance    {}", s.balance);
                println!("stake      {}", s.stake);
                println!("earned     {}", s.earned);
                let r = &s.reputation;
                println!(
                    "reputation {} settled, {} checked, {} failed, {} slashed, {} timed out",
                    r.settled, r.checked, r.failed, r.slashed, r.timed_out
                );
                for (state, n) in &s.leases_by_state {
                    println!("leases     {n} {state}");
                }
                if let Some(r) = &report {
                    crate::cmd::inference::print_agent_report(r);
                }
            }
        }
    }
    Ok(())
}

/// Search the market.
#[derive(ClapArgs, Debug)]
pub struct MarketArgs {
    #[command(subcommand)]
    cmd: MarketCmd,
}

#[derive(Subcommand, Debug)]
enum MarketCmd {
    /// Rank the providers that can run a job like yours, cheapest and most reliable first,
    /// with the reason for each place.
    Offers(OffersArgs),
}

#[derive(ClapArgs, Debug)]
struct OffersArgs {
    /// GPUs per machine.
    #[arg(long, default_value_t = 0)]
    gpus: u16,
    /// GPU model, any part of its name (`4090`, `h100`).
    #[arg(long)]
    gpu_model: Option<String>,
    /// Least GPU memory, GiB.
    #[arg(long, default_value_t = 0)]
    min_vram_gib: u32,
    /// CPU cores.
    #[arg(long, default_value_t = 1)]
    cpu_cores: u16,
    /// Memory, GiB.
    #[arg(long, default_value_t = 1)]
    ram_gib: u32,
    /// Preferred region.
    #[arg(long)]
    region: Option<String>,
    /// Only this region.
    #[arg(long)]
    only_region: Option<String>,
    /// Most per GPU-hour, ORR.
    #[arg(long)]
    max_gpu_hour: Option<Amount>,
    /// Expected hours of use (prices the job).
    #[arg(long, default_value_t = 1.0)]
    hours: f64,
    /// Expected compute units, millions.
    #[arg(long, default_value_t = 0)]
    mega_units: u64,
    /// Results to show.
    #[arg(long, default_value_t = 10)]
    limit: usize,
    #[command(flatten)]
    node: NodeArg,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// The chain's parameters as the node serves them: the router reads the minimum stake per
/// hardware class and the sampling rates from them, so a chain with non-default parameters is
/// routed by its own rules.
pub(crate) fn chain_params(client: &Client) -> anyhow::Result<orrery_ledger::Params> {
    client
        .params()
        .context("cannot read the chain's parameters from the node")
}

/// Every provider a node knows, as the router's offer index, with the round-trip time to each
/// provider's endpoint measured from here (see [`orrery_client::probe`]; an unreachable one
/// gets the probe's timeout, the worst latency).
pub(crate) fn offer_index(client: &Client) -> anyhow::Result<OfferIndex> {
    offer_index_of(client, |_| true)
}

/// [`offer_index`] of the providers that run cluster workers: those whose offer publishes a
/// cluster contact for their own account (the only ones a cluster lease may name).
pub(crate) fn cluster_offer_index(client: &Client) -> anyhow::Result<OfferIndex> {
    offer_index_of(client, |v| {
        orrery_types::cluster::cluster_contact(v.offer.endpoint.as_str(), &v.id).is_ok()
    })
}

fn offer_index_of(
    client: &Client,
    keep: impl Fn(&orrery_client::api::ProviderView) -> bool,
) -> anyhow::Result<OfferIndex> {
    let mut views = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = client
            .providers(Some(orrery_client::api::MAX_PAGE_LIMIT), cursor.as_deref())
            .context("cannot list providers")?;
        views.extend(page.items.into_iter().filter(&keep));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    fn base(v: &orrery_client::api::ProviderView) -> &str {
        orrery_types::cluster::endpoint_base(v.offer.endpoint.as_str())
    }
    let rtt = RttProbe::default().measure(views.iter().map(base));
    OfferIndex::from_offers(views.iter().map(|v| {
        let mut offer = offer_of(v);
        offer.latency_ms = rtt.get(base(v)).copied();
        offer
    }))
    .map_err(|_| anyhow::anyhow!("more offers than the index holds"))
}

/// The router's view of a provider as the node's API reports it, with the chain's challenge
/// record (a node without one reports every provider online and unproven).
fn offer_of(v: &orrery_client::api::ProviderView) -> orrery_market::Offer {
    let c = v.challenges.as_ref();
    orrery_market::Offer {
        provider: v.id,
        hardware: v.offer.hardware.clone(),
        region: v.offer.region.as_str().to_owned(),
        prices: v.offer.prices,
        stake: v.stake,
        reputation: Reputation {
            settled: v.reputation.settled,
            checked: v.reputation.checked,
            failed: v.reputation.failed,
            slashed: v.reputation.slashed,
            timed_out: v.reputation.timed_out,
        },
        benchmark: None,
        last_seen_ms: None,
        latency_ms: None,
        online: c.is_none_or(|c| c.online),
        uptime_bps: c.and_then(|c| c.uptime_bps),
        proven_score_bps: c.and_then(|c| c.proven_score_bps),
    }
}

fn offers(args: OffersArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.node.node);
    let index = offer_index(&client)?;
    let params = chain_params(&client)?;
    let region = match (args.only_region, args.region) {
        (Some(r), _) => RegionPreference::Require(r),
        (None, Some(r)) => RegionPreference::Prefer(r),
        (None, None) => RegionPreference::Any,
    };
    let req = Requirements {
        gpu_model: args.gpu_model,
        min_vram_mib: args.min_vram_gib.saturating_mul(1024),
        resources: ResourceRequest {
            gpus: args.gpus,
            cpu_cores: args.cpu_cores,
            ram_gib: args.ram_gib,
        },
        usage: Usage {
            seconds: (args.hours.max(0.0) * 3600.0) as u64,
            units: args.mega_units.saturating_mul(1_000_000),
        },
        region,
        max_gpu_hour: args.max_gpu_hour,
        verification: Verification::Sampled,
        limit: args.limit,
        ..Requirements::default()
    };
    let routing = index
        .rank(&req, &RouterWeights::default(), &params)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&routing.ranked)?);
    } else {
        print!("{}", format_table(&routing.ranked));
        for r in &routing.ranked {
            println!("#{} {}", r.rank, r.explanation);
        }
    }
    Ok(())
}

pub fn run_market(args: MarketArgs) -> anyhow::Result<()> {
    match args.cmd {
        MarketCmd::Offers(a) => offers(a),
    }
}
