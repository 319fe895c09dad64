//! The duty loop's cluster duties (see [`crate::cluster`]): send what the workers committed,
//! read the rounds they wait on, start workers for new leases, stop those whose lease ended.

use super::{AgentError, Worker};
use crate::chain::{Chain, ChainError};
use crate::cluster::{ClusterError, check_spec, cluster_spec, peer_address, worker_config};
use crate::decide::Head;
use crate::outbox::Subject;
use orrery_client::api::ClusterLeaseView;
use orrery_exec::Bundle;
use std::collections::BTreeSet;

impl<C: Chain> Worker<C> {
    /// One tick's cluster duties. Never waits for a worker.
    pub(super) fn cluster_duties(
        &mut self,
        head: Head,
        registered: bool,
    ) -> Result<(), AgentError> {
        for (lease, outcome) in self.cluster.reap() {
            self.snapshot.cluster.insert(lease, outcome);
        }
        if self.cluster_config.is_none() || !registered {
            return Ok(());
        }
        let mut first_error = None;
        for (lease, round, commit, body) in self.cluster.outgoing() {
            // One commitment per (lease, round): the outbox never signs it twice.
            if let Err(e) = self.send_for(body, (Subject::Lease(lease), u64::from(round)), head) {
                tracing::warn!(lease, round, error = %e, "could not send a cluster commitment; trying again next tick");
                self.cluster.requeue(lease, round, commit);
                first_error.get_or_insert(e);
            }
        }
        for (lease, round) in self.cluster.waited() {
            match self.chain.cluster_round(lease, round) {
                Ok(view) => self.cluster.heard(lease, round, view.as_ref()),
                Err(e) => tracing::debug!(lease, round, error = %e, "cannot read a cluster round"),
            }
        }
        let leases = self.chain.member_cluster_leases(&self.me)?;
        let mut live = BTreeSet::new();
        for lease in &leases {
            let Some(me) = lease.members.iter().find(|m| m.provider == self.me) else {
                continue;
            };
            if me.status != "live" {
                self.cluster
                    .stop(lease.id, "this member was dropped from the lease");
                continue;
            }
            live.insert(lease.id);
            if self.cluster.knows(lease.id) || self.stopping() {
                continue;
            }
            if lease.round > 0 {
                let why = format!(
                    "the lease is at round {} and a worker joins only at round 0 (it holds no earlier state)",
                    lease.round
                );
                self.refuse_cluster(lease.id, why);
                continue;
            }
            if !self.cluster.leases().is_empty() {
                // One worker at a time: it holds the one cluster port. The next lease's round 0
                // waits for this member until its deadline.
                tracing::debug!(
                    lease = lease.id,
                    "a cluster worker is running; this lease waits for it"
                );
                continue;
            }
            match self.start_cluster_worker(lease) {
                Ok(()) => {}
                // The node may answer next tick; round 0 waits for this member until its
                // deadline.
                Err(e @ (AgentError::Chain(_) | AgentError::Io(_))) => {
                    tracing::warn!(lease = lease.id, error = %e, "cannot start the cluster worker yet; trying again next tick");
                }
                Err(e) => self.refuse_cluster(lease.id, e.to_string()),
            }
        }
        for id in self.cluster.leases() {
            if !live.contains(&id) {
                self.cluster.lease_over(id);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn refuse_cluster(&mut self, lease: u64, why: String) {
        tracing::warn!(lease, reason = %why, "cluster lease refused");
        self.snapshot.leases_refused += 1;
        self.cluster.refused.insert(lease, why);
    }

    /// Fetch and check the job, find every member, and start this agent's worker.
    fn start_cluster_worker(&mut self, lease: &ClusterLeaseView) -> Result<(), AgentError> {
        let Some(cfg) = self.cluster_config.clone() else {
            return Ok(());
        };
        let bad = |e: ClusterError| AgentError::Bundle {
            lease: lease.id,
            reason: e.to_string(),
        };
        let index = lease
            .members
            .iter()
            .position(|m| m.provider == self.me)
            .ok_or_else(|| bad(ClusterError::Mismatch("this agent is not a member".into())))?;
        // A node that lacks the bundle may still be fetching it from its peers: retried.
        let bytes = self.chain.bundle(&lease.job)?.ok_or_else(|| {
            ChainError::Unavailable(format!("the node has no bundle {} yet", lease.job))
        })?;
        let bundle =
            Bundle::decode(&bytes).map_err(|e| bad(ClusterError::Bundle(e.to_string())))?;
        if bundle.hash() != lease.job {
            return Err(bad(ClusterError::Bundle(format!(
                "it hashes to {}, the lease names {}",
                bundle.hash(),
                lease.job
            ))));
        }
        let spec = cluster_spec(&bundle).map_err(bad)?;
        check_spec(&spec, lease).map_err(bad)?;
        let mut peers = Vec::with_capacity(lease.members.len());
        for m in &lease.members {
            let record = self.chain.provider(&m.provider)?.ok_or_else(|| {
                bad(ClusterError::Peer {
                    member: m.provider,
                    why: "not a registered provider".into(),
                })
            })?;
            // A name that does not resolve now may later (its name server down): retried.
            let peer = peer_address(&m.provider, record.offer.endpoint.as_str())
                .map_err(|e| ChainError::Unavailable(e.to_string()))?;
            peers.push(peer);
        }
        let worker = worker_config(
            &self.key,
            index as u32,
            cfg.port,
            peers,
            cfg.round_timeout(),
        );
        self.cluster.start(lease, spec, worker, self.threads)?;
        tracing::info!(
            lease = lease.id,
            worker = index,
            workers = lease.members.len(),
            rounds = lease.rounds,
            "cluster worker started"
        );
        Ok(())
    }
}
