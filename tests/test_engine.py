"""The engine end to end on real media: real mediapipe, real ONNX models."""

import json
import shutil

import numpy as np
import pytest

from emotiond.config import load_config
from emotiond.engine import Engine
from emotiond.runner import run
from emotiond.sinks import JsonlSink
from emotiond.sources import open_source
from tests.mediautil import transcode


def analyse(path, tmp_path, voice=False, **overrides):
    cfg = load_config(overrides={"voice.enabled": voice, **overrides})
    src = open_source(path)
    log = tmp_path / f"{path.stem}.jsonl"
    sink = JsonlSink(log, mode="overwrite")
    with Engine(cfg, source_info=src.info) as engine:
        stats = run(src, engine, [sink], progress=False)
    sink.close()
    return stats, [json.loads(line) for line in log.read_text().splitlines()]


def test_single_face_clip(single_face_mp4, tmp_path):
    stats, recs = analyse(single_face_mp4, tmp_path)
    assert stats.frames == len(recs) == 72
    with_face = [r for r in recs if r["faces"]]
    assert len(with_face) >= 0.9 * len(recs)
    ts = [r["t"] for r in recs]
    assert all(b > a for a, b in zip(ts, ts[1:])), "timestamps must increase"
    assert [r["frame"] for r in recs] == list(range(len(recs)))
    ids = {f["id"] for r in recs for f in r["faces"]}
    assert len(ids) == 1, f"one face should keep one track id, got {ids}"
    for r in with_face:
        face = r["faces"][0]
        assert sum(face["face"].values()) == pytest.approx(1.0, abs=2e-3)
        assert sum(r["fused"].values()) == pytest.approx(1.0, abs=2e-3)
        assert r["label"] in r["fused"] and r["shares"] == {"face": 1.0}
        x0, y0, x1, y1 = face["bbox"]
        assert 0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 360


def test_no_face_clip_writes_valid_log(no_face_mp4, tmp_path):
    stats, recs = analyse(no_face_mp4, tmp_path)
    assert stats.frames == len(recs) > 50
    assert all(r["faces"] == [] and r["fused"] is None and r["label"] is None for r in recs)


def test_still_images_and_folder(single_face_jpg, multi_face_jpg, tmp_path):
    _, one = analyse(single_face_jpg, tmp_path)
    assert len(one) == 1 and len(one[0]["faces"]) == 1
    _, many = analyse(multi_face_jpg, tmp_path, **{"face.max_faces": 10})
    faces = many[0]["faces"]
    assert len(faces) == 5  # five people, two of them small: found through tiling
    assert len({f["id"] for f in faces}) == len(faces)
    folder = tmp_path / "imgs"
    folder.mkdir()
    shutil.copy(single_face_jpg, folder / "a.jpg")
    shutil.copy(multi_face_jpg, folder / "b.jpg")
    (folder / "notes.txt").write_text("not an image")
    _, recs = analyse(folder, tmp_path, **{"face.max_faces": 10})
    assert [len(r["faces"]) for r in recs] == [1, len(faces)]
    assert [r["t"] for r in recs] == [0.0, 1.0]


@pytest.mark.parametrize("suffix,vcodec,acodec", [(".mkv", "libx264", "aac"), (".mov", "libx265", "aac"),
                                                  (".webm", "libvpx-vp9", "libopus")])
def test_other_containers_and_codecs(single_face_mp4, tmp_path, suffix, vcodec, acodec):
    dst = tmp_path / f"clip{suffix}"
    transcode(single_face_mp4, dst, vcodec, acodec, max_frames=30)
    _, recs = analyse(dst, tmp_path)
    assert len(recs) == 30
    assert sum(bool(r["faces"]) for r in recs) >= 27


def test_variable_frame_rate_keeps_media_timestamps(single_face_mp4, tmp_path):
    rng = np.random.default_rng(0)
    times = np.cumsum(rng.choice([1 / 60, 1 / 30, 1 / 10], size=40)).round(3).tolist()
    dst = tmp_path / "vfr.mkv"
    written = transcode(single_face_mp4, dst, "libx264", None, times=times)
    _, recs = analyse(dst, tmp_path)
    got = [r["t"] for r in recs]
    offset = got[0] - written[0]
    assert np.allclose(np.array(got) - offset, written, atol=2e-3)


def test_engine_stages_equal_single_thread(single_face_mp4):
    """Threaded runner (one landmark worker) and plain process_frame give the same results."""
    cfg = load_config(overrides={"voice.enabled": False, "face.workers": 1})
    src = open_source(single_face_mp4)
    with Engine(cfg, source_info=src.info) as engine:
        direct = [engine.process_frame(f) for f in src.items() if hasattr(f, "image")][:20]
    src = open_source(single_face_mp4)
    threaded = []
    with Engine(cfg, source_info=src.info) as engine:
        run(src, engine, [], progress=False, on_result=lambda r, f: threaded.append(r))
    for a, b in zip(direct, threaded[:20]):
        assert a.fused.label == b.fused.label
        np.testing.assert_allclose(a.fused.probs, b.fused.probs, atol=1e-6)


@pytest.mark.parametrize("display_rotation", [90, -90])
def test_phone_video_rotation_is_applied(single_face_mp4, tmp_path, display_rotation):
    """A phone stores portrait video sideways in HEVC with a display-matrix rotation."""
    import av

    src = av.open(str(single_face_mp4))
    upright = [f.to_ndarray(format="rgb24") for _, f in zip(range(8), src.decode(video=0))]
    src.close()
    path = tmp_path / f"phone{display_rotation}.mov"
    out = av.open(str(path), "w")
    stream = out.add_stream("libx265", rate=30, options={"log-level": "error"})
    stream.width, stream.height, stream.pix_fmt = upright[0].shape[0], upright[0].shape[1], "yuv420p"
    stream.set_display_rotation(display_rotation)
    for i, img in enumerate(upright):
        stored = np.ascontiguousarray(np.rot90(img, k=-1 if display_rotation == 90 else 1))
        frame = av.VideoFrame.from_ndarray(stored, format="rgb24")
        frame.pts = i
        for p in stream.encode(frame):
            out.mux(p)
    for p in stream.encode():
        out.mux(p)
    out.close()
    frames = [f for f in open_source(path).items()]
    assert frames[0].image.shape == upright[0].shape
    assert np.abs(frames[0].image.astype(int) - upright[0]).mean() < 8  # upright again (codec noise only)
    _, recs = analyse(path, tmp_path)
    assert all(len(r["faces"]) == 1 for r in recs)


def test_parallel_landmark_workers_are_deterministic(pexels_mp4, tmp_path):
    """Two workers (frames alternate): two runs give byte-identical logs, and the same labels
    as one worker on nearly every frame."""
    cut = tmp_path / "cut.mkv"
    transcode(pexels_mp4, cut, "libx264", None, max_frames=120)
    logs = []
    for i, workers in enumerate((2, 2, 1)):
        cfg = load_config(overrides={"voice.enabled": False, "face.workers": workers})
        src = open_source(cut)
        log = tmp_path / f"w{i}.jsonl"
        sink = JsonlSink(log)
        with Engine(cfg, source_info=src.info) as engine:
            assert engine.workers == workers
            run(src, engine, [sink], progress=False)
        sink.close()
        logs.append(log.read_bytes())
    assert logs[0] == logs[1]
    two = [json.loads(x) for x in logs[0].splitlines()]
    one = [json.loads(x) for x in logs[2].splitlines()]
    assert len(two) == len(one) == 120
    assert [r["frame"] for r in two] == list(range(120))
    assert len({f["id"] for r in two for f in r["faces"]}) == 1
    agree = sum(a["label"] == b["label"] for a, b in zip(one, two))
    assert agree >= 0.9 * len(one)
