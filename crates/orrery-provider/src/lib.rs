//! The Orrery provider agent: offer a machine to the network, run the jobs leased to it,
//! check other providers' results when drawn, and defend its own in disputes.
//!
//! # What the agent promises
//!
//! - **An honest agent is never slashed.** Every claim it seals is the deterministic result of
//!   the job ([`runner`]); every dispute move is computed from its own checkpoints; when a
//!   dispute narrows, it hands the referee the agreed state and its proof ([`decide`]). The
//!   ledger's referee re-executes the disputed step, so the honest side wins.
//! - **A job that fails by itself is a result, run once:** out of fuel, a trap, a limit, a
//!   module or spec that cannot load, bytes that are no bundle — the agent commits a failure
//!   claim and is paid for the work done ([`runner`], "Runs that fail"); only a wall-clock
//!   timeout or a host fault is tried again.
//! - **It never claims what the chain cannot confirm:** usage seconds are at most the chain
//!   time since `StartLease`, units at most the run's metered cost and the lease's limit.
//! - **It survives restarts.** Runs save snapshots to the data directory ([`store`]) and resume
//!   from the last one with `Start::Resume`; finished runs are kept until the lease is final,
//!   so a restarted agent still reveals and argues what it sealed.
//! - **A busy agent keeps its deadlines.** Jobs, verifiers' re-executions and referee replays
//!   run on worker threads ([`runs`]); the duty loop that seals, reveals, argues disputes and
//!   sends heartbeats never waits for them ([`actor`], "Threads").
//! - **It stops gracefully**: every run stops between two job steps, after saving; the worker
//!   threads are joined before the agent's thread exits.
//! - **Inference is paid for what was served, and checkable** ([`serve`], [`inference`]): a
//!   response's commitment names the canonical request's hash, the output digest and the
//!   price; a voucher is accepted only if it continues its channel exactly and is on disk
//!   before the gateway hears so; a batch is settled with the voucher of its last response,
//!   and its file lets any checker re-run every request with the same deterministic engine.
//!
//! # Layout
//!
//! - [`hardware`] (NVML, sysinfo) and [`benchmark`]: what the machine is and how fast;
//!   [`gpu`]: the GPU backend ML leases that reserve GPUs run on, and when such a lease is refused.
//! - [`config`]: the TOML configuration and its checks (stake against the minimum).
//! - [`job`]: bundles to workloads (wasm, ML with its `[ml]` table); [`runner`] runs them
//!   resumably; [`store`] is the data directory.
//! - [`decide`]: the pure decision function — lease state and role in, action out.
//! - [`chain`]: the chain as a trait ([`chain::NodeChain`] over `orrery-client`);
//!   [`outbox`]: every transaction the agent signed, until the chain has ruled on it.
//! - The actor: [`actor`] (the duty loop, [`actor::Worker`]), [`runs`] (its worker threads:
//!   job runs, verifications, referee replays, in bounded lanes), [`ingress`] (the handle and
//!   mailbox), [`Agent::start`] to run it on its own thread.
//! - [`cluster`]: the agent as a worker of cluster training leases (a thread and runtime per
//!   lease, the chain as the round oracle through the duty loop; `actor/cluster.rs`).
//! - [`status`](mod@status): `orrery provider status`.
//! - [`serve`]: the inference serving lane (HTTP on its own thread and runtime, the models,
//!   the books of vouchers and batches); [`inference`]: the check table and re-executions; the
//!   loop's inference duties are in `actor/infer.rs`.

pub mod actor;
pub mod benchmark;
pub mod chain;
pub mod challenge;
pub mod cluster;
pub mod config;
pub mod decide;
pub mod gpu;
pub mod hardware;
pub mod inference;
pub mod ingress;
pub mod job;
pub mod outbox;
pub mod runner;
pub mod runs;
pub mod serve;
pub mod status;
pub mod store;

pub use actor::{AgentError, AgentSnapshot, InferenceSnapshot, Worker};
pub use chain::{Chain, ChainError, NodeChain};
pub use config::{Cheat, ConfigError, ProviderConfig};
pub use ingress::AgentHandle;
pub use status::{ProviderStatus, status, status_of};

use orrery_ledger::Params;

/// Starting an agent.
#[derive(Debug)]
pub struct Agent;

impl Agent {
    /// Detect the hardware (unless the config overrides it), check the config against the
    /// chain's parameters as `config.node` serves them, and run the agent against that node on
    /// its own thread.
    ///
    /// A node that cannot be reached yet is not an error here (the agent keeps polling it):
    /// the config is then checked against the default parameters, and the chain itself refuses
    /// a bond below its own minimum when the agent sends it.
    pub fn start(config: ProviderConfig) -> Result<AgentHandle, AgentError> {
        let client = orrery_client::Client::new(&config.node);
        let params = match client.params::<Params>() {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(
                    node = %config.node,
                    error = %e,
                    "cannot read the chain's parameters; checking the config against the defaults"
                );
                Params::default()
            }
        };
        let fallbacks = config
            .fallback_nodes
            .iter()
            .map(|n| orrery_client::Client::new(n))
            .collect();
        let chain = NodeChain::with_fallbacks(client, fallbacks);
        Self::start_with(config, chain, &params)
    }

    /// [`Agent::start`] over any [`Chain`], checking the stake against `params`.
    pub fn start_with<C: Chain + Send + 'static>(
        config: ProviderConfig,
        chain: C,
        params: &Params,
    ) -> Result<AgentHandle, AgentError> {
        let mut detected = match &config.hardware {
            Some(h) => h.clone(),
            None => hardware::detect(),
        };
        // An offer lists GPUs only when ML leases can run on them: a lease that reserves GPUs
        // is refused without a (self-checked) GPU backend, so offering them would only earn
        // timeouts.
        let ml_gpu = if config.ml_gpu {
            gpu::open(config.hardware.as_ref().map(|h| h.gpu_count()))
        } else {
            tracing::info!("ml_gpu = false: ML jobs run on the CPU path");
            None
        };
        if ml_gpu.is_none() && detected.gpu.take().is_some() {
            tracing::warn!(
                "offering no GPUs: without a usable GPU backend, leases that reserve GPUs would be refused"
            );
        }
        if let Some(g) = &ml_gpu
            && detected.gpu.is_none()
        {
            tracing::info!(
                adapter = %g.device.name(),
                "a GPU backend but no GPU in the offer (NVML sees none): declare [hardware] with its gpu in the config to offer it"
            );
        }
        let hardware = config.offered_hardware(&detected);
        config.validate(&hardware, params)?;
        let offer = config.offer(hardware)?;
        let (mailbox, receiver, stop) = ingress::mailbox();
        let mut worker = Worker::new(&config, offer, chain, stop)?;
        let serve_device = ml_gpu.as_ref().map(|g| g.device.clone());
        if let Some(gpu) = ml_gpu {
            worker.use_gpu(gpu);
        }
        if let Some(serve) = &config.serve {
            let serving = std::sync::Arc::new(serve::Serving::load(
                serve,
                config.keypair()?,
                config.cheat,
                &config.data_dir,
                serve_device.as_ref(),
            )?);
            let server = serve::http::start(serving.clone(), &serve.listen)?;
            worker.serve(serving, Some(server));
        }
        let waker = mailbox.clone();
        worker.set_waker(move || waker.wake());
        let account = worker.account();
        let poll = config.poll_interval();
        let thread = std::thread::Builder::new()
            .name(format!("orrery-provider-{}", account.short()))
            .spawn(move || worker.run(receiver, poll))?;
        Ok(AgentHandle {
            account,
            mailbox,
            thread: Some(thread),
        })
    }
}

#[cfg(test)]
mod tests;
