"""The training loss maps' resize with a banded backward (CPU training).

A training step resizes six one-channel maps (the deep-supervision outputs, 8x8 to 128x128)
to 256x256 for the loss. The backward of a bilinear resize is the transpose of a matrix with
at most a few non-zeros per column: ``upsample_logits_for_training`` (``egeunet.model.egeunet``)
computes it as two dense matrix products, which do 64x more multiply-adds than there are
non-zeros at 128 -> 256. Here each input row (then column) gathers only the output rows that
it reaches, a band of ``k`` of them (4 at 128 -> 256, 9 at 64, 17 at 32, 33 at 16), in one
direct inductor kernel (``egeunet.model.fast_norms.DirectKernel``): 0.93 -> 0.13 ms for a
batch's 128 -> 256 map, 0.42 -> 0.09 ms at 64 (BENCHMARKS.md). Same mathematics: the same
weights, summed in another order (equal to autograd's gradient to float rounding, tested).
Wider bands (8x8 maps, 73) keep the matrix products, which are as fast there; so does
training if compiling fails.
"""

from __future__ import annotations

import functools

import torch

from egeunet.model.egeunet import _bilinear_matrix, _ResizeWithMatrixBackward, upsample_logits_for_training
from egeunet.model.fast_norms import DirectKernel, KernelGroup

MAX_BAND = 40  # wider bands (inputs <= 8 pixels for a 256 output) keep the matrix products


@functools.lru_cache(maxsize=64)
def resize_band(n_out: int, n_in: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(index, weight), each (n_in, k): input position ``i`` of a 1-D bilinear resize
    (align_corners=True) receives ``weight[i, j] * grad[index[i, j]]`` from the output
    positions it contributes to, a contiguous band; padded with zero weights."""
    mt = _bilinear_matrix(n_out, n_in).T  # (n_in, n_out)
    nz = mt != 0
    first = nz.float().argmax(1)
    last = n_out - 1 - nz.flip(1).float().argmax(1)
    width = last - first + 1
    j = torch.arange(int(width.max()))
    index = (first[:, None] + j).clamp(max=n_out - 1)
    weight = torch.where(j < width[:, None], mt.gather(1, index), torch.zeros(()))
    return index, weight


def _banded_resize_backward(grad, row_index, row_weight, col_index, col_weight):
    """(n, c, H, W) output gradient -> (n, c, h, w) input gradient: rows first (gathers of
    whole rows, contiguous along W), then columns."""
    rows = sum(grad[:, :, row_index[:, j], :] * row_weight[:, j].view(1, 1, -1, 1) for j in range(row_index.shape[1]))
    return sum(rows[:, :, :, col_index[:, j]] * col_weight[:, j].view(1, 1, 1, -1) for j in range(col_index.shape[1]))


_KERNELS = KernelGroup("loss-map resize backward")
_BACKWARD = DirectKernel(_banded_resize_backward, _KERNELS)


class _ResizeWithBandedBackward(_ResizeWithMatrixBackward):
    """``F.interpolate`` forward (inherited); backward by the bands, else the matrix products."""

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (h_in, w_in), (h, w) = ctx.in_hw, grad.shape[2:]
        rows, cols = resize_band(h, h_in), resize_band(w, w_in)
        if _KERNELS.failed is None and max(rows[0].shape[1], cols[0].shape[1]) <= MAX_BAND:
            return _BACKWARD(grad.contiguous(), *rows, *cols), None, None
        return _ResizeWithMatrixBackward.backward(ctx, grad)


def upsample_logits_banded_backward(x: torch.Tensor, size) -> torch.Tensor:
    """``upsample_logits_for_training`` with the banded backward above (CPU training; the
    model's ``upsample_loss_map``)."""
    if x.device.type != "cpu":
        return upsample_logits_for_training(x, size)
    return _ResizeWithBandedBackward.apply(x, int(size[0]), int(size[1]))
