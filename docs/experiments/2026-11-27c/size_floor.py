"""How small can an int8 .tflite of this graph be? Measures what one op and one tensor cost in the
compacted flatbuffer (the file re-written without its ops, then without its tensors), then
prices the graph with ideal weight storage: every weight of 2+ dimensions at 1 byte with no
scales, no DEQUANTIZE ops, vectors (biases, norm affines) float32 as the arithmetic needs them.

    python docs/experiments/2026-11-27c/size_floor.py exports/tflite-int8/egeunet_int8.tflite [egeunet]
"""
import copy
import sys
import tempfile
from collections import Counter
from pathlib import Path

from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils as fu

from egeunet.export.tflite_compact import write_shared
from egeunet.model.checkpoint import load_checkpoint

src = sys.argv[1]
weights = sys.argv[2] if len(sys.argv) > 2 else None


def size(model) -> int:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "m.tflite"
        write_shared(copy.deepcopy(model), p)
        return p.stat().st_size


m = fu.read_model(src)
g = m.subgraphs[0]
codes = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
ops = Counter(codes[m.operatorCodes[o.opcodeIndex].builtinCode] for o in g.operators)
const = [t for t in g.tensors if m.buffers[t.buffer].data is not None and len(m.buffers[t.buffer].data)]
full = size(m)
no_ops = copy.deepcopy(m)
no_ops.subgraphs[0].operators = []
s_no_ops = size(no_ops)
no_tensors = copy.deepcopy(no_ops)
no_tensors.subgraphs[0].tensors = []
s_no_tensors = size(no_tensors)
per_op = (full - s_no_ops) / len(g.operators)
per_tensor = (s_no_ops - s_no_tensors) / len(g.tensors)
data = sum(len(m.buffers[t.buffer].data) for t in const)

model, _, _ = load_checkpoint(weights)
params = Counter()
for p in model.parameters():
    params["vectors" if p.dim() == 1 else "weights"] += p.numel()
n_dq = ops.get("DEQUANTIZE", 0)
compute_ops = len(g.operators) - n_dq
activations = len(g.tensors) - len(const) - 1  # each compute op's output (+ the input)
constants = len(const) - n_dq  # weights and vectors, each one tensor
ideal = params["weights"] + 4 * params["vectors"] + compute_ops * per_op + (activations + 1 + constants) * per_tensor
print(f"{src}: {full:,} B; {len(g.operators)} ops ({n_dq} DEQUANTIZE), {len(g.tensors)} tensors, constant data {data:,} B")
print(f"one op costs {per_op:.1f} B, one tensor {per_tensor:.1f} B (everything else: {s_no_tensors:,} B)")
print(f"parameters: {params['weights']:,} in weights (1 B each at int8), {params['vectors']:,} in vectors (4 B each)")
print(f"this graph with ideal storage ({compute_ops} compute ops, {activations + 1 + constants} tensors): >= {ideal:,.0f} B")
budget = 100_000 - params["weights"] - 4 * params["vectors"] - constants * per_tensor
print(f"for 100,000 B with ideal storage the graph could have at most {budget / (per_op + per_tensor):.0f} compute ops (one output each); it has {compute_ops}")
print("op kinds:", dict(ops.most_common()))
