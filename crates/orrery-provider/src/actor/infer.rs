//! The duty loop's inference duties (the rules are in [`crate::inference`]).

use super::{AgentError, Worker};
use crate::chain::{Chain, InferenceCheck};
use crate::decide::Head;
use crate::inference::{CheckAction, CheckKey, CheckResult, CheckRuns, decide_check};
use crate::outbox::Subject;
use crate::serve::{ServeStats, Serving};
use orrery_types::amount::Amount;
use orrery_types::codec::BoundedVec;
use orrery_types::crypto::AccountId;
use orrery_types::hash::Hash;
use orrery_types::inference::ModelOffer;
use orrery_types::tx::TxBody;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// What the agent has done for inference, for its snapshot and `orrery provider status`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct InferenceSnapshot {
    /// Models served, by name.
    pub models: Vec<String>,
    /// The serving lane's counters (requests, tokens, vouchers).
    pub serve: ServeStats,
    /// Responses served and waiting for their voucher.
    pub unpaid: usize,
    /// Paid responses waiting to be settled.
    pub pending_responses: usize,
    /// Settlements sent.
    pub batches_settled: u64,
    /// Responses those settlements cover.
    pub responses_settled: u64,
    /// What those settlements claim (the vouchers' increases): the provider's inference
    /// earnings once their checks end.
    pub settled_amount: Amount,
    /// Batches kept for openings.
    pub batches_kept: usize,
    /// Checks sealed as checker.
    pub checks_sealed: u64,
    /// Checks revealed as checker.
    pub checks_revealed: u64,
    /// Commitments opened as provider.
    pub responses_opened: u64,
    /// Re-executions running.
    pub checks_running: usize,
}

/// The inference part of the duty loop's state.
pub(super) struct InferDuties {
    /// The offer last sent (on a chain that cannot say what it holds).
    offered: Option<Vec<ModelOffer>>,
    /// Height at which each channel was first seen with pending responses.
    first_pending: BTreeMap<(AccountId, u64), u64>,
    /// Settled total per channel (what the last settlement's voucher said).
    settled_total: BTreeMap<(AccountId, u64), Amount>,
    checks: CheckRuns,
    results: BTreeMap<CheckKey, CheckResult>,
    warned_unserved: BTreeSet<Hash>,
    stats: InferenceSnapshot,
}

impl InferDuties {
    pub(super) fn new(max_checks: usize, threads: usize) -> InferDuties {
        InferDuties {
            offered: None,
            first_pending: BTreeMap::new(),
            settled_total: BTreeMap::new(),
            checks: CheckRuns::new(max_checks, threads),
            results: BTreeMap::new(),
            warned_unserved: BTreeSet::new(),
            stats: InferenceSnapshot::default(),
        }
    }

    pub(super) fn set_waker(&mut self, waker: crate::runs::Waker) {
        self.checks.set_waker(waker);
    }

    pub(super) fn join(&mut self) {
        self.checks.join_all();
    }
}

fn check_stage(c: &InferenceCheck) -> u64 {
    (c.index << 8) | u64::from(c.round.min(255))
}

impl<C: Chain> Worker<C> {
    /// Serve inference with `serving` (its HTTP server, if any, stops with the worker).
    pub fn serve(&mut self, serving: Arc<Serving>, server: Option<crate::serve::ServerHandle>) {
        self.serving = Some(serving);
        self.server = server;
    }

    /// Wait until no re-execution runs (or `timeout` passed), keeping their results for the
    /// next tick. For tests and simulations that want each block to see every check computed.
    pub fn wait_for_checks(&mut self, timeout: std::time::Duration) -> bool {
        let until = std::time::Instant::now() + timeout;
        while !self.infer.checks.is_empty() && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(5));
            for (key, result) in self.infer.checks.collect() {
                self.infer.results.insert(key, result);
            }
        }
        self.infer.checks.is_empty()
    }

    /// The inference counters, if serving.
    pub(super) fn inference_snapshot(&self) -> Option<InferenceSnapshot> {
        let serving = self.serving.as_ref()?;
        let mut s = self.infer.stats.clone();
        s.models = serving
            .offers()
            .iter()
            .map(|o| o.name.as_str().to_string())
            .collect();
        s.serve = serving.stats();
        let book = serving.book();
        s.unpaid = book.unpaid_len();
        s.pending_responses = book.pending().iter().map(|(_, n)| n).sum();
        s.batches_kept = book.batches().len();
        s.checks_running = self.infer.checks.len();
        Some(s)
    }

    /// Offer, settle and check (see [`crate::inference`]). Failures are logged per duty; the
    /// first is returned.
    pub(super) fn inference_duties(
        &mut self,
        head: Head,
        registered: bool,
    ) -> Result<(), AgentError> {
        let Some(serving) = self.serving.clone() else {
            return Ok(());
        };
        if let Some(id) = &self.chain_id {
            serving.set_chain_id(id.clone());
        }
        if !registered {
            return Ok(());
        }
        let mut first = None;
        for duty in [Self::offer_models, Self::settle, Self::act_on_checks] {
            if let Err(e) = duty(self, &serving, head) {
                tracing::warn!(error = %e, "inference duty failed");
                first.get_or_insert(e);
            }
        }
        if let Some(report) = self.inference_snapshot() {
            serving.publish(report);
        }
        first.map_or(Ok(()), Err)
    }

    fn offer_models(&mut self, serving: &Arc<Serving>, head: Head) -> Result<(), AgentError> {
        let wanted = serving.offers();
        let differs = match self.chain.model_offers(&self.me)? {
            Some(on_chain) => on_chain != wanted,
            None => self.infer.offered.as_ref() != Some(&wanted),
        };
        if !differs {
            return Ok(());
        }
        let models = BoundedVec::new(wanted.clone())
            .map_err(|_| AgentError::Inference("more models than a provider may offer".into()))?;
        if self.send_for(TxBody::OfferModels { models }, (Subject::Account, 0), head)? {
            tracing::info!(models = wanted.len(), "offered models");
            self.infer.offered = Some(wanted);
        }
        Ok(())
    }

    /// Cut due channels into batches, publish their files and send their settlements.
    fn settle(&mut self, serving: &Arc<Serving>, head: Head) -> Result<(), AgentError> {
        let pending = serving.book().pending();
        let waiting: BTreeSet<_> = pending.iter().map(|(id, _)| *id).collect();
        self.infer
            .first_pending
            .retain(|id, _| waiting.contains(id));
        let max = usize::try_from(serving.max_batch()).unwrap_or(usize::MAX);
        for (id, n) in pending {
            let since = *self.infer.first_pending.entry(id).or_insert(head.height);
            if n >= max || head.height >= since + serving.settle_every_blocks() {
                if let Some(hash) = serving.book().cut(&id.0, id.1, max)? {
                    tracing::info!(batch_file = %hash, key = %id.0, channel = id.1, "batch cut");
                }
                // What the cut left waits from now (dropped next tick if nothing is left).
                self.infer.first_pending.insert(id, head.height);
            }
        }
        let unsent: Vec<(Hash, crate::serve::book::Batch)> = serving
            .book()
            .batches()
            .iter()
            .filter(|(_, b)| b.sent_at.is_none())
            .map(|(h, b)| (*h, b.clone()))
            .collect();
        for (hash, batch) in unsent {
            if !batch.uploaded {
                if let Err(e) = self.chain.put_output(&batch.file_bytes()) {
                    tracing::warn!(batch_file = %hash, error = %e, "cannot publish the batch file; retrying next tick");
                    continue;
                }
                serving.book().mark_uploaded(&hash)?;
            }
            let body = TxBody::SettleInference {
                voucher: batch.voucher.clone(),
                model: batch.file.model,
                root: batch.root(),
                batch: hash,
            };
            if self.send_for(body, (Subject::Settlement(hash), 0), head)? {
                serving.book().mark_sent(&hash, head.height)?;
                self.count_settlement(&batch);
            }
        }
        for gone in serving.book().forget_old(head.height) {
            self.outbox.forget(Subject::Settlement(gone));
        }
        Ok(())
    }

    fn count_settlement(&mut self, batch: &crate::serve::book::Batch) {
        let v = &batch.voucher.voucher;
        let id = (v.key_id(), v.channel);
        let before = self
            .infer
            .settled_total
            .get(&id)
            .copied()
            .unwrap_or(Amount::ZERO);
        let s = &mut self.infer.stats;
        s.batches_settled += 1;
        s.responses_settled += batch.commitments.len() as u64;
        let claimed = v.total.checked_sub(before).unwrap_or(Amount::ZERO);
        s.settled_amount = s
            .settled_amount
            .checked_add(claimed)
            .unwrap_or(s.settled_amount);
        self.infer.settled_total.insert(id, v.total);
    }

    /// Seal, reveal and open what the chain's open checks ask of this account.
    fn act_on_checks(&mut self, serving: &Arc<Serving>, head: Head) -> Result<(), AgentError> {
        for (key, result) in self.infer.checks.collect() {
            self.infer.results.insert(key, result);
        }
        let checks = self.chain.inference_checks(&self.me)?;
        let open: BTreeSet<CheckKey> = checks.iter().map(|c| (c.batch, c.index)).collect();
        let mut first = None;
        for check in &checks {
            if let Err(e) = self.act_on_check(serving, check, head) {
                tracing::warn!(batch = check.batch, index = check.index, error = %e, "could not act on an inference check");
                first.get_or_insert(e);
            }
        }
        self.infer.results.retain(|k, _| open.contains(k));
        first.map_or(Ok(()), Err)
    }

    fn act_on_check(
        &mut self,
        serving: &Arc<Serving>,
        check: &InferenceCheck,
        head: Head,
    ) -> Result<(), AgentError> {
        let key = (check.batch, check.index);
        let result = self.infer.results.get(&key);
        let (batch, index) = key;
        let to = (Subject::InferenceBatch(batch), check_stage(check));
        match decide_check(&self.me, check, result, self.act_as_verifier, head) {
            CheckAction::Wait => Ok(()),
            CheckAction::Execute => self.start_check(serving, check),
            CheckAction::Seal(seal) => {
                let body = TxBody::SealInferenceCheck { batch, index, seal };
                if self.send_for(body, to, head)? {
                    self.infer.stats.checks_sealed += 1;
                }
                Ok(())
            }
            CheckAction::Reveal(r) => {
                let body = TxBody::RevealInferenceCheck {
                    batch,
                    index,
                    request: r.request,
                    output: r.output,
                };
                if self.send_for(body, to, head)? {
                    self.infer.stats.checks_revealed += 1;
                }
                Ok(())
            }
            CheckAction::Open => {
                let opening = serving
                    .book()
                    .batches()
                    .get(&check.batch_file)
                    .and_then(|b| b.opening(index));
                let Some((commitment, proof)) = opening else {
                    return Err(AgentError::Inference(format!(
                        "batch {batch} response {index}: no kept batch file {} holds it; cannot open the commitment",
                        check.batch_file
                    )));
                };
                let body = TxBody::OpenInferenceResponse {
                    batch,
                    index,
                    commitment,
                    proof,
                };
                if self.send_for(body, to, head)? {
                    self.infer.stats.responses_opened += 1;
                }
                Ok(())
            }
        }
    }

    /// Fetch the batch file (on this loop, like a bundle) and re-execute on a worker thread.
    fn start_check(
        &mut self,
        serving: &Arc<Serving>,
        check: &InferenceCheck,
    ) -> Result<(), AgentError> {
        let key = (check.batch, check.index);
        if self.stopping() || self.infer.checks.busy(key) || !self.infer.checks.has_room() {
            return Ok(());
        }
        let Some(model) = serving.model(&check.model) else {
            if self.infer.warned_unserved.insert(check.model) {
                tracing::warn!(model = %check.model, batch = check.batch, "drawn to check a model this agent does not serve; cannot check");
            }
            return Ok(());
        };
        let file = self.chain.bundle(&check.batch_file)?;
        if self
            .infer
            .checks
            .start(key, model, file, check.batch_file)?
        {
            tracing::info!(
                batch = check.batch,
                index = check.index,
                "re-executing a drawn response"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
