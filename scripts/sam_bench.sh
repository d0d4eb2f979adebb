#!/usr/bin/env bash
# Whole-image automatic mask generation, mica vs the PyTorch reference, back to back on the same
# machine: each image through mica (all images), then through the reference, same weights, preset
# and grid; per-image times, mask-count parity, and the speed-up.
#   scripts/sam_bench.sh WEIGHTS PRESET POINTS_PER_SIDE IMAGE...
# Environment: THREADS (CPU threads of both sides, default 2), DEVICE (the reference's torch
# device: cpu, or cuda on a GPU machine, where mica must be the CUDA build; default cpu),
# SAM_AMG (mica's example binary, default target/release/examples/sam_amg: build it with
# `cargo build --release -p mica-sam --example sam_amg`, or scripts/build_cuda.sh), PYTHON (with
# torch, torchvision, timm and mobilesam-mirror; default python3), OUT (results folder).
set -euo pipefail
W=$1; PRESET=$2; PPS=$3; shift 3
T=${THREADS:-2}; DEV=${DEVICE:-cpu}
PY=${PYTHON:-python3}
root=$(cd "$(dirname "$0")/.." && pwd)
AMG=${SAM_AMG:-$root/target/release/examples/sam_amg}
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load $(cut -d' ' -f1-3 /proc/loadavg)"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true
echo "mica: $AMG, $T threads; reference device: $DEV; preset $PRESET, $PPS points per side"
WARMUP=1 RAYON_NUM_THREADS=$T "$AMG" "$W" "$OUT/mica" "$PRESET" "$PPS" "$@"
echo "load between: $(cut -d' ' -f1-3 /proc/loadavg)"
OMP_NUM_THREADS=$T "$PY" "$root/scripts/sam_parity.py" amg --weights "$W" --preset "$PRESET" \
  --points-per-side "$PPS" --device "$DEV" --mica-dir "$OUT/mica" --ref-dir "$OUT/ref" "$@" 2>&1 |
  grep -v -i -e warn -e register_model
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
