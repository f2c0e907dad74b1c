"""Every convolution of the dynamic-range int8 file with int8 weights fed straight into the op
(TFLite's hybrid kernels: int8 arithmetic, activations quantized per inference), instead of 21
int8 + 19 dequantized + 45 float32. Usage: hybrid_all.py SRC DST"""
import sys
from pathlib import Path

import numpy as np
from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils as fu

from egeunet.export.tflite_compact import add_int8_tensor

src, dst = Path(sys.argv[1]), Path(sys.argv[2])
model = fu.read_model(str(src))
B = schema.BuiltinOperator
code_of = lambda op: max(model.operatorCodes[op.opcodeIndex].builtinCode, model.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode)
g = model.subgraphs[0]
producer = {int(o): op for op in g.operators for o in op.outputs}


def float_values(k: int) -> np.ndarray:
    t = g.tensors[k]
    p = producer.get(k)
    if p is not None and code_of(p) == B.DEQUANTIZE:  # the storage lever: int8 * scale
        qt = g.tensors[int(p.inputs[0])]
        q = np.frombuffer(bytes(model.buffers[qt.buffer].data), np.int8).reshape(qt.shape).astype(np.float32)
        s = np.asarray(qt.quantization.scale, np.float32)
        shape = [1] * 4
        shape[qt.quantization.quantizedDimension] = -1
        return q * s.reshape(shape)
    return np.frombuffer(bytes(model.buffers[t.buffer].data), np.float32).reshape(t.shape).copy()


changed = {"conv": 0, "depthwise": 0}
for op in g.operators:
    c = code_of(op)
    if c not in ((B.CONV_2D,) if "--conv-only" in sys.argv else (B.CONV_2D, B.DEPTHWISE_CONV_2D)):
        continue
    k = int(op.inputs[1])
    if g.tensors[k].type == schema.TensorType.INT8:
        continue  # already hybrid
    axis = 0 if c == B.CONV_2D else 3
    op.inputs[1] = add_int8_tensor(model, g, float_values(k), axis, f"h{k}")
    changed["conv" if c == B.CONV_2D else "depthwise"] += 1
# drop DEQUANTIZE ops whose output nothing reads any more
read = {int(i) for op in g.operators for i in op.inputs if i >= 0} | {int(o) for o in g.outputs}
g.operators = [op for op in g.operators if not (code_of(op) == B.DEQUANTIZE and int(op.outputs[0]) not in read)]
for oc in model.operatorCodes:  # hybrid per-channel versions
    if max(oc.builtinCode, oc.deprecatedBuiltinCode) == B.DEPTHWISE_CONV_2D:
        oc.version = max(oc.version, 6)
    if max(oc.builtinCode, oc.deprecatedBuiltinCode) == B.CONV_2D:
        oc.version = max(oc.version, 5)
fu.write_model(model, str(dst))
print(changed, "ops", len(g.operators), "bytes", src.stat().st_size, "->", dst.stat().st_size)
