#!/usr/bin/env bash
# Builds mica and the SAM examples with `--features cuda` on a machine with no GPU and no CUDA
# installation, for NVIDIA Hopper (compute capability 9.0) by default:
#   - NVIDIA's CUDA 13.0 packages from PyPI give nvcc, the headers and the libraries (one tree,
#     nvidia/cu13, used as CUDA_HOME); unversioned .so links are added for the linker;
#   - the driver library libcuda.so comes with the GPU driver, not with the toolkit: a stub with
#     empty cu* functions (soname libcuda.so.1) satisfies the linker here, and the real driver is
#     loaded on the GPU machine (driver 580 = CUDA 13.0; so the toolkit is pinned to 13.0: PTX
#     from a newer nvcc would not load on it).
#
#   scripts/build_cuda.sh [TOOLKIT_DIR]     (default target/cuda-toolkit; ~30 min on 2 cores)
#   CUDA_COMPUTE_CAP=80 scripts/build_cuda.sh   (A100)
#
# Output: target/release/mica and target/release/examples/sam_amg built with CUDA, and their
# stripped copies in target/cuda-dist (scripts/gpu_pack.sh then packs them). What is
# needed to run them elsewhere: the driver, and libcudart/libcublas/libcublasLt/libcurand/
# libnvrtc of this toolkit (LD_LIBRARY_PATH=TOOLKIT_DIR/root/nvidia/cu13/lib).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tk=${1:-$root/target/cuda-toolkit}
cap=${CUDA_COMPUTE_CAP:-90}
mkdir -p "$tk/wheels" "$tk/stub"
python3 -m pip download -q --no-deps -d "$tk/wheels" \
  nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88 \
  nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 nvidia-cuda-nvrtc==13.0.88 \
  nvidia-curand==10.4.0.35 nvidia-cublas==13.0.2.14
for w in "$tk"/wheels/*.whl; do unzip -q -o "$w" -d "$tk/root"; done
cuda=$tk/root/nvidia/cu13
[ -x "$cuda/bin/nvcc" ] || { echo "no nvcc in $cuda/bin" >&2; exit 1; }
# Unversioned names for the linker (libfoo.so -> libfoo.so.N).
for f in "$cuda"/lib/lib*.so.*; do
  base=${f%%.so.*}.so
  [ -e "$base" ] || ln -s "$(basename "$f")" "$base"
done
export CUDA_HOME=$cuda CUDA_PATH=$cuda CUDA_COMPUTE_CAP=$cap
export PATH=$cuda/bin:$PATH
export LIBRARY_PATH=$tk/stub:$cuda/lib${LIBRARY_PATH:+:$LIBRARY_PATH}
export LD_LIBRARY_PATH=$cuda/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
cd "$root"

# Both targets in one invocation: built separately, the example (with mica-sam's dev-dependencies)
# resolves features differently and recompiles candle and its CUDA kernels a second time.
build() {
  cargo build --release -p mica -p mica-sam --features mica/cuda,mica-sam/cuda \
    --bin mica --example sam_amg
}

# The stub needs the list of driver functions the compiled libraries call (cudarc's, and any
# inlined into candle's): build once (the final link fails without libcuda), collect the
# undefined cu* symbols of every library, write the stub, link again.
if [ ! -e "$tk/stub/libcuda.so" ]; then
  build 2>"$tk/first-build.log" || true
  ls target/release/deps/libcudarc-*.rlib >/dev/null 2>&1 ||
    { echo "cudarc did not build; see $tk/first-build.log" >&2; exit 1; }
  nm -u target/release/deps/*.rlib 2>/dev/null |
    awk '$1 == "U" && $2 ~ /^cu[A-Z]/ { print $2 }' | sort -u >"$tk/stub/symbols.txt"
  [ -s "$tk/stub/symbols.txt" ] || { echo "no cu* symbols found" >&2; exit 1; }
  awk '{ printf "void %s(void) {}\n", $1 }' "$tk/stub/symbols.txt" >"$tk/stub/libcuda.c"
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$tk/stub/libcuda.so" "$tk/stub/libcuda.c"
  echo "stub libcuda.so with $(wc -l <"$tk/stub/symbols.txt") functions"
fi
build
# Stripped copies to carry to a GPU machine (scripts/gpu_pack.sh compresses them).
dist=$root/target/cuda-dist
mkdir -p "$dist"
for b in target/release/mica target/release/examples/sam_amg; do
  strip -o "$dist/$(basename "$b")" "$b"
done
ls -la target/release/mica target/release/examples/sam_amg "$dist"
