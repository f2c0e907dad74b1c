"""Which weight costs EGE-UNet-BN's int8 file its parity when weights from 64 elements are stored
int8 (no error rule): the file stored from 256 up, then each class of the 64..255-element weights,
then each single weight, stored int8 on top; mask IoU vs PyTorch on the export's 64 parity images;
and each such weight's worst channel-slice error per quantization axis (ERR lines).

    python docs/experiments/2026-11-27b/bn_int8_bisect.py
"""
import functools, tempfile, numpy as np
from pathlib import Path
from egeunet.export import api, tflite_export
from egeunet.export.tflite_compact import float_weights_to_int8
from egeunet.benchmarks.tflite_levers import iou_vs_torch
from egeunet.export.calibration import parity_images
from egeunet.export.verify import reference_logits
from egeunet.model.checkpoint import load_checkpoint
from egeunet.data import resolve_data_root
from tensorflow.lite.tools import flatbuffer_utils as fu
from tensorflow.lite.python import schema_py_generated as s
names = {v: k for k, v in s.BuiltinOperator.__dict__.items() if not k.startswith('_')}
orig = tflite_export.float_weights_to_int8
tflite_export.float_weights_to_int8 = functools.partial(orig, min_elements=256)
out = Path(tempfile.mkdtemp()) / "o"
api.export("tflite", "int8", weights="egeunet-bn", out=out, min_iou=0.5)
F = next(out.glob("*.tflite"))
model, pre, _ = load_checkpoint("egeunet-bn")
images, _ = parity_images(64, pre.size, resolve_data_root(None))
ref = reference_logits(model, images, pre)
m = fu.read_model(str(F)); g = m.subgraphs[0]
classes = {}
for op in g.operators:
    n = names[max(m.operatorCodes[op.opcodeIndex].builtinCode, m.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode)]
    for pos, i in enumerate(op.inputs):
        t = g.tensors[i]; b = m.buffers[t.buffer]
        if t.type == 0 and b.data is not None and len(b.data) and len(t.shape) == 4 and 64 <= np.prod(t.shape) < 256:
            classes.setdefault(n, []).append(np.frombuffer(bytes(b.data), np.float32).reshape(t.shape).copy())
print("floor 256 file", iou_vs_torch(F, images, ref))
for n, arrs in classes.items():
    o = Path(tempfile.mkdtemp()) / "x.tflite"
    float_weights_to_int8(F, o, min_elements=64, keep=arrs, max_slice_error=1.0)
    print("floor 64 but", n, "kept float:", len(arrs), iou_vs_torch(o, images, ref))
for n, arrs in classes.items():
    for k, a in enumerate(arrs):
        o = Path(tempfile.mkdtemp()) / "x.tflite"
        others = [b for c, bs in classes.items() for j, b in enumerate(bs) if not (c == n and j == k)]
        v = iou_vs_torch(float_weights_to_int8(F, o, min_elements=64, keep=others, max_slice_error=1.0) and o, images, ref)
        if v < 0.99: print("only", n, a.shape, v)
from egeunet.export.tflite_compact import per_channel_int8  # noqa: E402
def errs(w):
    out = {}
    for ax in (0, 3):
        q, sc = per_channel_int8(w, ax)
        deq = q.astype(np.float64) * np.expand_dims(sc, tuple(i for i in range(4) if i != ax))
        # worst slice along the other axis: relative error of the slice
        other = 3 if ax == 0 else 0
        rel = [np.linalg.norm(np.take(deq - w, j, other)) / (np.linalg.norm(np.take(w, j, other)) + 1e-30) for j in range(w.shape[other])]
        out[ax] = (np.linalg.norm(deq - w) / np.linalg.norm(w), max(rel))
    return out
for n, arrs in classes.items():
    for a in arrs:
        print("ERR", n, a.shape, {k: tuple(round(x, 4) for x in v) for k, v in errs(a).items()})
