"""The official `openai` Python client against an Orrery node's `/v1`, unchanged.

Run by crates/orrery-cli/tests/openai_client.rs with:
  ORRERY_BASE_URL  the node's gateway, e.g. http://127.0.0.1:7420/v1
  ORRERY_API_KEY   an `sk-orr-...` key made by `orrery inference key create`
  ORRERY_CHAT_MODEL, ORRERY_EMBED_MODEL  model ids the devnet serves

Prints one JSON line per check and exits non-zero on the first failure.
"""

import json
import math
import os
import sys

import openai

base_url = os.environ["ORRERY_BASE_URL"]
api_key = os.environ["ORRERY_API_KEY"]
chat_model = os.environ.get("ORRERY_CHAT_MODEL", "genesis-gpt2")
# Empty when the machine lacks all-MiniLM-L6-v2 (the devnet then serves no embeddings).
embed_model = os.environ.get("ORRERY_EMBED_MODEL", "all-minilm-l6-v2")

client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=120)


def report(check, **fields):
    print(json.dumps({"check": check, **fields}), flush=True)


def orrery_extra(obj):
    """The `orrery` object every response carries (provider, tokens, price, receipt)."""
    extra = (obj.model_extra or {}).get("orrery")
    assert extra, f"response has no orrery object: {obj}"
    for field in ("provider", "tokens_in", "tokens_out", "price", "receipt"):
        assert field in extra, f"orrery object lacks {field}: {extra}"
    return extra


# The catalog.
models = [m.id for m in client.models.list()]
assert chat_model in models, f"{chat_model} not in {models}"
assert not embed_model or embed_model in models, f"{embed_model} not in {models}"
report("models", ids=models)

# A chat completion, greedy, so it re-executes exactly.
chat = client.chat.completions.create(
    model=chat_model,
    messages=[{"role": "user", "content": "In the beginning"}],
    max_tokens=24,
    temperature=0,
)
text = chat.choices[0].message.content
assert isinstance(text, str) and text, f"empty chat answer: {chat}"
assert chat.choices[0].finish_reason in ("stop", "length"), chat.choices[0].finish_reason
assert chat.usage.completion_tokens >= 1 and chat.usage.prompt_tokens >= 1, chat.usage
extra = orrery_extra(chat)
report("chat", text=text, usage=chat.usage.model_dump(), orrery=extra)

# The same request again answers the same (greedy decoding is deterministic).
again = client.chat.completions.create(
    model=chat_model,
    messages=[{"role": "user", "content": "In the beginning"}],
    max_tokens=24,
    temperature=0,
)
assert again.choices[0].message.content == text, "greedy chat is not reproducible"

# A streamed completion, sampled with a seed.
stream = client.completions.create(
    model=chat_model,
    prompt="And God said",
    max_tokens=20,
    temperature=0.8,
    seed=7,
    stream=True,
)
pieces = []
finish = None
for chunk in stream:
    if chunk.choices:
        pieces.append(chunk.choices[0].text or "")
        finish = chunk.choices[0].finish_reason or finish
streamed = "".join(pieces)
assert streamed, "the stream carried no text"
assert finish in ("stop", "length"), f"stream ended without a finish reason: {finish}"
report("stream", text=streamed, chunks=len(pieces))

# The same seed gives the same text without streaming.
plain = client.completions.create(
    model=chat_model, prompt="And God said", max_tokens=20, temperature=0.8, seed=7
)
assert plain.choices[0].text == streamed, (plain.choices[0].text, streamed)

# Embeddings (the client asks for base64 by default and decodes it).
if not embed_model:
    report("embeddings", skipped="no embedding model on this machine")
    sentences = None
else:
    sentences = ["The quick brown fox jumps over the lazy dog.", "A fast auburn fox leaps over a dog."]
    emb = client.embeddings.create(model=embed_model, input=sentences)
    vectors = [d.embedding for d in emb.data]
    assert len(vectors) == 2 and all(len(v) == 384 for v in vectors), [len(v) for v in vectors]
    norms = [math.sqrt(sum(x * x for x in v)) for v in vectors]
    assert all(abs(n - 1.0) < 1e-3 for n in norms), norms
    cosine = sum(a * b for a, b in zip(*vectors))
    assert cosine > 0.5, f"paraphrases should be close: cosine {cosine}"
    report("embeddings", dims=len(vectors[0]), cosine=cosine, usage=emb.usage.model_dump())

# Errors come back in OpenAI's shape, as the client's typed exceptions.
try:
    client.chat.completions.create(
        model="no-such-model", messages=[{"role": "user", "content": "hi"}]
    )
    sys.exit("an unknown model was served")
except openai.NotFoundError as e:
    report("unknown_model", status=e.status_code, code=e.code)

try:
    openai.OpenAI(base_url=base_url, api_key="sk-orr-" + "0" * 64, max_retries=0).models.list()
    bad = openai.OpenAI(base_url=base_url, api_key="sk-orr-" + "1" * 64, max_retries=0)
    bad.chat.completions.create(model=chat_model, messages=[{"role": "user", "content": "hi"}])
    sys.exit("an unknown key was served")
except openai.AuthenticationError as e:
    report("unknown_key", status=e.status_code, code=e.code)

try:
    client.completions.create(model=chat_model, prompt="hi", max_tokens=0)
    sys.exit("max_tokens 0 was accepted")
except openai.BadRequestError as e:
    report("max_tokens_zero", status=e.status_code, code=e.code)

report("done")
