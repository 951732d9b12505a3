"""Zero network: the libraries we load never reach the network.

emotiond opens no network socket itself.  Two of its libraries would:

* **onnxruntime** (1.31) starts a telemetry client (1DS) that resolves and posts to
  ``mobile.events.data.microsoft.com`` about 10 s after the first session.  Its
  ``disable_telemetry_events()`` call alone does not stop the client; the
  ``ORT_DISABLE_TELEMETRY=1`` environment variable does, but only when it is set
  before ``import onnxruntime``.  :func:`quiet_onnxruntime` does both;
  :mod:`emotiond.runtime` (the only product module that imports onnxruntime) calls it.
* **mediapipe** (1.2.x Tasks C library) posts usage statistics to
  ``play.googleapis.com/log`` through its built-in libcurl when a task starts and
  ends.  There is no option for it, but libcurl honours the standard proxy
  variables: :func:`quiet_mediapipe` points ``https_proxy`` / ``all_proxy`` at a
  SOCKS proxy on a Unix socket that does not exist, so libcurl gives up without a
  DNS lookup or an IP socket.  :mod:`emotiond.face.landmarks` calls it before the
  library is loaded.  (A user's ``no_proxy`` would let it bypass that, so it is
  cleared too.)  We set these only in processes that load mediapipe, never in
  the model-building tools that ``pip download``.

mediapipe's ``tasks.python`` package also imports ``sounddevice`` (PortAudio,
which probes JACK) for its audio tasks; :mod:`emotiond.face.landmarks` loads that
module lazily, so file and session sources never start PortAudio.

``tests/test_privacy.py`` keeps this true: real runs under ``strace`` and inside
``unshare -n``.
"""

from __future__ import annotations

import os

# A Unix socket path that cannot exist (a path below /dev/null): libcurl's SOCKS
# connect fails at once with ENOTDIR, nothing leaves the machine.
NO_PROXY_SOCKET = "socks5h://localhost/dev/null/emotiond-no-network"
_PROXY_VARS = ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY")
_BYPASS_VARS = ("no_proxy", "NO_PROXY")


def quiet_onnxruntime() -> None:
    """Before ``import onnxruntime``: no telemetry client."""
    os.environ["ORT_DISABLE_TELEMETRY"] = "1"


def disable_onnxruntime_events(ort) -> None:
    """After the import: also switch the event API off (belt and braces)."""
    try:
        ort.disable_telemetry_events()
    except AttributeError:  # builds without telemetry have no such call
        pass


def quiet_mediapipe() -> None:
    """Before loading mediapipe's C library: its libcurl has nowhere to connect."""
    for name in _PROXY_VARS:
        if os.environ.get(name) != NO_PROXY_SOCKET:
            os.environ[name] = NO_PROXY_SOCKET
    for name in _BYPASS_VARS:
        os.environ.pop(name, None)
