"""Make real encoded media for tests with PyAV (the same FFmpeg the product reads with)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def transcode(src: Path, dst: Path, vcodec: str = "libx264", acodec: str | None = "aac",
              times: list[float] | None = None, max_frames: int | None = None,
              audio_from: Path | None = None) -> list[float]:
    """Re-encode ``src`` into ``dst`` (container from the suffix).  With ``times``, frame i
    gets presentation time times[i] (variable frame rate); with ``audio_from`` the audio
    track comes from that file instead.  Returns the frame times written."""
    inp = av.open(str(src))
    ainp = av.open(str(audio_from)) if audio_from else inp
    out = av.open(str(dst), "w")
    vin = inp.streams.video[0]
    vout = out.add_stream(vcodec, rate=30)
    vout.width, vout.height = vin.codec_context.width, vin.codec_context.height
    vout.pix_fmt = "yuv420p"
    vout.time_base = Fraction(1, 1000)
    vout.codec_context.time_base = Fraction(1, 1000)
    aout = None
    if acodec and ainp.streams.audio:
        ain = ainp.streams.audio[0]
        aout = out.add_stream(acodec, rate=48000 if acodec == "libopus" else ain.codec_context.sample_rate)
        aout.layout = "stereo"
    written = []
    for i, frame in enumerate(inp.decode(vin)):
        if (max_frames is not None and i >= max_frames) or (times is not None and i >= len(times)):
            break
        t = times[i] if times is not None else float(frame.time)
        img = frame.to_ndarray(format="rgb24")
        vf = av.VideoFrame.from_ndarray(img, format="rgb24")
        vf.pts = int(round(t * 1000))
        vf.time_base = Fraction(1, 1000)
        for p in vout.encode(vf):
            out.mux(p)
        written.append(t)
    for p in vout.encode():
        out.mux(p)
    if aout is not None:
        ainp.seek(0)
        resampler = av.AudioResampler(format=aout.codec_context.format.name, layout="stereo", rate=aout.codec_context.sample_rate)
        for frame in ainp.decode(audio=0):
            frame.pts = None
            for rf in resampler.resample(frame):
                for p in aout.encode(rf):
                    out.mux(p)
        for p in aout.encode():
            out.mux(p)
    out.close()
    inp.close()
    ainp.close()
    return written


def write_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    import soundfile as sf

    sf.write(str(path), samples, rate)
