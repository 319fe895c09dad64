//! Hostile modules get a clear, specific error, and the host (the same runtime) keeps working.

mod common;

use common::{assert_host_survives, small_limits, wat_bundle};
use orrery_exec::{Bundle, EntryStyle, ExecError, Limits, Manifest, Phase, Runtime, run_bundle};
use orrery_types::workload::{RunError, Start};

/// A stepper whose `step` body is `body` (with `$k`, `$ptr`, `$len` in scope and an i64
/// result), and whose other exports are trivial.
fn stepper(body: &str, extra: &str) -> String {
    format!(
        r#"(module
          (memory (export "memory") 1 1024)
          {extra}
          (func (export "alloc") (param i32) (result i32) (i32.const 1024))
          (func (export "init") (param i32 i32) (result i64) (i64.const 8))
          (func (export "step") (param $k i64) (param $ptr i32) (param $len i32) (result i64)
            {body})
          (func (export "output") (param i32 i32) (result i64) (i64.const 8)))"#
    )
}

/// Run a one-step bundle and return the error of the step.
fn step_error(runtime: &Runtime, bundle: &Bundle) -> ExecError {
    match run_bundle(runtime, bundle, Start::Fresh, |_, _, _| true) {
        Err(RunError::Workload { source, .. }) => source,
        Err(other) => panic!("unexpected run error: {other}"),
        Ok(_) => panic!("the hostile job must fail"),
    }
}

fn hostile(body: &str, extra: &str, limits: Limits) -> (Runtime, ExecError) {
    let runtime = Runtime::new().unwrap();
    let bundle = wat_bundle(&stepper(body, extra), EntryStyle::Stepper, 1, limits);
    let err = step_error(&runtime, &bundle);
    (runtime, err)
}

#[test]
fn an_infinite_loop_runs_out_of_fuel() {
    let (runtime, err) = hostile("(loop $l (br $l)) (i64.const 0)", "", small_limits());
    assert!(
        matches!(
            err,
            ExecError::FuelExhausted {
                phase: Phase::Step(0),
                limit: 50_000_000
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("fuel_per_step"),
        "the message says what to raise: {err}"
    );
    assert!(err.is_deterministic());
    assert_host_survives(&runtime);
}

#[test]
fn a_memory_bomb_hits_the_memory_limit() {
    // Grow one page at a time until growth fails; with trap_on_grow_failure it traps.
    let body = "(loop $l (drop (memory.grow (i32.const 1))) (br $l)) (i64.const 0)";
    let (runtime, err) = hostile(body, "", small_limits());
    match err {
        ExecError::MemoryLimit {
            requested, limit, ..
        } => {
            assert_eq!(limit, 4 * 1024 * 1024);
            assert!(requested > limit);
        }
        other => panic!("expected a memory limit error, got {other}"),
    }
    assert_host_survives(&runtime);
}

#[test]
fn a_module_declaring_more_initial_memory_than_allowed_fails_at_instantiation() {
    // 128 pages = 8 MiB initial memory, over the 4 MiB limit.
    let wat = r#"(module
      (memory (export "memory") 128)
      (func (export "alloc") (param i32) (result i32) (i32.const 0))
      (func (export "init") (param i32 i32) (result i64) (i64.const 0))
      (func (export "step") (param i64 i32 i32) (result i64) (i64.const 0))
      (func (export "output") (param i32 i32) (result i64) (i64.const 0)))"#;
    let runtime = Runtime::new().unwrap();
    let bundle = wat_bundle(wat, EntryStyle::Stepper, 1, small_limits());
    let err = step_error(&runtime, &bundle);
    assert!(
        matches!(
            err,
            ExecError::MemoryLimit {
                phase: Phase::Init,
                ..
            }
        ),
        "{err}"
    );
    assert_host_survives(&runtime);
}

#[test]
fn deep_recursion_overflows_the_wasm_stack() {
    let extra = r#"(func $down (param i64) (result i64)
        (i64.add (i64.const 1) (call $down (i64.add (local.get 0) (i64.const 1)))))"#;
    let limits = Limits {
        fuel_per_step: 10_000_000_000,
        ..small_limits()
    };
    let (runtime, err) = hostile("(call $down (i64.const 0))", extra, limits);
    assert!(
        matches!(
            err,
            ExecError::StackOverflow {
                phase: Phase::Step(0)
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("recurses too deeply"));
    assert_host_survives(&runtime);
}

#[test]
fn a_trap_is_reported_with_its_cause() {
    let (runtime, err) = hostile("unreachable", "", small_limits());
    match &err {
        ExecError::Trap { phase, trap, .. } => {
            assert_eq!(*phase, Phase::Step(0));
            assert!(trap.contains("unreachable"), "{trap}");
        }
        other => panic!("expected a trap, got {other}"),
    }
    let (_, err) = hostile(
        "(drop (i32.div_u (i32.const 1) (i32.const 0))) (i64.const 0)",
        "",
        small_limits(),
    );
    assert!(
        matches!(&err, ExecError::Trap { trap, .. } if trap.contains("divide by zero")),
        "{err}"
    );
    let (_, err) = hostile(
        "(drop (i32.load (i32.const -4))) (i64.const 0)",
        "",
        small_limits(),
    );
    assert!(
        matches!(&err, ExecError::Trap { trap, .. } if trap.contains("out of bounds")),
        "{err}"
    );
    assert_host_survives(&runtime);
}

#[test]
fn an_import_the_sandbox_does_not_grant_is_rejected_before_running() {
    let runtime = Runtime::new().unwrap();
    for (module, name, sig) in [
        ("env", "socket", "(param i32) (result i32)"),
        (
            "wasi_snapshot_preview1",
            "path_open",
            "(param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)",
        ),
        (
            "wasi_snapshot_preview1",
            "sock_accept",
            "(param i32 i32 i32) (result i32)",
        ),
    ] {
        let extra = format!(r#"(import "{module}" "{name}" (func {sig}))"#);
        // Imports come first in a module: put it before everything else.
        let wat = stepper("(i64.const 0)", "").replacen("(module", &format!("(module {extra}"), 1);
        let bundle = wat_bundle(&wat, EntryStyle::Stepper, 1, small_limits());
        match runtime.load(&bundle) {
            Err(ExecError::ImportNotGranted { module: m, name: n }) => {
                assert_eq!((m.as_str(), n.as_str()), (module, name));
            }
            Err(other) => panic!("expected ImportNotGranted, got {other}"),
            Ok(_) => panic!("{module}::{name} must not be granted"),
        }
    }
    assert_host_survives(&runtime);
}

#[test]
fn a_granted_name_with_the_wrong_signature_is_rejected() {
    let wat = stepper("(i64.const 0)", "").replacen(
        "(module",
        r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32) (result i32)))"#,
        1,
    );
    let runtime = Runtime::new().unwrap();
    let bundle = wat_bundle(&wat, EntryStyle::Stepper, 1, small_limits());
    let err = runtime
        .load(&bundle)
        .err()
        .expect("wrong signature must fail");
    assert!(matches!(err, ExecError::InvalidModule(_)), "{err}");
}

#[test]
fn a_malformed_module_is_rejected() {
    let runtime = Runtime::new().unwrap();
    let good = wat::parse_str(stepper("(i64.const 0)", "")).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"this is not wasm at all".to_vec()),
        ("empty", Vec::new()),
        ("truncated", good[..good.len() / 2].to_vec()),
        ("bad version", {
            let mut m = good.clone();
            m[4] = 0x7f;
            m
        }),
    ];
    for (what, program) in cases {
        let manifest = Manifest::wasm(EntryStyle::Stepper, 1, None);
        let bundle = Bundle::new(manifest, program, Default::default()).unwrap();
        match runtime.load(&bundle) {
            Err(ExecError::InvalidModule(msg)) => assert!(!msg.is_empty()),
            Err(other) => panic!("{what}: expected InvalidModule, got {other}"),
            Ok(_) => panic!("{what}: must not load"),
        }
    }
    assert_host_survives(&runtime);
}

#[test]
fn a_module_missing_the_stepper_exports_is_rejected() {
    let wat = r#"(module (memory (export "memory") 1) (func (export "init") (param i32 i32) (result i64) (i64.const 0)))"#;
    let runtime = Runtime::new().unwrap();
    let bundle = wat_bundle(wat, EntryStyle::Stepper, 1, small_limits());
    let err = runtime.load(&bundle).err().expect("missing exports");
    assert!(
        matches!(
            err,
            ExecError::Abi {
                style: "stepper",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("alloc"), "{err}");
}

#[test]
fn a_result_pointer_outside_memory_is_an_abi_error() {
    // len 16 at 0xFFFF_FFF0: beyond the single page.
    let (_, err) = hostile("(i64.const 0xFFFFFFF000000010)", "", small_limits());
    assert!(matches!(err, ExecError::Abi { .. }), "{err}");
}

#[test]
fn a_state_larger_than_the_limit_is_refused_before_copying() {
    // Claims a 1 MiB state (the memory holds it, but the limit is 64 KiB).
    let (runtime, err) = hostile("(i64.const 0x100000)", "", small_limits());
    match err {
        ExecError::StateTooLarge { phase, size, limit } => {
            assert_eq!(phase, Phase::Step(0));
            assert_eq!(size, 0x10_0000);
            assert_eq!(limit, 64 * 1024);
        }
        other => panic!("expected StateTooLarge, got {other}"),
    }
    // And a state handed in that is over the limit is refused too (a referee fed junk).
    let bundle = wat_bundle(
        &stepper("(i64.const 8)", ""),
        EntryStyle::Stepper,
        1,
        small_limits(),
    );
    let err = orrery_exec::execute_step(&runtime, &bundle, 0, &vec![0u8; 64 * 1024 + 1], 1_000_000)
        .expect_err("oversized input state");
    assert!(matches!(err, ExecError::StateTooLarge { .. }), "{err}");
    assert_host_survives(&runtime);
}

#[test]
fn an_output_larger_than_the_limit_is_refused() {
    // Stepper: `output` claims 1 MiB.
    let wat = stepper("(i64.const 8)", "").replace(
        r#"(func (export "output") (param i32 i32) (result i64) (i64.const 8))"#,
        r#"(func (export "output") (param i32 i32) (result i64) (i64.const 0x100000))"#,
    );
    let runtime = Runtime::new().unwrap();
    let bundle = wat_bundle(&wat, EntryStyle::Stepper, 1, small_limits());
    let err = step_error(&runtime, &bundle);
    assert!(
        matches!(
            err,
            ExecError::OutputTooLarge {
                phase: Phase::Output,
                ..
            }
        ),
        "{err}"
    );

    // Command: writes 16 KiB to stdout forever.
    let command = r#"(module
      (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "_start")
        (i32.store (i32.const 0) (i32.const 1024))
        (i32.store (i32.const 4) (i32.const 16384))
        (loop $l
          (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
          (br $l))))"#;
    let bundle = wat_bundle(command, EntryStyle::Command, 1, small_limits());
    let err = step_error(&runtime, &bundle);
    match err {
        ExecError::OutputTooLarge { size, limit, .. } => {
            assert_eq!(limit, 64 * 1024);
            assert_eq!(size, 64 * 1024 + 16384);
        }
        other => panic!("expected OutputTooLarge, got {other}"),
    }
    assert_host_survives(&runtime);
}

#[test]
fn a_wall_clock_timeout_means_no_result() {
    // Plenty of fuel, 50 ms of wall time.
    let limits = Limits {
        fuel_per_step: orrery_exec::limits::MAX_FUEL_PER_STEP,
        wall_time_ms: 50,
        ..small_limits()
    };
    let started = std::time::Instant::now();
    let (runtime, err) = hostile("(loop $l (br $l)) (i64.const 0)", "", limits);
    assert!(
        matches!(err, ExecError::TimedOut { limit_ms: 50, .. }),
        "{err}"
    );
    assert!(
        !err.is_deterministic(),
        "a timeout is 'no result', not a checkable one"
    );
    // Generous bound: only shows the epoch stopped it long before the fuel would have.
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert_host_survives(&runtime);
}

#[test]
fn a_nonzero_exit_status_is_an_error_with_stderr() {
    let command = r#"(module
      (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (memory (export "memory") 1)
      (data (i32.const 100) "bad params")
      (func (export "_start")
        (i32.store (i32.const 0) (i32.const 100))
        (i32.store (i32.const 4) (i32.const 10))
        (drop (call $write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
        (call $exit (i32.const 3))))"#;
    let runtime = Runtime::new().unwrap();
    let bundle = wat_bundle(command, EntryStyle::Command, 1, small_limits());
    let err = step_error(&runtime, &bundle);
    assert!(
        matches!(&err, ExecError::Exit { code: 3, stderr, .. } if stderr == "bad params"),
        "{err}"
    );
    assert!(err.to_string().contains("bad params"));
}

#[test]
fn a_bundle_for_another_runtime_is_refused() {
    let mut manifest = Manifest::wasm(EntryStyle::Stepper, 1, None);
    manifest.runtime = orrery_exec::RuntimeKind::Ml;
    manifest.wasm = None;
    let bundle = Bundle::new(manifest, vec![1, 2, 3], Default::default()).unwrap();
    let err = Runtime::new()
        .unwrap()
        .load(&bundle)
        .err()
        .expect("ml bundle");
    assert!(
        matches!(err, ExecError::WrongRuntime(ref r) if r == "ml"),
        "{err}"
    );
}

#[test]
fn a_step_past_the_last_is_a_bad_request() {
    let runtime = Runtime::new().unwrap();
    let bundle = common::heat_bundle(16, 1, 2);
    let err = orrery_exec::execute_step(&runtime, &bundle, 2, b"", 1_000).expect_err("step 2 of 2");
    assert!(
        matches!(err, ExecError::BadRequest(ref m) if m.contains("steps 0..2")),
        "{err}"
    );
}

#[test]
fn a_module_cannot_see_state_left_by_an_earlier_call() {
    // `step` returns a global counter incremented on every call: with a fresh instance per
    // call it is always 1, so re-executing any step alone matches the full run.
    let wat = r#"(module
      (memory (export "memory") 1 1)
      (global $calls (mut i64) (i64.const 0))
      (func $bump (result i64)
        (global.set $calls (i64.add (global.get $calls) (i64.const 1)))
        (i64.store (i32.const 0) (global.get $calls))
        (i64.const 8))
      (func (export "alloc") (param i32) (result i32) (i32.const 1024))
      (func (export "init") (param i32 i32) (result i64) (call $bump))
      (func (export "step") (param i64 i32 i32) (result i64) (call $bump))
      (func (export "output") (param i32 i32) (result i64) (call $bump)))"#;
    let bundle = wat_bundle(wat, EntryStyle::Stepper, 4, small_limits());
    let record = run_bundle(
        &Runtime::new().unwrap(),
        &bundle,
        Start::Fresh,
        |_, state, _| {
            assert_eq!(state, 1u64.to_le_bytes());
            true
        },
    )
    .unwrap()
    .unwrap();
    assert_eq!(record.output, 1u64.to_le_bytes());
}

#[test]
fn an_export_with_the_wrong_type_is_rejected_at_load() {
    // `step` without the step index.
    let wat = stepper("(i64.const 0)", "").replace(
        r#"(func (export "step") (param $k i64) (param $ptr i32) (param $len i32) (result i64)"#,
        r#"(func (export "step") (param $ptr i32) (param $len i32) (result i64)"#,
    );
    let bundle = wat_bundle(&wat, EntryStyle::Stepper, 1, small_limits());
    let err = Runtime::new()
        .unwrap()
        .load(&bundle)
        .err()
        .expect("wrong type");
    assert!(
        matches!(
            err,
            ExecError::Abi {
                style: "stepper",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("(i64, i32, i32) -> (i64)"),
        "{err}"
    );
}

#[test]
fn growing_past_the_modules_own_maximum_is_a_trap_that_says_so() {
    // Declares at most 2 pages; the job's limit (4 MiB) is not the reason.
    let wat = stepper("(drop (memory.grow (i32.const 4))) (i64.const 0)", "").replace(
        r#"(memory (export "memory") 1 1024)"#,
        r#"(memory (export "memory") 1 2)"#,
    );
    let runtime = Runtime::new().unwrap();
    let bundle = wat_bundle(&wat, EntryStyle::Stepper, 1, small_limits());
    let err = step_error(&runtime, &bundle);
    assert!(
        matches!(&err, ExecError::Trap { trap, .. } if trap.contains("declared maximum of 131072")),
        "{err}"
    );
}

#[test]
fn a_deterministic_failure_has_a_claim_code_and_is_billed_for_its_fuel() {
    use orrery_types::workload::{FailedAt, FailureReason};
    let runtime = Runtime::new().unwrap();
    let looping = wat_bundle(
        &stepper("(loop $l (br $l)) (i64.const 0)", ""),
        EntryStyle::Stepper,
        1,
        small_limits(),
    );
    let run_cost = || match run_bundle(&runtime, &looping, Start::Fresh, |_, _, _| true) {
        Err(RunError::Workload { at, cost, source }) => {
            assert_eq!(at, FailedAt::Step(0));
            assert_eq!(source.failure_reason(), Some(FailureReason::OutOfFuel));
            cost
        }
        other => panic!("the loop must run out of fuel: {other:?}"),
    };
    let cost = run_cost();
    // Init's few units, then the step's whole bound.
    assert!((50_000_000..50_001_000).contains(&cost), "{cost}");
    assert_eq!(
        run_cost(),
        cost,
        "a failure is billed the same on every run"
    );

    // A trap burns what ran before it, and the job reports it.
    let trapping = wat_bundle(
        &stepper("(drop (i64.const 1)) unreachable", ""),
        EntryStyle::Stepper,
        1,
        small_limits(),
    );
    let job = runtime.load(&trapping).unwrap();
    let err = job.step_with_fuel(0, &[0; 8], 1_000).unwrap_err();
    assert_eq!(err.failure_reason(), Some(FailureReason::Trap));
    assert!((1..1_000).contains(&job.last_failed_fuel()));
    // The next call starts from zero again: a refusal before running burns nothing.
    assert!(job.step_with_fuel(5, &[0; 8], 1_000).is_err());
    assert_eq!(job.last_failed_fuel(), 0);

    // Load failures are the job's own (invalid), never a host fault.
    let err = runtime.load(&wat_bundle(
        "(module (func (export \"_start\")))",
        EntryStyle::Stepper,
        1,
        small_limits(),
    ));
    assert_eq!(
        err.err().and_then(|e| e.failure_reason()),
        Some(FailureReason::InvalidJob)
    );
}

#[test]
fn a_wall_clock_timeout_never_becomes_a_failure_claim() {
    let limits = Limits {
        fuel_per_step: orrery_exec::limits::MAX_FUEL_PER_STEP,
        wall_time_ms: 50,
        ..small_limits()
    };
    let (_, err) = hostile("(loop $l (br $l)) (i64.const 0)", "", limits);
    assert!(matches!(err, ExecError::TimedOut { .. }), "{err}");
    assert_eq!(err.failure_reason(), None);
    assert_eq!(ExecError::Engine("x".into()).failure_reason(), None);
}
