//! A fixed, deterministic subset of WASI preview1 (`wasi_snapshot_preview1`).
//!
//! The sandbox grants exactly the functions in [`GRANTED_WASI_IMPORTS`]; a module importing
//! anything else is rejected before it runs. Each one behaves the same on every machine:
//!
//! | function | behaviour |
//! |---|---|
//! | `fd_read` | fd 0 reads the job's input; other fds: `EBADF` |
//! | `fd_write` | fd 1 appends to stdout (capped at the job's output limit: past it the call traps with "output too large"); fd 2 keeps the first [`MAX_STDERR_BYTES`] for error messages; others: `EBADF` |
//! | `fd_close`, `fd_seek`, `fd_fdstat_get`, `fd_fdstat_set_flags` | fds 0–2 are non-seekable streams; others: `EBADF` |
//! | `fd_prestat_get`, `fd_prestat_dir_name` | `EBADF`: nothing is preopened, so there is no filesystem |
//! | `args_*` | one argument, `job` |
//! | `environ_*` | empty environment |
//! | `clock_time_get`, `clock_res_get` | time is frozen at 0 (the Unix epoch); resolution 1 ns |
//! | `random_get` | a fixed stream, SHA-256 in counter mode from a constant seed: reproducible, **not secret** |
//! | `poll_oneoff` | `ENOTSUP` (no sleeping, no waiting) |
//! | `sched_yield` | returns at once |
//! | `proc_exit` | ends the call with that status |
//!
//! We write this instead of using `wasmtime-wasi` so that every byte the guest can observe is
//! visible in one file, and the dependency tree stays small (no async runtime, no
//! capability-based filesystem).

use orrery_types::Hash;
use wasmtime::{Caller, Extern, Linker};

use crate::limits::MAX_STDERR_BYTES;
use crate::runtime::HostState;

/// The import module name of WASI preview1.
pub const WASI_MODULE: &str = "wasi_snapshot_preview1";

/// Every import the sandbox grants, all from [`WASI_MODULE`].
pub const GRANTED_WASI_IMPORTS: &[&str] = &[
    "fd_read",
    "fd_write",
    "fd_close",
    "fd_seek",
    "fd_fdstat_get",
    "fd_fdstat_set_flags",
    "fd_prestat_get",
    "fd_prestat_dir_name",
    "args_sizes_get",
    "args_get",
    "environ_sizes_get",
    "environ_get",
    "clock_time_get",
    "clock_res_get",
    "random_get",
    "poll_oneoff",
    "sched_yield",
    "proc_exit",
];

/// Most iovecs in one read/write call (POSIX `IOV_MAX`): bounds the host work of one call.
const MAX_IOVECS: u32 = 1024;

/// Most bytes one `random_get` may ask for; each 32 bytes is a hash the host computes unmetered.
const MAX_RANDOM_BYTES: u32 = 64 * 1024;

/// The single argument every program sees as `argv[0]`.
const ARGV0: &[u8] = b"job\0";

// WASI errno values.
const ESUCCESS: i32 = 0;
const EBADF: i32 = 8;
const EFAULT: i32 = 21;
const EINVAL: i32 = 28;
const ENOTSUP: i32 = 58;
const ESPIPE: i32 = 70;

// `filetype::unknown`: not a tty, so libc buffers stdout fully.
const FILETYPE_UNKNOWN: u8 = 0;
const RIGHT_FD_READ: u64 = 1 << 1;
const RIGHT_FD_WRITE: u64 = 1 << 6;

/// A host-side reason to stop the guest, carried through wasmtime as the trap's error.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HostStop {
    /// `proc_exit(code)`.
    #[error("the program called proc_exit({0})")]
    Exit(i32),
    /// stdout grew past the output limit.
    #[error("stdout grew past the output limit ({attempted} bytes attempted)")]
    OutputTooLarge {
        /// The size stdout would have had.
        attempted: u64,
    },
    /// A host function was called without an exported memory.
    #[error("the module must export its linear memory as `memory`")]
    NoMemory,
}

fn memory(caller: &mut Caller<'_, HostState>) -> Result<wasmtime::Memory, wasmtime::Error> {
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => Ok(m),
        _ => Err(wasmtime::Error::new(HostStop::NoMemory)),
    }
}

fn slice(mem: &[u8], ptr: u32, len: u32) -> Option<std::ops::Range<usize>> {
    let start = ptr as usize;
    let end = start.checked_add(len as usize)?;
    (end <= mem.len()).then_some(start..end)
}

fn read_u32(mem: &[u8], ptr: u32) -> Option<u32> {
    let r = slice(mem, ptr, 4)?;
    let mut b = [0u8; 4];
    b.copy_from_slice(&mem[r]);
    Some(u32::from_le_bytes(b))
}

fn write_bytes(mem: &mut [u8], ptr: u32, data: &[u8]) -> Option<()> {
    let r = slice(mem, ptr, u32::try_from(data.len()).ok()?)?;
    mem[r].copy_from_slice(data);
    Some(())
}

/// Walk a guest's iovec array (`iovs_len` entries of `(ptr: u32, len: u32)` at `iovs`) in
/// order, handing `visit` each entry's byte range in `mem`; `visit` returns whether to go on.
/// The guest's errors come back as `Ok(Err(errno))`: `EINVAL` for more than [`MAX_IOVECS`]
/// entries (before any is visited), `EFAULT` for an entry or a range outside memory (after the
/// entries before it were visited, as POSIX allows). `visit`'s own error stops the guest.
fn walk_iovecs(
    mem: &mut [u8],
    iovs: u32,
    iovs_len: u32,
    mut visit: impl FnMut(&mut [u8], std::ops::Range<usize>) -> Result<bool, wasmtime::Error>,
) -> Result<Result<(), i32>, wasmtime::Error> {
    if iovs_len > MAX_IOVECS {
        return Ok(Err(EINVAL));
    }
    for i in 0..iovs_len {
        let at = iovs.wrapping_add(i * 8);
        let (Some(ptr), Some(len)) = (read_u32(mem, at), read_u32(mem, at.wrapping_add(4))) else {
            return Ok(Err(EFAULT));
        };
        let Some(range) = slice(mem, ptr, len) else {
            return Ok(Err(EFAULT));
        };
        if !visit(mem, range)? {
            break;
        }
    }
    Ok(Ok(()))
}

fn errno(result: Option<i32>) -> i32 {
    result.unwrap_or(EFAULT)
}

fn is_stdio(fd: i32) -> bool {
    (0..=2).contains(&fd)
}

/// Add the granted functions to a linker.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> Result<(), wasmtime::Error> {
    linker.func_wrap(
        WASI_MODULE,
        "fd_write",
        |mut caller: Caller<'_, HostState>,
         fd: i32,
         iovs: i32,
         iovs_len: i32,
         nwritten: i32|
         -> Result<i32, wasmtime::Error> {
            let mem = memory(&mut caller)?;
            let (data, host) = mem.data_and_store_mut(&mut caller);
            if fd != 1 && fd != 2 {
                return Ok(EBADF);
            }
            let mut total: u32 = 0;
            let walked = walk_iovecs(data, iovs as u32, iovs_len as u32, |data, range| {
                let len = range.len() as u32;
                let bytes = &data[range];
                if fd == 1 {
                    let attempted = host.stdout.len() as u64 + u64::from(len);
                    if attempted > host.stdout_limit {
                        return Err(wasmtime::Error::new(HostStop::OutputTooLarge { attempted }));
                    }
                    host.stdout.extend_from_slice(bytes);
                } else {
                    let room = MAX_STDERR_BYTES.saturating_sub(host.stderr.len());
                    host.stderr
                        .extend_from_slice(&bytes[..bytes.len().min(room)]);
                }
                total = total.saturating_add(len);
                Ok(true)
            })?;
            if let Err(e) = walked {
                return Ok(e);
            }
            Ok(errno(
                write_bytes(data, nwritten as u32, &total.to_le_bytes()).map(|()| ESUCCESS),
            ))
        },
    )?;

    linker.func_wrap(
        WASI_MODULE,
        "fd_read",
        |mut caller: Caller<'_, HostState>,
         fd: i32,
         iovs: i32,
         iovs_len: i32,
         nread: i32|
         -> Result<i32, wasmtime::Error> {
            let mem = memory(&mut caller)?;
            let (data, host) = mem.data_and_store_mut(&mut caller);
            if fd != 0 {
                return Ok(EBADF);
            }
            let mut total: u32 = 0;
            let walked = walk_iovecs(data, iovs as u32, iovs_len as u32, |data, range| {
                let remaining = &host.stdin[host.stdin_pos.min(host.stdin.len())..];
                let n = remaining.len().min(range.len());
                data[range.start..range.start + n].copy_from_slice(&remaining[..n]);
                host.stdin_pos += n;
                total = total.saturating_add(n as u32);
                // A short read ends the call: stdin is exhausted.
                Ok(n == range.len())
            })?;
            if let Err(e) = walked {
                return Ok(e);
            }
            Ok(errno(
                write_bytes(data, nread as u32, &total.to_le_bytes()).map(|()| ESUCCESS),
            ))
        },
    )?;

    linker.func_wrap(WASI_MODULE, "fd_close", |fd: i32| -> i32 {
        if is_stdio(fd) { ESUCCESS } else { EBADF }
    })?;

    linker.func_wrap(
        WASI_MODULE,
        "fd_seek",
        |fd: i32, _offset: i64, _whence: i32, _newoffset: i32| -> i32 {
            if is_stdio(fd) { ESPIPE } else { EBADF }
        },
    )?;

    linker.func_wrap(
        WASI_MODULE,
        "fd_fdstat_get",
        |mut caller: Caller<'_, HostState>, fd: i32, out: i32| -> Result<i32, wasmtime::Error> {
            if !is_stdio(fd) {
                return Ok(EBADF);
            }
            let rights = if fd == 0 {
                RIGHT_FD_READ
            } else {
                RIGHT_FD_WRITE
            };
            let mut stat = [0u8; 24];
            stat[0] = FILETYPE_UNKNOWN;
            stat[8..16].copy_from_slice(&rights.to_le_bytes());
            let mem = memory(&mut caller)?;
            let data = mem.data_mut(&mut caller);
            Ok(errno(
                write_bytes(data, out as u32, &stat).map(|()| ESUCCESS),
            ))
        },
    )?;

    linker.func_wrap(
        WASI_MODULE,
        "fd_fdstat_set_flags",
        |fd: i32, _flags: i32| -> i32 { if is_stdio(fd) { ENOTSUP } else { EBADF } },
    )?;

    linker.func_wrap(
        WASI_MODULE,
        "fd_prestat_get",
        |_fd: i32, _out: i32| -> i32 { EBADF },
    )?;
    linker.func_wrap(
        WASI_MODULE,
        "fd_prestat_dir_name",
        |_fd: i32, _path: i32, _len: i32| -> i32 { EBADF },
    )?;

    linker.func_wrap(
        WASI_MODULE,
        "args_sizes_get",
        |mut caller: Caller<'_, HostState>,
         argc: i32,
         buf_size: i32|
         -> Result<i32, wasmtime::Error> {
            let mem = memory(&mut caller)?;
            let data = mem.data_mut(&mut caller);
            Ok(errno(
                write_bytes(data, argc as u32, &1u32.to_le_bytes())
                    .and_then(|()| {
                        write_bytes(data, buf_size as u32, &(ARGV0.len() as u32).to_le_bytes())
                    })
                    .map(|()| ESUCCESS),
            ))
        },
    )?;
    linker.func_wrap(
        WASI_MODULE,
        "args_get",
        |mut caller: Caller<'_, HostState>, argv: i32, buf: i32| -> Result<i32, wasmtime::Error> {
            let mem = memory(&mut caller)?;
            let data = mem.data_mut(&mut caller);
            Ok(errno(
                write_bytes(data, argv as u32, &(buf as u32).to_le_bytes())
                    .and_then(|()| write_bytes(data, buf as u32, ARGV0))
                    .map(|()| ESUCCESS),
            ))
        },
    )?;

    linker.func_wrap(
        WASI_MODULE,
        "environ_sizes_get",
        |mut caller: Caller<'_, HostState>,
         count: i32,
         buf_size: i32|
         -> Result<i32, wasmtime::Error> {
            let mem = memory(&mut caller)?;
            let data = mem.data_mut(&mut caller);
            Ok(errno(
                write_bytes(data, count as u32, &0u32.to_le_bytes())
                    .and_then(|()| write_bytes(data, buf_size as u32, &0u32.to_le_bytes()))
                    .map(|()| ESUCCESS),
            ))
        },
    )?;
    linker.func_wrap(
        WASI_MODULE,
        "environ_get",
        |_environ: i32, _buf: i32| -> i32 { ESUCCESS },
    )?;

    linker.func_wrap(
        WASI_MODULE,
        "clock_time_get",
        |mut caller: Caller<'_, HostState>,
         _id: i32,
         _precision: i64,
         out: i32|
         -> Result<i32, wasmtime::Error> {
            let mem = memory(&mut caller)?;
            let data = mem.data_mut(&mut caller);
            Ok(errno(
                write_bytes(data, out as u32, &0u64.to_le_bytes()).map(|()| ESUCCESS),
            ))
        },
    )?;
    linker.func_wrap(
        WASI_MODULE,
        "clock_res_get",
        |mut caller: Caller<'_, HostState>, _id: i32, out: i32| -> Result<i32, wasmtime::Error> {
            let mem = memory(&mut caller)?;
            let data = mem.data_mut(&mut caller);
            Ok(errno(
                write_bytes(data, out as u32, &1u64.to_le_bytes()).map(|()| ESUCCESS),
            ))
        },
    )?;

    linker.func_wrap(
        WASI_MODULE,
        "random_get",
        |mut caller: Caller<'_, HostState>, buf: i32, len: i32| -> Result<i32, wasmtime::Error> {
            let len = len as u32;
            if len > MAX_RANDOM_BYTES {
                return Ok(EINVAL);
            }
            let mem = memory(&mut caller)?;
            let (data, host) = mem.data_and_store_mut(&mut caller);
            let Some(range) = slice(data, buf as u32, len) else {
                return Ok(EFAULT);
            };
            for chunk in data[range].chunks_mut(32) {
                let block =
                    Hash::tagged(b"orrery/wasi/random/v1", &host.random_counter.to_le_bytes());
                host.random_counter += 1;
                chunk.copy_from_slice(&block.as_ref()[..chunk.len()]);
            }
            Ok(ESUCCESS)
        },
    )?;

    linker.func_wrap(
        WASI_MODULE,
        "poll_oneoff",
        |_in: i32, _out: i32, _n: i32, _nevents: i32| -> i32 { ENOTSUP },
    )?;
    linker.func_wrap(WASI_MODULE, "sched_yield", || -> i32 { ESUCCESS })?;
    linker.func_wrap(
        WASI_MODULE,
        "proc_exit",
        |code: i32| -> Result<(), wasmtime::Error> {
            Err(wasmtime::Error::new(HostStop::Exit(code)))
        },
    )?;
    Ok(())
}
