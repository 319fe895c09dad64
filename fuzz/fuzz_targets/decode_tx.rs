//! Any bytes: decoding a transaction or a block never panics, and whatever decodes re-encodes
//! to the same bytes (one value, one encoding).
#![no_main]

use libfuzzer_sys::fuzz_target;
use orrery_types::block::Block;
use orrery_types::codec;
use orrery_types::tx::SignedTx;

fuzz_target!(|data: &[u8]| {
    if let Ok(tx) = SignedTx::decode(data) {
        assert_eq!(codec::encode(&tx), data);
        let _ = tx.verify_signature();
    }
    if let Ok(block) = Block::decode(data) {
        assert_eq!(block.encode(), data);
    }
});
