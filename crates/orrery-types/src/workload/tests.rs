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
