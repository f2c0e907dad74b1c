"""TFLite files, by two routes.

The default route (``converter="tf"``) writes the inference graph directly in TensorFlow
ops, NHWC (:mod:`egeunet.export.tf_graph`), converts it with TensorFlow's own TFLite
converter (:mod:`egeunet.export.tflite_convert`) and compacts the flatbuffer
(:mod:`egeunet.export.tflite_compact`). Precisions:
- ``fp32``; ``fp16`` (float16 weights, float compute);
- ``int8``: int8 weights and int8 convolution arithmetic with activation scales computed
  per inference (TFLite "dynamic range"; XNNPACK's qd8 kernels), every other op float;
  float32 pixel input. The weights the quantizer leaves float32 (small convs, the folded
  GHPA maps) are stored int8 too, dequantized on the device. The most accurate and the fastest int8 on a phone CPU (BENCHMARKS.md);
- ``int8-full``: full-integer, uint8 pixel input (scale 1, zero point 0), activations
  calibrated on training images; GELU, RSQRT and ADD stay float so XNNPACK runs the whole
  graph as one partition (measured: 1.9x faster than all-int8, same accuracy). The form
  integer-only accelerators want; less accurate than ``int8`` (see BENCHMARKS.md).

The second route (``converter="onnx2tf"``) converts our ONNX file with onnx2tf (fp32, fp16,
int8-full); it is kept for comparison. onnx2tf's traps, and what we do about each (every one has a test):
- It loads ``calibration_image_sample_data_20x128x128x3_float32.npy`` from its working
  directory and downloads it from GitHub when absent, on every 3-channel conversion. We run
  it in a scratch directory where we have written that file ourselves (synthetic
  dermoscopy-like images), so it never reaches for the network.
- It calls ``onnxsim`` by PATH (fails outside an activated venv) and overwrites its input
  .onnx in place: we simplify beforehand, pass ``not_use_onnxsim=True`` and give it a copy.
- Its GELU fusion never fires and leaves a FlexErf op that LiteRT cannot run: we ask for
  ``replace_to_pseudo_operators=["erf"]`` (a polynomial Erf made of builtin ops).
- At opset >= 18 it ignores ``align_corners=True`` in Resize: our ONNX is opset 17.
- It may silently mis-layout a square tensor and its own output check accepts wrong axis
  permutations on square maps: no conversion is published without our parity check
  against PyTorch on real images (see :mod:`egeunet.export.api`).

The conversion runs in a child process: TensorFlow's start-up, logging and memory stay out
of the caller, and the child's working directory is the scratch folder.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from egeunet.export.calibration import synthetic_dermoscopy
from egeunet.export.common import ExportError
from egeunet.export.onnx_export import torch_to_onnx
from egeunet.export.tflite_compact import compact, float_weights_to_int8, restore_float_weights
from egeunet.model.egeunet import EGEUNet
from egeunet.native_logs import import_tensorflow
from egeunet.preprocess import Preprocessing, resize_image
from egeunet.runtimes.base import IOSpec

log = logging.getLogger(__name__)

ONNX2TF_SAMPLE = "calibration_image_sample_data_20x128x128x3_float32.npy"
# onnx2tf's output file for each precision
ONNX2TF_OUTPUT = {"fp32": "_float32.tflite", "fp16": "_float16.tflite", "int8-full": "_full_integer_quant.tflite"}
CONVERTERS = ("tf", "onnx2tf")
# ops kept float in the int8-full file. XNNPACK has no int8 GELU or RSQRT and does not take
# these int8 ADDs, so in int8 each splits the graph: 56 XNNPACK partitions with everything
# int8, 23 with GELU+RSQRT float, 1 with all three (same accuracy; measured by
# egeunet.benchmarks.int8_sensitivity, table in BENCHMARKS.md)
FULL_INT8_FLOAT_OPS = ("GELU", "RSQRT", "ADD")
# The full-integer file's graph: encoder GroupNorm affines before the max-pool, as in PyTorch, and
# GHPA's weight maps folded into constants. In full int8 the float graphs' faster and smaller forms
# agreed worse with PyTorch: affine after the pool, mask IoU 0.963 -> 0.936 on the 64 parity images
# (docs/experiments/2026-11-27b/int8_full_forms.py); maps computed in the graph (their ops in int8
# too) 0.962 -> 0.957, and EGE-UNet-BN 0.901 -> 0.898, under its 0.90 gate (the export's parity check).
FULL_INT8_GRAPH = {"pool_before_norm_affine": False, "xy_maps_in_graph": False}


class PixelInput(torch.nn.Module):
    """Raw RGB pixels (0..255, NCHW float) in; the contract's normalisation as the first ops.

    Every .tflite (and the Core ML model) takes pixels as they come from the camera or
    gallery: float32 pixel values for fp32/fp16, uint8 for int8, whose input quantisation
    is then scale 1, zero point 0. Per-channel mean/std, which a single per-tensor input
    scale cannot express, happen inside the graph (two cheap elementwise ops)."""

    def __init__(self, model: EGEUNet, pre: Preprocessing) -> None:
        super().__init__()
        self.model = model.eval()
        self.register_buffer("mean", torch.tensor(pre.mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("inv_std", 1.0 / torch.tensor(pre.std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) * self.inv_std)


def write_onnx2tf_sample(folder: Path) -> Path:
    """The sample file onnx2tf would otherwise download: 20 RGB images in [0, 1], 128x128."""
    imgs = synthetic_dermoscopy(20, 128, seed=3).astype(np.float32) / 255.0
    path = folder / ONNX2TF_SAMPLE
    np.save(path, imgs)
    return path


def tflite_io_spec(output: str, details: tuple[dict, dict]) -> IOSpec:
    din, dout = details
    in_q = tuple(din["quantization"]) if din["dtype"] != np.float32 else None
    out_q = tuple(dout["quantization"]) if dout["dtype"] != np.float32 else None
    return IOSpec(din["name"], tuple(int(v) for v in din["shape"]), np.dtype(din["dtype"]).name, "NHWC",
                  "pixels",
                  dout["name"], tuple(int(v) for v in dout["shape"]), np.dtype(dout["dtype"]).name, output,
                  in_q, out_q)


def _run_onnx2tf(kwargs: dict, cwd: Path) -> None:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # its onnxsim / flatc lookups
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env["CUDA_VISIBLE_DEVICES"] = "-1"
    (cwd / "onnx2tf_args.json").write_text(json.dumps(kwargs))
    code = "import json, onnx2tf; onnx2tf.convert(**json.load(open('onnx2tf_args.json')))"
    r = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        lines = [ln for ln in (r.stdout + "\n" + r.stderr).splitlines()
                 if ln.strip() and not ln.startswith(("W0000", "E0000", "I0000", "WARNING: All log"))]
        raise ExportError(f"onnx2tf failed (exit {r.returncode}):\n" + "\n".join(lines[-15:]))


def to_tflite(model: EGEUNet, pre: Preprocessing, artifact: Path, precision: str, output: str,
              calib_images: np.ndarray | None, stage: Path, converter: str = "tf") -> tuple[IOSpec, dict]:
    """Write ``artifact`` (.tflite) for ``precision``; returns (io spec, manifest extras)."""
    if converter not in CONVERTERS:
        raise ValueError(f"unknown converter {converter!r}: choose one of {', '.join(CONVERTERS)}")
    if converter == "onnx2tf":
        if precision not in ONNX2TF_OUTPUT:
            raise ValueError(f"the onnx2tf route makes {', '.join(ONNX2TF_OUTPUT)}, not {precision}")
        return onnx_to_tflite(model, pre, artifact, precision, output, calib_images, stage)
    return tf_to_tflite(model, pre, artifact, precision, output, calib_images, stage)


def _calibration_pixels(calib_images: np.ndarray | None, pre: Preprocessing) -> np.ndarray:
    if calib_images is None or len(calib_images) == 0:
        raise ValueError("int8-full export needs calibration images")
    return np.stack([resize_image(im, pre.size) for im in calib_images])


def tf_to_tflite(model: EGEUNet, pre: Preprocessing, artifact: Path, precision: str, output: str,
                 calib_images: np.ndarray | None, stage: Path) -> tuple[IOSpec, dict]:
    try:
        import_tensorflow()
    except ImportError:
        raise ImportError("TFLite export needs TensorFlow: pip install 'egeunet[export]'") from None
    from egeunet.export import tflite_convert as tc
    from egeunet.export.tf_graph import TFEGEUNet

    graph = TFEGEUNet(model, pre, output, **(FULL_INT8_GRAPH if precision == "int8-full" else {}))
    extra: dict = {"converter": "tensorflow (egeunet.export.tf_graph)"}
    if precision in ("fp32", "fp16"):
        raw = tc.float_model(graph, fp16=precision == "fp16")
    elif precision == "int8":
        raw = tc.dynamic_range_model(graph)
        extra["quantization"] = {"scheme": "dynamic range: the convs TensorFlow's quantizer takes get int8 "
                                 "weights (per channel) and int8 arithmetic with per-inference activation "
                                 "scales; the float32 weights it leaves are stored int8 + DEQUANTIZE (float "
                                 "arithmetic) from 64 elements up where int8 loses <= 5 % of every channel "
                                 "slice; the 1x1 convs that compute norm statistics run in float on their "
                                 "exact weights (stored int8 on their own 1/group lattice); "
                                 "smaller weights and all other ops stay float32 (counts in conv_weights)"}
    elif precision == "int8-full":
        calibrated = tc.calibrate(graph, _calibration_pixels(calib_images, pre))
        float_nodes = tc.nodes_matching(tc.op_outputs(calibrated), op_types=FULL_INT8_FLOAT_OPS)
        raw = tc.quantize(calibrated, float_nodes)
        extra["quantization"] = {"scheme": "full integer (uint8 input, int8 activations and weights)",
                                 "float_ops": list(FULL_INT8_FLOAT_OPS), "n_float_ops": len(float_nodes)}
    else:
        raise ValueError(f"no TFLite {precision} variant")
    raw_path = stage / "converted.tflite"
    raw_path.write_bytes(raw)
    # the output tensor is named after what it holds, as in the ONNX and Core ML files
    extra["compaction"] = compact(raw_path, artifact, output_name=output)
    if precision == "int8":
        # norm statistics stay float32 and exact; the weights TensorFlow's dynamic-range
        # quantizer leaves float32 are stored int8
        extra["quantization"]["norm_weights_restored"] = restore_float_weights(artifact, artifact,
                                                                               graph.norm_weights)["tensors"]
        extra["quantization"]["float_weights_stored_int8"] = float_weights_to_int8(artifact, artifact,
                                                                                   keep=graph.norm_weights)
        # read from the file: most convs of this small model do not run in int8 (weights under
        # the quantizer's size floor), which "int8" alone would hide
        extra["quantization"]["conv_weights"] = conv_weight_kinds(artifact)
    io, ops = _inspect(artifact, output)
    if precision == "int8-full" and io.input_quant != (1.0, 0):
        raise ExportError(f"int8-full input quantization is {io.input_quant}, not raw pixels (1.0, 0)")
    return io, {"graph": {"tflite_ops": ops, "n_ops": int(sum(ops.values()))}, **extra}


def _inspect(artifact: Path, output: str) -> tuple[IOSpec, dict]:
    from egeunet.runtimes.litert_runtime import load_interpreter_class

    interp = load_interpreter_class()(model_path=str(artifact))
    details = (interp.get_input_details()[0], interp.get_output_details()[0])
    return tflite_io_spec(output, details), op_counts(interp)


def onnx_to_tflite(model: EGEUNet, pre: Preprocessing, artifact: Path, precision: str, output: str,
                   calib_images: np.ndarray | None, stage: Path) -> tuple[IOSpec, dict]:
    """The onnx2tf route: our ONNX file -> onnx2tf -> .tflite."""
    try:
        import onnx2tf  # noqa: F401
    except ImportError:
        raise ImportError("TFLite export needs onnx2tf and TensorFlow: pip install 'egeunet[export]'") from None
    work = stage / "onnx2tf"
    work.mkdir()
    onnx_path = work / "model.onnx"
    stats = torch_to_onnx(PixelInput(model, pre), pre.size, onnx_path, output)
    write_onnx2tf_sample(work)
    kwargs = {
        "input_onnx_file_path": str(onnx_path),
        "output_folder_path": str(work / "saved_model"),
        "not_use_onnxsim": True,
        "replace_to_pseudo_operators": ["erf"],  # onnx2tf matches lower case only
        "copy_onnx_input_output_names_to_tflite": True,
        "output_signaturedefs": True,
        "non_verbose": True,
    }
    if precision == "int8-full":
        calib = _calibration_pixels(calib_images, pre).astype(np.float32)
        np.save(work / "calib.npy", calib)  # NHWC raw pixels; the graph normalises
        kwargs.update({
            "output_integer_quantized_tflite": True,
            "quant_type": "per-channel",
            "custom_input_op_name_np_data_path": [["image", str(work / "calib.npy"), [[[[0.0, 0.0, 0.0]]]],
                                                   [[[[1.0, 1.0, 1.0]]]]]],
            "input_quant_dtype": "uint8",
            "output_quant_dtype": "float32",
        })
    _run_onnx2tf(kwargs, work)
    produced = work / "saved_model" / f"model{ONNX2TF_OUTPUT[precision]}"
    if not produced.is_file():
        have = sorted(p.name for p in (work / "saved_model").glob("*.tflite"))
        raise ExportError(f"onnx2tf did not write {produced.name} (wrote: {have})")
    os.replace(produced, artifact)
    io, ops = _inspect(artifact, output)
    return io, {"graph": {**stats, "tflite_ops": ops, "n_ops": int(sum(ops.values()))}, "converter": "onnx2tf"}


def conv_weight_kinds(path: Path) -> dict[str, int]:
    """How the CONV_2D / DEPTHWISE_CONV_2D ops of a .tflite get their weights:
    ``int8`` (int8 tensor into the op: int8 arithmetic), ``int8_dequantized`` (int8 storage, a
    DEQUANTIZE to float32 before the op: float arithmetic) or ``float32``."""
    import_tensorflow()
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils as fu

    model = fu.read_model(str(path))
    op = schema.BuiltinOperator
    kinds = {"int8": 0, "int8_dequantized": 0, "float32": 0}
    for g in model.subgraphs:
        codes = [max(model.operatorCodes[o.opcodeIndex].builtinCode,
                     model.operatorCodes[o.opcodeIndex].deprecatedBuiltinCode) for o in g.operators]
        dequantized = {int(o.outputs[0]) for o, c in zip(g.operators, codes) if c == op.DEQUANTIZE}
        for o, c in zip(g.operators, codes):
            if c not in (op.CONV_2D, op.DEPTHWISE_CONV_2D):
                continue
            w = int(o.inputs[1])
            kinds["int8" if g.tensors[w].type == schema.TensorType.INT8 else
                  "int8_dequantized" if w in dequantized else "float32"] += 1
    return kinds


def op_counts(interp) -> dict[str, int]:
    counts: dict[str, int] = {}
    try:
        for op in interp._get_ops_details():
            counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
    except Exception:  # private API: op counts are informative only
        return {}
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))
