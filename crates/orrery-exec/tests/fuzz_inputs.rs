//! Fuzzing what reaches the runtime from outside: job bundles (`Bundle::decode`, on any bytes
//! and on valid bundles with random edits) and the arguments of the WASI host calls (a job
//! calls granted functions with random pointers, lengths, descriptors and flags over memory
//! filled with random bytes).
//!
//! Properties: nothing panics; a bundle that decodes is within every limit and repacks to the
//! same manifest, program and inputs; a host call with any arguments ends the run with a
//! result or a job error — the same one on a second run (deterministic) — and the host keeps
//! working afterwards.
//!
//! CI runs the default case counts below; `PROPTEST_CASES=100000` runs more by hand.
//! `fuzz/` has coverage-guided (cargo-fuzz) counterparts.

mod common;

use common::{small_limits, wat_bundle};
use orrery_exec::{Bundle, EntryStyle, Manifest, Runtime, run_bundle};
use orrery_types::workload::Start;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small valid bundle to edit: a stepper module and two inputs.
fn seed_bundle() -> Bundle {
    let program = wat::parse_str(
        r#"(module (memory (export "memory") 1)
            (func (export "alloc") (param i32) (result i32) (i32.const 1024))
            (func (export "init") (param i32 i32) (result i64) (i64.const 8))
            (func (export "step") (param i64 i32 i32) (result i64) (i64.const 8))
            (func (export "output") (param i32 i32) (result i64) (i64.const 8)))"#,
    )
    .unwrap();
    let mut manifest = Manifest::wasm(EntryStyle::Stepper, 3, Some("a"));
    manifest.inputs.push("b".into());
    let inputs = BTreeMap::from([("a".to_string(), vec![1, 2, 3]), ("b".to_string(), vec![])]);
    Bundle::new(manifest, program, inputs).unwrap()
}

fn check_bundle(bytes: &[u8]) {
    let Ok(bundle) = Bundle::decode(bytes) else {
        return;
    };
    assert_eq!(bundle.bytes(), bytes);
    bundle
        .manifest()
        .validate()
        .expect("a decoded manifest is valid");
    let repacked = Bundle::new(
        bundle.manifest().clone(),
        bundle.program().to_vec(),
        bundle.inputs().clone(),
    )
    .expect("a decoded bundle repacks");
    let back = Bundle::decode(repacked.bytes()).expect("a repacked bundle decodes");
    assert_eq!(back.manifest(), bundle.manifest());
    assert_eq!(back.program(), bundle.program());
    assert_eq!(back.inputs(), bundle.inputs());
}

/// The granted WASI functions with their parameter types (`I` i32, `L` i64); all return i32
/// except `proc_exit`.
const CALLS: &[(&str, &str)] = &[
    ("fd_read", "IIII"),
    ("fd_write", "IIII"),
    ("fd_close", "I"),
    ("fd_seek", "ILII"),
    ("fd_fdstat_get", "II"),
    ("fd_fdstat_set_flags", "II"),
    ("fd_prestat_get", "II"),
    ("fd_prestat_dir_name", "III"),
    ("args_sizes_get", "II"),
    ("args_get", "II"),
    ("environ_sizes_get", "II"),
    ("environ_get", "II"),
    ("clock_time_get", "ILI"),
    ("clock_res_get", "II"),
    ("random_get", "II"),
    ("poll_oneoff", "IIII"),
    ("sched_yield", ""),
    ("proc_exit", "I"),
];

/// An argument: mostly small or near the edges of one 64 KiB page, sometimes anything.
fn arg() -> impl Strategy<Value = i64> {
    prop_oneof![
        3 => 0i64..64,
        2 => 65_480i64..65_560,
        1 => -2i64..=2,
        1 => any::<u32>().prop_map(i64::from),
        1 => any::<i64>(),
    ]
}

/// A command module that fills its memory from `fill` at `at`, then makes `calls`
/// (function index, arguments).
fn command(fill: &[u8], at: u16, calls: &[(usize, Vec<i64>)]) -> String {
    let mut imports = String::new();
    for (i, (name, params)) in CALLS.iter().enumerate() {
        let ps: Vec<&str> = params
            .chars()
            .map(|c| if c == 'L' { "i64" } else { "i32" })
            .collect();
        let result = if *name == "proc_exit" {
            ""
        } else {
            "(result i32)"
        };
        imports.push_str(&format!(
            "(import \"wasi_snapshot_preview1\" \"{name}\" (func $f{i} (param {}) {result}))\n",
            ps.join(" ")
        ));
    }
    let data: String = fill.iter().map(|b| format!("\\{b:02x}")).collect();
    let mut body = String::new();
    for (i, args) in calls {
        let (name, params) = CALLS[*i];
        let a: Vec<String> = params
            .chars()
            .zip(args)
            .map(|(c, v)| {
                if c == 'L' {
                    format!("(i64.const {v})")
                } else {
                    format!("(i32.const {})", *v as i32)
                }
            })
            .collect();
        let call = format!("(call $f{i} {})", a.join(" "));
        body.push_str(&if name == "proc_exit" {
            call
        } else {
            format!("(drop {call})")
        });
        body.push('\n');
    }
    format!(
        "(module {imports} (memory (export \"memory\") 1 2)
           (data (i32.const {at}) \"{data}\")
           (func (export \"_start\") {body}))"
    )
}

fn calls() -> impl Strategy<Value = Vec<(usize, Vec<i64>)>> {
    prop::collection::vec((0..CALLS.len(), prop::collection::vec(arg(), 4)), 1..5)
}

/// The run's result, as text: what a second run must repeat.
fn outcome(runtime: &Runtime, bundle: &Bundle) -> String {
    match run_bundle(runtime, bundle, Start::Fresh, |_, _, _| true) {
        Ok(Some(record)) => format!(
            "ok {:?} {} {:?}",
            record.output, record.cost, record.checkpoints
        ),
        Ok(None) => "cancelled".into(),
        Err(e) => format!("error {e}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(2_000)))]

    #[test]
    fn bundles_of_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        check_bundle(&bytes);
    }

    #[test]
    fn bundles_edited(
        sets in prop::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        cut in prop::option::of(any::<usize>()),
    ) {
        let mut bytes = seed_bundle().bytes().to_vec();
        for (i, b) in sets {
            let n = bytes.len();
            bytes[i % n] = b;
        }
        if let Some(c) = cut {
            let n = bytes.len();
            bytes.truncate(c % n);
        }
        check_bundle(&bytes);
    }
}

proptest! {
    // Each case compiles and runs a module twice: a few milliseconds.
    #![proptest_config(ProptestConfig::with_cases(cases(150)))]

    #[test]
    fn host_calls_with_any_arguments(
        fill in prop::collection::vec(any::<u8>(), 0..64),
        at in prop_oneof![0u16..128, 65_400u16..65_472],
        calls in calls(),
    ) {
        let runtime = Runtime::new().unwrap();
        let bundle = wat_bundle(&command(&fill, at, &calls), EntryStyle::Command, 1, small_limits());
        let first = outcome(&runtime, &bundle);
        let again = outcome(&runtime, &bundle);
        prop_assert_eq!(&first, &again, "a host call is not deterministic");
    }
}

/// The generator reaches the host: a valid write is seen on stdout, and bad pointers come
/// back as errno values the job sees, not as a failed host.
#[test]
fn the_generated_calls_reach_the_host() {
    let runtime = Runtime::new().unwrap();
    // iovec {ptr 16, len 3} at 0, "abc" at 16: fd_write(1, 0, 1, 8).
    let fill = [
        16, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, b'a', b'b', b'c',
    ];
    let ok = wat_bundle(
        &command(&fill, 0, &[(1, vec![1, 0, 1, 8])]),
        EntryStyle::Command,
        1,
        small_limits(),
    );
    let out = outcome(&runtime, &ok);
    assert!(out.starts_with("ok [97, 98, 99]"), "{out}");
    // The same call with the iovec array past the end of memory: EFAULT to the job.
    let bad = wat_bundle(
        &command(&fill, 0, &[(1, vec![1, 70_000, 1, 8])]),
        EntryStyle::Command,
        1,
        small_limits(),
    );
    assert!(outcome(&runtime, &bad).starts_with("ok []"));
    common::assert_host_survives(&runtime);
}
