use super::*;

/// Collatz-like toy: state is a u64, each step applies x -> 3x+1 or x/2. Cost 1 per step.
struct Toy {
    input: u64,
    steps: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("bad state")]
struct BadState;

impl Workload for Toy {
    type Error = BadState;
    fn step_count(&self) -> u64 {
        self.steps
    }
    fn init(&mut self) -> Result<StepResult, BadState> {
        Ok(StepResult {
            state: self.input.to_le_bytes().to_vec(),
            cost: 1,
        })
    }
    fn step(&mut self, _k: u64, state: &[u8]) -> Result<StepResult, BadState> {
        let x = u64::from_le_bytes(state.try_into().map_err(|_| BadState)?);
        let y = if x % 2 == 0 { x / 2 } else { 3 * x + 1 };
        Ok(StepResult {
            state: y.to_le_bytes().to_vec(),
            cost: 1,
        })
    }
    fn output(&mut self, state: &[u8]) -> Result<OutputResult, BadState> {
        Ok(OutputResult {
            output: state.to_vec(),
            cost: 2,
        })
    }
}

#[test]
fn resume_from_any_checkpoint_gives_the_same_record() {
    let mut states = Vec::new();
    let full = run(
        &mut Toy {
            input: 27,
            steps: 40,
        },
        Start::Fresh,
        |_, s, _| {
            states.push(s.to_vec());
            true
        },
    )
    .unwrap()
    .unwrap();
    assert_eq!(full.checkpoints.len(), 41);
    // init + 40 steps at 1 each, plus 2 for the output.
    assert_eq!(full.cost, 43);
    for k in 0..=40u64 {
        let resumed = run(
            &mut Toy {
                input: 27,
                steps: 40,
            },
            Start::Resume {
                k,
                state: &states[k as usize],
                checkpoints: &full.checkpoints[..=k as usize],
                cost: k + 1,
            },
            |_, _, _| true,
        )
        .unwrap()
        .unwrap();
        assert_eq!(resumed, full, "resumed at {k}");
    }
}

#[test]
fn resume_with_a_state_that_does_not_match_is_refused() {
    let full = run(&mut Toy { input: 7, steps: 5 }, Start::Fresh, |_, _, _| {
        true
    })
    .unwrap()
    .unwrap();
    let err = run(
        &mut Toy { input: 7, steps: 5 },
        Start::Resume {
            k: 2,
            state: &9u64.to_le_bytes(),
            checkpoints: &full.checkpoints[..3],
            cost: 3,
        },
        |_, _, _| true,
    )
    .unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
}

#[test]
fn cancelling_stops_the_run() {
    let r = run(&mut Toy { input: 7, steps: 5 }, Start::Fresh, |k, _, _| {
        k < 3
    })
    .unwrap();
    assert!(r.is_none());
}

/// Fails at step `fail_at` after spending `burn` on it.
struct FailsAt {
    fail_at: u64,
    burn: u64,
    failed: u64,
}

impl Workload for FailsAt {
    type Error = BadState;
    fn step_count(&self) -> u64 {
        10
    }
    fn init(&mut self) -> Result<StepResult, BadState> {
        Ok(StepResult {
            state: vec![0],
            cost: 5,
        })
    }
    fn step(&mut self, k: u64, _state: &[u8]) -> Result<StepResult, BadState> {
        if k == self.fail_at {
            self.failed = self.burn;
            return Err(BadState);
        }
        Ok(StepResult {
            state: vec![k as u8 + 1],
            cost: 3,
        })
    }
    fn output(&mut self, state: &[u8]) -> Result<OutputResult, BadState> {
        Ok(OutputResult {
            output: state.to_vec(),
            cost: 0,
        })
    }
    fn failed_call_cost(&self) -> u64 {
        self.failed
    }
}

#[test]
fn a_failed_call_reports_where_and_what_the_run_spent() {
    let mut recorded = Vec::new();
    let err = run(
        &mut FailsAt {
            fail_at: 4,
            burn: 100,
            failed: 0,
        },
        Start::Fresh,
        |_, s, _| {
            recorded.push(checkpoint(s));
            true
        },
    )
    .unwrap_err();
    let RunError::Workload { at, cost, .. } = err else {
        panic!("{err}")
    };
    assert_eq!(at, FailedAt::Step(4));
    // init 5, steps 0..4 at 3 each, then the 100 the failed step burned.
    assert_eq!(cost, 5 + 4 * 3 + 100);
    assert_eq!(recorded.len(), 5, "states 0..=4 were reached");
    // The failed run's leaves: the five checkpoints, then the marker to leaf 10.
    let failure = JobFailure {
        at,
        reason: FailureReason::Trap,
    };
    let leaves = failure.leaves(recorded.clone(), 10).unwrap();
    assert_eq!(leaves.len(), 11);
    assert_eq!(&leaves[..5], &recorded[..]);
    assert!(leaves[5..].iter().all(|l| *l == failure.marker()));
    // Lengths that do not fit the failure are refused.
    assert!(failure.leaves(recorded[..4].to_vec(), 10).is_none());
    assert!(failure.leaves(recorded.clone(), 3).is_none());
}

#[test]
fn failure_markers_are_apart_from_checkpoints_and_from_each_other() {
    let f = |at, reason| JobFailure { at, reason };
    let a = f(FailedAt::Step(0), FailureReason::OutOfFuel);
    let encoded = crate::codec::encode(&a);
    // The same bytes as a state give a different leaf: a marker is never a checkpoint.
    assert_ne!(a.marker(), checkpoint(&encoded));
    assert_ne!(
        a.marker(),
        f(FailedAt::Step(1), FailureReason::OutOfFuel).marker()
    );
    assert_ne!(
        a.marker(),
        f(FailedAt::Step(0), FailureReason::Trap).marker()
    );
    assert_ne!(a.marker(), output_ending(&a.marker()));
    // Init fails before any state: every leaf is the marker. Output: none is.
    let init = f(FailedAt::Init, FailureReason::InvalidJob);
    assert_eq!(init.leaves(Vec::new(), 3).unwrap(), vec![init.marker(); 4]);
    let out = f(FailedAt::Output, FailureReason::OutputTooLarge);
    let cps: Vec<Hash> = (0..4u8).map(|i| checkpoint(&[i])).collect();
    assert_eq!(out.leaves(cps.clone(), 3).unwrap(), cps);
    // A step failure at or past the step count is no failure of this job.
    assert!(
        f(FailedAt::Step(3), FailureReason::Trap)
            .leaves(vec![Hash::ZERO; 4], 3)
            .is_none()
    );
    // The encoding round-trips and refuses unknown codes.
    for reason in FailureReason::ALL {
        let x = f(FailedAt::Step(7), reason);
        let back: JobFailure = crate::codec::decode("failure", &crate::codec::encode(&x)).unwrap();
        assert_eq!(back, x);
    }
    assert!(
        crate::codec::decode::<JobFailure>("failure", &[1, 0, 0, 0, 0, 0, 0, 0, 7, 99]).is_err()
    );
    assert!(crate::codec::decode::<JobFailure>("failure", &[3, 1]).is_err());
}
