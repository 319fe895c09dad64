//! Same bundle, same input: the same outputs, checkpoints and fuel across runs, across resumes
//! from any checkpoint, and when any step is re-executed alone.

mod common;

use common::{heat_bundle, mandelbrot_bundle, small_limits, wat_bundle};
use orrery_exec::{EntryStyle, Runtime, execute_step, run_bundle};
use orrery_types::workload::{RunRecord, Start, checkpoint};

/// A full run that also keeps every state and the cost after each checkpoint.
fn run_keeping_states(
    runtime: &Runtime,
    bundle: &orrery_exec::Bundle,
) -> (RunRecord, Vec<Vec<u8>>, Vec<u64>) {
    let mut states = Vec::new();
    let mut costs = Vec::new();
    let record = run_bundle(runtime, bundle, Start::Fresh, |_, state, cost| {
        states.push(state.to_vec());
        costs.push(cost);
        true
    })
    .unwrap()
    .unwrap();
    (record, states, costs)
}

#[test]
fn two_runs_on_separate_runtimes_agree_bit_for_bit() {
    let bundle = heat_bundle(40, 15, 6);
    let a = run_bundle(
        &Runtime::new().unwrap(),
        &bundle,
        Start::Fresh,
        |_, _, _| true,
    )
    .unwrap()
    .unwrap();
    let b = run_bundle(
        &Runtime::new().unwrap(),
        &bundle,
        Start::Fresh,
        |_, _, _| true,
    )
    .unwrap()
    .unwrap();
    assert_eq!(a, b);
    assert_eq!(a.checkpoint_root(), b.checkpoint_root());
    assert!(a.cost > 0);
    // And the states really change from step to step (a run that does nothing would agree too).
    let distinct: std::collections::BTreeSet<_> = a.checkpoints.iter().collect();
    assert_eq!(distinct.len(), a.checkpoints.len());
}

#[test]
fn resuming_from_every_checkpoint_gives_the_same_record() {
    let runtime = Runtime::new().unwrap();
    let bundle = heat_bundle(24, 8, 5);
    let (full, states, costs) = run_keeping_states(&runtime, &bundle);
    assert_eq!(states.len(), 6);
    for k in 0..states.len() {
        let resumed = run_bundle(
            &runtime,
            &bundle,
            Start::Resume {
                k: k as u64,
                state: &states[k],
                checkpoints: &full.checkpoints[..=k],
                cost: costs[k],
            },
            |_, _, _| true,
        )
        .unwrap()
        .unwrap();
        assert_eq!(resumed, full, "resume from checkpoint {k}");
    }
}

#[test]
fn each_step_re_executed_alone_matches_the_full_run() {
    let runtime = Runtime::new().unwrap();
    let bundle = heat_bundle(24, 8, 5);
    let (full, states, costs) = run_keeping_states(&runtime, &bundle);
    // A fresh runtime, as a referee on another machine would have.
    let referee = Runtime::new().unwrap();
    for k in 0..5u64 {
        let i = k as usize;
        let step = execute_step(&referee, &bundle, k, &states[i], u64::MAX).unwrap();
        assert_eq!(step.state, states[i + 1], "state after step {k}");
        assert_eq!(checkpoint(&step.state), full.checkpoints[i + 1]);
        assert_eq!(step.cost, costs[i + 1] - costs[i], "fuel of step {k}");
    }
    // Steps out of order give the same answer too: nothing carries over between calls.
    let late = execute_step(&referee, &bundle, 4, &states[4], u64::MAX).unwrap();
    let early = execute_step(&referee, &bundle, 0, &states[0], u64::MAX).unwrap();
    assert_eq!(late.state, states[5]);
    assert_eq!(early.state, states[1]);
}

#[test]
fn a_tampered_state_gives_a_different_next_checkpoint() {
    // The referee's verdict depends on the state it is handed.
    let runtime = Runtime::new().unwrap();
    let bundle = heat_bundle(24, 8, 3);
    let (_, states, _) = run_keeping_states(&runtime, &bundle);
    let mut forged = states[1].clone();
    // The exponent byte of the temperature at cell (6, 6) of the 24x24 plate (after the 24-byte
    // header; away from the fixed edges and hot spot): halves or doubles that temperature.
    let cell = 24 + (6 * 24 + 6) * 8 + 7;
    forged[cell] ^= 0x01;
    let honest = execute_step(&runtime, &bundle, 1, &states[1], u64::MAX).unwrap();
    let other = execute_step(&runtime, &bundle, 1, &forged, u64::MAX).unwrap();
    assert_ne!(checkpoint(&honest.state), checkpoint(&other.state));
}

#[test]
fn a_referee_fuel_bound_below_the_step_cost_fails_deterministically() {
    let runtime = Runtime::new().unwrap();
    let bundle = heat_bundle(24, 8, 2);
    let (_, states, costs) = run_keeping_states(&runtime, &bundle);
    let cost = costs[1] - costs[0];
    let exact = execute_step(&runtime, &bundle, 0, &states[0], cost).unwrap();
    assert!(
        exact.state == states[1],
        "exactly the step's cost is enough"
    );
    assert_eq!(exact.cost, cost);
    // wasmtime checks fuel at function entries and loop headers, so a bound a few units below
    // the cost may still finish; half of it cannot.
    match execute_step(&runtime, &bundle, 0, &states[0], cost / 2) {
        Err(err @ orrery_exec::ExecError::FuelExhausted { .. }) => assert!(err.is_deterministic()),
        Err(other) => panic!("expected fuel exhaustion, got {other}"),
        Ok(_) => panic!("half the fuel must not be enough"),
    }
}

#[test]
fn a_wasi_command_is_deterministic_and_its_one_step_replays() {
    let runtime = Runtime::new().unwrap();
    let bundle = mandelbrot_bundle("48 32 200");
    let a = run_bundle(&runtime, &bundle, Start::Fresh, |_, _, _| true)
        .unwrap()
        .unwrap();
    let b = run_bundle(
        &Runtime::new().unwrap(),
        &bundle,
        Start::Fresh,
        |_, _, _| true,
    )
    .unwrap()
    .unwrap();
    assert_eq!(a, b);
    let step = execute_step(&runtime, &bundle, 0, b"48 32 200", u64::MAX).unwrap();
    assert_eq!(step.state, a.output);
    assert_eq!(step.cost, a.cost);
}

#[test]
fn nans_are_canonical() {
    // 0/0 and sqrt(-1) produce NaNs whose sign and payload bits differ between CPUs unless the
    // engine canonicalizes them; the state records their bits.
    let wat = r#"(module
      (memory (export "memory") 1 1)
      (func (export "alloc") (param i32) (result i32) (i32.const 1024))
      (func $nans (result i64)
        (f64.store (i32.const 0) (f64.div (f64.const 0) (f64.const 0)))
        (f64.store (i32.const 8) (f64.sqrt (f64.const -1)))
        (f32.store (i32.const 16) (f32.div (f32.const 0) (f32.const 0)))
        (f64.store (i32.const 24) (f64.neg (f64.div (f64.const 0) (f64.const 0))))
        (i64.const 28))
      (func (export "init") (param i32 i32) (result i64) (call $nans))
      (func (export "step") (param i64 i32 i32) (result i64) (call $nans))
      (func (export "output") (param i32 i32) (result i64) (call $nans)))"#;
    let bundle = wat_bundle(wat, EntryStyle::Stepper, 0, small_limits());
    let record = run_bundle(
        &Runtime::new().unwrap(),
        &bundle,
        Start::Fresh,
        |_, _, _| true,
    )
    .unwrap()
    .unwrap();
    let f64_at = |i: usize| u64::from_le_bytes(record.output[i..i + 8].try_into().unwrap());
    assert_eq!(f64_at(0), 0x7ff8_0000_0000_0000);
    assert_eq!(f64_at(8), 0x7ff8_0000_0000_0000);
    let f32_bits = u32::from_le_bytes(record.output[16..20].try_into().unwrap());
    assert_eq!(f32_bits, 0x7fc0_0000);
    // `neg` is a bit operation, not arithmetic: it flips the sign of the canonical NaN.
    assert_eq!(f64_at(20) >> 32 << 32, f64_at(20) >> 32 << 32);
}

#[test]
fn clocks_and_randomness_are_fixed() {
    // A command that prints the clock and 16 "random" bytes gets the same on every run.
    let wat = r#"(module
      (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
      (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1 1)
      (func (export "_start")
        (drop (call $clock (i32.const 0) (i64.const 1) (i32.const 100)))
        (drop (call $random (i32.const 108) (i32.const 16)))
        ;; iovec at 0: ptr 100, len 24
        (i32.store (i32.const 0) (i32.const 100))
        (i32.store (i32.const 4) (i32.const 24))
        (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 200)))))"#;
    let bundle = wat_bundle(wat, EntryStyle::Command, 1, small_limits());
    let run = || {
        run_bundle(
            &Runtime::new().unwrap(),
            &bundle,
            Start::Fresh,
            |_, _, _| true,
        )
        .unwrap()
        .unwrap()
        .output
    };
    let out = run();
    assert_eq!(out.len(), 24);
    assert_eq!(&out[..8], &[0u8; 8], "the clock is frozen at the epoch");
    assert_ne!(&out[8..], &[0u8; 16], "random_get fills the buffer");
    assert_eq!(out, run());
}

#[test]
fn a_second_load_uses_the_module_cache() {
    let runtime = Runtime::new().unwrap();
    let bundle = heat_bundle(16, 2, 1);
    runtime.load(&bundle).unwrap();
    let after_first = runtime.cache_stats();
    runtime.load(&bundle).unwrap();
    let after_second = runtime.cache_stats();
    assert_eq!(after_first.compiled, 1);
    assert_eq!(
        after_second.compiled, 1,
        "the second load must not recompile"
    );
    assert_eq!(after_second.hits, after_first.hits + 1);
}

#[test]
fn the_module_cache_is_bounded_and_evicts_the_oldest() {
    let runtime = Runtime::new().unwrap();
    let cap = orrery_exec::limits::MAX_CACHED_MODULES;
    let bundle = |i: usize| {
        // Distinct modules: the step returns a different constant length each.
        let wat = format!(
            r#"(module (memory (export "memory") 1 1)
              (func (export "alloc") (param i32) (result i32) (i32.const 0))
              (func (export "init") (param i32 i32) (result i64) (i64.const {i}))
              (func (export "step") (param i64 i32 i32) (result i64) (i64.const 0))
              (func (export "output") (param i32 i32) (result i64) (i64.const 0)))"#
        );
        wat_bundle(&wat, EntryStyle::Stepper, 1, small_limits())
    };
    for i in 0..=cap {
        runtime.load(&bundle(i)).unwrap();
    }
    let stats = runtime.cache_stats();
    assert_eq!(stats.entries, cap);
    assert_eq!(stats.compiled, cap as u64 + 1);
    // The newest is still cached; the oldest was evicted and compiles again.
    runtime.load(&bundle(cap)).unwrap();
    assert_eq!(runtime.cache_stats().compiled, cap as u64 + 1);
    runtime.load(&bundle(0)).unwrap();
    assert_eq!(runtime.cache_stats().compiled, cap as u64 + 2);
}
