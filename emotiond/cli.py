"""Command line: ``emotiond [gui|run|replay|batch|report|devices|models|config|eval] …``.

Every user-facing failure is an :class:`~emotiond.errors.EmotiondError`
printed as one line plus a hint, with a non-zero exit status.  An unexpected
exception (a bug) is written to a crash report and named in one line.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading

# One BLAS thread: the models are small, the second core belongs to the pipeline's other stage
# (multi-threaded OpenBLAS made the voice features ~5x slower on a busy 2-core machine).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
from pathlib import Path

from emotiond import __version__
from emotiond.errors import EmotiondError, SinkError, SourceError

from emotiond.app.specs import DEMO, crash_report, demo_path, resolve_source_spec  # noqa: F401 (public names)


def _add_common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("configuration (see `emotiond config`)")
    g.add_argument("--config", metavar="FILE", help="TOML configuration file")
    g.add_argument("--provider", choices=["auto", "cpu", "cuda"], help="onnxruntime execution provider")
    g.add_argument("--max-faces", type=int, metavar="N", help="most faces analysed per frame")
    g.add_argument("--smoothing", type=float, metavar="SECONDS", help="fusion smoothing time constant (0 = off)")
    g.add_argument("--no-voice", action="store_true", help="ignore the audio track / microphone")
    g.add_argument("--models-dir", metavar="DIR", help="folder with the ONNX models and their cards")
    _add_verbose(p)


def _add_verbose(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                   help="log more on stderr (-v: info, -vv: debug; or EMOTIOND_LOG_LEVEL=info|debug)")


def _config_from_args(args):
    from emotiond.config import load_config

    overrides = {
        "provider": getattr(args, "provider", None),
        "face.max_faces": getattr(args, "max_faces", None),
        "fusion.smoothing_tau": getattr(args, "smoothing", None),
        "models_dir": getattr(args, "models_dir", None),
        "gui.log": getattr(args, "gui_log", None),
    }
    if getattr(args, "no_voice", False):
        overrides["voice.enabled"] = False
    return load_config(getattr(args, "config", None), overrides)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emotiond",
        description="Real-time audio-visual emotion recognition. With no command: the GUI on the camera "
        "(or the bundled demo clip when there is no camera); without a screen, a headless run of the same.",
    )
    parser.add_argument("--version", action="version", version=f"emotiond {__version__}")
    _add_verbose(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("run", help="analyse a source headless and log the results")
    p.add_argument(
        "source",
        nargs="?",
        default="auto",
        help="video/audio file, image, image folder, recorded session folder, `camera[:N]`, `demo`, "
        "or `auto` (default: the camera when present, else the demo clip)",
    )
    p.add_argument("--log", metavar="FILE", help="write results to FILE (.jsonl or .csv); default: JSONL on stdout")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--append", action="store_true", help="add to an existing log instead of refusing")
    mode.add_argument("--overwrite", action="store_true", help="replace an existing log")
    p.add_argument("--clock", choices=["fast", "realtime", "deterministic"], default=None,
                   help="fast: as fast as possible (default for files); realtime: paced at media time; "
                   "deterministic: fast, with byte-identical logs on every run (recorded sessions)")
    p.add_argument("--fast", action="store_const", const="fast", dest="clock", help="same as --clock fast")
    p.add_argument("--record", metavar="DIR",
                   help="record the session into DIR (media.mp4, predictions.jsonl, metadata.json); "
                   "a new folder inside DIR when DIR is not empty")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--console", action="store_true",
                   help="print a readable line per second instead of JSON on stdout")
    p.add_argument("--face-features", action="store_true",
                   help="JSONL: also log each face's 52 blendshapes and 478 landmarks (large)")
    _add_focus(p)
    _add_common(p)

    p = sub.add_parser("gui", help="the window: video with face overlay, emotion bars, timeline (needs a screen)")
    p.add_argument("source", nargs="?", default="auto",
                   help="video/audio file, image, recorded session folder, `camera[:N]`, `demo`, "
                   "or `auto` (default: the camera when present, else the demo clip)")
    p.add_argument("--log", metavar="FILE", dest="gui_log",
                   help="append every result to FILE (.jsonl or .csv, the log `emotiond run --log` writes; "
                   "never truncated); also the setting gui.log")
    _add_common(p)

    p = sub.add_parser("replay", help="replay a recorded session through the engine")
    p.add_argument("session", help="a session folder made by `emotiond run camera --record DIR`")
    p.add_argument("--log", metavar="FILE", help="write results to FILE (.jsonl or .csv); default: JSONL on stdout")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--append", action="store_true", help="add to an existing log instead of refusing")
    mode.add_argument("--overwrite", action="store_true", help="replace an existing log")
    p.add_argument("--clock", choices=["realtime", "fast", "deterministic"], default="realtime",
                   help="realtime (default): paced as recorded; fast: as fast as possible; "
                   "deterministic: fast, with byte-identical logs on every run")
    p.add_argument("--fast", action="store_const", const="fast", dest="clock", help="same as --clock fast")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--console", action="store_true",
                   help="print a readable line per second instead of JSON on stdout")
    _add_focus(p)
    _add_common(p)

    p = sub.add_parser("batch", help="analyse many recordings: one log each + summary.csv, local processes or Ray")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="files, folders (searched recursively), globs, recorded sessions, or @LIST (one input a line)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the logs and summary.csv/summary.jsonl")
    p.add_argument("--redo", action="store_true", help="analyse inputs again even when their log is complete")
    p.add_argument("--workers", type=int, metavar="N", help="worker processes (Ray: actors); default: one per core")
    p.add_argument("--ray", nargs="?", const=True, default=None, metavar="ADDRESS",
                   help="run on a Ray cluster (needs `pip install 'emotiond[cluster]'`); no ADDRESS: a local Ray")
    p.add_argument("--clock", choices=["fast", "deterministic"], default="deterministic",
                   help="as for `emotiond run` (the same for files; sessions: deterministic is reproducible)")
    p.add_argument("--face-features", action="store_true", help="also log blendshapes and landmarks per face")
    p.add_argument("--no-progress", action="store_true", help="no progress display")
    _add_common(p)

    p = sub.add_parser("report", help="a self-contained HTML report of a log, a session or a batch folder")
    p.add_argument("target", metavar="LOG_OR_SESSION_OR_BATCHDIR")
    p.add_argument("--out", default="report.html", metavar="FILE", help="the HTML file to write (default report.html)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report")

    p = sub.add_parser("devices", help="list cameras and microphones")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("eval", help="score the face or voice model on a labelled dataset")
    p.add_argument("data_dir", nargs="+", help="face: one sub-folder of images per class; voice: one or more corpora "
                   "(folder-per-label clips, or RAVDESS / CREMA-D / EmoFilm / Polish / EMO-DB / IEMOCAP layouts), "
                   "each reported on its own and pooled")
    p.add_argument("--modality", choices=["face", "voice"], required=True)
    p.add_argument("--layout", default="auto",
                   choices=["auto", "folder", "ravdess", "crema-d", "emofilm", "polish", "emodb", "iemocap"],
                   help="voice dataset layout (default: detected)")
    p.add_argument("--baseline", default="speaker", choices=["speaker", "none"],
                   help="voice: normalise each speaker against their own clips (a warmed-up session, default) "
                        "or against the population only (a cold start)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _add_common(p)

    p = sub.add_parser("train-voice", add_help=False,
                       help="train the voice-emotion model (python -m emotiond.training.voice; needs the `train` extra)")

    p = sub.add_parser("models", help="list the bundled models and verify their files")
    p.add_argument("--models-dir", metavar="DIR")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("config", help="print the effective configuration")
    p.add_argument("--config", metavar="FILE")
    return parser


def _add_focus(p) -> None:
    p.add_argument("--focus", type=int, metavar="ID",
                   help="face track id whose result the frame-level label follows while nobody visible is "
                   "talking (default: the largest face); the active speaker always comes first")


def cmd_run(args) -> int:
    from emotiond.app import Analysis
    from emotiond.sinks import JsonlSink

    config = _config_from_args(args)
    if not args.log and _stdout_closed():
        raise SinkError("standard output is closed, so results have nowhere to go",
                        "pass --log FILE to write them to a file, or leave stdout open (no `>&-`)")
    _stop_on_termination()
    an = Analysis.open(args.source, config, clock=args.clock)
    try:
        an.load()  # models first: a model problem must not cost the user an existing log (--overwrite)
        if getattr(args, "record", None):
            an.check_record(args.record)  # a refused --record must not cost an existing log either
        if getattr(args, "focus", None) is not None:
            an.engine.set_focus(args.focus)
        if args.log:
            mode = "append" if args.append else "overwrite" if args.overwrite else "new"
            sink = an.open_log(args.log, mode, face_features=getattr(args, "face_features", False))
            for note in getattr(sink, "notes", []):
                print(f"emotiond: warning: {note}", file=sys.stderr)
        if args.console:
            an.add_sink(_ConsoleSink())
        elif not args.log:
            sink = an.add_sink(JsonlSink.to_stream(sys.stdout))
            sink.face_features = getattr(args, "face_features", False)
        if getattr(args, "record", None):
            path = an.record(args.record)
            print(f"emotiond: recording to {path}", file=sys.stderr)
        stats = an.run(progress=None if not args.no_progress else False)
        provider = an.provider
    finally:
        an.close()
        rec = an.recorder
        if rec is not None and rec.path is not None:  # also when the run ended in an error
            c = rec.counters()
            if c["frames_written"] or c["audio_samples_written"]:
                print(f"emotiond: session saved in {rec.path} ({c['frames_written']} frames written, {c['frames_dropped']} "
                      f"dropped); replay it with `emotiond replay {rec.path}`", file=sys.stderr)
            else:
                print(f"emotiond: nothing was recorded in {rec.path} (no media written)", file=sys.stderr)
    for w in stats.warnings:
        print(f"emotiond: warning: {w}", file=sys.stderr)
    where = f" → {args.log}" if args.log else ""
    print(
        f"emotiond: {stats.frames} frames ({stats.frames_with_face} with a face), {stats.results} results in "
        f"{stats.wall:.1f} s ({stats.fps:.1f} frames/s, onnxruntime {provider}){where}",
        file=sys.stderr,
    )
    if stats.stopped == "interrupted":
        return 128 + (_TERMINATED_BY or signal.SIGINT)
    return 0


_TERMINATED_BY: int | None = None


def _stop_on_termination() -> None:
    """SIGTERM (`timeout`, `systemctl stop`, `docker stop`) and SIGHUP (the terminal closed) end a
    run the way Ctrl-C does: the run stops, logs are closed and a recording is finalised
    (status ``complete``, nothing lost); the exit status is 128 + the signal."""

    def handler(signum, frame):
        global _TERMINATED_BY
        _TERMINATED_BY = signum
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            signal.signal(sig, handler)


def _stdout_closed() -> bool:
    """``emotiond run clip >&-``: Python starts with no sys.stdout when fd 1 is closed."""
    if sys.stdout is None:
        return True
    try:
        os.fstat(sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        return True
    return False


class _ConsoleSink:
    """One human-readable line per second of media time (the headless demo)."""

    def __init__(self, every: float = 1.0):
        self.every = every
        self._next = None

    def write(self, result) -> None:
        if self._next is not None and result.t < self._next:
            return
        self._next = result.t + self.every
        from emotiond.labels import EMOTIONS

        faces = ", ".join(
            f"#{f.track_id} {f.label or EMOTIONS[int(f.emotion.argmax())]} {f.emotion.max():.2f}"
            for f in result.faces if f.emotion is not None
        ) or "no face"
        if result.faces_unanalysed:
            faces += f" (+{result.faces_unanalysed} not analysed: raise face.max_faces)"
        voice = "—"
        if result.voice is not None:
            voice = f"{EMOTIONS[int(result.voice.argmax())]} {result.voice.max():.2f}"
        elif result.speech is not None:
            voice = f"speech {result.speech:.2f}"
        fused = "—"
        if result.fused is not None:
            shares = " ".join(f"{k} {v:.0%}" for k, v in result.fused.shares.items())
            fused = f"{result.fused.label.upper()} {result.fused.confidence:.2f} [{shares}]"
        print(f"{result.t:7.1f}s  face: {faces:<24} voice: {voice:<14} → {fused}", flush=True)

    def close(self) -> None:
        pass


def cmd_replay(args) -> int:
    from emotiond.sources.session import is_session

    if not Path(args.session).exists():
        raise SourceError(f"{args.session}: no such folder", "pass a session folder made by `emotiond run … --record DIR`")
    if not is_session(args.session):
        raise SourceError(f"{args.session} is not a recorded session (no metadata.json)",
                          "pass a folder made by `emotiond run camera --record DIR`")
    args.source, args.record = args.session, None
    return cmd_run(args)


def cmd_devices(args) -> int:
    from emotiond.capture.devices import describe_devices

    text, status = describe_devices(as_json=args.json)
    print(text)
    return status


def cmd_models(args) -> int:
    from emotiond import registry

    root = Path(args.models_dir) if args.models_dir else registry.default_models_dir()
    rows = []
    bad = 0
    found = set()
    for card_path in sorted(root.glob("*.card.toml")):
        name = card_path.name.removesuffix(".card.toml")
        found.add(name)
        try:
            c = registry.card(name, root)
        except EmotiondError as exc:
            bad += 1
            rows.append({"name": name, "file": None, "task": "?", "size": 0, "sha256": "", "classes": [],
                         "licence": None, "status": f"unreadable card ({exc.message})"})
            continue
        problem = registry.check(c)
        bad += problem is not None
        rows.append({
            "name": c.name,
            "file": c.path.name,
            "task": c.task,
            "size": c.size,
            "sha256": c.sha256,
            "classes": list(c.classes),
            "licence": c.data.get("licence"),
            "status": "ok" if problem is None else problem,
        })
    for name in sorted(set(registry.REQUIRED) - found):
        bad += 1
        rows.append({"name": name, "file": None, "task": registry.REQUIRED[name], "size": 0, "sha256": "",
                     "classes": [], "licence": None, "status": "missing (no card)"})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"models in {root}")
        for r in rows:
            status = "ok (sha256 verified)" if r["status"] == "ok" else f"PROBLEM: {r['status']}"
            licence = (r["licence"] or "?").split(" ")[0][:12].rstrip(",;")
            print(f"  {r['name']:<20} {r['task']:<15} {r['size'] / 1e6:6.2f} MB  {licence:<12} {status}")
            if r["classes"]:
                print(f"  {'':<20} classes: {', '.join(r['classes'])}")
        if not rows:
            print("  (no model cards found)")
    if bad:
        print(f"emotiond: {bad} model(s) missing or not as their cards say; restore them with `git checkout -- models/`",
              file=sys.stderr)
    return 1 if bad or not rows else 0


def cmd_eval(args) -> int:
    from emotiond import evaluate

    config = _config_from_args(args)
    if args.modality == "face":
        if len(args.data_dir) != 1:
            raise EmotiondError("face evaluation takes one folder", "give one folder of class sub-folders")
        result = evaluate.evaluate_face_dir(Path(args.data_dir[0]), config, progress=sys.stderr.isatty())
    else:
        result = evaluate.evaluate_voice_dir([Path(d) for d in args.data_dir], args.layout, baseline=args.baseline,
                                             config=config)
    if args.json:
        print(json.dumps({"modality": args.modality, **result.to_dict()}, indent=2))
    else:
        print(result.report())
    return 0


def cmd_train_voice(argv: list[str]) -> int:
    try:
        from emotiond.training.voice import main as train_main
    except ImportError as exc:
        raise EmotiondError(
            f"training needs packages that are not installed ({exc.name})",
            "install them with `pip install -e '.[train]'` (scikit-learn, onnx)",
        ) from None
    return train_main(argv)


def cmd_batch(args) -> int:
    from emotiond.batch import run_batch

    config = _config_from_args(args)
    res = run_batch(args.inputs, args.out, config, workers=args.workers, redo=args.redo, clock=args.clock,
                    face_features=args.face_features, ray=args.ray, progress=False if args.no_progress else None)
    for r in res.errors:
        print(f"emotiond: failed: {r['error']}", file=sys.stderr)
    how = "Ray" if args.ray else f"{res.workers} process(es) x {res.landmark_workers} landmark worker(s)"
    print(f"emotiond: batch: {len(res.rows)} inputs, {res.ok} ok ({res.skipped} already done), {len(res.errors)} failed "
          f"in {res.wall:.1f} s ({how}) → {res.out / 'summary.csv'}", file=sys.stderr)
    if res.interrupted:
        print("emotiond: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return 1 if res.errors else 0


def cmd_report(args) -> int:
    from emotiond.report import write_report

    path = write_report(args.target, args.out, overwrite=args.overwrite)
    print(f"emotiond: report → {path}", file=sys.stderr)
    return 0


def cmd_config(args) -> int:
    from emotiond.config import load_config

    cfg = load_config(args.config)
    print(json.dumps(cfg.model_dump(mode="json"), indent=2))
    return 0


def cmd_gui(args) -> int:
    from emotiond.gui import main as gui_main

    # the window loads the configuration itself, so a bad config file is shown there
    return gui_main(args.source, lambda: _config_from_args(args))


COMMANDS = {"replay": cmd_replay, "devices": cmd_devices, "run": cmd_run, "gui": cmd_gui, "models": cmd_models,
            "config": cmd_config, "eval": cmd_eval, "batch": cmd_batch, "report": cmd_report}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["train-voice"]:  # its own parser: python -m emotiond.training.voice
        try:
            return cmd_train_voice(argv[1:])
        except EmotiondError as exc:
            print(f"emotiond: error: {exc}", file=sys.stderr)
            return exc.exit_code
    args = parser.parse_args(argv)
    from emotiond import logs

    logs.setup(getattr(args, "verbose", 0))
    if args.command is None:
        from emotiond.gui import gui_available

        args = parser.parse_args(["gui", "auto"] if gui_available() else ["run", "auto", "--console"])
    try:
        return COMMANDS[args.command](args)
    except EmotiondError as exc:
        print(f"emotiond: error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  fix: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("emotiond: interrupted", file=sys.stderr)
        return 128 + (_TERMINATED_BY or signal.SIGINT)
    except BrokenPipeError:  # `emotiond … | head`: the reader has all it wanted
        try:
            sys.stdout = open(os.devnull, "w")  # no second error when Python flushes stdout at exit
        except OSError:
            pass
        return 0
    except Exception as exc:  # a bug: keep the terminal clean, keep the evidence
        report = crash_report(exc)
        where = f"; details in {report}" if report else ""
        print(f"emotiond: internal error: {exc.__class__.__name__}: {exc}{where}", file=sys.stderr)
        return 70
