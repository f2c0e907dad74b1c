"""torch -> Core ML (mlprogram) with coremltools.

coremltools has had no ONNX front end since version 6, so Core ML is converted from the
PyTorch model (traced), not from our ONNX hub. The input is an ``ImageType`` so an iOS app
can pass a CVPixelBuffer straight in. Core ML's image preprocessing is one scale for all
channels plus a per-channel bias, which cannot express per-channel std; so the image enters
as raw RGB pixels (scale 1, bias 0) and the contract's normalisation is the first op of
the graph (the same :class:`PixelInput` wrapper the int8 TFLite uses).

Precision: fp16 compute (the default, what the Neural Engine runs), or ``int8`` = fp16
compute with per-channel linear-symmetric int8 weights, ``weight_threshold=0`` so every
weight tensor is quantised (the default threshold of 2048 elements would leave all but 8
of this tiny model's weight tensors in fp16; docs/export.md).

Prediction needs macOS (Core ML framework). On Linux we convert, save and inspect the
spec; parity is checked on macOS only (tests/test_export_coreml.py).
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import torch

from egeunet.export.tflite_export import PixelInput
from egeunet.model.deploy import deploy_model
from egeunet.model.egeunet import EGEUNet, InferenceModel
from egeunet.native_logs import import_quietly
from egeunet.preprocess import Preprocessing
from egeunet.runtimes.base import IOSpec

log = logging.getLogger(__name__)

MIN_TARGET = "iOS16"
INPUT_NAME = "image"


def coreml_io_spec(mlmodel, size: int, output: str) -> IOSpec:
    """Read back from the saved spec, so the manifest states what the file really has."""
    out = mlmodel.get_spec().description.output[0]
    arr = out.type.multiArrayType
    dtype = {65552: "float16", 65568: "float32", 131104: "int32"}.get(arr.dataType, str(arr.dataType))
    return IOSpec(INPUT_NAME, (1, 3, size, size), "image RGB", "NCHW", "pixels", out.name,
                  tuple(int(d) for d in arr.shape), dtype, output)


def coreml_metadata(pre: Preprocessing, output: str) -> dict[str, str]:
    """The contract in the model's own metadata, for an app that reads only the .mlpackage:
    the preprocessing as JSON, the output kind, and the threshold on that output (the logit of
    the probability threshold for logits)."""
    return {
        "egeunet.preprocessing": json.dumps(pre.to_dict(), sort_keys=True),
        "egeunet.output": output,
        "egeunet.threshold": repr(pre.threshold_on(output)),
    }


def torch_to_coreml(model: EGEUNet, pre: Preprocessing, artifact: Path, precision: str,
                    output: str) -> tuple[IOSpec, dict]:
    try:
        ct = import_quietly("coremltools")  # imports TensorFlow too, where installed
    except ImportError:
        raise ImportError("Core ML export needs coremltools: pip install 'egeunet[export]'") from None
    net = InferenceModel(PixelInput(deploy_model(model), pre), output).eval()
    example = torch.rand(1, 3, pre.size, pre.size) * 255
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(net, example)
        mlmodel = ct.convert(
            traced,
            inputs=[ct.ImageType(name=INPUT_NAME, shape=example.shape, scale=1.0, bias=[0.0, 0.0, 0.0],
                                 color_layout=ct.colorlayout.RGB)],
            outputs=[ct.TensorType(name=output)],
            convert_to="mlprogram",
            compute_precision=ct.precision.FLOAT16,
            minimum_deployment_target=getattr(ct.target, MIN_TARGET),
        )
    if precision == "int8":
        import coremltools.optimize.coreml as cto

        config = cto.OptimizationConfig(
            global_config=cto.OpLinearQuantizerConfig(mode="linear_symmetric", granularity="per_channel",
                                                      weight_threshold=0))
        mlmodel = cto.linear_quantize_weights(mlmodel, config=config)
    mlmodel.short_description = "EGE-UNet skin-lesion segmentation (egeunet)"
    mlmodel.user_defined_metadata.update(coreml_metadata(pre, output))
    mlmodel.save(str(artifact))
    return coreml_io_spec(mlmodel, pre.size, output), {"graph": {"coreml_ops": coreml_op_counts(mlmodel),
                                                        "min_deployment_target": MIN_TARGET}}


def coreml_op_counts(mlmodel) -> dict[str, int]:
    counts: dict[str, int] = {}
    prog = mlmodel.get_spec().mlProgram
    for fn in prog.functions.values():
        for block in fn.block_specializations.values():
            for op in block.operations:
                counts[op.type] = counts.get(op.type, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))
