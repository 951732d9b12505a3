"""onnxruntime sessions: the CUDA execution provider when it works, CPU otherwise.

``onnxruntime-gpu`` lists CUDA as *available* even on machines without CUDA
libraries, and asking for it then prints errors before falling back.  We probe
quietly (logger severity raised during the attempt) and report the provider
that actually runs, so the UI and logs can show it.

onnxruntime is imported here only, after its telemetry is switched off
(:mod:`emotiond.privacy`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from emotiond import privacy
from emotiond.errors import ModelError

_lock = threading.Lock()
_cuda_works: bool | None = None  # probed once per process


@dataclass
class OrtModel:
    session: object  # onnxruntime.InferenceSession
    provider: str  # "CUDAExecutionProvider" or "CPUExecutionProvider"
    input_name: str
    output_names: list[str]

    def run(self, x):
        return self.session.run(self.output_names, {self.input_name: x})


def _import_ort():
    """onnxruntime, with its telemetry off (set before the import; see emotiond.privacy)."""
    privacy.quiet_onnxruntime()
    import onnxruntime as ort

    privacy.disable_onnxruntime_events(ort)
    return ort


def _options(ort, threads: int):
    so = ort.SessionOptions()
    so.log_severity_level = 3  # errors only; the CUDA probe would otherwise shout
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return so


def load(path: Path, provider: str = "auto", threads: int = 1) -> OrtModel:
    """Open an ONNX model.  ``provider`` is "auto", "cuda" or "cpu".

    "cuda" fails with a clear error when CUDA cannot run; "auto" falls back to CPU.
    """
    global _cuda_works
    ort = _import_ort()

    ort.set_default_logger_severity(3)  # warnings off; errors still reach stderr
    want_cuda = provider in ("auto", "cuda") and "CUDAExecutionProvider" in ort.get_available_providers()
    if provider == "cuda" and not want_cuda:
        raise ModelError(
            "the CUDA execution provider is not available in this onnxruntime",
            "install onnxruntime-gpu with `pip install 'emotiond[cuda]'` or use --provider cpu",
        )
    if provider == "cuda" and _cuda_works is False:
        raise ModelError(
            "the CUDA execution provider could not start in this process (CUDA or cuDNN libraries missing?)",
            "install them with `pip install 'emotiond[cuda]'` or use --provider cpu",
        )
    try:
        if want_cuda and _cuda_works is not False:
            with _lock:
                # A missing CUDA/cuDNN library is logged at ERROR by the provider bridge before
                # onnxruntime falls back; we report the outcome ourselves, so silence it here.
                ort.set_default_logger_severity(4)
                try:
                    sess = ort.InferenceSession(
                        str(path),
                        sess_options=_options(ort, threads),
                        providers=["CUDAExecutionProvider", "CPUExecutionProvider"],
                    )
                except Exception:  # CUDA libraries missing or broken: fall through to CPU
                    sess = None
                finally:
                    ort.set_default_logger_severity(3)
                ok = sess is not None and sess.get_providers()[0] == "CUDAExecutionProvider"
                _cuda_works = ok
            if ok:
                return _wrap(sess)
            if provider == "cuda":
                raise ModelError(
                    "the CUDA execution provider could not start (CUDA 12/13 or cuDNN 9 libraries missing?)",
                    "install them with `pip install 'emotiond[cuda]'` or use --provider cpu",
                )
        sess = ort.InferenceSession(
            str(path), sess_options=_options(ort, threads), providers=["CPUExecutionProvider"]
        )
        return _wrap(sess)
    except ModelError:
        raise
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise ModelError(
            f"onnxruntime cannot load {path}: {first}",
            "the file is corrupt; restore it with `git checkout -- models/`",
        ) from None


def _wrap(sess) -> OrtModel:
    return OrtModel(
        session=sess,
        provider=sess.get_providers()[0],
        input_name=sess.get_inputs()[0].name,
        output_names=[o.name for o in sess.get_outputs()],
    )
