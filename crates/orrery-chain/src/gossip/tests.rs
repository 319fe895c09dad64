use super::*;
use orrery_types::amount::Amount;
use orrery_types::crypto::Keypair;
use orrery_types::tx::{ChainId, Tx, TxBody};

fn tx(nonce: u64) -> SignedTx {
    let k = Keypair::from_seed(3);
    Tx {
        chain_id: ChainId::new("g").unwrap(),
        nonce,
        body: TxBody::Transfer {
            to: k.account(),
            amount: Amount::orr(1),
        },
    }
    .sign(&k)
}

#[test]
fn batches_round_trip() {
    let txs: Vec<_> = (0..5).map(tx).collect();
    let bytes = encode_batch(&txs);
    let parts = decode_batch(&bytes).unwrap();
    let back: Vec<_> = parts.iter().map(|b| SignedTx::decode(b).unwrap()).collect();
    assert_eq!(back, txs);
}

#[test]
fn malformed_batches_are_dropped() {
    let bytes = encode_batch(&[tx(0), tx(1)]);
    assert!(decode_batch(&[]).is_none());
    assert!(
        decode_batch(&bytes[..bytes.len() - 1]).is_none(),
        "truncated"
    );
    let mut extra = bytes.clone();
    extra.push(0);
    assert!(decode_batch(&extra).is_none(), "trailing bytes");
    let mut too_many = ((MAX_BATCH_TXS + 1) as u16).to_be_bytes().to_vec();
    too_many.extend_from_slice(&bytes[2..]);
    assert!(decode_batch(&too_many).is_none(), "count over the limit");
    let mut huge = 1u16.to_be_bytes().to_vec();
    huge.extend_from_slice(&((orrery_types::tx::MAX_ADJUDICATE_TX_BYTES + 1) as u32).to_be_bytes());
    huge.extend(std::iter::repeat_n(
        0u8,
        orrery_types::tx::MAX_ADJUDICATE_TX_BYTES + 1,
    ));
    assert!(
        decode_batch(&huge).is_none(),
        "transaction over MAX_TX_BYTES"
    );
}
