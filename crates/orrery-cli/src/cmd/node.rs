//! `orrery node init|run` and `orrery localnet`: validators with the node API, from config
//! files, and a local network of them in one folder.
//!
//! `node init` plays the devnet dealer (`orrery_chain::devnet`): it writes every validator's
//! configuration (keys, threshold share, peers, genesis) and the node API's configuration into
//! one folder, plus a funded `faucet.key`. Each node's configuration lists the other nodes'
//! APIs as its peers, so a blob uploaded to one node is served by all. Whoever ran it knows
//! every key and share: a localnet is for development and tests, never for value.

use crate::cmd::supervise::{Incident, Supervisor};
use anyhow::{Context, bail};
use clap::Args as ClapArgs;
use clap::Subcommand;
use orrery_chain::ValidatorConfig;
use orrery_chain::devnet::{DevnetSpec, generate};
use orrery_ledger::GenesisAccount;
use orrery_node::NodeConfig;
use orrery_types::amount::Amount;
use orrery_types::crypto::Keypair;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Run a validator node, or create the configuration of a local network.
#[derive(ClapArgs, Debug)]
pub struct NodeArgs {
    #[command(subcommand)]
    cmd: NodeCmd,
}

#[derive(Subcommand, Debug)]
enum NodeCmd {
    /// Write a local network's configuration into a folder: one subfolder per validator with
    /// `validator.toml` and `node.toml` (which lists the other nodes' APIs as peers, for
    /// blobs), the genesis, and a funded `faucet.key`.
    Init(InitArgs),
    /// Run one validator and its HTTP API until Ctrl-C.
    Run(RunArgs),
}

/// Where and how big a local network is.
#[derive(ClapArgs, Clone, Debug)]
pub struct InitArgs {
    /// Folder for all the network's configuration and data.
    #[arg(long, default_value = "orrery-localnet")]
    pub dir: PathBuf,
    /// Number of validators (tolerates ⌊(n−1)/3⌋ faulty).
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// Seed of the dealer (keys and threshold shares).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// First validator's p2p port; the others follow.
    #[arg(long, default_value_t = 7600)]
    pub p2p_port: u16,
    /// First validator's API port; the others follow.
    #[arg(long, default_value_t = 7420)]
    pub api_port: u16,
    /// The chain's name.
    #[arg(long, default_value = "orrery-localnet")]
    pub chain_id: String,
    /// ORR given to the faucet account at genesis.
    #[arg(long, default_value = "10000000")]
    pub faucet: Amount,
    /// Each validator's public IP address, comma-separated, one per validator, for a network
    /// whose validators run on separate machines. Validator i's peers reach it at
    /// `HOST_i:p2p-port` and its API at `HOST_i:api-port`; it listens on every interface
    /// (0.0.0.0). Validators listed on the same host take the next ports. Without it, every
    /// validator is on 127.0.0.1 with ports stepping from the first.
    #[arg(long, value_delimiter = ',')]
    pub hosts: Vec<std::net::IpAddr>,
}

/// Where validator `i` is reached (p2p, API) and what it binds (p2p, API).
struct Placement {
    p2p: SocketAddr,
    api: SocketAddr,
    p2p_listen: SocketAddr,
    api_listen: SocketAddr,
}

/// Every validator's addresses: on loopback, or on the operator's `--hosts`.
fn placements(args: &InitArgs) -> anyhow::Result<Vec<Placement>> {
    if args.hosts.is_empty() {
        return Ok((0..args.validators)
            .map(|i| {
                let p2p = SocketAddr::from(([127, 0, 0, 1], args.p2p_port + i as u16));
                let api = SocketAddr::from(([127, 0, 0, 1], args.api_port + i as u16));
                Placement {
                    p2p,
                    api,
                    p2p_listen: p2p,
                    api_listen: api,
                }
            })
            .collect());
    }
    if args.hosts.len() != args.validators {
        bail!(
            "--hosts lists {} addresses for {} validators; give exactly one per validator",
            args.hosts.len(),
            args.validators
        );
    }
    let any = std::net::IpAddr::from([0, 0, 0, 0]);
    Ok(args
        .hosts
        .iter()
        .enumerate()
        .map(|(i, host)| {
            // Validators sharing a host take the next ports.
            let before = args.hosts[..i].iter().filter(|h| *h == host).count() as u16;
            let (p2p_port, api_port) = (args.p2p_port + before, args.api_port + before);
            Placement {
                p2p: SocketAddr::new(*host, p2p_port),
                api: SocketAddr::new(*host, api_port),
                p2p_listen: SocketAddr::new(any, p2p_port),
                api_listen: SocketAddr::new(any, api_port),
            }
        })
        .collect())
}

/// One validator's configuration files.
#[derive(ClapArgs, Debug)]
pub struct RunArgs {
    /// The validator's configuration (`orrery node init` writes one per validator).
    #[arg(long)]
    pub validator: PathBuf,
    /// The HTTP API's configuration; defaults apply when absent.
    #[arg(long)]
    pub node: Option<PathBuf>,
}

/// The faucet's key: derived from the dealer's seed (devnets only).
pub fn faucet_key(seed: u64) -> Keypair {
    Keypair::from_seed(seed.wrapping_mul(7_919).wrapping_add(0xFA0C))
}

/// Paths of validator `i`'s files under `dir`.
pub fn validator_files(dir: &Path, i: usize) -> (PathBuf, PathBuf) {
    let d = dir.join(format!("validator-{i}"));
    (d.join("validator.toml"), d.join("node.toml"))
}

/// Challenge parameters for a network on one machine (`node init`, `localnet`, `devnet`).
///
/// The chain's defaults are sized for many providers: 4 draws every block, each 2 s of the
/// claimed hardware. On one machine with a handful of providers that would challenge each one
/// every few blocks and keep its cores busy. Here one provider is drawn every 10 blocks
/// (about every 2 s; each of 4 providers about every 8–10 s, several times in a devnet run),
/// each challenge is 500 ms of its claim, and 2 s of block latency are allowed on top, since
/// validators and providers share the machine's cores. The deadline (8 × 500 ms + 2 s = 6 s)
/// still leaves a machine claiming several times its cores far behind.
pub fn local_challenges(params: &mut orrery_ledger::Params) {
    params.challenges_per_block = 1;
    params.challenge_every_blocks = 10;
    params.challenge_target_ms = 500;
    params.challenge_latency_ms = 2_000;
}

/// Write a local network's configuration; returns the API address of each validator.
pub fn init(args: &InitArgs, extra_accounts: &[GenesisAccount]) -> anyhow::Result<Vec<SocketAddr>> {
    if args.dir.join("genesis.toml").exists() {
        bail!(
            "{} already holds a network (genesis.toml exists); remove it or choose another --dir",
            args.dir.display()
        );
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let faucet = faucet_key(args.seed);
    let mut accounts = vec![GenesisAccount {
        account: faucet.account(),
        balance: args.faucet,
    }];
    accounts.extend(extra_accounts.iter().cloned());
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let devnet = generate(&DevnetSpec {
        validators: args.validators,
        seed: args.seed,
        chain_id: args.chain_id.clone(),
        genesis_time_ms: now_ms,
        data_root: args.dir.clone(),
        first_port: args.p2p_port,
        accounts,
        validator_balance: Amount::orr(1_000),
    })
    .context("cannot create the network's keys and genesis")?;
    let placements = placements(args)?;
    let mut devnet = devnet;
    // The dealer numbers peers in committee order; validator i's files are validator-i.
    for config in &mut devnet.configs {
        for (peer, place) in config.peers.iter_mut().zip(&placements) {
            peer.address = place.p2p;
        }
    }
    for (config, place) in devnet.configs.iter_mut().zip(&placements) {
        config.listen = place.p2p_listen;
    }
    // The genesis file and each validator's inline copy.
    local_challenges(&mut devnet.genesis.params);
    for v in &mut devnet.configs {
        if let Some(g) = &mut v.genesis {
            local_challenges(&mut g.params);
        }
    }
    std::fs::write(args.dir.join("genesis.toml"), devnet.genesis.to_toml())?;
    std::fs::write(
        args.dir.join("faucet.key"),
        format!("{}\n", hex::encode(faucet.secret_bytes())),
    )?;
    let apis: Vec<SocketAddr> = placements.iter().map(|p| p.api).collect();
    for (i, v) in devnet.configs.iter().enumerate() {
        let (vpath, npath) = validator_files(&args.dir, i);
        std::fs::create_dir_all(&v.data_dir)?;
        std::fs::write(
            &vpath,
            v.to_toml().context("serializing a validator config")?,
        )?;
        let node = NodeConfig {
            data_dir: v.data_dir.join("node"),
            api_listen: placements[i].api_listen,
            // On loopback every client shares one address; across hosts the public
            // per-address limits apply.
            limits: if args.hosts.is_empty() {
                local_limits()
            } else {
                orrery_node::Limits::default()
            },
            peers: peers_of(&apis, i),
            ..NodeConfig::default()
        };
        std::fs::write(
            &npath,
            toml::to_string(&node).context("serializing a node config")?,
        )?;
    }
    Ok(apis)
}

/// Node `i`'s peers: every other node's API, so that a job bundle or an output uploaded to
/// any node can be read from all of them (`orrery_node::peers`). Every node writes a peer's
/// URL the same way, which the placement of blobs relies on. A node that is not a validator
/// would list all of them.
fn peers_of(apis: &[SocketAddr], i: usize) -> orrery_node::PeerConfig {
    orrery_node::PeerConfig {
        urls: apis
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, api)| format!("http://{api}"))
            .collect(),
        ..orrery_node::PeerConfig::default()
    }
}

/// API limits for a network on loopback. Every client of a local network — the provider
/// agents, the requester, the explorer in a browser, the CLI — reaches the node from
/// 127.0.0.1, so they share one per-address budget; the public default (50/s, burst 200) let a
/// busy devnet answer its own agents 429. Rate limiting stays on, sized for one machine's
/// worth of clients.
fn local_limits() -> orrery_node::Limits {
    orrery_node::Limits {
        rate_per_ip_per_sec: 2_000.0,
        burst_per_ip: 4_000,
        ..orrery_node::Limits::default()
    }
}

fn read_validator(path: &Path) -> anyhow::Result<ValidatorConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read validator config {}", path.display()))?;
    ValidatorConfig::from_toml(&text).with_context(|| format!("{} is not valid", path.display()))
}

fn read_node(path: Option<&Path>) -> anyhow::Result<NodeConfig> {
    let Some(path) = path else {
        return Ok(NodeConfig::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read node config {}", path.display()))?;
    NodeConfig::from_toml(&text).with_context(|| format!("{} is not valid", path.display()))
}

pub fn run(args: NodeArgs) -> anyhow::Result<()> {
    match args.cmd {
        NodeCmd::Init(init_args) => {
            let apis = init(&init_args, &[])?;
            println!(
                "wrote a {}-validator network to {}",
                apis.len(),
                init_args.dir.display()
            );
            for (i, api) in apis.iter().enumerate() {
                let (v, n) = validator_files(&init_args.dir, i);
                println!(
                    "  validator {i}: orrery node run --validator {} --node {}   (API http://{api})",
                    v.display(),
                    n.display()
                );
            }
            println!(
                "  faucet key: {} ({})",
                init_args.dir.join("faucet.key").display(),
                faucet_key(init_args.seed).account()
            );
        }
        NodeCmd::Run(run_args) => {
            let validator = read_validator(&run_args.validator)?;
            let node = read_node(run_args.node.as_deref())?;
            eprintln!(
                "validator listening on {} (p2p), API on http://{}",
                validator.listen, node.api_listen
            );
            orrery_node::run_node(node, validator).context("the node stopped with an error")?;
        }
    }
    Ok(())
}

/// A local network of validator processes, each restarted when it exits; dropping it stops
/// them.
pub struct Localnet {
    /// The validator processes (named `validator-<i>`), restarted when they exit.
    pub procs: Supervisor,
    /// Each validator's API base URL.
    pub apis: Vec<String>,
}

impl Localnet {
    /// Start every validator configured in `dir` as a child process of this binary.
    pub fn start(dir: &Path, validators: usize) -> anyhow::Result<Localnet> {
        let mut net = Localnet {
            procs: Supervisor::new(dir)?,
            apis: Vec::new(),
        };
        for i in 0..validators {
            let (vpath, npath) = validator_files(dir, i);
            let node = read_node(Some(&npath))?;
            net.apis.push(format!("http://{}", node.api_listen));
            net.procs.start(
                &format!("validator-{i}"),
                vec![
                    "node".into(),
                    "run".into(),
                    "--validator".into(),
                    vpath.into(),
                    "--node".into(),
                    npath.into(),
                ],
            )?;
        }
        Ok(net)
    }

    /// Restart processes that exited since the last call; returns what happened (also kept
    /// in `procs.incidents()`).
    pub fn supervise(&mut self) -> Vec<Incident> {
        self.procs.poll()
    }

    /// Wait until every validator's API answers and reports at least `height`.
    pub fn wait_for_height(&mut self, height: u64, timeout: Duration) -> anyhow::Result<()> {
        let start = std::time::Instant::now();
        loop {
            self.supervise();
            let ok = self.apis.iter().all(|api| {
                orrery_client::Client::with_timeout(api, Duration::from_secs(2))
                    .status()
                    .is_ok_and(|s| s.chain.height >= height)
            });
            if ok {
                return Ok(());
            }
            if start.elapsed() > timeout {
                bail!(
                    "the network did not reach height {height} within {timeout:?}; logs in {}",
                    self.procs
                        .log_path("validator-0")
                        .with_file_name("")
                        .display()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// `orrery localnet`: start a local network of validators.
#[derive(ClapArgs, Debug)]
pub struct LocalnetArgs {
    #[command(flatten)]
    init: InitArgs,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    seconds: Option<u64>,
}

pub fn localnet(args: LocalnetArgs) -> anyhow::Result<()> {
    if !args.init.dir.join("genesis.toml").exists() {
        init(&args.init, &[])?;
    }
    let mut net = Localnet::start(&args.init.dir, args.init.validators)?;
    net.wait_for_height(1, Duration::from_secs(60))?;
    println!(
        "{} validators running; data and logs in {}",
        net.apis.len(),
        args.init.dir.display()
    );
    for (i, api) in net.apis.iter().enumerate() {
        println!("  validator {i}: {api}");
    }
    println!(
        "  faucet: {} (key {})",
        faucet_key(args.init.seed).account(),
        args.init.dir.join("faucet.key").display()
    );
    println!("try: orrery chain status --node {}", net.apis[0]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let stop = stop.clone();
        on_ctrl_c(stop)?;
    }
    let started = std::time::Instant::now();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        for i in net.supervise() {
            eprintln!("{i} (log: {})", net.procs.log_path(&i.process).display());
        }
        if args
            .seconds
            .is_some_and(|s| started.elapsed() >= Duration::from_secs(s))
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(())
}

/// Set `flag` on Ctrl-C.
pub fn on_ctrl_c(flag: std::sync::Arc<std::sync::atomic::AtomicBool>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::spawn(move || {
        rt.block_on(async {
            let _ = tokio::signal::ctrl_c().await;
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
        });
    });
    Ok(())
}
