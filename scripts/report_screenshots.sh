#!/usr/bin/env bash
# Fresh screenshots of the demo report for docs/images, rendered by headless Chromium:
#   demo-report.png          the first screen (the summary: which method is best, and how wrong)
#   demo-report-overlays.png the segmentation section's difference overlays
# Usage: scripts/report_screenshots.sh [MICA]   (default: target/release/mica, else target/debug/mica)
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
