//! The processes of a local network, kept running.
//!
//! `orrery devnet` and `orrery localnet` start every validator (and the devnet every provider
//! agent) as a child process of this binary. A [`Supervisor`] owns them:
//!
//! - **Logs.** Each process writes stdout and stderr to its own file, `logs/<name>.log` in the
//!   network's folder, appended across restarts, so a failed run can be read afterwards.
//! - **Restarts.** [`Supervisor::poll`] notices a process that exited (a crash, `kill -9`,
//!   an out-of-memory kill) and starts it again with the same arguments; a validator resumes
//!   from its data folder and catches up from its peers, an agent resumes its jobs from its
//!   snapshots. Each such event is an [`Incident`] the caller reports and the devnet's
//!   summary lists. A process that dies more than [`MAX_RESTARTS`] times is left down and
//!   reported: the network runs on without it (a 4-validator network tolerates one).
//! - **Process ids** are written to `processes.json` in the folder whenever they change, so
//!   an operator (or a test) can find and signal a given process.
//! - **Stopping.** Dropping the supervisor stops every child: SIGINT first (a validator and an
//!   agent stop cleanly on it), then SIGKILL after [`STOP_GRACE`].

use anyhow::Context;
use serde::Serialize;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Restarts per process before it is left down: a process that keeps dying has a cause a
/// restart will not fix, and restarting it forever would hide it.
pub const MAX_RESTARTS: u32 = 5;
/// How long a stopping child gets after SIGINT before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// Something that happened to a process of the network.
#[derive(Clone, Debug, Serialize)]
pub struct Incident {
    /// Seconds since the supervisor started.
    pub at_seconds: f64,
    /// The process (`validator-2`, `provider-1`).
    pub process: String,
    /// What happened (`exited (signal: 9 (SIGKILL))`).
    pub what: String,
    /// What the supervisor did about it.
    pub action: String,
}

impl std::fmt::Display for Incident {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.1} s: {} {}; {}",
            self.at_seconds, self.process, self.what, self.action
        )
    }
}

struct Proc {
    name: String,
    args: Vec<OsString>,
    env: Vec<(String, String)>,
    child: Option<Child>,
    restarts: u32,
}

/// See the module docs.
pub struct Supervisor {
    program: PathBuf,
    dir: PathBuf,
    log_dir: PathBuf,
    procs: Vec<Proc>,
    started: Instant,
    incidents: Vec<Incident>,
}

impl Supervisor {
    /// A supervisor for a network in `dir` (logs in `dir/logs`) whose processes are this
    /// binary.
    pub fn new(dir: &Path) -> anyhow::Result<Supervisor> {
        Self::with_program(dir, std::env::current_exe()?)
    }

    /// A supervisor whose processes run `program`.
    pub fn with_program(dir: &Path, program: PathBuf) -> anyhow::Result<Supervisor> {
        let log_dir = dir.join("logs");
        std::fs::create_dir_all(&log_dir)
            .with_context(|| format!("cannot create {}", log_dir.display()))?;
        Ok(Supervisor {
            program,
            dir: dir.to_path_buf(),
            log_dir,
            procs: Vec::new(),
            started: Instant::now(),
            incidents: Vec::new(),
        })
    }

    /// The log file of process `name`.
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.log_dir.join(format!("{name}.log"))
    }

    /// Start the program (`orrery`) with `args` as process `name`, with `ORRERY_LOG` passed on
    /// (default `info`).
    pub fn start(&mut self, name: &str, args: Vec<OsString>) -> anyhow::Result<()> {
        let level = std::env::var("ORRERY_LOG").unwrap_or_else(|_| "info".into());
        self.procs.push(Proc {
            name: name.to_string(),
            args,
            env: vec![("ORRERY_LOG".into(), level)],
            child: None,
            restarts: 0,
        });
        let i = self.procs.len() - 1;
        self.spawn(i)?;
        self.write_pids();
        Ok(())
    }

    fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let log_path = self.log_path(&self.procs[i].name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("cannot open {}", log_path.display()))?;
        let p = &mut self.procs[i];
        let child = Command::new(&self.program)
            .args(&p.args)
            .envs(p.env.iter().map(|(k, v)| (k, v)))
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", p.name))?;
        p.child = Some(child);
        Ok(())
    }

    /// Restart every process that exited since the last call (up to [`MAX_RESTARTS`] each);
    /// returns what happened, also kept for [`Supervisor::incidents`].
    pub fn poll(&mut self) -> Vec<Incident> {
        let mut new = Vec::new();
        for i in 0..self.procs.len() {
            let status = match self.procs[i].child.as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => status,
                _ => continue,
            };
            self.procs[i].child = None;
            let p = &self.procs[i];
            let action = if p.restarts >= MAX_RESTARTS {
                format!("left down after {MAX_RESTARTS} restarts")
            } else {
                self.procs[i].restarts += 1;
                match self.spawn(i) {
                    Ok(()) => "restarted".to_string(),
                    Err(e) => format!("could not be restarted: {e:#}"),
                }
            };
            let incident = Incident {
                at_seconds: self.started.elapsed().as_secs_f64(),
                process: self.procs[i].name.clone(),
                what: format!("exited ({status})"),
                action,
            };
            tracing::warn!(%incident, log = %self.log_path(&incident.process).display(), "a process of the network stopped");
            new.push(incident);
        }
        if !new.is_empty() {
            self.write_pids();
            self.incidents.extend(new.iter().cloned());
        }
        new
    }

    /// Everything that happened so far.
    pub fn incidents(&self) -> &[Incident] {
        &self.incidents
    }

    /// The running processes' ids, by name.
    pub fn pids(&self) -> BTreeMap<String, u32> {
        self.procs
            .iter()
            .filter_map(|p| Some((p.name.clone(), p.child.as_ref()?.id())))
            .collect()
    }

    fn write_pids(&self) {
        let path = self.dir.join("processes.json");
        let text = serde_json::to_string_pretty(&self.pids()).unwrap_or_default();
        if let Err(e) = std::fs::write(&path, text) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the process list");
        }
    }

    /// Stop every process: SIGINT, then SIGKILL for those still running after
    /// [`STOP_GRACE`].
    pub fn stop_all(&mut self) {
        for p in &self.procs {
            if let Some(c) = &p.child {
                // Not reaped yet, so the pid is still this child's.
                let _ = Command::new("kill")
                    .args(["-INT", &c.id().to_string()])
                    .status();
            }
        }
        let deadline = Instant::now() + STOP_GRACE;
        for p in &mut self.procs {
            let Some(mut c) = p.child.take() else {
                continue;
            };
            while Instant::now() < deadline {
                if c.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop_all();
    }
}

#[cfg(test)]
mod tests;
