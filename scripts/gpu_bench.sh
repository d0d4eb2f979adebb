#!/usr/bin/env bash
# The SAM GPU benchmark, on the GPU machine, from a folder made by scripts/gpu_pack.sh: mica
# (candle CUDA) and the PyTorch reference (CUDA, eager) back to back on the same images, same
# weights, standard preset, 32×32 points; per-image times, mask-count parity and speed-up
# (scripts/sam_bench.sh does the run).
#   scripts/gpu_bench.sh [CARRY_DIR]        (default target/gpu-carry)
# Environment: PPS (points per side, default 32), PRESET (default standard), DEVICE (default
# cuda), SAM_AMG (a sam_amg binary to use instead of the packed one), OUT (results folder;
# under the device tool, $OUT).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
c=$(cd "${1:-$root/target/gpu-carry}" && pwd)
work=$(mktemp -d)
amg=${SAM_AMG:-}
if [ -z "$amg" ]; then
  amg=$work/sam_amg
  python3 -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" \
    "$c/sam_amg.xz" "$amg"
  chmod +x "$amg"
fi
export PYTHONPATH=$c/pylib.zip${PYTHONPATH:+:$PYTHONPATH}
python3 -c "import torch, torchvision, timm, mobile_sam; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'cuda', torch.cuda.is_available(), 'mobile_sam from', mobile_sam.__file__)"
weights=$(find "$c" -maxdepth 1 \( -name '*.pt' -o -name '*.pth' -o -name '*.safetensors' \) | head -1)
[ -n "$weights" ] || { echo "no weights in $c" >&2; exit 1; }
DEVICE=${DEVICE:-cuda} THREADS=${THREADS:-$(nproc)} SAM_AMG=$amg PYTHON=python3 OUT=${OUT:-$work/out} \
  "$root/scripts/sam_bench.sh" "$weights" "${PRESET:-standard}" "${PPS:-32}" "$c"/images/*
