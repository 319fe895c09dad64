//! Fuzzing the messages a validator takes from its peers: transaction gossip batches
//! (`gossip::decode_batch`, then each transaction's decoder) and proposed blocks
//! (`ChainBlock`'s codec, bounded by `max_block_bytes`).
//!
//! Inputs are random bytes and, more usefully, valid messages with random edits (bytes
//! overwritten, cut short, extended), which get past the length prefixes into the decoders
//! behind them. Properties: nothing panics; whatever decodes is within the limits and
//! re-encodes to exactly the bytes it came from (one message, one encoding).
//!
//! CI runs [`DEFAULT_CASES`] inputs per property; `PROPTEST_CASES=1000000` runs more by hand.
//! `fuzz/` has the coverage-guided (cargo-fuzz) counterparts.

use commonware_codec::{Copying, Decode as _, Encode as _};
use orrery_chain::block::ChainBlock;
use orrery_chain::gossip::{decode_batch, encode_batch};
use orrery_types::amount::Amount;
use orrery_types::block::{Block, BlockTxs};
use orrery_types::crypto::Keypair;
use orrery_types::hash::Hash;
use orrery_types::tx::{ChainId, SignedTx, Tx, TxBody};
use proptest::prelude::*;

/// Inputs per property in CI: a second or two each.
const DEFAULT_CASES: u32 = 2_000;
/// The block limit the decoder is given (the default config's is larger; a small one makes
/// the limit reachable by the edits).
const MAX_BLOCK_BYTES: usize = 16 * 1024;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

fn transfer(seed: u64, nonce: u64) -> SignedTx {
    let k = Keypair::from_seed(seed);
    Tx {
        chain_id: ChainId::new("orrery-fuzz").unwrap(),
        nonce,
        body: TxBody::Transfer {
            to: Keypair::from_seed(seed + 1).account(),
            amount: Amount::orr(nonce + 1),
        },
    }
    .sign(&k)
}

fn block(txs: usize) -> ChainBlock {
    ChainBlock::new(
        Block {
            height: 3,
            time_ms: 1_000,
            seed: Hash::of(b"seed"),
            parent: Hash::of(b"parent"),
            txs: BlockTxs::new((0..txs as u64).map(|n| transfer(n, n)).collect()).unwrap(),
        },
        None,
    )
}

/// One random edit of a message.
#[derive(Clone, Debug)]
enum Edit {
    /// Overwrite the byte at this position (modulo the length) with this value.
    Set(usize, u8),
    /// Cut the message at this position (modulo the length).
    Cut(usize),
    /// Append these bytes.
    Append(Vec<u8>),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec(
        prop_oneof![
            4 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
            1 => any::<usize>().prop_map(Edit::Cut),
            1 => prop::collection::vec(any::<u8>(), 1..16).prop_map(Edit::Append),
        ],
        0..6,
    )
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        match e {
            Edit::Set(i, b) if !bytes.is_empty() => {
                let n = bytes.len();
                bytes[i % n] = *b;
            }
            Edit::Cut(i) if !bytes.is_empty() => {
                let n = bytes.len();
                bytes.truncate(i % n);
            }
            Edit::Append(tail) => bytes.extend_from_slice(tail),
            _ => {}
        }
    }
    bytes
}

/// A gossip message as a validator receives it: the batch, then each transaction in it.
fn check_batch(bytes: &[u8]) {
    let Some(parts) = decode_batch(bytes) else {
        return;
    };
    // The batch framing is canonical: rebuilt from its parts, it is the same bytes.
    let mut rebuilt = (parts.len() as u16).to_be_bytes().to_vec();
    for p in &parts {
        rebuilt.extend_from_slice(&(p.len() as u32).to_be_bytes());
        rebuilt.extend_from_slice(p);
    }
    assert_eq!(rebuilt, bytes);
    for p in parts {
        if let Ok(tx) = SignedTx::decode(p) {
            assert_eq!(orrery_types::codec::encode(&tx), p);
            let _ = tx.verify_signature();
        }
    }
}

/// A proposed block as marshal's broadcast hands it over.
fn check_block(bytes: &[u8]) {
    if let Ok(b) = ChainBlock::decode_cfg(Copying(bytes), &MAX_BLOCK_BYTES) {
        assert!(b.block.encode().len() <= MAX_BLOCK_BYTES);
        assert_eq!(
            b.encode().as_ref(),
            bytes,
            "a block decodes from two encodings"
        );
        let _ = orrery_ledger::verify_block_signatures(&b.block);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn gossip_batches_of_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_batch(&bytes);
    }

    #[test]
    fn gossip_batches_edited(n in 0usize..4, edits in edits()) {
        let txs: Vec<_> = (0..n as u64).map(|i| transfer(i, i)).collect();
        check_batch(&apply(encode_batch(&txs), &edits));
    }

    #[test]
    fn blocks_of_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_block(&bytes);
    }

    #[test]
    fn blocks_edited(n in 0usize..4, edits in edits()) {
        check_block(&apply(block(n).encode().to_vec(), &edits));
    }
}

/// The edits reach past the framing: some edited messages still decode, some do not.
#[test]
fn edited_messages_reach_the_decoders() {
    let batch = encode_batch(&[transfer(1, 0)]);
    assert!(decode_batch(&batch).is_some());
    assert!(decode_batch(&apply(batch.clone(), &[Edit::Cut(batch.len() - 1)])).is_none());
    let b = block(1).encode().to_vec();
    assert!(ChainBlock::decode_cfg(Copying(b.as_slice()), &MAX_BLOCK_BYTES).is_ok());
    assert!(ChainBlock::decode_cfg(Copying(&b[..b.len() - 1]), &MAX_BLOCK_BYTES).is_err());
}
