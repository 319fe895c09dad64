//! Starting and stopping the node's services: the HTTP server, the indexer (which follows
//! finalized blocks into the index and the event stream) and the blob garbage collector.
//!
//! The indexer subscribes to the backend *before* catching up from chain storage, so no block
//! finalized during catch-up is missed; blocks it already indexed are skipped.

use crate::api::{self, Shared};
use crate::backend::{self, Backend, Finalized};
use crate::blobs::{BlobError, BlobRef, BlobStore};
use crate::config::{ConfigError, NodeConfig};
use crate::events::EventHub;
use crate::gateway::Gateway;
use crate::gateway::ledger::LedgerChain;
use crate::index::{Index, IndexError};
use crate::limits::RateLimiter;
use crate::metrics::Metrics;
use crate::peers::Peers;
use orrery_ledger::State as LedgerState;
use orrery_ledger::entries::LeaseState;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{Semaphore, broadcast, oneshot};
use tokio::task::JoinHandle;

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data directory cannot be created.
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The index cannot be opened.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The blob store cannot be opened.
    #[error(transparent)]
    Blobs(#[from] BlobError),
    /// The API address cannot be bound.
    #[error("cannot listen on {addr}: {source} (is another node running there?)")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The peer client could not be set up.
    #[error("cannot set up fetching blobs from peers: {0}")]
    Peers(String),
    /// The validator could not start.
    #[error("the validator could not start: {0}")]
    Chain(String),
    /// The inference gateway could not start.
    #[error(transparent)]
    Gateway(#[from] crate::gateway::GatewayOpenError),
    /// The HTTP server stopped with an error.
    #[error("HTTP server failed: {0}")]
    Server(#[source] std::io::Error),
}

/// A running node. Dropping it does not stop it; call [`RunningNode::shutdown`].
#[derive(Debug)]
pub struct RunningNode {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<std::io::Result<()>>,
    tasks: Vec<JoinHandle<()>>,
    hub: Arc<EventHub>,
    metrics: Arc<Metrics>,
}

impl RunningNode {
    /// The address the API listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The node's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Wait until the server stops (it stops only on error or shutdown).
    pub async fn wait(mut self) -> Result<(), NodeError> {
        let r = (&mut self.server).await;
        self.stop_tasks();
        match r {
            Ok(r) => r.map_err(NodeError::Server),
            Err(e) => Err(NodeError::Server(std::io::Error::other(e))),
        }
    }

    /// Stop serving: close event streams, let in-flight requests finish, stop the indexer
    /// and the collector.
    pub async fn shutdown(mut self) -> Result<(), NodeError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.hub.close();
        self.wait().await
    }

    /// Serve until `stop` completes (then shut down cleanly) or the server fails.
    pub async fn run_until(
        mut self,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<(), NodeError> {
        tokio::select! {
            r = &mut self.server => {
                self.stop_tasks();
                match r {
                    Ok(r) => r.map_err(NodeError::Server),
                    Err(e) => Err(NodeError::Server(std::io::Error::other(e))),
                }
            }
            () = stop => self.shutdown().await,
        }
    }

    fn stop_tasks(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Open the node's stores under `config.data_dir`, start the indexer and the blob collector
/// over `backend`, and serve the API on `config.api_listen`. Returns once listening.
pub async fn serve<B: Backend>(config: NodeConfig, backend: B) -> Result<RunningNode, NodeError> {
    config.validate()?;
    let data_dir = config.data_dir.clone();
    std::fs::create_dir_all(&data_dir).map_err(|source| NodeError::DataDir {
        path: data_dir.clone(),
        source,
    })?;
    let index = Arc::new(Index::open(&data_dir.join("index.redb"))?);
    let blobs = Arc::new(BlobStore::open(
        &data_dir.join("blobs"),
        config.blobs.max_blob_bytes,
    )?);
    let backend: Arc<dyn Backend> = Arc::new(backend);
    let metrics = Arc::new(Metrics::new());
    let l = &config.limits;
    let hub = Arc::new(EventHub::new(l.event_buffer_blocks, l.max_event_clients));
    let peers = Arc::new(
        Peers::new(&config.peers, blobs.clone(), metrics.clone()).map_err(NodeError::Peers)?,
    );
    let shared = Arc::new(Shared {
        backend: backend.clone(),
        index: index.clone(),
        blobs: blobs.clone(),
        peers,
        hub: hub.clone(),
        metrics: metrics.clone(),
        rate: RateLimiter::new(l.rate_per_ip_per_sec, l.burst_per_ip, l.max_tracked_ips),
        slots: Arc::new(Semaphore::new(l.max_concurrent_requests)),
        explorer: crate::explorer::Cache::default(),
        gateway: open_gateway(&config, &backend)?,
        config: config.clone(),
    });

    let listener = tokio::net::TcpListener::bind(config.api_listen)
        .await
        .map_err(|source| NodeError::Listen {
            addr: config.api_listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| NodeError::Listen {
        addr: config.api_listen,
        source,
    })?;

    // Subscribe before catching up so nothing finalized meanwhile is missed.
    let rx = backend.subscribe();
    let indexer = tokio::spawn(run_indexer(shared.clone(), rx));
    let collector = tokio::spawn(run_collector(shared.clone()));

    let app = api::router(shared);
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        // Streamed answers (server-sent events, the gateway's token chunks) are many small
        // writes: without TCP_NODELAY, Nagle's algorithm holds each behind the client's
        // delayed ACK (up to 40 ms a token).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
        });
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = rx.await;
        })
        .await
    });
    tracing::info!(
        %addr,
        data_dir = %data_dir.display(),
        peers = config.peers.urls.len(),
        "node API listening"
    );
    Ok(RunningNode {
        addr,
        shutdown: Some(tx),
        server,
        tasks: vec![indexer, collector],
        hub,
        metrics,
    })
}

fn open_gateway(
    config: &NodeConfig,
    backend: &Arc<dyn Backend>,
) -> Result<Option<Arc<Gateway>>, NodeError> {
    if !config.gateway.enabled {
        return Ok(None);
    }
    let chain = Arc::new(LedgerChain::new(backend.clone()));
    let gw = Gateway::open(&config.data_dir, chain, config.gateway.clone())?;
    Ok(Some(Arc::new(gw)))
}

/// How long the indexer waits before retrying after a storage error.
const INDEX_RETRY: Duration = Duration::from_secs(1);

async fn run_indexer(s: Arc<Shared>, mut rx: broadcast::Receiver<Arc<Finalized>>) {
    if let Err(e) = catch_up(&s, s.backend.status().height).await {
        tracing::error!(error = %e, "index catch-up failed; will retry on the next block");
    }
    loop {
        let f = match rx.recv().await {
            Ok(f) => f,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(
                    missed = n,
                    "indexer fell behind; reading missed blocks from storage"
                );
                if let Err(e) = catch_up(&s, s.backend.status().height).await {
                    tracing::error!(error = %e, "index catch-up failed");
                    tokio::time::sleep(INDEX_RETRY).await;
                }
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => {
                tracing::info!("chain closed its block stream; indexer stopping");
                return;
            }
        };
        let height = f.block.height;
        s.metrics.finalized_blocks.inc();
        s.metrics.chain_height.set(height as i64);
        if height > 1
            && let Err(e) = catch_up(&s, height - 1).await
        {
            tracing::error!(error = %e, height, "index catch-up failed");
            continue;
        }
        match index_one(&s, f.clone()).await {
            Ok(true) => s.hub.publish_block(&f, &s.metrics),
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, height, "indexing a finalized block failed"),
        }
    }
}

async fn index_one(s: &Shared, f: Arc<Finalized>) -> Result<bool, IndexError> {
    let index = s.index.clone();
    let metrics = s.metrics.clone();
    tokio::task::spawn_blocking(move || {
        let new = index.index_finalized(&f)?;
        if new {
            metrics.indexed_height.set(f.block.height as i64);
            tracing::debug!(
                height = f.block.height,
                txs = f.block.txs.len(),
                "indexed block"
            );
        }
        Ok(new)
    })
    .await
    .unwrap_or_else(|e| Err(IndexError::Task(e.to_string())))
}

/// Index every height from the index's height + 1 up to `target` from chain storage, with
/// outcomes where the backend still has them.
async fn catch_up(s: &Arc<Shared>, target: u64) -> Result<(), CatchUpError> {
    let s2 = s.clone();
    let published =
        tokio::task::spawn_blocking(move || -> Result<Vec<Arc<Finalized>>, CatchUpError> {
            let mut with_outcome = Vec::new();
            let mut h = s2.index.indexed_height()? + 1;
            if h <= target {
                tracing::info!(from = h, to = target, "indexing blocks from chain storage");
            }
            while h <= target {
                if let Some(f) = s2.backend.outcome(h).map_err(CatchUpError::Backend)? {
                    s2.index.index_finalized(&f)?;
                    with_outcome.push(f);
                } else {
                    let Some(block) = s2.backend.block(h).map_err(CatchUpError::Backend)? else {
                        break;
                    };
                    let hash = block.hash();
                    s2.index.index_block(&block, hash, None)?;
                }
                s2.metrics.indexed_height.set(h as i64);
                h += 1;
            }
            Ok(with_outcome)
        })
        .await
        .map_err(|e| CatchUpError::Task(e.to_string()))??;
    for f in published {
        s.hub.publish_block(&f, &s.metrics);
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
enum CatchUpError {
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Backend(backend::BackendError),
    #[error("catch-up task failed: {0}")]
    Task(String),
}

/// Which blobs the leases in `state` reference, and since when they are final: each lease's
/// job bundle, and every output hash its state names (any field called `output`, found in the
/// state's JSON, so new lease states are covered without a change here).
pub fn lease_blob_refs(state: &LedgerState) -> Vec<BlobRef> {
    let mut refs = Vec::new();
    for lease in state.leases().values() {
        let final_at = if lease.state.is_active() {
            None
        } else {
            Some(match &lease.state {
                LeaseState::Settled { settled_at, .. } => *settled_at,
                LeaseState::TimedOut { at, .. } | LeaseState::Failed { at, .. } => *at,
                // A final state this node does not know yet: count from the deadline.
                _ => lease.deadline,
            })
        };
        refs.push(BlobRef {
            hash: lease.job,
            final_at,
        });
        let mut outputs = Vec::new();
        if let Ok(json) = serde_json::to_value(&lease.state) {
            collect_outputs(&json, &mut outputs);
        }
        refs.extend(outputs.into_iter().map(|hash| BlobRef { hash, final_at }));
    }
    refs
}

fn collect_outputs(v: &serde_json::Value, out: &mut Vec<orrery_types::hash::Hash>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, val) in map {
                if k == "output"
                    && let Some(h) = val.as_str().and_then(|s| s.parse().ok())
                {
                    out.push(h);
                }
                collect_outputs(val, out);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| collect_outputs(i, out)),
        _ => {}
    }
}

async fn run_collector(s: Arc<Shared>) {
    let period = Duration::from_secs(s.config.blobs.gc_interval_secs);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some((refs, height)) =
            backend::read(&*s.backend, |st| (lease_blob_refs(st), st.height()))
        else {
            continue;
        };
        let s2 = s.clone();
        let result = tokio::task::spawn_blocking(move || {
            let b = &s2.config.blobs;
            s2.blobs.collect_garbage(
                &refs,
                height,
                b.retention_blocks,
                Duration::from_secs(b.unreferenced_grace_secs),
                SystemTime::now(),
            )
        })
        .await;
        match result {
            Ok(Ok(report)) => {
                s.metrics.blobs_deleted.inc_by(report.deleted);
                if report.deleted > 0 {
                    tracing::info!(
                        deleted = report.deleted,
                        freed = report.bytes_freed,
                        kept = report.kept,
                        "blob garbage collected"
                    );
                }
            }
            Ok(Err(e)) => tracing::error!(error = %e, "blob garbage collection failed"),
            Err(e) => tracing::error!(error = %e, "blob garbage collection task failed"),
        }
    }
}
