//! Any bytes as a job bundle: decoding never panics, and a bundle that decodes is valid and
//! repacks to the same manifest, program and inputs. (CI's counterpart:
//! `crates/orrery-exec/tests/fuzz_inputs.rs`.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use orrery_exec::Bundle;

fuzz_target!(|data: &[u8]| {
    let Ok(bundle) = Bundle::decode(data) else { return };
    assert_eq!(bundle.bytes(), data);
    bundle.manifest().validate().expect("a decoded manifest is valid");
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
});
