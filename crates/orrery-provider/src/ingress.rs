//! The agent's mailbox: how the CLI or the devnet talks to a running agent.
//!
//! [`AgentHandle`] is returned by [`crate::Agent::start`]. Stopping is two-step: the shared stop
//! flag is seen by the loop at its next tick, and the `Stop` message wakes it at once; the loop
//! then cancels its worker threads' runs (each saves a snapshot at its next step) and joins
//! them. Worker threads send `Wake` when they end a task, so the loop acts on a finished run
//! without waiting for its next poll.

use crate::actor::AgentSnapshot;
use orrery_types::crypto::AccountId;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

/// Messages the mailbox holds at most (the loop drains it every poll; more would mean nobody
/// reads the replies).
pub const MAILBOX_CAPACITY: usize = 16;

/// How long [`AgentHandle::snapshot`] waits for the loop (it may be inside a job step).
pub const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(30);

/// A request to the agent's loop.
#[derive(Debug)]
pub enum Message {
    /// Finish the current step, save, and exit.
    Stop,
    /// Report what the agent is doing.
    Snapshot(SyncSender<AgentSnapshot>),
    /// A worker thread ended a task: tick now rather than at the next poll.
    Wake,
}

/// The sending side of the mailbox plus the stop flag.
#[derive(Clone, Debug)]
pub struct Mailbox {
    sender: SyncSender<Message>,
    stop: Arc<AtomicBool>,
}

impl Mailbox {
    /// Wake the loop (a worker thread ended a task). A full mailbox is drained every poll, so
    /// a wake that does not fit is not needed.
    pub fn wake(&self) {
        let _ = self.sender.try_send(Message::Wake);
    }
}

/// Make a mailbox: the loop keeps the receiver and the flag.
pub fn mailbox() -> (Mailbox, Receiver<Message>, Arc<AtomicBool>) {
    let (sender, receiver) = sync_channel(MAILBOX_CAPACITY);
    let stop = Arc::new(AtomicBool::new(false));
    (
        Mailbox {
            sender,
            stop: stop.clone(),
        },
        receiver,
        stop,
    )
}

/// A running agent.
#[derive(Debug)]
pub struct AgentHandle {
    pub(crate) account: AccountId,
    pub(crate) mailbox: Mailbox,
    pub(crate) thread: Option<JoinHandle<()>>,
}

impl AgentHandle {
    /// The provider account the agent acts for.
    pub fn account(&self) -> AccountId {
        self.account
    }

    /// What the agent is doing, or `None` if it has stopped or does not answer in time.
    pub fn snapshot(&self) -> Option<AgentSnapshot> {
        let (tx, rx) = sync_channel(1);
        self.mailbox.sender.try_send(Message::Snapshot(tx)).ok()?;
        rx.recv_timeout(SNAPSHOT_TIMEOUT).ok()
    }

    /// Whether the agent's thread has exited.
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Stop gracefully: the current job step finishes, progress is saved, the thread exits.
    /// Returns `false` if the agent's thread had panicked.
    pub fn stop(mut self) -> bool {
        self.signal_stop();
        self.thread.take().is_none_or(|t| t.join().is_ok())
    }

    fn signal_stop(&self) {
        self.mailbox.stop.store(true, Ordering::SeqCst);
        match self.mailbox.sender.try_send(Message::Stop) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            // A full mailbox is drained every poll; the flag alone stops the loop.
            Err(TrySendError::Full(_)) => {}
        }
    }
}

impl Drop for AgentHandle {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.signal_stop();
            let _ = t.join();
        }
    }
}
