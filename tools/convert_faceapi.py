#!/usr/bin/env python3
"""Rebuild ``models/face_emotion_faceapi.onnx`` from ``@vladmandic/face-api@1.7.15`` (npm, MIT).

face-api's expression model (``model/face_expression_model.bin`` + its weights manifest) is a
TensorFlow.js graph: four dense blocks of depthwise-separable convolutions (face-api's
``FaceFeatureExtractor``), a 7×7 average pool and a 256→7 fully connected layer; input
112×112 RGB, ``(x − [122.782, 117.001, 104.298]) / 255``; softmax over neutral, happy, sad,
angry, fearful, disgusted, surprised.  The weights are uint8-quantised (value = q · scale +
min, as tfjs decodes them).  This script:

1. ``npm pack @vladmandic/face-api@1.7.15`` into ``.cache/npm/`` (skipped when there) and
   checks the tarball's sha256;
2. decodes the weights and writes the same network with ``onnx.helper`` (NHWC float32 input
   [n, 112, 112, 3], RGB 0–255; normalisation inside the graph; softmax output [n, 7]);
3. with ``--verify``, runs the package's own JS runtime (its bundled tfjs, CPU backend,
   ``faceapi.nets.faceExpressionNet``) on the same random and real crops in node and compares
   (tools/faceapi_reference.mjs);
4. ``--check-only``: compares a fresh conversion with the committed file.

Needs ``onnx`` (the ``train`` extra) and node/npm at build time only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "npm"
OUT = ROOT / "models" / "face_emotion_faceapi.onnx"
PACKAGE = "@vladmandic/face-api@1.7.15"
TARBALL = "vladmandic-face-api-1.7.15.tgz"
TARBALL_SHA256 = "0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031"
MEAN_RGB = (122.782, 117.001, 104.298)
CLASSES = ["neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised"]


def fetch(cache: Path = CACHE) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    tgz = cache / TARBALL
    if not tgz.is_file():
        subprocess.run(["npm", "pack", PACKAGE, "--pack-destination", str(cache)], check=True)
    digest = hashlib.sha256(tgz.read_bytes()).hexdigest()
    if TARBALL_SHA256 and digest != TARBALL_SHA256:
        raise SystemExit(f"{tgz}: sha256 {digest} != expected {TARBALL_SHA256}; delete it and rerun")
    return tgz


def read_weights(tgz: Path) -> dict[str, np.ndarray]:
    with tarfile.open(tgz) as tf:
        manifest = json.load(tf.extractfile("package/model/face_expression_model-weights_manifest.json"))
        data = tf.extractfile("package/model/face_expression_model.bin").read()
    out, off = {}, 0
    for group in manifest:
        for w in group["weights"]:
            n = int(np.prod(w["shape"]))
            q = w.get("quantization")
            if q:
                raw = np.frombuffer(data, dtype=np.uint8, count=n, offset=off)
                off += n
                val = raw.astype(np.float32) * np.float32(q["scale"]) + np.float32(q["min"])
            else:
                val = np.frombuffer(data, dtype=np.float32, count=n, offset=off)
                off += 4 * n
            out[w["name"]] = val.reshape(w["shape"]).astype(np.float32)
    if off != len(data):
        raise SystemExit(f"weights file has {len(data)} bytes, the manifest describes {off}")
    return out


def build(weights: dict[str, np.ndarray]):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr, np.float32), name))
        return name

    def conv(x, name, w_hwio, bias, stride, group=1):
        w = np.transpose(w_hwio, (3, 2, 0, 1))  # HWIO -> OIHW
        out = f"{name}/out"
        nodes.append(helper.make_node("Conv", [x, const(f"{name}/w", w), const(f"{name}/b", bias)], [out],
                                      strides=[stride, stride], auto_pad="SAME_UPPER", group=group))
        return out

    def sep(x, prefix, stride):
        dw = weights[f"{prefix}/depthwise_filter"]  # [3, 3, C, 1]
        c = dw.shape[2]
        dw_oihw = np.transpose(dw, (2, 3, 0, 1))  # [C, 1, 3, 3]
        y = f"{prefix}/dw"
        nodes.append(helper.make_node("Conv", [x, const(f"{prefix}/dw_w", dw_oihw)], [y], strides=[stride, stride],
                                      auto_pad="SAME_UPPER", group=c))
        pw = weights[f"{prefix}/pointwise_filter"]  # [1, 1, C, O]
        return conv(y, f"{prefix}/pw", pw, weights[f"{prefix}/bias"], 1)

    def add(a, b, name):
        nodes.append(helper.make_node("Add", [a, b], [name]))
        return name

    def relu(a, name):
        nodes.append(helper.make_node("Relu", [a], [name]))
        return name

    def dense(x, k, first):
        p = f"dense{k}"
        if first:
            o1 = conv(x, f"{p}/conv0", weights[f"{p}/conv0/filters"], weights[f"{p}/conv0/bias"], 2)
        else:
            o1 = sep(x, f"{p}/conv0", 2)
        o1 = relu(o1, f"{p}/out1")
        o2 = sep(o1, f"{p}/conv1", 1)
        i3 = relu(add(o1, o2, f"{p}/s12"), f"{p}/in3")
        o3 = sep(i3, f"{p}/conv2", 1)
        i4 = relu(add(f"{p}/s12", o3, f"{p}/s123"), f"{p}/in4")
        o4 = sep(i4, f"{p}/conv3", 1)
        return relu(add(f"{p}/s123", o4, f"{p}/s1234"), f"{p}/out")

    nodes.append(helper.make_node("Transpose", ["input"], ["nchw"], perm=[0, 3, 1, 2]))
    nodes.append(helper.make_node("Sub", ["nchw", const("mean", np.array(MEAN_RGB, np.float32).reshape(1, 3, 1, 1))], ["centred"]))
    nodes.append(helper.make_node("Div", ["centred", const("scale", np.float32(255.0))], ["x"]))
    x = "x"
    for k in range(4):
        x = dense(x, k, k == 0)
    nodes.append(helper.make_node("AveragePool", [x], ["pooled"], kernel_shape=[7, 7], strides=[2, 2]))
    nodes.append(helper.make_node("Flatten", ["pooled"], ["flat"], axis=1))
    nodes.append(helper.make_node("Gemm", ["flat", const("fc/w", weights["fc/weights"]), const("fc/b", weights["fc/bias"])], ["logits"]))
    nodes.append(helper.make_node("Softmax", ["logits"], ["probs"], axis=1))
    graph = helper.make_graph(
        nodes, "face_api_expression",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 112, 112, 3])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["n", 7])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="emotiond tools/convert_faceapi.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def verify(tgz: Path, onnx_bytes: bytes) -> float:
    """Max |onnx − face-api's own JS runtime| on random and real inputs."""
    import tempfile

    import onnxruntime as ort

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (4, 112, 112, 3)).astype(np.float32)
    work = Path(tempfile.mkdtemp())
    with tarfile.open(tgz) as tf:
        tf.extractall(work, filter="data")
    (work / "input.bin").write_bytes(x.tobytes())
    ref = ROOT / "tools" / "faceapi_reference.mjs"
    subprocess.run(["node", str(ref), str(work / "package"), str(work / "input.bin"), str(len(x)), str(work / "out.bin")],
                   check=True)
    js = np.frombuffer((work / "out.bin").read_bytes(), dtype=np.float32).reshape(len(x), 7)
    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    ours = sess.run(None, {"input": x})[0]
    return float(np.abs(ours - js).max())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--check-only", action="store_true")
    ap.add_argument("--verify", action="store_true", help="compare with face-api's own JS runtime (node)")
    args = ap.parse_args(argv)
    tgz = fetch()
    print(f"{tgz.name}: sha256 {hashlib.sha256(tgz.read_bytes()).hexdigest()}")
    data = build(read_weights(tgz))
    if args.verify:
        print(f"max |onnx - face-api JS| = {verify(tgz, data):.3g}")
    if args.check_only:
        same = args.out.is_file() and args.out.read_bytes() == data
        print(f"{args.out}: {'identical to' if same else 'DIFFERENT from'} a fresh conversion")
        return 0 if same else 1
    args.out.write_bytes(data)
    print(f"wrote {args.out}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
