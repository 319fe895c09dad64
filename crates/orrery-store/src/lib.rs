//! Crash-safe persistence of the ledger.
//!
//! # Layout (one redb database)
//! - `state`: state key bytes → canonical value bytes (see `orrery_ledger::StateKey`);
//! - `blocks`: height → canonical block bytes;
//! - `meta`: `height` (u64 BE), `root` (32 bytes), `genesis` (hash of the genesis TOML).
//!
//! # Atomicity
//! [`Ledger::apply`] applies a block in memory, then writes its state changes, the block and the
//! new meta in **one** write transaction with immediate durability. redb commits are atomic
//! (copy-on-write B-trees with a checksummed commit slot), so after `kill -9` at any instant the
//! database holds either the block fully or not at all. [`Ledger::open`] rebuilds the state from
//! the entries, recomputes the root and refuses to start if it differs from the stored root.
//!
//! If the in-memory apply succeeds but the write fails (disk full), memory is ahead of disk:
//! the ledger reloads itself from disk and reports the error, so it never serves state that is
//! not stored.

use orrery_ledger::{BlockError, BlockOutcome, Genesis, LoadError, Signatures, State, apply_block};
use orrery_types::block::Block;
use orrery_types::hash::Hash;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::{Path, PathBuf};

const STATE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("state");
const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be read or written.
    #[error("ledger database {path}: {source}")]
    Db {
        /// The database file.
        path: PathBuf,
        /// redb's error.
        #[source]
        source: Box<redb::Error>,
    },
    /// The stored state does not rebuild.
    #[error("stored ledger state is unusable: {0}")]
    Load(#[from] LoadError),
    /// The stored root does not match the rebuilt state.
    #[error(
        "stored state root {stored} does not match the rebuilt state's root {rebuilt}: the database is corrupt; restore it or resync"
    )]
    RootMismatch {
        /// In `meta`.
        stored: Hash,
        /// Recomputed.
        rebuilt: Hash,
    },
    /// The database belongs to another genesis.
    #[error("the database at {0} was created from a different genesis; use another data directory")]
    WrongGenesis(PathBuf),
    /// The genesis is invalid.
    #[error(transparent)]
    Genesis(#[from] orrery_ledger::GenesisError),
    /// The block was refused by the ledger.
    #[error(transparent)]
    Block(#[from] BlockError),
    /// A stored block does not decode.
    #[error("stored block {0} is corrupt")]
    CorruptBlock(u64),
}

/// The ledger state together with its on-disk store.
pub struct Ledger {
    db: Database,
    path: PathBuf,
    state: State,
}

fn genesis_id(genesis: &Genesis) -> Hash {
    Hash::tagged(b"orrery/genesis", genesis.to_toml().as_bytes())
}

impl Ledger {
    /// Open the database at `path`, creating it from `genesis` if it does not exist yet, and
    /// load the last fully applied state.
    pub fn open(path: &Path, genesis: &Genesis) -> Result<Ledger, StoreError> {
        let db = Database::create(path).map_err(|e| db_error(path, e))?;
        Ledger::open_db(db, path, genesis)
    }

    /// [`Ledger::open`] on any redb storage backend instead of a file: the deterministic
    /// simulation tests give each validator a disk they can crash, tear and fail. `label` names
    /// the store in errors and logs.
    pub fn open_with_backend(
        backend: impl redb::StorageBackend,
        label: &Path,
        genesis: &Genesis,
    ) -> Result<Ledger, StoreError> {
        let db = Database::builder()
            .create_with_backend(backend)
            .map_err(|e| db_error(label, e))?;
        Ledger::open_db(db, label, genesis)
    }

    fn open_db(db: Database, path: &Path, genesis: &Genesis) -> Result<Ledger, StoreError> {
        let db_err = |e: redb::Error| db_error(path, e);
        let gid = genesis_id(genesis);
        let stored_gid = {
            let r = db.begin_read().map_err(|e| db_err(e.into()))?;
            match r.open_table(META) {
                Ok(t) => t
                    .get("genesis")
                    .map_err(|e| db_err(e.into()))?
                    .map(|v| v.value().to_vec()),
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(db_err(e.into())),
            }
        };
        // Build the genesis state only for a new database; an existing one is loaded instead.
        let state = match stored_gid {
            None => {
                let state = State::genesis(genesis)?;
                write_snapshot(&db, &state, gid).map_err(db_err)?;
                state
            }
            Some(g) if g == gid.as_bytes() => load_state(&db, path)?,
            Some(_) => return Err(StoreError::WrongGenesis(path.to_path_buf())),
        };
        let ledger = Ledger {
            db,
            path: path.to_path_buf(),
            state,
        };
        tracing::info!(height = ledger.state.height(), root = %ledger.state.root(), "ledger opened");
        Ok(ledger)
    }

    fn db_err(&self, e: impl Into<redb::Error>) -> StoreError {
        db_error(&self.path, e)
    }

    /// Rebuild the in-memory state from disk.
    fn reload(&mut self) -> Result<(), StoreError> {
        self.state = load_state(&self.db, &self.path)?;
        Ok(())
    }

    /// The current state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Apply `block` and persist it atomically. On any error the ledger's state is the last
    /// stored one.
    pub fn apply(
        &mut self,
        block: &Block,
        signatures: Signatures,
    ) -> Result<BlockOutcome, StoreError> {
        let outcome = match apply_block(&mut self.state, block, signatures) {
            Ok(o) => o,
            Err(e @ (BlockError::Invariant(_) | BlockError::RefereeHost { .. })) => {
                // A ledger bug, or the referee's host failing, mutated memory before the block
                // was refused: go back to disk (the block is not applied; retry it).
                tracing::error!(error = %e, height = block.height, "block not applied; reloading the stored state");
                self.reload()?;
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
        };
        if let Err(e) = self.persist(block, &outcome) {
            tracing::error!(error = %e, height = block.height, "could not persist block; reloading");
            self.reload()?;
            return Err(self.db_err(e));
        }
        Ok(outcome)
    }

    fn persist(&self, block: &Block, outcome: &BlockOutcome) -> Result<(), redb::Error> {
        let w = self.db.begin_write()?;
        {
            let mut state = w.open_table(STATE)?;
            for change in &outcome.changes {
                match &change.value {
                    Some(v) => state.insert(change.key.as_slice(), v.as_slice())?,
                    None => state.remove(change.key.as_slice())?,
                };
            }
            let mut blocks = w.open_table(BLOCKS)?;
            blocks.insert(block.height, block.encode().as_slice())?;
            let mut meta = w.open_table(META)?;
            meta.insert("height", block.height.to_be_bytes().as_slice())?;
            meta.insert("root", outcome.state_root.as_bytes().as_slice())?;
        }
        w.commit()?;
        Ok(())
    }

    /// A stored block.
    pub fn block(&self, height: u64) -> Result<Option<Block>, StoreError> {
        let r = self.db.begin_read().map_err(|e| self.db_err(e))?;
        let t = r.open_table(BLOCKS).map_err(|e| self.db_err(e))?;
        let Some(bytes) = t.get(height).map_err(|e| self.db_err(e))? else {
            return Ok(None);
        };
        Block::decode(bytes.value())
            .map(Some)
            .map_err(|_| StoreError::CorruptBlock(height))
    }
}

fn db_error(path: &Path, e: impl Into<redb::Error>) -> StoreError {
    StoreError::Db {
        path: path.to_path_buf(),
        source: Box::new(e.into()),
    }
}

/// Write a whole state as the database's first contents.
fn write_snapshot(db: &Database, state: &State, gid: Hash) -> Result<(), redb::Error> {
    let w = db.begin_write()?;
    {
        let mut table = w.open_table(STATE)?;
        for (k, v) in state.entries() {
            table.insert(k.as_slice(), v.as_slice())?;
        }
        w.open_table(BLOCKS)?;
        let mut meta = w.open_table(META)?;
        meta.insert("genesis", gid.as_bytes().as_slice())?;
        meta.insert("height", state.height().to_be_bytes().as_slice())?;
        meta.insert("root", state.root().as_bytes().as_slice())?;
    }
    w.commit()?;
    Ok(())
}

/// Rebuild the state from its stored entries and check it against the stored root.
fn load_state(db: &Database, path: &Path) -> Result<State, StoreError> {
    let err = |e: redb::Error| db_error(path, e);
    let r = db.begin_read().map_err(|e| err(e.into()))?;
    let table = r.open_table(STATE).map_err(|e| err(e.into()))?;
    let mut entries = Vec::new();
    for item in table.iter().map_err(|e| err(e.into()))? {
        let (k, v) = item.map_err(|e| err(e.into()))?;
        entries.push((k.value().to_vec(), v.value().to_vec()));
    }
    let state = State::from_entries(entries)?;
    let meta = r.open_table(META).map_err(|e| err(e.into()))?;
    let stored_root = meta
        .get("root")
        .map_err(|e| err(e.into()))?
        .and_then(|v| <[u8; 32]>::try_from(v.value()).ok())
        .map(Hash)
        .unwrap_or(Hash::ZERO);
    if stored_root != state.root() {
        return Err(StoreError::RootMismatch {
            stored: stored_root,
            rebuilt: state.root(),
        });
    }
    Ok(state)
}
