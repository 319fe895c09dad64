//! Any bytes as what a validator takes from its peers: a transaction gossip batch (and each
//! transaction in it) and a proposed block. Nothing panics; whatever decodes re-encodes to the
//! same bytes. (CI's counterpart: `crates/orrery-chain/tests/fuzz_messages.rs`.)
#![no_main]

use commonware_codec::{Copying, Decode as _, Encode as _};
use libfuzzer_sys::fuzz_target;
use orrery_chain::block::ChainBlock;
use orrery_chain::gossip::decode_batch;
use orrery_types::tx::SignedTx;

/// The block limit given to the decoder: small enough for the fuzzer to reach.
const MAX_BLOCK_BYTES: usize = 16 * 1024;

fuzz_target!(|data: &[u8]| {
    if let Some(parts) = decode_batch(data) {
        for p in parts {
            if let Ok(tx) = SignedTx::decode(p) {
                assert_eq!(orrery_types::codec::encode(&tx), p);
                let _ = tx.verify_signature();
            }
        }
    }
    if let Ok(b) = ChainBlock::decode_cfg(Copying(data), &MAX_BLOCK_BYTES) {
        assert_eq!(b.encode().as_ref(), data);
        let _ = orrery_ledger::verify_block_signatures(&b.block);
    }
});
