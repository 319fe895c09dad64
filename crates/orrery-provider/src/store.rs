//! The agent's data directory: one folder per lease, written so that a crash at any instant
//! leaves either the previous or the next consistent snapshot.
//!
//! ```text
//! <data_dir>/leases/<lease id>/
//!     bundle.bin        the job bundle, as fetched (checked against the lease's job hash)
//!     state.<k>.bin     the last saved state_k, named by its step: a crash after writing it
//!                       but before progress.json leaves the previous pair whole
//!     checkpoints.bin   checkpoint(state_0) … checkpoint(state_k), 32 bytes each (append-only)
//!     progress.json     { k, cost, wall_ms } of that snapshot (written last: the commit point)
//!     states/<k>.bin    a few states kept along the run (for the referee's replays)
//!     outcome.json      the finished run: claim (a failure claim for a job that failed
//!                       deterministically), units, wall time, the failure's note
//!     result.bin        the finished run's leaves (32 bytes each; markers after a failure)
//!     output.bin        the finished run's output bytes (absent after a failure)
//! ```
//!
//! Every file is written to a temporary name and renamed into place. A snapshot whose state
//! does not match its last checkpoint is refused by `workload::run` on resume, and the run then
//! starts afresh: a torn snapshot costs time, never a wrong result.
//!
//! # Kept states
//!
//! A dispute's referee needs `state_(d−1)` for a step `d` known only when the bisection ends,
//! within one dispute round. Replaying from `state_0` costs up to a whole run, which for a long
//! job is longer than the round; so a run keeps at most [`MAX_KEPT_STATES`] states, evenly
//! spaced, within [`MAX_KEPT_STATE_BYTES`], and a replay starts from the nearest one (checked
//! against the run's checkpoint before it is used).

use orrery_types::hash::{HASH_LEN, Hash};
use orrery_types::tx::{LeaseId, ResultClaim};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Most states a run keeps for referee replays: a replay then costs at most `1/MAX_KEPT_STATES`
/// of the run (plus the snapshot interval).
pub const MAX_KEPT_STATES: u64 = 32;
/// Most bytes of kept states per lease: large ML states keep fewer (at least one), so a lease's
/// folder stays within disk a provider expects to spend.
pub const MAX_KEPT_STATE_BYTES: u64 = 256 * 1024 * 1024;

/// Largest bundle kept (the node's own blob limit is lower).
pub const MAX_STORED_BUNDLE_BYTES: u64 = orrery_exec::limits::MAX_BUNDLE_BYTES as u64;

/// Where a resumable run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Index of the saved state.
    pub k: u64,
    /// Cost spent up to it.
    pub cost: u64,
    /// Wall time spent up to it, over every attempt.
    pub wall_ms: u64,
}

/// A finished run, as the agent claims it: an output, or a deterministic failure (then
/// `claim.failure` says where and why, and the checkpoints end in the failure's marker).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The claim it seals and reveals.
    pub claim: ResultClaim,
    /// Every leaf `0..=n` (for dispute moves and proofs): checkpoints, then markers after a
    /// failure.
    pub checkpoints: Vec<Hash>,
    /// Metered cost of the run (up to and including the failed call, for a failure).
    pub units: u64,
    /// Wall time of the run, over every attempt.
    pub wall_ms: u64,
    /// For a failure, the runtime's message (revealed as the claim's note).
    pub note: String,
}

#[derive(Serialize, Deserialize)]
struct OutcomeFile {
    claim: ResultClaim,
    units: u64,
    wall_ms: u64,
    #[serde(default)]
    note: String,
}

/// The data directory.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Open (creating) the data directory.
    pub fn open(root: &Path) -> std::io::Result<Store> {
        std::fs::create_dir_all(root.join("leases"))?;
        Ok(Store {
            root: root.to_path_buf(),
        })
    }

    /// The folder of one lease.
    pub fn lease(&self, id: LeaseId) -> LeaseDir {
        LeaseDir {
            dir: self.root.join("leases").join(id.to_string()),
        }
    }

    /// Leases with a folder.
    pub fn leases(&self) -> Vec<LeaseId> {
        let Ok(entries) = std::fs::read_dir(self.root.join("leases")) else {
            return Vec::new();
        };
        let mut ids: Vec<LeaseId> = entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        ids.sort();
        ids
    }
}

/// One lease's folder.
#[derive(Clone, Debug)]
pub struct LeaseDir {
    dir: PathBuf,
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

fn hashes_to_bytes(hashes: &[Hash]) -> Vec<u8> {
    hashes.iter().flat_map(|h| h.0).collect()
}

fn hashes_from_bytes(bytes: &[u8]) -> Option<Vec<Hash>> {
    if !bytes.len().is_multiple_of(HASH_LEN) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(HASH_LEN)
            .map(|c| {
                let mut h = [0u8; HASH_LEN];
                h.copy_from_slice(c);
                Hash(h)
            })
            .collect(),
    )
}

impl LeaseDir {
    /// The folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn ensure(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)
    }

    /// Keep the bundle.
    pub fn save_bundle(&self, bytes: &[u8]) -> std::io::Result<()> {
        self.ensure()?;
        write_atomic(&self.file("bundle.bin"), bytes)
    }

    /// The kept bundle, if any.
    pub fn bundle(&self) -> Option<Vec<u8>> {
        let path = self.file("bundle.bin");
        if std::fs::metadata(&path).ok()?.len() > MAX_STORED_BUNDLE_BYTES {
            return None;
        }
        std::fs::read(path).ok()
    }

    /// Save a resumable snapshot: state and checkpoints first, progress last. The checkpoint
    /// file is append-only within a run (rewriting it whole would make saving quadratic in the
    /// step count); it is rewritten when it holds more than `checkpoints` (a new run).
    pub fn save_progress(
        &self,
        progress: Progress,
        state: &[u8],
        checkpoints: &[Hash],
    ) -> std::io::Result<()> {
        use std::io::Write;
        self.ensure()?;
        write_atomic(&self.file(&format!("state.{}.bin", progress.k)), state)?;
        let path = self.file("checkpoints.bin");
        let held = std::fs::metadata(&path).map_or(0, |m| m.len() / HASH_LEN as u64) as usize;
        if held > checkpoints.len() || held == 0 {
            write_atomic(&path, &hashes_to_bytes(checkpoints))?;
        } else {
            let mut f = std::fs::OpenOptions::new().append(true).open(&path)?;
            // Drop a torn trailing partial hash before appending.
            let len = f.metadata()?.len();
            f.set_len(len - len % HASH_LEN as u64)?;
            f.write_all(&hashes_to_bytes(&checkpoints[held..]))?;
            f.sync_data()?;
        }
        let json = serde_json::to_vec(&progress).map_err(std::io::Error::other)?;
        write_atomic(&self.file("progress.json"), &json)?;
        // Older states are no longer referred to; a failure to remove one wastes disk only.
        for k in self.saved_state_steps() {
            if k != progress.k {
                let _ = std::fs::remove_file(self.file(&format!("state.{k}.bin")));
            }
        }
        Ok(())
    }

    /// Steps of the `state.<k>.bin` files present.
    fn saved_state_steps(&self) -> Vec<u64> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| {
                let name = e.ok()?.file_name();
                name.to_str()?
                    .strip_prefix("state.")?
                    .strip_suffix(".bin")?
                    .parse()
                    .ok()
            })
            .collect()
    }

    /// The last snapshot: progress, `state_k`, checkpoints `0..=k`. `None` if absent or
    /// inconsistent in length (a torn write).
    pub fn progress(&self) -> Option<(Progress, Vec<u8>, Vec<Hash>)> {
        let p: Progress =
            serde_json::from_slice(&std::fs::read(self.file("progress.json")).ok()?).ok()?;
        let state = std::fs::read(self.file(&format!("state.{}.bin", p.k))).ok()?;
        let bytes = std::fs::read(self.file("checkpoints.bin")).ok()?;
        let whole = bytes.len() - bytes.len() % HASH_LEN;
        let mut cps = hashes_from_bytes(&bytes[..whole])?;
        let want = usize::try_from(p.k.checked_add(1)?).ok()?;
        if cps.len() < want {
            return None;
        }
        cps.truncate(want);
        Some((p, state, cps))
    }

    /// Drop the snapshot and the kept states (a run starting afresh).
    pub fn clear_progress(&self) -> std::io::Result<()> {
        let states = self
            .saved_state_steps()
            .into_iter()
            .map(|k| format!("state.{k}.bin"));
        // `state.bin`: the state's name before states were named by their step.
        let names = ["progress.json", "checkpoints.bin", "state.bin"]
            .map(String::from)
            .into_iter()
            .chain(states);
        for name in names {
            match std::fs::remove_file(self.file(&name)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        match std::fs::remove_dir_all(self.file("states")) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Keep `state_k` for referee replays.
    pub fn keep_state(&self, k: u64, state: &[u8]) -> std::io::Result<()> {
        let dir = self.file("states");
        std::fs::create_dir_all(&dir)?;
        write_atomic(&dir.join(format!("{k}.bin")), state)
    }

    /// The kept state with the largest step `≤ k`, if any (not yet checked against a
    /// checkpoint: the caller does that).
    pub fn kept_state_at_or_before(&self, k: u64) -> Option<(u64, Vec<u8>)> {
        let entries = std::fs::read_dir(self.file("states")).ok()?;
        let best = entries
            .filter_map(|e| {
                let name = e.ok()?.file_name();
                name.to_str()?.strip_suffix(".bin")?.parse::<u64>().ok()
            })
            .filter(|&j| j <= k)
            .max()?;
        let state = std::fs::read(self.file("states").join(format!("{best}.bin"))).ok()?;
        Some((best, state))
    }

    /// Record a finished run and its output (none for a failure).
    pub fn save_outcome(&self, outcome: &Outcome, output: Option<&[u8]>) -> std::io::Result<()> {
        self.ensure()?;
        if let Some(output) = output {
            write_atomic(&self.file("output.bin"), output)?;
        }
        write_atomic(
            &self.file("result.bin"),
            &hashes_to_bytes(&outcome.checkpoints),
        )?;
        let json = serde_json::to_vec(&OutcomeFile {
            claim: outcome.claim,
            units: outcome.units,
            wall_ms: outcome.wall_ms,
            note: outcome.note.clone(),
        })
        .map_err(std::io::Error::other)?;
        write_atomic(&self.file("outcome.json"), &json)
    }

    /// The finished run, if recorded (and consistent: checkpoints match the claimed root).
    pub fn outcome(&self) -> Option<Outcome> {
        let f: OutcomeFile =
            serde_json::from_slice(&std::fs::read(self.file("outcome.json")).ok()?).ok()?;
        let checkpoints = hashes_from_bytes(&std::fs::read(self.file("result.bin")).ok()?)?;
        (orrery_types::workload::checkpoint_root(&checkpoints) == f.claim.checkpoint_root
            && checkpoints.len() as u64 == f.claim.steps.checked_add(1)?)
        .then_some(Outcome {
            claim: f.claim,
            checkpoints,
            units: f.units,
            wall_ms: f.wall_ms,
            note: f.note,
        })
    }

    /// The finished run's output bytes.
    pub fn output(&self) -> Option<Vec<u8>> {
        std::fs::read(self.file("output.bin")).ok()
    }

    /// Forget the lease (it is final).
    pub fn remove(&self) -> std::io::Result<()> {
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}
