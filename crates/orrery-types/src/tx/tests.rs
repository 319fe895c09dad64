use super::*;
use crate::challenge::{ChallengeRow, MAX_CHALLENGE_OPEN_BYTES};
use crate::codec::BoundedVec;
use crate::resources::GpuSpec;
use crate::workload::{FailedAt, JobFailure};
use proptest::prelude::*;

fn chain() -> ChainId {
    ChainId::new("orrery-test").unwrap()
}

pub(crate) fn sample_bodies() -> Vec<TxBody> {
    let offer = ProviderOffer {
        hardware: Hardware {
            gpu: Some(GpuSpec {
                model: Text::new("NVIDIA RTX 4090").unwrap(),
                vram_mib: 24_576,
                count: 2,
            }),
            cpu_cores: 16,
            ram_gib: 64,
        },
        region: Text::new("eu-west").unwrap(),
        endpoint: Text::new("http://127.0.0.1:7000").unwrap(),
        prices: PriceList {
            gpu_hour: Amount::orr(1),
            cpu_core_hour: Amount(1_000),
            ram_gib_hour: Amount(10),
            mega_unit: Amount(5),
        },
    };
    vec![
        TxBody::Transfer {
            to: Keypair::from_seed(9).account(),
            amount: Amount::orr(3),
        },
        TxBody::RegisterProvider(offer.clone()),
        TxBody::UpdateProvider(offer.clone()),
        TxBody::Bond {
            amount: Amount::orr(100),
        },
        TxBody::Unbond { amount: Amount(1) },
        TxBody::OpenLease {
            provider: Keypair::from_seed(2).account(),
            job: Hash::of(b"bundle"),
            terms: LeaseTerms {
                resources: ResourceRequest {
                    gpus: 1,
                    cpu_cores: 2,
                    ram_gib: 8,
                },
                prices: offer.prices,
                max_seconds: 3600,
                max_units: 1_000_000_000,
            },
            deadline: 500,
            verification: Verification::Redundant { k: 3 },
        },
        TxBody::StartLease { lease: 7 },
        TxBody::CommitResult {
            lease: 7,
            seal: Hash::of(b"seal"),
            usage: Usage {
                seconds: 10,
                units: 99,
            },
        },
        TxBody::SettleLease { lease: 7 },
        TxBody::CommitCheck {
            lease: 7,
            seal: Hash::of(b"check"),
        },
        TxBody::RevealResult {
            lease: 7,
            claim: ResultClaim::succeeded(Hash::of(b"out"), Hash::of(b"root"), 1 << 20),
            note: FailureNote::default(),
        },
        TxBody::RevealResult {
            lease: 8,
            claim: ResultClaim::failed(
                JobFailure {
                    at: FailedAt::Step(3),
                    reason: crate::workload::FailureReason::OutOfFuel,
                },
                Hash::of(b"root"),
                9,
            ),
            note: failure_note(&"step 3 ran out of fuel after 200000000 units. ".repeat(20)),
        },
        TxBody::DisputeMove {
            lease: 7,
            left: Hash::of(b"l"),
            right: Hash::of(b"r"),
        },
        TxBody::Adjudicate {
            lease: 7,
            bundle: Blob::new(vec![1, 2, 3]).unwrap(),
            state: Blob::new(vec![4; 100]).unwrap(),
            proof: MerkleProof {
                index: 3,
                leaf_count: 9,
                siblings: vec![Hash::of(b"s1"), Hash::of(b"s2")],
            },
        },
        TxBody::AnswerChallenge {
            drawn_at: 12,
            rows: 4096,
            root: Hash::of(b"root"),
        },
        TxBody::OpenChallenge {
            drawn_at: 12,
            rows: BoundedVec::new(vec![ChallengeRow {
                index: 5,
                values: BoundedVec::new(vec![1, 2, 3, 4]).unwrap(),
                proof: MerkleProof {
                    index: 5,
                    leaf_count: 8,
                    siblings: vec![Hash::of(b"a"), Hash::of(b"b"), Hash::of(b"c")],
                },
            }])
            .unwrap(),
        },
        TxBody::RequestChallenge {},
        TxBody::OpenClusterLease {
            members: BoundedVec::new(
                (0..crate::cluster::MAX_CLUSTER_MEMBERS as u64)
                    .map(|i| Keypair::from_seed(100 + i).account())
                    .collect(),
            )
            .unwrap(),
            job: Hash::of(b"cluster job"),
            terms: LeaseTerms {
                resources: ResourceRequest {
                    gpus: 1,
                    cpu_cores: 4,
                    ram_gib: 16,
                },
                prices: PriceList {
                    gpu_hour: Amount::orr(1),
                    cpu_core_hour: Amount::ZERO,
                    ram_gib_hour: Amount::ZERO,
                    mega_unit: Amount::ZERO,
                },
                max_seconds: 600,
                max_units: 1_000_000,
            },
            rounds: 20,
            inner_steps: 50,
            round_blocks: 30,
            check_bps: 1_000,
        },
        TxBody::CommitClusterRound {
            lease: 3,
            round: 7,
            start: Hash::of(b"start"),
            delta: Hash::of(b"delta"),
            loss: crate::cluster::LossBits::of(3.25),
        },
        TxBody::SealClusterCheck {
            lease: 3,
            round: 7,
            worker: Keypair::from_seed(5).account(),
            seal: Hash::of(b"seal"),
        },
        TxBody::RevealClusterCheck {
            lease: 3,
            round: 7,
            worker: Keypair::from_seed(5).account(),
            delta: Hash::of(b"delta"),
        },
    ]
}

fn signed(body: TxBody) -> SignedTx {
    Tx {
        chain_id: chain(),
        nonce: 4,
        body,
    }
    .sign(&Keypair::from_seed(1))
}

#[test]
fn every_kind_roundtrips_and_verifies() {
    for body in sample_bodies() {
        let tx = signed(body);
        assert!(tx.verify_signature());
        let bytes = codec::encode(&tx);
        assert!(bytes.len() <= MAX_TX_BYTES);
        let back = SignedTx::decode(&bytes).unwrap();
        assert_eq!(back, tx);
        assert_eq!(back.hash(), tx.hash());
    }
}

#[test]
fn tampering_with_any_field_breaks_the_signature() {
    let tx = signed(TxBody::Transfer {
        to: Keypair::from_seed(9).account(),
        amount: Amount::orr(3),
    });
    let mut other_nonce = tx.clone();
    other_nonce.tx.nonce += 1;
    assert!(!other_nonce.verify_signature());
    let mut other_chain = tx.clone();
    other_chain.tx.chain_id = ChainId::new("orrery-mainnet").unwrap();
    assert!(!other_chain.verify_signature());
    let mut other_signer = tx.clone();
    other_signer.signer = Keypair::from_seed(2).public_key().clone();
    assert!(!other_signer.verify_signature());
}

#[test]
fn oversized_input_is_refused_before_decoding() {
    let err = SignedTx::decode(&vec![0u8; MAX_TX_BYTES + 1]).unwrap_err();
    assert!(err.to_string().contains("transaction"), "{err}");
}

#[test]
fn only_an_adjudication_may_exceed_the_ordinary_size_limit() {
    let big = signed(TxBody::Adjudicate {
        lease: 1,
        bundle: Blob::new(vec![7; MAX_TX_BYTES]).unwrap(),
        state: Blob::new(vec![9; 1000]).unwrap(),
        proof: MerkleProof {
            index: 0,
            leaf_count: 1,
            siblings: vec![],
        },
    });
    let bytes = codec::encode(&big);
    assert!(bytes.len() > MAX_TX_BYTES);
    assert_eq!(SignedTx::decode(&bytes).unwrap(), big);
    let err = SignedTx::decode(&vec![0u8; MAX_ADJUDICATE_TX_BYTES + 1]).unwrap_err();
    assert!(err.to_string().contains("transaction"), "{err}");
}

/// An opening of `rows` rows of `n` values each, as a signed transaction's bytes.
fn opening_bytes(rows: usize, n: usize) -> Vec<u8> {
    let row = |i: u64| ChallengeRow {
        index: i,
        values: BoundedVec::new(vec![115_200; n]).unwrap(),
        proof: MerkleProof {
            index: i,
            leaf_count: 1 << 20,
            siblings: vec![Hash::of(b"s"); 20],
        },
    };
    let body = TxBody::OpenChallenge {
        drawn_at: 3,
        rows: BoundedVec::new((0..rows as u64).map(row).collect()).unwrap(),
    };
    codec::encode(&signed(body))
}

#[test]
fn a_challenge_opening_has_its_own_size_limit_enforced_by_the_decoder() {
    // The default opening (16 rows of 512) exceeds the ordinary limit and decodes.
    let bytes = opening_bytes(16, 512);
    assert!(bytes.len() > MAX_TX_BYTES);
    assert!(bytes.len() <= MAX_CHALLENGE_OPEN_BYTES);
    assert!(bytes.len() <= crate::challenge::max_open_bytes(512, 16));
    SignedTx::decode(&bytes).unwrap();
    // 32 rows of 1024 (well within the type's bounds) do not fit the carve-out.
    let bytes = opening_bytes(32, 1024);
    assert!(bytes.len() > MAX_CHALLENGE_OPEN_BYTES);
    let err = SignedTx::decode(&bytes).unwrap_err();
    assert!(err.to_string().contains("transaction"), "{err}");
    // Other kinds are still held to the ordinary limit.
    let big_answer = signed(TxBody::OfferModels {
        models: ModelOffers::default(),
    });
    assert_eq!(big_answer.max_bytes(), MAX_TX_BYTES);
}

#[test]
fn seals_bind_the_party_and_the_lease() {
    let claim = ResultClaim::succeeded(Hash::of(b"out"), Hash::of(b"root"), 10);
    let a = Keypair::from_seed(1).account();
    let b = Keypair::from_seed(2).account();
    let seal = result_seal(5, &a, &claim);
    assert_ne!(
        seal,
        result_seal(5, &b, &claim),
        "a copied seal must not fit another party"
    );
    assert_ne!(seal, result_seal(6, &a, &claim));
    assert_ne!(
        seal,
        result_seal(5, &a, &ResultClaim { steps: 11, ..claim })
    );
    // The failure is sealed too: the same tree claimed as a failure is another seal.
    let failed = ResultClaim::failed(
        JobFailure {
            at: FailedAt::Output,
            reason: crate::workload::FailureReason::Trap,
        },
        claim.checkpoint_root,
        10,
    );
    assert_ne!(seal, result_seal(5, &a, &failed));
    let other_reason = ResultClaim::failed(
        JobFailure {
            at: FailedAt::Output,
            reason: crate::workload::FailureReason::OutOfFuel,
        },
        claim.checkpoint_root,
        10,
    );
    assert_ne!(
        result_seal(5, &a, &failed),
        result_seal(5, &a, &other_reason)
    );
}

#[test]
fn a_failure_claim_names_no_output_and_a_step_within_the_job() {
    let fuel = |at| JobFailure {
        at,
        reason: crate::workload::FailureReason::OutOfFuel,
    };
    let root = Hash::of(b"root");
    assert_eq!(
        ResultClaim::failed(fuel(FailedAt::Step(4)), root, 5).malformed(),
        None
    );
    assert_eq!(
        ResultClaim::failed(fuel(FailedAt::Init), root, 0).malformed(),
        None
    );
    assert_eq!(
        ResultClaim::failed(fuel(FailedAt::Output), root, 0).malformed(),
        None
    );
    let beyond = ResultClaim::failed(fuel(FailedAt::Step(5)), root, 5)
        .malformed()
        .unwrap();
    assert!(
        beyond.contains("step 5") && beyond.contains("0..5"),
        "{beyond}"
    );
    let with_output = ResultClaim {
        output: Hash::of(b"out"),
        ..ResultClaim::failed(fuel(FailedAt::Init), root, 5)
    };
    assert!(with_output.malformed().unwrap().contains("no output"));
    assert_eq!(
        ResultClaim::succeeded(Hash::of(b"o"), root, 5).malformed(),
        None
    );
    // An output dispute can never confuse a claimed output with a failure, even one that
    // names the failure's own marker as its output hash.
    let failed = ResultClaim::failed(fuel(FailedAt::Output), root, 5);
    let posing = ResultClaim::succeeded(failed.ending(), root, 5);
    assert_ne!(posing.ending(), failed.ending());
}

#[test]
fn a_failure_note_is_cut_to_its_limit_on_a_character_boundary() {
    let long = "é".repeat(MAX_FAILURE_NOTE_BYTES);
    let note = failure_note(&long);
    assert!(note.as_str().len() <= MAX_FAILURE_NOTE_BYTES);
    assert!(note.as_str().len() >= MAX_FAILURE_NOTE_BYTES - 1);
    assert_eq!(failure_note("short").as_str(), "short");
}

#[test]
fn unknown_kind_is_a_clear_error() {
    let mut bytes = codec::encode(&signed(TxBody::StartLease { lease: 1 }));
    // The body's tag sits right after signer (32), signature (64), chain id (4 + 11), nonce (8).
    let tag_at = 32 + 64 + 4 + 11 + 8;
    bytes[tag_at] = 200;
    let err = SignedTx::decode(&bytes).unwrap_err();
    assert!(err.to_string().contains("Enum"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decoder_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1500)) {
        let _ = SignedTx::decode(&bytes);
        let _ = crate::block::Block::decode(&bytes);
    }

    #[test]
    fn decoder_never_panics_on_mutated_transactions(
        which in 0usize..sample_bodies().len(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = codec::encode(&signed(sample_bodies()[which].clone()));
        for (at, v) in flips {
            let i = at.index(bytes.len());
            bytes[i] = v;
        }
        let keep = cut.index(bytes.len() + 1);
        let _ = SignedTx::decode(&bytes[..keep]);
        // Whatever decodes re-encodes to the same bytes: one value, one encoding.
        if let Ok(tx) = SignedTx::decode(&bytes) {
            prop_assert_eq!(codec::encode(&tx), bytes);
        }
    }
}
