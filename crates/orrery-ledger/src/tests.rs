use crate::apply::share;

#[test]
fn share_is_exact_when_it_fits_and_close_when_it_does_not() {
    assert_eq!(share(1_000, 1, 4), 250);
    assert_eq!(share(1_000, 3, 4), 750);
    assert_eq!(share(7, 0, 0), 0);
    // a * b overflows u128: scaled down, still within a hair of the true share.
    let a = u128::MAX / 2;
    let got = share(a, 4, 8);
    let exact = a / 2;
    assert!(
        got <= exact && exact - got <= exact >> 100,
        "{got} vs {exact}"
    );
}

#[test]
fn the_incremental_state_root_equals_the_root_from_scratch() {
    use crate::{Genesis, GenesisAccount, Params, Signatures, State, apply_block};
    use orrery_types::amount::Amount;
    use orrery_types::block::{Block, BlockTxs};
    use orrery_types::crypto::Keypair;
    use orrery_types::hash::Hash;
    use orrery_types::tx::{ChainId, Tx, TxBody};

    let keys: Vec<Keypair> = (0..64).map(Keypair::from_seed).collect();
    let genesis = Genesis {
        chain_id: ChainId::new("root-test").unwrap(),
        genesis_time_ms: 0,
        params: Params::default(),
        accounts: keys
            .iter()
            .map(|k| GenesisAccount {
                account: k.account(),
                balance: Amount::orr(1_000),
            })
            .collect(),
        validators: vec![],
    };
    let mut state = State::genesis(&genesis).unwrap();
    assert_eq!(state.root(), state.root_from_scratch());
    let mut nonces = vec![0u64; keys.len()];
    for height in 1..=40u64 {
        // A different number of transfers each block, to fresh and existing accounts.
        let txs = (0..height % 7)
            .map(|i| {
                let from = ((height * 13 + i * 7) % 64) as usize;
                let to = Keypair::from_seed(1_000 + height * 10 + i).account();
                let tx = Tx {
                    chain_id: ChainId::new("root-test").unwrap(),
                    nonce: nonces[from],
                    body: TxBody::Transfer {
                        to,
                        amount: Amount::orr(1),
                    },
                }
                .sign(&keys[from]);
                nonces[from] += 1;
                tx
            })
            .collect();
        let block = Block {
            height,
            time_ms: height * 1_000,
            seed: Hash::ZERO,
            parent: state.globals().last_block,
            txs: BlockTxs::new(txs).unwrap(),
        };
        apply_block(&mut state, &block, Signatures::Verify).unwrap();
        assert_eq!(state.root(), state.root_from_scratch(), "height {height}");
    }
}

#[test]
fn lease_states_roundtrip_through_json_for_clients() {
    use crate::entries::{
        Check, CheckPhase, Children, Claim, ClaimStatus, Dispute, DisputeKind, LeaseState,
    };
    use orrery_types::codec::BoundedVec;
    use orrery_types::crypto::Keypair;
    use orrery_types::hash::Hash;
    use orrery_types::resources::Usage;
    use orrery_types::tx::ResultClaim;

    let claim = |i: u64| Claim {
        party: Keypair::from_seed(i).account(),
        seal: Some(Hash::of(&i.to_be_bytes())),
        revealed: Some(ResultClaim::succeeded(
            Hash::of(b"o"),
            Hash::of(&[i as u8]),
            9,
        )),
        status: ClaimStatus::Active,
    };
    let check = Check {
        usage: Usage {
            seconds: 3,
            units: 4,
        },
        committed_at: 10,
        p_bps: 5_000,
        phase: CheckPhase::Revealing,
        due: 20,
        by_majority: false,
        funded: 1,
        claims: BoundedVec::new(vec![claim(1), claim(2)]).unwrap(),
    };
    let states = [
        LeaseState::Checking(Box::new(check.clone())),
        LeaseState::Disputed(Box::new(Dispute {
            check,
            challenger: 1,
            kind: DisputeKind::Checkpoints,
            leaf_count: 10,
            start: 8,
            size: 2,
            provider_node: Hash::of(b"p"),
            challenger_node: Hash::of(b"c"),
            provider_move: Some(Children {
                left: Hash::of(b"l"),
                right: Hash::of(b"r"),
            }),
            challenger_move: None,
            round: 3,
            due: 40,
            awaiting_referee: false,
        })),
    ];
    for s in states {
        let json = serde_json::to_string(&s).unwrap();
        let back: LeaseState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s, "{json}");
    }
}
