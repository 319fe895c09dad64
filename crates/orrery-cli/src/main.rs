//! `orrery`: the one binary for requesters, providers and validators.
//!
//! Each subcommand lives in its own module under `cmd/`; this file only parses the command line
//! and dispatches.

mod cmd;

use clap::{Parser, Subcommand};

/// Orrery: an open compute network for AI where you pay only for work that was checked.
#[derive(Parser)]
#[command(name = "orrery", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scripted economy on the real ledger (providers, leases, settlement, emissions) and
    /// print what happened, with the supply invariant checked after every block.
    Demo(cmd::demo::Args),
    /// Run a job bundle on this machine, exactly as a provider would, and print the output,
    /// fuel used, wall time and checkpoint root. Test a job here before paying for it.
    RunLocal(cmd::run_local::Args),
    /// Deterministic machine learning: train, fine-tune and run models locally.
    Ml(cmd::ml::Args),
    /// Start a whole network on this machine — 4 validators, provider agents (some cheating)
    /// and a requester running real wasm and ML jobs — and print what the chain says happened.
    Devnet(cmd::devnet::Args),
    /// Run a validator with its HTTP API, or write a local network's configuration.
    Node(cmd::node::NodeArgs),
    /// Start a local network of validators (4 by default) on loopback, data in one folder.
    Localnet(cmd::node::LocalnetArgs),
    /// Sell this machine's compute: run the provider agent, or show a provider's standing.
    Provider(cmd::market::ProviderArgs),
    /// Submit a job from a request file and follow it to its checked result.
    Job(cmd::job::JobArgs),
    /// Inference: create and fund API keys (sk-orr-…), list models and prices, see usage and a
    /// provider's inference earnings.
    Inference(cmd::inference::InferenceArgs),
    /// Search the market: ranked offers for a job's requirements, with reasons.
    Market(cmd::market::MarketArgs),
    /// Create and inspect signing keys.
    Key(cmd::wallet::KeyArgs),
    /// Balances and transfers through a node.
    Wallet(cmd::wallet::WalletArgs),
    /// The chain's status as a node sees it.
    Chain(cmd::wallet::ChainArgs),
    /// Simulate the economy on the real ledger and router (up to millions of providers, seeded,
    /// no network) and write a JSON summary and plots.
    Sim(cmd::sim::Args),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ORRERY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Demo(args) => cmd::demo::run(args),
        Command::RunLocal(args) => cmd::run_local::run(args),
        Command::Ml(args) => cmd::ml::run(args),
        Command::Devnet(args) => cmd::devnet::run(args),
        Command::Node(args) => cmd::node::run(args),
        Command::Localnet(args) => cmd::node::localnet(args),
        Command::Provider(args) => cmd::market::run_provider(args),
        Command::Job(args) => cmd::job::run(args),
        Command::Inference(args) => cmd::inference::run(args),
        Command::Market(args) => cmd::market::run_market(args),
        Command::Key(args) => cmd::wallet::run_key(args),
        Command::Wallet(args) => cmd::wallet::run_wallet(args),
        Command::Chain(args) => cmd::wallet::run_chain(args),
        Command::Sim(args) => cmd::sim::run(args),
    }
}
