//! What the explorer needs from the index, kept up to date as each block is indexed (in the
//! same write transaction), so that no explorer request scans every lease:
//!
//! - `chain_stats`: one record of cumulative counters (jobs by outcome, checks, disputes,
//!   slashes, minted, burned) — the overview reads it in O(1);
//! - `series`: the counters at every height where one changed — a chart samples it at up to
//!   [`MAX_SERIES_POINTS`] heights, each a `range(..=h).last()` lookup;
//! - `block_times`: height → block time, and `block_hashes`: block hash → height (search);
//! - `lease_meta`: lease → provider and requester; `provider_leases`: provider ‖ lease, for a
//!   provider's leases newest first;
//! - `lease_events`: the end-of-block events about a lease (draws, deadlines, settlements),
//!   which are not transactions and so are not in the per-lease transaction list;
//! - `activity`: per account, the last height it signed a transaction, its slashes and its
//!   leases' outcomes as provider.
//!
//! Counters come from the ledger's typed events, so they are exact for blocks indexed with
//! their outcome; a block indexed from storage alone adds nothing and is counted in
//! `blocks_without_outcome`, which the overview reports.

use orrery_ledger::{Event, Receipt};
use orrery_types::amount::{Amount, UNITS_PER_ORR};
use orrery_types::crypto::AccountId;
use orrery_types::tx::SignedTx;
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

pub(super) const CHAIN_STATS: TableDefinition<&str, &[u8]> = TableDefinition::new("chain_stats");
pub(super) const SERIES: TableDefinition<u64, &[u8]> = TableDefinition::new("series");
pub(super) const BLOCK_TIMES: TableDefinition<u64, u64> = TableDefinition::new("block_times");
pub(super) const BLOCK_HASHES: TableDefinition<&[u8], u64> = TableDefinition::new("block_hashes");
/// Key: lease id (8, BE); value: JSON [`LeaseMeta`].
pub(super) const LEASE_META: TableDefinition<u64, &[u8]> = TableDefinition::new("lease_meta");
/// Key: provider (20) ‖ lease id (8, BE).
pub(super) const PROVIDER_LEASES: TableDefinition<&[u8], ()> =
    TableDefinition::new("provider_leases");
/// Key: lease id (8, BE) ‖ height (8, BE) ‖ event index (4, BE); value: event JSON.
pub(super) const LEASE_EVENTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("lease_events");
/// Key: account (20); value: JSON [`Activity`].
pub(super) const ACTIVITY: TableDefinition<&[u8], &[u8]> = TableDefinition::new("activity");
pub(super) const STATS_KEY: &str = "stats";

/// Most points a series answer holds: enough for a chart as wide as a screen, small enough
/// that the answer stays a few tens of kilobytes whatever the chain's length.
pub const MAX_SERIES_POINTS: usize = 500;

/// Cumulative counters since genesis.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainStats {
    /// Leases opened.
    pub opened: u64,
    /// Leases settled.
    pub settled: u64,
    /// Leases failed.
    pub failed: u64,
    /// Leases timed out.
    pub timed_out: u64,
    /// Draws that named at least one verifier.
    pub checks: u64,
    /// Checks where every verifier agreed.
    pub checks_passed: u64,
    /// Disputes opened.
    pub disputes: u64,
    /// Referee rulings.
    pub referee_rulings: u64,
    /// Tie-break draws.
    pub tiebreaks: u64,
    /// Slashes.
    pub slashes: u64,
    /// Stake slashed.
    pub slashed: Amount,
    /// Minted by emissions.
    pub minted: Amount,
    /// Burned (fee shares, slashes, docked stake).
    pub burned: Amount,
    /// Blocks indexed without their outcome (counters miss what they did).
    pub blocks_without_outcome: u64,
    /// Inference settlements (batches).
    #[serde(default)]
    pub inference_batches: u64,
    /// Inference responses settled.
    #[serde(default)]
    pub inference_responses: u64,
    /// Paid to providers for inference (after the fee).
    #[serde(default)]
    pub inference_paid: Amount,
    /// Inference responses whose check ended with a verdict (agreed, caught, checker wrong).
    #[serde(default)]
    pub inference_checks: u64,
    /// Inference responses found wrong (the provider was slashed).
    #[serde(default)]
    pub inference_caught: u64,
    /// Returned to API keys by inference checks.
    #[serde(default)]
    pub inference_refunded: Amount,
}

impl ChainStats {
    fn changed_from(&self, before: &ChainStats) -> bool {
        ChainStats {
            blocks_without_outcome: before.blocks_without_outcome,
            ..self.clone()
        } != *before
    }
}

/// Who a lease is between.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseMeta {
    /// The provider.
    pub provider: AccountId,
    /// The requester.
    pub requester: AccountId,
    /// Height of opening.
    pub opened_at: u64,
}

/// What the index saw an account do.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    /// Last height it signed a transaction.
    pub last_seen: Option<u64>,
    /// Times slashed.
    pub slashes: u64,
    /// Stake taken (slashes and docked stake).
    pub slashed: Amount,
    /// Leases it was provider of.
    pub leases: u64,
}

/// ORR as a float, for charts.
pub fn orr_f64(a: Amount) -> f64 {
    a.0 as f64 / UNITS_PER_ORR as f64
}

fn add(a: &mut Amount, b: Amount) {
    *a = a.checked_add(b).unwrap_or(Amount(u128::MAX));
}

fn event_lease(e: &Event) -> Option<u64> {
    use Event::*;
    match e {
        LeaseOpened { lease, .. }
        | LeaseStarted { lease }
        | ResultCommitted { lease, .. }
        | CheckDrawn { lease, .. }
        | CheckSealed { lease, .. }
        | ResultRevealed { lease, .. }
        | CheckAbsent { lease, .. }
        | ResultChecked { lease, .. }
        | DisputeOpened { lease, .. }
        | DisputeMoved { lease, .. }
        | DisputeNarrowed { lease, .. }
        | RefereeRuled { lease, .. }
        | TiebreakDrawn { lease, .. }
        | Slashed { lease, .. }
        | LeaseFailed { lease, .. }
        | LeaseSettled { lease, .. }
        | LeaseTimedOut { lease, .. } => Some(*lease),
        // Cluster leases take their ids from the same counter: their events sit in the same
        // per-lease log.
        ClusterLeaseOpened { lease, .. }
        | ClusterRoundCommitted { lease, .. }
        | ClusterRoundClosed { lease, .. }
        | ClusterMemberDropped { lease, .. }
        | ClusterRoundPaid { lease, .. }
        | ClusterCheckDrawn { lease, .. }
        | ClusterCheckRevealed { lease, .. }
        | ClusterCheckResolved { lease, .. }
        | ClusterVerifierPaid { lease, .. }
        | ClusterLeaseFinished { lease, .. } => Some(*lease),
        Transferred { .. }
        | ProviderRegistered { .. }
        | ProviderUpdated { .. }
        | Bonded { .. }
        | UnbondStarted { .. }
        | UnbondReleased { .. }
        | Minted { .. } => None,
        // Inference events name batches and keys, not leases.
        ModelsOffered { .. }
        | InferenceKeyCreated { .. }
        | InferenceKeyFunded { .. }
        | InferenceKeyRevoked { .. }
        | InferenceKeyClosed { .. }
        | InferenceSettled { .. }
        | InferenceDrawn { .. }
        | InferenceCheckDrawn { .. }
        | InferenceCheckSealed { .. }
        | InferenceCheckRevealed { .. }
        | InferenceResponseOpened { .. }
        | InferenceCheckMissed { .. }
        | InferenceCheckResolved { .. }
        | InferenceSlashed { .. }
        | InferenceReleased { .. } => None,
        // Challenge events name providers and the height of the draw.
        ChallengeDrawn { .. }
        | ChallengeRequested { .. }
        | ChallengeAnswered { .. }
        | ChallengePassed { .. }
        | ChallengeBelowClaim { .. }
        | ChallengeMissed { .. } => None,
    }
}

/// Update the explorer tables for one block, inside the block's write transaction.
pub(super) fn record_block(
    w: &WriteTransaction,
    height: u64,
    time_ms: u64,
    block_hash: &[u8],
    txs: &[SignedTx],
    outcome: Option<(&[Receipt], &[Event])>,
) -> Result<(), redb::Error> {
    w.open_table(BLOCK_TIMES)?.insert(height, time_ms)?;
    w.open_table(BLOCK_HASHES)?.insert(block_hash, height)?;

    let mut stats_t = w.open_table(CHAIN_STATS)?;
    // An index written by a node older than the explorer has blocks but no counters: those
    // blocks are reported as counted without their outcome rather than silently missing.
    let before: ChainStats = stats_t
        .get(STATS_KEY)?
        .and_then(|v| serde_json::from_slice(v.value()).ok())
        .unwrap_or_else(|| ChainStats {
            blocks_without_outcome: height.saturating_sub(1),
            ..ChainStats::default()
        });
    let mut stats = before.clone();
    let mut activity_t = w.open_table(ACTIVITY)?;
    let mut activity: std::collections::BTreeMap<AccountId, Activity> = Default::default();
    let load = |t: &redb::Table<&[u8], &[u8]>,
                map: &mut std::collections::BTreeMap<AccountId, Activity>,
                a: AccountId|
     -> Result<(), redb::Error> {
        if let std::collections::btree_map::Entry::Vacant(slot) = map.entry(a) {
            let v = t
                .get(a.0.as_slice())?
                .and_then(|v| serde_json::from_slice(v.value()).ok())
                .unwrap_or_default();
            slot.insert(v);
        }
        Ok(())
    };
    for tx in txs {
        load(&activity_t, &mut activity, tx.sender())?;
        if let Some(a) = activity.get_mut(&tx.sender()) {
            a.last_seen = Some(height);
        }
    }
    let Some((receipts, block_events)) = outcome else {
        stats.blocks_without_outcome += 1;
        return save(&mut stats_t, &stats, &mut activity_t, activity);
    };
    let mut meta_t = w.open_table(LEASE_META)?;
    let mut by_provider = w.open_table(PROVIDER_LEASES)?;
    let mut lease_events = w.open_table(LEASE_EVENTS)?;
    let tx_events = receipts
        .iter()
        .filter_map(|r| r.outcome.as_ref().ok())
        .flatten();
    let all = tx_events
        .map(|e| (e, false))
        .chain(block_events.iter().map(|e| (e, true)));
    for (i, (e, end_of_block)) in all.enumerate() {
        match e {
            Event::LeaseOpened {
                lease,
                requester,
                provider,
                ..
            } => {
                stats.opened += 1;
                let meta = LeaseMeta {
                    provider: *provider,
                    requester: *requester,
                    opened_at: height,
                };
                meta_t.insert(
                    *lease,
                    serde_json::to_vec(&meta).unwrap_or_default().as_slice(),
                )?;
                let key = [provider.0.as_slice(), &lease.to_be_bytes()].concat();
                by_provider.insert(key.as_slice(), ())?;
                load(&activity_t, &mut activity, *provider)?;
                if let Some(a) = activity.get_mut(provider) {
                    a.leases += 1;
                }
            }
            Event::LeaseSettled { burned, .. } => {
                stats.settled += 1;
                add(&mut stats.burned, *burned);
            }
            Event::LeaseFailed { .. } => stats.failed += 1,
            Event::LeaseTimedOut { docked, lease, .. } => {
                stats.timed_out += 1;
                add(&mut stats.burned, *docked);
                let provider = meta_t
                    .get(*lease)?
                    .and_then(|v| serde_json::from_slice::<LeaseMeta>(v.value()).ok())
                    .map(|m| m.provider);
                if let Some(p) = provider {
                    load(&activity_t, &mut activity, p)?;
                    if let Some(a) = activity.get_mut(&p) {
                        add(&mut a.slashed, *docked);
                    }
                }
            }
            Event::CheckDrawn { verifiers, .. } if !verifiers.is_empty() => stats.checks += 1,
            Event::ResultChecked { .. } => stats.checks_passed += 1,
            Event::CheckAbsent { docked, party, .. }
            | Event::ChallengeMissed {
                docked,
                provider: party,
                ..
            }
            | Event::ChallengeBelowClaim {
                docked,
                provider: party,
                ..
            } => {
                add(&mut stats.burned, *docked);
                load(&activity_t, &mut activity, *party)?;
                if let Some(a) = activity.get_mut(party) {
                    add(&mut a.slashed, *docked);
                }
            }
            Event::ClusterMemberDropped {
                docked,
                member: party,
                ..
            } => {
                add(&mut stats.burned, *docked);
                load(&activity_t, &mut activity, *party)?;
                if let Some(a) = activity.get_mut(party) {
                    add(&mut a.slashed, *docked);
                }
            }
            Event::ClusterRoundPaid { burned, .. } | Event::ClusterVerifierPaid { burned, .. } => {
                add(&mut stats.burned, *burned)
            }
            Event::DisputeOpened { .. } => stats.disputes += 1,
            Event::RefereeRuled { .. } => stats.referee_rulings += 1,
            Event::TiebreakDrawn { .. } => stats.tiebreaks += 1,
            Event::Slashed {
                party,
                amount,
                burned,
                ..
            } => {
                stats.slashes += 1;
                add(&mut stats.slashed, *amount);
                add(&mut stats.burned, *burned);
                load(&activity_t, &mut activity, *party)?;
                if let Some(a) = activity.get_mut(party) {
                    a.slashes += 1;
                    add(&mut a.slashed, *amount);
                }
            }
            Event::Minted { amount, .. } => add(&mut stats.minted, *amount),
            Event::InferenceSettled { responses, .. } => {
                stats.inference_batches += 1;
                stats.inference_responses += responses;
            }
            Event::InferenceCheckResolved {
                outcome, refunded, ..
            } => {
                use orrery_ledger::entries::CheckOutcome;
                add(&mut stats.inference_refunded, *refunded);
                match outcome {
                    CheckOutcome::ProviderCaught => {
                        stats.inference_checks += 1;
                        stats.inference_caught += 1;
                    }
                    CheckOutcome::Agreed | CheckOutcome::CheckerWrong => {
                        stats.inference_checks += 1
                    }
                    CheckOutcome::NoMajority | CheckOutcome::Unchecked => {}
                }
            }
            Event::InferenceCheckMissed {
                checker, docked, ..
            } => {
                add(&mut stats.burned, *docked);
                load(&activity_t, &mut activity, *checker)?;
                if let Some(a) = activity.get_mut(checker) {
                    add(&mut a.slashed, *docked);
                }
            }
            Event::InferenceSlashed {
                party,
                amount,
                burned,
                ..
            } => {
                stats.slashes += 1;
                add(&mut stats.slashed, *amount);
                add(&mut stats.burned, *burned);
                load(&activity_t, &mut activity, *party)?;
                if let Some(a) = activity.get_mut(party) {
                    a.slashes += 1;
                    add(&mut a.slashed, *amount);
                }
            }
            Event::InferenceReleased {
                provider_paid,
                burned,
                ..
            } => {
                add(&mut stats.inference_paid, *provider_paid);
                add(&mut stats.burned, *burned);
            }
            _ => {}
        }
        if end_of_block && let Some(lease) = event_lease(e) {
            let key = [
                lease.to_be_bytes().as_slice(),
                &height.to_be_bytes(),
                &(i as u32).to_be_bytes(),
            ]
            .concat();
            let json = serde_json::to_vec(e).unwrap_or_default();
            lease_events.insert(key.as_slice(), json.as_slice())?;
        }
    }
    if stats.changed_from(&before) {
        w.open_table(SERIES)?.insert(
            height,
            serde_json::to_vec(&stats).unwrap_or_default().as_slice(),
        )?;
    }
    save(&mut stats_t, &stats, &mut activity_t, activity)
}

/// Write the chain's counters and the block's touched activity records back.
fn save(
    stats_t: &mut redb::Table<&str, &[u8]>,
    stats: &ChainStats,
    activity_t: &mut redb::Table<&[u8], &[u8]>,
    activity: std::collections::BTreeMap<AccountId, Activity>,
) -> Result<(), redb::Error> {
    stats_t.insert(
        STATS_KEY,
        serde_json::to_vec(stats).unwrap_or_default().as_slice(),
    )?;
    for (a, v) in activity {
        activity_t.insert(
            a.0.as_slice(),
            serde_json::to_vec(&v).unwrap_or_default().as_slice(),
        )?;
    }
    Ok(())
}
