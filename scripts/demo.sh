#!/usr/bin/env bash
# The main job: start the bundled demo service (demo/demo.py), wait for its ready line, show what
# pytrace sees in it right now, record it for a few seconds, summarise the recording and write the
# self-contained HTML view. Leaves nothing running. Writes demo.pytrace and demo.html in the current
# directory (PYTRACE_DEMO_OUT changes the trace's name).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-/usr/bin/python3}
OUT=${PYTRACE_DEMO_OUT:-demo.pytrace}
coproc DEMO { exec "$PY" demo/demo.py --seconds 60; }
trap 'kill "$DEMO_PID" 2>/dev/null || true; wait "$DEMO_PID" 2>/dev/null || true' EXIT
read -r ready <&"${DEMO[0]}"     # {"pid": ..., "ready": true} once its workers run
echo "== demo service running: $ready"
echo "== pytrace dump $DEMO_PID"
build/pytrace dump "$DEMO_PID"
echo "== pytrace attach $DEMO_PID -d 3 -o $OUT"
build/pytrace attach "$DEMO_PID" -d 3 -o "$OUT"
echo "== pytrace info $OUT"
build/pytrace info "$OUT"
HTML="${OUT%.pytrace}.html"
echo "== pytrace view $OUT -o $HTML"
build/pytrace view "$OUT" -o "$HTML"
echo "open $HTML in a browser (one file, no network needed)"
