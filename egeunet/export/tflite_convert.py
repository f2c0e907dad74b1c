"""TFLite files from :class:`egeunet.export.tf_graph.TFEGEUNet` with TensorFlow's own converter.

int8 is done in two steps so the choice of what stays float can be measured cheaply:
:func:`calibrate` runs the representative images once (the slow part) and returns a float
model carrying activation ranges; :func:`quantize` turns that into an int8 model in seconds,
keeping the ops of the named blocks in float. This is TensorFlow's selective quantization
(the machinery behind ``tf.lite.experimental.QuantizationDebugger``'s ``denylisted_nodes``).

The int8 file takes uint8 pixels with scale 1 and zero point 0 (the first calibration
sample is a 0..255 ramp so the input range is exactly that; checked after conversion) and
gives float32 logits.
"""

from __future__ import annotations

import os
import re
import warnings

import numpy as np

from egeunet.native_logs import import_tensorflow, quiet_native_logs

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _converter(graph):
    tf = import_tensorflow()

    return tf.lite.TFLiteConverter.from_concrete_functions([graph.concrete_function()], graph)


def float_model(graph, fp16: bool = False) -> bytes:
    """fp32 (or fp16 weights, float compute) flatbuffer."""
    tf = import_tensorflow()

    conv = _converter(graph)
    if fp16:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    with quiet_native_logs():  # the converter's start-up lines
        return conv.convert()


def dynamic_range_model(graph) -> bytes:
    """int8 weights; XNNPACK runs the convolutions in int8 with activation scales computed
    per inference (no calibration), everything else in float."""
    tf = import_tensorflow()

    conv = _converter(graph)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    with quiet_native_logs():  # the converter's start-up lines
        return conv.convert()


def input_ramp(size: int) -> np.ndarray:
    """One calibration sample holding every pixel value 0..255 in each channel."""
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    return np.ascontiguousarray(np.broadcast_to(ramp[None, :, None], (size, size, 3)))


DEFAULT_RANGE_PERCENTILE = 95.0


def calibrate(graph, images: np.ndarray, percentile: float | None = DEFAULT_RANGE_PERCENTILE) -> bytes:
    """Float model annotated with activation ranges from ``images`` (N, S, S, 3) uint8.

    TensorFlow's calibrator keeps each tensor's min and max over *all* images, so one
    unusual image widens a range for every other and costs resolution where it matters.
    With ``percentile`` (default 95) each range is instead the given percentile of the
    per-image maxima (and the mirrored one of the minima): measured on the shipped weights,
    mask IoU vs PyTorch 0.946 -> 0.978 (BENCHMARKS.md). ``None`` keeps TensorFlow's ranges.
    """
    tf = import_tensorflow()

    def samples():
        yield [input_ramp(graph.size)[None]]
        for im in images:
            yield [im[None].astype(np.float32)]

    conv = _converter(graph)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = samples
    conv.experimental_mlir_quantizer = True
    conv._experimental_calibrate_only = True  # what QuantizationDebugger does: ranges now, quantize later
    with quiet_native_logs(), warnings.catch_warnings():
        # TensorFlow asks for the input's mean/std; its range comes from the 0..255 ramp sample
        # instead, and quantize() gives it the uint8 type (checked after conversion)
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
        calibrated = conv.convert()
    return calibrated if percentile is None else _percentile_ranges(calibrated, images, percentile)


def _percentile_ranges(calibrated: bytes, images: np.ndarray, percentile: float) -> bytes:
    """Replace every activation range by percentiles of its per-image extremes (the input's
    range stays: it is the 0..255 pixel range the uint8 interface promises)."""
    import tempfile
    from pathlib import Path

    from tensorflow.lite.tools import flatbuffer_utils as fu  # calibrate() has imported TensorFlow

    from egeunet.runtimes.litert_runtime import load_interpreter_class

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "calibrated.tflite"
        path.write_bytes(calibrated)
        model = fu.read_model(str(path))
        graph_tensors = model.subgraphs[0].tensors
        inputs = set(int(i) for i in model.subgraphs[0].inputs)
        ranged = [k for k, t in enumerate(graph_tensors) if k not in inputs and t.quantization is not None
                  and t.quantization.min is not None and len(t.quantization.min) == 1]
        # the calibrated model is a float model: run it and look at every intermediate tensor
        with warnings.catch_warnings():  # "intended for debugging": reading every tensor is what we want here
            warnings.simplefilter("ignore")
            with quiet_native_logs():
                interp = load_interpreter_class()(model_path=str(path), experimental_preserve_all_tensors=True)
                interp.allocate_tensors()
        index = interp.get_input_details()[0]["index"]
        lo, hi = np.zeros((len(images), len(ranged))), np.zeros((len(images), len(ranged)))
        for n, im in enumerate(images):
            interp.set_tensor(index, im[None].astype(np.float32))
            interp.invoke()
            for j, k in enumerate(ranged):
                v = interp.get_tensor(k)
                lo[n, j], hi[n, j] = v.min(), v.max()
        for j, k in enumerate(ranged):
            q = graph_tensors[k].quantization
            q.min = np.array([min(0.0, np.percentile(lo[:, j], 100.0 - percentile))], np.float32)
            q.max = np.array([max(0.0, np.percentile(hi[:, j], percentile))], np.float32)
        fu.write_model(model, str(path))
        return path.read_bytes()


def quantize(calibrated: bytes, float_nodes: list[str] | tuple[str, ...] = ()) -> bytes:
    """int8 model (uint8 input, float32 output); ops whose output tensor is in
    ``float_nodes`` stay float (with QUANTIZE/DEQUANTIZE around them)."""
    tf = import_tensorflow()
    from tensorflow.lite.python import convert, util

    # fully_quantize=False keeps a float input + QUANTIZE op, which the io rewrite then turns into uint8
    with quiet_native_logs():  # "fully_quantize: 0, inference_type: 6, ..."
        q = convert.mlir_quantize(calibrated, fully_quantize=False, denylisted_nodes=list(float_nodes) or None)
    return util.modify_model_io_type(q, inference_input_type=tf.uint8, inference_output_type=tf.float32)


def op_outputs(model: bytes) -> list[tuple[str, str]]:
    """(op name, output tensor name) of every op, in execution order."""
    from egeunet.runtimes.litert_runtime import load_interpreter_class

    with quiet_native_logs():
        interp = load_interpreter_class()(model_content=model)
    names = {t["index"]: t["name"] for t in interp.get_tensor_details()}
    return [(op["op_name"], names[op["outputs"][0]]) for op in interp._get_ops_details()]


def block_of(tensor_name: str) -> str:
    """The block (name scope) an op belongs to: 'gab4/BiasAdd_5;gab4/Conv2D_1' -> 'gab4';
    'dec3_1/add' -> 'dec3' (TensorFlow suffixes a re-opened scope with _1, _2, ...)."""
    first = tensor_name.split(";")[0]
    if "/" not in first:
        return "head"  # the last op's output is renamed 'Identity'
    return re.sub(r"_\d+$", "", first.split("/")[0])


def nodes_matching(ops: list[tuple[str, str]], blocks: tuple[str, ...] = (),
                   op_types: tuple[str, ...] = ()) -> list[str]:
    """Output-tensor names of the ops (from :func:`op_outputs`) in ``blocks`` or of type ``op_types``."""
    return [name for op, name in ops if block_of(name) in blocks or op in op_types]
