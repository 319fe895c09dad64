//! The duty loop's inference duties: offer the served models, settle paid responses, and act
//! in response checks, as checker or as the checked provider.
//!
//! # Duties, each tick (once registered)
//!
//! | duty | when | transaction |
//! |---|---|---|
//! | offer | the served set differs from the chain's (or, on a node that cannot say, once per run) | `OfferModels` |
//! | cut | a channel has `max_batch` paid responses, or has had some for `settle_every_blocks` | — (the batch file is written) |
//! | publish | a cut batch's file is not on the node yet | blob upload |
//! | settle | a published batch's settlement was never sent | `SettleInference{voucher of its last response, model, root, batch}` |
//!
//! A settlement is signed **once**: the outbox resubmits its bytes while it waits, and a
//! refusal is logged with the ledger's reason; signing it again would pay nothing new.
//!
//! # Checks ([`decide_check`], a pure table)
//!
//! | role | phase | state | action |
//! |---|---|---|---|
//! | checker | seal | not sealed, no result | re-execute (worker thread) |
//! | checker | seal | not sealed, result | `SealInferenceCheck{check_seal(batch, index, me, request, output)}` |
//! | checker | reveal | sealed, not revealed, no result | re-execute (after a restart: it is deterministic) |
//! | checker | reveal | sealed, not revealed, result | `RevealInferenceCheck{request, output}` |
//! | provider | reveal | not opened | `OpenInferenceResponse{commitment, proof}` from the kept batch |
//! | any | past the reveal deadline, or done | — | wait |
//!
//! A **re-execution** ([`reexecute`]) fetches the batch file (on the duty loop, like a job's
//! bundle), then on a worker thread checks its hash, takes entry `index`, hashes its request
//! text (`request_hash`), runs the request on the served model with the provider's engine and
//! takes the `output_digest`. A file that is unavailable or does not hash to the batch's,
//! an entry that is missing or unparsable, or a request the model refuses gives **zeros** for
//! both the request and the output: the documented meaning is "the data was unavailable".
//! A checker that does not serve the batch's model cannot check and does not act.

use crate::chain::{CheckPhase, CheckRole, InferenceCheck};
use crate::decide::Head;
use crate::serve::ServedModel;
use orrery_types::crypto::AccountId;
use orrery_types::hash::Hash;
use orrery_types::inference::{BatchFile, InferenceRequest, check_seal, request_hash};
use orrery_types::tx::BatchId;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

/// Largest batch file a checker reads: a full batch of `MAX_BATCH_RESPONSES` requests at
/// `MAX_REQUEST_BYTES` each would be 256 MiB, but the node's blob limit is far lower.
pub const MAX_BATCH_FILE_BYTES: usize = 256 << 20;

/// What a checker seals and reveals for one response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckResult {
    /// `request_hash` of the entry's request text (zero: data unavailable).
    pub request: Hash,
    /// `output_digest` of the re-execution (zero: data unavailable).
    pub output: Hash,
}

impl CheckResult {
    /// The result that says "the batch file or entry was unavailable".
    pub const UNAVAILABLE: CheckResult = CheckResult {
        request: Hash::ZERO,
        output: Hash::ZERO,
    };
}

/// What to do for one check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckAction {
    /// Nothing now.
    Wait,
    /// Re-execute the response (on a worker thread).
    Execute,
    /// Seal the result.
    Seal(Hash),
    /// Reveal the result.
    Reveal(CheckResult),
    /// Open our commitment (we are the batch's provider).
    Open,
}

/// The table in the module docs.
pub fn decide_check(
    me: &AccountId,
    check: &InferenceCheck,
    result: Option<&CheckResult>,
    act_as_checker: bool,
    head: Head,
) -> CheckAction {
    if head.height > check.reveal_deadline {
        return CheckAction::Wait;
    }
    match (check.role, check.phase) {
        (CheckRole::Checker, _) if !act_as_checker => CheckAction::Wait,
        (CheckRole::Checker, CheckPhase::Seal) if !check.sealed => match result {
            Some(r) => CheckAction::Seal(check_seal(
                check.batch,
                check.index,
                me,
                &r.request,
                &r.output,
            )),
            None => CheckAction::Execute,
        },
        (CheckRole::Checker, CheckPhase::Reveal) if check.sealed && !check.revealed => match result
        {
            Some(r) => CheckAction::Reveal(*r),
            None => CheckAction::Execute,
        },
        (CheckRole::Provider, CheckPhase::Reveal) if !check.opened => CheckAction::Open,
        _ => CheckAction::Wait,
    }
}

/// Re-execute entry `index` of the batch file `file` (as fetched; `None` if the node has
/// none) on `model`. See the module docs for when the result is
/// [`CheckResult::UNAVAILABLE`].
pub fn reexecute(
    file: Option<&[u8]>,
    file_hash: &Hash,
    index: u64,
    model: &ServedModel,
    threads: usize,
) -> CheckResult {
    let unavailable = |why: &str| {
        tracing::warn!(
            batch_file = %file_hash,
            index,
            why,
            "revealing zeros: the response's data is unavailable"
        );
        CheckResult::UNAVAILABLE
    };
    let Some(bytes) = file else {
        return unavailable("the node has no batch file");
    };
    if bytes.len() > MAX_BATCH_FILE_BYTES || Hash::of(bytes) != *file_hash {
        return unavailable("the batch file does not hash to the settled one");
    }
    let Ok(batch) = serde_json::from_slice::<BatchFile>(bytes) else {
        return unavailable("the batch file is not a batch file");
    };
    if batch.model != model.weights() {
        return unavailable("the batch file names another model");
    }
    let Some(entry) = usize::try_from(index)
        .ok()
        .and_then(|i| batch.entries.get(i))
    else {
        return unavailable("the batch file has no such entry");
    };
    let Ok(request) = serde_json::from_str::<InferenceRequest>(&entry.request) else {
        return unavailable("the entry's request does not parse");
    };
    match model.compute(&request.task, threads) {
        Ok(computed) => CheckResult {
            request: request_hash(entry.request.as_bytes()),
            output: computed.digest(),
        },
        Err(e) => {
            tracing::warn!(error = %e, "the drawn request does not run on the model");
            unavailable("the model refuses the request")
        }
    }
}

/// Which check a re-execution is for.
pub type CheckKey = (BatchId, u64);

/// The checker's worker threads: re-executions, bounded, one per check.
pub struct CheckRuns {
    limit: usize,
    threads: usize,
    tasks: BTreeMap<CheckKey, JoinHandle<()>>,
    sender: Sender<(CheckKey, CheckResult)>,
    reports: Receiver<(CheckKey, CheckResult)>,
    waker: Option<crate::runs::Waker>,
}

impl CheckRuns {
    /// At most `limit` re-executions at once, each on `threads` threads.
    pub fn new(limit: usize, threads: usize) -> CheckRuns {
        let (sender, reports) = channel();
        CheckRuns {
            limit: limit.max(1),
            threads: threads.max(1),
            tasks: BTreeMap::new(),
            sender,
            reports,
            waker: None,
        }
    }

    /// Call `waker` when a re-execution ends.
    pub fn set_waker(&mut self, waker: crate::runs::Waker) {
        self.waker = Some(waker);
    }

    /// Whether `key` is being re-executed.
    pub fn busy(&self, key: CheckKey) -> bool {
        self.tasks.contains_key(&key)
    }

    /// Whether another re-execution may start.
    pub fn has_room(&self) -> bool {
        self.tasks.len() < self.limit
    }

    /// Re-executions running.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether none runs.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Start re-executing `key` (see [`reexecute`]). `false` when busy or full.
    pub fn start(
        &mut self,
        key: CheckKey,
        model: Arc<ServedModel>,
        file: Option<Vec<u8>>,
        file_hash: Hash,
    ) -> std::io::Result<bool> {
        if self.busy(key) || !self.has_room() {
            return Ok(false);
        }
        let (sender, waker, threads) = (self.sender.clone(), self.waker.clone(), self.threads);
        let thread = std::thread::Builder::new()
            .name(format!("orrery-check-{}-{}", key.0, key.1))
            .spawn(move || {
                let run = || reexecute(file.as_deref(), &file_hash, key.1, &model, threads);
                // A panic in the engine is a host fault: no result; tried again next tick.
                if let Ok(result) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
                    let _ = sender.send((key, result));
                }
                if let Some(wake) = waker {
                    wake();
                }
            })?;
        self.tasks.insert(key, thread);
        Ok(true)
    }

    /// Results of re-executions that ended (their threads joined).
    pub fn collect(&mut self) -> Vec<(CheckKey, CheckResult)> {
        let out: Vec<_> = self.reports.try_iter().collect();
        let ended: Vec<CheckKey> = self
            .tasks
            .iter()
            .filter(|(_, t)| t.is_finished())
            .map(|(k, _)| *k)
            .collect();
        for k in ended {
            if let Some(t) = self.tasks.remove(&k) {
                let _ = t.join();
            }
        }
        out.into_iter().chain(self.reports.try_iter()).collect()
    }

    /// Wait for every re-execution to end (stopping, tests).
    pub fn join_all(&mut self) -> Vec<(CheckKey, CheckResult)> {
        for (_, t) in std::mem::take(&mut self.tasks) {
            let _ = t.join();
        }
        self.reports.try_iter().collect()
    }
}

#[cfg(test)]
mod tests;
