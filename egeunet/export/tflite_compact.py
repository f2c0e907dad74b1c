"""Smaller .tflite flatbuffers without touching a single computed value.

A 53 k-parameter model is small enough that the flatbuffer's bookkeeping rivals its
weights: the converter names every tensor after the TF ops fused into it, gives every
activation tensor its own empty buffer entry and every float tensor an empty quantization
table, and TensorFlow's writer repeats each shape and option table per tensor and op. We
- drop the names of all tensors but the input and output (names are optional in the schema;
  LiteRT reports them as ""; runtimes, the Android app and our tools find tensors by index or
  by the io names). Short ids (``t17``) instead of no name cost 13.6 KB of the int8 file's
  199 KB (2026-11-27) and told a reader nothing;
- drop the empty quantization tables, and the ``has_rank`` flags of tensors that have a shape;
- point every tensor whose buffer holds no data at the shared empty buffer 0 and drop the
  buffers nothing uses any more;
- write every distinct vector and every distinct option or quantization table once
  (``write_shared``): a flatbuffer may point any number of tables at one vector, and hundreds
  of tensors share a few shapes. Constants' bytes are not shared: two weights with equal
  values keep their own memory, so no runtime sees one tensor's data aliased to another's.
Measured step by step in ``docs/experiments/2026-11-27b/compaction_levers.py``; read with
TensorFlow's own ``flatbuffer_utils`` (the schema's object API).
"""

from __future__ import annotations

import os
from pathlib import Path

from egeunet.native_logs import import_tensorflow

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def write_shared(model, dst: Path) -> None:
    """Write ``model`` (object API) to ``dst`` atomically, each distinct numeric vector once."""
    import flatbuffers
    import numpy as np

    def as_array(v, dtype):
        return None if v is None else np.asarray(v, dtype)

    for g in model.subgraphs:  # lists -> arrays, so Pack goes through CreateNumpyVector
        for t in g.tensors:
            t.shape, t.shapeSignature = as_array(t.shape, np.int32), as_array(t.shapeSignature, np.int32)
            q = t.quantization
            if q is not None:
                q.scale, q.zeroPoint = as_array(q.scale, np.float32), as_array(q.zeroPoint, np.int64)
                q.min, q.max = as_array(q.min, np.float32), as_array(q.max, np.float32)
        g.inputs, g.outputs = as_array(g.inputs, np.int32), as_array(g.outputs, np.int32)
        for op in g.operators:
            op.inputs, op.outputs = as_array(op.inputs, np.int32), as_array(op.outputs, np.int32)

    class SharedVectors(flatbuffers.Builder):
        __slots__ = ("written",)

        def CreateNumpyVector(self, x):  # noqa: N802 (flatbuffers' name)
            if x.dtype == np.uint8:  # buffer contents: each constant keeps its own memory
                return super().CreateNumpyVector(x)
            key = (x.dtype.str, x.tobytes())
            if key not in self.written:
                self.written[key] = super().CreateNumpyVector(x)
            return self.written[key]

    builder = SharedVectors(1024)
    builder.written = {}
    # small tables too: every op's options table and every tensor's quantization table is
    # written once per distinct content (most ops share a handful of option sets). The object
    # API packs nested tables itself, so their Pack methods are wrapped for this one call.
    from tensorflow.lite.python import schema_py_generated as schema

    shared = [c for n, c in vars(schema).items() if n.endswith("OptionsT") or n == "QuantizationParametersT"]
    packs = {c: c.Pack for c in shared}

    def pack_once(cls):
        def pack(obj, b):
            key = (cls, tuple((k, v.tobytes() if isinstance(v, np.ndarray) else v) for k, v in sorted(vars(obj).items())))
            if key not in b.written:
                b.written[key] = packs[cls](obj, b)
            return b.written[key]
        return pack

    try:
        for c in shared:
            c.Pack = pack_once(c)
        root = model.Pack(builder)
    finally:
        for c, pack in packs.items():
            c.Pack = pack
    builder.Finish(root, file_identifier=b"TFL3")
    tmp = dst.with_name(dst.name + ".part")
    tmp.write_bytes(bytes(builder.Output()))
    os.replace(tmp, dst)


def compact(src: Path, dst: Path, input_name: str = "image", output_name: str = "logits") -> dict:
    """Write a compacted copy of ``src`` to ``dst``; returns {"bytes_before", "bytes_after"}."""
    import_tensorflow()
    from tensorflow.lite.tools import flatbuffer_utils as fu

    model = fu.read_model(str(src))
    for g in model.subgraphs:
        io_names = {i: input_name if len(g.inputs) == 1 else f"{input_name}{k}" for k, i in enumerate(g.inputs)}
        io_names.update({o: output_name if len(g.outputs) == 1 else f"{output_name}{k}" for k, o in enumerate(g.outputs)})
        for k, t in enumerate(g.tensors):
            t.name = io_names[k].encode() if k in io_names else None
            q = t.quantization
            if q is not None and all(v is None or len(v) == 0 for v in (q.scale, q.zeroPoint, q.min, q.max)) \
                    and q.details is None:
                t.quantization = None  # the converter gives float tensors an empty table
            if t.shape is not None and len(t.shape) > 0:
                # has_rank only tells a rank-0 shape from an unranked one; a tensor with a
                # shape has its rank (files from converters older than the field lack it)
                t.hasRank = False
            buf = model.buffers[t.buffer]
            if buf.data is None or len(buf.data) == 0:
                t.buffer = 0
    used = sorted({t.buffer for g in model.subgraphs for t in g.tensors} | {0})
    # metadata entries point at buffers too (min_runtime_version, conversion metadata)
    used = sorted(set(used) | {m.buffer for m in (model.metadata or [])})
    remap = {old: new for new, old in enumerate(used)}
    model.buffers = [model.buffers[i] for i in used]
    for g in model.subgraphs:
        for t in g.tensors:
            t.buffer = remap[t.buffer]
    for m in model.metadata or []:
        m.buffer = remap[m.buffer]
    for sig in model.signatureDefs or []:
        for t in list(sig.inputs or []) + list(sig.outputs or []):
            t.name = model.subgraphs[sig.subgraphIndex].tensors[t.tensorIndex].name
    write_shared(model, dst)
    return {"bytes_before": src.stat().st_size, "bytes_after": dst.stat().st_size}



def per_channel_int8(values, axis: int):
    """(int8 values, float32 scale per channel along ``axis``): symmetric, scale = max|w| / 127."""
    import numpy as np

    w = np.moveaxis(values, axis, -1)
    scale = np.abs(w).reshape(-1, w.shape[-1]).max(0) / 127.0
    scale[scale == 0] = 1.0
    q = np.moveaxis(np.clip(np.round(w / scale), -127, 127), -1, axis).astype(np.int8)
    return q, scale.astype(np.float32)


def lattice_int8(values, axis: int):
    """(int8 values, float32 step per channel) when every channel along ``axis`` is a small
    integer multiple of its smallest non-zero magnitude, as the norm-statistics matrices are
    (multiples of 1/group): stored so, they dequantize to the float32 values (to float
    rounding) instead of to a max/127 grid. None otherwise."""
    import numpy as np

    w = np.moveaxis(np.asarray(values, np.float64), axis, -1).reshape(-1, values.shape[axis])
    mag = np.where(w == 0, np.inf, np.abs(w))
    step = mag.min(0)
    step[~np.isfinite(step)] = 1.0
    step = step.astype(np.float32).astype(np.float64)
    q = w / step
    if np.abs(q).max() > 127 or np.abs(q - np.round(q)).max() > 1e-4:
        return None
    q = np.moveaxis(np.round(q).reshape(np.moveaxis(np.asarray(values), axis, -1).shape), -1, axis)
    return q.astype(np.int8), step.astype(np.float32)


def add_int8_tensor(model, g, values, axis: int, name: str, quantized=None) -> int:
    """Append ``values`` to subgraph ``g`` of ``model`` (flatbuffer object API) as a per-channel
    int8 constant quantized along ``axis``, with its own buffer; returns its tensor index.
    ``quantized``: (int8 values, scales) already computed (e.g. :func:`lattice_int8`'s), else
    :func:`per_channel_int8`'s."""
    import numpy as np
    from tensorflow.lite.python import schema_py_generated as schema  # `model` came from TensorFlow's reader

    q, scale = quantized if quantized is not None else per_channel_int8(values, axis)
    t = schema.TensorT()
    t.shape, t.type, t.name = list(values.shape), schema.TensorType.INT8, name.encode()
    t.quantization = schema.QuantizationParametersT()
    t.quantization.scale, t.quantization.zeroPoint = scale, np.zeros(len(scale), np.int64)
    t.quantization.quantizedDimension = axis
    b = schema.BufferT()
    b.data = np.frombuffer(q.tobytes(), np.uint8)
    model.buffers.append(b)
    t.buffer = len(model.buffers) - 1
    g.tensors.append(t)
    return len(g.tensors) - 1


def _matches(values, weights) -> bool:
    """Whether float32 ``values`` are exactly one of ``weights`` (same shape and bytes)."""
    return any(w.shape == values.shape and w.tobytes() == values.tobytes() for w in weights)


def restore_float_weights(src: Path, dst: Path, weights) -> dict:
    """Write ``weights`` (float32 arrays, TFLite layout) back as exact float32 where a quantizer
    stored them per-channel int8: TensorFlow's dynamic-range quantizer takes every conv weight
    of >= 1,024 elements, including the 1x1 convs that compute norm statistics
    (``TFEGEUNet.norm_weights``), and would run that arithmetic in int8. A tensor matches when
    its dequantized values are within half a quantization step of the weight. Returns
    {"tensors": how many were restored}."""
    import numpy as np

    import_tensorflow()
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils as fu

    weights = [np.asarray(w, np.float32) for w in weights]
    model = fu.read_model(str(src))
    n = 0
    for g in model.subgraphs:
        for t in g.tensors:
            buf = model.buffers[t.buffer]
            q = t.quantization
            if t.type != schema.TensorType.INT8 or buf.data is None or len(buf.data) == 0 or q is None \
                    or q.scale is None or len(t.shape) != 4:
                continue
            shape = tuple(int(d) for d in t.shape)
            axis_shape = [1, 1, 1, 1]
            axis_shape[q.quantizedDimension] = -1
            scale = np.asarray(q.scale, np.float64).reshape(axis_shape if len(q.scale) > 1 else [1, 1, 1, 1])
            deq = np.frombuffer(bytes(buf.data), np.int8).reshape(shape) * scale
            for w in weights:
                if w.shape == shape and np.abs(deq - w).max() <= 0.501 * float(np.max(q.scale)):
                    buf.data = np.frombuffer(w.tobytes(), np.uint8)
                    t.type, t.quantization = schema.TensorType.FLOAT32, None
                    n += 1
                    break
    fu.write_model(model, str(dst))
    return {"tensors": n}


def int8_slice_error(values, axis: int) -> float:
    """Largest relative error (L2) of per-channel int8 along ``axis`` over the slices of the other
    channel axis (axis 3 when quantizing along 0, else axis 0): e.g. one input channel of a
    kernel quantized per output channel. For (1, h, w, C) maps and depthwise kernels that is the
    whole tensor's relative error."""
    import numpy as np

    q, scale = per_channel_int8(values, axis)
    deq = q.astype(np.float64) * np.expand_dims(scale, tuple(i for i in range(values.ndim) if i != axis))
    other = 3 if axis == 0 else 0
    err = np.moveaxis(deq - values, other, 0).reshape(values.shape[other], -1)
    ref = np.moveaxis(np.asarray(values, np.float64), other, 0).reshape(values.shape[other], -1)
    return float((np.linalg.norm(err, axis=1) / np.maximum(np.linalg.norm(ref, axis=1), 1e-30)).max())


# A weight is stored int8 only if no slice across its channel axis (one input channel of a
# kernel quantized per output channel, say) loses more than this, relative to its norm.
MAX_INT8_SLICE_ERROR = 0.05


def float_weights_to_int8(src: Path, dst: Path, min_elements: int = 64, keep=(),
                          max_slice_error: float = MAX_INT8_SLICE_ERROR) -> dict:
    """Store the float32 4-D weights of ``src`` (>= ``min_elements``) as per-channel int8,
    each followed by a DEQUANTIZE op (symmetric, scale = max|w| / 127 per output channel).

    For the dynamic-range int8 file: TensorFlow's quantizer leaves weight tensors under
    1,024 elements and the folded GHPA weight maps in float32, which made that "int8" file
    larger than the fp16 one. XNNPACK keeps the graph in one partition (measured: same
    latency; float16 storage instead split it into 18). The values change by int8 rounding;
    the export's parity check measures the effect (mask IoU vs PyTorch 0.9982 -> 0.9978 on
    64 test images). Weights equal to one of ``keep`` (the norm statistics' matrices,
    ``TFEGEUNet.norm_weights``) are stored on their own lattice (:func:`lattice_int8`), so
    their dequantized values equal the float32 ones to rounding, or stay float32 where they
    have none. From 64 elements up (below, a DEQUANTIZE op and its tensor cost more bytes than
    int8 saves), and only where per-channel int8 loses at most ``max_slice_error`` of any slice
    across the channel axis (:func:`int8_slice_error`): EGE-UNet-BN's last bridge's tail conv
    (8 x 20, a BatchNorm scale folded into its input channels) loses 13.7 % of one input channel
    and cost that model its parity gate (mask IoU vs PyTorch 0.992 -> 0.959) when stored int8.
    Measured 2026-11-27 (``docs/experiments/2026-11-27b/int8_storage_floor.py``).
    Returns {"tensors", "bytes_before", "bytes_after"}.
    """
    import numpy as np

    import_tensorflow()
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils as fu

    bytes_before = src.stat().st_size
    model = fu.read_model(str(src))
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.DEQUANTIZE
    code.version = 2  # int8 input
    model.operatorCodes.append(code)
    deq = len(model.operatorCodes) - 1
    n = 0
    for g in model.subgraphs:
        dequantize_ops = []
        for k in range(len(g.tensors)):
            t = g.tensors[k]
            buf = model.buffers[t.buffer]
            if t.type != schema.TensorType.FLOAT32 or buf.data is None or len(t.shape) != 4 \
                    or int(np.prod(t.shape)) < min_elements:
                continue
            values = np.frombuffer(bytes(buf.data), np.float32).reshape(t.shape)
            # channel axis: last for (1, h, w, C) maps and depthwise kernels, first for (O, kh, kw, I) kernels
            axis = 3 if t.shape[0] == 1 else 0
            if _matches(values, keep):  # norm statistics: on their lattice, or not at all
                quantized = lattice_int8(values, axis)
                if quantized is None:
                    continue
            elif int8_slice_error(values, axis) > max_slice_error:
                continue
            else:
                quantized = None  # the max/127 grid
            qk = add_int8_tensor(model, g, values, axis, f"q{k}", quantized)
            buf.data, t.buffer = None, 0  # the float32 tensor is now the DEQUANTIZE output
            op = schema.OperatorT()
            op.opcodeIndex, op.inputs, op.outputs = deq, np.array([qk], np.int32), np.array([k], np.int32)
            dequantize_ops.append(op)
            n += 1
        g.operators = dequantize_ops + list(g.operators)  # before every consumer
    if n == 0:
        model.operatorCodes.pop()
    fu.write_model(model, str(dst))
    # keep the names the file has: the output is "probs" in a file exported with --output probs
    g = model.subgraphs[0]
    out = compact(dst, dst, g.tensors[g.inputs[0]].name.decode(), g.tensors[g.outputs[0]].name.decode())
    return {"tensors": n, "bytes_before": bytes_before, "bytes_after": out["bytes_after"]}
