#!/usr/bin/env bash
# Speed of the sentence-embedding scorer: `mica eval vqa --similarity-model` on N answers (default
# 1,000: the study's 30 VQA-T1 answers repeated, each made unique, with its reference), wall time and peak
# memory by /usr/bin/time. Needs all-MiniLM-L6-v2's files (MICA_MINILM_DIR, or
# target/minilm/model as .ci/run makes them) and ../shared/data.
#
#   cargo build --release && scripts/vqa_similarity_bench.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
MODEL=${MICA_MINILM_DIR:-target/minilm/model}
MICA=${MICA:-target/release/mica}
REF=../shared/data/vlms-micrographs/vqa_t1_ground_truths.xlsx
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
python3 - "$N" "$TMP/answers.csv" <<'PY'
import csv, sys
n, out = int(sys.argv[1]), sys.argv[2]
rows = list(csv.DictReader(open("studies/vqa-t1/answers.csv", encoding="utf-8")))
with open(out, "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f)
    w.writerow(["image", "model", "answer", "expert_score"])
    for i in range(n):
        r = rows[i % len(rows)]
        # Each answer made unique (mica embeds identical texts once, which would flatter it).
        text = f"(answer {i}) {r['answer']}"
        w.writerow([r["image"], f"{r['model']}#{i // len(rows)}", text, r["expert_score"]])
PY
echo "mica eval vqa on $N answers ($(nproc) cores), similarity with $MODEL:"
/usr/bin/time -f "wall %e s, peak RSS %M KB" "$MICA" -q eval vqa --answers "$TMP/answers.csv" \
  --reference "$REF" --reference-column "Description ground truth" \
  --similarity-model "$MODEL" --out "$TMP/scores.csv" > /dev/null
echo "without similarity (facts only):"
env -u MICA_MINILM_DIR /usr/bin/time -f "wall %e s, peak RSS %M KB" "$MICA" -q eval vqa \
  --answers "$TMP/answers.csv" --reference "$REF" --reference-column "Description ground truth" > /dev/null
