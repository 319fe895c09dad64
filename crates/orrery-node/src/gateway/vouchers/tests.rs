use super::*;
use orrery_types::crypto::Keypair;

fn chain() -> ChainId {
    ChainId::new("orrery-test").unwrap()
}

#[test]
fn vouchers_are_cumulative_per_channel_and_channels_are_retired_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.redb");
    let key = ApiKey::from_secret(&[1u8; 32]).unwrap();
    let provider = Keypair::from_seed(2).account();
    let weights = Hash::of(b"w");
    let (first, base) = {
        let store = VoucherStore::open(&path).unwrap();
        let c = store.channel_for(key.id(), provider, weights).unwrap();
        assert_eq!(store.channel_for(key.id(), provider, weights).unwrap(), c);
        let other = store
            .channel_for(key.id(), provider, Hash::of(b"v"))
            .unwrap();
        assert_eq!(other, c + 1, "one channel per (key, provider, weights)");
        let v1 = store.sign_next(&key, &chain(), c, Amount(5)).unwrap();
        let v2 = store.sign_next(&key, &chain(), c, Amount(7)).unwrap();
        assert!(v1.verify() && v2.verify());
        assert_eq!((v2.voucher.total, v2.voucher.responses), (Amount(12), 2));
        assert_eq!(v2.voucher.provider, provider);
        (c, store.base)
    };
    let store = VoucherStore::open(&path).unwrap();
    assert_eq!(store.base, base, "the base is drawn once per node");
    let c = store.channel_for(key.id(), provider, weights).unwrap();
    assert!(
        c > first + 1,
        "a restarted gateway opens a new channel, never reuses one"
    );
    let channels = store.channels_of(&key.id());
    assert_eq!(
        channels.len(),
        3,
        "retired channels still count for the key"
    );
    let old = channels.iter().find(|ch| ch.id == first).unwrap();
    assert_eq!(
        (old.total, old.responses),
        (Amount(12), 2),
        "vouchers survived a clean close"
    );
    assert!(
        store
            .channels_of(&Keypair::from_seed(9).account())
            .is_empty()
    );
}

#[test]
fn two_nodes_draw_different_channel_bases() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let sa = VoucherStore::open(&a.path().join("g.redb")).unwrap();
    let sb = VoucherStore::open(&b.path().join("g.redb")).unwrap();
    assert_ne!(sa.base, sb.base);
    assert_eq!(sa.base & 0xffff_ffff, 0, "the counter owns the low 32 bits");
}

#[test]
fn receipts_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = VoucherStore::open(&dir.path().join("g.redb")).unwrap();
    let commitment = orrery_types::inference::ResponseCommitment {
        model: Hash::of(b"m"),
        key: Keypair::from_seed(1).account(),
        request: Hash::of(b"r"),
        seed: 1,
        output: Hash::of(b"o"),
        tokens_in: 1,
        tokens_out: 2,
        charged: Amount(3),
    };
    let leaf = commitment.leaf();
    let r = InferenceReceiptView {
        leaf,
        commitment,
        signature: "00".into(),
        provider: Keypair::from_seed(2).account(),
        model_name: "m".into(),
        key: Keypair::from_seed(1).account(),
        channel: 4,
        voucher_responses: 1,
        time_ms: 5,
        batch: None,
    };
    store.put_receipt(&r).unwrap();
    assert_eq!(store.receipt(&leaf).unwrap(), Some(r));
    assert_eq!(store.receipt(&Hash::of(b"none")).unwrap(), None);
}
