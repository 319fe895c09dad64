use super::*;

#[test]
fn median_of_odd_and_even_lists() {
    assert_eq!(median(vec![]), None);
    assert_eq!(
        median(vec![Amount(3), Amount(1), Amount(2)]),
        Some(Amount(2))
    );
    assert_eq!(
        median(vec![Amount(4), Amount(1), Amount(2), Amount(3)]),
        Some(Amount(2))
    );
}

#[test]
fn long_byte_fields_are_shortened() {
    let v = serde_json::json!({"type": "adjudicate", "bundle": vec![1u8; 1000], "lease": 3});
    let s = shorten(&v);
    assert_eq!(s["bundle"], "<1000 bytes>");
    assert_eq!(s["lease"], 3);
}

fn account(seed: u64) -> AccountId {
    orrery_types::crypto::Keypair::from_seed(seed).account()
}

/// An event as the index and receipts hold it: the ledger's typed event as JSON.
fn json(event: Event) -> Value {
    serde_json::to_value(event).expect("events serialize")
}

fn record(height: u64, sender: AccountId, kind: &str, body: Value, events: Vec<Value>) -> TxRecord {
    use orrery_client::api::{ReceiptView, TxView};
    let hash = Hash::of(format!("{height}{kind}{sender}{body}").as_bytes());
    TxRecord {
        height,
        index: 0,
        block_hash: Hash::ZERO,
        tx: TxView {
            hash,
            sender,
            nonce: 0,
            chain_id: "test".into(),
            body,
        },
        receipt: Some(ReceiptView {
            tx: hash,
            sender,
            kind: kind.into(),
            ok: true,
            events,
            error: None,
            message: None,
        }),
    }
}

#[test]
fn evidence_pairs_bisection_moves_by_round_and_finds_the_verdict_and_transfers() {
    let (requester, provider, verifier) = (account(1), account(2), account(3));
    let lease = LeaseView {
        id: 7,
        requester,
        provider,
        job: Hash::of(b"job"),
        terms: orrery_types::tx::LeaseTerms {
            resources: Default::default(),
            prices: Default::default(),
            max_seconds: 1,
            max_units: 1,
        },
        verification: orrery_types::tx::Verification::Sampled,
        escrow: Amount::orr(10),
        opened_at: 1,
        start_by: 10,
        deadline: 100,
        state: "failed".into(),
        state_detail: Value::Null,
        active: false,
    };
    let h = |s: &str| Hash::of(s.as_bytes()).to_string();
    let mv = |height, who: AccountId, round: u32, l: &str, narrowed: Option<(u64, u64)>| {
        let mut events = vec![json(Event::DisputeMoved {
            lease: 7,
            party: who,
            round,
        })];
        if let Some((start, size)) = narrowed {
            events.push(json(Event::DisputeNarrowed {
                lease: 7,
                round: round + 1,
                start,
                size,
            }));
        }
        record(
            height,
            who,
            "dispute_move",
            serde_json::json!({"type": "dispute_move", "lease": 7, "left": h(l), "right": h(&format!("{l}r"))}),
            events,
        )
    };
    let txs = vec![
        record(
            1,
            requester,
            "open_lease",
            serde_json::json!({"type": "open_lease"}),
            vec![json(Event::LeaseOpened {
                lease: 7,
                requester,
                provider,
                escrow: Amount::orr(10),
            })],
        ),
        mv(5, provider, 0, "p0", None),
        mv(5, verifier, 0, "v0", Some((0, 8))),
        mv(6, provider, 1, "p1", None),
        mv(7, verifier, 1, "v1", Some((4, 4))),
        record(
            9,
            verifier,
            "adjudicate",
            serde_json::json!({"type": "adjudicate", "lease": 7, "bundle": vec![0u8; 500]}),
            vec![
                json(Event::RefereeRuled {
                    lease: 7,
                    kind: orrery_ledger::entries::DisputeKind::Checkpoints,
                    step: Some(5),
                    provider_right: false,
                    challenger_right: true,
                    fuel: 1_000,
                    failure: None,
                }),
                json(Event::Slashed {
                    lease: 7,
                    party: provider,
                    amount: Amount::orr(50),
                    rewarded: Amount::orr(25),
                    burned: Amount::orr(25),
                }),
                json(Event::LeaseFailed {
                    lease: 7,
                    refunded: Amount::orr(10),
                }),
                json(Event::LeaseOpened {
                    lease: 8,
                    requester,
                    provider,
                    escrow: Amount::orr(1),
                }),
            ],
        ),
    ];
    let drawn = vec![(
        4,
        json(Event::CheckDrawn {
            lease: 7,
            p_bps: 1_000,
            verifiers: vec![verifier],
            unfilled: 0,
        }),
    )];
    let times = BTreeMap::from([(1, 1_000), (4, 4_000), (9, 9_000)]);
    let ev = build_evidence(lease, &txs, &drawn, &times, false);
    assert_eq!(ev.rounds.len(), 2);
    assert_eq!(ev.rounds[0].narrowed_to, Some((0, 8)));
    assert_eq!(ev.rounds[1].narrowed_to, Some((4, 4)));
    let roles: Vec<&str> = ev.rounds[1].moves.iter().map(|m| m.role.as_str()).collect();
    assert_eq!(roles, ["provider", "challenger"]);
    assert_eq!(ev.rounds[0].moves[1].left.to_string(), h("v0"));
    assert_eq!(ev.verifiers, vec![verifier]);
    assert_eq!(
        ev.verdict.as_ref().expect("verdict")["challenger_right"],
        true
    );
    // The draw (end of block 4) sits between the opening and the first move.
    let kinds: Vec<&str> = ev.timeline.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds[..3], ["open_lease", "check_drawn", "dispute_move"]);
    assert_eq!(ev.timeline[1].time_ms, Some(4_000));
    // Events about another lease in the same receipt are left out; bodies are shortened.
    let last = ev.timeline.last().expect("adjudicate");
    assert_eq!(last.events.len(), 3);
    assert_eq!(last.body.as_ref().expect("body")["bundle"], "<500 bytes>");
    let transfers: Vec<(&str, &str)> = ev
        .transfers
        .iter()
        .map(|t| (t.kind.as_str(), t.to.as_str()))
        .collect();
    let requester = requester.to_string();
    assert_eq!(
        transfers,
        [
            ("escrow_locked", "escrow"),
            ("slash_reward", "winners"),
            ("slash_burned", "burn"),
            ("refunded", requester.as_str()),
        ]
    );
}

#[test]
fn search_answers_route_to_the_explorer_pages() {
    let h = Hash::of(b"x");
    let a = AccountId([7; 20]);
    assert_eq!(found("block", 12).route, "#/blocks/12");
    assert_eq!(found("lease", 3).route, "#/leases/3");
    assert_eq!(found("tx", h).route, format!("#/txs/{h}"));
    assert_eq!(found("provider", a).route, format!("#/providers/{a}"));
    let m = found("account", a);
    assert_eq!(
        (m.kind.as_str(), m.id, m.route),
        ("account", a.to_string(), format!("#/accounts/{a}"))
    );
}
