"""The TFLite compaction's levers, cumulatively, on freshly converted (uncompacted) files of the
shipped weights: bytes after each step and whether the outputs stay bit-identical.

    python docs/experiments/2026-11-27b/compaction_levers.py [egeunet|egeunet-bn]

Steps: (1) the compaction before 2026-11-27: short ids ("t17") for tensor names, one empty buffer
for activations, TensorFlow's writer; (2) no names but the io ones; (3) + every distinct vector and
option/quantization table written once (``tflite_compact.write_shared``); (4) + the converter's
empty quantization tables dropped; (5) + no ``has_rank`` flag on tensors with a shape
(= ``tflite_compact.compact`` today).
"""
import sys
import tempfile
from pathlib import Path

import numpy as np
from tensorflow.lite.tools import flatbuffer_utils as fu

from egeunet.benchmarks.tflite_levers import _interp
from egeunet.export import tflite_convert as tc
from egeunet.export.tf_graph import TFEGEUNet
from egeunet.export.tflite_compact import compact, write_shared
from egeunet.model.checkpoint import load_checkpoint


def step(src, dst, names, shared, drop_empty, drop_rank=False):
    model = fu.read_model(str(src))
    for g in model.subgraphs:
        io = {int(i): "image" for i in g.inputs} | {int(o): "logits" for o in g.outputs}
        for k, t in enumerate(g.tensors):
            t.name = io[k].encode() if k in io else (f"t{k}".encode() if names else None)
            if model.buffers[t.buffer].data is None or len(model.buffers[t.buffer].data) == 0:
                t.buffer = 0
            q = t.quantization
            if drop_empty and q is not None and all(v is None or len(v) == 0 for v in (q.scale, q.zeroPoint, q.min, q.max)):
                t.quantization = None
            if drop_rank and t.shape is not None and len(t.shape) > 0:
                t.hasRank = False
    used = sorted({t.buffer for g in model.subgraphs for t in g.tensors} | {0} | {m.buffer for m in model.metadata or []})
    remap = {old: new for new, old in enumerate(used)}
    model.buffers = [model.buffers[i] for i in used]
    for g in model.subgraphs:
        for t in g.tensors:
            t.buffer = remap[t.buffer]
    for m in model.metadata or []:
        m.buffer = remap[m.buffer]
    if shared:
        write_shared(model, dst)
    else:
        fu.write_model(model, str(dst))


def outputs(path):
    it = _interp(path)
    i = it.get_input_details()[0]
    it.set_tensor(i["index"], np.random.default_rng(0).uniform(0, 255, i["shape"]).astype(i["dtype"]))
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])


weights = sys.argv[1] if len(sys.argv) > 1 else None
model, pre, _ = load_checkpoint(weights)
tmp = Path(tempfile.mkdtemp())
print("| file | converted | (1) short names | (2) no names | (3) + shared vectors and tables | (4) + no empty quantization tables | (5) + no has_rank | = compact() | outputs equal |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
for prec, fn in (("fp32", tc.float_model), ("int8 (before int8 storage)", tc.dynamic_range_model)):
    raw = tmp / "raw.tflite"
    raw.write_bytes(fn(TFEGEUNet(model, pre)))
    sizes, outs = [], [outputs(raw)]
    for k, flags in enumerate(((True, False, False), (False, False, False), (False, True, False), (False, True, True),
                               (False, True, True, True))):
        dst = tmp / f"s{k}.tflite"
        step(raw, dst, *flags)
        sizes.append(dst.stat().st_size)
        outs.append(outputs(dst))
    compact(raw, tmp / "c.tflite")
    outs.append(outputs(tmp / "c.tflite"))
    same = all(np.array_equal(outs[0], o) for o in outs[1:])
    print(f"| {prec} | {raw.stat().st_size:,} | " + " | ".join(f"{s:,}" for s in sizes)
          + f" | {(tmp / 'c.tflite').stat().st_size:,} | {same} |")
