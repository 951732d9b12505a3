"""docs/report.png: `emotiond report` on a batch over the product owner's clips, in headless Chromium.

    python tools/report_screenshot.py [--out docs/report.png]

Makes a 150-frame cut of the Pexels clip (with its audio), runs `emotiond batch` over it,
single_face.mp4 and no_face.mp4, renders the report and screenshots its top in Chromium
(`apt-get install chromium`), then shrinks the PNG to a 64-colour palette.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MEDIA = REPO.parent / "shared" / "media"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "report.png")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    from tests.mediautil import transcode

    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        sys.exit("needs headless Chromium: apt-get install chromium")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        inp = tmp / "recordings"
        inp.mkdir()
        transcode(MEDIA / "WolfgangLanger_Pexels.mp4", inp / "interview.mp4", max_frames=150)
        shutil.copy(MEDIA / "single_face.mp4", inp / "single_face.mp4")
        shutil.copy(MEDIA / "no_face.mp4", inp / "no_face.mp4")
        py = [sys.executable, "-m", "emotiond"]
        subprocess.run([*py, "batch", str(inp), "--out", str(tmp / "results"), "--no-progress"], check=True)
        subprocess.run([*py, "report", str(tmp / "results"), "--out", str(tmp / "report.html")], check=True)
        shot = tmp / "shot.png"
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--disable-background-networking", "--no-first-run", f"--user-data-dir={tmp / 'profile'}",
                        "--window-size=1000,1500", f"--screenshot={shot}", (tmp / "report.html").as_uri()],
                       check=True, capture_output=True)
        from PIL import Image

        Image.open(shot).convert("RGB").quantize(64).save(args.out, optimize=True)
    print(f"{args.out}: {args.out.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
