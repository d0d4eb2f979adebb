#!/usr/bin/env bash
# Benchmark: mica's classical presets vs the textbook scikit-image pipeline, on the same BBBC005
# images in the same run. Whole-process wall time per image (process start, reading, segmenting,
# writing label TIFFs; mica also writes overlays and objects.csv), single thread and all cores,
# then accuracy (count MAE, foreground Dice) of every run's label images.
#
#   scripts/classical_bench.sh [DATA_DIR] [PYTHON]
#
# DATA_DIR defaults to ../shared/data; PYTHON (with scikit-image, scipy, tifffile) to python3.
# Build first: cargo build --release -p mica --no-default-features
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data}
PY=${2:-python3}
MICA=${MICA:-target/release/mica}
OUT=${BENCH_OUT:-scratch/classical-bench}
CORES=$(nproc)
[ -x "$MICA" ] || { echo "build first: cargo build --release -p mica --no-default-features" >&2; exit 1; }
rm -rf "$OUT" && mkdir -p "$OUT"
W1=("$DATA"/bbbc005/images/*_w1.TIF)
W2=("$DATA"/bbbc005/images/*_w2.TIF)
ALL=("${W1[@]}" "${W2[@]}")
N=${#ALL[@]}

now() { date +%s.%N; }
# run NAME COMMAND... : times the command, prints seconds per image.
run() {
  local name=$1; shift
  local t0 t1
  t0=$(now)
  "$@" > "$OUT/$name.stdout" 2> "$OUT/$name.stderr" || { echo "$name failed, see $OUT/$name.stderr" >&2; exit 1; }
  t1=$(now)
  awk -v name="$name" -v t0="$t0" -v t1="$t1" -v n="$N" \
    'BEGIN { printf "%-40s %8.2f s total  %7.2f ms/image\n", name, t1 - t0, 1000 * (t1 - t0) / n }'
}

echo "images: $N (BBBC005 w1 + w2), cores: $CORES, $(date -u +%FT%TZ)"
echo "== time (whole process, per image) =="
for round in 1 2; do
  # mica: w1 with fluorescence-nuclei, w2 with fluorescence-cells, in one process each.
  mica_run() { # jobs outdir
    "$MICA" -q segment --method classical --preset fluorescence-nuclei --jobs "$1" --out "$2" "${W1[@]}" &&
    "$MICA" -q segment --method classical --preset fluorescence-cells --jobs "$1" --out "$2" "${W2[@]}"
  }
  run "mica presets, 1 thread (r$round)" mica_run 1 "$OUT/mica-1"
  run "skimage textbook, 1 process (r$round)" "$PY" scripts/skimage_baseline.py --jobs 1 --out "$OUT/skimage-1" "${ALL[@]}"
  run "mica textbook, 1 thread (r$round)" "$MICA" -q segment --method classical --preset textbook --jobs 1 --out "$OUT/mica-textbook-1" "${ALL[@]}"
  run "mica presets, $CORES threads (r$round)" mica_run 0 "$OUT/mica-all"
  run "skimage textbook, $CORES procs (r$round)" "$PY" scripts/skimage_baseline.py --jobs "$CORES" --out "$OUT/skimage-all" "${ALL[@]}"
done
echo "== accuracy =="
"$PY" scripts/classical_bench.py --masks "$DATA/bbbc005/masks" \
  "mica presets=$OUT/mica-1" "mica textbook=$OUT/mica-textbook-1" "skimage textbook=$OUT/skimage-1"
