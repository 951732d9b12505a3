"""SyncRingBuffer: bounded memory, one timeline for frames and audio, counters."""

import threading

import numpy as np
import pytest

from emotiond.capture.ringbuffer import Cursor, SyncRingBuffer, merge_chunks
from emotiond.types import AudioChunk, VideoFrame

RATE = 48000


def frame(i, fps=30.0, shape=(48, 64, 3)):
    return VideoFrame(index=i, t=i / fps, image=np.full(shape, i % 256, np.uint8))


def ramp_chunk(first_sample, n, rate=RATE, offset=0.0):
    """Audio whose value is its own sample number (so windows can be checked exactly)."""
    idx = np.arange(first_sample, first_sample + n, dtype=np.float32)
    return AudioChunk(t=offset + first_sample / rate, samples=idx, rate=rate)


def test_frames_are_bounded_by_time_bytes_and_count():
    ring = SyncRingBuffer(10.0, video_seconds=1.0)
    for i in range(300):  # 10 s at 30 fps
        ring.push_frame(frame(i))
    s = ring.stats()
    assert s.frames_pushed == 300
    assert s.video_span <= 1.0 + 1e-9 and s.frames_in_buffer == 31
    assert s.frames_evicted == 300 - 31
    assert ring.latest_frame().index == 299

    small = SyncRingBuffer(10.0, max_frame_bytes=10 * 48 * 64 * 3)
    for i in range(50):
        small.push_frame(frame(i))
    assert small.stats().frames_in_buffer == 10 and small.stats().frame_bytes == 10 * 48 * 64 * 3

    capped = SyncRingBuffer(10.0, max_frames=5)
    for i in range(50):  # timestamps that never advance cannot defeat the cap
        capped.push_frame(VideoFrame(index=i, t=0.0, image=np.zeros((2, 2, 3), np.uint8)))
    assert capped.stats().frames_in_buffer == 5


def test_audio_is_bounded_by_seconds():
    ring = SyncRingBuffer(2.0)
    block = 480
    for k in range(1000):  # 10 s of 10 ms blocks
        ring.push_audio(ramp_chunk(k * block, block))
    s = ring.stats()
    assert s.samples_pushed == 1000 * block
    assert 2.0 - 0.011 <= s.audio_span <= 2.0 + 0.011
    assert s.samples_in_buffer <= 2.0 * RATE + block
    start, end = ring.audio_span()
    assert end == pytest.approx(10.0) and start == pytest.approx(end - s.audio_span)


def test_audio_window_is_sample_exact_and_zero_fills_gaps():
    ring = SyncRingBuffer(10.0)
    offset = 0.25  # the session started before the microphone
    for k in range(100):
        if 40 <= k < 45:  # a 50 ms overflow: never delivered
            continue
        ring.push_audio(ramp_chunk(k * 480, 480, offset=offset))
    # the window for a frame at t = 0.5 s: [0.3, 0.5)
    w = ring.audio_window(0.3, 0.5)
    assert w.t == 0.3 and w.rate == RATE and w.samples.shape == (9600,)
    first = int(round((0.3 - offset) * RATE))
    assert np.array_equal(w.samples, np.arange(first, first + 9600, dtype=np.float32))
    g = ring.audio_window(offset + 0.39, offset + 0.46)  # straddles the lost blocks [0.40, 0.45)
    lost = slice(int(0.01 * RATE), int(0.06 * RATE))
    assert np.all(g.samples[lost] == 0)
    assert g.samples[lost.start - 1] == 0.40 * RATE - 1 and g.samples[lost.stop] == 0.45 * RATE
    assert ring.audio_coverage(offset + 0.39, offset + 0.46) == pytest.approx(2 / 7)
    assert ring.audio_coverage(offset, offset + 0.4) == pytest.approx(1.0)
    # beyond what is held: partly zeros, or None when nothing overlaps
    tail = ring.audio_window(offset + 0.99, offset + 1.01)
    assert np.count_nonzero(tail.samples[:480]) == 480 and not tail.samples[480:].any()
    assert ring.audio_window(5.0, 6.0) is None and ring.audio_window(1.0, 1.0) is None


def test_frame_at_and_the_audio_of_a_frame_share_one_timeline():
    ring = SyncRingBuffer(5.0)
    for i in range(60):
        ring.push_frame(frame(i))
    for k in range(200):
        ring.push_audio(ramp_chunk(k * 480, 480))
    f = ring.frame_at(1.0 + 0.01)
    assert f.index == 30
    w = ring.audio_window(f.t - 0.5, f.t)
    assert w.samples[-1] == 48000 - 1  # the last sample before the frame's time
    assert ring.frame_at(-1.0) is None


def test_readers_get_everything_in_order_and_missed_items_are_counted():
    ring = SyncRingBuffer(1.0, video_seconds=0.2)
    cur = Cursor()
    for i in range(5):
        ring.push_frame(frame(i))
        ring.push_audio(ramp_chunk(i * 1600, 1600))
    frames, chunks = ring.read_new(cur)
    assert [f.index for f in frames] == list(range(5)) and len(chunks) == 5
    assert ring.read_new(cur) == ([], [])
    for i in range(5, 100):  # the reader sleeps through ~3 s
        ring.push_frame(frame(i))
        ring.push_audio(ramp_chunk(i * 1600, 1600))
    frames, chunks = ring.read_new(cur)
    assert frames[-1].index == 99 and [f.index for f in frames] == list(range(100 - len(frames), 100))
    assert cur.frames_missed == 95 - len(frames)
    assert cur.chunks_missed == 95 - len(chunks) and cur.samples_missed == cur.chunks_missed * 1600
    late = ring.cursor_at_end()
    assert ring.read_new(late) == ([], [])
    assert not ring.wait(late, timeout=0.01)
    ring.push_audio(ramp_chunk(100 * 1600, 1600))
    assert ring.wait(late, timeout=0.01)


def test_wait_is_woken_by_close():
    ring = SyncRingBuffer(1.0)
    cur = ring.cursor_at_end()
    threading.Timer(0.05, ring.close).start()
    assert ring.wait(cur, timeout=5.0) is False
    assert ring.closed


def test_concurrent_writers_and_a_reader():
    ring = SyncRingBuffer(0.5, video_seconds=0.1)
    cur = Cursor()
    seen_f, seen_c = [], []
    stop = threading.Event()

    def video():
        for i in range(600):
            ring.push_frame(frame(i, fps=1000.0, shape=(4, 4, 3)))

    def audio():
        for k in range(600):
            ring.push_audio(ramp_chunk(k * 48, 48))

    def reader():
        while not stop.is_set():
            ring.wait(cur, 0.01)
            f, c = ring.read_new(cur)
            seen_f.extend(x.index for x in f)
            seen_c.extend(x.t for x in c)

    threads = [threading.Thread(target=fn) for fn in (video, audio, reader)]
    for th in threads:
        th.start()
    threads[0].join()
    threads[1].join()
    stop.set()
    threads[2].join()
    f, c = ring.read_new(cur)
    seen_f.extend(x.index for x in f)
    seen_c.extend(x.t for x in c)
    assert seen_f == sorted(seen_f) and len(seen_f) + cur.frames_missed == 600
    assert seen_c == sorted(seen_c) and len(seen_c) + cur.chunks_missed == 600
    assert ring.stats().frames_in_buffer <= 101


def test_merge_chunks_joins_contiguous_audio_only():
    a = ramp_chunk(0, 480)
    b = ramp_chunk(480, 480)
    c = ramp_chunk(2000, 480)  # after a gap
    merged = merge_chunks([a, b, c])
    assert len(merged) == 2
    assert merged[0].t == 0 and np.array_equal(merged[0].samples, np.arange(960, dtype=np.float32))
    assert merged[1] is c
    assert merge_chunks([]) == []
