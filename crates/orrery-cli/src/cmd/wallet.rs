//! `orrery key`, `orrery wallet` and `orrery chain`: keys on disk, balances and transfers, and
//! the chain's status, all through a node's HTTP API (`orrery-client`).
//!
//! A key file holds the 32 secret bytes of an ed25519 key as hex on one line, readable by its
//! owner only. Keep it safe: whoever has it controls the account.

use anyhow::{Context, bail};
use clap::{Args as ClapArgs, Subcommand};
use orrery_client::Client;
use orrery_types::amount::Amount;
use orrery_types::crypto::{AccountId, Keypair};
use orrery_types::tx::{ChainId, Tx, TxBody};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The node to talk to (also `ORRERY_NODE`).
#[derive(ClapArgs, Clone, Debug)]
pub struct NodeArg {
    /// Base URL of an Orrery node's API.
    #[arg(long, env = "ORRERY_NODE", default_value = "http://127.0.0.1:7420")]
    pub node: String,
}

/// The key to sign with (also `ORRERY_KEY`).
#[derive(ClapArgs, Clone, Debug)]
pub struct KeyArg {
    /// Path of the key file (`orrery key new` writes one).
    #[arg(long, env = "ORRERY_KEY", default_value = "orrery.key")]
    pub key: PathBuf,
}

/// Manage signing keys.
#[derive(ClapArgs, Debug)]
pub struct KeyArgs {
    #[command(subcommand)]
    cmd: KeyCmd,
}

#[derive(Subcommand, Debug)]
enum KeyCmd {
    /// Create a new key and print its account id. Refuses to overwrite an existing file.
    New {
        #[command(flatten)]
        key: KeyArg,
    },
    /// Print the account id of a key file.
    Show {
        #[command(flatten)]
        key: KeyArg,
    },
}

/// Balances and transfers.
#[derive(ClapArgs, Debug)]
pub struct WalletArgs {
    #[command(subcommand)]
    cmd: WalletCmd,
}

#[derive(Subcommand, Debug)]
enum WalletCmd {
    /// Show an account's balance and nonce (your key's account unless one is given).
    Balance {
        /// An account id (`orr…`); defaults to the key's account.
        account: Option<AccountId>,
        #[command(flatten)]
        key: KeyArg,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Send tokens and wait until the transfer is final.
    Transfer {
        /// Recipient account id (`orr…`).
        to: AccountId,
        /// Amount in ORR, e.g. `12.5`.
        amount: Amount,
        #[command(flatten)]
        key: KeyArg,
        #[command(flatten)]
        node: NodeArg,
        /// Seconds to wait for finality.
        #[arg(long, default_value_t = 30)]
        wait: u64,
    },
}

/// The chain's status as a node sees it.
#[derive(ClapArgs, Debug)]
pub struct ChainArgs {
    #[command(subcommand)]
    cmd: ChainCmd,
}

#[derive(Subcommand, Debug)]
enum ChainCmd {
    /// Height, last block, state root, validators, peers and the mempool.
    Status {
        #[command(flatten)]
        node: NodeArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Write a new random key to `path` (owner-only permissions); fails if the file exists.
pub fn new_key(path: &Path) -> anyhow::Result<Keypair> {
    let mut seed = [0u8; 32];
    getrandom_seed(&mut seed)?;
    let key = Keypair::from_secret_bytes(&seed).context("generating a key")?;
    write_secret(path, &hex::encode(key.secret_bytes()), "key file")?;
    Ok(key)
}

/// Write one secret line (a key) to a new file at `path`, readable by its owner only; never
/// overwrites. `what` names the file in the error.
pub fn write_secret(path: &Path, line: &str, what: &str) -> anyhow::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).with_context(|| {
        format!(
            "cannot create {what} {} (it must not exist already)",
            path.display()
        )
    })?;
    use std::io::Write;
    writeln!(f, "{line}")?;
    Ok(())
}

/// Fill `buf` from the operating system's randomness.
fn getrandom_seed(buf: &mut [u8]) -> anyhow::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .context("cannot read the system's randomness (/dev/urandom)")
}

/// Load a key file written by [`new_key`].
pub fn load_key(path: &Path) -> anyhow::Result<Keypair> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read key file {} (create one with `orrery key new --key {}`)",
            path.display(),
            path.display()
        )
    })?;
    let bytes = hex::decode(text.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .with_context(|| {
            format!(
                "{} is not a key file: expected 64 hex characters",
                path.display()
            )
        })?;
    Keypair::from_secret_bytes(&bytes)
        .with_context(|| format!("{} holds no valid key", path.display()))
}

/// Sign `body` with the account's next nonce for the node's chain, submit it and wait until it
/// is final; fails with the ledger's reason if it was refused.
pub fn submit_and_wait(
    client: &Client,
    key: &Keypair,
    body: TxBody,
    wait: Duration,
) -> anyhow::Result<orrery_client::api::TxRecord> {
    let status = client.status().context("cannot reach the node")?;
    let account = client.account(&key.account())?;
    let tx = Tx {
        chain_id: ChainId::new(&status.chain.chain_id)
            .map_err(|e| anyhow::anyhow!("the node reports a bad chain id: {e}"))?,
        nonce: account.nonce,
        body,
    }
    .sign(key);
    let hash = client
        .submit(&tx)
        .context("the node refused the transaction")?;
    let record = client
        .wait_for_tx(&hash, wait)
        .with_context(|| format!("transaction {hash} was not finalized in time"))?;
    applied(record)
}

/// A finalized transaction's record if it applied; the ledger's reason as the error if not.
pub fn applied(
    record: orrery_client::api::TxRecord,
) -> anyhow::Result<orrery_client::api::TxRecord> {
    if let Some(receipt) = &record.receipt
        && !receipt.ok
    {
        let why = receipt
            .message
            .clone()
            .unwrap_or_else(|| format!("{:?}", receipt.error));
        bail!(
            "transaction {} was refused by the ledger: {why}",
            record.tx.hash
        );
    }
    Ok(record)
}

pub fn run_key(args: KeyArgs) -> anyhow::Result<()> {
    match args.cmd {
        KeyCmd::New { key } => {
            let k = new_key(&key.key)?;
            println!("{}", k.account());
            eprintln!("key written to {} (keep it secret)", key.key.display());
        }
        KeyCmd::Show { key } => println!("{}", load_key(&key.key)?.account()),
    }
    Ok(())
}

pub fn run_wallet(args: WalletArgs) -> anyhow::Result<()> {
    match args.cmd {
        WalletCmd::Balance { account, key, node } => {
            let id = match account {
                Some(a) => a,
                None => load_key(&key.key)?.account(),
            };
            let client = Client::new(&node.node);
            let a = client.account(&id).context("cannot read the account")?;
            println!("{id}: {} (nonce {})", a.balance, a.nonce);
        }
        WalletCmd::Transfer {
            to,
            amount,
            key,
            node,
            wait,
        } => {
            let k = load_key(&key.key)?;
            let client = Client::new(&node.node);
            let record = submit_and_wait(
                &client,
                &k,
                TxBody::Transfer { to, amount },
                Duration::from_secs(wait),
            )?;
            println!(
                "sent {amount} to {to} in block {} (tx {})",
                record.height, record.tx.hash
            );
        }
    }
    Ok(())
}

pub fn run_chain(args: ChainArgs) -> anyhow::Result<()> {
    match args.cmd {
        ChainCmd::Status { node, json } => {
            let client = Client::new(&node.node);
            let s = client.status().context("cannot reach the node")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                let c = &s.chain;
                println!("chain        {}", c.chain_id);
                println!("height       {} (indexed {})", c.height, s.indexed_height);
                println!("last block   {}", c.last_block_hash);
                println!("state root   {}", c.state_root);
                println!(
                    "validators   {} (peers connected: {})",
                    c.validators, c.peers_connected
                );
                println!("mempool      {} transactions", c.mempool_len);
                println!("syncing      {}", if c.syncing { "yes" } else { "no" });
                println!("node version {}", s.version);
            }
        }
    }
    Ok(())
}
