#!/usr/bin/env bash
# Large images (issue #18): peak memory and time of `mica count` (classical) on one 8000 x 8000
# 8-bit PNG, whole image at once (--tile off) and in tiles (the default above 4096² px), and a
# batch of one 16000 x 16000 PNG plus the five BBBC005 w1 examples under `ulimit -v 4000000`
# (4 GB of address space): without tiles the big image is refused by name and the others are
# counted (exit 3); with tiles all are counted (exit 0). Peak memory is /usr/bin/time's maximum
# resident set size. With SAM=1, also SAM whole and tiled on a 4096 x 4096 mosaic.
#
#   scripts/large_image_bench.sh
#   SAM=1 SAM_SRC=IMAGE scripts/large_image_bench.sh
#
# Environment: MICA (binary, default target/release/mica), MOSAIC (the image maker, default
# target/release/examples/mosaic: cargo build --release -p mica-core --example mosaic),
# BENCH_OUT (scratch folder, default scratch/large-images), TILES (tile sides to try, default
# "768 1024 2048").
set -euo pipefail
cd "$(dirname "$0")/.."
MICA=${MICA:-target/release/mica}
MOSAIC=${MOSAIC:-target/release/examples/mosaic}
OUT=${BENCH_OUT:-scratch/large-images}
TILES=${TILES:-768 1024 2048}
[ -x "$MICA" ] || { echo "build first: cargo build --release -p mica" >&2; exit 1; }
[ -x "$MOSAIC" ] || { echo "build first: cargo build --release -p mica-core --example mosaic" >&2; exit 1; }
mkdir -p "$OUT"
SRC=examples/bbbc005/images/SIMCEPImages_A11_C44_F1_s17_w1.TIF
[ -f "$OUT/8000.png" ] || "$MOSAIC" "$SRC" "$OUT/8000.png" 8000 >/dev/null
[ -f "$OUT/16000.png" ] || "$MOSAIC" "$SRC" "$OUT/16000.png" 16000 >/dev/null
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/ {print $2}') GiB; mica: $MICA"

# measure LABEL PIXELS ARGS... : one `mica count` under /usr/bin/time; prints a table row.
measure() {
  local label=$1 px=$2; shift 2
  /usr/bin/time -f "%e %M" -o "$OUT/time.tmp" "$MICA" -q count "$@" > "$OUT/out.tmp" 2> "$OUT/err.tmp" || true
  read -r wall kb < <(tail -1 "$OUT/time.tmp")
  local count
  count=$(awk -F, 'NR == 2 { print $2 }' "$OUT/out.tmp")
  awk -v l="$label" -v w="$wall" -v kb="$kb" -v px="$px" -v c="$count" 'BEGIN {
    printf "| %-28s | %8s | %8.1f | %6.0f | %5.2f |\n", l, c, w, kb / 1024, kb * 1024 / px }'
}
echo
echo "8000 x 8000 8-bit PNG (64 Mpx), mica count, classical, the default preset (auto):"
echo "| run                          | objects  | wall (s) | peak MiB | B/px  |"
echo "|---|---|---|---|---|"
measure "whole image (--tile off)" 64000000 --tile off "$OUT/8000.png"
for t in $TILES; do
  measure "tiles of $t px" 64000000 --tile "$t" "$OUT/8000.png"
done
measure "default (--tile auto)" 64000000 "$OUT/8000.png"

echo
echo "batch: 16000 x 16000 PNG + 5 BBBC005 w1 images under ulimit -v 4000000:"
SMALL=(examples/bbbc005/images/*_w1.TIF)
for mode in off auto; do
  set +e
  ( ulimit -v 4000000; exec /usr/bin/time -f "%e %M" -o "$OUT/time.tmp" "$MICA" -q count --tile "$mode" "$OUT/16000.png" "${SMALL[@]}" ) > "$OUT/out.tmp" 2> "$OUT/err.tmp"
  rc=$?
  set -e
  read -r wall kb < <(tail -1 "$OUT/time.tmp")
  counted=$(($(wc -l < "$OUT/out.tmp") - 1))
  printf -- "--tile %-4s exit %d, %d of 6 images counted, %.1f s, peak %.0f MiB\n" "$mode" "$rc" "$counted" "$wall" "$((kb / 1024))"
  grep -h "^error" "$OUT/err.tmp" | sed 's/^/    /' || true
done

# SAM (SAM=1; needs MobileSAM weights: MICA_SAM_WEIGHTS or the cache): a 4096 x 4096 mosaic of one
# BBBC005 w1 image whole (shrunk 4x to SAM's input) and in the default 1024-px windows, with
# detector prompts and with the point grid (the grid in windows takes about 5 minutes here).
if [ "${SAM:-0}" = 1 ]; then
  SAM_SRC=${SAM_SRC:-examples/bbbc005/images/SIMCEPImages_A11_C44_F1_s17_w1.TIF}
  [ -f "$OUT/sam4096.png" ] || "$MOSAIC" "$SAM_SRC" "$OUT/sam4096.png" 4096 >/dev/null
  echo
  echo "4096 x 4096 mosaic of $(basename "$SAM_SRC"), mica count:"
  echo "| run                          | objects  | wall (s) | peak MiB | B/px  |"
  echo "|---|---|---|---|---|"
  px=$((4096 * 4096))
  measure "classical" $px "$OUT/sam4096.png"
  measure "SAM prompts, --tile off" $px --method sam --prompts classical --tile off "$OUT/sam4096.png"
  measure "SAM prompts, tiles (auto)" $px --method sam --prompts classical "$OUT/sam4096.png"
  measure "SAM grid, --tile off" $px --method sam --tile off "$OUT/sam4096.png"
  measure "SAM grid, tiles (auto)" $px --method sam "$OUT/sam4096.png"
fi
