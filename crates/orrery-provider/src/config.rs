//! The agent's configuration: one TOML file, every field named and checked.
//!
//! ```toml
//! node = "http://127.0.0.1:7420"     # the node whose HTTP API the agent uses
//! fallback_nodes = ["http://127.0.0.1:7421"]  # asked in turn while `node` is unreachable
//! key_file = "provider.key"          # 32 secret bytes as hex on one line (`orrery wallet`)
//! # key_seed = 3                     # or: a devnet key derived from a number (never real funds)
//! data_dir = "provider-data"         # runs in progress, checkpoints, outputs
//! region = "eu-west"
//! endpoint = "http://203.0.113.7:7100"
//! stake = "500"                      # ORR to keep bonded; at least the hardware's minimum
//! verifier = true                    # also re-run other providers' jobs when drawn
//! cheat = "none"                     # devnet only: "wrong_output" | "skip_step"
//! poll_interval_ms = 1000
//! save_every_steps = 10              # persist the running state every this many steps
//! threads = 2                        # ML threads (speed only, never results)
//! ml_gpu = true                      # run ML leases that reserve GPUs on a self-checked GPU
//!                                    # (wgpu: Vulkan, Metal, DX12); false: CPU path only
//! max_job_runs = 1                   # leases run at once (each on its own worker thread)
//! max_verify_runs = 1                # other providers' jobs re-executed at once, when drawn
//!
//! [prices]                           # listed prices, in ORR
//! gpu_hour = "2"
//! cpu_core_hour = "0.05"
//! ram_gib_hour = "0"
//! mega_unit = "0.001"
//!
//! [hardware]                         # optional: offer this instead of what is detected
//! cpu_cores = 16
//! ram_gib = 64
//! # gpu = { model = "NVIDIA RTX 4090", vram_mib = 24564, count = 1 }
//!
//! [cluster]                          # optional: be a worker of cluster training leases
//! port = 7300                        # p2p port of the cluster interconnect (listens on all
//!                                    # interfaces; peers reach it at `endpoint`'s host)
//! round_timeout_ms = 10000           # how long a worker waits for its peers' deltas a round
//!
//! [serve]                            # optional: serve inference (see `crate::serve`)
//! listen = "0.0.0.0:7100"            # the serving HTTP server; `endpoint` must reach it
//! threads = 2                        # compute threads of each request (speed only)
//! max_concurrent = 2                 # requests computed at once; more get 503 `overloaded`
//! settle_every_blocks = 50           # settle a channel's paid responses this often …
//! max_batch = 256                    # … or as soon as this many wait (≤ 4096)
//!
//! [[serve.models]]
//! name = "genesis-gpt2"
//! dir = "models/genesis-gpt2"        # model.safetensors, config.json, tokenizer.json
//! price_in = "0.1"                   # ORR per million input tokens
//! price_out = "0.4"                  # ORR per million output tokens
//! sample_bps = 100                   # share of responses re-executed by checkers (1 %)
//! ```
//!
//! Unknown fields are refused (a typo must not silently fall back to a default). A missing
//! stake, or a stake below [`Params::min_stake`] for the offered hardware, is an error naming
//! the minimum.

use crate::runs::MAX_RUNS_PER_LANE;
use orrery_ledger::Params;
use orrery_types::amount::Amount;
use orrery_types::codec::Text;
use orrery_types::crypto::Keypair;
use orrery_types::inference::{MAX_BATCH_RESPONSES, MAX_MODEL_NAME_LEN, MAX_MODELS_PER_PROVIDER};
use orrery_types::resources::{Hardware, PriceList};
use orrery_types::tx::ProviderOffer;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Shortest poll interval accepted: a node's rate limit is per IP, and blocks are not faster.
pub const MIN_POLL_INTERVAL_MS: u64 = 50;
/// Largest config file read (a config is a few hundred bytes).
pub const MAX_CONFIG_BYTES: u64 = 64 * 1024;

/// How a devnet provider misbehaves on purpose (to show that cheaters are caught).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cheat {
    /// Honest.
    #[default]
    None,
    /// Runs the job but reports a different output (checkpoints are right).
    WrongOutput,
    /// Skips the middle step (keeps the state unchanged there) and bills one step less.
    SkipStep,
    /// Serves inference with perturbed weights (one tensor scaled) while claiming the real
    /// files' weights hash: a provider answering with a cheaper model than it claims.
    WrongModel,
}

/// The provider agent's configuration (see the module docs for the file format).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Base URL of the node.
    pub node: String,
    /// Other nodes of the same chain, asked in turn while `node` cannot be reached (a
    /// validator restarting must not make the agent miss its deadlines).
    #[serde(default)]
    pub fallback_nodes: Vec<String>,
    /// A key file: the 32 secret bytes of an ed25519 key as hex.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// A devnet key derived from this number instead of a key file.
    #[serde(default)]
    pub key_seed: Option<u64>,
    /// Where runs, checkpoints and outputs are kept.
    pub data_dir: PathBuf,
    /// Region offered.
    pub region: String,
    /// Public endpoint offered.
    #[serde(default = "default_endpoint")]
    pub endpoint: String,
    /// Listed prices.
    pub prices: PriceList,
    /// Stake to keep bonded (ORR). Required.
    #[serde(default)]
    pub stake: Option<Amount>,
    /// Offer this hardware instead of the detected one (tests, devnet).
    #[serde(default)]
    pub hardware: Option<Hardware>,
    /// Whether to act as a verifier when drawn (a drawn verifier that does not act is docked).
    #[serde(default = "yes")]
    pub verifier: bool,
    /// Deliberate misbehaviour, for the devnet only.
    #[serde(default)]
    pub cheat: Cheat,
    /// How often the agent polls the node.
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
    /// Persist the running state every this many steps (and always when stopping).
    #[serde(default = "default_save_every")]
    pub save_every_steps: u64,
    /// Threads for ML jobs (changes speed, never results).
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// Use a GPU for ML leases that reserve GPUs, when a self-checked GPU backend is found
    /// (see `gpu.rs`); `false` keeps every ML job on the CPU path (and refuses GPU leases).
    #[serde(default = "yes")]
    pub ml_gpu: bool,
    /// Leases whose jobs run at once, each on its own worker thread (1 to
    /// [`MAX_RUNS_PER_LANE`]). More leases wait, started, for a free place.
    #[serde(default = "one")]
    pub max_job_runs: usize,
    /// Verifications (re-executions of other providers' jobs) run at once, on worker threads
    /// apart from the jobs, so a long job does not make a drawn check late (1 to
    /// [`MAX_RUNS_PER_LANE`]).
    #[serde(default = "one")]
    pub max_verify_runs: usize,
    /// Inference serving: the HTTP server, its limits and the models (none: no serving).
    #[serde(default)]
    pub serve: Option<ServeConfig>,
    /// Cluster training: the p2p port its workers listen on (none: the agent is never a
    /// cluster worker, and its offer publishes no cluster contact).
    #[serde(default)]
    pub cluster: Option<ClusterConfig>,
}

/// Shortest `round_timeout_ms`: a round's delta must have time to cross the network.
pub const MIN_ROUND_TIMEOUT_MS: u64 = 100;
/// Longest `round_timeout_ms`: a worker waits this long for a dead peer each round.
pub const MAX_ROUND_TIMEOUT_MS: u64 = 600_000;

/// The `[cluster]` table: this machine as a worker of cluster training leases (see
/// [`crate::cluster`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// The p2p port its workers listen on, on every interface. The offer publishes it with the
    /// account's key after `endpoint` (`#cluster=<port>&key=<hex>`): peers dial `endpoint`'s
    /// host at this port.
    pub port: u16,
    /// How long a worker waits for its peers' deltas each round before it reports what it
    /// holds (a dead peer costs every round this long, until the chain drops it).
    #[serde(default = "default_round_timeout_ms")]
    pub round_timeout_ms: u64,
}

fn default_round_timeout_ms() -> u64 {
    10_000
}

impl ClusterConfig {
    /// Check the port and the timeout.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.port == 0 {
            return Err(ConfigError::Invalid(
                "[cluster] port must be 1 to 65535 (the port peers dial)".into(),
            ));
        }
        if !(MIN_ROUND_TIMEOUT_MS..=MAX_ROUND_TIMEOUT_MS).contains(&self.round_timeout_ms) {
            return Err(ConfigError::Invalid(format!(
                "[cluster] round_timeout_ms must be {MIN_ROUND_TIMEOUT_MS} to {MAX_ROUND_TIMEOUT_MS}"
            )));
        }
        Ok(())
    }

    /// The round timeout.
    pub fn round_timeout(&self) -> Duration {
        Duration::from_millis(self.round_timeout_ms)
    }
}

/// Most requests computed at once that a config may ask for: each holds a model's activations
/// (and a KV cache) in memory and `threads` threads.
pub const MAX_CONCURRENT_LIMIT: usize = 64;

/// The `[serve]` table: the inference serving lane (see [`crate::serve`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// Address the serving HTTP server listens on. The offer's `endpoint` must reach it:
    /// gateways call `{endpoint}/infer` and `{endpoint}/voucher`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Compute threads of each request (changes speed, never results).
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// Requests computed at once (1 to [`MAX_CONCURRENT_LIMIT`]); one more is answered 503
    /// `overloaded` at once, so the gateway fails over instead of queueing.
    #[serde(default = "one")]
    pub max_concurrent: usize,
    /// Settle a channel's paid responses at least this often, in blocks (at least 1).
    #[serde(default = "default_settle_every")]
    pub settle_every_blocks: u64,
    /// Settle a channel as soon as this many paid responses wait (1 to
    /// [`MAX_BATCH_RESPONSES`]).
    #[serde(default = "default_max_batch")]
    pub max_batch: u64,
    /// The models served (1 to [`MAX_MODELS_PER_PROVIDER`]).
    pub models: Vec<ServedModelConfig>,
}

/// One `[[serve.models]]` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServedModelConfig {
    /// The name clients ask for (at most [`MAX_MODEL_NAME_LEN`] bytes).
    pub name: String,
    /// A folder with `model.safetensors`, `config.json` and `tokenizer.json`.
    pub dir: PathBuf,
    /// ORR per million input tokens.
    pub price_in: Amount,
    /// ORR per million output tokens.
    pub price_out: Amount,
    /// Share of responses, in basis points, that checkers re-execute (1 to 10000; the chain
    /// refuses a rate below its floor).
    pub sample_bps: u16,
}

fn default_listen() -> String {
    "127.0.0.1:7100".into()
}
fn default_settle_every() -> u64 {
    50
}
fn default_max_batch() -> u64 {
    256
}

impl ServeConfig {
    /// Check ranges and that every model's files exist (they are loaded at start).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(format!("[serve] {m}")));
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return bad(format!(
                "listen = {:?} is not an address such as \"0.0.0.0:7100\"",
                self.listen
            ));
        }
        if self.threads == 0 {
            return bad("threads must be at least 1".into());
        }
        if !(1..=MAX_CONCURRENT_LIMIT).contains(&self.max_concurrent) {
            return bad(format!(
                "max_concurrent must be 1 to {MAX_CONCURRENT_LIMIT}"
            ));
        }
        if self.settle_every_blocks == 0 {
            return bad("settle_every_blocks must be at least 1".into());
        }
        if !(1..=MAX_BATCH_RESPONSES).contains(&self.max_batch) {
            return bad(format!("max_batch must be 1 to {MAX_BATCH_RESPONSES}"));
        }
        if self.models.is_empty() || self.models.len() > MAX_MODELS_PER_PROVIDER {
            return bad(format!(
                "serve 1 to {MAX_MODELS_PER_PROVIDER} models ([[serve.models]] entries)"
            ));
        }
        for (i, m) in self.models.iter().enumerate() {
            m.validate()?;
            if self.models[..i].iter().any(|o| o.name == m.name) {
                return bad(format!("model name {:?} is listed twice", m.name));
            }
        }
        Ok(())
    }
}

impl ServedModelConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(format!("[[serve.models]] {m}")));
        if self.name.is_empty() || self.name.len() > MAX_MODEL_NAME_LEN {
            return bad(format!("name must be 1 to {MAX_MODEL_NAME_LEN} bytes"));
        }
        if !(1..=10_000).contains(&self.sample_bps) {
            return bad(format!(
                "{}: sample_bps must be 1 to 10000 (basis points: 100 = 1 %)",
                self.name
            ));
        }
        if self.price_in.is_zero() && self.price_out.is_zero() {
            return bad(format!(
                "{}: price_in and price_out are both 0: set at least one price (ORR per million tokens)",
                self.name
            ));
        }
        use orrery_ml::infer::files::{CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE};
        for file in [WEIGHTS_FILE, CONFIG_FILE, TOKENIZER_FILE] {
            let path = self.dir.join(file);
            if !path.is_file() {
                return bad(format!(
                    "{}: {} is missing (a model folder holds model.safetensors, config.json and tokenizer.json)",
                    self.name,
                    path.display()
                ));
            }
        }
        Ok(())
    }
}

fn default_endpoint() -> String {
    "http://127.0.0.1:7100".into()
}
fn yes() -> bool {
    true
}
fn default_poll_ms() -> u64 {
    1000
}
fn default_save_every() -> u64 {
    10
}
fn default_threads() -> usize {
    1
}
fn one() -> usize {
    1
}

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not valid TOML for this format (unknown fields included).
    #[error("invalid provider config: {0}")]
    Parse(String),
    /// No `stake`.
    #[error(
        "no stake configured: set `stake` to at least {minimum} ORR (the minimum for the offered hardware)"
    )]
    NoStake {
        /// The minimum for the hardware.
        minimum: Amount,
    },
    /// Stake below the minimum.
    #[error("stake {stake} ORR is below the minimum of {minimum} ORR for the offered hardware")]
    StakeTooLow {
        /// Configured.
        stake: Amount,
        /// Needed.
        minimum: Amount,
    },
    /// Neither or both of `key_file` and `key_seed`.
    #[error("set exactly one of `key_file` (a real key) or `key_seed` (a devnet key)")]
    Key,
    /// The key file is not 64 hex characters.
    #[error("key file {path}: {reason}")]
    BadKey {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Some field is out of range.
    #[error("invalid provider config: {0}")]
    Invalid(String),
}

impl ProviderConfig {
    /// Parse a config from TOML text (not yet checked against the hardware: see
    /// [`ProviderConfig::validate`]).
    pub fn from_toml(text: &str) -> Result<ProviderConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))
    }

    /// Read and parse a config file.
    pub fn load(path: &Path) -> Result<ProviderConfig, ConfigError> {
        let read = |source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        };
        let len = std::fs::metadata(path).map_err(read)?.len();
        if len > MAX_CONFIG_BYTES {
            return Err(ConfigError::Invalid(format!(
                "{} is {len} bytes; a config is at most {MAX_CONFIG_BYTES}",
                path.display()
            )));
        }
        Self::from_toml(&std::fs::read_to_string(path).map_err(read)?)
    }

    /// The hardware to offer: the override if set, else `detected`.
    pub fn offered_hardware(&self, detected: &Hardware) -> Hardware {
        self.hardware.clone().unwrap_or_else(|| detected.clone())
    }

    /// Check everything that does not need the network: key choice, ranges, and the stake
    /// against `params.min_stake(hardware)`.
    pub fn validate(&self, hardware: &Hardware, params: &Params) -> Result<(), ConfigError> {
        if self.key_file.is_some() == self.key_seed.is_some() {
            return Err(ConfigError::Key);
        }
        if self.poll_interval_ms < MIN_POLL_INTERVAL_MS {
            return Err(ConfigError::Invalid(format!(
                "poll_interval_ms must be at least {MIN_POLL_INTERVAL_MS}"
            )));
        }
        if self.save_every_steps == 0 {
            return Err(ConfigError::Invalid(
                "save_every_steps must be at least 1".into(),
            ));
        }
        if self.threads == 0 {
            return Err(ConfigError::Invalid("threads must be at least 1".into()));
        }
        for (name, n) in [
            ("max_job_runs", self.max_job_runs),
            ("max_verify_runs", self.max_verify_runs),
        ] {
            if !(1..=MAX_RUNS_PER_LANE).contains(&n) {
                return Err(ConfigError::Invalid(format!(
                    "{name} must be 1 to {MAX_RUNS_PER_LANE}"
                )));
            }
        }
        if hardware.cpu_cores == 0 || hardware.ram_gib == 0 {
            return Err(ConfigError::Invalid(
                "the offered hardware needs at least 1 CPU core and 1 GiB".into(),
            ));
        }
        if let Some(serve) = &self.serve {
            serve.validate()?;
        }
        if let Some(cluster) = &self.cluster {
            cluster.validate()?;
        }
        self.offer(hardware.clone())?;
        let minimum = params
            .min_stake(hardware)
            .ok_or_else(|| ConfigError::Invalid("minimum stake overflows".into()))?;
        match self.stake {
            None => Err(ConfigError::NoStake { minimum }),
            Some(stake) if stake < minimum => Err(ConfigError::StakeTooLow { stake, minimum }),
            Some(_) => Ok(()),
        }
    }

    /// The endpoint the offer publishes: `endpoint`, with the cluster contact after it when
    /// `[cluster]` is set.
    pub fn offered_endpoint(&self) -> Result<String, ConfigError> {
        let Some(cluster) = &self.cluster else {
            return Ok(self.endpoint.clone());
        };
        let key = self.keypair()?;
        orrery_types::cluster::cluster_endpoint(&self.endpoint, cluster.port, key.public_key())
            .map_err(|e| {
                ConfigError::Invalid(format!(
                    "[cluster] needs an `endpoint` whose host peers can dial, like \
                     \"http://203.0.113.7:7100\" (and no '#'): {e}"
                ))
            })
    }

    /// The offer this config makes for `hardware`.
    pub fn offer(&self, hardware: Hardware) -> Result<ProviderOffer, ConfigError> {
        let endpoint = self.offered_endpoint()?;
        Ok(ProviderOffer {
            hardware,
            region: Text::new(self.region.clone())
                .ok()
                .filter(|r: &Text<{ orrery_types::resources::MAX_REGION_LEN }>| {
                    !r.as_str().is_empty()
                })
                .ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "region must be 1 to {} bytes",
                        orrery_types::resources::MAX_REGION_LEN
                    ))
                })?,
            endpoint: Text::new(endpoint).map_err(|_| {
                ConfigError::Invalid(format!(
                    "endpoint is longer than {} bytes (with [cluster], {} fewer: the cluster \
                     contact follows it)",
                    orrery_types::resources::MAX_ENDPOINT_LEN,
                    "#cluster=65535&key=".len() + 64
                ))
            })?,
            prices: self.prices,
        })
    }

    /// The signing key.
    pub fn keypair(&self) -> Result<Keypair, ConfigError> {
        match (&self.key_file, self.key_seed) {
            (Some(path), None) => read_key_file(path),
            (None, Some(seed)) => Ok(Keypair::from_seed(seed)),
            _ => Err(ConfigError::Key),
        }
    }

    /// The poll interval.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms.max(MIN_POLL_INTERVAL_MS))
    }
}

fn read_key_file(path: &Path) -> Result<Keypair, ConfigError> {
    let bad = |reason: &str| ConfigError::BadKey {
        path: path.to_path_buf(),
        reason: reason.into(),
    };
    let len = std::fs::metadata(path)
        .map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?
        .len();
    if len > 1024 {
        return Err(bad("too large for a key file"));
    }
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let text = text.trim();
    if text.len() != 64 {
        return Err(bad("expected 64 hex characters (32 secret bytes)"));
    }
    let mut bytes = [0u8; 32];
    for (i, chunk) in text.as_bytes().chunks(2).enumerate() {
        let s = std::str::from_utf8(chunk).map_err(|_| bad("not hex"))?;
        bytes[i] = u8::from_str_radix(s, 16).map_err(|_| bad("not hex"))?;
    }
    Keypair::from_secret_bytes(&bytes).map_err(|_| bad("not a valid ed25519 secret key"))
}
