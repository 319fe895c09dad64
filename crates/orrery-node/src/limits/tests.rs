use super::*;
use std::time::Duration;

#[test]
fn bucket_allows_burst_then_refills_at_rate() {
    let rl = RateLimiter::new(2.0, 3, 10);
    let ip: IpAddr = [10, 0, 0, 1].into();
    let t0 = Instant::now();
    for _ in 0..3 {
        assert_eq!(rl.check(ip, t0), Ok(()));
    }
    assert_eq!(rl.check(ip, t0), Err(1));
    // Another address has its own bucket.
    assert_eq!(rl.check([10, 0, 0, 2].into(), t0), Ok(()));
    // Half a second refills one token at 2/s.
    assert_eq!(rl.check(ip, t0 + Duration::from_millis(500)), Ok(()));
    assert!(rl.check(ip, t0 + Duration::from_millis(500)).is_err());
}

#[test]
fn tracked_addresses_stay_bounded() {
    let rl = RateLimiter::new(1.0, 5, 4);
    let t0 = Instant::now();
    for i in 0..100u8 {
        let _ = rl.check([10, 0, 1, i].into(), t0);
        assert!(rl.tracked() <= 4);
    }
}
