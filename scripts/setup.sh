#!/usr/bin/env bash
# One-time set-up on a fresh machine: system libraries (when we may install them) and the
# project's virtual environment in .venv.  Called by `make`; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

# --- system libraries -------------------------------------------------------------------
# PortAudio (microphone), libGL/EGL (OpenCV, Qt), xcb/xkb/fontconfig (Qt windows), ffmpeg is
# bundled in PyAV's wheel; espeak-ng makes the speech of the voice tests (tests/audiosynth.py);
# strace watches the zero-network test (tests/test_privacy.py).
# Without them the product still runs on files; we say what is missing.
APT_PKGS="libportaudio2 libgl1 libegl1 libglib2.0-0 libfontconfig1 libxkbcommon0 libxkbcommon-x11-0 \
libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 \
libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libdbus-1-3 xvfb xauth espeak-ng strace"
APT_PKGS="$APT_PKGS chromium"  # headless browser: the tests open `emotiond report`'s HTML in it
if command -v dpkg-query >/dev/null 2>&1; then
  missing=$(for p in $APT_PKGS; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || echo "$p"; done)
  if [ -n "$missing" ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null && SUDO="sudo -n"
    if [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; then
      echo "setup: installing system packages: $(echo $missing)"
      $SUDO apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null \
        || echo "setup: WARNING: apt-get could not install: $(echo $missing) — the microphone/GUI may be unavailable; files still work"
    else
      echo "setup: WARNING: missing system packages: $(echo $missing)"
      echo "setup:   install them with: sudo apt-get install $(echo $missing)"
      echo "setup:   (without them the microphone and/or the GUI are unavailable; file sources still work)"
    fi
  fi
else
  echo "setup: not a Debian/Ubuntu system; install PortAudio and Qt's platform libraries with your package manager"
fi

# --- python environment -----------------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
pip_quiet() {  # pip, minus the machine's harmless "find-links location is ignored" chatter
  local rc
  set +e
  .venv/bin/python -m pip "$@" 2>&1 | grep -v "is ignored: it is neither a file nor a directory"
  rc=${PIPESTATUS[0]}
  set -e
  return "$rc"
}
pip_quiet install -q --upgrade pip
pip_quiet install -q -e ".[gui,test]"
touch .venv/.emotiond-setup
echo "setup: done (.venv)"
