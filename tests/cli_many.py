"""Child process: several `emotiond` command lines in one process (imports paid once).

    python tests/cli_many.py JOBS.json RESULTS.json

JOBS.json: ``[[name, [argv...], {ENV: value}], ...]``; each job runs ``emotiond.cli.main(argv)``
with those environment variables set (and restored after), its stderr captured (``print`` and
logging both write to the current ``sys.stderr``).  RESULTS.json: ``{name: [exit status,
stderr, seconds]}``, written after every job, so a job that hangs or kills the process still leaves
the others' results.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emotiond.cli import main  # noqa: E402


def run(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            try:
                rc = main(argv)
            except SystemExit as exc:  # argparse
                rc = exc.code if isinstance(exc.code, int) else 2
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return rc, err.getvalue()


def main_many() -> None:
    jobs = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    results: dict[str, list] = {}
    for name, argv, env in jobs:
        t0 = time.perf_counter()
        results[name] = [*run(argv, env), round(time.perf_counter() - t0, 2)]
        out.write_text(json.dumps(results))


if __name__ == "__main__":
    main_many()
