"""Compiled kernels for training: the LayerNorms (and, in ``egeunet.train``, the loss).

EGE-UNet has 37 channel LayerNorms. In eager PyTorch each is ~8 element-wise ops forward
and more backward, every one a separate pass over the feature map; on a 2-core CPU they
take about 40 % of a training step. On the CPU each norm is an autograd Function of three
kernels that inductor compiles from ATen graphs and that are called directly, without
``torch.compile``'s per-call guards and wrappers (:class:`DirectKernel`): one forward loop,
the input gradient, and the weight/bias gradients as two-stage sums (6 % faster whole steps
than ``torch.compile(layer_norm_2d)``, which the GPU path keeps). Only the norms are
compiled: compiling whole blocks or the whole model was measured slower here
(``python -m egeunet.benchmarks.train_throughput --levers --compile``), because inductor's
convolutions and layouts lose to oneDNN's.

The kernels compute the same function (``layer_norm_2d``) and its gradients: results agree
with eager autograd to float rounding (tested). They are used only when autograd is
recording, so evaluation and export run the plain eager code and never compile. Inductor
needs a C++ compiler; where compilation fails, the norm falls back to eager with one warning
and training goes on.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from pathlib import Path

import torch
from torch import nn

from egeunet.model.egeunet import LayerNorm2d, layer_norm_2d, norm_then_max_pool

log = logging.getLogger(__name__)


class KernelGroup:
    """Kernels that fall back to eager together: the first failure is warned about once."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.failed: str | None = None

    def fail(self, e: Exception) -> None:
        if self.failed is None:
            self.failed = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            log.warning("[train] compiled %s unavailable (%s); using the eager one", self.what, self.failed)


class CompiledKernel:
    """``fn`` compiled when gradients are recorded, eager otherwise or if compilation fails."""

    def __init__(self, fn, what: str) -> None:
        # One static-shape kernel per input shape and layout (about 15 shapes per batch size
        # for the LayerNorms), hence the larger cache.
        import torch._dynamo

        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 256)
        self.fn = fn
        self.compiled = torch.compile(fn, dynamic=False)
        self.group = KernelGroup(what)

    @property
    def failed(self) -> str | None:
        return self.group.failed

    def __call__(self, *args):
        if self.group.failed is None and torch.is_grad_enabled():
            try:
                return self.compiled(*args)
            except Exception as e:  # noqa: BLE001 - any compiler failure: fall back, keep training
                self.group.fail(e)
        return self.fn(*args)


def kernel_cache_dir() -> Path:
    """Where compiled direct kernels are kept between processes: inside inductor's own cache
    folder (``TORCHINDUCTOR_CACHE_DIR``, by default under the system's temp folder), so that
    clearing one clears both."""
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    return Path(cache_dir()) / "egeunet_direct"


def _artifact_key(gm: torch.fx.GraphModule, tensors: tuple[torch.Tensor, ...]) -> str:
    """What makes a compiled kernel reusable: the traced ATen graph (constants such as eps
    included), the inputs' layouts, the thread count inductor bakes in, the CPU's vector ISA
    and the torch build."""
    layout = [(tuple(t.shape), t.stride(), str(t.dtype), str(t.device)) for t in tensors]
    what = repr((torch.__version__, torch.backends.cpu.get_cpu_capability(), torch.get_num_threads(), layout, gm.code))
    return hashlib.sha256(what.encode()).hexdigest()


def _inductor_compile(fn, tensors: tuple[torch.Tensor, ...]):
    """``fn`` traced to ATen ops for these inputs and compiled by inductor (no dynamo, no guards).

    Why the artifact cache: inductor's own caches still run its tracing and passes before the
    lookup, for every kernel in every new process; with the saved ``standalone_compile``
    artifacts a warm first training step took 2.8 s instead of 15 s (48 kernels; BENCHMARKS.md,
    ``docs/experiments/2026-11-27/first_step.py``). The artifact is inductor's own cache format, written by this process's user into
    that user's cache folder, the trust level of inductor's cache itself. A file that does
    not load (another torch build, damaged) is compiled again and replaced.
    """
    from torch.fx.experimental.proxy_tensor import make_fx

    gm = make_fx(fn)(*tensors)
    # A loaded artifact returns a list even for one output (a freshly compiled one returns the
    # tensor): compile every kernel with a tuple out, unwrapped again for one-output functions.
    output = next(n for n in reversed(gm.graph.nodes) if n.op == "output")
    single = isinstance(output.args[0], torch.fx.Node)
    if single:
        output.args = ((output.args[0],),)
        gm.recompile()
    kernel = _load_or_compile(gm, tensors)
    return (lambda *args: kernel(*args)[0]) if single else kernel


def _load_or_compile(gm: torch.fx.GraphModule, tensors: tuple[torch.Tensor, ...]):
    import torch._inductor
    from torch._inductor.standalone_compile import CompiledArtifact

    path = kernel_cache_dir() / f"{_artifact_key(gm, tensors)}.bin"
    if path.is_file():
        try:
            return CompiledArtifact.load(path=str(path), format="binary")
        except Exception as e:  # noqa: BLE001 - a stale or damaged artifact: compile again
            log.debug("[train] cached kernel %s not loaded (%s); compiling it again", path.name, e)
    artifact = torch._inductor.standalone_compile(gm, list(tensors), dynamic_shapes="from_example_inputs",
                                                  options={})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            artifact.save(path=str(tmp), format="binary")
            os.replace(tmp, path)  # atomic: a concurrent process sees no file or the whole file
        finally:
            tmp.unlink(missing_ok=True)
    except Exception as e:  # noqa: BLE001 - the cache is only a speed-up: train on without it
        log.debug("[train] compiled kernel not cached (%s)", e)
    return artifact


class DirectKernel:
    """``fn`` (tensors in, tensors out, no autograd) compiled once per input layout and called
    directly: the kernels of hand-written autograd Functions.

    Why not ``torch.compile``: every call of a dynamo-compiled function first walks its cache
    entries' guards (~23 us with the ~15 shapes of a step cached) and goes through AOTAutograd's
    wrappers: ~5 ms of a training step for the norms and the loss (BENCHMARKS.md). Here a dict lookup on (shapes, strides, dtypes, device, threads) finds the compiled
    function (inductor bakes the thread count into its parallel loops). Call it with gradients
    off (inside ``Function.forward`` / ``backward``). If tracing or compiling fails, the group
    falls back to calling ``fn`` eagerly, with one warning.
    """

    def __init__(self, fn, group: KernelGroup) -> None:
        self.fn, self.group = fn, group
        self.compiled: dict = {}

    def __call__(self, *tensors: torch.Tensor):
        if self.group.failed is None:
            key = (torch.get_num_threads(), *((t.shape, t.stride(), t.dtype, t.device) for t in tensors))
            kernel = self.compiled.get(key)
            if kernel is None:
                try:
                    kernel = self.compiled[key] = _inductor_compile(self.fn, tensors)
                except Exception as e:  # noqa: BLE001 - any compiler failure: fall back, keep training
                    self.group.fail(e)
                    return self.fn(*tensors)
            return kernel(*tensors)
        return self.fn(*tensors)


# --- the channel LayerNorm as three direct kernels ------------------------------------------
# Split by hand rather than left to AOTAutograd: the weight and bias gradients are sums over
# every pixel, which inductor compiles well as two stages (64 partial sums, then their sum)
# and poorly when they share a kernel with the per-pixel input gradient (one parallel pass per
# 16 channels). Same mathematics as layer_norm_2d and its autograd backward (tested).

def _ln_forward(x, weight, bias, eps: float):
    """(layer_norm_2d(x), per-pixel mean, per-pixel 1/std): the last two kept for the backward."""
    mean = x.mean(1, keepdim=True)
    centred = x - mean
    rstd = torch.rsqrt((centred * centred).mean(1, keepdim=True) + eps)
    return centred * rstd * weight[:, None, None] + bias[:, None, None], mean, rstd


def _ln_input_grad(grad, x, weight, mean, rstd):
    xhat = (x - mean) * rstd
    g = grad * weight[:, None, None]
    return rstd * (g - g.mean(1, keepdim=True) - xhat * (g * xhat).mean(1, keepdim=True))


def per_channel_sum(t: torch.Tensor) -> torch.Tensor:
    """``t.sum((0, 2, 3))`` as 64 partial sums over the pixels, then their sum (the form that
    inductor compiles into fast loops; one stage where 64 does not divide the pixel count)."""
    c = t.shape[1]
    parts = 64 if (t.numel() // c) % 64 == 0 else 1
    return t.permute(0, 2, 3, 1).reshape(parts, -1, c).sum(1).sum(0)


def _ln_param_grads(grad, x, mean, rstd):
    return per_channel_sum(grad * ((x - mean) * rstd)), per_channel_sum(grad)


class _LayerNorm2dFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, kernels):
        y, mean, rstd = kernels.forward(x, weight, bias)
        ctx.save_for_backward(x, weight, mean, rstd)
        ctx.kernels = kernels
        return y

    @staticmethod
    def backward(ctx, grad):
        x, weight, mean, rstd = ctx.saved_tensors
        grad_x = ctx.kernels.input_grad(grad, x, weight, mean, rstd) if ctx.needs_input_grad[0] else None
        grad_w, grad_b = ctx.kernels.param_grads(grad, x, mean, rstd)
        return grad_x, grad_w, grad_b, None


class _LayerNormKernels:
    def __init__(self, eps: float, group: KernelGroup) -> None:
        self.forward = DirectKernel(functools.partial(_ln_forward, eps=eps), group)
        self.input_grad = DirectKernel(_ln_input_grad, group)
        self.param_grads = DirectKernel(_ln_param_grads, group)


class DirectLayerNorm:
    """A ``LayerNorm2d.kernel`` for CPU training: ``layer_norm_2d`` as an autograd Function of
    three direct kernels while gradients are recorded, the eager function otherwise (evaluation,
    export) or if compiling fails."""

    def __init__(self) -> None:
        self.group = KernelGroup("LayerNorm")
        self.kernels: dict[float, _LayerNormKernels] = {}

    @property
    def failed(self) -> str | None:
        return self.group.failed

    def __call__(self, x, weight, bias, eps: float):
        if self.group.failed is None and torch.is_grad_enabled() and x.device.type == "cpu" and x.dim() == 4:
            kernels = self.kernels.get(eps)
            if kernels is None:
                kernels = self.kernels[eps] = _LayerNormKernels(eps, self.group)
            return _LayerNorm2dFunction.apply(x, weight, bias, kernels)
        return layer_norm_2d(x, weight, bias, eps)


def compiled_layer_norm(direct: bool = True) -> CompiledKernel | DirectLayerNorm:
    """A ``LayerNorm2d.kernel``: the direct-kernel Function (CPU), or ``torch.compile``'s
    ``layer_norm_2d`` (``direct=False``: the GPU's path, where the step is graph-captured)."""
    return DirectLayerNorm() if direct else CompiledKernel(layer_norm_2d, "LayerNorm")


def compile_layer_norms(model: nn.Module, direct: bool = True) -> int:
    """Give every ``LayerNorm2d`` of ``model`` one shared compiled kernel; returns how many."""
    kernel = compiled_layer_norm(direct)
    norms = [m for m in model.modules() if isinstance(m, LayerNorm2d)]
    for m in norms:
        m.kernel = kernel
    return len(norms)


def eager_layer_norms(model: nn.Module) -> None:
    """Undo :func:`compile_layer_norms`."""
    for m in model.modules():
        if isinstance(m, LayerNorm2d):
            m.kernel = layer_norm_2d


# --- GroupNorm followed by 2x2 max-pooling (an encoder stage's tail) ----------------------

class _GroupNormMaxPool(torch.autograd.Function):
    """``max_pool2d(group_norm(z), 2, 2)`` for a channels_last ``z``, with its backward done
    at the pooled resolution.

    Why: PyTorch's CPU GroupNorm backward on channels_last memory is slow at EGE-UNet's first
    stage (8 channels in groups of 2 at 256x256: ~8 ms of a ~120 ms training step, ~5x its
    NCHW kernel), and max-pooling's backward first writes a zero gradient over the whole map.
    Only one value in four reaches the pool's output, so both GroupNorm reductions of the
    backward can be taken over the pooled gradient; what is left at full resolution is one
    affine pass over ``z`` per (sample, channel) plus a scatter of the pooled gradient.
    Same mathematics (the gradient of the same function, same pooling indices); tested
    against PyTorch's autograd in tests/test_fast_training.py.
    """

    @staticmethod
    def forward(ctx, z, weight, bias, groups: int, eps: float):
        b, c, h, w = z.shape
        normed, mean, rstd = torch.native_group_norm(z, weight, bias, b, c, h * w, groups, eps)
        pooled, idx = torch.ops.aten.max_pool2d_with_indices(normed, [2, 2], [2, 2])
        ctx.save_for_backward(z, idx, mean, rstd, weight)
        ctx.groups = groups
        return pooled

    @staticmethod
    def backward(ctx, grad_pooled):
        z, idx, mean, rstd, weight = ctx.saved_tensors
        g = ctx.groups
        b, c, h, w = z.shape
        n = (c // g) * h * w  # elements per normalised group

        def per_channel(t: torch.Tensor) -> torch.Tensor:  # (b, g) -> (b, 1, c)
            return t.view(b, g, 1).expand(b, g, c // g).reshape(b, 1, c)

        # (b, pixels, c) views of channels_last memory; idx holds each output's source pixel
        z_l = z.permute(0, 2, 3, 1).reshape(b, h * w, c)
        idx_l = idx.permute(0, 2, 3, 1).reshape(b, -1, c)
        dy = grad_pooled.permute(0, 2, 3, 1).reshape(b, -1, c)
        r = per_channel(rstd)
        xhat = (z_l.gather(1, idx_l) - per_channel(mean)) * r  # normalised z where the max was
        sum_dy = dy.sum(1)  # (b, c): the full-resolution sums, zeros elsewhere add nothing
        sum_dy_xhat = (dy * xhat).sum(1)
        grad_weight, grad_bias = sum_dy_xhat.sum(0), sum_dy.sum(0)
        # d z = r * (weight * d n - mean(weight * d n) - xhat * mean(weight * d n * xhat)), per group
        s1 = (weight * sum_dy).view(b, g, -1).sum(2) / n
        s2 = (weight * sum_dy_xhat).view(b, g, -1).sum(2) / n
        coef_z = -rstd * rstd * s2
        const = -rstd * s1 - coef_z * mean
        # the dense part, channels_last like z, in one pass over the full-resolution map
        grad_z = torch.addcmul(per_channel(const).view(b, c, 1, 1), z, per_channel(coef_z).view(b, c, 1, 1))
        # plus r * weight * d n where the gradient is not zero: the pooled positions
        grad_z.permute(0, 2, 3, 1).view(b, h * w, c).scatter_add_(1, idx_l, dy * (r * weight.view(1, 1, c)))
        return grad_z, grad_weight, grad_bias, None, None


def group_norm_max_pool(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``F.max_pool2d(norm(x), 2, 2)``; the fused backward above where it was measured faster
    (a channels_last GroupNorm at >= 128x128 while gradients are recorded), else exactly that."""
    if (torch.is_grad_enabled() and type(norm) is nn.GroupNorm and norm.affine and x.dim() == 4
            and x.dtype == torch.float32
            and x.device.type == "cpu" and x.shape[2] * x.shape[3] >= 128 * 128
            and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()):
        return _GroupNormMaxPool.apply(x, norm.weight, norm.bias, norm.num_groups, norm.eps)
    return norm_then_max_pool(norm, x)
