//! One worker's run loop (see the crate docs for the round protocol).

use crate::CLUSTER_NAMESPACE;
use crate::oracle::{RoundCommit, RoundOracle, members};
use crate::wire::{CHANNEL_DELTAS, DeltaMessage, Kind, max_message_bytes};
use commonware_cryptography::ed25519::{PrivateKey, PublicKey};
use commonware_cryptography::{ChaCha20Poly1305, Signer as _};
use commonware_p2p::authenticated::lookup;
use commonware_p2p::{Address, AddressableManager as _, Recipients};
use commonware_runtime::{Clock, Metrics, Network, Quota, Resolver, Spawner};
use commonware_stream::cups::{self, Cups};
use commonware_stream::sake::{self, Sake};
use commonware_utils::ordered::Map;
use commonware_utils::{NZU32, NZUsize};
use orrery_ml::cluster::{ClusterJob, Delta, GlobalState, WorkerState};
use orrery_types::Hash;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Messages per second accepted from one peer: a few per round, so 100/s only bounds abuse.
const CHANNEL_RATE: u32 = 100;
/// How often the round loop looks for arrived deltas.
const POLL: Duration = Duration::from_millis(10);
/// How long a worker waits for a missing delta before asking its sender again.
const ASK_EVERY: Duration = Duration::from_millis(300);

/// One worker's place in the cluster.
#[derive(Clone)]
pub struct WorkerConfig {
    /// This worker's index (its position in `members`).
    pub index: u32,
    /// Its p2p identity.
    pub key: PrivateKey,
    /// Where it listens.
    pub listen: SocketAddr,
    /// Every worker, self included, in worker order: public key and address.
    pub members: Vec<(PublicKey, SocketAddr)>,
    /// How long to wait for peers' deltas after sending its own.
    pub round_timeout: Duration,
    /// Where it starts: the cluster's state at the round it joins (`None`: round 0).
    pub start: Option<GlobalState>,
    /// How long it keeps answering peers' requests for its deltas after its last round. An
    /// oracle that settles a round without every worker's report (the chain) lets a worker
    /// finish while a peer still lacks its last delta; lingering lets that peer ask for it
    /// again. Zero when the oracle waits for every report.
    pub linger: Duration,
}

/// What one round did, as this worker saw it.
#[derive(Clone, Debug)]
pub struct RoundRecord {
    /// The round.
    pub round: u64,
    /// Workers whose deltas were applied.
    pub applied: Vec<u32>,
    /// Mean training loss of the applied workers.
    pub loss: Option<f32>,
    /// The weights' hash after the round (equal on every worker).
    pub state_hash: Hash,
    /// Payload bytes this worker sent this round (deltas × recipients).
    pub bytes_sent: u64,
    /// Payload bytes it received.
    pub bytes_received: u64,
    /// Wall time of the round.
    pub secs: f64,
}

/// What a worker's run did.
#[derive(Clone, Debug)]
pub struct WorkerReport {
    /// Each round.
    pub rounds: Vec<RoundRecord>,
    /// Messages refused: (round, peer index or `u32::MAX` if not a member, why).
    pub refused: Vec<(u64, u32, String)>,
    /// The cluster's state at the end.
    pub final_state: GlobalState,
}

impl WorkerReport {
    /// Payload bytes sent over the whole run.
    pub fn bytes_sent(&self) -> u64 {
        self.rounds.iter().map(|r| r.bytes_sent).sum()
    }
}

/// Why a worker stopped.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The configuration cannot work.
    #[error("bad cluster worker config: {0}")]
    Config(String),
    /// The job itself failed (its round diverged, or the outer step could not apply).
    #[error("cluster job failed: {0}")]
    Job(#[from] orrery_ml::MlError),
    /// The round's final set holds deltas this worker never received: it must rejoin from a
    /// later round's state.
    #[error(
        "round {round}'s final set holds deltas this worker lacks (workers {missing:?}); it must rejoin from a later round"
    )]
    OutOfSync {
        /// The round.
        round: u64,
        /// Whose deltas it lacks.
        missing: Vec<u32>,
    },
    /// The p2p network stopped.
    #[error("the cluster network stopped: {0}")]
    Network(String),
    /// The round oracle could not settle a round (see [`RoundOracle::settle`]).
    #[error("round {round} could not be settled: {why}")]
    Oracle {
        /// The round.
        round: u64,
        /// What the oracle said.
        why: String,
    },
}

/// Run worker `cfg.index` of `job` until its last round; `oracle` decides each round's set.
pub async fn run_worker<E, O>(
    context: E,
    cfg: WorkerConfig,
    job: Arc<ClusterJob>,
    oracle: O,
) -> Result<WorkerReport, WorkerError>
where
    E: Spawner + Metrics + Clock + Network + Resolver + rand_core::CryptoRng,
    O: RoundOracle,
{
    let n = job.spec().cluster.workers;
    if cfg.members.len() != n as usize || cfg.index >= n {
        return Err(WorkerError::Config(format!(
            "{} members and index {} for a job of {n} workers",
            cfg.members.len(),
            cfg.index
        )));
    }
    if cfg.members[cfg.index as usize].0 != cfg.key.public_key() {
        return Err(WorkerError::Config(format!(
            "member {} is not this worker's key",
            cfg.index
        )));
    }
    let template = job.spec().job.model.template();
    let mut p2p = lookup::Config::recommended(
        Cups::<_, ChaCha20Poly1305>::new(
            Sake {
                signer: cfg.key.clone(),
                synchrony_bound: Duration::from_secs(5),
                max_handshake_age: Duration::from_secs(10),
                version: sake::Version::V1,
            },
            cups::Version::V1,
        ),
        CLUSTER_NAMESPACE,
        cfg.listen,
        NZUsize!(cfg.members.len()),
        max_message_bytes(&template) as u32,
        NZUsize!(64),
    );
    p2p.allow_private_ips = true;
    p2p.allowed_handshake_rate_per_ip = Quota::per_second(NZU32!(16));
    p2p.peer_connection_cooldown = Duration::from_secs(1);
    p2p.dial_frequency = Duration::from_millis(200);
    let (mut network, mut book) = lookup::Network::new(context.child("p2p"), p2p);
    let peers: Map<_, Address> = cfg
        .members
        .iter()
        .map(|(pk, addr)| (pk.clone(), Address::from(*addr)))
        .collect::<Vec<_>>()
        .try_into()
        .map_err(|_| WorkerError::Config("a member is listed twice".into()))?;
    let _ = book.track(0, peers);
    let (sender, receiver) =
        network.register(CHANNEL_DELTAS, Quota::per_second(NZU32!(CHANNEL_RATE)));
    let _network = network.start();
    let members: Vec<PublicKey> = cfg.members.iter().map(|(pk, _)| pk.clone()).collect();
    let shared = Arc::new(Mutex::new(Shared::default()));
    // The pump reads every message for the whole run — also while this worker computes or
    // waits for the round to settle — so a peer's request for a delta is always answered.
    let _pump = context.child("pump").spawn({
        let (job, members, shared, sender) =
            (job.clone(), members.clone(), shared.clone(), sender.clone());
        let me = cfg.index;
        move |_| pump(receiver, sender, job, members, me, shared)
    });
    let mut link = Link {
        sender,
        members,
        me: cfg.index,
        shared,
    };
    link.connect(&context, cfg.round_timeout).await;
    let mut g = cfg.start.clone().unwrap_or_else(|| job.initial());
    let mut state = job.worker_initial();
    let mut rounds = Vec::new();
    while g.round < job.spec().cluster.rounds as u64 {
        link.shared.lock().unwrap().round = g.round;
        let record = round(&context, &cfg, &job, &oracle, &mut link, &mut g, &mut state).await?;
        tracing::info!(
            worker = cfg.index,
            round = record.round,
            applied = ?record.applied,
            loss = ?record.loss,
            state = %record.state_hash.short(),
            "cluster round done"
        );
        rounds.push(record);
    }
    // Keep the pump (and the network) up for peers still asking for this worker's last delta.
    context.sleep(cfg.linger).await;
    let refused = std::mem::take(&mut link.shared.lock().unwrap().refused);
    Ok(WorkerReport {
        rounds,
        refused,
        final_state: g,
    })
}

/// What the pump and the round loop share.
#[derive(Default)]
struct Shared {
    /// The round the worker is in.
    round: u64,
    /// round → worker → delta, for the current and the next round only.
    buffered: BTreeMap<u64, BTreeMap<u32, Delta>>,
    /// Its own delta messages of this round and the last, to send again when asked.
    mine: BTreeMap<u64, Vec<u8>>,
    /// Messages refused: (round, peer, why).
    refused: Vec<(u64, u32, String)>,
    /// Payload bytes received, all kinds.
    received: u64,
}

/// The sending side of a worker.
struct Link<S> {
    sender: S,
    members: Vec<PublicKey>,
    me: u32,
    shared: Arc<Mutex<Shared>>,
}

/// One round of worker `cfg.index`: compute, send, gather, settle, apply.
async fn round<E, O, S>(
    context: &E,
    cfg: &WorkerConfig,
    job: &Arc<ClusterJob>,
    oracle: &O,
    link: &mut Link<S>,
    g: &mut GlobalState,
    state: &mut WorkerState,
) -> Result<RoundRecord, WorkerError>
where
    E: Spawner + Clock + Metrics,
    O: RoundOracle,
    S: commonware_p2p::Sender<PublicKey = PublicKey>,
{
    let started = Instant::now();
    let r = g.round;
    let start_hash = g.hash();
    let (job2, weights, ws, w) = (job.clone(), g.weights.clone(), state.clone(), cfg.index);
    // The round's compute holds a core for seconds: off the async executor.
    let out = context
        .child("round")
        .dedicated()
        .spawn(move |_| async move { job2.worker_round(r, w, &weights, &ws) })
        .await
        .map_err(|e| WorkerError::Network(format!("the round's compute task stopped: {e}")))??;
    let msg = DeltaMessage {
        round: r,
        worker: w,
        kind: Kind::Delta,
        delta: out.delta.bytes().to_vec(),
    }
    .encode();
    {
        let mut sh = link.shared.lock().unwrap();
        sh.mine.insert(r, msg.clone());
        sh.mine.retain(|&round, _| round + 1 >= r);
        sh.buffered
            .entry(r)
            .or_default()
            .insert(w, out.delta.clone());
    }
    let mut bytes_sent = 0u64;
    let mut unsent = link.others();
    bytes_sent += link.send(&msg, &mut unsent);
    let commit = RoundCommit {
        delta: out.delta.hash(),
        start: start_hash,
        loss: out.mean_loss,
    };
    if let Err(e) = oracle.commit(r, w, commit).await {
        tracing::warn!(worker = w, round = r, error = %e, "commitment refused; the round goes on without this worker's delta");
    }
    // Gather peers' deltas until all are here or the round's time is up; ask a peer whose
    // delta is missing to send it again (a message can be lost while connections settle).
    let deadline = Instant::now() + cfg.round_timeout;
    let received_before = link.shared.lock().unwrap().received;
    let mut asked = Instant::now();
    loop {
        let held = link
            .shared
            .lock()
            .unwrap()
            .buffered
            .get(&r)
            .map_or(0, BTreeMap::len);
        if held == link.members.len() || Instant::now() >= deadline {
            break;
        }
        context.sleep(POLL).await;
        if asked.elapsed() >= ASK_EVERY {
            bytes_sent += link.send(&msg, &mut unsent);
            link.ask_missing(r);
            asked = Instant::now();
        }
    }
    let held: BTreeMap<u32, Hash> = link
        .shared
        .lock()
        .unwrap()
        .buffered
        .get(&r)
        .map(|m| m.iter().map(|(w, d)| (*w, d.hash())).collect())
        .unwrap_or_default();
    let set = oracle
        .settle(context, r, w, held)
        .await
        .map_err(|why| WorkerError::Oracle { round: r, why })?;
    // The set is final. A delta of it that has not arrived yet (an oracle like the chain does
    // not wait for every worker's report) is asked for again until the round's time is up.
    let missing = |mine: &BTreeMap<u32, Delta>| -> Vec<u32> {
        set.iter()
            .filter(|(sw, named)| {
                mine.get(sw)
                    .is_none_or(|d| !oracle.names(r, **sw, &d.hash(), named))
            })
            .map(|(sw, _)| *sw)
            .collect()
    };
    let wait_until = Instant::now() + cfg.round_timeout;
    loop {
        let lacking = {
            let sh = link.shared.lock().unwrap();
            missing(sh.buffered.get(&r).unwrap_or(&BTreeMap::new()))
        };
        if lacking.is_empty() || Instant::now() >= wait_until {
            break;
        }
        context.sleep(POLL).await;
        if asked.elapsed() >= ASK_EVERY {
            link.ask_missing(r);
            asked = Instant::now();
        }
    }
    let (mine, bytes_received) = {
        let mut sh = link.shared.lock().unwrap();
        let mine = sh.buffered.remove(&r).unwrap_or_default();
        (mine, sh.received - received_before)
    };
    let lacking = missing(&mine);
    if !lacking.is_empty() {
        // It never received a delta of the final set: it cannot follow the cluster from here.
        return Err(WorkerError::OutOfSync {
            round: r,
            missing: lacking,
        });
    }
    let deltas: Vec<Delta> = set.keys().filter_map(|sw| mine.get(sw).cloned()).collect();
    if deltas.is_empty() {
        // Nobody's delta made the round: the weights stay, the round is spent.
        g.round += 1;
        g.last_loss = None;
    } else {
        job.outer_step(g, &deltas, &[])?;
    }
    if set.contains_key(&w) {
        *state = out.state;
    }
    tracing::debug!(worker = w, round = r, set = ?members(&set), "round settled");
    Ok(RoundRecord {
        round: r,
        applied: set.keys().copied().collect(),
        loss: (!set.is_empty()).then_some(out.mean_loss),
        state_hash: g.hash(),
        bytes_sent,
        bytes_received,
        secs: started.elapsed().as_secs_f64(),
    })
}

impl<S> Link<S>
where
    S: commonware_p2p::Sender<PublicKey = PublicKey>,
{
    /// Send `msg` to the peers in `unsent`; those it reached leave the list. Returns the
    /// payload bytes sent.
    fn send(&mut self, msg: &[u8], unsent: &mut Vec<PublicKey>) -> u64 {
        send(&mut self.sender, msg, unsent)
    }

    /// Every member but this worker.
    fn others(&self) -> Vec<PublicKey> {
        self.members
            .iter()
            .enumerate()
            .filter(|(i, _)| *i as u32 != self.me)
            .map(|(_, pk)| pk.clone())
            .collect()
    }

    /// Ask every peer whose delta of round `r` is missing to send it again.
    fn ask_missing(&mut self, r: u64) {
        let mut missing: Vec<PublicKey> = {
            let sh = self.shared.lock().unwrap();
            let have = sh.buffered.get(&r);
            self.members
                .iter()
                .enumerate()
                .filter(|(i, _)| have.is_none_or(|m| !m.contains_key(&(*i as u32))))
                .map(|(_, pk)| pk.clone())
                .collect()
        };
        let want = DeltaMessage {
            round: r,
            worker: self.me,
            kind: Kind::Want,
            delta: Vec::new(),
        }
        .encode();
        self.send(&want, &mut missing);
    }

    /// Before the first round: greet every peer until each has been reached once (a message
    /// to a peer that is not connected yet is dropped), or `timeout` passes — then the rounds
    /// start anyway and whoever is missing misses them.
    async fn connect<E: Clock>(&mut self, context: &E, timeout: Duration) {
        let hello = DeltaMessage {
            round: 0,
            worker: self.me,
            kind: Kind::Hello,
            delta: Vec::new(),
        }
        .encode();
        let mut unsent = self.others();
        let deadline = Instant::now() + timeout;
        while !unsent.is_empty() && Instant::now() < deadline {
            self.send(&hello, &mut unsent);
            context.sleep(Duration::from_millis(50)).await;
        }
        if !unsent.is_empty() {
            tracing::warn!(
                worker = self.me,
                missing = unsent.len(),
                "starting without every peer connected"
            );
        }
    }
}

/// Send `msg` to the peers in `unsent`; those it reached leave the list. Returns the payload
/// bytes sent.
fn send<S: commonware_p2p::Sender<PublicKey = PublicKey>>(
    sender: &mut S,
    msg: &[u8],
    unsent: &mut Vec<PublicKey>,
) -> u64 {
    if unsent.is_empty() {
        return 0;
    }
    let reached = sender.send(Recipients::Some(unsent.clone()), msg.to_vec(), false);
    unsent.retain(|pk| !reached.contains(pk));
    msg.len() as u64 * reached.len() as u64
}

/// Read every message until the network stops: keep good deltas for the current or the next
/// round, answer requests for this worker's own deltas, refuse and record everything else.
async fn pump<S, R>(
    mut receiver: R,
    mut sender: S,
    job: Arc<ClusterJob>,
    members: Vec<PublicKey>,
    me: u32,
    shared: Arc<Mutex<Shared>>,
) where
    S: commonware_p2p::Sender<PublicKey = PublicKey>,
    R: commonware_p2p::Receiver<PublicKey = PublicKey>,
{
    while let Ok((peer, bytes)) = receiver.recv().await {
        let bytes = bytes.as_ref().to_vec();
        let mut sh = shared.lock().unwrap();
        sh.received += bytes.len() as u64;
        let r = sh.round;
        let refuse = |sh: &mut Shared, peer: u32, why: String| {
            tracing::warn!(worker = me, round = r, peer, %why, "refused a peer's message");
            sh.refused.push((r, peer, why));
        };
        let Some(index) = members.iter().position(|pk| *pk == peer) else {
            refuse(
                &mut sh,
                u32::MAX,
                format!("a message from {peer}, not a member"),
            );
            continue;
        };
        let index = index as u32;
        let Some(msg) = DeltaMessage::decode(&bytes) else {
            refuse(
                &mut sh,
                index,
                "a message too short to name its round, worker and kind, or of an unknown kind"
                    .into(),
            );
            continue;
        };
        if msg.worker != index {
            refuse(
                &mut sh,
                index,
                format!("it sent a delta in worker {}'s name", msg.worker),
            );
            continue;
        }
        match msg.kind {
            Kind::Hello => continue,
            Kind::Want => {
                // Re-send our delta of that round (if we still hold it) to the asker alone.
                if let Some(mine) = sh.mine.get(&msg.round).cloned() {
                    drop(sh);
                    send(&mut sender, &mine, &mut vec![peer.clone()]);
                }
                continue;
            }
            Kind::Delta => {}
        }
        if msg.round != r && msg.round != r + 1 {
            // A copy that arrives after its round settled is harmless; anything else is not.
            if msg.round + 1 != r {
                refuse(
                    &mut sh,
                    index,
                    format!(
                        "a delta for round {}, the cluster is at round {r}",
                        msg.round
                    ),
                );
            }
            continue;
        }
        match job.decode_delta(&msg.delta, msg.round, index) {
            Ok(d) => {
                let slot = sh.buffered.entry(msg.round).or_default();
                match slot.get(&index) {
                    None => {
                        slot.insert(index, d);
                    }
                    // The same delta again (we asked for it, or crossed a re-send): fine.
                    Some(have) if have.bytes() == d.bytes() => {}
                    Some(_) => refuse(
                        &mut sh,
                        index,
                        format!("a second, different delta for round {}", msg.round),
                    ),
                }
            }
            Err(e) => refuse(&mut sh, index, e.to_string()),
        }
    }
}
