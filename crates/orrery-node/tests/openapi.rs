//! The OpenAPI document (`/openapi.json`) describes every answer the node can give: each
//! operation lists the refusals of the layers around it, each parameter its bounds, and every
//! reference resolves. (`crates/orrery-cli/tests/openapi_conformance.rs` checks the document
//! against a live node with schemathesis.)

use serde_json::Value;

fn doc() -> Value {
    orrery_node::api::openapi_document().expect("document serializes")
}

fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            out.push((path.clone(), method.clone(), op.clone()));
        }
    }
    out
}

fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    doc.pointer(pointer)
}

fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if k == "$ref" {
                    out.push(v.as_str().expect("a $ref is a string").to_string());
                } else {
                    refs(v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn every_reference_resolves() {
    let doc = doc();
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.len() > 50, "{}", all.len());
    for r in all {
        assert!(resolve(&doc, &r).is_some(), "{r} does not resolve");
    }
}

#[test]
fn every_operation_documents_its_refusals() {
    let doc = doc();
    let ops = operations(&doc);
    assert_eq!(
        ops.len(),
        33,
        "{:?}",
        ops.iter().map(|o| (&o.0, &o.1)).collect::<Vec<_>>()
    );
    for (path, method, op) in &ops {
        let responses = op["responses"].as_object().expect("responses");
        for status in ["200", "429", "503"] {
            assert!(
                responses.contains_key(status),
                "{method} {path} lacks {status}"
            );
        }
        let takes_input = op.get("parameters").is_some() || op.get("requestBody").is_some();
        assert_eq!(
            responses.contains_key("400"),
            takes_input,
            "{method} {path}: a 400 exactly where there is input to refuse"
        );
    }
    // The limiter and the slots answer with Retry-After.
    for name in ["RateLimited", "Unavailable"] {
        let r = &doc["components"]["responses"][name];
        assert!(r["headers"]["Retry-After"].is_object(), "{name}: {r}");
        assert_eq!(
            r["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorBody"
        );
    }
}

#[test]
fn the_inference_read_routes_are_documented_with_their_views() {
    let doc = doc();
    for (path, schema) in [
        ("/api/v1/inference/keys/{id}", "InferenceKeyView"),
        ("/api/v1/inference/batches/{id}", "InferenceBatchView"),
        ("/api/v1/inference/receipts/{leaf}", "InferenceReceiptView"),
    ] {
        let ok = &doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"];
        assert_eq!(
            ok["schema"]["$ref"],
            format!("#/components/schemas/{schema}"),
            "{path}"
        );
        assert!(
            doc["paths"][path]["get"]["responses"]["404"].is_object(),
            "{path}"
        );
    }
    let checks = &doc["paths"]["/api/v1/inference/checks"]["get"];
    assert_eq!(checks["parameters"][0]["name"], "party");
    let list = &checks["responses"]["200"]["content"]["application/json"]["schema"];
    assert_eq!(
        list["items"]["$ref"],
        "#/components/schemas/InferenceCheckView"
    );
}

#[test]
fn page_sizes_and_samples_declare_their_bounds() {
    let doc = doc();
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["PageLimit"]["minimum"], 1);
    assert_eq!(schemas["PageLimit"]["maximum"], 500);
    assert_eq!(schemas["SeriesPoints"]["minimum"], 1);
    assert_eq!(schemas["SeriesPoints"]["maximum"], 500);
    // Heights and ids go up to u64::MAX, past what OpenAPI's signed `int64` format allows.
    assert_eq!(schemas["WholeNumber"]["maximum"], u64::MAX);
    assert!(schemas["WholeNumber"].get("format").is_none());
    let mut limits = 0;
    for (path, method, op) in operations(&doc) {
        for p in op["parameters"].as_array().into_iter().flatten() {
            if p["name"] == "limit" {
                limits += 1;
                assert_eq!(
                    p["schema"]["$ref"], "#/components/schemas/PageLimit",
                    "{method} {path}"
                );
            }
        }
    }
    assert_eq!(limits, 7, "every paged list takes ?limit=");
}

#[test]
fn a_transaction_is_submitted_as_bytes_or_as_hex_text() {
    let doc = doc();
    let body = &doc["paths"]["/api/v1/txs"]["post"]["requestBody"]["content"];
    let binary = resolve(
        &doc,
        body["application/octet-stream"]["schema"]["$ref"]
            .as_str()
            .unwrap(),
    )
    .expect("binary schema");
    assert_eq!(binary["type"], "string");
    assert_eq!(binary["format"], "binary");
    let hex =
        resolve(&doc, body["text/plain"]["schema"]["$ref"].as_str().unwrap()).expect("hex schema");
    assert_eq!(hex["type"], "string");
    assert!(
        hex["pattern"].as_str().unwrap().contains("[0-9a-fA-F]{2}"),
        "{hex}"
    );
}

#[test]
fn a_lease_declares_verification_as_the_ledger_writes_it() {
    let doc = doc();
    let lease = &doc["components"]["schemas"]["LeaseView"];
    assert_eq!(
        lease["properties"]["verification"]["$ref"], "#/components/schemas/Verification",
        "{lease}"
    );
    let v = &doc["components"]["schemas"]["Verification"];
    assert!(v["oneOf"].is_array(), "{v}");
}

#[test]
fn each_stream_event_carries_a_block_event_as_json() {
    let doc = doc();
    let stream = &doc["paths"]["/api/v1/events"]["get"]["responses"]["200"]["content"]["text/event-stream"]
        ["schema"];
    let event = resolve(&doc, stream["$ref"].as_str().expect("a $ref")).expect("resolves");
    assert_eq!(
        event["properties"]["event"]["enum"],
        serde_json::json!(["block"])
    );
    let data = &event["properties"]["data"];
    assert_eq!(data["contentMediaType"], "application/json", "{event}");
    assert_eq!(
        data["contentSchema"]["$ref"], "#/components/schemas/BlockEvent",
        "{event}"
    );
}
