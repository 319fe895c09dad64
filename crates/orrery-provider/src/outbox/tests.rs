use super::*;
use orrery_types::crypto::Keypair;
use orrery_types::tx::{ChainId, Tx, TxBody};

fn tx(nonce: u64, lease: LeaseId) -> SignedTx {
    Tx {
        chain_id: ChainId::new("orrery-test").unwrap(),
        nonce,
        body: TxBody::StartLease { lease },
    }
    .sign(&Keypair::from_seed(1))
}

fn key(lease: LeaseId) -> SendKey {
    (Subject::Lease(lease), "start_lease", 0)
}

#[test]
fn a_step_is_never_signed_twice_while_its_transaction_waits() {
    let mut o = Outbox::new();
    o.observe(5, 10);
    assert_eq!(o.next_nonce(), 5);
    assert!(o.may_send(key(1), 10));
    o.sent(key(1), tx(5, 1), 10);
    assert_eq!(o.next_nonce(), 6);
    // However long it waits, the step is not signed again while its transaction is pending.
    for h in 10..40 {
        o.observe(5, h);
        assert!(!o.may_send(key(1), h), "height {h}");
    }
    // Another lease's step may go meanwhile, with the next nonce.
    assert!(o.may_send(key(2), 40));
    o.sent(key(2), tx(6, 2), 40);
    assert_eq!(o.next_nonce(), 7);
    // Both included: receipts to read, and the first step may be sent again only once
    // RESEND_AFTER_BLOCKS passed since its last send (long ago here).
    o.observe(7, 41);
    assert_eq!(o.pending_len(), 0);
    let nonces: Vec<u64> = o.awaiting_receipts().iter().map(|i| i.nonce).collect();
    assert_eq!(nonces, vec![5, 6]);
    assert!(o.may_send(key(1), 41));
    assert!(!o.may_send(key(2), 41), "sent one block ago");
    assert!(o.may_send(key(2), 40 + RESEND_AFTER_BLOCKS));
    assert_eq!(o.next_nonce(), 7);
}

#[test]
fn waiting_transactions_are_resubmitted_byte_for_byte() {
    let mut o = Outbox::new();
    o.observe(0, 1);
    let a = tx(0, 1);
    let b = tx(1, 2);
    o.sent(key(1), a.clone(), 1);
    o.sent(key(2), b.clone(), 2);
    assert!(
        o.due_for_resubmission(1 + RESEND_AFTER_BLOCKS - 1)
            .is_empty()
    );
    assert_eq!(
        o.due_for_resubmission(1 + RESEND_AFTER_BLOCKS),
        vec![a.clone()]
    );
    assert_eq!(o.due_for_resubmission(2 + RESEND_AFTER_BLOCKS), vec![b]);
    // Marked as submitted: not again before another RESEND_AFTER_BLOCKS.
    assert!(o.due_for_resubmission(2 + RESEND_AFTER_BLOCKS).is_empty());
    // Included transactions are not resubmitted.
    o.observe(1, 20);
    assert!(o.due_for_resubmission(30).iter().all(|t| t.tx.nonce == 1));
}

#[test]
fn a_stuck_transaction_is_reported_once() {
    let mut o = Outbox::new();
    o.sent(key(1), tx(0, 1), 100);
    assert!(o.newly_stuck(100 + STUCK_AFTER_BLOCKS - 1).is_empty());
    let stuck = o.newly_stuck(100 + STUCK_AFTER_BLOCKS);
    assert_eq!(stuck.len(), 1);
    assert_eq!(stuck[0].key, key(1));
    assert!(o.newly_stuck(100 + 2 * STUCK_AFTER_BLOCKS).is_empty());
}

#[test]
fn receipts_are_asked_for_a_bounded_time() {
    let mut o = Outbox::new();
    o.sent(key(1), tx(0, 1), 1);
    o.sent(key(2), tx(1, 2), 1);
    o.observe(2, 5);
    let h0 = o.awaiting_receipts()[0].hash;
    o.receipt_read(&h0);
    assert_eq!(o.awaiting_receipts().len(), 1);
    assert!(o.expire_receipts(5 + RECEIPT_WAIT_BLOCKS - 1).is_empty());
    assert_eq!(o.expire_receipts(5 + RECEIPT_WAIT_BLOCKS).len(), 1);
    assert!(o.awaiting_receipts().is_empty());
}

#[test]
fn the_outbox_is_bounded() {
    let mut o = Outbox::new();
    for n in 0..MAX_PENDING as u64 {
        assert!(o.may_send(key(n), 1));
        o.sent(key(n), tx(n, n), 1);
    }
    assert!(!o.may_send(key(MAX_PENDING as u64), 1));
    o.observe(1, 2);
    assert!(o.may_send(key(MAX_PENDING as u64), 2));
}
