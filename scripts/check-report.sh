#!/usr/bin/env bash
# Opens a run's report.html in headless Chromium and checks that every image on the page
# loaded (the page records the images that did not in <body data-broken-images=N>).
# Usage: bash scripts/check-report.sh [RUN_FOLDER]   (default outputs/demo)
# Needs chromium (Debian: apt-get install chromium). Exit status 0 when every image loaded.
set -euo pipefail
run=${1:-outputs/demo}
page="$run/report.html"
[[ -f $page ]] || { echo "check-report: $page does not exist (run flowtune report $run first)" >&2; exit 2; }
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
[[ -n $browser ]] || { echo "check-report: no chromium on PATH (apt-get install chromium)" >&2; exit 2; }
url="file://$(cd "$(dirname "$page")" && pwd)/report.html"
dom=$("$browser" --headless --no-sandbox --disable-gpu --dump-dom --virtual-time-budget=10000 "$url" 2>/dev/null)
body=$(grep -o '<body[^>]*>' <<<"$dom" | head -n 1)
broken=$(sed -n 's/.*data-broken-images="\([0-9]*\)".*/\1/p' <<<"$body")
images=$(sed -n 's/.*data-images="\([0-9]*\)".*/\1/p' <<<"$body")
if [[ -z $broken || -z $images ]]; then
  echo "check-report: $page did not finish loading in Chromium (no image count on <body>)" >&2; exit 1
fi
if ((broken > 0)); then
  echo "check-report: $broken of $images images on $page did not load: $(grep -o 'images that did not load: [^<]*' <<<"$dom" | head -n 1)" >&2
  exit 1
fi
echo "check-report: all $images images on $page loaded in Chromium" >&2
