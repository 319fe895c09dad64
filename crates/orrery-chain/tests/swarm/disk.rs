//! A disk the swarm can crash, tear and break: a redb storage backend over memory that keeps
//! what was synced apart from what was only written.
//!
//! # Model
//! - `write` and `set_len` change the *volatile* image and are logged as unsynced;
//!   `sync_data` makes the volatile image durable and clears the log.
//! - [`Disk::crash`] is a power cut: the durable image survives, plus a seeded prefix of the
//!   unsynced operations, the last of which may be torn (only a prefix of its bytes lands), or,
//!   in [`Tearing::Subset`], each unsynced write independently. Then the volatile image is the
//!   durable one again and every backend handed out before the crash is fenced off (a redb
//!   still alive from the crashed incarnation can write nothing more).
//! - [`Disk::trip_after`] makes the disk die in the middle of its `ops`-th operation from now:
//!   that write is torn, it and every later operation fail, and [`Disk::tripped`] turns true so
//!   that the harness crashes and restarts the validator (a crash in the middle of a write).
//!
//! A validator that skips an fsync loses a block it reported as stored at the next crash: that
//! is the bug this model exists to catch.

use std::io;
use std::sync::{Arc, Mutex};

/// How unsynced writes survive a crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tearing {
    /// In order: a prefix of the unsynced operations, the last one possibly torn.
    Prefix,
    /// Each unsynced write survives or not on its own; a resize survives in order.
    Subset,
}

#[derive(Debug)]
enum Op {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

/// What the disk did, for the sweep's report.
#[derive(Clone, Copy, Debug, Default)]
pub struct DiskStats {
    /// Power cuts.
    pub crashes: u64,
    /// Unsynced operations lost (wholly or partly) in crashes.
    pub lost_ops: u64,
    /// Writes that landed torn.
    pub torn_writes: u64,
    /// Deaths in the middle of an operation.
    pub trips: u64,
}

#[derive(Debug)]
struct DiskState {
    durable: Vec<u8>,
    volatile: Vec<u8>,
    unsynced: Vec<Op>,
    generation: u64,
    /// Operations left before the disk dies; `None`: healthy.
    trip_in: Option<u64>,
    tripped: bool,
    tearing: Tearing,
    rng: super::plan::Rng,
    stats: DiskStats,
}

/// One validator's disk, shared by all its incarnations.
#[derive(Clone, Debug)]
pub struct Disk {
    state: Arc<Mutex<DiskState>>,
}

impl Disk {
    /// An empty disk whose crash outcomes are drawn from `seed`.
    pub fn new(seed: u64, tearing: Tearing) -> Disk {
        Disk {
            state: Arc::new(Mutex::new(DiskState {
                durable: Vec::new(),
                volatile: Vec::new(),
                unsynced: Vec::new(),
                generation: 0,
                trip_in: None,
                tripped: false,
                tearing,
                rng: super::plan::Rng::new(seed),
                stats: DiskStats::default(),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DiskState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A redb backend for the current incarnation.
    pub fn backend(&self) -> Backend {
        Backend {
            state: self.state.clone(),
            generation: self.lock().generation,
        }
    }

    /// Die in the middle of the `ops`-th write or sync from now.
    pub fn trip_after(&self, ops: u64) {
        self.lock().trip_in = Some(ops.max(1));
    }

    /// No more deaths: a death not yet reached is called off.
    pub fn heal(&self) {
        self.lock().trip_in = None;
    }

    /// Whether the disk has died and waits for [`Disk::crash`].
    pub fn tripped(&self) -> bool {
        self.lock().tripped
    }

    /// What the disk did so far.
    pub fn stats(&self) -> DiskStats {
        self.lock().stats
    }

    /// Cut the power: keep the durable image and a seeded part of what was not synced.
    pub fn crash(&self) {
        let mut s = self.lock();
        let s = &mut *s;
        s.stats.crashes += 1;
        let ops = std::mem::take(&mut s.unsynced);
        let total = ops.len();
        let mut kept = 0;
        match s.tearing {
            Tearing::Prefix => {
                let keep = s.rng.below(total as u64 + 1) as usize;
                for (i, op) in ops.into_iter().enumerate().take(keep) {
                    let last = i + 1 == keep;
                    kept += apply_torn(&mut s.durable, op, last, &mut s.rng, &mut s.stats);
                }
            }
            Tearing::Subset => {
                for op in ops {
                    let survives = matches!(op, Op::SetLen(_)) || s.rng.below(2) == 0;
                    if survives {
                        kept += apply_torn(&mut s.durable, op, true, &mut s.rng, &mut s.stats);
                    }
                }
            }
        }
        s.stats.lost_ops += (total - kept) as u64;
        s.volatile = s.durable.clone();
        s.generation += 1;
        s.trip_in = None;
        s.tripped = false;
    }
}

/// Apply `op` to `image`; a write may be torn when `may_tear`. Returns 1 if it landed whole.
fn apply_torn(
    image: &mut Vec<u8>,
    op: Op,
    may_tear: bool,
    rng: &mut super::plan::Rng,
    stats: &mut DiskStats,
) -> usize {
    match op {
        Op::SetLen(len) => {
            image.resize(len as usize, 0);
            1
        }
        Op::Write(offset, mut data) => {
            let mut whole = 1;
            if may_tear && !data.is_empty() && rng.below(4) == 0 {
                data.truncate(rng.below(data.len() as u64) as usize);
                stats.torn_writes += 1;
                whole = 0;
            }
            write_at(image, offset, &data);
            whole
        }
    }
}

fn write_at(image: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let end = offset as usize + data.len();
    if image.len() < end {
        image.resize(end, 0);
    }
    image[offset as usize..end].copy_from_slice(data);
}

fn dead() -> io::Error {
    io::Error::other("simulated disk failure")
}

/// The redb backend of one incarnation of a validator.
#[derive(Debug)]
pub struct Backend {
    state: Arc<Mutex<DiskState>>,
    generation: u64,
}

impl Backend {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, DiskState>, io::Error> {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.generation != self.generation || s.tripped {
            return Err(dead());
        }
        Ok(s)
    }
}

impl DiskState {
    /// Count down to a trip; true when this operation is the one the disk dies in.
    fn dies_now(&mut self) -> bool {
        match &mut self.trip_in {
            Some(0) | None => false,
            Some(n) => {
                *n -= 1;
                if *n == 0 {
                    self.tripped = true;
                    self.stats.trips += 1;
                    true
                } else {
                    false
                }
            }
        }
    }
}

impl redb::StorageBackend for Backend {
    fn len(&self) -> Result<u64, io::Error> {
        Ok(self.lock()?.volatile.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        let s = self.lock()?;
        let end = offset as usize + out.len();
        if end > s.volatile.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past the end of the disk",
            ));
        }
        out.copy_from_slice(&s.volatile[offset as usize..end]);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        let mut s = self.lock()?;
        if s.dies_now() {
            return Err(dead());
        }
        s.volatile.resize(len as usize, 0);
        s.unsynced.push(Op::SetLen(len));
        Ok(())
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        let mut s = self.lock()?;
        if s.dies_now() {
            return Err(dead());
        }
        let s = &mut *s;
        for op in std::mem::take(&mut s.unsynced) {
            match op {
                Op::SetLen(len) => s.durable.resize(len as usize, 0),
                Op::Write(offset, data) => write_at(&mut s.durable, offset, &data),
            }
        }
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        let mut s = self.lock()?;
        if s.dies_now() {
            // Dies part way through: a prefix of the bytes may reach the platter.
            let keep = s.rng.below(data.len() as u64 + 1) as usize;
            s.unsynced.push(Op::Write(offset, data[..keep].to_vec()));
            s.stats.torn_writes += 1;
            return Err(dead());
        }
        write_at(&mut s.volatile, offset, data);
        s.unsynced.push(Op::Write(offset, data.to_vec()));
        Ok(())
    }
}
