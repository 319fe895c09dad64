//! The devnet's summary, read back from the chain, and the checks that decide whether the run
//! kept the network's promise.
//!
//! # The checks
//!
//! A run passes only if every one of these holds; each failure is one line in
//! [`Summary::problems`] naming the lease, the party and the reason:
//!
//! - every lease is final (none left running when the devnet gave up waiting);
//! - every lease on an honest provider **settled**;
//! - no honest provider was slashed or docked, on any lease, as provider or verifier
//!   (`slashed`, `lease_timed_out`, `check_absent` events) or as a cluster worker
//!   (`cluster_member_dropped`);
//! - the cluster job finished with every round completed by every worker, and trained (see
//!   [`super::cluster`]);
//! - each honest provider holds exactly the stake it bonded, and its balance is, to the unit,
//!   what it started with, less that stake, plus what it earned, was minted and was rewarded
//!   (rewards are the only income the chain does not record per provider; they must not be
//!   negative);
//! - every cheater was caught (each meets a verifier on its `redundant` job; the inference
//!   cheater is caught by the response checks);
//! - every inference request was answered, every answered response was settled on chain and
//!   every batch's checks ended, and no honest provider's response was found wrong;
//! - the supply invariant holds on every validator that answers;
//! - no process of the network was left down.

use crate::cmd::supervise::Incident;
use orrery_client::Client;
use orrery_ledger::Event;
use orrery_types::amount::Amount;
use orrery_types::crypto::AccountId;
use serde::Serialize;
use std::collections::BTreeMap;

/// What happened, read back from the chain.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    /// Inference through the gateway: traffic, settlements, checks.
    pub inference: Option<super::inference::InferenceSummary>,
    /// The cluster training job (none with `--cluster-workers 0`).
    pub cluster: Option<super::cluster::ClusterSummary>,
    /// Jobs submitted.
    pub jobs: usize,
    /// Leases paid out.
    pub settled: usize,
    /// Leases whose provider was shown wrong (requester refunded).
    pub failed: usize,
    /// Leases that timed out.
    pub timed_out: usize,
    /// Results re-executed by a drawn verifier.
    pub checks: usize,
    /// Disputes opened.
    pub disputes: usize,
    /// Referee rulings (one executed step each).
    pub referee_rulings: usize,
    /// Parties slashed.
    pub slashes: usize,
    /// Cheating providers slashed at least once.
    pub cheaters_slashed: usize,
    /// Cheating providers started.
    pub cheaters: usize,
    /// Honest providers slashed (must be zero).
    pub honest_slashed: usize,
    /// Honest providers docked for a timeout or a missed check (must be zero).
    pub honest_docked: usize,
    /// Tokens minted by emissions.
    pub minted: Amount,
    /// Tokens burned.
    pub burned: Amount,
    /// Whether every validator that answers reports the supply invariant holding.
    pub supply_invariant_held: bool,
    /// Final height.
    pub height: u64,
    /// Seconds from the first job submitted to the last settled.
    pub seconds: f64,
    /// Seconds from submitting one small unchecked job to its settled result (the requester
    /// accepting it as soon as it is revealed).
    pub submit_to_settled_seconds: f64,
    /// Each job: name, provider, verification and final state.
    pub leases: Vec<JobLine>,
    /// Each provider's standing at the end.
    pub providers: Vec<ProviderLine>,
    /// Processes that stopped during the run, and what the devnet did about it.
    pub incidents: Vec<Incident>,
    /// Every check that failed, one line each (see the module docs); empty when the run passed.
    pub problems: Vec<String>,
}

/// One job's outcome.
#[derive(Debug, Serialize)]
pub struct JobLine {
    /// Lease id.
    pub lease: u64,
    /// Which example.
    pub job: String,
    /// Who ran it.
    pub provider: String,
    /// Verification level.
    pub verification: String,
    /// Final state.
    pub state: String,
}

/// One provider's standing at the end of the run.
#[derive(Debug, Serialize)]
pub struct ProviderLine {
    /// `provider-<i>`.
    pub name: String,
    /// Its account.
    pub account: String,
    /// Whether it was started honest.
    pub honest: bool,
    /// Stake bonded now.
    pub stake: Amount,
    /// Balance now.
    pub balance: Amount,
    /// Paid for its own and its verified work, after fees.
    pub earned: Amount,
    /// Emissions minted to it.
    pub minted: Amount,
    /// Slashes and docks that named it: `lease <id>: <what>`.
    pub penalties: Vec<String>,
    /// Challenges the chain drew for it, and of those answered and missed.
    pub challenges: (u64, u64, u64),
    /// Challenges answered ÷ decided, basis points (`None` before the first is decided).
    pub uptime_bps: Option<u32>,
    /// Proven ÷ claimed throughput, basis points (`None` before the first answer).
    pub proven_score_bps: Option<u32>,
}

/// A job the devnet submitted.
#[derive(Clone, Debug)]
pub struct Job {
    /// Its lease.
    pub lease: u64,
    /// Which example.
    pub name: String,
}

/// Who the providers are.
pub struct Cast<'a> {
    /// Provider accounts, by index.
    pub providers: &'a [AccountId],
    /// Providers from this index on are cheaters.
    pub first_cheater: usize,
    /// The provider that serves inference with another model than it claims.
    pub inference_cheater: Option<usize>,
    /// What each was funded with at genesis.
    pub genesis_balance: Amount,
    /// What each bonds.
    pub stake: Amount,
}

impl Cast<'_> {
    fn name(&self, a: &AccountId) -> String {
        match self.providers.iter().position(|p| p == a) {
            Some(i) => format!("provider-{i}"),
            None => a.short(),
        }
    }
    fn honest(&self, a: &AccountId) -> bool {
        self.providers
            .iter()
            .position(|p| p == a)
            .is_some_and(|i| self.honest_index(i))
    }
    fn honest_index(&self, i: usize) -> bool {
        i < self.first_cheater && self.inference_cheater != Some(i)
    }
}

/// Check the inference part of the run into `s`.
pub fn check_inference(s: &mut Summary, cast: &Cast<'_>) {
    let Some(inf) = &s.inference else {
        return;
    };
    let mut problems = Vec::new();
    let t = &inf.traffic;
    for e in &t.errors {
        problems.push(format!("an inference request failed: {e}"));
    }
    if inf.responses_settled < t.answered {
        problems.push(format!(
            "{} responses were answered but only {} settled on chain",
            t.answered, inf.responses_settled
        ));
    }
    if inf.open_batches > 0 {
        problems.push(format!(
            "{} inference batch(es) still had checks open",
            inf.open_batches
        ));
    }
    for who in &inf.caught {
        let honest = cast
            .providers
            .iter()
            .position(|p| cast.name(p) == *who)
            .is_some_and(|i| cast.honest_index(i));
        if honest {
            problems.push(format!(
                "{who} (honest) was found wrong by an inference check"
            ));
        }
    }
    if let Some(i) = cast.inference_cheater {
        let name = format!("provider-{i}");
        if inf.caught.contains(&name) {
            s.cheaters_slashed += 1;
        } else {
            problems.push(format!(
                "{name} (serves another model than it claims) was never caught"
            ));
        }
    }
    s.problems.extend(problems);
}

/// The events of every block, in order, with their heights. A block whose outcome this node
/// did not see (it was down then) is read from the other nodes.
pub fn chain_events(clients: &[Client], height: u64) -> anyhow::Result<Vec<(u64, Event)>> {
    let mut out = Vec::new();
    for h in 1..=height {
        let receipts = clients
            .iter()
            .filter_map(|c| c.block_receipts(h).ok().flatten())
            .find(|r| r.outcome_known);
        let Some(receipts) = receipts else {
            anyhow::bail!("no node knows the outcome of block {h}");
        };
        let values = receipts
            .receipts
            .iter()
            .flat_map(|r| r.events.iter())
            .chain(receipts.events.iter());
        for v in values {
            let e: Event = serde_json::from_value(v.clone()).map_err(|e| {
                anyhow::anyhow!("block {h}: an event the ledger does not know ({e}): {v}")
            })?;
            out.push((h, e));
        }
    }
    Ok(out)
}

/// Penalties by party: `(party, lease, what)`.
fn penalties(
    events: &[(u64, Event)],
    leases: &BTreeMap<u64, AccountId>,
) -> Vec<(AccountId, u64, String)> {
    let mut out = Vec::new();
    for (h, e) in events {
        match e {
            Event::Slashed {
                lease,
                party,
                amount,
                ..
            } => out.push((*party, *lease, format!("slashed {amount} in block {h}"))),
            Event::CheckAbsent {
                lease,
                party,
                docked,
            } => out.push((
                *party,
                *lease,
                format!("docked {docked} in block {h}: missed its check's seal or reveal"),
            )),
            Event::ClusterMemberDropped {
                lease,
                round,
                member,
                docked,
            } => out.push((
                *member,
                *lease,
                format!("docked {docked} in block {h}: dropped from the cluster for missing round {round}"),
            )),
            Event::LeaseTimedOut { lease, docked, .. } => {
                if let Some(p) = leases.get(lease) {
                    out.push((
                        *p,
                        *lease,
                        format!("docked {docked} in block {h}: the lease timed out"),
                    ));
                }
            }
            _ => {}
        }
    }
    out
}

/// Count checks, disputes, rulings and slashes into `s`.
fn count_events(s: &mut Summary, events: &[(u64, Event)]) {
    for (_, e) in events {
        match e {
            Event::CheckDrawn { verifiers, .. } if !verifiers.is_empty() => s.checks += 1,
            Event::DisputeOpened { .. } => s.disputes += 1,
            Event::RefereeRuled { .. } => s.referee_rulings += 1,
            Event::Slashed { .. } => s.slashes += 1,
            _ => {}
        }
    }
}

/// Read the run back from the chain through `clients` (the first is asked first) and check it.
pub fn summarize(
    clients: &[Client],
    jobs: &[Job],
    cast: &Cast<'_>,
    incidents: &[Incident],
) -> anyhow::Result<Summary> {
    let client = &clients[0];
    let status = client.status()?;
    let mut s = Summary {
        jobs: jobs.len(),
        cheaters: cast.providers.len() - cast.first_cheater
            + usize::from(cast.inference_cheater.is_some()),
        minted: status.supply.minted,
        burned: status.supply.burned,
        height: status.chain.height,
        incidents: incidents.to_vec(),
        ..Summary::default()
    };
    s.supply_invariant_held = true;
    for c in clients {
        if let Ok(st) = c.status()
            && !st.supply.invariant_holds
        {
            s.supply_invariant_held = false;
            s.problems.push(format!(
                "the supply invariant is broken on {}",
                c.base_url()
            ));
        }
    }
    let events = chain_events(clients, status.chain.height)?;
    count_events(&mut s, &events);
    let mut lease_provider = BTreeMap::new();
    for job in jobs {
        let lease = client
            .lease(job.lease)?
            .ok_or_else(|| anyhow::anyhow!("lease {} vanished", job.lease))?;
        lease_provider.insert(job.lease, lease.provider);
        check_lease(&mut s, job, &lease, cast, &events);
    }
    let penalties = penalties(&events, &lease_provider);
    for (i, account) in cast.providers.iter().enumerate() {
        let line = provider_line(client, i, account, cast, &events, &penalties)?;
        check_provider(&mut s, &line, cast);
        s.providers.push(line);
    }
    for i in incidents.iter().filter(|i| i.action != "restarted") {
        s.problems
            .push(format!("{} is down: {}", i.process, i.action));
    }
    Ok(s)
}

fn check_lease(
    s: &mut Summary,
    job: &Job,
    lease: &orrery_client::api::LeaseView,
    cast: &Cast<'_>,
    events: &[(u64, Event)],
) {
    match lease.state.as_str() {
        "settled" => s.settled += 1,
        "failed" => s.failed += 1,
        "timed_out" => s.timed_out += 1,
        _ => {}
    }
    let verification = serde_json::to_string(&lease.verification)
        .unwrap_or_default()
        .replace('"', "");
    let who = cast.name(&lease.provider);
    if lease.active {
        s.problems.push(format!(
            "lease {} ({} on {who}, {verification}) is still {} at the end of the run",
            job.lease, job.name, lease.state
        ));
    } else if cast.honest(&lease.provider) && lease.state != "settled" {
        let why: Vec<String> = events
            .iter()
            .filter(|(_, e)| event_lease(e) == Some(job.lease))
            .filter_map(|(h, e)| match e {
                Event::Slashed { party, amount, .. } => Some(format!(
                    "{} slashed {amount} in block {h}",
                    cast.name(party)
                )),
                Event::CheckAbsent { party, .. } => Some(format!(
                    "{} missed its check in block {h}",
                    cast.name(party)
                )),
                Event::LeaseTimedOut { .. } => Some(format!("timed out in block {h}")),
                _ => None,
            })
            .collect();
        s.problems.push(format!(
            "lease {} ({} on {who}, honest, {verification}) ended {}: {}",
            job.lease,
            job.name,
            lease.state,
            if why.is_empty() {
                "no penalty event names it".into()
            } else {
                why.join("; ")
            }
        ));
    }
    s.leases.push(JobLine {
        lease: job.lease,
        job: job.name.clone(),
        provider: who,
        verification,
        state: lease.state.clone(),
    });
}

fn event_lease(e: &Event) -> Option<u64> {
    match e {
        Event::Slashed { lease, .. }
        | Event::CheckAbsent { lease, .. }
        | Event::LeaseTimedOut { lease, .. }
        | Event::ClusterMemberDropped { lease, .. } => Some(*lease),
        _ => None,
    }
}

fn provider_line(
    client: &Client,
    i: usize,
    account: &AccountId,
    cast: &Cast<'_>,
    events: &[(u64, Event)],
    penalties: &[(AccountId, u64, String)],
) -> anyhow::Result<ProviderLine> {
    let view = client.provider(account)?;
    let record = view.as_ref().and_then(|v| v.challenges.clone());
    let balance = client.account(account)?.balance;
    let minted = events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Minted {
                provider, amount, ..
            } if provider == account => Some(*amount),
            _ => None,
        })
        .try_fold(Amount::ZERO, |a, m| a.checked_add(m))
        .ok_or_else(|| anyhow::anyhow!("minted overflows"))?;
    Ok(ProviderLine {
        name: format!("provider-{i}"),
        account: account.to_string(),
        honest: cast.honest_index(i),
        stake: view.as_ref().map_or(Amount::ZERO, |v| v.stake),
        balance,
        earned: view.as_ref().map_or(Amount::ZERO, |v| v.earned),
        minted,
        penalties: penalties
            .iter()
            .filter(|(p, _, _)| p == account)
            .map(|(_, lease, what)| format!("lease {lease}: {what}"))
            .collect(),
        challenges: record
            .as_ref()
            .map_or((0, 0, 0), |r| (r.drawn, r.answered, r.missed)),
        uptime_bps: record.as_ref().and_then(|r| r.uptime_bps),
        proven_score_bps: record.as_ref().and_then(|r| r.proven_score_bps),
    })
}

fn check_provider(s: &mut Summary, p: &ProviderLine, cast: &Cast<'_>) {
    let slashed = p.penalties.iter().any(|x| x.contains("slashed"));
    if cast
        .inference_cheater
        .is_some_and(|i| p.name == format!("provider-{i}"))
    {
        // Caught (or not) by the inference checks: see `check_inference`.
        return;
    }
    if !p.honest {
        if slashed {
            s.cheaters_slashed += 1;
        } else {
            s.problems
                .push(format!("{} (a cheater) was never caught", p.name));
        }
        return;
    }
    if slashed {
        s.honest_slashed += 1;
    }
    if p.penalties.iter().any(|x| x.contains("docked")) {
        s.honest_docked += 1;
    }
    // Every provider claims what it has, so an honest one answers every challenge.
    let (drawn, answered, missed) = p.challenges;
    if missed > 0 {
        s.problems.push(format!(
            "{} (honest) missed {missed} of {drawn} challenges ({answered} answered)",
            p.name
        ));
    }
    for what in &p.penalties {
        s.problems
            .push(format!("{} (honest) was penalized: {what}", p.name));
    }
    if p.stake != cast.stake {
        s.problems.push(format!(
            "{} (honest) holds a stake of {}, not the {} it bonded",
            p.name, p.stake, cast.stake
        ));
    }
    // genesis − stake + earned + minted ≤ balance; the difference is its slash rewards.
    let expected = cast
        .genesis_balance
        .checked_sub(cast.stake)
        .and_then(|b| b.checked_add(p.earned))
        .and_then(|b| b.checked_add(p.minted));
    match expected {
        Some(e) if p.balance >= e => {}
        Some(e) => s.problems.push(format!(
            "{} (honest) has a balance of {}, {} less than it started with, less its stake, plus what it earned and was minted ({e})",
            p.name,
            p.balance,
            e.checked_sub(p.balance).unwrap_or(Amount::ZERO)
        )),
        None => s.problems.push(format!("{}: its balance does not add up (overflow)", p.name)),
    }
}

/// Print the summary for a person.
pub fn print(s: &Summary) -> Vec<String> {
    let mut out = vec![
        String::new(),
        format!(
            "devnet summary (height {}, {:.1} s from first job to last result)",
            s.height, s.seconds
        ),
    ];
    for l in &s.leases {
        out.push(format!(
            "  lease #{:<3} {:<12} {:<12} {:<22} {}",
            l.lease, l.job, l.provider, l.verification, l.state
        ));
    }
    out.push(format!(
        "  jobs {}: {} settled, {} failed (requester refunded), {} timed out",
        s.jobs, s.settled, s.failed, s.timed_out
    ));
    out.push(format!(
        "  checks {}, disputes {}, referee rulings {}, slashes {}",
        s.checks, s.disputes, s.referee_rulings, s.slashes
    ));
    out.push(format!(
        "  cheaters slashed {}/{}, honest providers slashed {}, docked {}",
        s.cheaters_slashed, s.cheaters, s.honest_slashed, s.honest_docked
    ));
    if let Some(inf) = &s.inference {
        let t = &inf.traffic;
        out.push(format!(
            "  inference: {}/{} requests answered ({} embeddings, {} completions, {} streamed chats), {} tokens in, {} out",
            t.answered, t.requests, t.embeddings, t.completions, t.streams, t.tokens_in, t.tokens_out
        ));
        out.push(format!(
            "  inference: {} batches settled {} responses; paid {}, refunded {}; checks {:?}; caught {:?}; time to first token p50 {}",
            inf.batches,
            inf.responses_settled,
            inf.paid,
            inf.refunded,
            inf.checks,
            inf.caught,
            inf.ttft_p50_ms.map_or("-".into(), |v| format!("{v:.0} ms"))
        ));
        if let Some(n) = &inf.note {
            out.push(format!("  inference: {n}"));
        }
    }
    if let Some(c) = &s.cluster {
        out.push(super::cluster::print(c));
    }
    let pct = |bps: Option<u32>| bps.map_or("—".to_owned(), |b| format!("{}%", b / 100));
    for p in &s.providers {
        let (drawn, answered, _) = p.challenges;
        out.push(format!(
            "  {:<11} {:<7} stake {}, balance {}, earned {}, minted {}; challenges {answered}/{drawn} (uptime {}), proven {}",
            p.name,
            if p.honest { "honest" } else { "cheater" },
            p.stake,
            p.balance,
            p.earned,
            p.minted,
            pct(p.uptime_bps),
            pct(p.proven_score_bps)
        ));
    }
    out.push(format!("  minted {}, burned {}", s.minted, s.burned));
    out.push(format!(
        "  a small job from submission to settled result: {:.2} s",
        s.submit_to_settled_seconds
    ));
    out.push(format!(
        "  supply invariant on every validator: {}",
        if s.supply_invariant_held {
            "holds"
        } else {
            "BROKEN"
        }
    ));
    for i in &s.incidents {
        out.push(format!("  incident: {i}"));
    }
    if s.problems.is_empty() {
        out.push("  every check passed".into());
    }
    for p in &s.problems {
        out.push(format!("  FAILED: {p}"));
    }
    out
}
