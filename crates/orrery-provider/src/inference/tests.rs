//! The check table, and re-executions: an honest provider's responses are reproduced, a
//! wrong-model cheater's are not, and missing data gives zeros.

use super::*;
use crate::chain::{CheckPhase, CheckRole, InferenceCheck};
use crate::config::Cheat;
use crate::serve::book::Book;
use crate::serve::tests::{api_key, chain_id, completion, model_config, voucher, write_model};
use crate::serve::{ServedModel, Serving};
use orrery_types::amount::Amount;
use orrery_types::crypto::Keypair;
use orrery_types::inference::ResponseCommitment;

fn check(role: CheckRole, phase: CheckPhase) -> InferenceCheck {
    InferenceCheck {
        batch: 3,
        index: 1,
        round: 0,
        role,
        phase,
        seal_deadline: 10,
        reveal_deadline: 20,
        batch_file: Hash::of(b"file"),
        model: Hash::of(b"model"),
        sealed: false,
        revealed: false,
        opened: false,
    }
}

fn at(height: u64) -> Head {
    Head { height, time_ms: 0 }
}

#[test]
fn the_check_table() {
    let me = Keypair::from_seed(1).account();
    let r = CheckResult {
        request: Hash::of(b"r"),
        output: Hash::of(b"o"),
    };
    let seal = check(CheckRole::Checker, CheckPhase::Seal);
    assert_eq!(
        decide_check(&me, &seal, None, true, at(5)),
        CheckAction::Execute
    );
    assert_eq!(
        decide_check(&me, &seal, Some(&r), true, at(5)),
        CheckAction::Seal(check_seal(3, 1, &me, &r.request, &r.output))
    );
    assert_eq!(
        decide_check(&me, &seal, Some(&r), false, at(5)),
        CheckAction::Wait,
        "not a checker by config"
    );
    let sealed = InferenceCheck {
        sealed: true,
        ..seal.clone()
    };
    assert_eq!(
        decide_check(&me, &sealed, Some(&r), true, at(5)),
        CheckAction::Wait,
        "reveal waits for the seal phase to close"
    );
    let reveal = InferenceCheck {
        phase: CheckPhase::Reveal,
        ..sealed
    };
    assert_eq!(
        decide_check(&me, &reveal, Some(&r), true, at(15)),
        CheckAction::Reveal(r)
    );
    assert_eq!(
        decide_check(&me, &reveal, None, true, at(15)),
        CheckAction::Execute,
        "recomputed after a restart"
    );
    assert_eq!(
        decide_check(&me, &reveal, Some(&r), true, at(21)),
        CheckAction::Wait,
        "too late"
    );
    let revealed = InferenceCheck {
        revealed: true,
        ..reveal.clone()
    };
    assert_eq!(
        decide_check(&me, &revealed, Some(&r), true, at(15)),
        CheckAction::Wait
    );
    let unsealed_late = InferenceCheck {
        sealed: false,
        ..reveal
    };
    assert_eq!(
        decide_check(&me, &unsealed_late, Some(&r), true, at(15)),
        CheckAction::Wait,
        "missed the seal: nothing to reveal"
    );
    let provider = check(CheckRole::Provider, CheckPhase::Seal);
    assert_eq!(
        decide_check(&me, &provider, None, false, at(5)),
        CheckAction::Wait,
        "opens only after the seal phase"
    );
    let open = InferenceCheck {
        phase: CheckPhase::Reveal,
        ..provider
    };
    assert_eq!(
        decide_check(&me, &open, None, false, at(15)),
        CheckAction::Open
    );
    let opened = InferenceCheck {
        opened: true,
        ..open
    };
    assert_eq!(
        decide_check(&me, &opened, None, false, at(15)),
        CheckAction::Wait
    );
}

/// Serve `n` requests with `cheat`, pay them, cut one batch: its file bytes, hash and
/// commitments.
fn served_batch(cheat: Cheat, n: u64) -> (Vec<u8>, Hash, Vec<ResponseCommitment>) {
    let dir = tempfile::tempdir().unwrap();
    let serving: std::sync::Arc<Serving> =
        crate::serve::tests::serving(&write_model(dir.path()), cheat, 1);
    let model = serving.model(&serving.offers()[0].weights).unwrap();
    let mut book = Book::in_memory();
    let mut total = Amount::ZERO;
    for i in 1..=n {
        let req = completion(model.weights(), i, "check me", 8);
        let computed = model.compute(&req.task, 1).unwrap();
        let c = ResponseCommitment {
            model: model.weights(),
            key: req.key,
            request: req.hash(),
            seed: req.seed(),
            output: computed.digest(),
            tokens_in: computed.tokens_in,
            tokens_out: computed.tokens_out,
            charged: model.cost(computed.tokens_in, computed.tokens_out).unwrap(),
        };
        total = total.checked_add(c.charged).unwrap();
        let leaf = c.leaf();
        book.remember(String::from_utf8(req.canonical_bytes()).unwrap(), c, 0);
        book.accept(
            &voucher(i, total, 1),
            &leaf,
            &serving.account(),
            &chain_id(),
        )
        .unwrap();
    }
    let hash = book.cut(&api_key().id(), 1, 64).unwrap().unwrap();
    let batch = book.batches()[&hash].clone();
    (batch.file_bytes(), hash, batch.commitments)
}

fn honest_checker() -> (tempfile::TempDir, ServedModel) {
    let dir = tempfile::tempdir().unwrap();
    let m = ServedModel::load(&model_config(&write_model(dir.path())), Cheat::None).unwrap();
    (dir, m)
}

#[test]
fn a_checker_reproduces_an_honest_provider_and_not_a_wrong_model() {
    let (_dir, checker) = honest_checker();
    let (file, hash, commitments) = served_batch(Cheat::None, 3);
    for (i, c) in commitments.iter().enumerate() {
        let r = reexecute(Some(&file), &hash, i as u64, &checker, 2);
        assert_eq!(r.request, c.request, "response {i}: the same request hash");
        assert_eq!(r.output, c.output, "response {i}: the same digest");
    }
    let (file, hash, commitments) = served_batch(Cheat::WrongModel, 2);
    for (i, c) in commitments.iter().enumerate() {
        let r = reexecute(Some(&file), &hash, i as u64, &checker, 1);
        assert_eq!(r.request, c.request);
        assert_ne!(
            r.output, c.output,
            "response {i}: the cheater's digest differs"
        );
    }
}

#[test]
fn missing_or_broken_data_reveals_zeros() {
    let (_dir, checker) = honest_checker();
    let (file, hash, _) = served_batch(Cheat::None, 1);
    let zeros = CheckResult::UNAVAILABLE;
    assert_eq!(reexecute(None, &hash, 0, &checker, 1), zeros, "no file");
    assert_eq!(
        reexecute(Some(&file), &hash, 1, &checker, 1),
        zeros,
        "no entry 1"
    );
    let mut tampered = file.clone();
    tampered.push(b' ');
    assert_eq!(
        reexecute(Some(&tampered), &hash, 0, &checker, 1),
        zeros,
        "wrong hash"
    );
    let junk = b"not json".to_vec();
    assert_eq!(
        reexecute(Some(&junk), &Hash::of(&junk), 0, &checker, 1),
        zeros,
        "no batch file"
    );
    assert_ne!(reexecute(Some(&file), &hash, 0, &checker, 1), zeros);
}

#[test]
fn check_runs_are_bounded_and_report_their_results() {
    let (_dir, checker) = honest_checker();
    let checker = std::sync::Arc::new(checker);
    let (file, hash, commitments) = served_batch(Cheat::None, 2);
    let mut runs = CheckRuns::new(1, 1);
    assert!(
        runs.start((7, 0), checker.clone(), Some(file.clone()), hash)
            .unwrap()
    );
    assert!(
        !runs
            .start((7, 1), checker.clone(), Some(file.clone()), hash)
            .unwrap(),
        "the lane is full"
    );
    let done = runs.join_all();
    assert_eq!(
        done,
        vec![(
            (7, 0),
            CheckResult {
                request: commitments[0].request,
                output: commitments[0].output
            }
        )]
    );
    assert!(runs.is_empty());
}
