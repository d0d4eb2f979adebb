#!/usr/bin/env bash
# Whole-image automatic mask generation time, mica vs the PyTorch reference, back to back on the
# same machine with the same thread count (default 2), on one image.
#   scripts/sam_bench.sh WEIGHTS IMAGE [PRESET] [POINTS_PER_SIDE] [THREADS]
# Needs: the example built (cargo build -p mica-sam --example sam_amg) and, for the reference,
# a Python with torch, torchvision, timm and mobilesam-mirror ($PYTHON, default python3).
set -euo pipefail
W=$1; IMG=$2; PRESET=${3:-standard}; PPS=${4:-32}; T=${5:-2}
PY=${PYTHON:-python3}
OUT=$(mktemp -d)
root=$(cd "$(dirname "$0")/.." && pwd)
echo "machine: $(nproc) cores; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
RAYON_NUM_THREADS=$T "$root/target/debug/examples/sam_amg" "$W" "$OUT/mica" "$PRESET" "$PPS" "$IMG"
echo "load between: $(cut -d' ' -f1-3 /proc/loadavg)"
OMP_NUM_THREADS=$T "$PY" "$root/scripts/sam_parity.py" amg --weights "$W" --preset "$PRESET" \
  --points-per-side "$PPS" --mica-dir "$OUT/mica" --ref-dir "$OUT/ref" "$IMG" 2>&1 | grep -v -i -e warn -e register_model
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
