#!/usr/bin/env bash
# Benchmark: mica's classical presets vs the textbook scikit-image pipeline, on the same BBBC005
# images in the same run. Whole-process time per image (process start, reading, segmenting,
# counting), one thread/process and all cores; wall-clock and CPU (user + sys) time, so that a busy machine can be read fairly. Then the
# accuracy (count MAE, foreground Dice) of every run's label images, per stain.
#
#   scripts/classical_bench.sh [DATA_DIR] [PYTHON]
#
# DATA_DIR defaults to ../shared/data; PYTHON (with scikit-image, scipy, tifffile) to python3.
# Build first: cargo build --release -p mica --no-default-features
# Environment: ROUNDS (default 2), MICA (binary), BENCH_OUT (scratch folder).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data}
PY=${2:-python3}
MICA=${MICA:-target/release/mica}
OUT=${BENCH_OUT:-scratch/classical-bench}
ROUNDS=${ROUNDS:-2}
CORES=$(nproc)
[ -x "$MICA" ] || { echo "build first: cargo build --release -p mica --no-default-features" >&2; exit 1; }
rm -rf "$OUT" && mkdir -p "$OUT"
W1=("$DATA"/bbbc005/images/*_w1.TIF)
W2=("$DATA"/bbbc005/images/*_w2.TIF)
ALL=("${W1[@]}" "${W2[@]}")
N=${#ALL[@]}

# timed NAME COMMAND... : runs the command under /usr/bin/time, appends "wall cpu" to $OUT/NAME.t
timed() {
  local name=$1; shift
  /usr/bin/time -f "%e %U %S" -o "$OUT/time.tmp" "$@" > "$OUT/last.stdout" 2> "$OUT/last.stderr" ||
    { echo "failed: $*" >&2; cat "$OUT/last.stderr" >&2; exit 1; }
  awk '{ print $1, $2 + $3 }' "$OUT/time.tmp" >> "$OUT/$name.t"
}
# report NAME LABEL : sums the parts of the last round, prints per-image times.
report() {
  awk -v label="$2" -v n="$N" '{ w += $1; c += $2 } END {
    printf "%-44s wall %7.2f s = %6.2f ms/image   cpu %7.2f s = %6.2f ms/image\n", label, w, 1000 * w / n, c, 1000 * c / n }' "$OUT/$1.t"
  rm -f "$OUT/$1.t"
}

echo "images: $N (BBBC005 w1 + w2), cores: $CORES, $(date -u +%FT%TZ), load: $(cut -d' ' -f1-3 /proc/loadavg)"
# Counting (read, segment, count; no files written) is the like-for-like comparison; `segment`
# also writes label TIFFs, overlays and tables and is timed once for information.
for round in $(seq 1 "$ROUNDS"); do
  echo "== round $round: counting, whole-process time per image =="
  timed mica1 "$MICA" -q count --preset fluorescence-nuclei --jobs 1 "${W1[@]}"
  timed mica1 "$MICA" -q count --preset fluorescence-cells --jobs 1 "${W2[@]}"
  report mica1 "mica presets, 1 thread"
  timed mtb1 "$MICA" -q count --preset textbook --jobs 1 "${ALL[@]}"
  report mtb1 "mica textbook, 1 thread"
  timed sk1 "$PY" scripts/skimage_baseline.py --jobs 1 "${ALL[@]}"
  report sk1 "skimage textbook, 1 process"
  timed micaN "$MICA" -q count --preset fluorescence-nuclei --jobs 0 "${W1[@]}"
  timed micaN "$MICA" -q count --preset fluorescence-cells --jobs 0 "${W2[@]}"
  report micaN "mica presets, $CORES threads"
  timed skN "$PY" scripts/skimage_baseline.py --jobs "$CORES" "${ALL[@]}"
  report skN "skimage textbook, $CORES processes"
done
echo "== segmentation with outputs (label images for the accuracy table), 1 thread =="
timed seg "$MICA" -q segment --preset fluorescence-nuclei --jobs 1 --out "$OUT/mica-1" "${W1[@]}"
timed seg "$MICA" -q segment --preset fluorescence-cells --jobs 1 --out "$OUT/mica-1" "${W2[@]}"
report seg "mica presets + label TIFF, overlay PNG, CSVs"
timed segtb "$MICA" -q segment --preset textbook --jobs 1 --out "$OUT/mica-textbook-1" "${ALL[@]}"
report segtb "mica textbook + label TIFF, overlay PNG, CSVs"
timed sks "$PY" scripts/skimage_baseline.py --jobs 1 --out "$OUT/skimage-1" "${ALL[@]}"
report sks "skimage textbook + label TIFF"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== accuracy (1-thread runs) =="
"$PY" scripts/classical_bench.py --masks "$DATA/bbbc005/masks" \
  "mica presets=$OUT/mica-1" "mica textbook=$OUT/mica-textbook-1" "skimage textbook=$OUT/skimage-1"
