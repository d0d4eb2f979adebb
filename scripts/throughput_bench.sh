#!/usr/bin/env bash
# Throughput you can plan with (issue #18): images per second and peak memory of `mica run` on
# BBBC005 images, classical (fluorescence-nuclei) and MobileSAM (automatic mask generation, the
# standard preset), at 1 and 2 threads in one process and as 2 and 4 shards (`--shard i/N`
# processes started together, 1 thread each), on this machine. Each configuration starts from an
# empty store; wall time is from the first process's start to the last one's end; memory is the
# sum of the processes' peak resident sets (what the machine must hold at once, at most).
#
#   scripts/throughput_bench.sh [DATA_DIR]
#
# DATA_DIR defaults to ../shared/data. Environment: MICA (binary, default target/release/mica),
# SAM_WEIGHTS (default ../shared/models/mobile_sam.pt; unset or missing: classical only),
# N_CLASSICAL (images, default 272: all of BBBC005 F1), N_SAM (default 4), BENCH_OUT (scratch).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data}
MICA=${MICA:-target/release/mica}
W=${SAM_WEIGHTS-../shared/models/mobile_sam.pt}
NC=${N_CLASSICAL:-272}
NS=${N_SAM:-4}
OUT=${BENCH_OUT:-scratch/throughput}
[ -x "$MICA" ] || { echo "build first: cargo build --release -p mica" >&2; exit 1; }
rm -rf "$OUT" && mkdir -p "$OUT"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/ {print $2}') GiB; load $(cut -d' ' -f1-3 /proc/loadavg); mica: $MICA"

# images NAME N : a folder of the first N BBBC005 images (links).
images() {
  mkdir -p "$OUT/$1"
  local i=0
  for f in "$DATA"/bbbc005/images/*.TIF; do
    [ "$i" -lt "$2" ] || break
    ln -s "$(realpath "$f")" "$OUT/$1/"
    i=$((i + 1))
  done
}
# study NAME METHOD_TOML : a study counting the images of folder NAME with one method "m".
study() {
  cat > "$OUT/$1.toml" <<TOML
name = "throughput $1"
data_root = "$(realpath "$OUT")"
[[datasets]]
name = "d"
kind = "folder"
path = "$1"
[[methods]]
name = "m"
$2
[[tasks]]
kind = "count"
datasets = ["d"]
methods = ["m"]
TOML
}
# bench NAME N_IMAGES THREADS SHARDS : one configuration; prints a table row.
bench() {
  local name=$1 n=$2 threads=$3 shards=$4 dir="$OUT/run-$1-$3-$4"
  mkdir -p "$dir"
  local t0 t1
  t0=$(date +%s.%N)
  for ((i = 0; i < shards; i++)); do
    RAYON_NUM_THREADS=$threads /usr/bin/time -f "%M" -o "$dir/rss.$i" \
      "$MICA" run "$OUT/$name.toml" --store "$dir/shard-$i.sqlite" --shard "$i/$shards" \
      > "$dir/log.$i" 2>&1 &
  done
  wait
  t1=$(date +%s.%N)
  local made
  made=$(grep -h "made now" "$dir"/log.* | sed -E 's/.* ([0-9]+) made now.*/\1/' | paste -sd+ | bc)
  [ "$made" = "$n" ] || { echo "$name: $made predictions made, not $n" >&2; cat "$dir"/log.* >&2; exit 1; }
  local kb
  kb=$(cat "$dir"/rss.* | paste -sd+ | bc)
  awk -v m="$name" -v t="$threads" -v s="$shards" -v n="$n" -v a="$t0" -v b="$t1" -v kb="$kb" 'BEGIN {
    w = b - a; printf "| %-9s | %7d | %6d | %6d | %8.1f | %8.2f | %8.0f |\n", m, t, s, n, w, n / w, kb / 1024 }'
}

images classical "$NC"
study classical 'kind = "classical"
preset = "fluorescence-nuclei"'
echo
echo "| method    | threads | shards | images | wall (s) | images/s | peak MiB (sum) |"
echo "|---|---|---|---|---|---|---|"
bench classical "$NC" 1 1
bench classical "$NC" 2 1
bench classical "$NC" 1 2
bench classical "$NC" 1 4
if [ -n "$W" ] && [ -f "$W" ]; then
  images sam "$NS"
  study sam "kind = \"sam\"
preset = \"standard\"
weights = \"$(realpath "$W")\""
  bench sam "$NS" 1 1
  bench sam "$NS" 2 1
  bench sam "$NS" 1 2
  bench sam "$NS" 1 4
fi
