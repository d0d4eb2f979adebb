#!/usr/bin/env bash
# Detector-prompted SAM against grid AMG and the classical method (issue #16 item 1), on the
# study's images: BBBC005-S w1 and w2 (N images each, evenly spaced through the study's list;
# Dice against the synthetic masks, count MAE against the `_C<n>_` truth), the NFFA-MS fibre and
# particle crops (count MAE against the study's ground-truth CSVs) and the StarDist nuclei image
# (instance truth: mSA, Dice, count error).
#   scripts/sam_prompted_bench.sh [N]            (default N = 20)
# Environment: MICA (default target/release/mica), MICA_SAM_WEIGHTS (default
# ../shared/models/mobile_sam.pt), SHARED (default ../shared), OUT (results folder), JOBS
# (`--jobs`, default 0 = all cores; SAM's own work runs inside that pool, so JOBS=1 makes SAM
# single-threaded: on 2 cores about 1.5x slower per image),
# DATASETS (default "w1 w2 fibres particles stardist").
# Grid counts are given by both rules from one run: masks (the study's definition) and objects
# (the label image's objects, mica's default).
set -euo pipefail
N=${1:-20}
root=$(cd "$(dirname "$0")/.." && pwd)
MICA=${MICA:-$root/target/release/mica}
SHARED=${SHARED:-$root/../shared}
export MICA_SAM_WEIGHTS=${MICA_SAM_WEIGHTS:-$SHARED/models/mobile_sam.pt}
OUT=${OUT:-$(mktemp -d)}
JOBS=${JOBS:-0}
DATASETS=${DATASETS:-w1 w2 fibres particles stardist}
V=$SHARED/data/vlms-micrographs
mkdir -p "$OUT"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "mica: $MICA ($("$MICA" --version)), $JOBS job(s); results in $OUT"

# Image folders (symlinks) and truth folders for each dataset.
pick() { # CSV N -> N names evenly spaced through the CSV's rows
  python3 - "$1" "$2" <<'EOF'
import csv, sys
rows = [r[0] for r in csv.reader(open(sys.argv[1], encoding="utf-8-sig"))][1:]
n = min(int(sys.argv[2]), len(rows))
print("\n".join(rows[round(i * (len(rows) - 1) / max(n - 1, 1))] for i in range(n)))
EOF
}
for s in w1 w2; do
  mkdir -p "$OUT/img/$s" "$OUT/truth/$s"
  pick "$V/data_ground_truth_BBBC005-S-${s}_counts.csv" "$N" | while read -r f; do
    ln -sf "$SHARED/data/bbbc005/images/$f" "$OUT/img/$s/$f"
    ln -sf "$SHARED/data/bbbc005/masks/$f" "$OUT/truth/$s/$f"
  done
done
for s in fibres particles; do
  src=Fibres; [ $s = particles ] && src=Particles
  mkdir -p "$OUT/img/$s"
  for f in "$V/data_images_NFFA-MS_cropped/$src"/*; do ln -sf "$f" "$OUT/img/$s/"; done
done
mkdir -p "$OUT/img/stardist" "$OUT/truth/stardist"
ln -sf "$SHARED/data/stardist-nuclei/img2d.tif" "$OUT/img/stardist/img2d.tif"
ln -sf "$SHARED/data/stardist-nuclei/mask2d.tif" "$OUT/truth/stardist/img2d.tif"

preset_of() { case $1 in w1|stardist) echo fluorescence-nuclei ;; w2) echo fluorescence-cells ;; fibres) echo sem-fibres ;; *) echo sem-particles ;; esac; }
truth_of() {
  case $1 in
    fibres) echo "--truth $V/data_ground_truth_NFFA-MS-fibers_counts.csv" ;;
    particles) echo "--truth $V/data_ground_truth_NFFA-MS-particles_counts.csv" ;;
    *) echo "" ;;
  esac
}
run() { # DATASET NAME ARGS...
  local d=$1 name=$2; shift 2
  local dir="$OUT/pred/$d/$name"
  mkdir -p "$OUT/pred/$d"
  local t0 t1 n
  n=$(ls "$OUT/img/$d" | wc -l)
  t0=$(date +%s.%N)
  RAYON_NUM_THREADS=2 "$MICA" segment -q --jobs "$JOBS" "$@" "$OUT/img/$d" --out "$dir" 2>"$dir.log" || true
  t1=$(date +%s.%N)
  python3 -c "print(f'{($t1 - $t0) / $n:.2f}')" >"$dir.seconds_per_image"
  # Objects per image from objects.csv (the grid run counts masks in counts.csv).
  python3 - "$dir" <<'EOF'
import csv, sys, collections
d = sys.argv[1]
counts = {r["image"]: 0 for r in csv.DictReader(open(f"{d}/counts.csv"))}
for r in csv.DictReader(open(f"{d}/objects.csv")):
    counts[r["image"]] = counts.get(r["image"], 0) + 1
with open(f"{d}/objects_counts.csv", "w") as f:
    f.write("image,count\n")
    for k, v in counts.items():
        f.write(f"{k},{v}\n")
EOF
}

for d in $DATASETS; do
  p=$(preset_of $d)
  run $d classical --method classical --preset "$p"
  run $d grid --method sam --sam-preset standard --sam-count masks
  run $d prompted --method sam --prompts "classical:$p"
done

echo
printf '%-10s %-14s %6s %20s %7s %7s %8s\n' dataset method images count_MAE Dice mSA s/image
for d in $DATASETS; do
  for m in classical grid:masks grid:objects prompted; do
    name=${m%%:*}; dir="$OUT/pred/$d/$name"
    csv=$dir/objects_counts.csv; [ "$m" = grid:masks ] && csv=$dir/counts.csv
    if [ $d = stardist ]; then
      # One image with instance labels: count error against its number of nuclei.
      mae=$("$MICA" eval segment --truth "$OUT/truth/$d" --pred "$dir" --json 2>/dev/null |
        python3 -c "
import json, sys, csv
d = json.load(sys.stdin)['per_image'][0]['instances']
n = [int(r['count']) for r in csv.DictReader(open('$csv'))][0]
print(abs(n - d['num_truth']))")
    else
      mae=$("$MICA" eval count -q --predictions "$csv" $(truth_of $d) --json 2>/dev/null |
        python3 -c "
import json, sys
m = json.load(sys.stdin)[0]
print(f\"{m['mae']:.2f} (bias {m['bias']:+.2f})\")" 2>/dev/null || echo "?")
    fi
    dice=-; msa=-
    if [ -d "$OUT/truth/$d" ]; then
      read -r dice msa < <("$MICA" eval segment --truth "$OUT/truth/$d" --pred "$dir" --json 2>/dev/null |
        python3 -c "
import json, sys
a = json.load(sys.stdin)['aggregate']
print(f\"{a['dice']['mean']:.3f} {a['mean_tp_over_tp_fp_fn']['mean']:.3f}\")")
      [ "$m" = grid:masks ] && { dice=-; msa=-; }
    fi
    printf '%-10s %-14s %6s %20s %7s %7s %8s\n' $d "$m" "$(ls "$OUT/img/$d" | wc -l)" "$mae" "$dice" "$msa" "$(cat "$dir.seconds_per_image")"
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
