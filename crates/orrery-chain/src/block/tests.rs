use super::*;
use commonware_codec::{Copying, Decode as _, Encode as _};
use orrery_types::block::BlockTxs;
use orrery_types::crypto::Keypair;
use orrery_types::tx::{ChainId, Tx, TxBody};

fn block(n_txs: u64) -> Block {
    let key = Keypair::from_seed(1);
    let txs = (0..n_txs)
        .map(|nonce| {
            Tx {
                chain_id: ChainId::new("t").unwrap(),
                nonce,
                body: TxBody::Transfer {
                    to: key.account(),
                    amount: orrery_types::amount::Amount::orr(1),
                },
            }
            .sign(&key)
        })
        .collect();
    Block {
        height: 3,
        time_ms: 10,
        seed: Hash::of(b"s"),
        parent: Hash::of(b"p"),
        txs: BlockTxs::new(txs).unwrap(),
    }
}

#[test]
fn round_trips_and_digest_is_the_ledger_hash() {
    let b = ChainBlock::new(block(3), None);
    let bytes = b.encode();
    assert_eq!(bytes.len(), b.encode_size());
    let back = ChainBlock::decode_cfg(bytes, &(1 << 20)).unwrap();
    assert_eq!(back, b);
    assert_eq!(back.hash(), b.block.hash());
    assert_eq!(
        commonware_consensus::Block::parent(&back),
        digest_of(&Hash::of(b"p"))
    );
}

#[test]
fn genesis_anchor_has_the_zero_digest_the_first_block_names() {
    assert_eq!(ChainBlock::genesis(5).hash(), Hash::ZERO);
}

#[test]
fn decoding_refuses_oversized_truncated_and_garbage_bytes() {
    let b = ChainBlock::new(block(3), None);
    let bytes = b.encode().to_vec();
    // Larger than the bound: refused before the block is read.
    assert!(ChainBlock::decode_cfg(Copying(bytes.as_slice()), &(bytes.len() - 10)).is_err());
    // Truncated anywhere.
    for cut in [1, 4, 10, bytes.len() - 1] {
        assert!(
            ChainBlock::decode_cfg(Copying(&bytes[..cut]), &(1 << 20)).is_err(),
            "cut {cut}"
        );
    }
    // A length prefix claiming 4 GiB.
    let mut huge: Vec<u8> = vec![0xff, 0xff, 0xff, 0xff];
    huge.extend_from_slice(&[0; 16]);
    assert!(ChainBlock::decode_cfg(Copying(huge.as_slice()), &usize::MAX).is_err());
    // Garbage inside a plausible length.
    let mut garbage = (32u32).to_be_bytes().to_vec();
    garbage.extend_from_slice(&[0xab; 40]);
    assert!(ChainBlock::decode_cfg(Copying(garbage.as_slice()), &(1 << 20)).is_err());
    // An unknown seed-proof flag.
    let mut bad_flag = bytes.clone();
    *bad_flag.last_mut().unwrap() = 7;
    assert!(ChainBlock::decode_cfg(Copying(bad_flag.as_slice()), &(1 << 20)).is_err());
}
