use super::*;

#[test]
fn a_slow_client_is_dropped_and_others_keep_receiving() {
    let hub = EventHub::new(2, 10);
    let mut slow = hub.subscribe().expect("room");
    let mut fast = hub.subscribe().expect("room");
    for i in 0..2 {
        assert_eq!(hub.publish(format!("m{i}").into()), 0);
        assert_eq!(&*fast.try_recv().expect("fast gets it"), format!("m{i}"));
    }
    // The slow client's queue is full: the third message drops it.
    assert_eq!(hub.publish("m2".into()), 1);
    assert_eq!(hub.clients(), 1);
    assert_eq!(&*fast.try_recv().expect("fast"), "m2");
    // The slow client still reads what was queued, then its stream ends.
    assert_eq!(&*slow.try_recv().expect("queued"), "m0");
    assert_eq!(&*slow.try_recv().expect("queued"), "m1");
    assert!(matches!(
        slow.try_recv(),
        Err(mpsc::error::TryRecvError::Disconnected)
    ));
}

#[test]
fn client_count_is_capped() {
    let hub = EventHub::new(1, 2);
    let _a = hub.subscribe().expect("room");
    let b = hub.subscribe().expect("room");
    assert!(hub.subscribe().is_none());
    drop(b);
    assert!(hub.subscribe().is_some(), "a closed client frees its slot");
}
