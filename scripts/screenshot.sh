#!/usr/bin/env bash
# docs/screenshots/*.png: the real window driven through a tour (main view, multi-face, menu,
# settings, session browser, summary) at 1600x1000 and 800x600, under Xvfb (a virtual X
# server, so the real X11 platform plugin and fonts are used).  Needs xvfb (scripts/setup.sh
# installs it).
#   scripts/screenshot.sh [--out DIR] [--multi IMAGE] [--sizes 1600x1000,800x600]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
if ! command -v xvfb-run >/dev/null 2>&1; then
  echo "screenshot: xvfb-run is missing: sudo apt-get install xvfb xauth (or run with QT_QPA_PLATFORM=offscreen $PY -m emotiond.gui.screenshot)" >&2
  exit 1
fi
unset QT_QPA_PLATFORM
exec xvfb-run -a -s "-screen 0 1700x1100x24 -dpi 96" "$PY" -m emotiond.gui.screenshot "$@"
