//! Unit tests: configuration errors, hardware detection, and the decision function on lease
//! states built by hand (the games against the real ledger are in `tests/agent`).

use crate::config::{ConfigError, ProviderConfig};
use crate::decide::{Action, Head, LeaseInfo, decide, role, split, usage};
use crate::store::Outcome;
use orrery_ledger::Params;
use orrery_ledger::entries::{Check, CheckPhase, Claim, ClaimStatus, LeaseState};
use orrery_types::amount::Amount;
use orrery_types::codec::BoundedVec;
use orrery_types::crypto::Keypair;
use orrery_types::hash::Hash;
use orrery_types::resources::{Hardware, PriceList, ResourceRequest, Usage};
use orrery_types::tx::{LeaseTerms, ResultClaim, TxBody, Verification, result_seal};
use std::collections::BTreeMap;

const GOOD: &str = r#"
node = "http://127.0.0.1:7420"
key_seed = 3
data_dir = "/tmp/orrery-provider-test"
region = "eu-west"
stake = "300"
[prices]
gpu_hour = "2"
cpu_core_hour = "0.05"
ram_gib_hour = "0"
mega_unit = "0.001"
[hardware]
cpu_cores = 16
ram_gib = 64
"#;

fn hw() -> Hardware {
    Hardware {
        gpu: None,
        cpu_cores: 16,
        ram_gib: 64,
    }
}

#[test]
fn a_complete_config_parses_and_validates() {
    let c = ProviderConfig::from_toml(GOOD).unwrap();
    assert_eq!(c.stake, Some(Amount::orr(300)));
    assert!(c.verifier, "verifying is on by default");
    assert_eq!(
        c.offered_hardware(&Hardware {
            gpu: None,
            cpu_cores: 2,
            ram_gib: 4
        }),
        hw()
    );
    c.validate(&hw(), &Params::default()).unwrap();
    assert_eq!(
        c.keypair().unwrap().account(),
        Keypair::from_seed(3).account()
    );
}

#[test]
fn unknown_fields_are_refused() {
    let text = GOOD.replace("region =", "regoin = \"x\"\nregion =");
    let err = ProviderConfig::from_toml(&text).unwrap_err();
    assert!(err.to_string().contains("regoin"), "{err}");
}

#[test]
fn missing_or_low_stake_names_the_minimum() {
    let minimum = Params::default().min_stake(&hw()).unwrap();
    let c = ProviderConfig::from_toml(&GOOD.replace("stake = \"300\"\n", "")).unwrap();
    match c.validate(&hw(), &Params::default()) {
        Err(ConfigError::NoStake { minimum: m }) => assert_eq!(m, minimum),
        other => panic!("{other:?}"),
    }
    let c = ProviderConfig::from_toml(&GOOD.replace("\"300\"", "\"100\"")).unwrap();
    let err = c.validate(&hw(), &Params::default()).unwrap_err();
    assert!(matches!(err, ConfigError::StakeTooLow { .. }));
    assert!(err.to_string().contains(&minimum.to_string()), "{err}");
    // A GPU raises the minimum.
    let mut gpu = hw();
    gpu.gpu = Some(orrery_types::resources::GpuSpec {
        model: orrery_types::codec::Text::new("NVIDIA H100").unwrap(),
        vram_mib: 81_559,
        count: 1,
    });
    let c = ProviderConfig::from_toml(GOOD).unwrap();
    assert!(matches!(
        c.validate(&gpu, &Params::default()),
        Err(ConfigError::StakeTooLow { .. })
    ));
}

#[test]
fn worker_lanes_default_to_one_run_each_and_are_bounded() {
    let c = ProviderConfig::from_toml(GOOD).unwrap();
    assert_eq!((c.max_job_runs, c.max_verify_runs), (1, 1));
    for (field, value) in [("max_job_runs", 0), ("max_verify_runs", 65)] {
        let c = ProviderConfig::from_toml(&format!("{field} = {value}\n{GOOD}")).unwrap();
        let err = c.validate(&hw(), &Params::default()).unwrap_err();
        assert!(
            matches!(err, ConfigError::Invalid(_)) && err.to_string().contains(field),
            "{err}"
        );
    }
    let c = ProviderConfig::from_toml(&format!("max_job_runs = 4\n{GOOD}")).unwrap();
    c.validate(&hw(), &Params::default()).unwrap();
}

#[test]
fn exactly_one_key_source() {
    let both = GOOD.replace("key_seed = 3", "key_seed = 3\nkey_file = \"k\"");
    let c = ProviderConfig::from_toml(&both).unwrap();
    assert!(matches!(
        c.validate(&hw(), &Params::default()),
        Err(ConfigError::Key)
    ));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    std::fs::write(&path, "not hex").unwrap();
    let c =
        ProviderConfig::from_toml(&GOOD.replace("key_seed = 3", &format!("key_file = {:?}", path)))
            .unwrap();
    assert!(matches!(c.keypair(), Err(ConfigError::BadKey { .. })));
    let secret: String = Keypair::from_seed(9)
        .secret_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(&path, format!("{secret}\n")).unwrap();
    assert_eq!(
        c.keypair().unwrap().account(),
        Keypair::from_seed(9).account()
    );
}

#[test]
fn detection_without_a_gpu_is_not_an_error() {
    let h = crate::hardware::detect();
    assert!(h.cpu_cores >= 1 && h.ram_gib >= 1);
    // This machine has no NVIDIA driver; detection reports no GPU instead of failing.
    if std::path::Path::new("/proc/driver/nvidia").exists() {
        assert!(h.gpu.is_some());
    } else {
        assert_eq!(h.gpu, None);
    }
}

#[test]
fn the_most_numerous_gpu_model_is_offered() {
    let mut m = BTreeMap::new();
    m.insert(("NVIDIA A100".to_string(), 40_960), 1);
    m.insert(("NVIDIA RTX 4090".to_string(), 24_564), 3);
    let g = crate::hardware::gpu_spec_from(m).unwrap();
    assert_eq!((g.model.as_str(), g.count), ("NVIDIA RTX 4090", 3));
    assert_eq!(crate::hardware::gpu_spec_from(BTreeMap::new()), None);
}

#[test]
fn benchmark_is_deterministic_in_its_result() {
    let (a, b) = (crate::benchmark::run(), crate::benchmark::run());
    assert_eq!(a.digest, b.digest);
    assert!(a.score > 0.0);
}

fn lease(state: LeaseState) -> LeaseInfo {
    LeaseInfo {
        id: 7,
        requester: Keypair::from_seed(0).account(),
        provider: Keypair::from_seed(1).account(),
        job: Hash::of(b"job"),
        terms: LeaseTerms {
            resources: ResourceRequest {
                gpus: 0,
                cpu_cores: 1,
                ram_gib: 1,
            },
            prices: PriceList::default(),
            max_seconds: 60,
            max_units: 1_000,
        },
        verification: Verification::Sampled,
        start_by: 10,
        deadline: 50,
        state,
    }
}

fn outcome() -> Outcome {
    let checkpoints: Vec<Hash> = (0..5u8).map(|i| Hash::of(&[i])).collect();
    Outcome {
        claim: ResultClaim::succeeded(
            Hash::of(b"out"),
            orrery_types::merkle::merkle_root(&checkpoints),
            4,
        ),
        checkpoints,
        units: 5_000,
        wall_ms: 90_500,
        note: String::new(),
    }
}

fn head(height: u64) -> Head {
    Head {
        height,
        time_ms: 1_000_000,
    }
}

#[test]
fn provider_starts_runs_and_commits_with_usage_the_chain_can_confirm() {
    let me = Keypair::from_seed(1).account();
    assert_eq!(
        decide(&me, &lease(LeaseState::AwaitingStart), head(5), None),
        Action::Start
    );
    // Too late to start: wait for the timeout rather than send a refused transaction.
    assert_eq!(
        decide(&me, &lease(LeaseState::AwaitingStart), head(10), None),
        Action::Wait
    );
    let running = lease(LeaseState::Running {
        started_at: 6,
        started_ms: 1_000_000 - 4_500,
    });
    assert_eq!(decide(&me, &running, head(8), None), Action::Run);
    let o = outcome();
    let Action::Send(TxBody::CommitResult {
        lease: 7,
        seal,
        usage: u,
    }) = decide(&me, &running, head(8), Some(&o))
    else {
        panic!("no commit");
    };
    assert_eq!(seal, result_seal(7, &me, &o.claim));
    // 90.5 s of wall time, but the chain saw 4.5 s (rounded up to 5); 5000 units capped at 1000.
    assert_eq!(
        u,
        Usage {
            seconds: 5,
            units: 1_000
        }
    );
    // Past the deadline nothing is sent.
    assert_eq!(decide(&me, &running, head(50), Some(&o)), Action::Wait);
    // Someone else's lease, or a final one.
    let other = Keypair::from_seed(5).account();
    assert_eq!(decide(&other, &running, head(8), Some(&o)), Action::Wait);
    let failed = lease(LeaseState::Failed {
        refunded: Amount::ZERO,
        slashed: Amount::ZERO,
        at: 9,
    });
    assert_eq!(decide(&me, &failed, head(9), None), Action::Forget);
    assert_eq!(
        usage(&o, &running.terms, 0, 1_000_000).seconds,
        60,
        "max_seconds caps it"
    );
}

fn check(phase: CheckPhase, claims: Vec<Claim>) -> LeaseState {
    LeaseState::Checking(Box::new(Check {
        usage: Usage::default(),
        committed_at: 8,
        p_bps: 10_000,
        phase,
        due: 30,
        by_majority: false,
        funded: 1,
        claims: BoundedVec::new(claims).unwrap(),
    }))
}

fn claim(seed: u64, seal: Option<Hash>) -> Claim {
    Claim {
        party: Keypair::from_seed(seed).account(),
        seal,
        revealed: None,
        status: ClaimStatus::Active,
    }
}

#[test]
fn verifier_runs_seals_then_reveals() {
    let v = Keypair::from_seed(2).account();
    let o = outcome();
    let sealing = lease(check(
        CheckPhase::Sealing,
        vec![claim(1, Some(Hash::of(b"p"))), claim(2, None)],
    ));
    assert_eq!(role(&v, &sealing), Some(crate::decide::Role::Verifier(1)));
    assert_eq!(decide(&v, &sealing, head(9), None), Action::Run);
    assert_eq!(
        decide(&v, &sealing, head(9), Some(&o)),
        Action::Send(TxBody::CommitCheck {
            lease: 7,
            seal: result_seal(7, &v, &o.claim)
        })
    );
    // The provider has nothing to do while verifiers seal.
    let p = Keypair::from_seed(1).account();
    assert_eq!(decide(&p, &sealing, head(9), Some(&o)), Action::Wait);
    let revealing = lease(check(
        CheckPhase::Revealing,
        vec![
            claim(1, Some(Hash::of(b"p"))),
            claim(2, Some(Hash::of(b"v"))),
        ],
    ));
    for who in [p, v] {
        assert_eq!(
            decide(&who, &revealing, head(12), Some(&o)),
            Action::Send(TxBody::RevealResult {
                lease: 7,
                claim: o.claim,
                note: Default::default(),
            })
        );
    }
    // A failure claim is revealed with the runtime's message as its note; a claim of success
    // never carries one (the ledger would refuse it).
    let failure = orrery_types::workload::JobFailure {
        at: orrery_types::workload::FailedAt::Step(2),
        reason: orrery_types::workload::FailureReason::OutOfFuel,
    };
    let failed = Outcome {
        claim: ResultClaim::failed(failure, Hash::of(b"root"), 4),
        note: "step 2 ran out of fuel after 5000 units".into(),
        ..o.clone()
    };
    assert_eq!(
        decide(&p, &revealing, head(12), Some(&failed)),
        Action::Send(TxBody::RevealResult {
            lease: 7,
            claim: failed.claim,
            note: orrery_types::tx::failure_note("step 2 ran out of fuel after 5000 units"),
        })
    );
    let chatty = Outcome {
        note: "not a failure".into(),
        ..o.clone()
    };
    assert_eq!(crate::decide::note(&chatty).as_str(), "");
    // An absent verifier does nothing more.
    let mut absent = claim(2, None);
    absent.status = ClaimStatus::Absent;
    let dropped = lease(check(
        CheckPhase::Revealing,
        vec![claim(1, Some(Hash::of(b"p"))), absent],
    ));
    assert_eq!(decide(&v, &dropped, head(12), Some(&o)), Action::Wait);
}

#[test]
fn split_is_the_largest_power_of_two_below_the_size() {
    assert_eq!(split(2), 1);
    assert_eq!(split(3), 2);
    assert_eq!(split(4), 2);
    assert_eq!(split(5), 4);
    assert_eq!(split((1 << 20) + 1), 1 << 20);
}

#[test]
fn a_lease_as_the_node_serves_it_parses_back_into_the_ledger_state() {
    let state = check(
        CheckPhase::Revealing,
        vec![
            claim(1, Some(Hash::of(b"p"))),
            claim(2, Some(Hash::of(b"v"))),
        ],
    );
    let l = lease(state.clone());
    let view = orrery_client::api::LeaseView {
        id: l.id,
        requester: l.requester,
        provider: l.provider,
        job: l.job,
        terms: l.terms,
        verification: l.verification,
        escrow: Amount::orr(1),
        opened_at: 1,
        start_by: l.start_by,
        deadline: l.deadline,
        state: state.name().into(),
        state_detail: serde_json::to_value(&state).unwrap(),
        active: true,
    };
    // Through JSON text, as the client receives it.
    let text = serde_json::to_string(&view).unwrap();
    let parsed = crate::chain::lease_info(serde_json::from_str(&text).unwrap()).unwrap();
    assert_eq!(parsed, l);
    let mut broken = view;
    broken.state_detail = serde_json::json!({"state": "no_such_state"});
    assert!(crate::chain::lease_info(broken).is_err());
}

#[test]
fn leases_reserving_gpus_are_admitted_only_with_a_gpu_backend_and_enough_gpus_now() {
    use crate::gpu::admit;
    // No GPUs reserved: runs anywhere (on the CPU path).
    assert!(admit(0, 0, false).is_ok());
    assert!(admit(0, 2, true).is_ok());
    // Enough GPUs present now and a backend: runs on the GPU.
    assert!(admit(2, 2, true).is_ok());
    // A GPU lease with no GPU backend: refused, never run on the CPU at GPU prices.
    let no_backend = admit(1, 1, false).unwrap_err();
    assert!(no_backend.contains("no GPU backend"), "{no_backend}");
    // A GPU gone since the offer: refused before it starts, naming both counts.
    let gone = admit(2, 1, true).unwrap_err();
    assert!(
        gone.contains("reserves 2") && gone.contains("has 1 now"),
        "{gone}"
    );
}

#[test]
fn a_device_out_of_memory_is_a_host_fault_not_a_failure_claim() {
    let oom = crate::job::JobError::Ml(orrery_ml::MlError::DeviceOutOfMemory {
        what: "matmul output 0".into(),
        bytes: 1 << 34,
        limit: 1 << 30,
    });
    // No failure claim: the run ends in an error the agent logs and retries, and it carries on.
    assert_eq!(oom.failure_reason(), None);
    assert!(oom.to_string().contains("17179869184 bytes"), "{oom}");
}
