//! The gateway's channel table and receipts (redb, `<data_dir>/gateway.redb`).
//!
//! # Channels
//! A channel pays one provider for one model out of one key, with cumulative vouchers:
//! voucher `n` says "this channel owes `total` for `n` responses". Channel ids are
//! `base + counter`: `base` is drawn at random once per node (its high 32 bits) and stored, the
//! counter is stored before a channel is used, so two gateways signing for the same key
//! almost surely never share a channel (2⁻³² per pair of nodes) and one gateway never reuses
//! one.
//!
//! Vouchers of a channel are signed one at a time under a lock, each `total` the previous
//! plus the response's charge and `responses` the previous plus one; the channel's new state
//! is written before the voucher leaves the node.
//!
//! # Crashes
//! A channel's creation is written durably; voucher updates are written without waiting for
//! the disk (a durable commit at most every [`DURABLE_INTERVAL`], keeping fsync off all but a
//! few requests). So a crash may forget the last second of vouchers of a channel — the node would then sign a *second* voucher with the same
//! count and a lower total, which a provider that keeps the highest total ignores, and
//! undercount the key's outstanding vouchers. To rule that out, every channel found on
//! opening is *retired*: it is never signed on again (requests after a restart open new
//! channels), and it still counts toward its key's outstanding amount.

use orrery_client::inference::InferenceReceiptView;
use orrery_types::amount::Amount;
use orrery_types::crypto::AccountId;
use orrery_types::hash::Hash;
use orrery_types::inference::{ApiKey, SignedVoucher, Voucher};
use orrery_types::tx::ChainId;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Channel id → key (20) ‖ provider (20) ‖ weights (32) ‖ total (16, BE) ‖ responses (8, BE).
const CHANNELS: TableDefinition<u64, &[u8]> = TableDefinition::new("channels");
/// Leaf → receipt JSON.
const RECEIPTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("receipts");
const RECORD_BYTES: usize = 20 + 20 + 32 + 16 + 8;

/// Longest time between two durable commits of voucher updates (see the module docs): a
/// crash forgets at most this much of the outstanding amounts, and at a few hundred requests
/// a second only one in hundreds waits for the disk.
pub const DURABLE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Why the channel table failed.
#[derive(Debug, thiserror::Error)]
pub enum VoucherStoreError {
    /// redb failed.
    #[error(
        "gateway store {path}: {source} (check the disk; the gateway pays nobody until it can write)"
    )]
    Db {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<redb::Error>,
    },
    /// A record does not decode.
    #[error(
        "gateway store {path}: corrupt record ({detail}); move the file away to start fresh channels"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What.
        detail: String,
    },
    /// The channel was signed past what an amount can hold.
    #[error("channel {channel} would owe more than an amount can hold")]
    Overflow {
        /// The channel.
        channel: u64,
    },
}

/// One channel's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Channel {
    /// Its id.
    pub id: u64,
    /// The paying key.
    pub key: AccountId,
    /// The provider paid.
    pub provider: AccountId,
    /// The model's weights.
    pub weights: Hash,
    /// Everything signed so far.
    pub total: Amount,
    /// Responses paid so far.
    pub responses: u64,
}

#[derive(Default)]
struct Table {
    channels: HashMap<u64, Channel>,
    /// (key, provider, weights) → the channel this process signs on.
    active: HashMap<(AccountId, AccountId, Hash), u64>,
    /// key → its channels, active and retired.
    by_key: HashMap<AccountId, Vec<u64>>,
    next: u64,
    last_durable: Option<std::time::Instant>,
}

/// The channel table and receipt store.
pub struct VoucherStore {
    db: Database,
    path: PathBuf,
    base: u64,
    table: Mutex<Table>,
}

impl std::fmt::Debug for VoucherStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VoucherStore({})", self.path.display())
    }
}

fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // The standard library seeds each RandomState from the operating system's randomness.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

impl VoucherStore {
    /// Open or create the store; every channel already in it is retired.
    pub fn open(path: &Path) -> Result<VoucherStore, VoucherStoreError> {
        let err = |e: redb::Error| VoucherStoreError::Db {
            path: path.to_path_buf(),
            source: Box::new(e),
        };
        let db = Database::create(path).map_err(|e| err(e.into()))?;
        let w = db.begin_write().map_err(|e| err(e.into()))?;
        let (base, next, rows) = {
            let mut meta = w.open_table(META).map_err(|e| err(e.into()))?;
            w.open_table(RECEIPTS).map_err(|e| err(e.into()))?;
            let channels = w.open_table(CHANNELS).map_err(|e| err(e.into()))?;
            let base = match meta.get("base").map_err(|e| err(e.into()))? {
                Some(b) => b.value(),
                None => random_u64() & !0xffff_ffff,
            };
            meta.insert("base", base).map_err(|e| err(e.into()))?;
            let next = meta
                .get("next")
                .map_err(|e| err(e.into()))?
                .map_or(0, |v| v.value());
            let mut rows = Vec::new();
            for row in channels.iter().map_err(|e| err(e.into()))? {
                let (k, v) = row.map_err(|e| err(e.into()))?;
                rows.push((k.value(), v.value().to_vec()));
            }
            (base, next, rows)
        };
        w.commit().map_err(|e| err(e.into()))?;
        let mut table = Table {
            next,
            ..Table::default()
        };
        for (id, bytes) in rows {
            let c = decode(id, &bytes).ok_or_else(|| VoucherStoreError::Corrupt {
                path: path.to_path_buf(),
                detail: format!("channel {id} has {} bytes", bytes.len()),
            })?;
            table.by_key.entry(c.key).or_default().push(id);
            table.channels.insert(id, c);
        }
        Ok(VoucherStore {
            db,
            path: path.to_path_buf(),
            base,
            table: Mutex::new(table),
        })
    }

    fn err(&self, e: impl Into<redb::Error>) -> VoucherStoreError {
        VoucherStoreError::Db {
            path: self.path.clone(),
            source: Box::new(e.into()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // A panic while holding the lock cannot leave a half-written channel: every change
        // is written to redb before the in-memory table, so the table stays usable.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The channel this gateway signs on for (key, provider, weights), created (durably) if
    /// there is none yet in this process.
    pub fn channel_for(
        &self,
        key: AccountId,
        provider: AccountId,
        weights: Hash,
    ) -> Result<u64, VoucherStoreError> {
        let mut t = self.lock();
        if let Some(id) = t.active.get(&(key, provider, weights)) {
            return Ok(*id);
        }
        let id = self.base.wrapping_add(t.next);
        let c = Channel {
            id,
            key,
            provider,
            weights,
            total: Amount(0),
            responses: 0,
        };
        let w = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            w.open_table(META)
                .map_err(|e| self.err(e))?
                .insert("next", t.next + 1)
                .map_err(|e| self.err(e))?;
            w.open_table(CHANNELS)
                .map_err(|e| self.err(e))?
                .insert(id, encode(&c).as_slice())
                .map_err(|e| self.err(e))?;
        }
        w.commit().map_err(|e| self.err(e))?;
        t.next += 1;
        t.channels.insert(id, c);
        t.active.insert((key, provider, weights), id);
        t.by_key.entry(key).or_default().push(id);
        Ok(id)
    }

    /// Sign the channel's next voucher: `total + charged`, `responses + 1`.
    pub fn sign_next(
        &self,
        api_key: &ApiKey,
        chain_id: &ChainId,
        channel: u64,
        charged: Amount,
    ) -> Result<SignedVoucher, VoucherStoreError> {
        let mut t = self.lock();
        let Some(mut c) = t.channels.get(&channel).copied() else {
            return Err(VoucherStoreError::Corrupt {
                path: self.path.clone(),
                detail: format!("channel {channel} is not in the table"),
            });
        };
        assert_eq!(
            c.key,
            api_key.id(),
            "a channel is signed by its own key only"
        );
        c.total = c
            .total
            .checked_add(charged)
            .ok_or(VoucherStoreError::Overflow { channel })?;
        c.responses += 1;
        let now = std::time::Instant::now();
        let durable = t
            .last_durable
            .is_none_or(|at| now.duration_since(at) >= DURABLE_INTERVAL);
        self.write_channel(&c, durable)?;
        if durable {
            t.last_durable = Some(now);
        }
        t.channels.insert(channel, c);
        Ok(Voucher {
            chain_id: chain_id.clone(),
            key: api_key.keypair().public_key().clone(),
            provider: c.provider,
            channel,
            total: c.total,
            responses: c.responses,
        }
        .sign(api_key.keypair()))
    }

    fn write_channel(&self, c: &Channel, durable: bool) -> Result<(), VoucherStoreError> {
        let mut w = self.db.begin_write().map_err(|e| self.err(e))?;
        if !durable {
            w.set_durability(Durability::None)
                .map_err(|e| self.err(redb::Error::from(e)))?;
        }
        w.open_table(CHANNELS)
            .map_err(|e| self.err(e))?
            .insert(c.id, encode(c).as_slice())
            .map_err(|e| self.err(e))?;
        w.commit().map_err(|e| self.err(e))
    }

    /// Every channel of a key (active and retired).
    pub fn channels_of(&self, key: &AccountId) -> Vec<Channel> {
        let t = self.lock();
        t.by_key
            .get(key)
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| t.channels.get(id).copied())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Record a served response.
    pub fn put_receipt(&self, r: &InferenceReceiptView) -> Result<(), VoucherStoreError> {
        let json = serde_json::to_vec(r).map_err(|e| VoucherStoreError::Corrupt {
            path: self.path.clone(),
            detail: e.to_string(),
        })?;
        let mut w = self.db.begin_write().map_err(|e| self.err(e))?;
        w.set_durability(Durability::None)
            .map_err(|e| self.err(redb::Error::from(e)))?;
        w.open_table(RECEIPTS)
            .map_err(|e| self.err(e))?
            .insert(r.leaf.as_bytes().as_slice(), json.as_slice())
            .map_err(|e| self.err(e))?;
        w.commit().map_err(|e| self.err(e))
    }

    /// A served response by its leaf.
    pub fn receipt(&self, leaf: &Hash) -> Result<Option<InferenceReceiptView>, VoucherStoreError> {
        let r = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = r.open_table(RECEIPTS).map_err(|e| self.err(e))?;
        match t.get(leaf.as_bytes().as_slice()).map_err(|e| self.err(e))? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(v.value()).map(Some).map_err(|e| {
                VoucherStoreError::Corrupt {
                    path: self.path.clone(),
                    detail: e.to_string(),
                }
            }),
        }
    }
}

fn encode(c: &Channel) -> Vec<u8> {
    let mut v = Vec::with_capacity(RECORD_BYTES);
    v.extend_from_slice(&c.key.0);
    v.extend_from_slice(&c.provider.0);
    v.extend_from_slice(c.weights.as_bytes());
    v.extend_from_slice(&c.total.units().to_be_bytes());
    v.extend_from_slice(&c.responses.to_be_bytes());
    v
}

fn decode(id: u64, b: &[u8]) -> Option<Channel> {
    if b.len() != RECORD_BYTES {
        return None;
    }
    let key = AccountId(b[0..20].try_into().ok()?);
    let provider = AccountId(b[20..40].try_into().ok()?);
    let weights = Hash(b[40..72].try_into().ok()?);
    let total = Amount(u128::from_be_bytes(b[72..88].try_into().ok()?));
    let responses = u64::from_be_bytes(b[88..96].try_into().ok()?);
    Some(Channel {
        id,
        key,
        provider,
        weights,
        total,
        responses,
    })
}

#[cfg(test)]
mod tests;
