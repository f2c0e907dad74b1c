"""torch -> ONNX, the hub every other mobile format is made from.

TorchScript exporter at opset 17 (at opset >= 18 onnx2tf ignores ``align_corners=True`` in
Resize, which EGE-UNet uses everywhere), then onnxsim, which folds the input-independent
GHPA weight-map branches into constants (1592 -> 639 nodes for the default model at
initialisation; trained weights keep a few more). The graph is the deploy rewrite of the
model (:mod:`egeunet.model.deploy`): same function, no feature-map reshapes.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch

from egeunet.model.deploy import deploy_model
from egeunet.model.egeunet import EGEUNet, InferenceModel
from egeunet.runtimes.base import IOSpec

log = logging.getLogger(__name__)

OPSET = 17
INPUT_NAME, OUTPUT_NAME = "image", "logits"


def onnx_io_spec(size: int, output: str = "logits") -> IOSpec:
    return IOSpec(INPUT_NAME, (1, 3, size, size), "float32", "NCHW", "normalized",
                  output if output == "probs" else OUTPUT_NAME, (1, 1, size, size), "float32", output)


def torch_to_onnx(model: EGEUNet, size: int, path: Path, output: str = "logits", simplify: bool = True) -> dict:
    """Write ``path``; returns node counts before and after simplification."""
    try:
        import onnx
    except ImportError:
        raise ImportError("ONNX export needs the export extra: pip install 'egeunet[export]'") from None
    spec = onnx_io_spec(size, output)
    wrapper = InferenceModel(deploy_model(model), output).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(wrapper, (torch.zeros(1, 3, size, size),), str(path), opset_version=OPSET,
                          dynamo=False, input_names=[spec.input_name], output_names=[spec.output_name],
                          do_constant_folding=True)
    proto = onnx.load(str(path))
    stats = {"nodes_exported": len(proto.graph.node)}
    if simplify:
        import onnxsim

        proto, ok = onnxsim.simplify(proto)
        if not ok:
            raise RuntimeError("onnxsim could not validate the simplified model")
    onnx.checker.check_model(proto, full_check=True)
    proto.producer_name, proto.producer_version = "egeunet", ""
    onnx.save(proto, str(path))
    stats["nodes"] = len(proto.graph.node)
    log.info("[onnx] opset %d, %d -> %d nodes", OPSET, stats["nodes_exported"], stats["nodes"])
    return stats
