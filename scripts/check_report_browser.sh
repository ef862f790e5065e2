#!/usr/bin/env bash
# Render a forgetir report.html in headless Chromium and save a screenshot to look at.
#
#   scripts/check_report_browser.sh RUN_DIR/report.html [OUT.png]
#   scripts/check_report_browser.sh --sample [OUT.png]     # a fake run dir from the tests
#   scripts/check_report_browser.sh --install ...           # apt-get install chromium first
#
# Installs nothing unless --install is given. The page must render offline: Chromium runs with
# networking features off, so a report that needed the network would show missing images.
# WINDOW (default 1280,3000) sets the viewport; CHROMIUM the browser binary.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
chromium="${CHROMIUM:-/usr/bin/chromium}"
window="${WINDOW:-1280,3000}"

if [[ "${1:-}" == "--install" ]]; then
    shift
    apt-get install -y chromium
fi

if [[ ! -x "$chromium" ]]; then
    echo "error: $chromium not found. Install it with:" >&2
    echo "    apt-get update && apt-get install -y chromium" >&2
    echo "(or run this script with --install, or set CHROMIUM=/path/to/chromium)" >&2
    exit 2
fi

if [[ $# -lt 1 ]]; then
    sed -n '2,10p' "$0" >&2
    exit 2
fi

if [[ "$1" == "--sample" ]]; then
    sample="$(mktemp -d)"
    python="${PYTHON:-$here/.venv/bin/python}"
    PYTHONPATH="$here/src:$here/tests" "$python" - "$sample" <<'EOF'
import sys
from pathlib import Path

from test_report import EVIL, make_run_dir

from forgetir.report.write import write_report

run = make_run_dir(Path(sys.argv[1]), method=f"accurate-forgetting {EVIL}")
print(write_report(run)["html"])
EOF
    report="$sample/run/report.html"
else
    report="$1"
fi
out="$(realpath -m "${2:-report_screenshot.png}")"
report="$(realpath "$report")"
[[ -f "$report" ]] || { echo "error: report $report does not exist" >&2; exit 2; }

profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
rm -f "$out"
timeout 180 "$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --hide-scrollbars --screenshot="$out" --window-size="$window" \
    "file://$report" 2> "$profile/chromium.log" || {
    echo "error: chromium failed; its log:" >&2
    cat "$profile/chromium.log" >&2
    exit 1
}
[[ -s "$out" ]] || { echo "error: no screenshot written" >&2; cat "$profile/chromium.log" >&2; exit 1; }
echo "screenshot of $report: $out"
