#!/usr/bin/env bash
# docs/screenshot.png: the window on the demo clip, under Xvfb (a virtual X server, so the
# real X11 platform plugin and fonts are used).  Needs xvfb (scripts/setup.sh installs it).
#   scripts/screenshot.sh [CLIP] [--at SECONDS] [--out FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
if ! command -v xvfb-run >/dev/null 2>&1; then
  echo "screenshot: xvfb-run is missing: sudo apt-get install xvfb xauth (or run with QT_QPA_PLATFORM=offscreen $PY -m emotiond.gui.screenshot)" >&2
  exit 1
fi
unset QT_QPA_PLATFORM
exec xvfb-run -a -s "-screen 0 1280x800x24 -dpi 96" "$PY" -m emotiond.gui.screenshot "$@"
