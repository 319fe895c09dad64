//! Deterministic, metered workload runtimes (WebAssembly) with Merkle-committed checkpoints.
