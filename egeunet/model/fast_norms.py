"""Compiled kernels for training: the LayerNorms (and, in ``egeunet.train``, the loss).

EGE-UNet has 37 channel LayerNorms. In eager PyTorch each is ~8 element-wise ops forward
and more backward, every one a separate pass over the feature map; on a 2-core CPU they
take about 40 % of a training step. ``torch.compile`` (inductor) fuses each norm into one
forward and one backward loop. Only the norm is compiled: compiling whole blocks or the
whole model was measured slower here (``python -m egeunet.benchmarks.train_throughput
--levers --compile``), because inductor's convolutions and layouts lose to oneDNN's.

The compiled kernel is the same function (``layer_norm_2d``): results agree with eager to
float rounding (tested). It is used only when autograd is recording, so evaluation and
export run the plain eager code and never compile. Inductor needs a C++ compiler; where
compilation fails, the norm falls back to eager with one warning and training goes on.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from egeunet.model.egeunet import LayerNorm2d, layer_norm_2d

log = logging.getLogger(__name__)


class CompiledKernel:
    """``fn`` compiled when gradients are recorded, eager otherwise or if compilation fails."""

    def __init__(self, fn, what: str) -> None:
        # One static-shape kernel per input shape and layout (about 15 shapes per batch size
        # for the LayerNorms), hence the larger cache.
        import torch._dynamo

        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 256)
        self.fn, self.what = fn, what
        self.compiled = torch.compile(fn, dynamic=False)
        self.failed: str | None = None

    def __call__(self, *args):
        if self.failed is None and torch.is_grad_enabled():
            try:
                return self.compiled(*args)
            except Exception as e:  # noqa: BLE001 - any compiler failure: fall back, keep training
                self.failed = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                log.warning("[train] compiled %s unavailable (%s); using the eager one", self.what, self.failed)
        return self.fn(*args)


def compiled_layer_norm() -> CompiledKernel:
    """A ``LayerNorm2d.kernel``: the compiled ``layer_norm_2d``."""
    return CompiledKernel(layer_norm_2d, "LayerNorm")


def compile_layer_norms(model: nn.Module) -> int:
    """Give every ``LayerNorm2d`` of ``model`` one shared compiled kernel; returns how many."""
    kernel = compiled_layer_norm()
    norms = [m for m in model.modules() if isinstance(m, LayerNorm2d)]
    for m in norms:
        m.kernel = kernel
    return len(norms)


def eager_layer_norms(model: nn.Module) -> None:
    """Undo :func:`compile_layer_norms`."""
    for m in model.modules():
        if isinstance(m, LayerNorm2d):
            m.kernel = layer_norm_2d
