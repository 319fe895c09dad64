//! `orrery inference`: API keys for requesters, the model catalog, and a provider's inference
//! earnings, through a node.
//!
//! An API key (`sk-orr-…`) is a key pair of its own: the chain knows its public id, its
//! owner (the wallet that created it), a spending limit and a deposit; the secret is what a
//! client sends to a node's OpenAI-compatible gateway as its bearer token. Whoever holds it
//! can spend the key's deposit up to its limit, so keep it like a password and revoke it
//! (`orrery inference key revoke`) if it leaks.

use crate::cmd::wallet::{KeyArg, NodeArg, load_key, submit_and_wait};
use anyhow::{Context, bail};
use clap::{Args as ClapArgs, Subcommand};
use orrery_client::Client;
use orrery_types::amount::Amount;
use orrery_types::crypto::AccountId;
use orrery_types::inference::ApiKey;
use orrery_types::tx::TxBody;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Inference on the network: API keys, models and earnings.
#[derive(ClapArgs, Debug)]
pub struct InferenceArgs {
    #[command(subcommand)]
    cmd: InferenceCmd,
}

#[derive(Subcommand, Debug)]
enum InferenceCmd {
    /// Create, fund, revoke and inspect API keys (`sk-orr-…`).
    Key(KeyArgs),
    /// The model catalog: every model name providers offer, with prices per million tokens.
    Models {
        /// Only the models this provider offers (asked from the provider's own endpoint).
        #[arg(long)]
        provider: Option<AccountId>,
        #[command(flatten)]
        node: NodeArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// What an API key has spent, against its limit and deposit.
    Usage {
        /// The key: `sk-orr-…`, or its id (`orr…`).
        key: String,
        #[command(flatten)]
        node: NodeArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A response's receipt (the provider's signed commitment), by its leaf, from the node
    /// whose gateway served it.
    Receipt {
        /// The receipt id (the commitment's leaf, 64 hex digits).
        leaf: orrery_types::hash::Hash,
        #[command(flatten)]
        node: NodeArg,
    },
    /// A provider's inference earnings: settled batches as the chain holds them, and what its
    /// running agent reports (served, vouchers, checks) when `--agent` is given.
    Earnings {
        /// The provider's account.
        #[arg(long)]
        provider: AccountId,
        /// Settled batch ids to read from the chain (e.g. `--batch 3 --batch 7`).
        #[arg(long = "batch")]
        batches: Vec<u64>,
        /// The provider agent's serving address (its `[serve] listen`), to read its counters.
        #[arg(long)]
        agent: Option<String>,
        #[command(flatten)]
        node: NodeArg,
    },
}

#[derive(ClapArgs, Debug)]
struct KeyArgs {
    #[command(subcommand)]
    cmd: KeyCmd,
}

#[derive(Subcommand, Debug)]
enum KeyCmd {
    /// Create a new API key owned by your wallet: lock `--deposit` ORR for it now, let it pay
    /// at most `--limit` ORR over its life. Prints the key (`sk-orr-…`) alone on stdout.
    Create {
        /// Most the key may ever pay, in ORR.
        #[arg(long)]
        limit: Amount,
        /// ORR moved from your balance to the key now (default: the whole limit).
        #[arg(long)]
        deposit: Option<Amount>,
        /// Also write the key to this file (readable by you only; refuses to overwrite).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        key: KeyArg,
        #[command(flatten)]
        node: NodeArg,
        /// Seconds to wait for the transaction to be final.
        #[arg(long, default_value_t = 30)]
        wait: u64,
    },
    /// Add ORR to a key's deposit (its owner only).
    Fund {
        /// The key: `sk-orr-…`, or its id (`orr…`).
        api_key: String,
        /// ORR to add.
        amount: Amount,
        #[command(flatten)]
        key: KeyArg,
        #[command(flatten)]
        node: NodeArg,
        /// Seconds to wait for the transaction to be final.
        #[arg(long, default_value_t = 30)]
        wait: u64,
    },
    /// Revoke a key (its owner only): it can sign nothing more; vouchers it already signed may
    /// still settle for a grace period, then its deposit returns to you.
    Revoke {
        /// The key: `sk-orr-…`, or its id (`orr…`).
        api_key: String,
        #[command(flatten)]
        key: KeyArg,
        #[command(flatten)]
        node: NodeArg,
        /// Seconds to wait for the transaction to be final.
        #[arg(long, default_value_t = 30)]
        wait: u64,
    },
    /// A key's owner, limit, spent, deposit and whether it is revoked.
    Show {
        /// The key: `sk-orr-…`, or its id (`orr…`).
        api_key: String,
        #[command(flatten)]
        node: NodeArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// A key's id from `sk-orr-…` (the secret) or `orr…` (the id).
pub fn key_id(text: &str) -> anyhow::Result<AccountId> {
    let text = text.trim();
    if text.starts_with(orrery_types::inference::API_KEY_PREFIX) {
        return ApiKey::parse(text)
            .map(|k| k.id())
            .map_err(|e| anyhow::anyhow!("{e}"));
    }
    text.parse().map_err(|_| {
        anyhow::anyhow!(
            "{text:?} is neither an API key (sk-orr-…) nor a key id (orr…); \
             `orrery inference key create` prints both"
        )
    })
}

/// A fresh API key from the system's randomness.
fn fresh_key() -> anyhow::Result<ApiKey> {
    use std::io::Read;
    let mut secret = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut secret))
        .context("cannot read the system's randomness (/dev/urandom)")?;
    ApiKey::from_secret(&secret).context("generating an API key")
}

/// Write the key's text to `path`, owner-only, never overwriting.
fn save_key(path: &Path, key: &ApiKey) -> anyhow::Result<()> {
    crate::cmd::wallet::write_secret(path, &key.to_text(), "API key file")
}

pub fn run(args: InferenceArgs) -> anyhow::Result<()> {
    match args.cmd {
        InferenceCmd::Key(k) => run_key(k.cmd),
        InferenceCmd::Models {
            provider,
            node,
            json,
        } => models(&Client::new(&node.node), provider, json),
        InferenceCmd::Usage { key, node, json } => show_key(&node, &key, json, true),
        InferenceCmd::Receipt { leaf, node } => receipt(&Client::new(&node.node), &leaf),
        InferenceCmd::Earnings {
            provider,
            batches,
            agent,
            node,
        } => earnings(
            &Client::new(&node.node),
            &provider,
            &batches,
            agent.as_deref(),
        ),
    }
}

fn run_key(cmd: KeyCmd) -> anyhow::Result<()> {
    match cmd {
        KeyCmd::Create {
            limit,
            deposit,
            out,
            key,
            node,
            wait,
        } => create(limit, deposit, out.as_deref(), &key, &node, wait),
        KeyCmd::Fund {
            api_key,
            amount,
            key,
            node,
            wait,
        } => {
            let id = key_id(&api_key)?;
            if amount.is_zero() {
                bail!("the amount to add is 0 ORR: give a positive amount");
            }
            let owner = load_key(&key.key)?;
            let body = TxBody::FundInferenceKey { key: id, amount };
            let record = submit_and_wait(&Client::new(&node.node), &owner, body, secs(wait))?;
            println!("added {amount} to key {id} in block {}", record.height);
            Ok(())
        }
        KeyCmd::Revoke {
            api_key,
            key,
            node,
            wait,
        } => {
            let id = key_id(&api_key)?;
            let owner = load_key(&key.key)?;
            let body = TxBody::RevokeInferenceKey { key: id };
            let record = submit_and_wait(&Client::new(&node.node), &owner, body, secs(wait))?;
            println!("revoked key {id} in block {}", record.height);
            Ok(())
        }
        KeyCmd::Show {
            api_key,
            node,
            json,
        } => show_key(&node, &api_key, json, false),
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn create(
    limit: Amount,
    deposit: Option<Amount>,
    out: Option<&Path>,
    key: &KeyArg,
    node: &NodeArg,
    wait: u64,
) -> anyhow::Result<()> {
    let deposit = deposit.unwrap_or(limit);
    if limit.is_zero() {
        bail!("--limit is 0 ORR: the key could pay nothing; give a positive limit");
    }
    if deposit > limit {
        bail!(
            "--deposit {deposit} ORR is more than --limit {limit} ORR: the key could never spend it all"
        );
    }
    if let Some(path) = out
        && path.exists()
    {
        bail!(
            "{} exists already: choose another --out file",
            path.display()
        );
    }
    let owner = load_key(&key.key)?;
    let api = fresh_key()?;
    let body = TxBody::CreateInferenceKey {
        key: api.id(),
        limit,
        deposit,
    };
    let record = submit_and_wait(&Client::new(&node.node), &owner, body, secs(wait))?;
    if let Some(path) = out {
        save_key(path, &api)?;
        eprintln!("key saved to {} (readable by you only)", path.display());
    }
    println!("{}", api.to_text());
    eprintln!(
        "API key {} created in block {}: limit {limit} ORR, deposit {deposit} ORR, owner {}.",
        api.id(),
        record.height,
        owner.account()
    );
    eprintln!(
        "Send it as `Authorization: Bearer <key>` to a node's /v1 gateway. It is shown once: \
         keep it secret; `orrery inference key revoke` stops it."
    );
    Ok(())
}

fn show_key(node: &NodeArg, text: &str, json: bool, usage: bool) -> anyhow::Result<()> {
    let id = key_id(text)?;
    let client = Client::new(&node.node);
    let Some(k) = client
        .inference_key(&id)
        .context("cannot read the key from the node")?
    else {
        bail!("no API key {id} on this chain (created on another chain, or not yet final?)");
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&k)?);
        return Ok(());
    }
    println!("key         {}", k.id);
    if !usage {
        println!("owner       {}", k.owner);
    }
    println!("limit       {}", k.limit);
    println!("spent       {}", k.spent);
    println!(
        "left        {}",
        k.limit.checked_sub(k.spent).unwrap_or(Amount::ZERO)
    );
    println!("deposit     {}", k.deposit);
    println!(
        "outstanding {} (signed by this node's gateway, not yet settled)",
        k.outstanding
    );
    match k.revoked_at {
        Some(h) => println!("revoked     at height {h}"),
        None => println!("revoked     no"),
    }
    Ok(())
}

fn models(client: &Client, provider: Option<AccountId>, json: bool) -> anyhow::Result<()> {
    if let Some(p) = provider {
        return provider_models(client, &p, json);
    }
    let catalog = client
        .inference_models()
        .context("cannot read the model catalog from the node")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&catalog)?);
        return Ok(());
    }
    if catalog.is_empty() {
        println!("no provider offers a model yet");
        return Ok(());
    }
    println!(
        "{:<24} {:<10} {:>8} {:>9} {:>14} {:>14}",
        "model", "kind", "context", "providers", "min in/1M", "min out/1M"
    );
    for m in catalog {
        println!(
            "{:<24} {:<10} {:>8} {:>9} {:>14} {:>14}",
            m.name,
            format!("{:?}", m.kind).to_lowercase(),
            m.context,
            m.providers,
            m.min_price_in.to_string(),
            m.min_price_out.to_string()
        );
    }
    Ok(())
}

/// The models a provider's agent serves, asked from its own endpoint (`GET /health`).
fn provider_models(client: &Client, provider: &AccountId, json: bool) -> anyhow::Result<()> {
    let view = client
        .provider(provider)
        .context("cannot read the provider from the node")?
        .with_context(|| format!("{provider} is not a registered provider"))?;
    let endpoint = view
        .offer
        .endpoint
        .as_str()
        .trim_end_matches('/')
        .to_string();
    let health = agent_get(&endpoint, "/health")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&health["offers"])?);
        return Ok(());
    }
    let Some(offers) = health["offers"].as_array() else {
        bail!("{endpoint}/health lists no offers: the agent serves no models");
    };
    println!("provider {provider} at {endpoint} (as its agent reports)");
    for o in offers {
        println!(
            "{:<24} {:<10} context {:>6}  in {} / out {} ORR per 1M tokens  checked {} bps",
            o["name"].as_str().unwrap_or("?"),
            o["kind"].as_str().unwrap_or("?"),
            o["context"],
            o["price_in"].as_str().unwrap_or("?"),
            o["price_out"].as_str().unwrap_or("?"),
            o["sample_bps"]
        );
    }
    Ok(())
}

/// `GET {base}{path}` from a provider agent's serving lane, as JSON.
pub(crate) fn agent_get(base: &str, path: &str) -> anyhow::Result<serde_json::Value> {
    let base = if base.starts_with("http") {
        base.to_string()
    } else {
        format!("http://{base}")
    };
    let url = format!("{base}{path}");
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .build(),
    );
    agent
        .get(&url)
        .call()
        .with_context(|| format!("cannot reach the provider agent at {url}"))?
        .body_mut()
        .read_json()
        .with_context(|| format!("{url} did not answer JSON"))
}

fn receipt(client: &Client, leaf: &orrery_types::hash::Hash) -> anyhow::Result<()> {
    let Some(r) = client
        .inference_receipt(leaf)
        .context("cannot read the receipt from the node")?
    else {
        bail!(
            "this node's gateway served no response with receipt {leaf}: ask the node that served it"
        );
    };
    println!("{}", serde_json::to_string_pretty(&r)?);
    Ok(())
}

fn earnings(
    client: &Client,
    provider: &AccountId,
    batches: &[u64],
    agent: Option<&str>,
) -> anyhow::Result<()> {
    let (mut held, mut paid, mut refunded) = (Amount::ZERO, Amount::ZERO, Amount::ZERO);
    for id in batches {
        let b = client
            .inference_batch(*id)
            .context("cannot read the batch from the node")?
            .with_context(|| format!("no inference batch {id} on this chain"))?;
        if b.provider != *provider {
            bail!("batch {id} was settled by {}, not {provider}", b.provider);
        }
        println!(
            "batch {:>6}  {:>5} responses  {:<9} held {}  paid {}  refunded {}",
            b.id, b.responses, b.phase, b.held, b.paid, b.refunded
        );
        held = held.checked_add(b.held).unwrap_or(held);
        paid = paid.checked_add(b.paid).unwrap_or(paid);
        refunded = refunded.checked_add(b.refunded).unwrap_or(refunded);
    }
    if !batches.is_empty() {
        println!("total        held {held}  paid {paid}  refunded {refunded}");
    }
    if let Some(base) = agent {
        print_agent_report(&agent_get(base, "/status")?);
    } else if batches.is_empty() {
        let v = client
            .provider(provider)
            .context("cannot read the provider from the node")?
            .with_context(|| format!("{provider} is not a registered provider"))?;
        println!("earned (all work, after fees) {}", v.earned);
        eprintln!(
            "give --batch <id> for settled batches, --agent <address> for the agent's own counters"
        );
    }
    Ok(())
}

/// The inference counters a provider agent reports at `GET /status`, one line each.
pub(crate) fn print_agent_report(r: &serde_json::Value) {
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    let a = |v: &serde_json::Value| v.as_str().unwrap_or("0").to_string();
    let s = &r["serve"];
    println!(
        "inference  models {}",
        r["models"]
            .as_array()
            .map(|m| m
                .iter()
                .filter_map(|x| x.as_str())
                .collect::<Vec<_>>()
                .join(", "))
            .unwrap_or_default()
    );
    println!(
        "served     {} responses, {} tokens in, {} tokens out ({} refused, {} turned away busy)",
        n(&s["served"]),
        n(&s["tokens_in"]),
        n(&s["tokens_out"]),
        n(&s["refused"]),
        n(&s["overloaded"])
    );
    println!(
        "vouchers   {} received for {} ORR ({} refused); {} responses unpaid, {} paid and waiting to settle",
        n(&s["vouchers"]),
        a(&s["vouchers_amount"]),
        n(&s["vouchers_refused"]),
        n(&r["unpaid"]),
        n(&r["pending_responses"])
    );
    println!(
        "settled    {} batches, {} responses, {} ORR claimed (held until checks end)",
        n(&r["batches_settled"]),
        n(&r["responses_settled"]),
        a(&r["settled_amount"])
    );
    println!(
        "checks     {} sealed, {} revealed as checker; {} responses opened as provider",
        n(&r["checks_sealed"]),
        n(&r["checks_revealed"]),
        n(&r["responses_opened"])
    );
}
