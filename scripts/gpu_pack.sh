#!/usr/bin/env bash
# Packs what the SAM GPU benchmark needs on a GPU machine (which has the NVIDIA driver, CUDA,
# torch and torchvision, but no Rust and no network) into one folder that the device tool can
# carry (an ignored path, at most 64 MiB):
#   scripts/build_cuda.sh                   (once: target/cuda-dist/sam_amg)
#   scripts/gpu_pack.sh WEIGHTS IMAGE...    (default folder target/gpu-carry)
# then on the GPU machine: scripts/gpu_bench.sh target/gpu-carry
# Contents: sam_amg.xz (the CUDA build of the example, stripped, xz-compressed), the weights,
# the images, and pylib.zip (the pure-Python packages `mobile_sam` and `timm` of PYTHON, for the
# reference side; imported from the zip).
# Environment: PYTHON (a Python with mobile_sam and timm installed; default python3), OUT.
set -euo pipefail
W=$1; shift
root=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
out=${OUT:-$root/target/gpu-carry}
bin=$root/target/cuda-dist/sam_amg
[ -f "$bin" ] || { echo "no $bin: run scripts/build_cuda.sh first" >&2; exit 1; }
[ "$#" -gt 0 ] || { echo "usage: gpu_pack.sh WEIGHTS IMAGE..." >&2; exit 2; }
rm -rf "$out"
mkdir -p "$out/images"
cp "$W" "$out/"
cp "$@" "$out/images/"
"$PY" - "$bin" "$out" <<'PYEOF'
import lzma, os, sys, zipfile
import mobile_sam, timm
binary, out = sys.argv[1], sys.argv[2]
with open(binary, "rb") as f, lzma.open(os.path.join(out, "sam_amg.xz"), "wb", preset=9) as g:
    g.write(f.read())
with zipfile.ZipFile(os.path.join(out, "pylib.zip"), "w", zipfile.ZIP_DEFLATED) as z:
    for pkg in (mobile_sam, timm):
        top = os.path.dirname(pkg.__file__)
        base = os.path.dirname(top)
        for d, dirs, files in os.walk(top):
            dirs[:] = [x for x in dirs if x != "__pycache__"]
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(d, name)
                    z.write(path, os.path.relpath(path, base))
PYEOF
size=$(du -sb "$out" | cut -f1)
ls -la "$out" "$out/images"
echo "total $((size / 1024 / 1024)) MiB in $out"
[ "$size" -le $((64 * 1024 * 1024)) ] || { echo "over the 64 MiB a device command carries" >&2; exit 1; }
