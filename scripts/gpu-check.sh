#!/usr/bin/env bash
# Run orrery-ml's GPU tests and the GPU benchmark in release on this machine's GPU.
#
#   scripts/gpu-check.sh                 # the first usable adapter (prefers a discrete GPU)
#   WGPU_BACKEND=vulkan scripts/gpu-check.sh
#
# Prints the adapter, every operator's comparison with the CPU reference (elements compared,
# how many differ, the largest difference in ulp), the whole-run tests, the agent's GPU lease
# test, and the benchmark's GPU/CPU ratios. Fails when no adapter is found (ORRERY_GPU_TESTS=1)
# or when any operator is not bitwise equal. For a session with a real GPU: its output is the
# per-operator measurement docs/ml.md asks for, on that device class.
set -euo pipefail
cd "$(dirname "$0")/.."

export ORRERY_GPU_TESTS=1
command -v vulkaninfo >/dev/null 2>&1 && vulkaninfo --summary 2>/dev/null | grep -E "deviceName|driverName|driverInfo|apiVersion" || true
if command -v nvidia-smi >/dev/null 2>&1; then nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true; fi

# Per-operator and whole-run equality, release build (as providers run it), with the
# per-operator counts printed.
cargo test --release -p orrery-ml --locked -- gpu --nocapture --test-threads 1 2>&1 | grep -E "adapter|differ|test |result:"
cargo test --release -p orrery-provider --locked --test agent -- gpu 2>&1 | grep -E "test |result:"

# GPU against the CPU path on the same sizes, in one run.
cargo bench -p orrery-ml --locked --bench gpu
