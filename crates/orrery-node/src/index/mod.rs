//! The node's local index (redb, `<data_dir>/index.redb`): what the chain's own storage does
//! not answer quickly — transactions by hash with their receipts, transactions per account and
//! per lease, block summaries and per-block receipts.
//!
//! # Invariants
//! - Blocks are indexed in height order, each in one write transaction that also records the
//!   new `indexed_height`; a crash leaves the index at a block boundary, and indexing the same
//!   height twice is a no-op. So restarting and re-indexing from `indexed_height + 1` is
//!   always correct.
//! - Which accounts and leases a transaction concerns is found generically from the JSON of
//!   its body and of its receipt's events (every account id, every `lease` field), so new
//!   transaction kinds are indexed without a change here.
//! - A block indexed from chain storage (the node was down when it was finalized and the chain
//!   no longer had its outcome) has `receipt: None` and `outcome_known: false`; nothing is
//!   invented.

use crate::backend::Finalized;
use orrery_client::api::{BlockReceipts, BlockSummary, ReceiptView, TxRecord, TxView};
use orrery_ledger::Receipt;
use orrery_types::block::Block;
use orrery_types::crypto::AccountId;
use orrery_types::hash::Hash;
use orrery_types::tx::SignedTx;
use redb::{Database, ReadableDatabase, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
const TXS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("txs");
/// Key: account (20) ‖ height (8, BE) ‖ index (4, BE); value: tx hash.
const ACCOUNT_TXS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("account_txs");
/// Key: lease id (8, BE) ‖ height (8, BE) ‖ index (4, BE); value: tx hash.
const LEASE_TXS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("lease_txs");
const INDEXED_HEIGHT: &str = "indexed_height";

/// Why the index failed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The database could not be opened or written.
    #[error("node index {path}: {source} (delete the file to rebuild the index from the chain)")]
    Db {
        /// The database file.
        path: PathBuf,
        /// redb's error.
        #[source]
        source: Box<redb::Error>,
    },
    /// A stored record does not decode: the file is corrupt or from another version.
    #[error("node index {path}: corrupt record: {detail} (delete the file to rebuild it)")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What.
        detail: String,
    },
    /// The blocking task running an index operation died (a panic inside it).
    #[error("index task failed: {0}")]
    Task(String),
    /// Blocks must be indexed in order.
    #[error("block {got} cannot be indexed after height {indexed}")]
    OutOfOrder {
        /// Indexed so far.
        indexed: u64,
        /// Offered.
        got: u64,
    },
}

/// What the index keeps per block.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct BlockEntry {
    summary: BlockSummary,
    receipts: BlockReceipts,
}

/// Where a transaction sits: (block height, index in the block).
pub type TxPosition = (u64, u32);

/// The index.
#[derive(Debug)]
pub struct Index {
    db: Database,
    path: PathBuf,
}

/// Which list a transaction query reads.
#[derive(Clone, Copy, Debug)]
pub enum TxList {
    /// By account.
    Account(AccountId),
    /// By lease.
    Lease(u64),
}

impl TxList {
    fn prefix(&self) -> Vec<u8> {
        match self {
            TxList::Account(a) => a.0.to_vec(),
            TxList::Lease(l) => l.to_be_bytes().to_vec(),
        }
    }
}

impl Index {
    /// Open or create the index at `path`.
    pub fn open(path: &Path) -> Result<Index, IndexError> {
        let db = Database::create(path).map_err(|e| db_err(path, e))?;
        let index = Index {
            db,
            path: path.to_path_buf(),
        };
        // Create the tables so that readers never meet a missing table.
        let w = index.db.begin_write().map_err(|e| index.err(e))?;
        {
            w.open_table(META).map_err(|e| index.err(e))?;
            w.open_table(BLOCKS).map_err(|e| index.err(e))?;
            w.open_table(TXS).map_err(|e| index.err(e))?;
            w.open_table(ACCOUNT_TXS).map_err(|e| index.err(e))?;
            w.open_table(LEASE_TXS).map_err(|e| index.err(e))?;
            w.open_table(stats::CHAIN_STATS).map_err(|e| index.err(e))?;
            w.open_table(stats::SERIES).map_err(|e| index.err(e))?;
            w.open_table(stats::BLOCK_TIMES).map_err(|e| index.err(e))?;
            w.open_table(stats::BLOCK_HASHES)
                .map_err(|e| index.err(e))?;
            w.open_table(stats::LEASE_META).map_err(|e| index.err(e))?;
            w.open_table(stats::PROVIDER_LEASES)
                .map_err(|e| index.err(e))?;
            w.open_table(stats::LEASE_EVENTS)
                .map_err(|e| index.err(e))?;
            w.open_table(stats::ACTIVITY).map_err(|e| index.err(e))?;
        }
        w.commit().map_err(|e| index.err(e))?;
        Ok(index)
    }

    fn err(&self, e: impl Into<redb::Error>) -> IndexError {
        db_err(&self.path, e)
    }

    fn corrupt(&self, detail: impl std::fmt::Display) -> IndexError {
        IndexError::Corrupt {
            path: self.path.clone(),
            detail: detail.to_string(),
        }
    }

    /// Highest height indexed (0 = none).
    pub fn indexed_height(&self) -> Result<u64, IndexError> {
        let r = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = r.open_table(META).map_err(|e| self.err(e))?;
        Ok(t.get(INDEXED_HEIGHT)
            .map_err(|e| self.err(e))?
            .map(|v| v.value())
            .unwrap_or(0))
    }

    /// Index a block finalized with its outcome.
    pub fn index_finalized(&self, f: &Finalized) -> Result<bool, IndexError> {
        self.index_block(&f.block, f.block_hash, Some((&f.receipts, &f.events)))
    }

    /// Index `block`; `outcome` is its receipts and end-of-block events when known. Returns
    /// false if the height was already indexed.
    pub fn index_block(
        &self,
        block: &Block,
        block_hash: Hash,
        outcome: Option<(&[Receipt], &[orrery_ledger::Event])>,
    ) -> Result<bool, IndexError> {
        let indexed = self.indexed_height()?;
        if block.height <= indexed {
            return Ok(false);
        }
        if block.height != indexed + 1 {
            return Err(IndexError::OutOfOrder {
                indexed,
                got: block.height,
            });
        }
        // Receipts line up with transactions only if the counts agree.
        let receipts = outcome.and_then(|(r, _)| (r.len() == block.txs.len()).then_some(r));
        let w = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut txs = w.open_table(TXS).map_err(|e| self.err(e))?;
            let mut by_account = w.open_table(ACCOUNT_TXS).map_err(|e| self.err(e))?;
            let mut by_lease = w.open_table(LEASE_TXS).map_err(|e| self.err(e))?;
            let mut receipt_views = Vec::new();
            for (i, tx) in block.txs.as_slice().iter().enumerate() {
                let index = i as u32;
                let view = tx_view(tx);
                let receipt = receipts.map(|r| receipt_view(&r[i]));
                let mut accounts = BTreeSet::from([view.sender]);
                let mut leases = BTreeSet::new();
                collect_refs(&view.body, &mut accounts, &mut leases);
                if let Some(r) = &receipt {
                    for e in &r.events {
                        collect_refs(e, &mut accounts, &mut leases);
                    }
                    receipt_views.push(r.clone());
                }
                let record = TxRecord {
                    height: block.height,
                    index,
                    block_hash,
                    tx: view,
                    receipt,
                };
                let json = serde_json::to_vec(&record).map_err(|e| self.corrupt(e))?;
                let hash = record.tx.hash;
                txs.insert(hash.as_bytes().as_slice(), json.as_slice())
                    .map_err(|e| self.err(e))?;
                let pos = position(block.height, index);
                for a in accounts {
                    let key = [a.0.as_slice(), &pos].concat();
                    by_account
                        .insert(key.as_slice(), hash.as_bytes().as_slice())
                        .map_err(|e| self.err(e))?;
                }
                for l in leases {
                    let key = [l.to_be_bytes().as_slice(), &pos].concat();
                    by_lease
                        .insert(key.as_slice(), hash.as_bytes().as_slice())
                        .map_err(|e| self.err(e))?;
                }
            }
            let events = outcome
                .map(|(_, ev)| {
                    ev.iter()
                        .filter_map(|e| serde_json::to_value(e).ok())
                        .collect()
                })
                .unwrap_or_default();
            let entry = BlockEntry {
                summary: BlockSummary {
                    height: block.height,
                    hash: block_hash,
                    parent: block.parent,
                    time_ms: block.time_ms,
                    tx_count: block.txs.len() as u32,
                },
                receipts: BlockReceipts {
                    height: block.height,
                    receipts: receipt_views,
                    events,
                    outcome_known: receipts.is_some(),
                },
            };
            let json = serde_json::to_vec(&entry).map_err(|e| self.corrupt(e))?;
            w.open_table(BLOCKS)
                .map_err(|e| self.err(e))?
                .insert(block.height, json.as_slice())
                .map_err(|e| self.err(e))?;
            stats::record_block(
                &w,
                block.height,
                block.time_ms,
                block_hash.as_bytes().as_slice(),
                block.txs.as_slice(),
                receipts.zip(outcome.map(|(_, ev)| ev)),
            )
            .map_err(|e| self.err(e))?;
            w.open_table(META)
                .map_err(|e| self.err(e))?
                .insert(INDEXED_HEIGHT, block.height)
                .map_err(|e| self.err(e))?;
        }
        w.commit().map_err(|e| self.err(e))?;
        Ok(true)
    }

    /// A transaction by hash.
    pub fn tx(&self, hash: &Hash) -> Result<Option<TxRecord>, IndexError> {
        let r = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = r.open_table(TXS).map_err(|e| self.err(e))?;
        match t.get(hash.as_bytes().as_slice()).map_err(|e| self.err(e))? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(v.value())
                .map(Some)
                .map_err(|e| self.corrupt(e)),
        }
    }

    /// Transactions of an account or lease, newest first: up to `limit` strictly older than
    /// `before` (a position `(height, index)`), and the position to continue from.
    pub fn txs(
        &self,
        list: TxList,
        before: Option<TxPosition>,
        limit: usize,
    ) -> Result<(Vec<TxRecord>, Option<TxPosition>), IndexError> {
        let prefix = list.prefix();
        let lo = [prefix.as_slice(), &[0u8; 12]].concat();
        let hi = match before {
            Some((h, i)) => [prefix.as_slice(), &position(h, i)].concat(),
            None => [prefix.as_slice(), &[0xffu8; 12]].concat(),
        };
        let r = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = match list {
            TxList::Account(_) => ACCOUNT_TXS,
            TxList::Lease(_) => LEASE_TXS,
        };
        let t = r.open_table(table).map_err(|e| self.err(e))?;
        let txs = r.open_table(TXS).map_err(|e| self.err(e))?;
        let range = t
            .range::<&[u8]>(lo.as_slice()..hi.as_slice())
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        let mut next = None;
        for item in range.rev() {
            let (_, v) = item.map_err(|e| self.err(e))?;
            if out.len() == limit {
                next = out.last().map(|r: &TxRecord| (r.height, r.index));
                break;
            }
            let Some(rec) = txs.get(v.value()).map_err(|e| self.err(e))? else {
                return Err(self.corrupt("a list entry names a transaction that is not indexed"));
            };
            out.push(serde_json::from_slice(rec.value()).map_err(|e| self.corrupt(e))?);
        }
        Ok((out, next))
    }

    fn block_entry(&self, height: u64) -> Result<Option<BlockEntry>, IndexError> {
        let r = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = r.open_table(BLOCKS).map_err(|e| self.err(e))?;
        match t.get(height).map_err(|e| self.err(e))? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(v.value())
                .map(Some)
                .map_err(|e| self.corrupt(e)),
        }
    }

    /// The receipts and end-of-block events of an indexed block.
    pub fn block_receipts(&self, height: u64) -> Result<Option<BlockReceipts>, IndexError> {
        Ok(self.block_entry(height)?.map(|e| e.receipts))
    }

    /// Block summaries, newest first, strictly below `before` (or from the top).
    pub fn blocks(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<BlockSummary>, Option<u64>), IndexError> {
        let r = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = r.open_table(BLOCKS).map_err(|e| self.err(e))?;
        let hi = before.unwrap_or(u64::MAX);
        let mut out = Vec::new();
        let mut next = None;
        for item in t.range(0..hi).map_err(|e| self.err(e))?.rev() {
            let (_, v) = item.map_err(|e| self.err(e))?;
            if out.len() == limit {
                next = out.last().map(|s: &BlockSummary| s.height);
                break;
            }
            let e: BlockEntry = serde_json::from_slice(v.value()).map_err(|e| self.corrupt(e))?;
            out.push(e.summary);
        }
        Ok((out, next))
    }
}

fn db_err(path: &Path, e: impl Into<redb::Error>) -> IndexError {
    IndexError::Db {
        path: path.to_path_buf(),
        source: Box::new(e.into()),
    }
}

fn position(height: u64, index: u32) -> [u8; 12] {
    let mut p = [0u8; 12];
    p[..8].copy_from_slice(&height.to_be_bytes());
    p[8..].copy_from_slice(&index.to_be_bytes());
    p
}

/// The API view of a transaction.
pub fn tx_view(tx: &SignedTx) -> TxView {
    TxView {
        hash: tx.hash(),
        sender: tx.sender(),
        nonce: tx.tx.nonce,
        chain_id: tx.tx.chain_id.as_str().to_string(),
        body: serde_json::to_value(&tx.tx.body).unwrap_or(serde_json::Value::Null),
    }
}

/// The API view of a receipt.
pub fn receipt_view(r: &Receipt) -> ReceiptView {
    let (ok, events, error, message) = match &r.outcome {
        Ok(events) => (
            true,
            events
                .iter()
                .filter_map(|e| serde_json::to_value(e).ok())
                .collect(),
            None,
            None,
        ),
        Err(e) => (
            false,
            Vec::new(),
            serde_json::to_value(e).ok(),
            Some(e.to_string()),
        ),
    };
    ReceiptView {
        tx: r.tx,
        sender: r.sender,
        kind: r.kind.to_string(),
        ok,
        events,
        error,
        message,
    }
}

/// Every account id (any string that parses as one) and every lease id (any numeric field
/// named `lease`) in a JSON value.
fn collect_refs(
    v: &serde_json::Value,
    accounts: &mut BTreeSet<AccountId>,
    leases: &mut BTreeSet<u64>,
) {
    match v {
        serde_json::Value::String(s) => {
            if s.len() == 43
                && let Ok(a) = s.parse::<AccountId>()
            {
                accounts.insert(a);
            }
        }
        serde_json::Value::Array(items) => {
            for i in items {
                collect_refs(i, accounts, leases);
            }
        }
        serde_json::Value::Object(map) => {
            for (k, val) in map {
                if k == "lease"
                    && let Some(id) = val.as_u64()
                {
                    leases.insert(id);
                }
                collect_refs(val, accounts, leases);
            }
        }
        _ => {}
    }
}

pub mod stats;
pub use stats::{Activity, ChainStats, LeaseMeta, MAX_SERIES_POINTS};

/// A sampled point of the counters: (height, block time, counters at that height).
pub type SeriesPoint = (u64, u64, ChainStats);

impl Index {
    fn json_or_default<T: serde::de::DeserializeOwned + Default>(
        &self,
        v: Option<redb::AccessGuard<'_, &[u8]>>,
    ) -> Result<T, IndexError> {
        match v {
            None => Ok(T::default()),
            Some(v) => serde_json::from_slice(v.value()).map_err(|e| self.corrupt(e)),
        }
    }

    /// The cumulative counters at the indexed height.
    pub fn chain_stats(&self) -> Result<ChainStats, IndexError> {
        let r = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = r.open_table(stats::CHAIN_STATS).map_err(|e| self.err(e))?;
        self.json_or_default(t.get(stats::STATS_KEY).map_err(|e| self.err(e))?)
    }

    /// The time of an indexed block.
    pub fn block_time(&self, height: u64) -> Result<Option<u64>, IndexError> {
        let r = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = r.open_table(stats::BLOCK_TIMES).map_err(|e| self.err(e))?;
        Ok(t.get(height).map_err(|e| self.err(e))?.map(|v| v.value()))
    }

    /// The height of the block with this hash.
    pub fn block_height_by_hash(&self, hash: &Hash) -> Result<Option<u64>, IndexError> {
        let r = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = r.open_table(stats::BLOCK_HASHES).map_err(|e| self.err(e))?;
        Ok(t.get(hash.as_bytes().as_slice())
            .map_err(|e| self.err(e))?
            .map(|v| v.value()))
    }

    /// The counters sampled at up to `points` heights spread evenly from 1 to the indexed
    /// height (each the counters as of that height).
    pub fn series(&self, points: usize) -> Result<Vec<SeriesPoint>, IndexError> {
        let top = self.indexed_height()?;
        let points = points.clamp(1, MAX_SERIES_POINTS) as u64;
        if top == 0 {
            return Ok(Vec::new());
        }
        let n = points.min(top);
        let r = self.db.begin_read().map_err(|e| self.err(e))?;
        let series = r.open_table(stats::SERIES).map_err(|e| self.err(e))?;
        let times = r.open_table(stats::BLOCK_TIMES).map_err(|e| self.err(e))?;
        let mut out = Vec::with_capacity(n as usize);
        for i in 0..n {
            let h = if n == 1 {
                top
            } else {
                1 + ((i as u128 * (top - 1) as u128) / (n - 1) as u128) as u64
            };
            let stats = match series.range(0..=h).map_err(|e| self.err(e))?.next_back() {
                Some(item) => {
                    let (_, v) = item.map_err(|e| self.err(e))?;
                    serde_json::from_slice(v.value()).map_err(|e| self.corrupt(e))?
                }
                None => ChainStats::default(),
            };
            let time = times
                .get(h)
                .map_err(|e| self.err(e))?
                .map_or(0, |v| v.value());
            out.push((h, time, stats));
        }
        Ok(out)
    }

    /// Who a lease is between, as seen when it opened.
    pub fn lease_meta(&self, lease: u64) -> Result<Option<LeaseMeta>, IndexError> {
        let r = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = r.open_table(stats::LEASE_META).map_err(|e| self.err(e))?;
        match t.get(lease).map_err(|e| self.err(e))? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(v.value())
                .map(Some)
                .map_err(|e| self.corrupt(e)),
        }
    }

    /// A provider's lease ids, newest first: up to `limit` below `before`, and where to
    /// continue.
    pub fn provider_leases(
        &self,
        provider: &AccountId,
        before: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<u64>, Option<u64>), IndexError> {
        let lo = [provider.0.as_slice(), &[0u8; 8]].concat();
        let hi = match before {
            Some(b) => [provider.0.as_slice(), &b.to_be_bytes()].concat(),
            None => [provider.0.as_slice(), &[0xffu8; 8]].concat(),
        };
        let r = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = r
            .open_table(stats::PROVIDER_LEASES)
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        let mut next = None;
        for item in t
            .range::<&[u8]>(lo.as_slice()..hi.as_slice())
            .map_err(|e| self.err(e))?
            .rev()
        {
            let (k, _) = item.map_err(|e| self.err(e))?;
            if out.len() == limit {
                next = out.last().copied();
                break;
            }
            let mut id = [0u8; 8];
            id.copy_from_slice(&k.value()[20..28]);
            out.push(u64::from_be_bytes(id));
        }
        Ok((out, next))
    }

    /// The end-of-block events about a lease, oldest first (at most `limit`), each with its
    /// height.
    pub fn lease_events(
        &self,
        lease: u64,
        limit: usize,
    ) -> Result<Vec<(u64, serde_json::Value)>, IndexError> {
        let lo = [lease.to_be_bytes().as_slice(), &[0u8; 12]].concat();
        let hi = [lease.to_be_bytes().as_slice(), &[0xffu8; 12]].concat();
        let r = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = r.open_table(stats::LEASE_EVENTS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in t
            .range::<&[u8]>(lo.as_slice()..=hi.as_slice())
            .map_err(|e| self.err(e))?
            .take(limit)
        {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let mut h = [0u8; 8];
            h.copy_from_slice(&k.value()[8..16]);
            let json = serde_json::from_slice(v.value()).map_err(|e| self.corrupt(e))?;
            out.push((u64::from_be_bytes(h), json));
        }
        Ok(out)
    }

    /// What the index saw an account do (default if nothing).
    pub fn activity(&self, account: &AccountId) -> Result<Activity, IndexError> {
        let r = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = r.open_table(stats::ACTIVITY).map_err(|e| self.err(e))?;
        self.json_or_default(t.get(account.0.as_slice()).map_err(|e| self.err(e))?)
    }

    /// Many accounts' activity in one read transaction.
    pub fn activities(&self, accounts: &[AccountId]) -> Result<Vec<Activity>, IndexError> {
        let r = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = r.open_table(stats::ACTIVITY).map_err(|e| self.err(e))?;
        accounts
            .iter()
            .map(|a| self.json_or_default(t.get(a.0.as_slice()).map_err(|e| self.err(e))?))
            .collect()
    }
}

#[cfg(test)]
mod tests;
