"""Levers on the TFLite files, measured side by side in one process (issue #6's lever table).

    python -m egeunet.benchmarks.tflite_levers composition     # where a file's bytes go
    python -m egeunet.benchmarks.tflite_levers weight-storage  # the float weights int8 leaves: f32 / f16 / int8
    python -m egeunet.benchmarks.tflite_levers layernorm       # LayerNorm formulations in the graph
    python -m egeunet.benchmarks.tflite_levers stages          # time of encoder prefixes vs the whole model
    python -m egeunet.benchmarks.tflite_levers percentile      # int8-full activation ranges

Latencies here are interleaved in one process (1 thread, batch 1, p50) so the variants of
one table see the same machine; ``egeunet-bench`` is the reference for absolute latency.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _interp(model: bytes | Path, threads: int = 1):
    from egeunet.runtimes.litert_runtime import load_interpreter_class

    kw = {"model_path": str(model)} if isinstance(model, Path) else {"model_content": model}
    interp = load_interpreter_class()(num_threads=threads, **kw)
    interp.allocate_tensors()
    return interp


def interleaved_p50(models: dict[str, bytes | Path], rounds: int = 5, runs: int = 20) -> dict[str, float]:
    """p50 ms of each model, timed in alternating rounds on the same random pixels."""
    its = {}
    for name, m in models.items():
        it = _interp(m)
        i = it.get_input_details()[0]
        it.set_tensor(i["index"], np.random.default_rng(0).integers(0, 256, i["shape"]).astype(i["dtype"]))
        for _ in range(5):
            it.invoke()
        its[name] = it
    times: dict[str, list[float]] = {n: [] for n in its}
    for _ in range(rounds):
        for name, it in its.items():
            for _ in range(runs):
                t0 = time.perf_counter()
                it.invoke()
                times[name].append((time.perf_counter() - t0) * 1000)
    return {n: float(np.median(v)) for n, v in times.items()}


def iou_vs_torch(model: bytes | Path, images: np.ndarray, ref_logits: np.ndarray) -> float:
    it = _interp(model)
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    inter = union = 0
    for img, ref in zip(images, ref_logits):
        it.set_tensor(i["index"], img[None].astype(i["dtype"]))
        it.invoke()
        a, b = it.get_tensor(o["index"])[0, :, :, 0] >= 0, ref >= 0
        inter, union = inter + (a & b).sum(), union + (a | b).sum()
    return float(inter / union)


def partitions(model: bytes | Path) -> int:
    from egeunet.export.tflite_export import op_counts

    return op_counts(_interp(model)).get("DELEGATE", 0)


def _table(head: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _setup(n_parity: int = 64):
    from egeunet.data import resolve_data_root
    from egeunet.export.calibration import parity_images
    from egeunet.export.tf_graph import TFEGEUNet
    from egeunet.export.verify import reference_logits
    from egeunet.model.checkpoint import load_checkpoint

    model, pre, _ = load_checkpoint(None)
    images, _ = parity_images(n_parity, pre.size, resolve_data_root(None))
    return model, pre, TFEGEUNet, images, reference_logits(model, images, pre)


def composition(exports: Path) -> str:
    """Bytes of each .tflite by kind: constants per type, quantization parameters, the rest."""
    from tensorflow.lite.tools import flatbuffer_utils as fu

    names = {0: "float32", 1: "float16", 2: "int32", 9: "int8"}
    rows = []
    for path in sorted(exports.glob("tflite-*/*.tflite")):
        m = fu.read_model(str(path))
        g = m.subgraphs[0]
        const: dict[str, int] = {}
        for t in g.tensors:
            data = m.buffers[t.buffer].data
            if data is not None and len(data):
                const[names.get(t.type, str(t.type))] = const.get(names.get(t.type, str(t.type)), 0) + len(data)
        quant = sum(12 * len(t.quantization.scale) for t in g.tensors
                    if t.quantization is not None and t.quantization.scale is not None)  # float32 scale + int64 zp
        size = path.stat().st_size
        rows.append([path.name, f"{size:,}", len(g.operators), len(g.tensors),
                     ", ".join(f"{k} {v:,}" for k, v in sorted(const.items())), f"{quant:,}",
                     f"{size - sum(const.values()) - quant:,}"])
    return _table(["file", "bytes", "ops", "tensors", "constants (bytes)", "quantization params (≈ bytes)",
                   "structure (rest)"], rows)


def _store_float16(src: Path, dst: Path, min_elements: int = 256) -> None:
    """The rejected alternative to ``tflite_compact.float_weights_to_int8``: the same float32
    4-D weights stored as float16 + DEQUANTIZE (TFLite's own fp16 pattern)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils as fu

    model = fu.read_model(str(src))
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.DEQUANTIZE
    code.version = 3
    model.operatorCodes.append(code)
    g, ops = model.subgraphs[0], []
    for k in range(len(g.tensors)):
        t, buf = g.tensors[k], model.buffers[g.tensors[k].buffer]
        if t.type != schema.TensorType.FLOAT32 or buf.data is None or len(t.shape) != 4 \
                or int(np.prod(t.shape)) < min_elements:
            continue
        half = schema.TensorT()
        half.shape, half.type, half.name = t.shape, schema.TensorType.FLOAT16, f"h{k}".encode()
        hbuf = schema.BufferT()
        hbuf.data = np.frombuffer(np.frombuffer(bytes(buf.data), np.float32).astype(np.float16).tobytes(), np.uint8)
        model.buffers.append(hbuf)
        half.buffer = len(model.buffers) - 1
        g.tensors.append(half)
        buf.data, t.buffer = None, 0
        op = schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = len(model.operatorCodes) - 1, np.array([len(g.tensors) - 1], np.int32), \
            np.array([k], np.int32)
        ops.append(op)
    g.operators = ops + list(g.operators)
    fu.write_model(model, str(dst))


def weight_storage() -> str:
    from egeunet.export import tflite_convert as tc
    from egeunet.export.tflite_compact import compact, float_weights_to_int8, restore_float_weights

    model, pre, TFEGEUNet, images, ref = _setup()
    with tempfile.TemporaryDirectory() as tmp:
        raw, f32, f16, i8 = (Path(tmp) / f"{n}.tflite" for n in ("raw", "f32", "f16", "i8"))
        graph = TFEGEUNet(model, pre)
        raw.write_bytes(tc.dynamic_range_model(graph))
        compact(raw, f32)
        restore_float_weights(f32, f32, graph.norm_weights)  # as the export: norm statistics exact
        _store_float16(f32, f16)
        compact(f16, f16)
        float_weights_to_int8(f32, i8, keep=graph.norm_weights)
        files = {"kept float32 (TensorFlow's dynamic range)": f32, "stored float16 + DEQUANTIZE": f16,
                 "stored int8 + DEQUANTIZE (the export)": i8}
        ms = interleaved_p50(files)
        rows = [[n, f"{p.stat().st_size:,}", partitions(p), f"{ms[n]:.2f}", f"{iou_vs_torch(p, images, ref):.4f}"]
                for n, p in files.items()]
    return _table(["int8 file: the weights the quantizer leaves float", "bytes", "XNNPACK partitions",
                   "ms p50 (interleaved)", f"IoU vs torch ({len(images)} images)"], rows)


def layernorm() -> str:
    import tensorflow as tf

    from egeunet.export import tflite_convert as tc

    model, pre, TFEGEUNet, images, ref = _setup(8)

    class ConvMeanLN(TFEGEUNet):  # channel means as 1x1 convolutions
        def layer_norm(self, x, norm, affine=True):
            c = int(x.shape[-1])
            k = np.full((1, 1, c, 1), 1.0 / c, np.float32)
            centred = x - tf.nn.conv2d(x, k, 1, "VALID")
            y = centred * tf.math.rsqrt(tf.nn.conv2d(centred * centred, k, 1, "VALID") + norm.eps)
            return y * norm.weight.detach().numpy() + norm.bias.detach().numpy() if affine else y

    class SquaredDifferenceLN(TFEGEUNet):
        def layer_norm(self, x, norm, affine=True):
            mean = tf.reduce_mean(x, -1, keepdims=True)
            var = tf.reduce_mean(tf.math.squared_difference(x, mean), -1, keepdims=True)
            y = (x - mean) * tf.math.rsqrt(var + norm.eps)
            return y * norm.weight.detach().numpy() + norm.bias.detach().numpy() if affine else y

    variants = {"MEAN (the export)": TFEGEUNet, "1x1 conv means": ConvMeanLN, "SQUARED_DIFFERENCE": SquaredDifferenceLN}
    files = {}
    for name, cls in variants.items():
        g = cls(model, pre)
        files[f"{name}, fp32"] = tc.float_model(g)
        files[f"{name}, int8"] = tc.dynamic_range_model(g)
    ms = interleaved_p50(files)
    return _table(["LayerNorm in the TFLite graph", "ms p50 (interleaved)", f"IoU vs torch ({len(images)} images)"],
                  [[n, f"{ms[n]:.2f}", f"{iou_vs_torch(b, images, ref):.4f}"] for n, b in files.items()])


def stages() -> str:
    import tensorflow as tf

    model, pre, TFEGEUNet, _, _ = _setup(1)
    g = TFEGEUNet(model, pre)

    def encoder(k):
        def f(pixels):
            out = (pixels - g.mean) * g.inv_std
            for i in range(k):
                out = g.gelu(tf.nn.max_pool2d(g.group_norm(g.stage(out, model.encoder[i]), model.encoder_norms[i]),
                                              2, 2, "VALID"))
            return out
        return f

    fns = {f"encoder stages 0..{k - 1}": encoder(k) for k in (1, 3, 5)}
    fns["whole model"] = g.__call__
    spec = [tf.TensorSpec([1, pre.size, pre.size, 3], tf.float32)]
    files = {n: tf.lite.TFLiteConverter.from_concrete_functions(
        [tf.function(f, input_signature=spec).get_concrete_function()], g).convert() for n, f in fns.items()}
    ms = interleaved_p50(files)
    return _table(["fp32 graph prefix", "ms p50 (interleaved)"], [[n, f"{v:.2f}"] for n, v in ms.items()])


def percentile() -> str:
    from egeunet.data import resolve_data_root
    from egeunet.export import calibration
    from egeunet.export import tflite_convert as tc
    from egeunet.export.tflite_export import FULL_INT8_FLOAT_OPS, FULL_INT8_GRAPH
    from egeunet.preprocess import resize_image

    model, pre, TFEGEUNet, images, ref = _setup(128)
    g = TFEGEUNet(model, pre, **FULL_INT8_GRAPH)
    rows = []
    for n in (200, 100):
        calib, _ = calibration.calibration_images(None, n, pre.size, resolve_data_root(None))
        calib = np.stack([resize_image(im, pre.size) for im in calib])
        for pct in (None, 99.0, 95.0):
            cal = tc.calibrate(g, calib, pct)
            q = tc.quantize(cal, tc.nodes_matching(tc.op_outputs(cal), op_types=FULL_INT8_FLOAT_OPS))
            rows.append([n, "global min/max (TensorFlow)" if pct is None else f"{pct:g}th percentile",
                         f"{iou_vs_torch(q, images, ref):.4f}"])
    return _table(["calibration images", "activation ranges", f"int8-full IoU vs torch ({len(images)} images)"], rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("lever", choices=("composition", "weight-storage", "layernorm", "stages", "percentile"))
    p.add_argument("--exports", default="exports", help="for composition (default %(default)s)")
    a = p.parse_args(argv)
    runs = {"composition": lambda: composition(Path(a.exports)), "weight-storage": weight_storage,
            "layernorm": layernorm, "stages": stages, "percentile": percentile}
    print(runs[a.lever]())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
