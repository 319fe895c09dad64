#!/bin/sh
# Rebuild the C examples to wasm32-wasi with Debian's clang and wasi-libc:
#   apt-get install -y clang lld wasi-libc libclang-rt-14-dev-wasm32
# The built .wasm files are committed, so tests and users need no compiler.
set -eu
cd "$(dirname "$0")"
CC=${CC:-clang}
FLAGS="--target=wasm32-wasi -O2 -Wall -Wextra -Wl,--strip-all"
# A WASI command: main() with stdin/stdout.
$CC $FLAGS -o mandelbrot/mandelbrot.wasm mandelbrot/mandelbrot.c
# A stepper: a reactor (no main) exporting alloc/init/step/output; --max-memory bounds its
# linear memory so the host sees a declared maximum (64 MiB).
$CC $FLAGS -mexec-model=reactor -Wl,--max-memory=67108864 -o heat/heat.wasm heat/heat.c
# Benchmark kernels: no libc, no entry point, only the exported functions.
$CC --target=wasm32 -O2 -Wall -Wextra -nostdlib -Wl,--no-entry -Wl,--strip-all \
    -o kernels/kernels.wasm kernels/kernels.c
ls -l mandelbrot/mandelbrot.wasm heat/heat.wasm kernels/kernels.wasm
