use super::*;
use crate::codec::{decode, encode};
use crate::tx::{Tx, TxBody};

fn voucher(key: &ApiKey) -> Voucher {
    Voucher {
        chain_id: Text::new("orrery-test").unwrap(),
        key: key.keypair().public_key().clone(),
        provider: Keypair::from_seed(7).account(),
        channel: 3,
        total: Amount(1_234),
        responses: 9,
    }
}

#[test]
fn api_keys_round_trip_through_their_text_form_and_reject_anything_else() {
    let key = ApiKey::from_secret(&[5u8; 32]).unwrap();
    let text = key.to_text();
    assert!(text.starts_with("sk-"), "{text}");
    assert_eq!(ApiKey::parse(&text).unwrap().id(), key.id());
    for bad in [
        "",
        "sk-",
        "sk-orr-00",
        &text[1..],
        &format!("{text}00"),
        "sk-orr-zz",
    ] {
        assert_eq!(ApiKey::parse(bad).unwrap_err(), ParseApiKeyError, "{bad}");
    }
}

#[test]
fn a_voucher_verifies_under_its_key_only_and_round_trips_encoding_and_json() {
    let key = ApiKey::from_secret(&[5u8; 32]).unwrap();
    let signed = voucher(&key).sign(key.keypair());
    assert!(signed.verify());
    let decoded: SignedVoucher = decode("voucher", &encode(&signed)).unwrap();
    assert_eq!(decoded, signed);
    let json = serde_json::to_string(&signed).unwrap();
    assert_eq!(
        serde_json::from_str::<SignedVoucher>(&json).unwrap(),
        signed
    );

    let mut raised = signed.clone();
    raised.voucher.total = Amount(1_235);
    assert!(!raised.verify(), "a changed total must not verify");
    let other = ApiKey::from_secret(&[6u8; 32]).unwrap();
    assert!(
        !voucher(&key).sign(other.keypair()).verify(),
        "signed by another key than the one it names"
    );
    let own = Voucher {
        key: other.keypair().public_key().clone(),
        ..voucher(&key)
    };
    assert_eq!(own.key_id(), other.id());
    assert!(own.sign(other.keypair()).verify());
}

#[test]
fn prices_are_per_million_tokens_rounded_up_and_overflow_is_none() {
    let offer = ModelOffer {
        name: Text::new("m").unwrap(),
        weights: Hash::of(b"w"),
        kind: ModelKind::Generation,
        context: 128,
        price_in: Amount(1_000_000),
        price_out: Amount(3_000_001),
        sample_bps: 500,
    };
    assert_eq!(offer.cost(0, 0), Some(Amount(0)));
    assert_eq!(offer.cost(2, 0), Some(Amount(2)));
    // 3_000_001 / 1M = 3.000001 → 4
    assert_eq!(offer.cost(0, 1), Some(Amount(4)));
    let huge = ModelOffer {
        price_in: Amount(u128::MAX),
        ..offer
    };
    assert_eq!(huge.cost(2, 0), None);
}

#[test]
fn commitments_sign_and_every_field_changes_the_leaf() {
    let provider = Keypair::from_seed(1);
    let c = ResponseCommitment {
        model: Hash::of(b"m"),
        key: Keypair::from_seed(2).account(),
        request: request_hash(b"{}"),
        seed: 4,
        output: output_digest(3, 5, b"hello"),
        tokens_in: 3,
        tokens_out: 5,
        charged: Amount(10),
    };
    let sig = c.sign(&provider);
    assert!(c.verify(provider.public_key(), &sig));
    assert!(!c.verify(Keypair::from_seed(9).public_key(), &sig));
    let variants = [
        ResponseCommitment {
            seed: 5,
            ..c.clone()
        },
        ResponseCommitment {
            tokens_out: 4,
            ..c.clone()
        },
        ResponseCommitment {
            charged: Amount(11),
            ..c.clone()
        },
        ResponseCommitment {
            output: output_digest(3, 5, b"hellp"),
            ..c.clone()
        },
    ];
    for v in variants {
        assert_ne!(v.leaf(), c.leaf());
    }
    assert_ne!(output_digest(3, 5, b"x"), output_digest(3, 6, b"x"));
}

#[test]
fn every_inference_transaction_round_trips_its_encoding() {
    let key = ApiKey::from_secret(&[5u8; 32]).unwrap();
    let offer = ModelOffer {
        name: Text::new("genesis-gpt2").unwrap(),
        weights: Hash::of(b"w"),
        kind: ModelKind::Generation,
        context: 128,
        price_in: Amount(10),
        price_out: Amount(20),
        sample_bps: 500,
    };
    let commitment = ResponseCommitment {
        model: Hash::of(b"m"),
        key: key.id(),
        request: Hash::of(b"r"),
        seed: 1,
        output: Hash::of(b"o"),
        tokens_in: 1,
        tokens_out: 2,
        charged: Amount(3),
    };
    let tree = crate::merkle::MerkleTree::new(&[commitment.leaf(), Hash::of(b"x")]);
    let bodies = vec![
        TxBody::OfferModels {
            models: crate::tx::ModelOffers::new(vec![offer]).unwrap(),
        },
        TxBody::CreateInferenceKey {
            key: key.id(),
            limit: Amount(5),
            deposit: Amount(4),
        },
        TxBody::FundInferenceKey {
            key: key.id(),
            amount: Amount(1),
        },
        TxBody::RevokeInferenceKey { key: key.id() },
        TxBody::SettleInference {
            voucher: voucher(&key).sign(key.keypair()),
            model: Hash::of(b"m"),
            root: tree.root(),
            batch: Hash::of(b"b"),
        },
        TxBody::SealInferenceCheck {
            batch: 1,
            index: 0,
            seal: Hash::of(b"s"),
        },
        TxBody::RevealInferenceCheck {
            batch: 1,
            index: 0,
            request: Hash::of(b"r"),
            output: Hash::of(b"o"),
        },
        TxBody::OpenInferenceResponse {
            batch: 1,
            index: 0,
            commitment,
            proof: tree.proof(0).unwrap(),
        },
    ];
    for body in bodies {
        let tx = Tx {
            chain_id: Text::new("orrery-test").unwrap(),
            nonce: 0,
            body,
        }
        .sign(&Keypair::from_seed(3));
        let bytes = encode(&tx);
        assert!(
            bytes.len() <= crate::tx::MAX_TX_BYTES,
            "{}",
            tx.tx.body.kind()
        );
        let back = crate::tx::SignedTx::decode(&bytes).unwrap();
        assert_eq!(back, tx);
        assert!(back.verify_signature());
    }
}

#[test]
fn a_request_has_one_canonical_form_and_a_response_verifies_against_its_output() {
    let request = InferenceRequest {
        model: Hash::of(b"m"),
        key: Keypair::from_seed(2).account(),
        channel: 1,
        nonce: 2,
        task: InferenceTask::Chat {
            messages: vec![ChatMessage {
                role: "user".into(),
                content: "hi ☃".into(),
            }],
            sampling: Sampling {
                max_tokens: 8,
                temperature: 0.7,
                top_p: 0.9,
                seed: 42,
                stop: vec!["\n".into()],
            },
        },
    };
    let bytes = request.canonical_bytes();
    let back: InferenceRequest = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(back, request);
    assert_eq!(
        back.canonical_bytes(),
        bytes,
        "re-serializing changes nothing"
    );
    assert_eq!(request.seed(), 42);
    assert!(serde_json::from_str::<InferenceRequest>(r#"{"model":"00"}"#).is_err());

    let provider = Keypair::from_seed(1);
    let output = InferenceOutput::Text {
        text: "hello".into(),
        finish_reason: "stop".into(),
    };
    let commitment = ResponseCommitment {
        model: request.model,
        key: request.key,
        request: request.hash(),
        seed: 42,
        output: output_digest(3, 1, &output.digest_bytes()),
        tokens_in: 3,
        tokens_out: 1,
        charged: Amount(1),
    };
    let response = SignedResponse {
        signature: commitment.sign(&provider),
        output: output.clone(),
        commitment,
        provider: provider.account(),
        provider_key: provider.public_key().clone(),
    };
    assert!(response.verify());
    let json = serde_json::to_string(&StreamEvent::Done(Box::new(response.clone()))).unwrap();
    assert!(matches!(serde_json::from_str(&json).unwrap(), StreamEvent::Done(r) if *r == response));
    let truncated = SignedResponse {
        output: InferenceOutput::Text {
            text: "hell".into(),
            finish_reason: "stop".into(),
        },
        ..response.clone()
    };
    assert!(
        !truncated.verify(),
        "an output that is not the committed one"
    );
    let vectors = InferenceOutput::Embeddings {
        vectors: vec![vec![1.0, -0.5]],
    };
    assert_eq!(vectors.digest_bytes().len(), 8);
}
