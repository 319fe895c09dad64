use super::*;

fn chat(body: Value) -> Result<Parsed, GatewayError> {
    parse(Route::Chat, body.to_string().as_bytes())
}

#[test]
fn defaults_are_openais_and_max_tokens_is_checked_against_the_context() {
    let p = chat(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})).unwrap();
    assert!(!p.stream);
    assert_eq!(p.max_tokens(128).unwrap(), 64, "half the context");
    assert_eq!(p.max_tokens(4096).unwrap(), DEFAULT_CHAT_MAX_TOKENS);
    match p.task(10, 77) {
        InferenceTask::Chat { sampling, .. } => {
            assert_eq!((sampling.temperature, sampling.top_p), (1.0, 1.0));
            assert_eq!(sampling.seed, 77, "a drawn seed when the client gave none");
            assert_eq!(sampling.max_tokens, 10);
        }
        other => panic!("{other:?}"),
    }
    let c = parse(Route::Completions, br#"{"model":"m","prompt":["one"]}"#).unwrap();
    assert_eq!(c.max_tokens(128).unwrap(), DEFAULT_COMPLETION_MAX_TOKENS);
    let long = chat(
        json!({"model": "m", "max_tokens": 128, "messages": [{"role": "user", "content": "x"}]}),
    )
    .unwrap();
    assert_eq!(
        long.max_tokens(128).unwrap_err().code,
        "context_length_exceeded"
    );
}

#[test]
fn new_clients_fields_are_understood_and_unsupported_ones_refused_by_name() {
    let p = chat(json!({
        "model": "m", "max_completion_tokens": 5, "seed": -1, "stop": "\n",
        "messages": [{"role": "developer", "content": [{"type": "text", "text": "be brief"}]}],
        "user": "u", "presence_penalty": 0, "stream_options": {"include_usage": true}
    }))
    .unwrap();
    assert_eq!(p.max_tokens(128).unwrap(), 5);
    match p.task(5, 0) {
        InferenceTask::Chat { messages, sampling } => {
            assert_eq!(messages[0].role, "system");
            assert_eq!(messages[0].content, "be brief");
            assert_eq!(sampling.seed, u64::MAX, "a negative seed keeps its bits");
            assert_eq!(sampling.stop, vec!["\n".to_owned()]);
        }
        other => panic!("{other:?}"),
    }
    for (field, value) in [
        ("n", json!(3)),
        ("logprobs", json!(true)),
        ("tools", json!([{}])),
    ] {
        let mut b = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
        b[field] = value;
        assert_eq!(chat(b).unwrap_err().param, Some(field), "{field}");
    }
    let tool = chat(json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}));
    assert_eq!(tool.unwrap_err().param, Some("messages"));
}

#[test]
fn base64_is_standard_with_padding() {
    assert_eq!(base64_encode(b""), "");
    assert_eq!(base64_encode(b"f"), "Zg==");
    assert_eq!(base64_encode(b"fo"), "Zm8=");
    assert_eq!(base64_encode(b"foo"), "Zm9v");
    assert_eq!(base64_encode(&[0xff, 0xfe, 0xfd, 0x00]), "//79AA==");
}

#[test]
fn the_input_estimate_bounds_tokens_by_bytes_plus_the_template() {
    let p = chat(json!({"model": "m", "messages": [{"role": "user", "content": "abcd"}, {"role": "assistant", "content": ""}]})).unwrap();
    assert_eq!(p.input_estimate(), 4 + 2 * TEMPLATE_TOKENS_PER_MESSAGE);
    let e = parse(
        Route::Embeddings,
        br#"{"model":"m","input":["ab","c"],"encoding_format":"base64"}"#,
    )
    .unwrap();
    assert_eq!(e.input_estimate(), 3);
    assert_eq!(e.inputs(), Some(2));
    assert!(
        parse(
            Route::Embeddings,
            br#"{"model":"m","input":"x","encoding_format":"int8"}"#
        )
        .is_err()
    );
}
