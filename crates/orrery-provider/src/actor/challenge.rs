//! The duty loop's challenge duty: answer the chain's challenges (see
//! [`orrery_types::challenge`] for the computation and [`crate::challenge`] for the solver).
//!
//! | chain says (for this provider)        | the agent does                                      |
//! |---------------------------------------|-----------------------------------------------------|
//! | no open challenge, online             | nothing                                             |
//! | no open challenge, offline            | `RequestChallenge` (at most once per [`REQUEST_EVERY_BLOCKS`]) |
//! | requested, or answered                | waits for the next block                            |
//! | drawn, not solved                     | starts the solver on its own thread (one at a time) |
//! | drawn, solved                         | `AnswerChallenge { drawn_at, rows, root }`          |
//! | opening rows `I`, solved              | recomputes rows `I`, `OpenChallenge` with proofs     |
//! | opening rows `I`, not solved (restart)| solves again, then opens                            |
//!
//! The solver never runs on the duty loop: a challenge sized for the claim takes
//! `challenge_target_ms` of every claimed core, and the loop must keep its other deadlines. It
//! wakes the loop when it ends, and is called off when its challenge closes (missed: a
//! machine slower than its claim stops burning its cores at the deadline) or the agent
//! stops. Only the last solved challenge's tree is kept (32 bytes of leaf a row, and the
//! tree's inner nodes).

use super::{AgentError, Worker};
use crate::chain::{Chain, ChallengeTask, ChallengeTaskPhase};
use crate::challenge::{self, SolveError};
use crate::decide::Head;
use crate::outbox::Subject;
use orrery_types::hash::Hash;
use orrery_types::merkle::MerkleTree;
use orrery_types::tx::TxBody;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::time::Instant;

/// Blocks between two `RequestChallenge`s of an offline provider whose request did not lead
/// to a challenge (refused, or lost): often enough to come back soon, rare enough not to flood
/// the chain.
pub const REQUEST_EVERY_BLOCKS: u64 = 20;

/// What the agent did for challenges, for its snapshot.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct ChallengeSnapshot {
    /// Challenges solved.
    pub solved: u64,
    /// Answers sent.
    pub answered: u64,
    /// Openings sent.
    pub opened: u64,
    /// `RequestChallenge`s sent (the chain had it offline).
    pub requested: u64,
    /// Rows and milliseconds of the last solve.
    pub last_solve: Option<(u64, u64)>,
}

/// A solved challenge: its identity and its tree.
struct Solved {
    drawn_at: u64,
    seed: Hash,
    tree: MerkleTree,
}

/// A solve in progress on its own thread.
struct Solving {
    drawn_at: u64,
    seed: Hash,
    done: Receiver<Result<(MerkleTree, u64), SolveError>>,
    cancel: Arc<AtomicBool>,
}

/// The challenge part of the duty loop's state.
pub(super) struct ChallengeDuty {
    threads: usize,
    /// The self-checked GPU backend, when the agent has one: it solves beside the threads.
    pub(super) gpu: Option<orrery_ml::Device>,
    solving: Option<Solving>,
    solved: Option<Solved>,
    last_request: Option<u64>,
    waker: Option<crate::runs::Waker>,
    pub(super) stats: ChallengeSnapshot,
}

impl ChallengeDuty {
    /// A duty solving on `threads` threads (the cores the provider claims, at most the
    /// machine's).
    pub(super) fn new(threads: usize) -> ChallengeDuty {
        ChallengeDuty {
            threads: threads.max(1),
            gpu: None,
            solving: None,
            solved: None,
            last_request: None,
            waker: None,
            stats: ChallengeSnapshot::default(),
        }
    }

    pub(super) fn set_waker(&mut self, waker: crate::runs::Waker) {
        self.waker = Some(waker);
    }

    fn is_solved(&self, task: &ChallengeTask) -> bool {
        self.solved
            .as_ref()
            .is_some_and(|s| s.drawn_at == task.drawn_at && s.seed == task.seed)
    }

    /// Take in a finished solve, if any.
    fn collect(&mut self) -> Result<(), AgentError> {
        let Some(s) = &self.solving else {
            return Ok(());
        };
        let result = match s.done.try_recv() {
            Ok(r) => r,
            Err(TryRecvError::Empty) => return Ok(()),
            Err(TryRecvError::Disconnected) => Err(SolveError::Panicked),
        };
        let Some(s) = self.solving.take() else {
            return Ok(());
        };
        let (tree, ms) =
            result.map_err(|e| AgentError::Challenge(format!("drawn at {}: {e}", s.drawn_at)))?;
        let rows = tree.len();
        tracing::info!(drawn_at = s.drawn_at, rows, ms, root = %tree.root(), "challenge solved");
        self.stats.solved += 1;
        self.stats.last_solve = Some((rows, ms));
        self.solved = Some(Solved {
            drawn_at: s.drawn_at,
            seed: s.seed,
            tree,
        });
        Ok(())
    }

    /// Start solving `task` on its own thread, unless it is being solved.
    fn start(&mut self, task: &ChallengeTask) {
        if self
            .solving
            .as_ref()
            .is_some_and(|s| s.drawn_at == task.drawn_at && s.seed == task.seed)
        {
            return;
        }
        self.call_off();
        let (tx, rx) = mpsc::channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let stop = cancel.clone();
        let (seed, dim, rows, threads) = (task.seed, task.dim as usize, task.rows, self.threads);
        let gpu = self.gpu.clone();
        let waker = self.waker.clone();
        tracing::info!(
            drawn_at = task.drawn_at,
            rows,
            dim,
            threads,
            gpu = gpu.as_ref().map(|d| d.name()),
            flop = orrery_types::challenge::challenge_flops(rows, dim as u64),
            "challenge drawn; solving"
        );
        // Not joined: a solve ends by itself in about `challenge_target_ms`, and an agent that
        // stops mid-solve has no use for the answer.
        std::thread::spawn(move || {
            let start = Instant::now();
            let r = challenge::solve_until(&seed, dim, rows, threads, gpu.as_ref(), &stop)
                .map(|t| (t, start.elapsed().as_millis() as u64));
            let _ = tx.send(r);
            if let Some(w) = waker {
                w();
            }
        });
        self.solving = Some(Solving {
            drawn_at: task.drawn_at,
            seed: task.seed,
            done: rx,
            cancel,
        });
    }

    /// Stop the solve in progress, if any (its challenge closed, or the agent stops).
    pub(super) fn call_off(&mut self) {
        if let Some(s) = self.solving.take() {
            s.cancel.store(true, Ordering::Relaxed);
            tracing::info!(drawn_at = s.drawn_at, "challenge solve called off");
        }
    }

    /// Call off a solve whose challenge is not `open` any more.
    fn keep_only(&mut self, open: Option<&ChallengeTask>) {
        let stale = self
            .solving
            .as_ref()
            .is_some_and(|s| open.is_none_or(|t| t.drawn_at != s.drawn_at || t.seed != s.seed));
        if stale {
            self.call_off();
        }
    }
}

impl<C: Chain> Worker<C> {
    /// Answer, open or ask for a challenge as the chain's record of this provider says.
    pub(super) fn challenge_duties(
        &mut self,
        head: Head,
        registered: bool,
    ) -> Result<(), AgentError> {
        self.challenge.collect()?;
        if !registered {
            return Ok(());
        }
        let Some(status) = self.chain.challenges(&self.me)? else {
            return Ok(());
        };
        self.challenge.keep_only(status.open.as_ref());
        let Some(task) = status.open else {
            if !status.online {
                self.request_challenge(head)?;
            }
            return Ok(());
        };
        match &task.phase {
            ChallengeTaskPhase::Requested | ChallengeTaskPhase::Answered => Ok(()),
            _ if !self.challenge.is_solved(&task) => {
                self.challenge.start(&task);
                Ok(())
            }
            ChallengeTaskPhase::Drawn => {
                let Some(solved) = &self.challenge.solved else {
                    return Ok(());
                };
                let body = TxBody::AnswerChallenge {
                    drawn_at: task.drawn_at,
                    rows: task.rows,
                    root: solved.tree.root(),
                };
                if self.send_for(body, (Subject::Challenge(task.drawn_at), 0), head)? {
                    self.challenge.stats.answered += 1;
                }
                Ok(())
            }
            ChallengeTaskPhase::Opening { rows } => {
                let Some(solved) = &self.challenge.solved else {
                    return Ok(());
                };
                let opened = challenge::open(&task.seed, task.dim as usize, &solved.tree, rows)
                    .map_err(|e| {
                        AgentError::Challenge(format!("opening {}: {e}", task.drawn_at))
                    })?;
                let body = TxBody::OpenChallenge {
                    drawn_at: task.drawn_at,
                    rows: opened,
                };
                if self.send_for(body, (Subject::Challenge(task.drawn_at), 1), head)? {
                    self.challenge.stats.opened += 1;
                    tracing::info!(
                        drawn_at = task.drawn_at,
                        rows = rows.len(),
                        "challenge opened"
                    );
                }
                Ok(())
            }
        }
    }

    /// `RequestChallenge`, at most once per [`REQUEST_EVERY_BLOCKS`].
    fn request_challenge(&mut self, head: Head) -> Result<(), AgentError> {
        if self
            .challenge
            .last_request
            .is_some_and(|h| head.height < h.saturating_add(REQUEST_EVERY_BLOCKS))
        {
            return Ok(());
        }
        let stage = head.height / REQUEST_EVERY_BLOCKS;
        if self.send_for(TxBody::RequestChallenge {}, (Subject::Account, stage), head)? {
            self.challenge.last_request = Some(head.height);
            self.challenge.stats.requested += 1;
            tracing::info!(
                height = head.height,
                "offline on chain: asked for a challenge to come back"
            );
        }
        Ok(())
    }
}
