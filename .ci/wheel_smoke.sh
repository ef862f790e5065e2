#!/usr/bin/env bash
# What a user of the package gets: build the wheel, install it (with torch) in a fresh venv
# outside the repository, and run a tiny `forgetir demo` from it, so that the shipped weights,
# configs and sidecars must come from the wheel, not from ./src.
# Run by `make wheel-check` (and so by .ci/run); it needs the dev extra's `build`.
# Environment (set by the Makefile): BIN (the dev venv's bin), PY, TORCH_PIN, TORCH_INDEX,
# PIP_EXTRA.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
PY=${PY:-python3}
TORCH_PIN=${TORCH_PIN:-torch==2.13.0}
TORCH_INDEX=${TORCH_INDEX:-}
PIP_EXTRA=${PIP_EXTRA:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$BIN/python" -m build --wheel --outdir "$work/dist" . >"$work/build.log" 2>&1 \
    || { cat "$work/build.log" >&2; exit 1; }
wheel=$(ls "$work"/dist/forgetir-*.whl)
echo "wheel-check: built $(basename "$wheel") ($(du -h "$wheel" | cut -f1))"

"$PY" -m venv "$work/venv"
pip=("$work/venv/bin/pip" install -q)
# shellcheck disable=SC2086  # PIP_EXTRA holds several options on purpose
"${pip[@]}" $PIP_EXTRA ${TORCH_INDEX:+--index-url "$TORCH_INDEX"} "$TORCH_PIN"
# shellcheck disable=SC2086
"${pip[@]}" $PIP_EXTRA "$wheel"

cd "$work"  # away from the repository, so nothing is imported from ./src
"$work/venv/bin/python" - <<'PY'
import pathlib

import forgetir

root = pathlib.Path(forgetir.__file__).parent
assert "site-packages" in root.parts, f"forgetir imported from {root}, not the installed wheel"
for name in ("before.safetensors", "before.json", "ut-dehaze.safetensors", "ut-dehaze.json"):
    assert (root / "weights" / name).is_file(), f"the wheel lacks weights/{name}"
print(f"wheel-check: forgetir {forgetir.__version__} installed at {root}")
PY
"$work/venv/bin/forgetir" demo --steps 2 --max-side 48 --relearn-steps 2 --ain-max-steps 3 \
    --threads 1 --quiet --out "$work/run"
# One run folder per method of the demo (the seed paper's and the recommended one).
for method in accurate-forgetting proxy-retrain-guarded; do
    for f in report.html report.md report.json verify.json; do
        test -s "$work/run/$method/$f" \
            || { echo "wheel-check: the demo wrote no $method/$f" >&2; exit 1; }
    done
    grep -q '"verdict"' "$work/run/$method/report.json" \
        || { echo "wheel-check: $method/report.json has no verdict" >&2; exit 1; }
    echo "wheel-check: the installed wheel ran the demo, $method:" \
        "$(grep -o 'VERDICT [^;:(]*' "$work/run/$method/report.md" | head -1)"
done
