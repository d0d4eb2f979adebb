#!/usr/bin/env bash
# Fresh screenshots of the demo report for docs/images, rendered by headless Chromium:
#   demo-report.png          the first screen (the summary: which method is best, and how wrong)
#   demo-report-overlays.png the segmentation section's difference overlays
# and, with DATA set to the shared data folder (e.g. DATA=../shared/data), the full offline study
# (studies/beyond-human-vision.toml; methods without weights or keys are skipped):
#   study-report.png          its first screen
#   study-report-counting.png the predicted-vs-true figures of its dataset with most methods
# Usage: [DATA=DIR] scripts/report_screenshots.sh [MICA]
#        (default MICA: target/release/mica, else target/debug/mica)
set -euo pipefail
cd "$(dirname "$0")/.."
MICA=${1:-target/release/mica}
[ -x "$MICA" ] || MICA=target/debug/mica
BROWSER=$(command -v chromium || command -v chromium-browser || command -v google-chrome)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$MICA" -q demo --out "$tmp/demo" >/dev/null
html="$tmp/demo/report/report.html"
shot() { # OUT WIDTHxHEIGHT FRAGMENT
  HOME="$tmp" "$BROWSER" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --window-size="$2" --screenshot="$1" "file://$html$3" 2>/dev/null
}
shot docs/images/demo-report.png 1280,900 ""
# The overlays: the page cut at the segmentation section's first overlay figure.
python3 - "$html" "$tmp/overlays.html" <<'PY'
import sys
h = open(sys.argv[1], encoding="utf-8").read()
i = h.index("difference overlays</h4>")
start = h.rindex("<h4>", 0, i)
head = h[: h.index("<body")] + "<body>"
end = h.index("</div>", h.index("</figure>", h.rindex("<figure>", 0, h.index("largest count error", i)))) + 6
open(sys.argv[2], "w", encoding="utf-8").write(head + h[start:end] + "</body></html>")
PY
html="$tmp/overlays.html"
shot docs/images/demo-report-overlays.png 1280,700 ""
ls -la docs/images/demo-report.png docs/images/demo-report-overlays.png
if [ -n "${DATA:-}" ]; then
  # Exit 3 when some predictions failed or methods were skipped: the report says which.
  "$MICA" -q run studies/beyond-human-vision.toml --data-root "$DATA" --store "$tmp/study.sqlite" 2>/dev/null || [ $? -eq 3 ]
  "$MICA" -q report "$tmp/study.sqlite" --out "$tmp/study" >/dev/null
  html="$tmp/study/report.html"
  shot docs/images/study-report.png 1280,900 ""
  python3 - "$html" "$tmp/counting.html" <<'PY'
import sys
h = open(sys.argv[1], encoding="utf-8").read()
# The dataset with the most methods (scatter panels) in its predicted-vs-true figures.
blocks = []
i = h.find("predicted vs true count</h3>")
while i != -1:
    start, end = h.rindex("<h3>", 0, i), h.index("</div>", i) + 6
    blocks.append((h[start:end].count("<svg"), -start, start, end))
    i = h.find("predicted vs true count</h3>", end)
_, _, start, end = max(blocks)
head = h[: h.index("<body")] + "<body>"
open(sys.argv[2], "w", encoding="utf-8").write(head + h[start:end] + "</body></html>")
PY
  html="$tmp/counting.html"
  shot docs/images/study-report-counting.png 1280,700 ""
  ls -la docs/images/study-report.png docs/images/study-report-counting.png
fi
