use super::*;

fn challenge(rows: u64, claimed_flops: u64) -> Challenge {
    Challenge {
        drawn_at: 1,
        drawn_ms: 0,
        seed: Hash::ZERO,
        dim: 512,
        rows,
        claimed_flops,
        phase: ChallengePhase::Drawn,
    }
}

#[test]
fn throughput_subtracts_the_latency_allowance_and_caps_the_score() {
    let params = Params::default();
    // 1 GFLOP of work for a 1 GFLOP/s claim.
    let rows = 1_000_000_000 / challenge_flops(1, 512);
    let work = challenge_flops(rows, 512);
    let c = challenge(rows, work);
    // Computed in exactly 1 s after the allowed latency: the claimed rate.
    let elapsed = 1_000 + params.challenge_latency_ms;
    let (flops, score) = throughput(&params, &c, elapsed);
    assert_eq!(score, 10_000);
    // The recorded rate is the proven lower bound: the work over the whole elapsed time.
    assert_eq!(flops, work * 1_000 / elapsed);
    assert!(flops < work);
    // Four times slower: a quarter of the claim.
    let (_, score) = throughput(&params, &c, 4_000 + params.challenge_latency_ms);
    assert_eq!(score, 2_500);
    // Faster than claimed, or faster than the latency allowance: capped, never a division by 0.
    let (flops, score) = throughput(&params, &c, 10);
    assert_eq!(score, 10_000);
    assert_eq!(
        flops,
        work * 100,
        "inside the allowance: the work over 10 ms, not over 1 ms"
    );
    // A claim of nothing is met by any answer.
    let (_, score) = throughput(&params, &challenge(16, 0), 60_000);
    assert_eq!(score, 10_000);
}

#[test]
fn the_proven_score_averages_answers_and_the_first_sets_it() {
    let mut r = ProvenRecord::default();
    record_answer(&mut r, 10, 8_000, false, 5);
    assert_eq!(
        (
            r.proven_score_bps,
            r.challenges_answered,
            r.last_answered_at
        ),
        (8_000, 1, 5)
    );
    record_answer(&mut r, 10, 4_000, false, 9);
    assert_eq!(r.proven_score_bps, 7_000);
    assert!(r.online);
    // Below the claim: counted as answered, offline, the last passing height kept.
    record_answer(&mut r, 1, 1_000, true, 12);
    assert_eq!((r.challenges_answered, r.below_claim), (3, 1));
    assert!(!r.online);
    assert_eq!(r.last_answered_at, 9);
    assert_eq!(
        r.uptime_bps(),
        10_000,
        "uptime counts the drawn ones, none here"
    );
}

#[test]
fn the_draw_is_uniform_over_the_slots() {
    let n = 10u64;
    let mut hits = vec![0u32; n as usize];
    for h in 0..10_000u64 {
        let seed = Hash::of(&h.to_be_bytes());
        hits[draw_slot(&seed, h % 4, n) as usize] += 1;
    }
    // 1,000 expected per slot; 4.5 sigma is about 140.
    assert!(hits.iter().all(|&c| (860..1_140).contains(&c)), "{hits:?}");
}
